// Repeated runs compared by median with a noise-aware verdict per row (docs/compare.md): the
// table of `diffscope compare --base A... --new B...`, and the verdict `diffscope ab` decides on.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <diffscope/util/stats.hpp>

#include "../cli.hpp"
#include "compare.hpp"
#include "dump_reader.hpp"

namespace diffscope::cli {

struct noise_options {
  double rel_tol_pct = 2.0;  ///< smallest relative difference that matters, % of base median
  double abs_tol_ms = 0.1;   ///< smallest absolute difference that matters
};

/// The value of --rel-tol or --abs-tol (compare, report): a number >= 0.
inline double parse_tolerance(const std::string& opt, const std::string& text) {
  return parse_number(opt, text, 0, "0");
}

struct noise_verdict {
  double base_median = 0, new_median = 0, diff = 0, diff_pct = 0;
  double base_spread = 0, new_spread = 0;  ///< (max - min) / 2 of each side
  double threshold = 0;                    ///< max(rel_tol * |base median|, abs_tol)
  double noise = 0;                        ///< base_spread + new_spread
  const char* verdict = "same";            ///< faster, slower, same or unsure
};

inline double median_of(std::vector<double> v) {
  return diffscope::detail::spread_of(std::move(v)).median;
}

inline double half_range(const std::vector<double>& v) {
  const diffscope::detail::spread3 s = diffscope::detail::spread_of(v);
  return (s.max - s.min) / 2;
}

/// The verdict rule (docs/compare.md): a difference is real when it is larger than both
/// the threshold and the combined spread; "same" needs a small difference AND runs tight
/// enough to have shown a threshold-sized one; anything else is "unsure".
inline noise_verdict judge(const std::vector<double>& base, const std::vector<double>& now,
                           const noise_options& opt = {}) {
  noise_verdict v;
  v.base_median = median_of(base);
  v.new_median = median_of(now);
  std::tie(v.diff, v.diff_pct) = compare_detail::diff_of(v.base_median, v.new_median);
  v.base_spread = half_range(base);
  v.new_spread = half_range(now);
  v.threshold = std::max(opt.rel_tol_pct / 100 * std::fabs(v.base_median), opt.abs_tol_ms);
  v.noise = v.base_spread + v.new_spread;
  const double d = std::fabs(v.diff);
  if (d > v.threshold && d > v.noise)
    v.verdict = v.diff < 0 ? "faster" : "slower";
  else if (d <= v.threshold && v.noise <= v.threshold)
    v.verdict = "same";
  else
    v.verdict = "unsure";
  return v;
}

/// The Markdown table of `--base ... --new ...`; `mode` from check_modes ("" leaves the line
/// out); the labels name the two sides (diffscope ab passes its own).
inline std::string repeated_report(const std::vector<perf_dump_data>& base,
                                   const std::vector<perf_dump_data>& now,
                                   const noise_options& opt = {}, const std::string& mode = "",
                                   const std::string& base_label = "Base",
                                   const std::string& new_label = "New") {
  using namespace compare_detail;
  struct row {
    std::string name;
    std::vector<double> b, n;
  };
  std::vector<row> rows;
  auto values = [](const std::vector<perf_dump_data>& runs, auto&& get) {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(get(r));
    return v;
  };
  auto add = [&](std::string name, auto&& get) {
    rows.push_back({std::move(name), values(base, get), values(now, get)});
  };
  add("**E2E Latency**", [](const perf_dump_data& d) { return d.total_duration_ms; });

  // Stages as compare_perf consolidates them; a stage missing from a run counts as 0.
  std::vector<consolidated> cb, cn;
  for (const auto& d : base) cb.push_back(consolidate(d.steps));
  for (const auto& d : now) cn.push_back(consolidate(d.steps));
  // Rows in the base runs' stage order, then stages only the new runs have.
  std::vector<std::string> order;
  std::unordered_set<std::string> seen;
  for (const auto* side : {&cb, &cn})
    for (const auto& c : *side)
      for (const auto& n : c.order)
        if (seen.insert(n).second) order.push_back(n);
  for (const auto& stage : order) {
    row r{stage, {}, {}};
    for (const auto& c : cb) r.b.push_back(get_or(c.durations, stage, 0.0));
    for (const auto& c : cn) r.n.push_back(get_or(c.durations, stage, 0.0));
    rows.push_back(std::move(r));
  }

  std::size_t steps = 0;
  for (const auto* side : {&base, &now})
    for (const auto& d : *side) steps = std::max(steps, d.denoise_steps.size());
  if (steps > 0) {
    add("Denoise steps (sum)", [](const perf_dump_data& d) {
      double s = 0;
      for (const auto& x : d.denoise_steps) s += x.duration_ms;
      return s;
    });
    for (std::size_t i = 0; i < steps; ++i)
      add("Denoise step " + std::to_string(i), [i](const perf_dump_data& d) {
        return i < d.denoise_steps.size() ? d.denoise_steps[i].duration_ms : 0.0;
      });
  }

  // GPU busy per scope when every run measured it.
  bool all_gpu = true;
  for (const auto* side : {&base, &now})
    for (const auto& d : *side) all_gpu = all_gpu && d.has_diffscope && d.gpu_timing;
  if (all_gpu) {
    std::vector<std::string> paths;
    std::unordered_set<std::string> seen_paths;
    std::unordered_map<const perf_dump_data*, scope_index> indices;
    for (const auto* side : {&base, &now})
      for (const auto& d : *side) {
        indices.emplace(&d, index_scopes(d));
        for (const auto& s : d.scopes)
          if (s.has_gpu && seen_paths.insert(s.path).second) paths.push_back(s.path);
      }
    for (const auto& p : paths)
      add("GPU busy `" + md_cell(p) + "`", [&p, &indices](const perf_dump_data& d) {
        const dump_scope* s = find_scope(indices.at(&d), p);
        return s && s->has_gpu ? s->busy_ms : 0.0;
      });
  }

  auto names = [](const std::vector<perf_dump_data>& runs) {
    std::string s;
    for (const auto& r : runs) s += (s.empty() ? "" : ", ") + base_name(r.file);
    return s;
  };
  std::string o = "### Repeated-run Comparison\n\n";
  o += "- " + base_label + ": " + std::to_string(base.size()) + " runs (" + names(base) + ")\n";
  o += "- " + new_label + ": " + std::to_string(now.size()) + " runs (" + names(now) + ")\n";
  if (!mode.empty()) o += "- Timing mode: " + mode + "\n";
  o += "- Median per side; spread = (max - min) / 2; threshold = max(" +
       py_fixed(opt.rel_tol_pct, 1) + "% of base median, " + py_fixed(opt.abs_tol_ms, 2) +
       " ms); faster/slower when |diff| > threshold and |diff| > base spread + new spread, "
       "same when |diff| <= threshold and base spread + new spread <= threshold, else "
       "unsure.\n\n";
  o += "| Metric | " + base_label + " median (ms) | " + new_label + " median (ms) | Diff (ms) | " +
       "Diff (%) | " + base_label + " spread (ms) | " + new_label + " spread (ms) | Verdict |\n";
  o += "| :--- | :--- | :--- | :--- | :--- | :--- | :--- | :--- |\n";
  for (const auto& r : rows) {
    const noise_verdict v = judge(r.b, r.n, opt);
    o += "| " + r.name + " | " + py_fixed(v.base_median, 2) + " | " + py_fixed(v.new_median, 2) +
         " | " + py_fixed(v.diff, 2, true) + " | " + py_fixed(v.diff_pct, 1, true) + "% | " +
         py_fixed(v.base_spread, 2) + " | " + py_fixed(v.new_spread, 2) + " | " + v.verdict +
         " |\n";
  }
  return o;
}

}  // namespace diffscope::cli
