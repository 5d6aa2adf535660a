// diffscope: the CUPTI side of the collector. Turns CUPTI launch callbacks, graph resource
// callbacks and activity records (kernels, copies, sets) into calls on an activity_sink.
//
// Included by the collector only (it pulls in <cupti.h> and the CUDA runtime API). One
// cupti_source per process: CUPTI's buffer callbacks carry no user pointer, so the running
// source is found through one process-wide pointer, and CUPTI allows one subscriber anyway.
// See docs/cupti.md for what each CUPTI call is for and what was checked on the GPU.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cuda_runtime_api.h>
#include <cupti.h>

#include <diffscope/capture/activity.hpp>
#include <diffscope/util/clock.hpp>

namespace diffscope::detail {

/// Which launch APIs get a callback (what attributes a record to the scope that launched it).
/// `both` is right on every CUDA version: before CUDA 13 a runtime launch and the driver call
/// it makes could have different correlation ids, with records carrying the runtime's.
/// `automatic` (the default) starts with both and, once `runtime_verify_launches` runtime
/// launches in a row each made a driver launch with the same id (CUDA 13), turns the runtime
/// callbacks off: the driver's see every launch, with two callbacks a launch instead of four
/// (in a PyTorch loop that measured as an eighth to two fifths less added time, on the noisy
/// H200 host; docs/modes.md). `driver`, `runtime` and `none` (nothing attributed: CUPTI's
/// activity tracing alone) are for measuring.
enum class cupti_launch_apis : std::uint8_t { automatic, both, driver, runtime, none };
inline constexpr const char* cupti_launch_apis_names[] = {"auto", "both", "driver", "runtime",
                                                          "none"};

/// What start() is asked to do.
struct cupti_options {
  std::size_t buffer_bytes = std::size_t{8} << 20;  ///< one CUPTI activity buffer
  std::size_t max_free_buffers = 4;  ///< completed buffers kept for reuse (bounded memory)
  bool trace_memcpy = true;          ///< MEMCPY and MEMCPY2 (peer) records
  bool trace_memset = true;          ///< MEMSET records
  bool host_clock = true;            ///< device timestamps in detail::now_ns()'s time base
  /// Hand CUPTI buffers we zeroed ourselves, on CUPTI's thread after reading them (calloc'd
  /// when new), instead of letting CUPTI zero each one on the launching thread
  /// (CUPTI_ACTIVITY_ATTR_ZEROED_OUT_ACTIVITY_BUFFER).
  bool zero_buffers = false;
  cupti_launch_apis launch_apis = cupti_launch_apis::automatic;
  /// `automatic`: same-id runtime-then-driver launches needed before the runtime callbacks go.
  std::uint32_t runtime_verify_launches = 256;
  std::string subscriber_name = "diffscope";  ///< what other CUPTI tools are told holds CUPTI
};

/// The options that differ from the defaults, as "name=value" words ("" when none): for
/// the dump's status, so a figure taken with diagnostic settings says so.
inline std::string cupti_settings_text(const cupti_options& o) {
  const cupti_options d;
  std::string out;
  const auto add = [&out](const std::string& word) { out += (out.empty() ? "" : " ") + word; };
  if (o.launch_apis != d.launch_apis)
    add(std::string("launch_apis=") + cupti_launch_apis_names[static_cast<int>(o.launch_apis)]);
  if (o.zero_buffers != d.zero_buffers) add(o.zero_buffers ? "zero_buffers=1" : "zero_buffers=0");
  if (o.host_clock != d.host_clock) add(o.host_clock ? "host_clock=1" : "host_clock=0");
  if (o.buffer_bytes != d.buffer_bytes) add("buffer_kb=" + std::to_string(o.buffer_bytes >> 10));
  return out;
}

/// Which launch APIs had callbacks at the end of a run, for the dump's overhead section.
inline const char* launch_callbacks_text(cupti_launch_apis apis, bool runtime_dropped) noexcept {
  if (apis == cupti_launch_apis::automatic) return runtime_dropped ? "driver" : "runtime+driver";
  if (apis == cupti_launch_apis::both) return "runtime+driver";
  return cupti_launch_apis_names[static_cast<int>(apis)];
}

/// Outcome of start(). When ok is false nothing is left enabled and the program goes on.
struct cupti_start_result {
  bool ok = false;
  std::string reason;  ///< empty when ok; otherwise one line for the dump and the summary
  std::string holder;  ///< the other CUPTI subscriber, when that is why start() failed
};

/// Live counters (relaxed atomics: written by launching threads and CUPTI's buffer thread).
/// The launch-side counters sit on their own cache line so the buffer thread does not
/// bounce the line that every launch writes.
struct cupti_counters {
  alignas(64) std::atomic<std::uint64_t> launch_callbacks{0};  ///< launch API entries seen
  std::atomic<std::uint64_t> launch_nested{0};      ///< of which nested, same id: not announced
  std::atomic<std::uint64_t> launch_aliases{0};     ///< of which nested, own id: on_launch_alias
  std::atomic<std::uint64_t> launch_samples{0};     ///< launch callbacks that were timed
  std::atomic<std::uint64_t> launch_sampled_ns{0};  ///< time inside the timed ones
  /// `automatic` launch APIs: runtime launches whose driver launch shared their id, and
  /// those without one (a single one keeps the runtime callbacks on for good).
  std::atomic<std::uint64_t> runtime_verified{0};
  std::atomic<std::uint64_t> runtime_unmatched{0};
  /// Threads that launched since start(), and the first one's token (cupti_thread_token):
  /// `automatic` drops the runtime callbacks only from the one launching thread.
  std::atomic<std::uint64_t> launch_threads{0};
  std::atomic<std::uintptr_t> first_launch_thread{0};
  alignas(64) std::atomic<std::uint64_t> resource_callbacks{0};
  std::atomic<std::uint64_t> graph_nodes_created{0};
  std::atomic<std::uint64_t> graph_nodes_cloned{0};
  std::atomic<std::uint64_t> contexts_created{0};
  alignas(64) std::atomic<std::uint64_t> records{0};  ///< all records read from buffers
  std::atomic<std::uint64_t> kernels{0};
  std::atomic<std::uint64_t> memcpys{0};
  std::atomic<std::uint64_t> memsets{0};
  std::atomic<std::uint64_t> other_records{0};   ///< kinds we do not convert
  std::atomic<std::uint64_t> bad_timestamps{0};  ///< zero or inverted start/end: not passed on
  std::atomic<std::uint64_t> buffers_requested{0};
  std::atomic<std::uint64_t> buffers_completed{0};
  std::atomic<std::uint64_t> buffers_allocated{0};  ///< fresh allocations (rest are reused)
  std::atomic<std::uint64_t> buffer_alloc_failures{0};
  std::atomic<std::uint64_t> dropped{0};  ///< cuptiActivityGetNumDroppedRecords, summed
  std::atomic<std::uint64_t> callbacks_unavailable{0};  ///< cbids this CUPTI refused to enable
  std::atomic<bool> runtime_dropped{false};  ///< `automatic` turned the runtime callbacks off
};

/// A plain copy of cupti_counters for reports.
struct cupti_counter_values {
  std::uint64_t launch_callbacks = 0, launch_nested = 0, launch_aliases = 0, launch_samples = 0,
                launch_sampled_ns = 0, runtime_verified = 0, runtime_unmatched = 0,
                launch_threads = 0;
  bool runtime_callbacks_dropped = false;  ///< `automatic` turned the runtime callbacks off
  std::uint64_t resource_callbacks = 0, graph_nodes_created = 0, graph_nodes_cloned = 0,
                contexts_created = 0;
  std::uint64_t records = 0, kernels = 0, memcpys = 0, memsets = 0, other_records = 0,
                bad_timestamps = 0;
  std::uint64_t buffers_requested = 0, buffers_completed = 0, buffers_allocated = 0,
                buffer_alloc_failures = 0, dropped = 0, callbacks_unavailable = 0;
  /// Mean time of one launch callback (ours plus the sink's on_launch), from the samples.
  double launch_callback_mean_ns() const noexcept {
    return launch_samples ? double(launch_sampled_ns) / double(launch_samples) : 0.0;
  }
};

inline cupti_counter_values snapshot(const cupti_counters& c) noexcept {
  constexpr auto r = std::memory_order_relaxed;
  cupti_counter_values v;
  v.launch_callbacks = c.launch_callbacks.load(r);
  v.launch_nested = c.launch_nested.load(r);
  v.launch_aliases = c.launch_aliases.load(r);
  v.launch_samples = c.launch_samples.load(r);
  v.launch_sampled_ns = c.launch_sampled_ns.load(r);
  v.runtime_verified = c.runtime_verified.load(r);
  v.runtime_unmatched = c.runtime_unmatched.load(r);
  v.launch_threads = c.launch_threads.load(r);
  v.runtime_callbacks_dropped = c.runtime_dropped.load(r);
  v.resource_callbacks = c.resource_callbacks.load(r);
  v.graph_nodes_created = c.graph_nodes_created.load(r);
  v.graph_nodes_cloned = c.graph_nodes_cloned.load(r);
  v.contexts_created = c.contexts_created.load(r);
  v.records = c.records.load(r);
  v.kernels = c.kernels.load(r);
  v.memcpys = c.memcpys.load(r);
  v.memsets = c.memsets.load(r);
  v.other_records = c.other_records.load(r);
  v.bad_timestamps = c.bad_timestamps.load(r);
  v.buffers_requested = c.buffers_requested.load(r);
  v.buffers_completed = c.buffers_completed.load(r);
  v.buffers_allocated = c.buffers_allocated.load(r);
  v.buffer_alloc_failures = c.buffer_alloc_failures.load(r);
  v.dropped = c.dropped.load(r);
  v.callbacks_unavailable = c.callbacks_unavailable.load(r);
  return v;
}

/// "memcpy HtoD" etc. for CUpti_ActivityMemcpyKind; string literals, valid forever.
inline std::string_view memcpy_kind_name(std::uint32_t copy_kind) noexcept {
  switch (copy_kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
      return "memcpy HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
      return "memcpy DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOA:
      return "memcpy HtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOH:
      return "memcpy AtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOA:
      return "memcpy AtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOD:
      return "memcpy AtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOA:
      return "memcpy DtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
      return "memcpy DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH:
      return "memcpy HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP:
      return "memcpy PtoP";
    default:
      return "memcpy";
  }
}

/// Converts one CUPTI activity record into a gpu_op and hands it to the sink. The buffer
/// callback calls exactly this for every record, so tests that build records by hand run
/// the same code as CUPTI's buffers. Records with a zero or inverted start/end (forced
/// flush of unfinished work) are counted in bad_timestamps and not passed on: a GPU time
/// that was not measured is absent, never invented.
inline void ingest_activity_record(const CUpti_Activity* record, activity_sink& sink,
                                   cupti_counters& counters) noexcept {
  constexpr auto r = std::memory_order_relaxed;
  counters.records.fetch_add(1, r);
  gpu_op op;
  switch (record->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      op.kind = op_kind::kernel;
      op.correlation_id = k->correlationId;
      op.graph_node_id = k->graphNodeId;
      op.start_ns = k->start;
      op.end_ns = k->end;
      op.device_id = k->deviceId;
      op.context_id = k->contextId;
      op.stream_id = k->streamId;
      op.name = k->name ? std::string_view(k->name) : std::string_view("<unnamed kernel>");
      counters.kernels.fetch_add(1, r);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      op.kind = op_kind::memcpy;
      op.correlation_id = m->correlationId;
      op.graph_node_id = m->graphNodeId;
      op.start_ns = m->start;
      op.end_ns = m->end;
      op.device_id = m->deviceId;
      op.context_id = m->contextId;
      op.stream_id = m->streamId;
      op.bytes = m->bytes;
      op.name = memcpy_kind_name(m->copyKind);
      counters.memcpys.fetch_add(1, r);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY2: {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpyPtoP4*>(record);
      op.kind = op_kind::memcpy;
      op.correlation_id = m->correlationId;
      op.graph_node_id = m->graphNodeId;
      op.start_ns = m->start;
      op.end_ns = m->end;
      op.device_id = m->deviceId;
      op.context_id = m->contextId;
      op.stream_id = m->streamId;
      op.bytes = m->bytes;
      op.name = memcpy_kind_name(CUPTI_ACTIVITY_MEMCPY_KIND_PTOP);
      counters.memcpys.fetch_add(1, r);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
      op.kind = op_kind::memset;
      op.correlation_id = m->correlationId;
      op.graph_node_id = m->graphNodeId;
      op.start_ns = m->start;
      op.end_ns = m->end;
      op.device_id = m->deviceId;
      op.context_id = m->contextId;
      op.stream_id = m->streamId;
      op.bytes = m->bytes;
      op.name = "memset";
      counters.memsets.fetch_add(1, r);
      break;
    }
    default:
      counters.other_records.fetch_add(1, r);
      return;
  }
  // Counted here and still handed on: the sink counts zero and inverted timestamps apart,
  // reports them as faults and keeps them out of every timing.
  if (op.start_ns == 0 || op.end_ns == 0 || op.end_ns < op.start_ns)
    counters.bad_timestamps.fetch_add(1, r);
  sink.on_gpu_op(op);
}

/// Launch-type API calls and what they launch. Runtime and driver entries alike: Triton and
/// PyTorch's own kernels go through the driver API, everything compiled with nvcc through
/// the runtime. Entries are (cbid, kind); a cbid this CUPTI does not know is skipped.
struct cupti_launch_cbid {
  CUpti_CallbackId cbid;
  launch_kind kind;
};

inline constexpr cupti_launch_cbid cupti_runtime_launch_cbids[] = {
    // kernels
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunch_v3020, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunch_ptsz_v7000, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_ptsz_v7000, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_v11060, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_ptsz_v11060, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchCooperativeKernel_v9000, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchCooperativeKernel_ptsz_v9000, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchCooperativeKernelMultiDevice_v9000, launch_kind::kernel},
#if CUPTI_API_VERSION >= 130000
    // CUDA 13: what <<<...>>> compiles to.
    {CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_v13000, launch_kind::kernel},
    {CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_ptsz_v13000, launch_kind::kernel},
#endif
    // graphs
    {CUPTI_RUNTIME_TRACE_CBID_cudaGraphLaunch_v10000, launch_kind::graph},
    {CUPTI_RUNTIME_TRACE_CBID_cudaGraphLaunch_ptsz_v10000, launch_kind::graph},
    // copies
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2D_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToArray_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DToArray_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromArray_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DFromArray_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyArrayToArray_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DArrayToArray_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToSymbol_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromSymbol_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToArrayAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromArrayAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DToArrayAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DFromArrayAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToSymbolAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromSymbolAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3D_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DAsync_v3020, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyPeer_v4000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyPeerAsync_v4000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DPeer_v4000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DPeerAsync_v4000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2D_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToArray_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DToArray_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromArray_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DFromArray_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyArrayToArray_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DArrayToArray_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToSymbol_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromSymbol_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToArrayAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromArrayAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DToArrayAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DFromArrayAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyToSymbolAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyFromSymbolAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3D_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DPeer_ptds_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DPeerAsync_ptsz_v7000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyBatchAsync_v12080, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyBatchAsync_ptsz_v12080, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DBatchAsync_v12080, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DBatchAsync_ptsz_v12080, launch_kind::memcpy},
#if CUPTI_API_VERSION >= 130000
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyBatchAsync_v13000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyBatchAsync_ptsz_v13000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DBatchAsync_v13000, launch_kind::memcpy},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy3DBatchAsync_ptsz_v13000, launch_kind::memcpy},
#endif
    // sets
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset_v3020, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset2D_v3020, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemsetAsync_v3020, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset2DAsync_v3020, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset3D_v3020, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset3DAsync_v3020, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset_ptds_v7000, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset2D_ptds_v7000, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemsetAsync_ptsz_v7000, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset2DAsync_ptsz_v7000, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset3D_ptds_v7000, launch_kind::memset},
    {CUPTI_RUNTIME_TRACE_CBID_cudaMemset3DAsync_ptsz_v7000, launch_kind::memset},
};

