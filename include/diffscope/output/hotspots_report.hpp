// diffscope: the hotspot report (analysis/hotspots.hpp) as text (`diffscope hotspots`, the
// console summary's categories and family notes) and as JSON (the perf dump's
// diffscope.hotspots). Renders a report it is given; runs no analysis. No CUDA or CUPTI.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/util/json_writer.hpp>
#include <diffscope/util/short_names.hpp>
#include <diffscope/util/text_table.hpp>

namespace diffscope {

namespace detail {

/// Rows as a text table: the first row holds the headers, the first `left` columns are
/// left-aligned.
inline void render_rows(std::string& out, const std::vector<std::vector<std::string>>& rows,
                        std::size_t left = 1) {
  if (rows.empty()) return;
  text_table t(rows[0], left);
  for (std::size_t i = 1; i < rows.size(); ++i) t.add(rows[i]);
  t.render(out);
}

/// Short, distinct labels for a column of kernel names (kernel_display_name for kernels; the
/// kinds from the report's ranking): one kernel keeps one label, two never share one.
inline std::vector<std::string> kernel_labels(const hotspot_report& rep,
                                              const std::vector<std::string>& names,
                                              std::size_t max) {
  std::map<std::string, const std::string*> kinds;
  for (const ranked_kernel& k : rep.kernels) kinds.emplace(k.name, &k.kind);
  std::vector<std::string> shown;
  for (const std::string& n : names) {
    const auto it = kinds.find(n);
    shown.push_back(short_kernel_name(n, it != kinds.end() ? *it->second : "kernel"));
  }
  return distinct_labels(shown, names, max);
}

}  // namespace detail

/// The report as text. `top` > 0: first the top kernels (SGLang's ranking, with
/// category); then categories, scopes and steps (top > 0 only), and the family notes.
inline std::string hotspots_text(const hotspot_report& rep, std::size_t top) {
  using detail::ms_text;
  std::string out;
  const auto pct = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return std::string(buf);
  };
  if (top > 0 && !rep.kernels.empty()) {
    const std::size_t n = std::min(top, rep.kernels.size());
    out += "Top " + std::to_string(n) + " of " +
           std::to_string(std::max<std::uint64_t>(rep.kernel_names, rep.kernels.size())) +
           " kernels by total GPU time (" + ms_text(rep.total_ms) + " ms in " +
           std::to_string(rep.operations) + " operations)\n";
    std::vector<std::string> names;
    for (std::size_t i = 0; i < n; ++i) names.push_back(rep.kernels[i].name);
    const std::vector<std::string> labels = detail::kernel_labels(rep, names, 80);
    std::vector<std::vector<std::string>> rows{
        {"kernel", "category", "total ms", "count", "mean us", "share %"}};
    for (std::size_t i = 0; i < n; ++i) {
      const ranked_kernel& k = rep.kernels[i];
      rows.push_back({labels[i], k.category, ms_text(k.total_ms), std::to_string(k.count),
                      ms_text(1000.0 * k.mean_ms), pct(k.share)});
    }
    detail::render_rows(out, rows, 2);
    out += "\n";
  }
  if (!rep.categories.empty()) {
    out += std::string("Kernel categories (") +
           (rep.default_rules ? "SGLang's rules" : "custom rules") +
           ", share of all GPU operation time)\n";
    std::vector<std::vector<std::string>> rows{{"category", "count", "total ms", "share %"}};
    for (const category_total& c : rep.categories)
      rows.push_back({c.category, std::to_string(c.count), ms_text(c.total_ms), pct(c.share)});
    detail::render_rows(out, rows);
  }
  if (top > 0 && !rep.scopes.empty()) {
    out += "\nBy scope (innermost scope the operations were attributed to)\n";
    // Paths shown with each name relative to its parent's, cut in the middle: distinct rows.
    const std::size_t n = std::min(top, rep.scopes.size());
    std::vector<std::string> paths, shown, kernels;
    for (std::size_t i = 0; i < n; ++i) {
      paths.push_back(rep.scopes[i].path);
      shown.push_back(detail::compact_path(detail::printable(rep.scopes[i].path)));
      kernels.push_back(rep.scopes[i].top_kernel);
    }
    const std::vector<std::string> labels = detail::distinct_labels(shown, paths, 60);
    const std::vector<std::string> top_kernels = detail::kernel_labels(rep, kernels, 50);
    std::vector<std::vector<std::string>> rows{
        {"scope", "top kernel", "count", "total ms", "share %"}};
    for (std::size_t i = 0; i < n; ++i) {
      const scope_hotspot& s = rep.scopes[i];
      rows.push_back(
          {labels[i], top_kernels[i], std::to_string(s.count), ms_text(s.total_ms), pct(s.share)});
    }
    detail::render_rows(out, rows, 2);
  }
  if (top > 0 && !rep.steps.empty()) {
    out += "\nBy denoise step\n";
    std::vector<std::string> kernels;
    for (const step_hotspot& s : rep.steps) kernels.push_back(s.top_kernel);
    const std::vector<std::string> top_kernels = detail::kernel_labels(rep, kernels, 50);
    std::vector<std::vector<std::string>> rows{
        {"step", "top kernel", "ops", "busy ms", "top kernel ms"}};
    for (std::size_t i = 0; i < rep.steps.size(); ++i) {
      const step_hotspot& s = rep.steps[i];
      rows.push_back({std::to_string(s.step), s.top_kernel.empty() ? "-" : top_kernels[i],
                      s.count > 0 ? std::to_string(s.count) : "-", ms_text(s.busy_ms),
                      s.top_kernel.empty() ? "-" : ms_text(s.top_kernel_ms)});
    }
    detail::render_rows(out, rows, 2);
  }
  if (!rep.families.empty()) {
    out += "\nFast-path families (SGLang diffusion; rule these out before calling a hotspot new)\n";
    for (const family_finding& f : rep.families) {
      std::string l = "  " + f.status +
                      std::string(f.status.size() < 9 ? 9 - f.status.size() : 0, ' ') + " " +
                      f.title + ": " + f.evidence;
      if (!f.kernels.empty()) {
        std::vector<std::string> bases;
        for (const std::string& k : f.kernels)
          bases.push_back(detail::printable(detail::kernel_base_name(k)));
        const std::vector<std::string> labels = detail::distinct_labels(bases, f.kernels, 48);
        l += " [";
        for (std::size_t i = 0; i < labels.size(); ++i) l += (i ? ", " : "") + labels[i];
        l += "]";
      }
      out += l + "\n";
      if (!f.hint.empty()) out += "            hint: " + f.hint + "\n";
    }
  }
  return out;
}

/// Writes the report as one JSON object value (the dump's diffscope.hotspots):
/// {total_ms, rules, categories[{category, count, total_ms, share}],
///  families[{family, title, status, kernels[], count, time_ms, evidence, hint}]}.
inline void write_hotspots_json(detail::json_writer& w, const hotspot_report& rep) {
  w.begin_object();
  w.field("total_ms", rep.total_ms);
  w.field("rules", rep.default_rules ? "sglang_default" : "custom");
  w.key("categories").begin_array();
  for (const category_total& c : rep.categories) {
    w.begin_object()
        .field("category", c.category)
        .field("count", c.count)
        .field("total_ms", c.total_ms)
        .field("share", c.share)
        .end_object();
  }
  w.end_array();
  w.key("families").begin_array();
  for (const family_finding& f : rep.families) {
    w.begin_object();
    w.field("family", f.family);
    w.field("title", f.title);
    w.field("status", f.status);
    w.key("kernels").begin_array();
    for (const std::string& k : f.kernels) w.value(k);
    w.end_array();
    w.field("count", f.count);
    w.field("time_ms", f.time_ms);
    w.field("evidence", f.evidence);
    w.field("hint", f.hint);
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

}  // namespace diffscope
