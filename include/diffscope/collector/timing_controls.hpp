// diffscope: the timing controls: set_timing_stream() and set_timing_paused(), applied to this
// copy of the collector and forwarded to libdiffscope_inject.so when that is the NVTX tool.
// Part of collector.hpp's implementation (collector/state.hpp says why it includes it first).
#include <diffscope/collector.hpp>

#ifndef DIFFSCOPE_COLLECTOR_TIMING_CONTROLS_HPP
#define DIFFSCOPE_COLLECTOR_TIMING_CONTROLS_HPP

#include <dlfcn.h>

#include <atomic>
#include <mutex>

#include <cuda_runtime_api.h>

#include <diffscope/capture/event_timer.hpp>
#include <diffscope/capture/nvtx_tool.hpp>
#include <diffscope/collector/state.hpp>
#include <diffscope/config.hpp>
#include <diffscope/scope.hpp>

namespace diffscope {

namespace detail {
/// Calls `call(f)` with the function `symbol` of libdiffscope_inject.so when the process's
/// NVTX tool is that library (diffscope run) rather than this copy of the collector.
template <class Fn, class Call>
void forward_to_injection(const char* symbol, Call call) noexcept {
#ifndef DIFFSCOPE_DISABLE
  (void)domain();  // NVTX loads the injection library at the first NVTX call: make one
#endif
  const char* path = config::raw("NVTX_INJECTION64_PATH");
  if (path == nullptr) return;
  if (void* lib = ::dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD)) {
    if (auto f = reinterpret_cast<Fn>(::dlsym(lib, symbol))) call(f);
    ::dlclose(lib);  // NOLOAD took a reference: give it back (NVTX keeps its own)
  }
}
}  // namespace detail

inline void set_timing_stream(cudaStream_t stream) noexcept {
  detail::timing_stream_override() = static_cast<void*>(stream);
  detail::forward_to_injection<void (*)(void*)>(
      "diffscope_set_timing_stream", [stream](auto f) { f(static_cast<void*>(stream)); });
}

namespace detail {
/// What set_timing_paused() does in this copy of the collector.
inline void apply_timing_pause(bool paused) noexcept {
  nvtx_tool_state& nv = nvtx_state();
  if (!nv.timing_paused.exchange(paused, std::memory_order_relaxed) && paused)
    nv.timing_pauses.fetch_add(1, std::memory_order_relaxed);
  try {
    auto& st = collector_globals();
    std::lock_guard<std::recursive_mutex> g(st.mutex);
    // Sampled mode: resuming leaves CUPTI off outside the sampled steps.
    if (st.active && st.cupti_status.ok)
      st.cupti.set_paused(paused || !st.sample_tracing.load(std::memory_order_relaxed));
  } catch (...) {
    // A failed lock leaves tracing as it was: the program runs on.
  }
}
}  // namespace detail

inline void set_timing_paused(bool paused) noexcept {
  detail::apply_timing_pause(paused);
  detail::forward_to_injection<void (*)(int)>("diffscope_set_timing_paused",
                                              [paused](auto f) { f(paused ? 1 : 0); });
}

}  // namespace diffscope

#endif  // DIFFSCOPE_COLLECTOR_TIMING_CONTROLS_HPP