inline constexpr cupti_launch_cbid cupti_driver_launch_cbids[] = {
    // kernels
    {CUPTI_DRIVER_TRACE_CBID_cuLaunch, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchGrid, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchGridAsync, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel_ptsz, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx_ptsz, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchCooperativeKernel, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchCooperativeKernel_ptsz, launch_kind::kernel},
    {CUPTI_DRIVER_TRACE_CBID_cuLaunchCooperativeKernelMultiDevice, launch_kind::kernel},
    // graphs
    {CUPTI_DRIVER_TRACE_CBID_cuGraphLaunch, launch_kind::graph},
    {CUPTI_DRIVER_TRACE_CBID_cuGraphLaunch_ptsz, launch_kind::graph},
    // copies
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoD, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoH, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoD, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoA, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoD, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoA, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoH, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoA, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2D, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2DUnaligned, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3D, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoDAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoHAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoDAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoAAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoHAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2DAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoD_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoDAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoH_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoHAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoD_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoDAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoH_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoHAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoD_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoA_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoA_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2D_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2DUnaligned_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2DAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3D_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoA_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoAAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyPeer, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyPeerAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DPeer, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DPeerAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoD_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoH_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoD_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoA_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoD_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoA_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoH_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoA_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2D_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2DUnaligned_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3D_v2_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyPeer_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DPeer_ptds, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAsync_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoAAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyAtoHAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyHtoDAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoHAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoDAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy2DAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyPeerAsync_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DPeerAsync_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyBatchAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyBatchAsync_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DBatchAsync, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DBatchAsync_ptsz, launch_kind::memcpy},
#if CUPTI_API_VERSION >= 130000
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyBatchAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpyBatchAsync_v2_ptsz, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DBatchAsync_v2, launch_kind::memcpy},
    {CUPTI_DRIVER_TRACE_CBID_cuMemcpy3DBatchAsync_v2_ptsz, launch_kind::memcpy},
