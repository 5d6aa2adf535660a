// `diffscope report` for two or more dumps: stages and steps side by side with the verdicts
// `diffscope compare` gives (compare_perf's status for DUMP DUMP..., the median rule for
// --base/--new), per-scope changes and compare's kernel diff (lib/kernel_diff.hpp) as diverging
// bars, and compare's Markdown.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <diffscope/util/text_table.hpp>

#include "../lib/compare.hpp"
#include "../lib/kernel_diff.hpp"
#include "../lib/repeated_runs.hpp"
#include "page_parts.hpp"

namespace diffscope::cli::report {

namespace {

using compare_detail::consolidated;

/// compare_perf's stage status in words (its emojis do not say it to everyone).
std::string stage_word(const char* status) {
  if (std::strcmp(status, compare_detail::red) == 0) return "slower";
  if (std::strcmp(status, compare_detail::green) == 0) return "faster";
  return "within tolerance";
}

std::string e2e_word(const char* status) {
  if (std::strcmp(status, compare_detail::cross) == 0) return "slower";
  if (std::strcmp(status, compare_detail::check) == 0) return "faster";
  return "within 2%";
}

std::string pct_text(double base, double now) {
  return compare_detail::py_fixed(compare_detail::diff_of(base, now).second, 1, true) + "%";
}

/// The two sides of a comparison as lists of runs (positional: the baseline and one other).
struct sides {
  std::vector<const run_view*> base, now;
  std::string base_label, new_label;
};

void runs_table(page_builder& b, const std::vector<run_view>& runs, const page_options& o) {
  b.section("runs", "What was measured");
  std::string t = "<table data-table=\"runs\"><thead><tr><th></th>";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::string side;
    if (o.kind == page_kind::repeated)
      side = (i < o.base_runs ? o.base_label : o.new_label) + ": ";
    else
      side = i == 0 ? "baseline: " : "";
    t += "<th>" + escape(side) + label_text(runs[i].label, 40) + "</th>";
  }
  t += "</tr></thead><tbody>\n";
  auto row = [&](const char* name, auto&& cell) {
    t += "<tr><th>" + std::string(name) + "</th>";
    for (const run_view& r : runs) t += "<td>" + cell(r) + "</td>";
    t += "</tr>\n";
  };
  row("file", [](const run_view& r) { return escape(r.dump.file); });
  row("model", [](const run_view& r) {
    const auto it = r.dump.meta.find("model");
    return it != r.dump.meta.end() && it->is_string() ? label_text(it->get<std::string>(), 80)
                                                      : std::string("-");
  });
  row("commit", [](const run_view& r) { return label_text(r.dump.commit_hash, 16); });
  row("mode", [](const run_view& r) {
    return r.dump.has_diffscope ? escape(r.mode.empty() ? "not stated" : r.mode)
                                : std::string("SGLang dump");
  });
  row("GPU timing", [](const run_view& r) {
    if (!r.dump.has_diffscope) return std::string("host, unsynchronised");
    return r.dump.gpu_timing ? std::string("measured")
                             : "<span class=\"fault\">not measured</span>";
  });
  row("GPU",
      [](const run_view& r) { return r.gpu_name.empty() ? std::string("-") : escape(r.gpu_name); });
  row("gate", [](const run_view& r) {
    if (!r.gated) return std::string("-");
    if (!*r.gated) return std::string("not gated");
    return "<span class=\"" + std::string(r.gate_verdict == "valid" ? "ok" : "fault") + "\">" +
           escape(r.gate_verdict) + "</span>";
  });
  row("requests", [](const run_view& r) {
    return r.requests_counted ? std::to_string(*r.requests_counted) + " counted, " +
                                    std::to_string(r.requests_warmups.value_or(0)) + " excluded"
                              : std::string("-");
  });
  row("faults", [](const run_view& r) {
    if (!r.has_faults) return std::string("-");
    std::string f;
    for (const auto& [name, n] : r.faults)
      f += (f.empty() ? "" : ", ") + escape(name) + "=" + std::to_string(n);
    return f.empty() ? std::string("none") : "<span class=\"fault\">" + f + "</span>";
  });
  row("end to end", [](const run_view& r) { return ms_text(r.dump.total_duration_ms); });
  b.html(t + "</tbody></table>\n");
  std::vector<const perf_dump_data*> all;
  for (const run_view& r : runs) all.push_back(&r.dump);
  if (!o.modes.empty()) b.note("Timing mode: " + o.modes + ".");
  std::string note = timing_note(all, false, false);
  const std::string prefix = "diffscope compare: note: ";
  if (note.compare(0, prefix.size(), prefix) == 0) note.erase(0, prefix.size());
  while (!note.empty() && note.back() == '\n') note.pop_back();
  if (!note.empty()) b.missing("timing-mix", note + ".");
  b.end_section();
}

/// Stages (consolidated as compare_perf consolidates them) and end to end, side by side.
void stages_compare(page_builder& b, const std::vector<run_view>& runs, const page_options& o) {
  b.section("compare-stages", "Stages and end to end");
  bar_chart c;
  c.id = "compare-stages";
  c.title = "End to end and stages";
  if (o.kind == page_kind::compare) {
    c.description =
        "Each dump's total_duration_ms and stage durations (SGLang part; denoising_step_<i> "
        "entries summed into Denoising Loop), with compare_perf's status against the baseline: "
        "end to end beyond +-2%, a stage beyond max(10%, 120 ms).";
    std::vector<consolidated> processed;
    for (std::size_t i = 1; i < runs.size(); ++i)
      processed.push_back(compare_detail::consolidate(runs[i].dump.steps));
    const consolidated base = compare_detail::consolidate(runs[0].dump.steps);
    for (const run_view& r : runs) c.series.push_back(r.label);
    bar_group e2e{"E2E latency", {}, ""};
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const double v = runs[i].dump.total_duration_ms;
      e2e.values.push_back(v);
      if (i == 0) continue;
      const double base_v = runs[0].dump.total_duration_ms;
      e2e.note += (e2e.note.empty() ? "" : "; ") + (runs.size() > 2 ? runs[i].label + ": " : "") +
                  e2e_word(compare_detail::e2e_status(compare_detail::diff_of(base_v, v).second)) +
                  " (" + pct_text(base_v, v) + ")";
    }
    c.groups.push_back(std::move(e2e));
    const auto order = compare_detail::combined_order(base, processed);
    for (std::size_t k = 0; k < order.size() && k < max_bar_groups; ++k) {
      const std::string& stage = order[k];
      bar_group g{stage, {}, ""};
      const double bv = compare_detail::get_or(base.durations, stage, 0.0);
      g.values.push_back(bv);
      for (std::size_t i = 0; i < processed.size(); ++i) {
        const double nv = compare_detail::get_or(processed[i].durations, stage, 0.0);
        g.values.push_back(nv);
        g.note += (g.note.empty() ? "" : "; ") + (runs.size() > 2 ? runs[i + 1].label + ": " : "") +
                  stage_word(compare_detail::stage_status(bv, nv)) + " (" + pct_text(bv, nv) + ")";
      }
      c.groups.push_back(std::move(g));
    }
  } else {
    c.description =
        "Medians per side of total_duration_ms and each stage (a stage a run lacks counts as 0), "
        "with compare's verdict: faster/slower when the difference is beyond the threshold and "
        "the runs' spread, same when both are within the threshold, else unsure.";
    c.series = {o.base_label + " median", o.new_label + " median"};
    const std::vector<const run_view*> base = [&] {
      std::vector<const run_view*> v;
      for (std::size_t i = 0; i < o.base_runs; ++i) v.push_back(&runs[i]);
      return v;
    }();
    std::vector<const run_view*> now;
    for (std::size_t i = o.base_runs; i < runs.size(); ++i) now.push_back(&runs[i]);
    auto add = [&](const std::string& name, const std::vector<double>& bv,
                   const std::vector<double>& nv) {
      const noise_verdict v = judge(bv, nv, o.noise);
      c.groups.push_back(
          {name,
           {v.base_median, v.new_median},
           std::string(v.verdict) + " (" + compare_detail::py_fixed(v.diff_pct, 1, true) + "%)"});
    };
    std::vector<double> be, ne;
    for (const run_view* r : base) be.push_back(r->dump.total_duration_ms);
    for (const run_view* r : now) ne.push_back(r->dump.total_duration_ms);
    add("E2E latency", be, ne);
    std::vector<consolidated> cb, cn;
    for (const run_view* r : base) cb.push_back(compare_detail::consolidate(r->dump.steps));
    for (const run_view* r : now) cn.push_back(compare_detail::consolidate(r->dump.steps));
    std::vector<std::string> order;
    std::unordered_set<std::string> seen;
    for (const auto* side : {&cb, &cn})
      for (const auto& x : *side)
        for (const auto& n : x.order)
          if (seen.insert(n).second) order.push_back(n);
    for (std::size_t k = 0; k < order.size() && k < max_bar_groups; ++k) {
      std::vector<double> bv, nv;
      for (const auto& x : cb) bv.push_back(compare_detail::get_or(x.durations, order[k], 0.0));
      for (const auto& x : cn) nv.push_back(compare_detail::get_or(x.durations, order[k], 0.0));
      add(order[k], bv, nv);
    }
  }
  b.chart(c.id, render_bars(c), c.description);
  b.end_section();
}

