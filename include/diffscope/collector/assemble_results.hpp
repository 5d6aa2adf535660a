// diffscope: the results of a collector run, assembled once: the aggregator's snapshot
// completed with the collector's status, environment, memory, overhead and faults.
// Part of collector.hpp's implementation (collector/state.hpp says why it includes it first).
#include <diffscope/collector.hpp>

#ifndef DIFFSCOPE_COLLECTOR_ASSEMBLE_RESULTS_HPP
#define DIFFSCOPE_COLLECTOR_ASSEMBLE_RESULTS_HPP

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/analysis/sample_estimates.hpp>
#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/capture/event_timer.hpp>
#include <diffscope/capture/nvtx_tool.hpp>
#include <diffscope/collector/environment.hpp>
#include <diffscope/collector/state.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

/// Perf mode's event settings that differ from the defaults, as "name=value" words ("" when
/// none): for the dump's status, so two perf-mode figures taken differently say so.
inline std::string perf_settings_text(const collector_options& o) {
  const collector_options d;
  std::string out;
  const auto add = [&out](const std::string& word) { out += (out.empty() ? "" : " ") + word; };
  if (o.perf_stream != d.perf_stream)
    add(o.perf_stream == reinterpret_cast<void*>(2) ? "stream=per-thread" : "stream=custom");
  if (o.perf_side_stream != d.perf_side_stream)
    add(o.perf_side_stream ? "events=side" : "events=inline");
  if (o.perf_share_ns != d.perf_share_ns) add("share_ns=" + std::to_string(o.perf_share_ns));
  if (o.perf_drain != d.perf_drain) add(std::string("drain=") + perf_drain_name(o.perf_drain));
  if (!o.perf_chain_steps) add("chain_steps=off");
  return out;
}

/// The N of "one step in N" these options give: 1 unless every scope is timed; at least 1.
inline std::uint32_t sampled_steps(const collector_options& o) noexcept {
  if (!o.perf_all_scopes) return 1;
  return static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::max<std::uint64_t>(o.perf_sample_steps, 1), 1u << 30));
}

/// Perf mode, scopes sampled in one denoise step of N: a scope timed in fewer calls than it
/// made gets its spans scaled by calls / timed calls (the mean span of a timed call times
/// the calls), so its totals and shares compare with its step's. Marked `estimated`.
inline void scale_sampled_scopes(results& r) {
  for (scope_result& s : r.scopes) {
    gpu_stats& g = s.gpu;
    if (!g.measured || g.timed_calls == 0 || s.host.calls <= g.timed_calls) continue;
    const double f = static_cast<double>(s.host.calls) / static_cast<double>(g.timed_calls);
    g.busy_ms *= f;
    g.occupied_ms *= f;
    g.envelope_ms *= f;
    g.estimated = true;
  }
}

/// Why GPU timing is missing, then why ranges may be ("" when neither).
inline std::string status_reason(const collector_state& st) {
  const std::string gpu = st.gpu_ok ? std::string() : st.gpu_reason;
  if (st.nvtx_note.empty()) return gpu;
  return gpu.empty() ? st.nvtx_note : gpu + "; " + st.nvtx_note;
}

/// Perf mode: what the event timer counted (the running timer's, else the last run's), and
/// the sampled scopes scaled to their calls.
inline void copy_event_timer_counts(results& r, const collector_state& st) {
  const event_timer_counts c = st.timer != nullptr ? st.timer->counts() : st.timer_counts;
  r.overhead.per_launch_callback_ns = 0.0;  // perf mode has no launch callback
  r.overhead.timed_scopes = c.timed;
  r.overhead.per_timed_scope_ns = c.begin_end_ns;
  r.overhead.shared_stamps = c.shared;
  r.overhead.chained_steps = c.chained;
  r.faults.untimed_no_context = c.no_context;
  r.faults.timing_failures = c.failed;
  r.faults.timing_unresolved = c.unresolved;
  r.status.perf_scopes = st.options.perf_all_scopes ? "all" : "steps";
  r.status.perf_sample_steps = sampled_steps(st.options);
  if (r.status.perf_sample_steps > 1) scale_sampled_scopes(r);
}

