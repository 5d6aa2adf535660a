// `diffscope report` for one dump: kernel categories, the scope tree, top kernels, fast-path
// findings, communication, and a merged dump's ranks (docs/multi_gpu.md); stages and steps are
// in timing_sections.cpp.
#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <diffscope/analysis/figures.hpp>
#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/util/text_table.hpp>

#include "../lib/merge.hpp"
#include "page_parts.hpp"

namespace diffscope::cli::report {

namespace {

/// Why a dump has no kernel table, in words.
std::string why_no_kernels(const run_view& r) {
  if (!r.dump.has_diffscope) return "an SGLang dump carries no kernel data";
  if (r.merge.present)
    return "a merged dump keeps per-rank steps, stages and communication, not kernels (report a "
           "rank's own dump for them)";
  if (!r.dump.gpu_timing) return "GPU timing was not measured, so no kernel was seen";
  if (r.mode == "perf")
    return "perf mode times scopes with device events and records no per-kernel data (profile "
           "mode does)";
  return "the dump lists no kernels (diffscope.kernels is empty or absent)";
}

std::string td_num(double v, int decimals) {
  return "<td class=\"n\" data-v=\"" + ms_exact(v) + "\">" + diffscope::detail::fixed(v, decimals) +
         "</td>";
}

/// Why the steps carry no kernel categories (diffscope.steps[].categories).
std::string why_no_step_categories(const run_view& r) {
  if (r.steps.empty()) return "the dump has no denoise steps";
  if (!r.dump.has_diffscope) return "an SGLang dump carries no per-step kernel data";
  if (r.merge.present || !r.dump.gpu_timing || r.mode == "perf") return why_no_kernels(r);
  if (!r.steps_detailed) return "the dump has no diffscope.steps table";
  return "the dump was written before diffscope.steps[].categories existed (or some of its "
         "steps lack it)";
}

/// Per denoise step, its GPU busy stacked by kernel category, when every step has them.
void step_categories_chart(page_builder& b, const run_view& r) {
  // Sampled mode: only the traced steps have operations of their own, and every one of those
  // has categories.
  const bool sampled = r.mode == "sampled";
  std::vector<const timed_row*> steps;
  for (const timed_row& s : r.steps)
    if (!sampled || s.traced) steps.push_back(&s);
  const bool all = !steps.empty() && r.steps_detailed &&
                   std::all_of(steps.begin(), steps.end(),
                               [](const timed_row* s) { return s->categories.has_value(); });
  if (!all) {
    b.missing("step-categories",
              "no per-step GPU busy by kernel category: " + why_no_step_categories(r) + "." +
                  (r.categories.empty() ? "" : " Shown instead: the whole run, and per scope."));
    return;
  }
  stacked_chart c;
  c.id = "step-categories";
  c.title = "GPU busy per denoise step by kernel category";
  c.value_label = "GPU busy (ms)";
  const std::size_t n = std::min(steps.size(), max_bar_groups);
  for (std::size_t i = 0; i < n; ++i)
    for (const auto& [cat, ms] : *steps[i]->categories)
      if (std::find(c.parts.begin(), c.parts.end(), cat) == c.parts.end()) c.parts.push_back(cat);
  for (std::size_t i = 0; i < n; ++i) {
    const timed_row& s = *steps[i];
    std::vector<double> v(c.parts.size(), 0.0);
    for (const auto& [cat, ms] : *s.categories)
      v[static_cast<std::size_t>(std::find(c.parts.begin(), c.parts.end(), cat) -
                                 c.parts.begin())] += ms;
    c.rows.push_back({"step " + s.name, std::move(v), ""});
  }
  c.description =
      "Per denoise step: its GPU busy (sum of operation durations, every kernel, copy and set "
      "launched inside it) by kernel category, SGLang's rules (diffscope.steps[].categories).";
  if (sampled)
    c.description += " Only the traced steps (sampled mode: " +
                     diffscope::detail::traced_steps_text(r.sampling) +
                     "): the others were timed, not traced.";
  b.chart(c.id, render_stacked(c),
          c.description + (n < steps.size() ? " The first " + std::to_string(n) + " of " +
                                                  std::to_string(steps.size()) + " steps."
                                            : ""));
}

void categories_section(page_builder& b, const run_view& r) {
  b.section("categories", "GPU time by kernel category");
  step_categories_chart(b, r);
  if (r.categories.empty()) {
    b.missing("categories", "no kernel categories: " + why_no_kernels(r) + ".");
    b.end_section();
    return;
  }
  bar_chart c;
  c.id = "categories";
  c.title = "GPU time by kernel category";
  c.series = {"GPU time"};
  c.description =
      std::string("Kernel categories by SGLang's rules (analysis/hotspots.hpp), over ") +
      (r.categories_from_dump ? "every kernel of the run (diffscope.hotspots)"
                              : "the kernels the dump lists") +
      ".";
  for (const category_row& x : r.categories)
    c.groups.push_back(
        {x.category,
         {x.total_ms},
         diffscope::detail::fixed(x.share, 1) + "%, " + std::to_string(x.count) + " ops"});
  b.chart(c.id, render_bars(c), c.description);

  // Per scope, stacked by category: the kernels the dump lists, by their scope.
  std::vector<std::string> parts;
  for (const category_row& x : r.categories) parts.push_back(x.category);
  std::vector<std::string> scope_order;
  std::unordered_map<std::string, std::vector<double>> by_scope;
  for (const kernel_row& k : r.kernels) {
    auto at = std::find(parts.begin(), parts.end(), k.category);
    if (at == parts.end()) at = parts.insert(parts.end(), k.category);
    const std::size_t part = static_cast<std::size_t>(at - parts.begin());
    const std::string scope = k.scope_path.empty() ? "(no scope)" : k.scope_path;
    auto& v = by_scope[scope];
    if (v.empty()) scope_order.push_back(scope);
    v.resize(parts.size(), 0.0);
    v[part] += k.total_ms;
  }
  if (scope_order.empty()) {
    b.missing("scope-categories", "no per-scope categories: " + why_no_kernels(r) + ".");
    b.end_section();
    return;
  }
  auto total = [&](const std::string& s) {
    double t = 0;
    for (const double v : by_scope[s]) t += v;
    return t;
  };
  std::stable_sort(scope_order.begin(), scope_order.end(),
                   [&](const std::string& a, const std::string& x) { return total(a) > total(x); });
  stacked_chart s;
  s.id = "scope-categories";
  s.title = "GPU time per scope by kernel category";
  s.path_labels = true;
  s.parts = parts;
  s.description = "The kernels the dump lists (" + std::to_string(r.kernels.size()) +
                  " entries of " + std::to_string(r.kernels_total) +
                  " kernel names), summed per innermost scope and category over all calls.";
  const std::size_t n = std::min(scope_order.size(), max_chart_rows);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> v = by_scope[scope_order[i]];
    v.resize(parts.size(), 0.0);
    s.rows.push_back({scope_order[i], std::move(v), ""});
  }
  b.chart(
      s.id, render_stacked(s),
      s.description + (n < scope_order.size() ? " The " + std::to_string(n) + " largest of " +
                                                    std::to_string(scope_order.size()) + " scopes."
                                              : ""));
  b.end_section();
}

void tree_section(page_builder& b, const run_view& r) {
  b.section("scopes", "Scope tree");
  if (r.scopes.empty()) {
    b.missing("scopes",
              r.merge.present ? "a merged dump has no scope table (each rank's own dump has one)."
              : !r.dump.has_diffscope ? "an SGLang dump has no scope table (diffscope.scopes)."
                                      : "the dump's scope table (diffscope.scopes) is empty.");
    b.end_section();
    return;
  }
  const bool gpu = r.scopes_have_gpu;
  if (!gpu)
    b.missing("scopes-gpu",
              "no scope carries GPU numbers (GPU timing not measured): bars show host time "
              "instead of GPU busy.");
  auto value = [&](const scope_row& s) -> std::optional<double> {
    if (gpu) return s.gpu.has ? std::optional<double>(s.gpu.busy_ms) : std::nullopt;
    return s.host_ms;
  };
  const std::size_t n = std::min(r.scopes.size(), max_tree_rows);
  std::vector<std::vector<std::size_t>> kids(n);
  std::vector<std::size_t> roots;
  double hi = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto p = r.scopes[i].parent;
    if (p >= 0 && static_cast<std::size_t>(p) < n)
      kids[static_cast<std::size_t>(p)].push_back(i);
    else
      roots.push_back(i);
    hi = std::max(hi, value(r.scopes[i]).value_or(0));
  }
  auto by_value = [&](std::vector<std::size_t>& v) {
    std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t x) {
      return value(r.scopes[a]).value_or(-1) > value(r.scopes[x]).value_or(-1);
    });
  };
  const std::string metric = gpu ? "GPU busy" : "host time";
  std::size_t bars = 0;
  tree_chart svg;
  svg.id = "scope-tree";
  svg.title = "Scope tree by " + metric;
  svg.value_label = metric + " (ms)";
  svg.description = "Scopes indented under their parents, siblings by " + metric + ".";
  std::string h;
  // Iterative depth-first walk (a tree may be deep): open <details> for scopes with children.
  struct frame {
    std::size_t node, next;
  };
  by_value(roots);
  for (const std::size_t root : roots) {
    std::vector<frame> stack{{root, 0}};
    while (!stack.empty()) {
      frame& f = stack.back();
      const scope_row& s = r.scopes[f.node];
      const int depth = static_cast<int>(stack.size()) - 1;
      if (f.next == 0) {
        by_value(kids[f.node]);
        const auto v = value(s);
        std::string t = s.path;
        if (s.gpu.has)
          t += ": GPU busy " + ms_exact(s.gpu.busy_ms) + " ms, envelope " +
               ms_exact(s.gpu.envelope_ms) + " ms" + (s.gpu.estimated ? " (estimated)" : "");
        if (s.host_ms) t += ", host " + ms_exact(*s.host_ms) + " ms";
        if (s.calls) t += ", " + std::to_string(*s.calls) + " calls";
        std::string row = "<span class=\"nm\" title=\"" + escape(t) + "\">" +
                          label_text(s.name, 60) + "</span><span class=\"track\">";
        if (v) {
          row += "<span class=\"bar\" data-value=\"" + ms_exact(*v) +
                 "\" style=\"width:" + diffscope::detail::fixed(hi > 0 ? 100.0 * *v / hi : 0, 2) +
                 "%\" title=\"" + escape(t) + "\"></span>";
          ++bars;
        }
        row +=
            "</span><span class=\"v\">" +
            (v ? (s.gpu.estimated && gpu ? "~" : "") + ms_text(*v) : std::string("not measured")) +
            "</span>";
        const std::string d = " style=\"--d:" + std::to_string(std::min(depth, 20)) + "\"";
        if (kids[f.node].empty())
          h += "<div class=\"leaf\"" + d + ">" + row + "</div>\n";
        else
          h += std::string("<details") + (depth < 3 ? " open" : "") + d + "><summary>" + row +
               "</summary>\n";
        svg.rows.push_back({s.name, s.path, depth, v, ""});
      }
      if (f.next < kids[f.node].size()) {
        const std::size_t child = kids[f.node][f.next++];
        stack.push_back({child, 0});
        continue;
      }
      if (!kids[f.node].empty()) h += "</details>\n";
      stack.pop_back();
    }
  }
  b.html("<p>Scopes under their parents, siblings by " + metric +
         " (largest first), names as the console shortens them; click a row to fold it.</p>"
         "<div class=\"tree-tools\" data-for=\"scope-tree\"></div>\n<div class=\"tree chart\" "
         "id=\"scope-tree\" data-chart=\"scope-tree\" data-kind=\"tree\" data-bars=\"" +
         std::to_string(bars) + "\" data-rows=\"" + std::to_string(n) + "\">\n" + h + "</div>\n");
  if (n < r.scopes.size())
    b.note("The first " + std::to_string(n) + " of " + std::to_string(r.scopes.size()) +
           " scopes.");
  b.svg_only(svg.id, render_tree(svg));
  b.end_section();
}

