// diffscope: the CUPTI source's counters, defined once: the live set its callbacks write, a
// plain copy of it for reports, and the one place they become fields of the results.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include <diffscope/capture/cupti_options.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

/// A counter held as a plain value: cupti_counter_values' cells.
template <class T>
using plain_counter = T;

/// Every counter of the CUPTI source. `Cell` is std::atomic for the live set, cupti_counters
/// (relaxed atomics: written by launching threads and CUPTI's buffer thread), and
/// plain_counter for cupti_counter_values, a copy read at leisure. The launch-side counters
/// sit on their own cache line so the buffer thread does not bounce the line that every
/// launch writes.
template <template <class> class Cell>
struct cupti_counter_set {
  alignas(64) Cell<std::uint64_t> launch_callbacks{0};  ///< launch API entries seen
  Cell<std::uint64_t> launch_nested{0};                 ///< of which nested, same id: not announced
  Cell<std::uint64_t> launch_aliases{0};     ///< of which nested, own id: on_launch_alias
  Cell<std::uint64_t> launch_samples{0};     ///< launch callbacks that were timed
  Cell<std::uint64_t> launch_sampled_ns{0};  ///< time inside the timed ones
  /// `automatic` launch APIs: runtime launches whose driver launch shared their id, and
  /// those without one (a single one keeps the runtime callbacks on for good).
  Cell<std::uint64_t> runtime_verified{0};
  Cell<std::uint64_t> runtime_unmatched{0};
  /// Threads that launched since start(), and the first one's token (cupti_thread_token):
  /// `automatic` drops the runtime callbacks only from the one launching thread.
  Cell<std::uint64_t> launch_threads{0};
  Cell<std::uintptr_t> first_launch_thread{0};
  alignas(64) Cell<std::uint64_t> resource_callbacks{0};
  Cell<std::uint64_t> graph_nodes_created{0};
  Cell<std::uint64_t> graph_nodes_cloned{0};
  Cell<std::uint64_t> contexts_created{0};
  alignas(64) Cell<std::uint64_t> records{0};  ///< all records read from buffers
  Cell<std::uint64_t> kernels{0};
  Cell<std::uint64_t> memcpys{0};
  Cell<std::uint64_t> memsets{0};
  Cell<std::uint64_t> other_records{0};   ///< kinds we do not convert
  Cell<std::uint64_t> bad_timestamps{0};  ///< zero or inverted start/end: not passed on
  Cell<std::uint64_t> buffers_requested{0};
  Cell<std::uint64_t> buffers_completed{0};
  Cell<std::uint64_t> buffers_allocated{0};  ///< fresh allocations (rest are reused)
  Cell<std::uint64_t> buffer_alloc_failures{0};
  Cell<std::uint64_t> dropped{0};                ///< cuptiActivityGetNumDroppedRecords, summed
  Cell<std::uint64_t> callbacks_unavailable{0};  ///< cbids this CUPTI refused to enable
  Cell<bool> runtime_callbacks_dropped{false};   ///< `automatic` turned the runtime callbacks off

  /// Mean time of one launch callback (ours plus the sink's on_launch), from the samples.
  double launch_callback_mean_ns() const noexcept {
    return launch_samples ? double(launch_sampled_ns) / double(launch_samples) : 0.0;
  }
};

using cupti_counters = cupti_counter_set<std::atomic>;
using cupti_counter_values = cupti_counter_set<plain_counter>;

/// Calls `f` with the same counter of each of `sets`, for every counter of
/// cupti_counter_set in turn: f(a.launch_callbacks, b.launch_callbacks), ... The struct
/// names each counter once more here, for copying and resetting them; a test checks that
/// this visits every field exactly once.
template <class F, class... Sets>
inline void for_each_counter(F&& f, Sets&... sets) {
  f(sets.launch_callbacks...);
  f(sets.launch_nested...);
  f(sets.launch_aliases...);
  f(sets.launch_samples...);
  f(sets.launch_sampled_ns...);
  f(sets.runtime_verified...);
  f(sets.runtime_unmatched...);
  f(sets.launch_threads...);
  f(sets.first_launch_thread...);
  f(sets.resource_callbacks...);
  f(sets.graph_nodes_created...);
  f(sets.graph_nodes_cloned...);
  f(sets.contexts_created...);
  f(sets.records...);
  f(sets.kernels...);
  f(sets.memcpys...);
  f(sets.memsets...);
  f(sets.other_records...);
  f(sets.bad_timestamps...);
  f(sets.buffers_requested...);
  f(sets.buffers_completed...);
  f(sets.buffers_allocated...);
  f(sets.buffer_alloc_failures...);
  f(sets.dropped...);
  f(sets.callbacks_unavailable...);
  f(sets.runtime_callbacks_dropped...);
}

/// A plain copy of the live counters, for reports.
inline cupti_counter_values snapshot(const cupti_counters& c) noexcept {
  cupti_counter_values v;
  for_each_counter([](auto& to, const auto& from) { to = from.load(std::memory_order_relaxed); }, v,
                   c);
  return v;
}

/// Every counter back to zero (false), for a new start.
inline void reset_counters(cupti_counters& c) noexcept {
  for_each_counter([](auto& x) { x.store({}, std::memory_order_relaxed); }, c);
}

/// What the counters contribute to the results: our launch callback's cost, the buffers read,
/// which launch APIs had callbacks at the end, and CUPTI's dropped records. `apis`: the launch
/// APIs the source was started with. The callback's cost is the mean measured in the callbacks
/// when they ran, none with launch_apis=none (a figure would describe a callback that never
/// runs), else `calibrated_ns`, the collector's calibration.
inline void report_counters(const cupti_counter_values& c, cupti_launch_apis apis,
                            double calibrated_ns, overhead_stats& overhead, fault_counts& faults) {
  overhead.per_launch_callback_ns = apis == cupti_launch_apis::none ? 0.0
                                    : c.launch_samples > 0          ? c.launch_callback_mean_ns()
                                                                    : calibrated_ns;
  overhead.buffers = c.buffers_completed;
  overhead.launch_callbacks = launch_callbacks_text(apis, c.runtime_callbacks_dropped);
  // The aggregator counts the records it dropped; CUPTI counts those it could not deliver.
  faults.dropped_records = std::max(faults.dropped_records, c.dropped);
}

}  // namespace diffscope::detail
