// diffscope: the few CUDA driver event operations perf mode uses (event_api), and their
// implementation on the driver loaded at run time (driver_event_api).
//
// The driver is reached through dlopen("libcuda.so.1"): no link-time dependency (CI has no
// driver), one copy of the driver shared with whatever runtime the program uses, and events
// work whichever CUDA runtime (static, PyTorch's) made the context. Everything the pairing
// logic needs from the driver sits behind event_api, so tests drive it with synthetic events.
#pragma once

#include <dlfcn.h>

#include <optional>
#include <string>

namespace diffscope::detail {

/// The few driver operations perf mode uses. Handles are CUevent / CUcontext / CUstream.
class event_api {
 public:
  using event = void*;
  using context = void*;
  enum class state { done, pending, failed };

  virtual ~event_api() = default;
  /// The context current on the calling thread; nullptr when none (never creates one: the
  /// collector must not change what the program does).
  virtual context current_context() noexcept = 0;
  /// A timing-enabled event in the current context; nullptr on failure.
  virtual event create() noexcept = 0;
  virtual bool record(event e, void* stream) noexcept = 0;
  virtual state query(event e) noexcept = 0;
  virtual bool synchronize(event e) noexcept = 0;
  /// Device time from `start` to `end` in milliseconds, both complete.
  virtual std::optional<double> elapsed_ms(event start, event end) noexcept = 0;
  virtual void destroy(event e) noexcept = 0;
  /// Side-stream stamping (event_timer's `side` option): an event without timing, a
  /// non-blocking stream of our own, a stream waiting for an event.
  virtual event create_marker() noexcept = 0;
  virtual void* create_stream() noexcept = 0;
  virtual bool wait(void* stream, event e) noexcept = 0;
  virtual void destroy_stream(void* stream) noexcept = 0;
  /// Makes `ctx` current on the calling thread. Only the resolver thread, which is ours,
  /// calls it: a program's thread never has its context changed.
  virtual void bind(context ctx) noexcept = 0;
};

/// event_api on the CUDA driver, loaded at run time.
class driver_event_api final : public event_api {
 public:
  /// Loads libcuda.so.1; empty on success, else why perf mode cannot time on the GPU.
  std::string load() {
    if (handle_ != nullptr) return {};
    void* h = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = ::dlerror();
      return std::string("no CUDA driver (") + (e != nullptr ? e : "libcuda.so.1 not found") + ")";
    }
    auto sym = [h](const char* a, const char* b = nullptr) {
      void* p = ::dlsym(h, a);
      if (p == nullptr && b != nullptr) p = ::dlsym(h, b);
      return p;
    };
    get_current_ = reinterpret_cast<int (*)(void**)>(sym("cuCtxGetCurrent"));
    create_ = reinterpret_cast<int (*)(void**, unsigned)>(sym("cuEventCreate"));
    record_ = reinterpret_cast<int (*)(void*, void*)>(sym("cuEventRecord"));
    query_ = reinterpret_cast<int (*)(void*)>(sym("cuEventQuery"));
    sync_ = reinterpret_cast<int (*)(void*)>(sym("cuEventSynchronize"));
    elapsed_ = reinterpret_cast<int (*)(float*, void*, void*)>(
        sym("cuEventElapsedTime_v2", "cuEventElapsedTime"));
    destroy_ = reinterpret_cast<int (*)(void*)>(sym("cuEventDestroy_v2", "cuEventDestroy"));
    stream_create_ = reinterpret_cast<int (*)(void**, unsigned)>(sym("cuStreamCreate"));
    stream_wait_ = reinterpret_cast<int (*)(void*, void*, unsigned)>(sym("cuStreamWaitEvent"));
    stream_destroy_ =
        reinterpret_cast<int (*)(void*)>(sym("cuStreamDestroy_v2", "cuStreamDestroy"));
    set_current_ = reinterpret_cast<int (*)(void*)>(sym("cuCtxSetCurrent"));
    if (!get_current_ || !set_current_ || !create_ || !record_ || !query_ || !sync_ || !elapsed_ ||
        !destroy_ || !stream_create_ || !stream_wait_ || !stream_destroy_) {
      ::dlclose(h);
      return "the CUDA driver lacks the event API";
    }
    handle_ = h;  // kept loaded for the process: events may be released at exit
    return {};
  }

  context current_context() noexcept override {
    void* c = nullptr;
    return get_current_(&c) == 0 ? c : nullptr;  // CUDA_ERROR_NOT_INITIALIZED: none yet
  }
  event create() noexcept override {
    void* e = nullptr;
    return create_(&e, 0 /* CU_EVENT_DEFAULT: timing on */) == 0 ? e : nullptr;
  }
  bool record(event e, void* stream) noexcept override { return record_(e, stream) == 0; }
  state query(event e) noexcept override {
    const int r = query_(e);
    return r == 0                                ? state::done
           : r == 600 /* CUDA_ERROR_NOT_READY */ ? state::pending
                                                 : state::failed;
  }
  bool synchronize(event e) noexcept override { return sync_(e) == 0; }
  std::optional<double> elapsed_ms(event start, event end) noexcept override {
    float ms = 0;
    if (elapsed_(&ms, start, end) != 0) return std::nullopt;
    return static_cast<double>(ms);
  }
  void destroy(event e) noexcept override { destroy_(e); }
  event create_marker() noexcept override {
    void* e = nullptr;
    return create_(&e, 2 /* CU_EVENT_DISABLE_TIMING */) == 0 ? e : nullptr;
  }
  void* create_stream() noexcept override {
    void* s = nullptr;
    return stream_create_(&s, 1 /* CU_STREAM_NON_BLOCKING */) == 0 ? s : nullptr;
  }
  bool wait(void* stream, event e) noexcept override { return stream_wait_(stream, e, 0) == 0; }
  void destroy_stream(void* stream) noexcept override { stream_destroy_(stream); }
  void bind(context ctx) noexcept override { set_current_(ctx); }

 private:
  int (*set_current_)(void*) = nullptr;
  int (*stream_create_)(void**, unsigned) = nullptr;
  int (*stream_wait_)(void*, void*, unsigned) = nullptr;
  int (*stream_destroy_)(void*) = nullptr;
  void* handle_ = nullptr;
  int (*get_current_)(void**) = nullptr;
  int (*create_)(void**, unsigned) = nullptr;
  int (*record_)(void*, void*) = nullptr;
  int (*query_)(void*) = nullptr;
  int (*sync_)(void*) = nullptr;
  int (*elapsed_)(float*, void*, void*) = nullptr;
  int (*destroy_)(void*) = nullptr;
};

}  // namespace diffscope::detail