#endif
    // sets (cuMemSetAccess and cuMemSetMemPool are not sets and are not listed)
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD8_v2, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD16_v2, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD32_v2, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D8_v2, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D16_v2, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D32_v2, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD8Async, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD16Async, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD32Async, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D8Async, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D16Async, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D32Async, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD8_v2_ptds, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD16_v2_ptds, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD32_v2_ptds, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D8_v2_ptds, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D16_v2_ptds, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D32_v2_ptds, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD8Async_ptsz, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD16Async_ptsz, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD32Async_ptsz, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D8Async_ptsz, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D16Async_ptsz, launch_kind::memset},
    {CUPTI_DRIVER_TRACE_CBID_cuMemsetD2D32Async_ptsz, launch_kind::memset},
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

/// Whether device `device`'s primary context is active, asked of the driver through the
/// runtime's entry-point query (no libcuda link needed, never creates a context). Empty when
/// the driver cannot be asked.
inline std::optional<bool> primary_context_active(int device) {
  using get_state_fn = CUresult(CUDAAPI*)(CUdevice, unsigned int*, int*);
  using device_get_fn = CUresult(CUDAAPI*)(CUdevice*, int);
  struct entry_points {
    get_state_fn get_state = nullptr;
    device_get_fn device_get = nullptr;
  };
  static const entry_points fns = [] {
    entry_points e;
    void* get_state = nullptr;
    void* device_get = nullptr;
    cudaDriverEntryPointQueryResult q1{}, q2{};
    const cudaError_t before = cudaPeekAtLastError();
    if (cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &get_state, 12000,
                                         cudaEnableDefault, &q1) == cudaSuccess &&
        q1 == cudaDriverEntryPointSuccess &&
        cudaGetDriverEntryPointByVersion("cuDeviceGet", &device_get, 12000, cudaEnableDefault,
                                         &q2) == cudaSuccess &&
        q2 == cudaDriverEntryPointSuccess) {
      e.get_state = reinterpret_cast<get_state_fn>(get_state);
      e.device_get = reinterpret_cast<device_get_fn>(device_get);
    } else if (before == cudaSuccess) {
      cudaGetLastError();
    }
    return e;
  }();
  if (fns.get_state == nullptr) return std::nullopt;
  CUdevice dev{};
  unsigned int flags = 0;
  int is_active = 0;
  if (fns.device_get(&dev, device) != CUDA_SUCCESS ||
      fns.get_state(dev, &flags, &is_active) != CUDA_SUCCESS)
    return std::nullopt;
  return is_active != 0;
}