/// Profile mode: what the CUPTI source counted (capture/counters.hpp), else the calibration's
/// launch-callback cost.
inline void copy_cupti_counts(results& r, const collector_state& st) {
  if (!st.cupti_status.ok) {
    r.overhead.per_launch_callback_ns = st.calib.per_launch_ns;
    return;
  }
  report_counters(snapshot(st.cupti.counters()), st.options.cupti.launch_apis,
                  st.calib.per_launch_ns, r.overhead, r.faults);
}

/// Sampled mode: what the event timer and the CUPTI source counted, the traced steps scaled to
/// every step, and what sampling cost and saved.
inline void copy_sampled_counts(results& r, const collector_state& st) {
  copy_event_timer_counts(r, st);
  r.status.perf_scopes.clear();
  r.status.perf_sample_steps = 1;
  copy_cupti_counts(r, st);
  if (!st.cupti_status.ok) {
    // Events only: no operation figure exists to scale; the status says why.
    r.status.reason = st.gpu_reason;
    r.window.gpu.measured = r.window.outside.measured = r.window.warmups.measured = false;
    return;
  }
  categorise_steps(r.steps, kernel_classifier());
  estimate_from_sample(r);
  sampling_info& s = r.sampling;
  s.rule = st.options.sample.describe();
  s.switches = st.sample_switches.load(std::memory_order_relaxed);
  s.switch_ms = st.sample_switch_ns.load(std::memory_order_relaxed) / 1e6;
  s.saved_callback_ms_estimated =
      static_cast<double>(s.launches_untraced_estimated) * r.overhead.per_launch_callback_ns / 1e6;
  r.faults.sample_switch_failures = st.sample_switch_failures.load(std::memory_order_relaxed);
  for (const step_result& sp : r.steps)
    if (sp.traced && sp.gpu.kernels + sp.gpu.memcpys + sp.gpu.memsets == 0)
      ++r.faults.sampled_steps_empty;
}

/// The results of the current run: the aggregator's snapshot (scopes, steps, stages,
/// requests, kernels, trace, its own faults and counts) with every field the collector knows
/// set here, once. `final_snapshot`: the trace is moved out of the aggregator (at stop).
/// `unclosed`: the ranges still open at stop (final results only).
inline results assemble_results(collector_state& st, bool final_snapshot,
                                const unclosed_report* unclosed = nullptr) {
  results r = st.agg->snapshot(st.gpu_ok, final_snapshot);
  const collector_options& o = st.options;
  r.status.mode = timing_mode_name(o.mode);
  r.status.gpu_timing = st.gpu_ok;
  r.status.reason = status_reason(st);
  r.status.cupti_holder = st.cupti_status.holder;
  r.status.timing_pauses = nvtx_state().timing_pauses.load(std::memory_order_relaxed);
  if (o.mode == timing_mode::profile && o.gpu)
    r.status.cupti_settings = cupti_settings_text(o.cupti);
  if (o.mode == timing_mode::perf && o.gpu) r.status.perf_settings = perf_settings_text(o);
  r.environment = read_environment(st);
  {
    std::lock_guard<std::mutex> g(st.memory_mutex);
    r.memory = st.memory;
  }
  r.overhead.per_range_ns = st.calib.per_range_ns;
  if (o.mode == timing_mode::sampled && st.gpu_ok) {
    copy_sampled_counts(r, st);
  } else if (o.mode == timing_mode::perf) {
    copy_event_timer_counts(r, st);
    // No operation is traced: the window's and the outside work's totals are not measured.
    r.window.gpu.measured = r.window.outside.measured = r.window.warmups.measured = false;
  } else {
    copy_cupti_counts(r, st);
    // Operations were traced: the window's steps by category (SGLang's rules).
    if (st.gpu_ok && r.window.gpu.measured) categorise_steps(r.steps, kernel_classifier());
  }
  if (unclosed != nullptr) {
    r.faults.unclosed_at_stop = unclosed->count;
    r.unclosed_ranges = unclosed->innermost;
  }
  return r;
}

}  // namespace diffscope::detail

#endif  // DIFFSCOPE_COLLECTOR_ASSEMBLE_RESULTS_HPP
