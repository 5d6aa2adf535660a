// diffscope: the CUPTI side of the collector. Turns CUPTI launch callbacks, graph resource
// callbacks and activity records (kernels, copies, sets) into calls on an activity_sink.
//
// Included by the collector only (it pulls in <cupti.h> and the CUDA runtime API). One
// cupti_source per process: CUPTI's buffer callbacks carry no user pointer, so the running
// source is found through one process-wide pointer, and CUPTI allows one subscriber anyway.
// See docs/cupti.md for what each CUPTI call is for and what was checked on the GPU.
//
// This file subscribes, enables and runs the parts, one file each: cupti_options.hpp (what
// start() is asked), callback_ids.hpp (the launch callbacks it enables), launch_tracking.hpp
// (one launch announced once; `automatic` launch APIs), cupti_buffers.hpp and
// cupti_records.hpp (activity buffers, records into gpu_op), counters.hpp (what it counts),
// cuda_devices.hpp (which devices to wait for at a flush).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>
#include <cupti.h>

#include <diffscope/capture/activity.hpp>
#include <diffscope/capture/callback_ids.hpp>
#include <diffscope/capture/counters.hpp>
#include <diffscope/capture/cuda_devices.hpp>
#include <diffscope/capture/cupti_buffers.hpp>
#include <diffscope/capture/cupti_options.hpp>
#include <diffscope/capture/launch_tracking.hpp>
#include <diffscope/util/clock.hpp>

namespace diffscope::detail {

/// Outcome of start(). When ok is false nothing is left enabled and the program goes on.
struct cupti_start_result {
  bool ok = false;
  std::string reason;  ///< empty when ok; otherwise one line for the dump and the summary
  std::string holder;  ///< the other CUPTI subscriber, when that is why start() failed
};

/// CUPTI's result as text ("CUPTI_ERROR_UNKNOWN" etc.).
inline std::string cupti_result_text(CUptiResult r) {
  const char* s = nullptr;
  if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || s == nullptr) {
    return "CUPTI error " + std::to_string(static_cast<int>(r));
  }
  return s;
}

/// CUPTI's timestamp callback: device timestamps are converted into this clock, so GPU
/// records and host scope times share detail::now_ns()'s time base.
inline std::uint64_t CUPTIAPI cupti_host_timestamp() {
  return now_ns();
}

class cupti_source;

/// Process-wide state: the running source (CUPTI's buffer callbacks have no user pointer),
/// the lock that keeps stop() from returning while a buffer is being read, and the exit hook.
struct cupti_process_state {
  std::atomic<cupti_source*> active{nullptr};
  std::mutex buffer_mutex;  ///< held while a completed buffer is read; never on a launch path
  /// Guards the free-buffer list alone: a buffer request (on the launching thread, when its
  /// buffer is full) must not wait for a completed buffer being read on CUPTI's thread.
  /// Taken after buffer_mutex when both are needed.
  std::mutex free_mutex;
  std::mutex hook_mutex;
  std::function<void()> exit_hook;
  std::atomic<bool> exit_hook_ran{false};
  std::atomic<bool> atexit_from_start{false};
  std::atomic<bool> atexit_from_context{false};
  std::atomic<std::uint32_t> generation{0};  ///< start() count, see cupti_outer_launch
};

inline cupti_process_state& cupti_state() {
  static cupti_process_state state;  // the one function-local static (docs/architecture.md)
  return state;
}

/// Runs the collector's exit hook once. Registered with atexit from the first
/// CONTEXT_CREATED callback (and from start()): atexit handlers run in reverse order of
/// registration and the CUDA runtime registered its own teardown when it initialised,
/// which is before any context exists, so this runs while contexts and CUPTI still work.
inline void cupti_run_exit_hook() {
  auto& st = cupti_state();
  if (st.exit_hook_ran.exchange(true)) return;
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> lock(st.hook_mutex);
    hook = std::move(st.exit_hook);
  }
  if (hook) hook();
}