class cupti_source;

/// What one more outermost runtime launch says about the runtime launch callbacks
/// (`automatic` launch APIs).
enum class runtime_launch_verdict { undecided, redundant, needed };

/// One outermost runtime launch has returned; `nested_same`: a driver launch with its
/// correlation id ran inside it. Counts it in `runtime_verified` or `runtime_unmatched`. One
/// launch without such a driver launch (another id, a driver call we do not table, an early
/// error), or any nested launch with an id of its own, means the runtime callbacks are
/// `needed`; `needed_launches` verified ones in a row make them `redundant`. Lock-free:
/// launching threads call it at once.
inline runtime_launch_verdict judge_runtime_launch(bool nested_same, cupti_counters& c,
                                                   std::uint64_t needed_launches) noexcept {
  constexpr auto r = std::memory_order_relaxed;
  if (!nested_same || c.launch_aliases.load(r) != 0) {
    c.runtime_unmatched.fetch_add(1, r);
    return runtime_launch_verdict::needed;
  }
  if (c.runtime_verified.fetch_add(1, r) + 1 < needed_launches)
    return runtime_launch_verdict::undecided;
  // Another thread's unmatched launch may have raced this one: it wins.
  return c.runtime_unmatched.load(r) == 0 ? runtime_launch_verdict::redundant
                                          : runtime_launch_verdict::needed;
}

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

