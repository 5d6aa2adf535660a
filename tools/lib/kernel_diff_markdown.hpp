// The kernel diff (lib/kernel_diff.hpp) as Markdown for a pull request: compare's kernel section
// after its per-scope sections, and the whole report of two or more torch.profiler traces
// (docs/compare.md, "Kernel diff").
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include <diffscope/util/short_names.hpp>

#include "compare.hpp"
#include "kernel_diff.hpp"

namespace diffscope::cli {

/// Kernel rows of the kernel section by default (`compare --kernels`), and the value that lists
/// them all.
inline constexpr std::size_t default_kernel_rows = 20;
inline constexpr std::size_t all_kernel_rows = static_cast<std::size_t>(-1);

namespace kernel_md {

/// Most columns of a kernel's label.
inline constexpr std::size_t label_columns = 80;

/// "20,831", or "20,831.5" for a median of two runs.
inline std::string count_text(double v) {
  const std::string fixed = compare_detail::py_fixed(v, 1);
  const std::size_t dot = fixed.find('.');
  std::string head = fixed.substr(0, dot), out;
  const bool neg = !head.empty() && head[0] == '-';
  if (neg) head.erase(0, 1);
  for (std::size_t i = 0; i < head.size(); ++i) {
    if (i > 0 && (head.size() - i) % 3 == 0) out += ',';
    out += head[i];
  }
  if (fixed.substr(dot) != ".0") out += fixed.substr(dot);
  return (neg ? "-" : "") + out;
}

/// "≥" before a value that may miss entries past a capped list.
inline std::string at_least(bool b) {
  return b ? "\xE2\x89\xA5" : "";  // U+2265
}

/// A difference whose sides may be lower bounds: "≥" when only the new side's is one (the
/// difference can only be larger), "≤" when only the base's, "~" when both.
inline std::string bound_mark(bool base_at_least, bool new_at_least) {
  if (base_at_least && new_at_least) return "~";
  if (new_at_least) return "\xE2\x89\xA5";
  return base_at_least ? "\xE2\x89\xA4" : "";  // U+2264
}

inline std::string diff_text(double diff, bool base_at_least, bool new_at_least) {
  return bound_mark(base_at_least, new_at_least) + compare_detail::py_fixed(diff, 2, true);
}

/// A side's cells: count, total (ms), mean (us); "-" where it did not run.
struct side_cells {
  std::string count, total, mean;
};

/// "~" before an estimate (a sampled-mode dump's figures, scaled from its traced steps).
inline std::string estimate(bool b) {
  return b ? "~" : "";
}

inline side_cells cells_of(const kernel_side_value& v) {
  if (!v.known) return {"not listed", "not listed", "-"};
  if (!v.ran()) return {"-", "-", "-"};
  return {estimate(v.estimated) + at_least(v.at_least) + count_text(v.count),
          estimate(v.estimated) + at_least(v.at_least) + compare_detail::py_fixed(v.total_ms, 2),
          compare_detail::py_fixed(1000.0 * v.mean_ms(), 1)};
}

/// A kernel's name in a table cell: a code span (template arguments are not HTML tags, '_' no
/// emphasis), '|' escaped.
inline std::string code_cell(const std::string& label) {
  if (label.find('`') != std::string::npos) return compare_detail::md_cell(label);
  return "`" + compare_detail::md_cell(label) + "`";
}

inline std::string launches_text(double separate, double fused, const kernel_family_diff& f) {
  std::string s;
  if (separate > 0) s = count_text(separate) + " " + f.separate_word;
  if (fused > 0) s += (s.empty() ? "" : " + ") + count_text(fused) + " " + f.fused_word;
  if (s.empty()) return "no";
  return s;
}

inline std::string status_text(const kernel_family_diff& f) {
  const std::string b = f.base_status.empty() ? "not seen" : f.base_status;
  const std::string n = f.new_status.empty() ? "not seen" : f.new_status;
  return b == n ? b : b + " -> " + n;
}

/// "AdaLN scale/shift/gate (missed -> engaged): 20,831 separate kernel launches -> 560 fused
/// kernel launches, -312.00 ms".
inline std::string family_line(const kernel_family_diff& f) {
  std::string s = "**" + compare_detail::md_cell(f.title) + "** (" + status_text(f) +
                  "): " + launches_text(f.base_separate, f.base_fused, f) + " kernel launches -> " +
                  launches_text(f.new_separate, f.new_fused, f) + " kernel launches, ";
  if (!f.known) return s + "change unknown (a capped kernel list)";
  return s + diff_text(f.diff_ms(), f.base_at_least, f.new_at_least) + " ms";
}

}  // namespace kernel_md

/// One kernel section: `heading` (a Markdown heading line), then why there are no rows, or
/// the fast paths whose status changed, the table (a total row, then families with their
/// kernels and lone kernels, by absolute change; at most `max_rows` kernel rows) and its notes.
/// `more` names the command that lists every row.
inline std::string kernel_section(const kernel_diff& d, const std::string& heading,
                                  std::size_t max_rows = default_kernel_rows,
                                  const std::string& more = "diffscope compare --kernels all") {
  using namespace kernel_md;
  using compare_detail::base_name;
  using compare_detail::py_fixed;
  std::string o = "\n" + heading + "\n";
  if (!d.absent.empty()) {
    o += "No kernel rows:\n";
    for (const auto& [file, why] : d.absent) o += "- " + base_name(file) + ": " + why + ".\n";
    return o;
  }
  if (d.rows.empty())
    return o + "No kernel rows: no run lists a kernel (no GPU work was recorded).\n";
  const auto runs = [](const kernel_diff_side& s) {
    std::string names;
    for (const auto& f : s.files) names += (names.empty() ? "" : ", ") + base_name(f);
    return "median of " + std::to_string(s.files.size()) + " runs (" + names + ")";
  };
  if (d.base.files.size() > 1 || d.now.files.size() > 1)
    o += "Base: " + runs(d.base) + "; New: " + runs(d.now) +
         ". Each kernel's count and total are medians over the runs (a run without it counts "
         "0); mean = total / count.\n\n";
  bool changed = false;
  for (const kernel_diff_unit& u : d.ranking) {
    if (u.family < 0) continue;
    const kernel_family_diff& f = d.families[static_cast<std::size_t>(u.family)];
    if (f.base_status == f.new_status) continue;
    o += std::string(changed ? "" : "Fast paths that changed:\n") + "- " + family_line(f) + "\n";
    changed = true;
  }
  if (changed) o += "\n";

  // Labels first (short, never two alike), in the order the rows are printed.
  std::vector<std::size_t> shown;
  std::size_t printed = 0, more_rows = 0;
  for (const kernel_diff_unit& u : d.ranking) {
    const std::vector<std::size_t> rows = u.family < 0
                                              ? std::vector<std::size_t>{u.row}
                                              : d.families[static_cast<std::size_t>(u.family)].rows;
    if (printed >= max_rows) {
      more_rows += rows.size();
      continue;
    }
    shown.insert(shown.end(), rows.begin(), rows.end());
    printed += rows.size();
  }
  std::vector<std::string> keys, names;
  for (std::size_t i : shown) {
    keys.push_back(d.rows[i].name);
    names.push_back(diffscope::detail::short_kernel_name(d.rows[i].name, d.rows[i].kind));
  }
  const std::vector<std::string> labels =
      diffscope::detail::distinct_labels(names, keys, label_columns);

  o += "| Kernel | Base count | New count | Base total (ms) | New total (ms) | Diff (ms) | Base "
       "mean (us) | New mean (us) | Change |\n";
  o += "| :--- | :--- | :--- | :--- | :--- | :--- | :--- | :--- | :--- |\n";
  const bool base_capped = !d.base.caps.empty(), new_capped = !d.now.caps.empty();
  const double total_diff = d.now.total_ms - d.base.total_ms;
  const std::string be = estimate(d.base.estimated), ne = estimate(d.now.estimated);
  o += "| **All kernels** | " + be + at_least(base_capped) + count_text(d.base.count) + " | " + ne +
       at_least(new_capped) + count_text(d.now.count) + " | " + be + at_least(base_capped) +
       py_fixed(d.base.total_ms, 2) + " | " + ne + at_least(new_capped) +
       py_fixed(d.now.total_ms, 2) + " | " + diff_text(total_diff, base_capped, new_capped) +
       " | | | " + bound_mark(base_capped, new_capped) +
       py_fixed(compare_detail::diff_of(d.base.total_ms, d.now.total_ms).second, 1, true) + "% |\n";
  const auto kernel_row = [&](std::size_t i, std::size_t label, bool member) {
    const kernel_diff_row& r = d.rows[i];
    const side_cells b = cells_of(r.base), n = cells_of(r.now);
    const std::string diff =
        r.known() ? diff_text(r.diff_ms(), r.base.at_least, r.now.at_least) : "?";
    o += "| " + std::string(member ? "\xE2\x86\xB3 " : "") + code_cell(labels[label]) + " | " +
         b.count + " | " + n.count + " | " + b.total + " | " + n.total + " | " + diff + " | " +
         b.mean + " | " + n.mean + " | " + r.change() + " |\n";
  };
  std::size_t next = 0;
  for (const kernel_diff_unit& u : d.ranking) {
    if (next >= shown.size()) break;
    if (u.family < 0) {
      kernel_row(u.row, next++, false);
      continue;
    }
    const kernel_family_diff& f = d.families[static_cast<std::size_t>(u.family)];
    const std::string diff =
        f.known ? diff_text(f.diff_ms(), f.base_at_least, f.new_at_least) : "?";
    const auto count = [&](double c, bool bound, bool est) {
      return c > 0 ? estimate(est) + at_least(bound) + count_text(c) : "-";
    };
    const auto ms = [&](double c, double v, bool bound, bool est) {
      return c > 0 || v > 0 ? estimate(est) + at_least(bound) + py_fixed(v, 2) : "-";
    };
    const double bc = f.base_separate + f.base_fused, nc = f.new_separate + f.new_fused;
    o += "| **" + compare_detail::md_cell(f.title) + "** | " +
         count(bc, f.base_at_least, f.base_estimated) + " | " +
         count(nc, f.new_at_least, f.new_estimated) + " | " +
         ms(bc, f.base_ms, f.base_at_least, f.base_estimated) + " | " +
         ms(nc, f.new_ms, f.new_at_least, f.new_estimated) + " | " + diff + " | | | fast path " +
         status_text(f) + " |\n";
    for (std::size_t i : f.rows) kernel_row(i, next++, true);
  }
  if (more_rows > 0)
    o += "\n" + std::to_string(more_rows) + " more kernels changed less: `" + more +
         "` lists them.\n";
  if (d.base.estimated || d.now.estimated)
    o += "\n~ before a count or total: an estimate, scaled from the denoise steps a sampled-mode "
         "dump traced (diffscope.sampling) to every step; its difference is as uncertain.\n";
  for (const auto* side : {&d.base, &d.now})
    for (const kernel_list_cap& c : side->caps)
      o += "\n" + base_name(c.file) + " lists its " + std::to_string(c.listed) +
           " longest kernel entries of " + std::to_string(c.total) +
           " (its list was capped; an entry is one kernel in one scope): a kernel it does not "
           "list is `not listed`, not removed or added (each entry left off took at most " +
           py_fixed(c.floor_ms, c.floor_ms < 1 ? 3 : 2) + " ms); `" + at_least(true) +
           "` marks its values that may miss entries past the list, and a difference from "
           "them is a bound (`~`: both sides' lists capped).\n";
  return o;
}

/// compare's kernel sections on dumps, after compare_report: one per NEW dump that, like the
/// baseline, carries a diffscope object (as section 3).
inline std::string dump_kernel_sections(const std::vector<perf_dump_data>& dumps,
                                        std::size_t max_rows = default_kernel_rows) {
  if (dumps.size() < 2 || !dumps[0].has_diffscope) return "";
  const kernel_run base = kernel_run_of(dumps[0]);
  std::string o;
  for (std::size_t i = 1; i < dumps.size(); ++i) {
    if (!dumps[i].has_diffscope) continue;
    const kernel_run now = kernel_run_of(dumps[i]);
    const std::string label =
        dumps.size() == 2 ? std::string("New") : compare_detail::base_name(dumps[i].file);
    o += kernel_section(diff_kernels({&base}, {&now}),
                        "#### 4. diffscope: GPU time per kernel (" + label + ")", max_rows);
  }
  return o;
}

/// The kernel section of --base/--new dumps, after repeated_report: when every run carries a
/// diffscope object.
inline std::string repeated_kernel_section(const std::vector<perf_dump_data>& base,
                                           const std::vector<perf_dump_data>& now,
                                           std::size_t max_rows = default_kernel_rows) {
  std::vector<kernel_run> runs;
  for (const auto* side : {&base, &now})
    for (const perf_dump_data& d : *side) {
      if (!d.has_diffscope) return "";
      runs.push_back(kernel_run_of(d));
    }
  std::vector<const kernel_run*> b, n;
  for (std::size_t i = 0; i < runs.size(); ++i) (i < base.size() ? b : n).push_back(&runs[i]);
  return kernel_section(diff_kernels(b, n), "#### diffscope: GPU time per kernel", max_rows);
}

/// compare's report on torch.profiler traces: `runs[0]` against each later one, or with
/// `base_runs` > 0 the first `base_runs` runs against the rest (--base/--new).
inline std::string trace_kernel_report(const std::vector<kernel_run>& runs, std::size_t base_runs,
                                       std::size_t max_rows = default_kernel_rows) {
  using compare_detail::base_name;
  const auto what = [](const kernel_run& r) {
    return base_name(r.file) + " (torch.profiler trace, " +
           kernel_md::count_text(static_cast<double>(r.events)) + " events)";
  };
  std::string o = "### Kernel Comparison Report\n\n";
  if (base_runs > 0) {
    std::vector<const kernel_run*> b, n;
    for (std::size_t i = 0; i < runs.size(); ++i) (i < base_runs ? b : n).push_back(&runs[i]);
    for (const auto& [label, side] : {std::pair{"Base", &b}, std::pair{"New", &n}}) {
      o += std::string("- ") + label + ":";
      for (const kernel_run* r : *side) o += (r == side->front() ? " " : ", ") + what(*r);
      o += "\n";
    }
    return o + kernel_section(diff_kernels(b, n), "#### GPU time per kernel", max_rows);
  }
  o += "- Baseline: " + what(runs[0]) + "\n";
  for (std::size_t i = 1; i < runs.size(); ++i)
    o += "- " + (runs.size() == 2 ? std::string("New") : base_name(runs[i].file)) + ": " +
         what(runs[i]) + "\n";
  for (std::size_t i = 1; i < runs.size(); ++i)
    o += kernel_section(diff_kernels({&runs[0]}, {&runs[i]}),
                        "#### GPU time per kernel (" +
                            (runs.size() == 2 ? std::string("New") : base_name(runs[i].file)) + ")",
                        max_rows);
  return o;
}

}  // namespace diffscope::cli