class cupti_source {
 public:
  cupti_source() = default;
  cupti_source(const cupti_source&) = delete;
  cupti_source& operator=(const cupti_source&) = delete;
  ~cupti_source() { stop(); }

  /// The collector's exit hook: stop and write outputs. Runs once, from an atexit handler
  /// registered after the CUDA runtime's (see cupti_run_exit_hook).
  static void set_exit_hook(std::function<void()> hook) {
    auto& st = cupti_state();
    std::lock_guard<std::mutex> lock(st.hook_mutex);
    st.exit_hook = std::move(hook);
  }

  /// Subscribes to CUPTI and enables launch callbacks, graph resource callbacks and kernel /
  /// copy / set activity records, all reported to `sink` (which must outlive stop()).
  /// Returns ok=false with a reason, leaving nothing enabled, when there is no driver or
  /// GPU, when another tool holds CUPTI (holder named), or when a CUPTI call fails.
  cupti_start_result start(activity_sink& sink, const cupti_options& options = {}) {
    cupti_start_result res;
    if (running_) {
      res.ok = true;
      return res;
    }
    auto& st = cupti_state();
    cupti_source* expected = nullptr;
    if (!st.active.compare_exchange_strong(expected, this)) {
      res.reason = "another diffscope CUPTI source is already running in this process";
      return res;
    }
    // From here on, `active` is this source; fail() gives it back.
    auto fail = [&](std::string reason) {
      st.active.store(nullptr);
      res.ok = false;
      res.reason = std::move(reason);
      return res;
    };

    // The runtime gives the better reason when there is no driver or GPU; do not leave
    // its error behind for the program's next cudaGetLastError.
    const cudaError_t before = cudaPeekAtLastError();
    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices <= 0) {
      if (e != cudaSuccess && before == cudaSuccess) cudaGetLastError();
      if (e != cudaSuccess) {
        return fail(std::string("no CUDA driver or GPU: cudaGetDeviceCount: ") +
                    cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
      }
      return fail("no CUDA driver or GPU: cudaGetDeviceCount found no device");
    }

    reset_counters(counters_);
    new_generation();
    start_generation_ = generation_.load(std::memory_order_relaxed);
    sink_.store(&sink);
    options_ = options;
    if (options_.buffer_bytes < (std::size_t{64} << 10)) options_.buffer_bytes = 64 << 10;
    options_.buffer_bytes = (options_.buffer_bytes + 7) & ~std::size_t{7};
    {
      std::lock_guard<std::mutex> lock(st.free_mutex);
      buffers_.configure(options_);
    }

    // Subscribe first: when another tool holds CUPTI we must not touch its buffer or
    // timestamp callbacks.
    CUptiResult r = CUPTI_SUCCESS;
#if defined(CUpti_SubscriberParams_STRUCT_SIZE)
    char old_name[256] = {};
    CUpti_SubscriberParams params{};
    params.structSize = CUpti_SubscriberParams_STRUCT_SIZE;
    params.subscriberName = options_.subscriber_name.c_str();
    params.oldSubscriberName = old_name;
    params.oldSubscriberSize = sizeof(old_name);
    r = cuptiSubscribe_v2(&subscriber_, &api_callback, this, &params);
#else
    const char* old_name = "";
    r = cuptiSubscribe(&subscriber_, &api_callback, this);
#endif
    if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED) {
      res.holder = old_name[0] ? std::string(old_name) : std::string("another CUPTI tool");
      sink_.store(nullptr);
      return fail("CUPTI held by " + res.holder);
    }
    if (r != CUPTI_SUCCESS) {
      sink_.store(nullptr);
      return fail("cuptiSubscribe_v2 failed: " + cupti_result_text(r));
    }