/// The launch API calls this thread is inside: how deep, and the outermost one's id. The
/// generation is the start() that wrote it, so an enter or exit callback lost to a start()
/// or stop() cannot leave a stale depth behind.
struct cupti_outer_launch {
  std::uint32_t generation = 0;
  std::uint32_t depth = 0;
  std::uint32_t id = 0;
  bool runtime = false;             ///< the outermost call is a runtime API
  bool nested_same = false;         ///< a driver launch inside it shared its id
  std::uint32_t counted_start = 0;  ///< the start() whose launch_threads count this thread
};

inline cupti_outer_launch& cupti_thread_outer_launch() noexcept {
  thread_local cupti_outer_launch outer;
  return outer;
}

/// This thread, as a number no other live thread has.
inline std::uintptr_t cupti_thread_token() noexcept {
  return reinterpret_cast<std::uintptr_t>(&cupti_thread_outer_launch());
}

/// Counts the calling thread among those that launched since the start `start_generation`
/// (once per start; one thread-local compare after that).
inline void count_launch_thread(cupti_outer_launch& outer, std::uint32_t start_generation,
                                cupti_counters& c, std::uintptr_t me) noexcept {
  if (outer.counted_start == start_generation) return;
  outer.counted_start = start_generation;
  if (c.launch_threads.fetch_add(1, std::memory_order_acq_rel) == 0)
    c.first_launch_thread.store(me, std::memory_order_release);
}