void kernels_section(page_builder& b, const run_view& r) {
  b.section("kernels", "Top kernels");
  if (r.ranked_kernels.empty()) {
    b.missing("kernels", "no kernels: " + why_no_kernels(r) + ".");
    b.end_section();
    return;
  }
  bar_chart c;
  c.id = "kernels";
  c.title = "Top kernels by total GPU time";
  c.series = {"total GPU time"};
  c.description = "Kernel names over every scope they ran in, by total time (the dump lists " +
                  std::to_string(r.kernels.size()) + " entries of " +
                  std::to_string(r.kernels_total) + " kernel names).";
  const std::size_t n = std::min<std::size_t>(r.ranked_kernels.size(), 20);
  for (std::size_t i = 0; i < n; ++i) {
    const ranked_kernel_row& k = r.ranked_kernels[i];
    c.groups.push_back({diffscope::detail::display_name(k.name, 80),
                        {k.total_ms},
                        k.category + ", " + diffscope::detail::fixed(k.share, 1) + "%"});
  }
  std::unordered_set<std::string> estimated;  // names with an estimated entry (sampled mode)
  for (const kernel_row& k : r.kernels)
    if (k.estimated) estimated.insert(k.name);
  if (!estimated.empty())
    c.description +=
        " Sampled mode: the kernels inside denoise steps are estimates, "
        "scaled from the traced steps (" +
        diffscope::detail::traced_steps_text(r.sampling) + ") to every step.";
  b.chart(c.id, render_bars(c), c.description);
  std::string t =
      "<table class=\"sortable\" data-table=\"kernels\"><thead><tr><th>kernel</th><th>category</th>"
      "<th>count</th><th>total ms</th><th>mean us</th><th>share %</th></tr></thead><tbody>\n";
  for (std::size_t i = 0; i < r.ranked_kernels.size() && i < max_table_rows; ++i) {
    const ranked_kernel_row& k = r.ranked_kernels[i];
    const double mean_us = k.count > 0 ? 1000.0 * k.total_ms / static_cast<double>(k.count) : 0;
    t += "<tr><td title=\"" + escape(k.name) + "\">" + label_text(k.name, 80) +
         (estimated.count(k.name) ? " (estimate)" : "") + "</td><td>" + escape(k.category) +
         "</td><td class=\"n\" data-v=\"" + std::to_string(k.count) + "\">" +
         std::to_string(k.count) + "</td>" + td_num(k.total_ms, 3) + td_num(mean_us, 1) +
         td_num(k.share, 1) + "</tr>\n";
  }
  b.html(t + "</tbody></table>\n");
  b.end_section();
}