    auto undo = [&](const char* what, CUptiResult err) {
      disable_activity();
      cuptiUnsubscribe(subscriber_);
      subscriber_ = nullptr;
      sink_.store(nullptr);
      return fail(std::string(what) + " failed: " + cupti_result_text(err));
    };
    if (options_.host_clock) {
      // Before any activity kind is enabled, so every record uses it.
      r = cuptiActivityRegisterTimestampCallback(&cupti_host_timestamp);
      if (r != CUPTI_SUCCESS) return undo("cuptiActivityRegisterTimestampCallback", r);
    }
    {
      // Set on every start: the attribute is process-wide and outlives a run.
      std::uint8_t zeroed = options_.zero_buffers ? 1 : 0;
      std::size_t bytes = sizeof(zeroed);
      r = cuptiActivitySetAttribute(CUPTI_ACTIVITY_ATTR_ZEROED_OUT_ACTIVITY_BUFFER, &bytes,
                                    &zeroed);
      if (r != CUPTI_SUCCESS && options_.zero_buffers)
        return undo("cuptiActivitySetAttribute(ZEROED_OUT_ACTIVITY_BUFFER)", r);
    }
    r = cuptiActivityRegisterCallbacks(&buffer_requested, &buffer_completed);
    if (r != CUPTI_SUCCESS) return undo("cuptiActivityRegisterCallbacks", r);

    runtime_kind_.fill(0);
    driver_kind_.fill(0);
    std::uint64_t enabled = 0;
    const auto apis = options_.launch_apis;
    const bool both = apis == cupti_launch_apis::both || apis == cupti_launch_apis::automatic;
    drop_ready_.store(false, std::memory_order_relaxed);
    verifying_.store(apis == cupti_launch_apis::automatic, std::memory_order_relaxed);
    if (both || apis == cupti_launch_apis::runtime) {
      for (const auto& e2 : cupti_runtime_launch_cbids) {
        if (enable_callback(CUPTI_CB_DOMAIN_RUNTIME_API, e2.cbid)) {
          if (e2.cbid < runtime_kind_.size()) runtime_kind_[e2.cbid] = encode(e2.kind);
          ++enabled;
        }
      }
    }
    if (both || apis == cupti_launch_apis::driver) {
      for (const auto& e2 : cupti_driver_launch_cbids) {
        if (enable_callback(CUPTI_CB_DOMAIN_DRIVER_API, e2.cbid)) {
          if (e2.cbid < driver_kind_.size()) driver_kind_[e2.cbid] = encode(e2.kind);
          ++enabled;
        }
      }
    }
    if (enabled == 0 && apis != cupti_launch_apis::none)
      return undo("cuptiEnableCallback (launch APIs)", last_enable_error_);
    for (CUpti_CallbackId cbid :
         {CUPTI_CBID_RESOURCE_CONTEXT_CREATED, CUPTI_CBID_RESOURCE_GRAPHNODE_CREATED,
          CUPTI_CBID_RESOURCE_GRAPHNODE_CLONED}) {
      if (!enable_callback(CUPTI_CB_DOMAIN_RESOURCE, cbid)) {
        return undo("cuptiEnableCallback (resource)", last_enable_error_);
      }
    }

    r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    if (r != CUPTI_SUCCESS) return undo("cuptiActivityEnable(CONCURRENT_KERNEL)", r);
    enabled_kinds_.push_back(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    if (options_.trace_memcpy) {
      for (auto k : {CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMCPY2}) {
        r = cuptiActivityEnable(k);
        if (r != CUPTI_SUCCESS) return undo("cuptiActivityEnable(MEMCPY)", r);
        enabled_kinds_.push_back(k);
      }
    }
    if (options_.trace_memset) {
      r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
      if (r != CUPTI_SUCCESS) return undo("cuptiActivityEnable(MEMSET)", r);
      enabled_kinds_.push_back(CUPTI_ACTIVITY_KIND_MEMSET);
    }

    // cudaGetDeviceCount above initialised the runtime, so this handler already runs before
    // the runtime's teardown; the one registered at the first context creation is later
    // still. Both are needed: a context made before start() sends no CONTEXT_CREATED.
    if (!st.atexit_from_start.exchange(true)) std::atexit(&cupti_run_exit_hook);
    running_ = true;
    res.ok = true;
    return res;
  }