/// Denoise steps by index, side by side, each with compare's median verdict (one run per side
/// for DUMP DUMP...).
void steps_compare(page_builder& b, const std::vector<run_view>& runs, const page_options& o) {
  b.section("compare-steps", "Denoise steps");
  std::size_t steps = 0;
  for (const run_view& r : runs) steps = std::max(steps, r.dump.denoise_steps.size());
  if (steps == 0) {
    b.missing("compare-steps", "no dump has denoise steps (denoise_steps_ms).");
    b.end_section();
    return;
  }
  bar_chart c;
  c.id = "compare-steps";
  c.title = "Time per denoise step";
  auto at = [](const run_view& r, std::size_t i) {
    return i < r.dump.denoise_steps.size() ? r.dump.denoise_steps[i].duration_ms : 0.0;
  };
  const std::size_t n = std::min(steps, max_bar_groups);
  if (o.kind == page_kind::compare) {
    c.description =
        "denoise_steps_ms of each dump by step index, with compare's median rule on one run per "
        "side (faster/slower beyond max(2% of the baseline, 0.1 ms), else same); a step a dump "
        "lacks counts as 0.";
    for (const run_view& r : runs) c.series.push_back(r.label);
    for (std::size_t i = 0; i < n; ++i) {
      bar_group g{"step " + std::to_string(i), {}, ""};
      for (std::size_t k = 0; k < runs.size(); ++k) {
        if (i < runs[k].dump.denoise_steps.size())
          g.values.push_back(runs[k].dump.denoise_steps[i].duration_ms);
        else
          g.values.push_back(std::nullopt);
        if (k == 0) continue;
        const noise_verdict v = judge({at(runs[0], i)}, {at(runs[k], i)}, o.noise);
        g.note += (g.note.empty() ? "" : "; ") + (runs.size() > 2 ? runs[k].label + ": " : "") +
                  v.verdict;
      }
      c.groups.push_back(std::move(g));
    }
  } else {
    c.description =
        "Medians per side of each step's denoise_steps_ms (a step a run lacks counts as 0), with "
        "compare's verdict per step.";
    c.series = {o.base_label + " median", o.new_label + " median"};
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<double> bv, nv;
      for (std::size_t k = 0; k < runs.size(); ++k)
        (k < o.base_runs ? bv : nv).push_back(at(runs[k], i));
      const noise_verdict v = judge(bv, nv, o.noise);
      c.groups.push_back({"step " + std::to_string(i), {v.base_median, v.new_median}, v.verdict});
    }
  }
  b.chart(c.id, render_bars(c),
          c.description + (n < steps ? " The first " + std::to_string(n) + " of " +
                                           std::to_string(steps) + " steps."
                                     : ""));
  b.end_section();
}