void families_section(page_builder& b, const run_view& r) {
  b.section("fast-paths", "Fast-path findings");
  if (r.families.empty()) {
    if (r.kernels.empty() && !r.families_from_dump)
      b.missing("fast-paths", "no fast-path check: " + why_no_kernels(r) + ".");
    else
      b.note("No known SGLang fast-path family among the kernels (docs/hotspots.md).");
    b.end_section();
    return;
  }
  b.note(std::string("SGLang diffusion's fast paths: engaged (its kernels ran), missed (the "
                     "separate kernels it replaces ran), unchecked (the data cannot tell); over ") +
         (r.families_from_dump ? "every kernel of the run." : "the kernels the dump lists."));
  std::string t =
      "<table data-table=\"fast-paths\"><thead><tr><th>status</th><th>fast path</th>"
      "<th>evidence</th><th>kernels</th><th>hint</th></tr></thead><tbody>\n";
  for (const family_row& f : r.families) {
    std::string ks;
    for (const std::string& k : f.kernels)
      ks += (ks.empty() ? "" : "<br>") + label_text(diffscope::detail::kernel_base_name(k), 48);
    t += "<tr><td class=\"status-" + slug(f.status) + "\">" + escape(f.status) + "</td><td>" +
         escape(f.title) + "</td><td>" + escape(f.evidence) + "</td><td>" + ks + "</td><td>" +
         escape(f.hint) + "</td></tr>\n";
  }
  b.html(t + "</tbody></table>\n");
  b.end_section();
}

