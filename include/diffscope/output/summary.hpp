// diffscope: the console summary. Plain text tables with aligned columns and units in the
// headers; GPU numbers that were not measured print as "-", never as zero. No CUDA, CUPTI
// or JSON library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <diffscope/analysis/figures.hpp>
#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/output/hotspots_report.hpp>
#include <diffscope/results.hpp>
#include <diffscope/util/short_names.hpp>
#include <diffscope/util/stats.hpp>
#include <diffscope/util/text_table.hpp>
#include <diffscope/version.hpp>

namespace diffscope {

namespace detail {

inline std::string ms_or_dash(const gpu_stats& g, double v) {
  return g.measured ? (g.estimated ? "~" : "") + fixed(v, 2) : "-";
}

inline std::string gpu_timing_line(const collector_status& s) {
  if (s.gpu_timing && s.mode == "sampled")
    return "GPU timing: stages and steps timed by device events in every call; operations traced "
           "in a sample of denoise steps (sampled mode, no added synchronisation)";
  if (s.gpu_timing && s.mode == "perf")
    return "GPU timing: measured per timed scope (perf mode: device events on the scope's "
           "stream, no per-kernel data, no added synchronisation)";
  if (s.gpu_timing) return "GPU timing: measured (device timestamps, no added synchronisation)";
  std::string l = "GPU timing: unavailable (";
  l += s.reason.empty() ? std::string("reason unknown") : printable(s.reason);
  l += ") - host timings only";
  return l;
}

/// Sampled mode's line: the rule and which steps were traced.
inline std::string sampling_line(const sampling_info& s) {
  return "sampled mode: " + traced_steps_text(s) +
         "; stage and step times are device-event spans (exact), figures from operations "
         "scaled from the traced steps are estimates, marked ~\n";
}

/// Index of the nearest enclosing denoise-step scope of scopes[i] (itself excluded), or -1.
inline std::int64_t enclosing_step(const std::vector<scope_result>& scopes, std::size_t i) {
  std::int64_t p = scopes[i].parent;
  while (p >= 0 && static_cast<std::size_t>(p) < scopes.size()) {
    if (scopes[static_cast<std::size_t>(p)].cat == category::denoise_step) return p;
    p = scopes[static_cast<std::size_t>(p)].parent;
  }
  return -1;
}

/// Most columns of a scope's name in the summary (cut in the middle past it).
inline constexpr std::size_t summary_name_columns = 60;
/// Deepest scope the summary ranks, unless it lists every scope (0: top level).
inline constexpr int summary_scope_depth = 6;
/// Loops of up to this many denoise steps list every step; longer ones the first two, the
/// last and the summary_slowest_steps slowest (every step with DIFFSCOPE_SUMMARY_SCOPES=all).
inline constexpr std::size_t summary_all_steps_up_to = 12;
inline constexpr std::size_t summary_slowest_steps = 4;

}  // namespace detail

/// Top kernels the summary lists by default.
inline constexpr std::size_t default_summary_kernels = 10;
/// Scopes the summary lists by default (DIFFSCOPE_SUMMARY_SCOPES).
inline constexpr std::size_t default_summary_scopes = 25;
/// `top_scopes` that lists every scope, at every depth.
inline constexpr std::size_t all_summary_scopes = static_cast<std::size_t>(-1);

/// The summary as text: header, stages, denoise steps (a long loop's first, last and slowest),
/// scopes (the `top_scopes` with the most
/// time, to depth detail::summary_scope_depth, in tree order), top kernels, categories and
/// fast-path families, faults, overhead.
inline std::string summary_text(const results& r, std::size_t top_kernels = default_summary_kernels,
                                std::size_t top_scopes = default_summary_scopes) {
  using detail::fixed;
  using detail::ms_or_dash;
  using detail::text_table;
  std::string out;
  out +=
      "diffscope " DIFFSCOPE_VERSION_STRING " summary - mode: " + detail::printable(r.status.mode) +
      ", wall " + fixed(r.wall_ms, 2) + " ms\n";
  out += detail::gpu_timing_line(r.status) + "\n";
  const bool sampled = r.status.mode == "sampled";
  if (sampled && r.sampling.active) {
    out += detail::sampling_line(r.sampling);
  } else if (sampled && r.status.gpu_timing) {
    out += "sampled mode: no operation traced (" +
           (r.status.reason.empty() ? std::string("reason unknown")
                                    : detail::printable(r.status.reason)) +
           "); stage and step times are device-event spans\n";
  }
  if (!r.status.perf_scopes.empty()) {
    out += "perf mode timed: " +
           std::string(r.status.perf_scopes == "all" ? "every scope" : "stages and denoise steps");
    if (r.status.perf_sample_steps > 1) {
      out += ", the scopes inside denoise steps in one step of " +
             std::to_string(r.status.perf_sample_steps) +
             " (their GPU totals scaled to every call: estimates, marked ~)";
    }
    out += "\n";
  }
  if (r.status.timing_pauses > 0) {
    out += "GPU timing was paused " + std::to_string(r.status.timing_pauses) +
           " time(s): scopes that ran while paused have host timings only\n";
  }
  if (!r.status.cupti_settings.empty()) {
    out +=
        "CUPTI settings (not the defaults): " + detail::printable(r.status.cupti_settings) + "\n";
  }
  if (!r.status.perf_settings.empty()) {
    out += "Perf-mode settings (not the defaults): " + detail::printable(r.status.perf_settings) +
           "\n";
  }
  if (!r.status.cupti_holder.empty()) {
    out += "CUPTI held by: " + detail::printable(r.status.cupti_holder) + "\n";
  }
  if (!r.environment.gpu_name.empty()) {
    out += "GPU: " + detail::printable(r.environment.gpu_name) + " (" +
           std::to_string(r.environment.device_count) + " device(s))\n";
  }

  if (!r.requests.empty()) {
    // Over the requests that count; the tables below cover the window.
    const detail::request_figures fig = detail::figures_of_requests(r);
    out += "\nRequests: " + std::to_string(fig.e2e.size()) + " counted, " +
           std::to_string(fig.warmups) + " warm-up (in no table); per request, dump ms\n";
    if (!fig.e2e.empty()) {
      text_table t({"", "median", "min", "max"});
      const auto row = [&](const std::string& name, const std::vector<double>& v) {
        const detail::spread3 s = detail::spread_of(v);
        t.add({name, fixed(s.median, 2), fixed(s.min, 2), fixed(s.max, 2)});
      };
      row("end to end (host)", fig.e2e);
      for (const auto& [name, v] : fig.stages) row(detail::printable(name), v);
      t.render(out);
    }
    out += "Window: " + detail::window_text(r) + ", in every table below";
    if (r.window.covers == window_last && fig.e2e.size() > 1)
      out += " (DIFFSCOPE_WINDOW=requests: all of them)";
    out += "\n";
    // Warm-ups are requests: without any there is no work outside.
    const std::string outside = detail::outside_text(r.window);
    if (!outside.empty()) out += "Outside requests: " + outside + ", in no table\n";
  }

  if (!r.stages.empty()) {
    text_table t({"stage", "calls", "host ms", "GPU envelope ms", "busy ms", "dump ms"});
    for (const stage_result& s : r.stages) {
      t.add({detail::printable(s.name), std::to_string(s.calls), fixed(s.host_ms, 2),
             ms_or_dash(s.gpu, s.gpu.envelope_ms), ms_or_dash(s.gpu, s.gpu.busy_ms),
             fixed(detail::dump_duration_ms(s.host_ms, s.gpu), 2) +
                 (detail::uses_gpu_span(s.gpu) || detail::uses_gpu_envelope(s.gpu) ? ""
                                                                                   : " (host)")});
    }
    out += sampled ? "\nStages (dump ms: what the perf dump reports, span else GPU envelope else "
                     "host)\n"
                   : "\nStages (dump ms: what the perf dump reports, GPU envelope else host)\n";
    t.render(out);
  }

  if (!r.steps.empty()) {
    // A long loop lists its first steps, its last and its slowest, then their spread: the
    // steps of a loop are alike, and the dump has every one.
    const auto step_ms = [](const step_result& s) {
      if (detail::uses_gpu_span(s.gpu)) return s.gpu.span_ms;
      return s.gpu.measured ? s.gpu.envelope_ms : s.host_ms;
    };
    std::vector<std::size_t> shown;
    const bool cut =
        r.steps.size() > detail::summary_all_steps_up_to && top_scopes != all_summary_scopes;
    if (cut) {
      std::vector<std::size_t> by_time(r.steps.size());
      for (std::size_t i = 0; i < by_time.size(); ++i) by_time[i] = i;
      std::stable_sort(by_time.begin(), by_time.end(), [&](std::size_t a, std::size_t b) {
        return step_ms(r.steps[a]) > step_ms(r.steps[b]);
      });
      std::vector<bool> pick(r.steps.size(), false);
      pick[0] = pick[1] = pick[r.steps.size() - 1] = true;
      for (std::size_t i = 0; i < detail::summary_slowest_steps; ++i) pick[by_time[i]] = true;
      for (std::size_t i = 0; i < pick.size(); ++i)
        if (pick[i]) shown.push_back(i);
    } else {
      for (std::size_t i = 0; i < r.steps.size(); ++i) shown.push_back(i);
    }
    text_table t(sampled
                     ? std::vector<std::string>{"step", "host ms", "GPU span ms", "busy ms"}
                     : std::vector<std::string>{"step", "host ms", "GPU envelope ms", "busy ms"},
                 0);
    for (std::size_t i : shown) {
      const step_result& s = r.steps[i];
      const std::string label =
          std::to_string(s.step) + (s.calls > 1 ? " (x" + std::to_string(s.calls) + ")" : "");
      if (sampled)  // every step has its span; only traced ones have operations of their own
        t.add({label, fixed(s.host_ms, 2),
               detail::uses_gpu_span(s.gpu) ? fixed(s.gpu.span_ms, 2) : "-",
               s.traced ? ms_or_dash(s.gpu, s.gpu.busy_ms) : "not traced"});
      else
        t.add({label, fixed(s.host_ms, 2), ms_or_dash(s.gpu, s.gpu.envelope_ms),
               ms_or_dash(s.gpu, s.gpu.busy_ms)});
    }
    if (cut) {
      std::vector<double> v;
      for (const step_result& s : r.steps) v.push_back(step_ms(s));
      const detail::spread3 sp = detail::spread_of(std::move(v));
      out += "\nDenoise steps (" + std::to_string(r.steps.size()) +
             "; the first two, the last and the " + std::to_string(detail::summary_slowest_steps) +
             " slowest)\n";
      t.render(out);
      out += "  every step, " +
             std::string(detail::uses_gpu_span(r.steps.front().gpu) ? "GPU span"
                         : r.steps.front().gpu.measured             ? "GPU envelope"
                                                                    : "host") +
             ": median " + fixed(sp.median, 2) + " ms, min " + fixed(sp.min, 2) + ", max " +
             fixed(sp.max, 2) + "; " + std::to_string(r.steps.size() - shown.size()) +
             " more steps: see the dump (DIFFSCOPE_SUMMARY_SCOPES=all lists every step)\n";
    } else {
      out += "\nDenoise steps\n";
      t.render(out);
    }
  }

  if (!r.scopes.empty()) {
    // Share: GPU busy when measured (additive, it is where GPU time goes), else host time;
    // of the enclosing denoise step for scopes inside one, else of the run total.
    double total_busy = 0;
    for (const kernel_result& k : r.kernels) total_busy += k.total_ms;
    const auto basis = [](const scope_result& s) {
      return s.gpu.measured ? s.gpu.busy_ms : s.host.sum_ms;
    };
    // The scopes with the most time (inclusive, so a parent ranks before its children) to
    // a depth, listed in tree order; every scope when `top_scopes` is all_summary_scopes.
    const bool every = top_scopes == all_summary_scopes;
    std::vector<std::size_t> shown;
    for (std::size_t i = 0; i < r.scopes.size(); ++i)
      if (every || r.scopes[i].depth <= detail::summary_scope_depth) shown.push_back(i);
    if (shown.size() > top_scopes) {
      std::stable_sort(shown.begin(), shown.end(), [&](std::size_t a, std::size_t b) {
        return basis(r.scopes[a]) > basis(r.scopes[b]);
      });
      shown.resize(top_scopes);
      std::sort(shown.begin(), shown.end());
    }
    std::vector<bool> listed(r.scopes.size(), false);
    for (std::size_t i : shown) listed[i] = true;
    // Names relative to the parent's where it is listed and they repeat it; no two alike.
    std::vector<std::string> names, parents, paths;
    for (std::size_t i : shown) {
      const scope_result& s = r.scopes[i];
      names.push_back(detail::printable(s.name));
      const bool parent_listed = s.parent >= 0 &&
                                 static_cast<std::size_t>(s.parent) < r.scopes.size() &&
                                 listed[static_cast<std::size_t>(s.parent)];
      parents.push_back(parent_listed
                            ? detail::printable(r.scopes[static_cast<std::size_t>(s.parent)].name)
                            : std::string());
      paths.push_back(s.path);
    }
    const std::vector<std::string> labels =
        detail::tree_labels(names, parents, paths, detail::summary_name_columns);
    text_table t({"scope", "calls", "host total ms", "busy ms", "envelope ms", "share %", "of"});
    for (std::size_t row = 0; row < shown.size(); ++row) {
      const std::size_t i = shown[row];
      const scope_result& s = r.scopes[i];
      const std::int64_t step = detail::enclosing_step(r.scopes, i);
      double denom = 0;
      if (step >= 0) {
        denom = basis(r.scopes[static_cast<std::size_t>(step)]);
      } else {
        denom = s.gpu.measured ? total_busy : r.wall_ms;
      }
      const std::string share = denom > 0 ? fixed(100.0 * basis(s) / denom, 1) : "-";
      t.add({std::string(static_cast<std::size_t>(std::max(0, s.depth)) * 2, ' ') + labels[row],
             std::to_string(s.host.calls), fixed(s.host.sum_ms, 2),
             ms_or_dash(s.gpu, s.gpu.busy_ms), ms_or_dash(s.gpu, s.gpu.envelope_ms), share,
             step >= 0 ? "step" : "total"});
    }
    const std::size_t more = r.scopes.size() - shown.size();
    out += "\nScopes (";
    if (more > 0)
      out += "the " + std::to_string(shown.size()) + " of " + std::to_string(r.scopes.size()) +
             " with the most time, to depth " + std::to_string(detail::summary_scope_depth) + "; ";
    out +=
        "share: GPU busy when measured, else host time; of the enclosing denoise "
        "step, else of the total)\n";
    t.render(out);
    if (more > 0)
      out += "  " + std::to_string(more) +
             " more scopes: see the dump (DIFFSCOPE_SUMMARY_SCOPES=all lists every scope)\n";
  }

  if (!r.kernels.empty() && top_kernels > 0) {
    double total = 0;
    for (const kernel_result& k : r.kernels) total += k.total_ms;
    const std::size_t n = std::min(top_kernels, r.kernels.size());
    std::vector<std::string> shown, keys;
    for (std::size_t i = 0; i < n; ++i) {
      shown.push_back(detail::short_kernel_name(r.kernels[i].name, r.kernels[i].kind));
      keys.push_back(r.kernels[i].name);
    }
    const std::vector<std::string> labels = detail::distinct_labels(shown, keys, 60);
    text_table t({"kernel", "count", "total ms", "mean us", "share %"});
    for (std::size_t i = 0; i < n; ++i) {
      const kernel_result& k = r.kernels[i];
      const double mean_us = k.count > 0 ? 1000.0 * k.total_ms / static_cast<double>(k.count) : 0;
      const std::string est = k.estimated ? "~" : "";
      t.add({labels[i], est + std::to_string(k.count), est + fixed(k.total_ms, 2),
             fixed(mean_us, 1), total > 0 ? fixed(100.0 * k.total_ms / total, 1) : "-"});
    }
    out += "\nTop kernels (" + std::to_string(n) + " of " + std::to_string(r.kernels.size()) +
           ", by total GPU time" +
           (sampled ? std::string("; ~: scaled from the traced steps, estimates") : "") + ")\n";
    t.render(out);
  }

  // Categories and fast-path families over every kernel of the window: analysed here, from
  // results.kernels (analysis/hotspots.hpp).
  if (!r.kernels.empty() && top_kernels > 0) out += "\n" + hotspots_text(analyze_hotspots(r), 0);

  const fault_counts& f = r.faults;
  const std::pair<const char*, std::uint64_t> faults[] = {
      {"dropped_records", f.dropped_records},
      {"zero_timestamps", f.zero_timestamps},
      {"inverted_timestamps", f.inverted_timestamps},
      {"unattributed_records", f.unattributed_records},
      {"unbalanced_pops", f.unbalanced_pops},
      {"unclosed_at_stop", f.unclosed_at_stop},
      {"late_records", f.late_records},
      {"trace_events_dropped", f.trace_events_dropped},
      {"untimed_no_context", f.untimed_no_context},
      {"timing_failures", f.timing_failures},
      {"timing_unresolved", f.timing_unresolved},
      {"sample_switch_failures", f.sample_switch_failures},
      {"sampled_steps_empty", f.sampled_steps_empty},
      {"ranges_folded", f.ranges_folded},
      {"names_folded", f.names_folded},
  };
  std::string fault_list;
  for (const auto& [name, n] : faults) {
    if (n == 0) continue;
    if (!fault_list.empty()) fault_list += ", ";
    fault_list += std::string(name) + "=" + std::to_string(n);
  }
  if (fault_list.empty() && !r.unclosed_ranges.empty()) fault_list = "unclosed_at_stop";
  out += "\nfaults: " + (fault_list.empty() ? std::string("none") : fault_list) + "\n";
  if (f.unclosed_at_stop > 0 || !r.unclosed_ranges.empty()) {
    out += "  " + std::to_string(f.unclosed_at_stop) +
           " range(s) still open at stop; innermost open range per thread:\n";
    for (const unclosed_range& u : r.unclosed_ranges) {
      out += "    thread " + std::to_string(u.thread) + ": " +
             (u.path.empty() ? std::string("(unknown)") : detail::printable(u.path));
      if (u.step >= 0) out += " (step " + std::to_string(u.step) + ")";
      out += ", " + std::to_string(u.open) + " open" + (u.thread_exited ? ", thread ended" : "") +
             "\n";
    }
  }
  if (f.ranges_folded > 0) {
    out +=
        "  " + std::to_string(f.ranges_folded) +
        " range call(s) without a scope of their own: past " + std::to_string(r.status.max_scopes) +
        " distinct scopes (DIFFSCOPE_MAX_SCOPES), new ones went into their parent's \"" +
        folded_scope_name + "\" scope (" + (f.names_folded_estimated ? "about " : "") +
        std::to_string(f.names_folded) + " distinct names); ids or shapes in range names do this\n";
  }

  const overhead_stats& o = r.overhead;
  if (sampled) {
    const sampling_info& sm = r.sampling;
    out += "sampling: " + std::to_string(sm.switches) + " tracing switches (" +
           fixed(sm.switch_ms, 2) + " ms), " + std::to_string(sm.launches_traced) +
           " launches traced, ~" + std::to_string(sm.launches_untraced_estimated) +
           " not traced (~" + fixed(sm.saved_callback_ms_estimated, 2) +
           " ms of launch callbacks saved)\n";
  }
  if (r.status.mode == "perf") {
    out += "overhead: " + std::to_string(o.ranges) + " ranges, " + std::to_string(o.timed_scopes) +
           " timed with device events; " + fixed(o.per_timed_scope_ns, 0) +
           " ns per timed scope, " + fixed(o.per_range_ns, 0) +
           " ns per range; no launch callbacks\n";
    return out;
  }
  out += "overhead: " + std::to_string(o.ranges) + " ranges, " + std::to_string(o.callbacks) +
         " callbacks, " + std::to_string(o.records) + " records in " + std::to_string(o.buffers) +
         " buffers; " + fixed(o.per_launch_callback_ns, 0) + " ns per launch callback, " +
         fixed(o.per_range_ns, 0) + " ns per range\n";
  return out;
}

/// Prints summary_text(r, top_kernels, top_scopes) to `out` (stderr when null).
inline void print_summary(std::FILE* out, const results& r,
                          std::size_t top_kernels = default_summary_kernels,
                          std::size_t top_scopes = default_summary_scopes) {
  const std::string text = summary_text(r, top_kernels, top_scopes);
  std::fwrite(text.data(), 1, text.size(), out != nullptr ? out : stderr);
  std::fflush(out != nullptr ? out : stderr);
}

}  // namespace diffscope