  /// Hands CUPTI's buffered records to the sink now. With wait_for_gpu, first waits for the
  /// work in flight on every device whose primary context is active, then forces out
  /// partially filled buffers. Only for stop and exit: it synchronises, which measuring
  /// must never do.
  void flush(bool wait_for_gpu) {
    if (!running_) return;
    if (wait_for_gpu) synchronize_devices();
    cuptiActivityFlushAll(wait_for_gpu ? CUPTI_ACTIVITY_FLAG_FLUSH_FORCED : 0);
  }

  /// Disables everything, delivers what is buffered, and unsubscribes. Call flush(true)
  /// first to include work still running on the GPU. Harmless when not running; start()
  /// works again afterwards.
  void stop() {
    std::lock_guard<std::mutex> upkeep(upkeep_mutex_);
    if (!running_) return;
    disable_activity();
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    cuptiUnsubscribe(subscriber_);
    subscriber_ = nullptr;
    auto& st = cupti_state();
    {
      // Wait out a buffer callback in progress on CUPTI's thread; later ones see no source.
      std::lock_guard<std::mutex> lock(st.buffer_mutex);
      std::size_t dropped = 0;
      if (cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped) == CUPTI_SUCCESS && dropped) {
        counters_.dropped.fetch_add(dropped, std::memory_order_relaxed);
        sink_.load()->on_dropped(dropped);
      }
      std::lock_guard<std::mutex> free_lock(st.free_mutex);
      st.active.store(nullptr);
    }
    sink_.store(nullptr);
    running_ = false;
    paused_ = false;
  }

  bool running() const noexcept {
    return running_;
  }

  /// Pauses (true) or resumes tracing: the launch callbacks and every activity kind off, so
  /// launches meanwhile cost what they cost without CUPTI, and nothing they run is recorded
  /// (work launched before the pause still delivers its records). For measuring the
  /// tracing's own cost in one process, and for tracing only the requests you read.
  /// Call between launches (a launch in flight on another thread when the callbacks go off
  /// never sees its exit callback: resuming starts a new generation of the per-thread
  /// nesting state, so it cannot linger). Returns false when a CUPTI call failed.
  bool set_paused(bool paused) {
    std::lock_guard<std::mutex> g(upkeep_mutex_);
    if (!running_ || paused == paused_) return true;
    bool ok = true;
    const std::uint32_t on = paused ? 0 : 1;
    // Resuming: the new generation comes before the first callback can, so the nesting a
    // pause cut short (an enter without its exit) is forgotten by every thread's next call.
    if (!paused) new_generation();
    // The launch callbacks start() enabled: those with a kind in the two tables.
    const auto toggle = [&](CUpti_CallbackDomain domain, const auto& kinds) {
      for (std::size_t cbid = 0; cbid < kinds.size(); ++cbid) {
        if (kinds[cbid] != 0)
          ok &= cuptiEnableCallback(on, subscriber_, domain, static_cast<CUpti_CallbackId>(cbid)) ==
                CUPTI_SUCCESS;
      }
    };
    if (!runtime_dropped()) toggle(CUPTI_CB_DOMAIN_RUNTIME_API, runtime_kind_);
    toggle(CUPTI_CB_DOMAIN_DRIVER_API, driver_kind_);
    for (auto k : enabled_kinds_)
      ok &= (paused ? cuptiActivityDisable(k) : cuptiActivityEnable(k)) == CUPTI_SUCCESS;
    paused_ = paused;
    return ok;
  }
  /// `automatic`: nothing left for drop_redundant_runtime_callbacks() to do this run (the
  /// runtime callbacks are dropped, needed, or kept for a second launching thread).
  bool upkeep_done() const noexcept {
    return !verifying_.load(std::memory_order_acquire) &&
           !drop_ready_.load(std::memory_order_relaxed);
  }
  bool paused() const noexcept {
    return paused_;
  }

  /// `automatic` launch APIs: turns the runtime launch callbacks off once the launches seen
  /// so far proved them redundant (each runtime launch made a driver launch with its id).
  /// Cheap when there is nothing to do (one relaxed load); returns true when it acted. Call
  /// it outside CUPTI's callbacks, between launches (the collector does, at a range's push):
  /// like resuming, it starts a new generation of the per-thread nesting state.
  bool drop_redundant_runtime_callbacks() {
    if (!drop_ready_.load(std::memory_order_relaxed)) return false;
    const std::uintptr_t me = cupti_thread_token();
    // Another thread's pushes wait for the launching thread's without taking the lock.
    if (counters_.first_launch_thread.load(std::memory_order_acquire) != me) return false;
    std::lock_guard<std::mutex> g(upkeep_mutex_);
    if (!drop_ready_.load() || !running_ || runtime_dropped()) return false;
    switch (judge_runtime_drop(counters_, me)) {
      case runtime_drop_verdict::not_from_here:
        return false;
      case runtime_drop_verdict::never:  // for the run: an unmatched launch that raced the
        drop_ready_.store(false);        // last verified one, or a second launching thread
        return false;
      case runtime_drop_verdict::now:
        drop_ready_.store(false);
        break;
    }
    // Dropped before the switch, not after: a runtime call whose exit callback the switch
    // swallows leaves its thread one level deep until the new generation, and a driver
    // launch meanwhile must not be taken for its alias (track_launch_callback).
    counters_.runtime_callbacks_dropped.store(true, std::memory_order_relaxed);
    for (std::size_t cbid = 0; cbid < runtime_kind_.size(); ++cbid) {
      if (runtime_kind_[cbid] != 0)
        cuptiEnableCallback(0, subscriber_, CUPTI_CB_DOMAIN_RUNTIME_API,
                            static_cast<CUpti_CallbackId>(cbid));
    }
    new_generation();
    return true;
  }
  const cupti_counters& counters() const noexcept {
    return counters_;
  }
  cupti_counters& counters() noexcept {
    return counters_;
  }

 private:
  bool runtime_dropped() const noexcept {
    return counters_.runtime_callbacks_dropped.load(std::memory_order_relaxed);
  }

  void new_generation() {
    // Process-wide, so a thread-local left by an earlier source never matches; 0 is "unset".
    auto& st = cupti_state();
    std::uint32_t g = st.generation.fetch_add(1) + 1;
    if (g == 0) g = st.generation.fetch_add(1) + 1;
    generation_.store(g, std::memory_order_relaxed);
  }

  static std::uint8_t encode(launch_kind k) noexcept {
    return static_cast<std::uint8_t>(static_cast<std::uint8_t>(k) + 1);
  }

  bool enable_callback(CUpti_CallbackDomain domain, CUpti_CallbackId cbid) {
    const CUptiResult r = cuptiEnableCallback(1, subscriber_, domain, cbid);
    if (r == CUPTI_SUCCESS) return true;
    // A cbid this CUPTI or driver does not know: count it and go on.
    last_enable_error_ = r;
    counters_.callbacks_unavailable.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  void disable_activity() {
    for (auto k : enabled_kinds_) cuptiActivityDisable(k);
    enabled_kinds_.clear();
  }

  // CUPTI API and resource callbacks. Launch path: one table lookup, one thread-local read,
  // one relaxed counter, the sink's call; no allocation, no lock of ours, no CUPTI call.
  // One launch in 64 (by correlation id) is timed with now_ns() to estimate our own cost.
  //
  // A launch API called from inside another one on the same thread is one launch: only
  // the outermost call is announced. On CUDA 13 the runtime's call (cudaLaunchKernel) and
  // the driver call it makes (cuLaunchKernel) share one correlation id, which the records
  // carry, so the nested call costs the sink nothing; should a nested call ever get an id
  // of its own, it is announced with on_launch_alias(nested, outer).
  static void CUPTIAPI api_callback(void* userdata, CUpti_CallbackDomain domain,
                                    CUpti_CallbackId cbid, const void* cbdata) {
    auto* self = static_cast<cupti_source*>(userdata);
    if (domain == CUPTI_CB_DOMAIN_RUNTIME_API || domain == CUPTI_CB_DOMAIN_DRIVER_API) {
      const auto* cb = static_cast<const CUpti_CallbackData*>(cbdata);
      const bool runtime = domain == CUPTI_CB_DOMAIN_RUNTIME_API;
      const std::uint8_t* table = runtime ? self->runtime_kind_.data() : self->driver_kind_.data();
      const std::size_t size = runtime ? self->runtime_kind_.size() : self->driver_kind_.size();
      if (cbid >= size || table[cbid] == 0) return;
      activity_sink* sink = self->sink_.load(std::memory_order_relaxed);
      if (sink == nullptr) return;
      cupti_outer_launch& outer = cupti_thread_outer_launch();
      const launch_callback_role role =
          track_launch_callback(outer, self->generation_.load(std::memory_order_relaxed), runtime,
                                cb->callbackSite == CUPTI_API_ENTER, cb->correlationId,
                                [self] { return self->runtime_dropped(); });
      auto& c = self->counters_;
      switch (role) {
        case launch_callback_role::exit:
          return;
        case launch_callback_role::exit_outermost_runtime:
          if (self->verifying_.load(std::memory_order_relaxed))
            self->verify_runtime_launch(outer.nested_same);
          return;
        case launch_callback_role::nested_same:
          c.launch_callbacks.fetch_add(1, std::memory_order_relaxed);
          c.launch_nested.fetch_add(1, std::memory_order_relaxed);
          return;
        case launch_callback_role::alias:
        case launch_callback_role::announce:
          c.launch_callbacks.fetch_add(1, std::memory_order_relaxed);
          break;
      }
      const bool timed = (cb->correlationId & 63u) == 0;
      const std::uint64_t t0 = timed ? now_ns() : 0;
      if (role == launch_callback_role::alias) {
        sink->on_launch_alias(cb->correlationId, outer.id);
        c.launch_aliases.fetch_add(1, std::memory_order_relaxed);
      } else {
        sink->on_launch(cb->correlationId, static_cast<launch_kind>(table[cbid] - 1));
        count_launch_thread(outer, self->start_generation_, c, cupti_thread_token());
      }
      if (timed) {
        c.launch_sampled_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
        c.launch_samples.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    if (domain == CUPTI_CB_DOMAIN_RESOURCE) self->resource_callback(cbid, cbdata);
  }

  void verify_runtime_launch(bool nested_same) noexcept {
    switch (judge_runtime_launch(nested_same, counters_, options_.runtime_verify_launches)) {
      case runtime_launch_verdict::needed:
        verifying_.store(false, std::memory_order_relaxed);
        break;
      case runtime_launch_verdict::redundant:
        drop_ready_.store(true, std::memory_order_relaxed);
        verifying_.store(false, std::memory_order_release);  // after drop_ready_: upkeep_done()
        break;
      case runtime_launch_verdict::undecided:
        break;
    }
  }

  void resource_callback(CUpti_CallbackId cbid, const void* cbdata) {
    auto& c = counters_;
    c.resource_callbacks.fetch_add(1, std::memory_order_relaxed);
    activity_sink* sink = sink_.load(std::memory_order_relaxed);
    if (sink == nullptr) return;
    const auto* rd = static_cast<const CUpti_ResourceData*>(cbdata);
    if (cbid == CUPTI_CBID_RESOURCE_CONTEXT_CREATED) {
      c.contexts_created.fetch_add(1, std::memory_order_relaxed);
      auto& st = cupti_state();
      if (!st.atexit_from_context.exchange(true)) std::atexit(&cupti_run_exit_hook);
      return;
    }
    // Every node is passed on: CUpti_GraphData::nodeType is only filled in the
    // CREATE_STARTING callback (it reads 0 in CREATED and CLONED on CUDA 13), and nodes
    // that run nothing simply never show up in a record.
    const auto* gd = static_cast<const CUpti_GraphData*>(rd->resourceDescriptor);
    if (gd == nullptr) return;
    std::uint64_t node = 0;
    if (cbid == CUPTI_CBID_RESOURCE_GRAPHNODE_CREATED) {
      if (cuptiGetGraphNodeId(gd->node, &node) != CUPTI_SUCCESS) return;
      c.graph_nodes_created.fetch_add(1, std::memory_order_relaxed);
      sink->on_graph_node_created(node);
    } else if (cbid == CUPTI_CBID_RESOURCE_GRAPHNODE_CLONED) {
      std::uint64_t original = 0;
      if (cuptiGetGraphNodeId(gd->node, &node) != CUPTI_SUCCESS ||
          cuptiGetGraphNodeId(gd->originalNode, &original) != CUPTI_SUCCESS) {
        return;
      }
      c.graph_nodes_cloned.fetch_add(1, std::memory_order_relaxed);
      sink->on_graph_node_cloned(original, node);
    }
  }

  // CUPTI's buffer callbacks: the running source's pool (cupti_buffers.hpp) under the locks.
  static void CUPTIAPI buffer_requested(std::uint8_t** buffer, std::size_t* size,
                                        std::size_t* max_records) {
    *buffer = nullptr;
    *size = 0;
    *max_records = 0;
    auto& st = cupti_state();
    std::lock_guard<std::mutex> lock(st.free_mutex);
    cupti_source* self = st.active.load();
    if (self == nullptr) return;  // CUPTI counts the records it cannot store as dropped
    self->buffers_.request(buffer, size, self->counters_);
  }

  static void CUPTIAPI buffer_completed(CUcontext ctx, std::uint32_t stream_id,
                                        std::uint8_t* buffer, std::size_t size, std::size_t valid) {
    auto& st = cupti_state();
    std::lock_guard<std::mutex> lock(st.buffer_mutex);
    cupti_source* self = st.active.load();
    if (self == nullptr) {
      std::free(buffer);
      return;
    }
    self->buffers_.complete(ctx, stream_id, buffer, size, valid, *self->sink_.load(),
                            self->counters_);
    std::lock_guard<std::mutex> free_lock(st.free_mutex);
    self->buffers_.recycle(buffer, size);
  }

  // What every launch callback reads, on the object's first cache line (the object is
  // 64-byte aligned: cupti_counters is), beside fields written only by start, stop and upkeep.
  std::atomic<activity_sink*> sink_{nullptr};  // read by launch callbacks on any thread
  std::atomic<std::uint32_t> generation_{0};   // bumped by start() and by resuming
  std::uint32_t start_generation_ = 0;         // generation_ at start(): launch_threads' epoch
  std::atomic<bool> verifying_{false};         // `automatic`, runtime callbacks still on
  std::atomic<bool> drop_ready_{false};        // proved redundant; dropped at the next upkeep
  bool running_ = false;
  bool paused_ = false;
  std::mutex upkeep_mutex_;  // set_paused against the runtime drop
  cupti_options options_;
  CUpti_SubscriberHandle subscriber_ = nullptr;
  CUptiResult last_enable_error_ = CUPTI_SUCCESS;
  std::vector<CUpti_ActivityKind> enabled_kinds_;
  cupti_buffer_pool buffers_;  // its free list guarded by cupti_state().free_mutex
  // Launch kind + 1 per callback id (0: not a launch). Filled in start(), read-only while
  // running, so the launch callback reads them without a lock.
  std::array<std::uint8_t, CUPTI_RUNTIME_TRACE_CBID_SIZE> runtime_kind_{};
  std::array<std::uint8_t, CUPTI_DRIVER_TRACE_CBID_SIZE> driver_kind_{};
  cupti_counters counters_;
};
static_assert(alignof(cupti_source) >= 64, "the launch callback's fields share the first line");

}  // namespace diffscope::detail