/// Rows ranked by absolute change, at most max_chart_rows.
void diverging(page_builder& b, const std::string& id, const std::string& title,
               const std::string& what, const sides& s, std::vector<diverging_row> rows,
               std::size_t total, bool paths) {
  std::stable_sort(rows.begin(), rows.end(), [](const diverging_row& a, const diverging_row& x) {
    return std::fabs(a.now - a.base) > std::fabs(x.now - x.base);
  });
  if (rows.size() > max_chart_rows) rows.resize(max_chart_rows);
  diverging_chart c;
  c.id = id;
  c.title = title;
  c.path_labels = paths;
  c.base_name = s.base_label;
  c.new_name = s.new_label;
  c.description = what + ", " + s.new_label + " minus " + s.base_label +
                  ", ranked by absolute change; the verdict is compare's median rule.";
  c.rows = std::move(rows);
  b.chart(c.id, render_diverging(c),
          c.description + (c.rows.size() < total
                               ? " The " + std::to_string(c.rows.size()) + " largest changes of " +
                                     std::to_string(total) + "."
                               : ""));
}

void changes_for(page_builder& b, const sides& s, const std::string& suffix,
                 const page_options& o) {
  // Scopes: GPU busy where every run measured it (as compare's scope rows need).
  bool all_gpu = true;
  for (const auto* side : {&s.base, &s.now})
    for (const run_view* r : *side)
      all_gpu = all_gpu && r->dump.has_diffscope && r->dump.gpu_timing;
  b.html("<h3>" + escape(s.new_label + " against " + s.base_label) + "</h3>\n");
  if (!all_gpu) {
    b.missing("compare-scopes" + suffix,
              "per-scope GPU busy changes need GPU timing in every dump compared; at least one "
              "has none (an SGLang dump, or GPU timing not measured).");
  } else {
    std::vector<std::string> paths;
    std::unordered_set<std::string> seen;
    std::vector<std::unordered_map<std::string, double>> busy;
    for (const auto* side : {&s.base, &s.now})
      for (const run_view* r : *side) {
        std::unordered_map<std::string, double> m;
        for (const scope_row& x : r->scopes) {
          if (!x.gpu.has) continue;
          m.emplace(x.path, x.gpu.busy_ms);  // the first of a repeated path, as compare does
          if (seen.insert(x.path).second) paths.push_back(x.path);
        }
        busy.push_back(std::move(m));
      }
    std::vector<diverging_row> rows;
    for (const std::string& p : paths) {
      std::vector<double> bv, nv;
      for (std::size_t i = 0; i < busy.size(); ++i) {
        const auto it = busy[i].find(p);
        (i < s.base.size() ? bv : nv).push_back(it == busy[i].end() ? 0.0 : it->second);
      }
      const noise_verdict v = judge(bv, nv, o.noise);
      rows.push_back({p, v.base_median, v.new_median, v.verdict});
    }
    if (rows.empty())
      b.missing("compare-scopes" + suffix, "no scope has GPU numbers in these dumps.");
    else
      diverging(b, "compare-scopes" + suffix, "Change in GPU busy per scope", "GPU busy per scope",
                s, rows, rows.size(), true);
  }
  // Kernels: the kernel diff compare prints (lib/kernel_diff.hpp), drawn.
  std::vector<kernel_run> kr;
  for (const auto* side : {&s.base, &s.now})
    for (const run_view* r : *side) kr.push_back(kernel_run_of(r->dump));
  std::vector<const kernel_run*> kb, kn;
  for (std::size_t i = 0; i < kr.size(); ++i) (i < s.base.size() ? kb : kn).push_back(&kr[i]);
  const kernel_diff kd = diff_kernels(kb, kn);
  if (!kd.absent.empty()) {
    std::string why;
    for (const auto& [file, reason] : kd.absent)
      why += (why.empty() ? "" : "; ") + compare_detail::base_name(file) + ": " + reason;
    b.missing("compare-kernels" + suffix, "no per-kernel changes: " + why + ".");
    return;
  }
  if (kd.rows.empty()) {
    b.missing("compare-kernels" + suffix, "no run lists a kernel (no GPU work was recorded).");
    return;
  }
  std::vector<diverging_row> rows;
  std::size_t unlisted = 0;
  for (const kernel_diff_row& k : kd.rows) {
    if (!k.known()) {
      ++unlisted;
      continue;
    }
    // The chart shows 20 characters of a note: the verdict, and added or removed.
    std::string note = judge(k.base.totals, k.now.totals, o.noise).verdict;
    if (*k.change() != '\0') note += std::string(", ") + k.change();
    rows.push_back(
        {diffscope::detail::display_name(k.name, 80), k.base.total_ms, k.now.total_ms, note});
  }
  diverging(b, "compare-kernels" + suffix, "Change in total time per kernel",
            "Total GPU time per kernel name, the median over each side's runs (the kernels each "
            "dump lists" +
                (unlisted > 0
                     ? "; " + std::to_string(unlisted) + " not listed by a capped list are left out"
                     : std::string()) +
                ")",
            s, rows, rows.size(), false);
}

}  // namespace

void compare_sections(page_builder& b, const std::vector<run_view>& runs, const page_options& o) {
  runs_table(b, runs, o);
  stages_compare(b, runs, o);
  steps_compare(b, runs, o);
  b.section("compare-changes", "Changes per scope and kernel");
  if (o.kind == page_kind::repeated) {
    sides s;
    for (std::size_t i = 0; i < runs.size(); ++i)
      (i < o.base_runs ? s.base : s.now).push_back(&runs[i]);
    s.base_label = o.base_label;
    s.new_label = o.new_label;
    changes_for(b, s, "", o);
  } else {
    for (std::size_t i = 1; i < runs.size(); ++i) {
      sides s{{&runs[0]}, {&runs[i]}, runs[0].label, runs[i].label};
      changes_for(b, s, runs.size() > 2 ? "-" + std::to_string(i) : "", o);
    }
  }
  b.end_section();
  b.section("markdown", "Markdown (as diffscope compare prints it)");
  b.html(
      "<p>The same inputs through <code>diffscope compare</code>: paste it into a pull "
      "request.</p>\n<pre class=\"md\" data-md=\"compare\">" +
      escape(o.markdown, true) + "</pre>\n");
  b.end_section();
}

}  // namespace diffscope::cli::report