/// Whether `automatic` turns the runtime launch callbacks off now, from thread `me`.
enum class runtime_drop_verdict : std::uint8_t {
  now,            ///< proved redundant, and `me` is the only thread that launched
  not_from_here,  ///< proved, but `me` is not the launching thread: wait for its next push
  never,          ///< an unmatched launch, an alias, or a second launching thread
};

/// Switching the runtime callbacks off while another thread is inside a runtime launch can
/// cost that thread its later launches (unattributed records in the eight-thread GPU test,
/// never with `both` or `driver`); from the one launching thread, between its calls, no
/// runtime call is cut short.
inline runtime_drop_verdict judge_runtime_drop(const cupti_counters& c,
                                               std::uintptr_t me) noexcept {
  if (c.runtime_unmatched.load(std::memory_order_relaxed) != 0 ||
      c.launch_aliases.load(std::memory_order_relaxed) != 0 ||
      c.launch_threads.load(std::memory_order_acquire) != 1)
    return runtime_drop_verdict::never;
  return c.first_launch_thread.load(std::memory_order_acquire) == me
             ? runtime_drop_verdict::now
             : runtime_drop_verdict::not_from_here;
}

/// What one launch API callback is, given the thread's nesting state (which it updates).
enum class launch_callback_role : std::uint8_t {
  exit,                    ///< an exit that ends nothing we track
  exit_outermost_runtime,  ///< the exit of the outermost call, a runtime API
  nested_same,             ///< a call inside the outermost one with its id: already announced
  alias,                   ///< a call inside the outermost one with an id of its own
  announce,                ///< the outermost call: a launch to announce
};