/// Exposed vs overlapped communication, one row per (scope, rank).
void comm_chart(page_builder& b, const std::string& id, std::vector<comm_scope_row> rows) {
  // Attention scopes first (they carry the sequence-parallel all-to-alls), then by busy.
  auto busiest = [](const comm_scope_row& s) {
    double m = 0;
    for (const comm_numbers& c : s.ranks) m = std::max(m, c.busy_ms);
    return m;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const comm_scope_row& a, const comm_scope_row& x) {
    if (a.attention != x.attention) return a.attention;
    return busiest(a) > busiest(x);
  });
  stacked_chart c;
  c.id = id;
  c.title = "Communication per scope: overlapped vs exposed";
  c.path_labels = true;
  c.parts = {"overlapped (other GPU work ran meanwhile)", "exposed (nothing else ran)"};
  c.description =
      "Communication kernel time per scope (and rank): the part overlapped by other GPU work "
      "and the part exposed, summed over calls (docs/multi_gpu.md).";
  std::size_t ranks = 1;
  for (const comm_scope_row& r : rows) ranks = std::max(ranks, r.ranks.size());
  // About 80 rows at most: fewer scopes when there are many ranks.
  const std::size_t n = std::min(rows.size(), std::max<std::size_t>(3, 80 / ranks));
  for (std::size_t i = 0; i < n; ++i)
    for (const comm_numbers& x : rows[i].ranks) {
      std::string label = rows[i].path;
      if (x.rank >= 0) label += " | rank " + std::to_string(x.rank);
      const double pct = x.busy_ms > 0 ? 100.0 * x.overlapped_ms / x.busy_ms : 0;
      c.rows.push_back({label,
                        {x.overlapped_ms, x.exposed_ms},
                        (rows[i].attention ? "attention, " : "") +
                            diffscope::detail::fixed(pct, 1) + "% overlapped, " +
                            std::to_string(x.kernels) + " kernels"});
    }
  b.chart(c.id, render_stacked(c),
          n < rows.size() ? "The " + std::to_string(n) + " busiest of " +
                                std::to_string(rows.size()) + " scopes with communication."
                          : "");
}

