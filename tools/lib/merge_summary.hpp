// The merged dump as text (`diffscope merge --summary`, `diffscope run --summary` over several
// processes): critical path, spread and straggler per step and stage, communication per rank.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <diffscope/util/short_names.hpp>
#include <diffscope/util/text_table.hpp>

#include "../cli.hpp"
#include "dump_reader.hpp"

namespace diffscope::cli {

/// The merged dump as text: per denoise step and stage the critical path, spread and
/// straggler with each rank's time, then communication per scope and rank (attention scopes
/// first), then per step. Reads only what merge_dumps wrote.
inline std::string merge_summary_text(const ordered_json& merged) {
  using diffscope::detail::display_name;
  using diffscope::detail::fixed;
  using diffscope::detail::printable;
  using diffscope::detail::text_table;
  const ordered_json& ds = merged.at("diffscope");
  const ordered_json& cp = ds.at("critical_path");
  std::vector<std::int64_t> ranks;
  for (const auto& r : ds.at("ranks")) ranks.push_back(r.at("rank").get<std::int64_t>());
  std::sort(ranks.begin(), ranks.end());
  std::string out = "diffscope merge: " + std::to_string(ranks.size()) + " ranks (rank from " +
                    cp.at("rank_source").get<std::string>() + "), GPU timing: " +
                    (ds.at("status").at("gpu_timing").get<bool>()
                         ? std::string("measured")
                         : "not measured on every rank (" +
                               ds.at("status").at("reason").get<std::string>() + ")") +
                    "\n";
  for (const auto id : ranks)
    for (const auto& r : ds.at("ranks"))
      if (r.at("rank").get<std::int64_t>() == id)
        out += "  rank " + std::to_string(id) + ": " +
               display_name(r.at("file").get<std::string>(), 100) + "\n";

  auto spread_table = [&](const char* title, const ordered_json& rows, bool steps) {
    if (rows.empty()) return;
    std::vector<std::string> head = {
        steps ? "step" : "stage", "critical ms", "min ms", "spread ms", "spread %", "straggler"};
    for (const auto r : ranks) head.push_back("rank " + std::to_string(r) + " ms");
    text_table t(head, 1);
    double total = 0.0;
    for (const auto& row : rows) {
      const double hi = row.at("duration_ms").get<double>();
      const double spread = row.at("spread_ms").get<double>();
      total += hi;
      std::vector<std::string> cells = {
          steps ? std::to_string(row.at("step").get<std::int64_t>())
                : display_name(row.at("name").get<std::string>(), 40),
          fixed(hi, 3),
          fixed(row.at("min_ms").get<double>(), 3),
          fixed(spread, 3),
          fixed(hi > 0 ? 100.0 * spread / hi : 0.0, 1),
          std::to_string(row.at("straggler_rank").get<std::int64_t>())};
      for (const auto r : ranks) {
        std::string cell = "-";
        for (const auto& v : row.at("ranks"))
          if (v.at("rank").get<std::int64_t>() == r)
            cell = fixed(v.at("duration_ms").get<double>(), 3);
        cells.push_back(cell);
      }
      t.add(std::move(cells));
    }
    out += std::string("\n") + title + "\n";
    t.render(out);
    if (steps) out += "  sum of critical paths: " + fixed(total, 3) + " ms\n";
  };
  spread_table("denoise steps (critical path = slowest rank):", cp.at("denoise_steps"), true);
  spread_table("stages (critical path = slowest rank):", cp.at("stages"), false);

  const ordered_json& comm = ds.at("comm");
  auto comm_table = [&](const char* title, const ordered_json& rows, bool scopes) {
    text_table t({scopes ? "scope" : "step", "rank", "kernels", "comm busy ms", "overlapped ms",
                  "exposed ms", "overlapped %"},
                 1);
    // Scope paths with each name relative to its parent's, cut in the middle: distinct rows.
    std::vector<std::string> paths, shown;
    if (scopes)
      for (const auto& row : rows) {
        paths.push_back(row.at("path").get<std::string>());
        shown.push_back(diffscope::detail::compact_path(printable(paths.back())));
      }
    const std::vector<std::string> labels = diffscope::detail::distinct_labels(shown, paths, 60);
    // Attention scopes first: they carry the sequence-parallel all-to-alls.
    for (const bool attention : {true, false})
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& row = rows[i];
        if (scopes && row.at("attention").get<bool>() != attention) continue;
        if (!scopes && !attention) continue;
        std::string label = scopes ? labels[i] + (attention ? " [attention]" : "")
                                   : std::to_string(row.at("step").get<std::int64_t>());
        for (const auto& c : row.at("ranks")) {
          t.add({label, std::to_string(c.at("rank").get<std::int64_t>()),
                 std::to_string(c.at("kernels").get<std::int64_t>()),
                 fixed(c.at("busy_ms").get<double>(), 3),
                 fixed(c.at("overlapped_ms").get<double>(), 3),
                 fixed(c.at("exposed_ms").get<double>(), 3),
                 fixed(c.at("overlapped_pct").get<double>(), 1)});
          label = "";
        }
      }
    out += std::string("\n") + title + "\n";
    if (t.empty())
      out += "  none (no communication kernels in the inputs' scopes)\n";
    else
      t.render(out);
  };
  comm_table("communication per scope (overlapped = other work ran meanwhile, exposed = alone):",
             comm.at("scopes"), true);
  if (!comm.at("denoise_steps").empty())
    comm_table("communication per denoise step:", comm.at("denoise_steps"), false);
  return out;
}

}  // namespace diffscope::cli