/// The nesting rules of api_callback, apart from CUPTI so that CPU tests name them. A new
/// generation (a start, a resume, the runtime callbacks dropped) forgets the nesting but keeps
/// the last id: a call caught in the switch is still known as announced. `runtime_dropped`
/// is read only when a driver call looks nested, with an id of its own, in a runtime call:
/// once the runtime callbacks are off (or going off) that runtime call is one whose exit
/// callback was lost in the switch, so the driver call is a launch of its own, not an alias
/// of a launch that may be long finished.
template <class DroppedFn>
launch_callback_role track_launch_callback(cupti_outer_launch& outer, std::uint32_t generation,
                                           bool runtime, bool enter, std::uint32_t id,
                                           DroppedFn runtime_dropped) noexcept {
  if (outer.generation != generation)
    outer = {generation, 0, outer.id, false, false, outer.counted_start};
  if (!enter) {
    return outer.depth > 0 && --outer.depth == 0 && runtime
               ? launch_callback_role::exit_outermost_runtime
               : launch_callback_role::exit;
  }
  bool inside = ++outer.depth > 1;
  if (outer.id == id && id != 0) {
    // The runtime call's nested driver call: same id (CUDA 13). Not inside only when the
    // runtime call began before a new generation (its callbacks went off while it ran).
    if (inside) outer.nested_same = true;
    return launch_callback_role::nested_same;
  }
  if (inside && !runtime && outer.runtime && runtime_dropped()) {
    outer.depth = 1;
    inside = false;
  }
  if (inside) return launch_callback_role::alias;
  outer.id = id;
  outer.runtime = runtime;
  outer.nested_same = false;
  return launch_callback_role::announce;
}

class cupti_source {
 public:
  cupti_source() = default;
  cupti_source(const cupti_source&) = delete;
  cupti_source& operator=(const cupti_source&) = delete;
  ~cupti_source() {
    stop();
    for (auto* b : free_buffers_) std::free(b);
  }

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

    reset_counters();
    new_generation();
    start_generation_ = generation_.load(std::memory_order_relaxed);
    sink_.store(&sink);
    options_ = options;
    if (options_.buffer_bytes < (std::size_t{64} << 10)) options_.buffer_bytes = 64 << 10;
    options_.buffer_bytes = (options_.buffer_bytes + 7) & ~std::size_t{7};
    {
      std::lock_guard<std::mutex> lock(st.free_mutex);
      // Buffers of another size from an earlier run are not reused.
      // Nor unzeroed ones when this run promises CUPTI zeroed buffers.
      if (!free_buffers_.empty() && (free_buffer_bytes_ != options_.buffer_bytes ||
                                     free_buffers_zeroed_ != options_.zero_buffers)) {
        for (auto* b : free_buffers_) std::free(b);
        free_buffers_.clear();
      }
      free_buffer_bytes_ = options_.buffer_bytes;
      free_buffers_zeroed_ = options_.zero_buffers;
      free_buffers_.reserve(options_.max_free_buffers);  // no allocation in buffer callbacks
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
    counters_.runtime_dropped.store(true, std::memory_order_relaxed);
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
    return counters_.runtime_dropped.load(std::memory_order_relaxed);
  }