void merge_sections(page_builder& b, const run_view& r) {
  const merge_view& m = r.merge;
  b.section("ranks", "Ranks: critical path, spread, straggler");
  if (m.steps.empty()) {
    b.missing("merge-steps",
              "the merge has no denoise steps (diffscope.critical_path.denoise_steps "
              "is empty).");
  } else {
    line_chart c;
    c.id = "merge-steps";
    c.title = "Critical path per denoise step";
    c.description =
        "Per step: the slowest rank's time (the critical path, which the merged dump's "
        "denoise_steps_ms holds) and the fastest rank's; their gap is the spread.";
    line_series hi{"critical path (slowest rank)", {}}, lo{"fastest rank", {}};
    const std::size_t n = std::min(m.steps.size(), max_line_points);
    for (std::size_t i = 0; i < n; ++i) {
      const spread_row& s = m.steps[i];
      c.x.push_back(s.step);
      hi.y.push_back(s.duration_ms);
      lo.y.push_back(s.min_ms);
      c.point_notes.push_back("straggler rank " + std::to_string(s.straggler) + ", spread " +
                              ms_exact(s.spread_ms) + " ms");
    }
    c.series = {hi, lo};
    b.chart(c.id, render_lines(c), c.description);
    bar_chart sp;
    sp.id = "merge-spread";
    sp.title = "Spread per denoise step, and the straggler";
    sp.series = {"spread (slowest - fastest)"};
    sp.description = "Per step: slowest minus fastest rank, and the rank that was slowest.";
    for (std::size_t i = 0; i < std::min(m.steps.size(), max_bar_groups); ++i) {
      const spread_row& s = m.steps[i];
      const double pct = s.duration_ms > 0 ? 100.0 * s.spread_ms / s.duration_ms : 0;
      sp.groups.push_back({"step " + s.name,
                           {s.spread_ms},
                           "straggler: rank " + std::to_string(s.straggler) + " (" +
                               diffscope::detail::fixed(pct, 1) + "%)"});
    }
    b.chart(sp.id, render_bars(sp), sp.description);
    // How often each rank set the critical path: one straggler, or a different one each step.
    std::map<std::int64_t, int> all;
    for (const spread_row& s : m.steps) ++all[s.straggler];
    bar_chart st;
    st.id = "merge-stragglers";
    st.title = "Steps in which each rank was the straggler";
    st.series = {"steps"};
    st.value_label = "denoise steps";
    st.unit = "steps";
    st.description = "Per rank: the denoise steps in which it was the slowest rank.";
    for (const auto& [rank, k] : all)
      st.groups.push_back(
          {"rank " + std::to_string(rank),
           {static_cast<double>(k)},
           diffscope::detail::fixed(100.0 * k / static_cast<double>(m.steps.size()), 1) + "% of " +
               std::to_string(m.steps.size()) + " steps"});
    b.chart(st.id, render_bars(st), st.description);
  }
  if (!m.stages.empty()) {
    bar_chart c;
    c.id = "merge-stages";
    c.title = "Stages per rank";
    c.description = "Each rank's time per stage; the note names the straggler and the spread.";
    std::vector<std::int64_t> ranks;
    for (const auto& [rank, file] : m.ranks) ranks.push_back(rank);
    for (const std::int64_t rank : ranks) c.series.push_back("rank " + std::to_string(rank));
    for (std::size_t i = 0; i < m.stages.size() && i < max_bar_groups; ++i) {
      const spread_row& s = m.stages[i];
      bar_group g{
          s.name,
          {},
          "straggler rank " + std::to_string(s.straggler) + ", spread " + ms_text(s.spread_ms)};
      for (const std::int64_t rank : ranks) {
        std::optional<double> v;
        for (const auto& [rr, ms] : s.ranks)
          if (rr == rank) v = ms;
        g.values.push_back(v);
      }
      c.groups.push_back(std::move(g));
    }
    b.chart(c.id, render_bars(c), c.description);
  }
  b.end_section();
  b.section("communication", "Communication per scope and rank");
  if (m.comm_scopes.empty())
    b.missing("communication",
              "no communication kernels in the ranks' scopes (diffscope.comm.scopes is empty).");
  else
    comm_chart(b, "merge-comm", m.comm_scopes);
  b.end_section();
}

}  // namespace

void single_sections(page_builder& b, const run_view& r) {
  stages_section(b, r);
  steps_section(b, r);
  if (r.merge.present) merge_sections(b, r);
  categories_section(b, r);
  tree_section(b, r);
  kernels_section(b, r);
  families_section(b, r);
  if (!r.merge.present) {
    std::vector<comm_scope_row> rows;
    for (const scope_row& s : r.scopes)
      if (s.comm)
        rows.push_back(
            {s.path, s.category, merge_detail::is_attention_scope(s.path, s.category), {*s.comm}});
    if (!rows.empty()) {
      b.section("communication", "Communication per scope");
      comm_chart(b, "comm", rows);
      b.end_section();
    }
  }
}

}  // namespace diffscope::cli::report
