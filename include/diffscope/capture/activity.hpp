// diffscope: the neutral interface between the GPU activity source (CUPTI) and the
// aggregator. Nothing here includes CUDA or CUPTI, so the aggregator and its tests stay
// host-only; the CUPTI source converts its records into gpu_op and calls a sink.
#pragma once

#include <cstdint>
#include <string_view>

namespace diffscope::detail {

/// `timing`: perf mode's span of one scope on its stream, measured by device events
/// (event_timer.hpp); it belongs to that scope alone, not to its ancestors.
enum class op_kind : std::uint8_t { kernel, memcpy, memset, timing };

/// What an API call that was seen launching work will produce.
enum class launch_kind : std::uint8_t { kernel, memcpy, memset, graph, timing };

/// One completed GPU operation, timestamps in detail::now_ns()'s time base.
struct gpu_op {
  op_kind kind = op_kind::kernel;
  std::uint32_t correlation_id = 0;  ///< matches the launching API call's callback
  std::uint64_t graph_node_id = 0;   ///< 0 unless the op ran as part of a graph
  std::uint64_t start_ns = 0, end_ns = 0;
  std::uint32_t device_id = 0, context_id = 0, stream_id = 0;
  std::uint64_t bytes = 0;  ///< copies and sets
  std::string_view name;    ///< kernel name or "memcpy HtoD" etc.; valid during the call only
};

/// Receives launches (on the launching thread, inside CUPTI's API-enter callback), graph
/// node bookkeeping, and completed operations (on CUPTI's buffer thread). Must not throw.
class activity_sink {
 public:
  virtual ~activity_sink() = default;
  /// A launch-type API call is being made on this thread; `correlation_id` is the id its
  /// GPU operations will carry. Called for runtime and driver API entry alike.
  virtual void on_launch(std::uint32_t correlation_id, launch_kind kind) noexcept = 0;
  /// A driver API launch nested inside a runtime API launch already announced on this
  /// thread: both ids name one launch (records may carry either), so it counts once.
  virtual void on_launch_alias(std::uint32_t nested_id, std::uint32_t outer_id) noexcept = 0;
  /// A graph node was created on this thread (stream capture or explicit graph building).
  virtual void on_graph_node_created(std::uint64_t node_id) noexcept = 0;
  /// A node was copied (graph instantiation, graph clone): the copy inherits attribution.
  virtual void on_graph_node_cloned(std::uint64_t original_id, std::uint64_t clone_id) noexcept = 0;
  /// A completed operation.
  virtual void on_gpu_op(const gpu_op& op) noexcept = 0;
  /// CUPTI reported `count` records dropped.
  virtual void on_dropped(std::uint64_t count) noexcept = 0;
};

}  // namespace diffscope::detail