  void reset_counters() noexcept {
    for (auto* a : {&counters_.launch_callbacks,
                    &counters_.launch_nested,
                    &counters_.launch_aliases,
                    &counters_.launch_samples,
                    &counters_.launch_sampled_ns,
                    &counters_.runtime_verified,
                    &counters_.runtime_unmatched,
                    &counters_.launch_threads,
                    &counters_.resource_callbacks,
                    &counters_.graph_nodes_created,
                    &counters_.graph_nodes_cloned,
                    &counters_.contexts_created,
                    &counters_.records,
                    &counters_.kernels,
                    &counters_.memcpys,
                    &counters_.memsets,
                    &counters_.other_records,
                    &counters_.bad_timestamps,
                    &counters_.buffers_requested,
                    &counters_.buffers_completed,
                    &counters_.buffers_allocated,
                    &counters_.buffer_alloc_failures,
                    &counters_.dropped,
                    &counters_.callbacks_unavailable}) {
      a->store(0, std::memory_order_relaxed);
    }
    counters_.first_launch_thread.store(0, std::memory_order_relaxed);
    counters_.runtime_dropped.store(false, std::memory_order_relaxed);
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

  // Waits for every device with an active primary context. Queried through the driver's
  // cuDevicePrimaryCtxGetState (via the runtime's entry-point lookup, so no -lcuda) so that
  // a device the program never used is not given a context here. The calling thread's
  // current device and the runtime's last error are restored.
  void synchronize_devices() {
    const cudaError_t before = cudaPeekAtLastError();
    int count = 0, current = -1;
    bool any_error = cudaGetDeviceCount(&count) != cudaSuccess;
    any_error |= cudaGetDevice(&current) != cudaSuccess;
    for (int d = 0; d < count; ++d) {
      if (!primary_context_active(d).value_or(d == current)) continue;
      any_error |= cudaSetDevice(d) != cudaSuccess;
      any_error |= cudaDeviceSynchronize() != cudaSuccess;
    }
    if (current >= 0) any_error |= cudaSetDevice(current) != cudaSuccess;
    if (any_error && before == cudaSuccess) cudaGetLastError();
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

  static void CUPTIAPI buffer_requested(std::uint8_t** buffer, std::size_t* size,
                                        std::size_t* max_records) {
    *buffer = nullptr;
    *size = 0;
    *max_records = 0;
    auto& st = cupti_state();
    std::lock_guard<std::mutex> lock(st.free_mutex);
    cupti_source* self = st.active.load();
    if (self == nullptr) return;  // CUPTI counts the records it cannot store as dropped
    auto& c = self->counters_;
    c.buffers_requested.fetch_add(1, std::memory_order_relaxed);
    if (!self->free_buffers_.empty()) {
      *buffer = self->free_buffers_.back();
      self->free_buffers_.pop_back();
    } else {
      // calloc's fresh pages are zero without a pass over them; CUPTI wants 8-byte alignment.
      *buffer = static_cast<std::uint8_t*>(self->options_.zero_buffers
                                               ? std::calloc(1, self->free_buffer_bytes_)
                                               : std::aligned_alloc(8, self->free_buffer_bytes_));
      if (*buffer == nullptr) {
        c.buffer_alloc_failures.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      c.buffers_allocated.fetch_add(1, std::memory_order_relaxed);
    }
    *size = self->free_buffer_bytes_;
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
    auto& c = self->counters_;
    activity_sink& sink = *self->sink_.load();
    CUpti_Activity* record = nullptr;
    while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
      ingest_activity_record(record, sink, c);
    }
    std::size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS && dropped) {
      c.dropped.fetch_add(dropped, std::memory_order_relaxed);
      sink.on_dropped(dropped);
    }
    c.buffers_completed.fetch_add(1, std::memory_order_relaxed);
    // Zeroed here, on CUPTI's thread, rather than by CUPTI on the next launching thread.
    if (self->options_.zero_buffers) std::memset(buffer, 0, size);
    std::lock_guard<std::mutex> free_lock(st.free_mutex);
    // Reserved in start(), so push_back does not allocate while below the cap.
    if (size == self->free_buffer_bytes_ &&
        self->free_buffers_.size() < self->options_.max_free_buffers) {
      self->free_buffers_.push_back(buffer);
    } else {
      std::free(buffer);
    }
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
  std::vector<std::uint8_t*> free_buffers_;  // guarded by cupti_state().free_mutex
  std::size_t free_buffer_bytes_ = 0;
  bool free_buffers_zeroed_ = false;  // the listed buffers are all zero
  // Launch kind + 1 per callback id (0: not a launch). Filled in start(), read-only while
  // running, so the launch callback reads them without a lock.
  std::array<std::uint8_t, CUPTI_RUNTIME_TRACE_CBID_SIZE> runtime_kind_{};
  std::array<std::uint8_t, CUPTI_DRIVER_TRACE_CBID_SIZE> driver_kind_{};
  cupti_counters counters_;
};
static_assert(alignof(cupti_source) >= 64, "the launch callback's fields share the first line");

}  // namespace diffscope::detail
