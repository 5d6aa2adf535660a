// diffscope: scope instances: one per scope call that launched GPU work, gathering its
// operations (busy time, counts, intervals) until it is complete, in a pool of reused slots
// whose ids tell a stale id (a late record) from a live one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <utility>
#include <vector>

#include <diffscope/aggregate/accumulators.hpp>
#include <diffscope/aggregate/kernel_table.hpp>
#include <diffscope/aggregate/overlap.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/aggregate/thread_state.hpp>
#include <diffscope/capture/activity.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

struct scope_instance {
  static constexpr std::size_t compact_threshold = 1u << 16;

  std::uint64_t parent = 0;
  std::uint32_t node = no_node;
  bool is_step = false;  // the step's own instance
  std::int64_t step = -1;
  std::int32_t stage = -1;  // set only on the stage's own instance
  std::int32_t request = -1;
  bool is_request = false;  // the request's own instance
  bool excluded = false;    // a warm-up's work: kept out of every table
  bool closed = false;
  bool open_ended = false;  // launched a graph: record count unknown until stop
  bool traced = true;       // sampled mode: opened while operations were traced
  std::uint64_t expected = 0, received = 0, launches = 0;
  std::uint64_t first = std::numeric_limits<std::uint64_t>::max(), last = 0;
  gpu_acc gpu;  // busy, counts, bytes (occupied/envelope computed at finalise)
  std::vector<ns_interval> intervals;  // every operation but communication kernels
  std::vector<ns_interval> comm;       // communication kernels (NCCL, custom all-reduce, ...)
  std::size_t compact_at = compact_threshold;  // next interval count that triggers a merge
  std::vector<std::pair<std::uint32_t, std::uint64_t>> grafted;  // graph scope node -> id
  std::vector<name_busy> step_kernels;  // a step's own instance: its operations by name
  std::uint64_t id = 0;                 // (generation << 32) | (slot + 1); 0 = none
  bool live = false;

  /// One operation of this call (or of a call inside it) that took `dur` ns; `is_comm`: a
  /// communication kernel.
  void add_op(const gpu_op& op, std::uint64_t dur, bool is_comm) {
    first = std::min(first, op.start_ns);
    last = std::max(last, op.end_ns);
    gpu.busy += dur;
    gpu.bytes += op.bytes;
    switch (op.kind) {
      case op_kind::kernel:
        ++gpu.kernels;
        break;
      case op_kind::memcpy:
        ++gpu.memcpys;
        break;
      case op_kind::memset:
        ++gpu.memsets;
        break;
      case op_kind::timing:
        ++gpu.timed;
        break;
    }
    std::vector<ns_interval>& list = is_comm ? comm : intervals;
    list.emplace_back(op.start_ns, op.end_ns);
    if (list.size() >= compact_at) {
      // Merging keeps the union; the next merge waits until the list doubles, so a long
      // scope with disjoint intervals costs amortised O(log n) per operation, not a sort.
      merge_intervals(list);
      compact_at = std::max(compact_threshold, 2 * list.size());
    }
    if (op.graph_node_id == 0) ++received;
  }

  /// Sampled mode: the call's span between two device events, kept apart from its
  /// operations (which only traced calls have).
  void add_span(std::uint64_t dur) {
    gpu.span += dur;
    ++gpu.timed;
    ++received;
  }

  /// The call's GPU figures: busy, counts and bytes as gathered, envelope and occupied
  /// (with communication overlap) computed now, merging the interval lists in place.
  gpu_acc totals() {
    gpu_acc acc = gpu;
    if (traced) {
      acc.traced = 1;
      const double ms = static_cast<double>(gpu.busy) / 1e6;
      acc.busy_sq_ms2 = ms * ms;
    }
    if (last > 0) {
      acc.envelope = last - first;
      if (comm.empty()) {
        acc.occupied = union_length(intervals);
      } else {
        acc.comm = compute_comm_overlap(comm, intervals);  // both merged in place
        acc.occupied = acc.comm.busy + merged_length(intervals) - acc.comm.overlapped;
      }
    }
    return acc;
  }
};

// Instances live in a pool of slots (stable addresses: a deque) reused through a free list;
// an id carries its slot's generation, so a stale id (a late record) finds nothing.
class instance_pool {
 public:
  scope_instance* find(std::uint64_t id) {
    if (id == 0) return nullptr;
    const std::size_t slot = (id & 0xffffffffu) - 1;
    if (slot >= slots_.size()) return nullptr;
    scope_instance& in = slots_[slot];
    return in.live && in.id == id ? &in : nullptr;
  }

  scope_instance& create() {
    std::size_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = slots_.size();
      slots_.emplace_back();
    }
    scope_instance& in = slots_[slot];
    const std::uint64_t generation = (in.id >> 32) + 1;
    std::vector<ns_interval> keep;
    keep.swap(in.intervals);
    in = scope_instance{};
    if (keep.capacity() <= 64) {  // reuse small buffers, give big ones back (a pooled slot
                                  // must not pin a long scope's interval list)
      keep.clear();
      in.intervals.swap(keep);
    }
    in.id = (generation << 32) | (slot + 1);
    in.live = true;
    ++live_instances_;
    return in;
  }

  void release(scope_instance& in) {
    in.live = false;
    in.grafted.clear();
    std::vector<name_busy>().swap(in.step_kernels);  // a free slot pins no step's names
    --live_instances_;
    free_slots_.push_back((in.id & 0xffffffffu) - 1);
  }

  std::size_t live() const noexcept { return live_instances_; }

  /// Calls `f` on every live instance; `f` may release instances, not create them.
  template <class F>
  void for_each_live(F f) {
    for (scope_instance& in : slots_)
      if (in.live) f(in);
  }

 private:
  std::deque<scope_instance> slots_;
  std::vector<std::size_t> free_slots_;
  std::size_t live_instances_ = 0;
};

// Creates instances for every open frame of this thread that has none yet (outermost
// first, so parents exist before children). Returns the innermost instance id. A frame
// without a scope of its own (fold_absorbed) launches into its folded ancestor's.
inline std::uint64_t ensure_instances(thread_state& ts, instance_pool& instances,
                                      const scope_tree& tree) {
  std::uint64_t parent = 0;
  for (scope_frame& f : ts.stack) {
    if (f.node == no_node) continue;
    if (f.fold == fold_absorbed) {
      f.instance = parent;
    } else if (f.instance == 0) {
      scope_instance& in = instances.create();
      in.parent = parent;
      in.node = f.node;
      in.is_step = f.is_step;
      in.step = f.step;
      in.request = f.request;
      in.excluded = f.excluded;
      in.traced = f.traced;
      if (tree.node_at(f.node).cat == category::stage) in.stage = f.stage;
      in.is_request = tree.node_at(f.node).cat == category::request;
      f.instance = in.id;
    }
    parent = f.instance;
  }
  track_top(ts);
  return parent;
}

}  // namespace diffscope::detail
