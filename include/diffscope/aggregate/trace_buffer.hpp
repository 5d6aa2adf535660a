// diffscope: the raw ranges and operations kept for the Chrome trace (keep_trace), up to
// the cap; past it they are counted as dropped, not kept.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <diffscope/aggregate/instances.hpp>
#include <diffscope/aggregate/kernel_table.hpp>
#include <diffscope/aggregate/launch_table.hpp>
#include <diffscope/aggregate/names.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/aggregate/thread_state.hpp>
#include <diffscope/capture/activity.hpp>
#include <diffscope/results.hpp>
#include <diffscope/scope.hpp>

namespace diffscope::detail {

/// Guarded by the aggregator's mutex.
class trace_buffer {
 public:
  trace_buffer(bool enabled, std::uint64_t cap, std::uint64_t origin_ns) {
    trace_.enabled = enabled;
    trace_.cap = cap;
    trace_.origin_ns = origin_ns;
  }

  /// A range of scope `n` opened as frame `f` on thread number `thread`, closed at `t_ns`.
  void add_range(const scope_node& n, const scope_frame& f, std::uint64_t thread,
                 std::uint64_t t_ns, const name_table& names) {
    if (trace_.ranges.size() + trace_.ops.size() < trace_.cap) {
      trace_range tr;
      tr.name = names.name_of(n.name_id);
      if (f.is_step) tr.name = std::string(denoise_step_prefix) + std::to_string(f.step);
      tr.path = n.path;
      tr.domain = domain_label(n.domain);
      tr.cat = n.cat;
      tr.thread = thread;
      tr.start_ns = f.start_ns;
      tr.end_ns = t_ns;
      tr.step = f.step;
      trace_.ranges.push_back(std::move(tr));
    } else {
      ++trace_dropped_;
    }
  }

  /// An operation (`op_name`: its interned name) and its launch `p`.
  void add_op(const gpu_op& op, std::uint32_t op_name, const pending_launch& p,
              const name_table& names, const scope_tree& tree, instance_pool& instances) {
    if (trace_.ranges.size() + trace_.ops.size() >= trace_.cap) {
      ++trace_dropped_;
      return;
    }
    trace_op t;
    t.name = names.name_of(op_name);
    t.kind = kind_label(op.kind);
    if (const scope_instance* in = instances.find(p.instance)) {
      t.scope_path = tree.node_at(in->node).path;
      t.step = in->step;
    }
    t.device = op.device_id;
    t.stream = op.stream_id;
    t.correlation_id = op.correlation_id;
    t.start_ns = op.start_ns;
    t.end_ns = op.end_ns;
    t.bytes = op.bytes;
    t.launch_thread = p.thread;
    t.launch_ns = p.launch_ns;
    trace_.ops.push_back(std::move(t));
  }

  /// Ranges and operations past the cap.
  std::uint64_t dropped() const noexcept { return trace_dropped_; }

  /// Copies the events into `out`, or moves them (`take`: this buffer then keeps none).
  void copy_to(trace_events& out, bool take) {
    if (take) {
      out = std::move(trace_);
      trace_.ranges = {};
      trace_.ops = {};
    } else {
      out = trace_;
    }
  }

 private:
  trace_events trace_;
  std::uint64_t trace_dropped_ = 0;
};

}  // namespace diffscope::detail
