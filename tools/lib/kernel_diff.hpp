// The kernel diff (docs/compare.md, "Kernel diff"): per kernel name, each side's count, total and
// mean; kernels added, removed or not listed; ranked by the absolute change in total time and
// grouped under the fast-path families (analysis/hotspots.hpp) that apply. Computed once here;
// lib/kernel_diff_markdown.hpp (compare) and report/compare_sections.cpp (report) render it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/results.hpp>
#include <diffscope/sglang/kernel_families.hpp>
#include <diffscope/util/demangle.hpp>
#include <diffscope/util/stats.hpp>

#include "../cli.hpp"
#include "dump_reader.hpp"
#include "dump_results.hpp"
#include "hotspot_input.hpp"

namespace diffscope::cli {

/// One run's kernels as the diff reads them: a perf dump's diffscope.kernels, or the kernel and
/// memcpy events of a torch.profiler trace.
struct kernel_run {
  std::string file;  ///< the input as messages and headers name it
  bool trace = false;
  std::uint64_t events = 0;         ///< a trace's events
  results res;                      ///< kernels (a dump: one entry per name and scope) and scopes
  std::uint64_t entries_total = 0;  ///< entries the run had (a dump's kernels_total)
  std::string absent;               ///< why the run has no kernel list; "" when it has one

  /// A dump that lists only its longest entries (kernels_total above the list's length).
  bool capped() const noexcept { return res.kernels.size() < entries_total; }
  /// The shortest listed entry: no entry left off a capped list took longer.
  double floor_ms() const noexcept {
    double m = 0;
    for (std::size_t i = 0; i < res.kernels.size(); ++i)
      m = i == 0 ? res.kernels[i].total_ms : std::min(m, res.kernels[i].total_ms);
    return m;
  }
};

namespace kernel_diff_detail {

inline const ordered_json* member(const ordered_json& o, const char* key) {
  const ordered_json* v = detail::find_key(o, key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

inline std::string status_string(const ordered_json& ds, const char* key) {
  const ordered_json* st = member(ds, "status");
  const ordered_json* v = st != nullptr && st->is_object() ? member(*st, key) : nullptr;
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

}  // namespace kernel_diff_detail

/// The kernels of a dump as read by load_dump. A dump without a kernel list gets `absent`
/// (perf mode, no GPU timing, none written); a list with a value of the wrong type is
/// failure(exit_usage) naming the file and key.
inline kernel_run kernel_run_of(const perf_dump_data& d) {
  using namespace kernel_diff_detail;
  kernel_run r;
  r.file = d.file;
  if (!d.has_diffscope || !d.diffscope.is_object()) {
    r.absent = "an SGLang dump: no kernel list";
    return r;
  }
  const ordered_json& ds = d.diffscope;
  if (status_string(ds, "mode") == "perf") {
    r.absent = "a perf-mode dump: perf mode times scopes, not kernels (profile mode lists them)";
    return r;
  }
  if (!d.gpu_timing) {
    r.absent =
        "GPU timing was not measured" + (d.gpu_reason.empty() ? "" : " (" + d.gpu_reason + ")");
    return r;
  }
  const ordered_json* ks = member(ds, "kernels");
  if (ks == nullptr) {
    r.absent = "no kernel list (diffscope.kernels): a merged dump, or one written without it";
    return r;
  }
  // The same reading as hotspots' and report's: names demangled, the window's entries.
  dump_results dr = results_of_dump(d);
  r.res = std::move(dr.res);
  r.entries_total = dr.kernels_total;
  return r;
}

/// The kernels of a torch.profiler trace as hotspots_from_trace summed them (by name).
inline kernel_run kernel_run_of(hotspot_source&& src, const std::string& file) {
  kernel_run r;
  r.file = file;
  r.trace = true;
  r.events = src.events;
  r.res = std::move(src.res);
  r.entries_total = r.res.kernels.size();
  return r;
}

/// One side's value for one kernel name: medians over the side's runs of the per-run count
/// and total (a run without the kernel counts 0).
struct kernel_side_value {
  bool known = true;       ///< false: a capped list of the side does not list it
  bool at_least = false;   ///< listed, but a capped list may hold more of it past its end
  bool estimated = false;  ///< a run lists it as an estimate (sampled mode: scaled from steps)
  double count = 0, total_ms = 0;
  std::vector<double> totals;  ///< per run, in the side's order (0 where it did not run)

  double mean_ms() const noexcept { return count > 0 ? total_ms / count : 0; }
  bool ran() const noexcept { return count > 0 || total_ms > 0; }
};

struct kernel_diff_row {
  std::string name, kind;
  kernel_side_value base, now;
  int family = -1;     ///< index into kernel_diff::families; -1: no family applies
  bool fused = false;  ///< one of the family's fused kernels, else one of those it replaces

  bool known() const noexcept { return base.known && now.known; }
  double diff_ms() const noexcept { return now.total_ms - base.total_ms; }
  /// "added", "removed", "not listed in base", "not listed in new", or "" (ran on both sides).
  const char* change() const noexcept {
    if (!base.known) return "not listed in base";
    if (!now.known) return "not listed in new";
    if (!base.ran() && now.ran()) return "added";
    if (base.ran() && !now.ran()) return "removed";
    return "";
  }
};

/// A fast-path family that applies on either side, over the kernels grouped under it.
struct kernel_family_diff {
  std::string id, title;
  std::string base_status, new_status;     ///< "engaged", "missed", or "" where not seen
  const char* separate_word = "separate";  ///< the kernels the family's fused kernel replaces
  const char* fused_word = "fused";
  double base_separate = 0, new_separate = 0, base_fused = 0, new_fused = 0;  ///< launches
  double base_ms = 0, new_ms = 0;
  bool known = true;                                   ///< every kernel of it known on both sides
  bool base_at_least = false, new_at_least = false;    ///< a side's values are lower bounds
  bool base_estimated = false, new_estimated = false;  ///< a side's values hold estimates
  std::vector<std::size_t> rows;  ///< its kernels (indices into kernel_diff::rows), ranked

  double diff_ms() const noexcept { return new_ms - base_ms; }
};

/// A capped list of one run: its kernels past `listed` entries are not in the dump.
struct kernel_list_cap {
  std::string file;
  std::size_t listed = 0;
  std::uint64_t total = 0;
  double floor_ms = 0;
};

struct kernel_diff_side {
  std::vector<std::string> files;
  bool trace = false;
  double count = 0, total_ms = 0;  ///< medians over runs of every listed kernel together
  std::vector<kernel_list_cap> caps;
  bool estimated = false;  ///< some listed kernel is an estimate (a sampled-mode dump)
};

/// One place in the ranking: a family with its kernels, or a kernel no family claims.
struct kernel_diff_unit {
  int family = -1;      ///< >= 0: kernel_diff::families[family]
  std::size_t row = 0;  ///< else kernel_diff::rows[row]
};

struct kernel_diff {
  /// (file, why) for each run without a kernel list; when there is any, there are no rows.
  std::vector<std::pair<std::string, std::string>> absent;
  kernel_diff_side base, now;
  std::vector<kernel_diff_row> rows;  ///< known changes by size, then those not listed
  std::vector<kernel_family_diff> families;
  std::vector<kernel_diff_unit> ranking;  ///< families and lone kernels, largest change first
};

namespace kernel_diff_detail {

/// Per run of a side, each kernel name's (count, total), in first-seen order.
struct side_runs {
  std::vector<std::unordered_map<std::string, std::pair<double, double>>> by_name;
  std::vector<std::pair<std::string, std::string>> names;  ///< (name, kind), first seen first
  std::unordered_set<std::string> estimated;               ///< names some run lists as an estimate
};

inline double median(std::vector<double> v) {
  return v.empty() ? 0.0 : diffscope::detail::spread_of(std::move(v)).median;
}

inline kernel_diff_side side_of(const std::vector<const kernel_run*>& runs) {
  kernel_diff_side s;
  std::vector<double> counts, totals;
  for (const kernel_run* r : runs) {
    s.files.push_back(r->file);
    s.trace = s.trace || r->trace;
    double c = 0, t = 0;
    for (const kernel_result& k : r->res.kernels) {
      c += static_cast<double>(k.count);
      t += k.total_ms;
      s.estimated = s.estimated || k.estimated;
    }
    counts.push_back(c);
    totals.push_back(t);
    if (r->capped())
      s.caps.push_back({r->file, r->res.kernels.size(), r->entries_total, r->floor_ms()});
  }
  s.count = median(counts);
  s.total_ms = median(totals);
  return s;
}

inline kernel_side_value value_of(const std::vector<const kernel_run*>& runs, const side_runs& sr,
                                  const std::string& name) {
  kernel_side_value v;
  std::vector<double> counts;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto it = sr.by_name[i].find(name);
    const bool listed = it != sr.by_name[i].end();
    if (runs[i]->capped() && listed) v.at_least = true;
    if (runs[i]->capped() && !listed) v.known = false;
    counts.push_back(listed ? it->second.first : 0.0);
    v.totals.push_back(listed ? it->second.second : 0.0);
  }
  v.count = median(counts);
  v.total_ms = median(v.totals);
  v.estimated = sr.estimated.count(name) > 0;
  return v;
}

inline side_runs index_runs(const std::vector<const kernel_run*>& runs,
                            std::unordered_map<std::string, std::size_t>& seen,
                            std::vector<std::pair<std::string, std::string>>& names) {
  side_runs sr;
  for (const kernel_run* r : runs) {
    auto& m = sr.by_name.emplace_back();
    for (const kernel_result& k : r->res.kernels) {
      auto& v = m[k.name];
      v.first += static_cast<double>(k.count);
      v.second += k.total_ms;
      if (k.estimated) sr.estimated.insert(k.name);
      if (seen.emplace(k.name, names.size()).second) names.emplace_back(k.name, k.kind);
    }
  }
  return sr;
}

/// The fast-path findings of a side: every run's kernels and scopes analysed together.
inline hotspot_report findings_of(const std::vector<const kernel_run*>& runs) {
  results all;
  for (const kernel_run* r : runs) {
    all.kernels.insert(all.kernels.end(), r->res.kernels.begin(), r->res.kernels.end());
    all.scopes.insert(all.scopes.end(), r->res.scopes.begin(), r->res.scopes.end());
  }
  return analyze_hotspots(all);
}

/// A unit's place in the ranking: known changes first, by size; then the rest by the time
/// listed on the side that lists them.
struct rank_key {
  bool known = true;
  double size = 0;
  std::string name;
  bool before(const rank_key& o) const {
    if (known != o.known) return known;
    if (size != o.size) return size > o.size;
    return name < o.name;
  }
};

inline rank_key key_of(const kernel_diff_row& r) {
  if (r.known()) return {true, std::fabs(r.diff_ms()), r.name};
  return {false, std::max(r.base.total_ms, r.now.total_ms), r.name};
}

}  // namespace kernel_diff_detail

/// The diff of `now` against `base` (one run or several per side; a side's value is the
/// median over its runs). Where a run has no kernel list, `absent` says why and there are no
/// rows.
inline kernel_diff diff_kernels(const std::vector<const kernel_run*>& base,
                                const std::vector<const kernel_run*>& now) {
  using namespace kernel_diff_detail;
  kernel_diff d;
  for (const auto* side : {&base, &now})
    for (const kernel_run* r : *side)
      if (!r->absent.empty() && std::find(d.absent.begin(), d.absent.end(),
                                          std::pair{r->file, r->absent}) == d.absent.end())
        d.absent.emplace_back(r->file, r->absent);
  d.base = side_of(base);
  d.now = side_of(now);
  if (!d.absent.empty()) return d;

  std::unordered_map<std::string, std::size_t> seen;
  std::vector<std::pair<std::string, std::string>> names;
  const side_runs br = index_runs(base, seen, names);
  const side_runs nr = index_runs(now, seen, names);
  for (const auto& [name, kind] : names)
    d.rows.push_back({name, kind, value_of(base, br, name), value_of(now, nr, name), -1, false});
  std::stable_sort(d.rows.begin(), d.rows.end(),
                   [](const kernel_diff_row& a, const kernel_diff_row& b) {
                     return key_of(a).before(key_of(b));
                   });

  // Families: the fast-path findings of each side (engaged or missed; the overlap check is
  // about timing, not kernels), each kernel under one of those that name it as evidence: first
  // one whose status differs between the sides, then one whose rule could use the data (a
  // family that counts separate kernels only in attention scopes is a weak claim where there
  // are no scopes: a trace), then the first in the table's order.
  const hotspot_report fb = findings_of(base), fn = findings_of(now);
  bool scoped_data = false;
  for (const auto* side : {&base, &now})
    for (const kernel_run* r : *side)
      for (const kernel_result& k : r->res.kernels)
        scoped_data = scoped_data || !k.scope_path.empty();
  struct claim {
    const diffscope::detail::family_spec* spec = nullptr;
    const family_finding *b = nullptr, *n = nullptr;
    std::unordered_set<std::string> by_b, by_n;  // the kernels each side's finding names
    int family = -1;                             // index into d.families once used
  };
  std::vector<claim> claims;
  for (const diffscope::detail::family_spec& spec : diffscope::detail::family_table) {
    if (spec.check == diffscope::detail::family_check::overlap) continue;
    claim c;
    c.spec = &spec;
    const auto take = [&](const hotspot_report& rep, const family_finding*& f,
                          std::unordered_set<std::string>& names) {
      for (const family_finding& x : rep.families)
        if (x.family == spec.id && (x.status == "engaged" || x.status == "missed")) {
          f = &x;
          names.insert(x.members.begin(), x.members.end());
        }
    };
    take(fb, c.b, c.by_b);
    take(fn, c.n, c.by_n);
    if (c.b != nullptr || c.n != nullptr) claims.push_back(std::move(c));
  }
  for (std::size_t i = 0; i < d.rows.size(); ++i) {
    kernel_diff_row& row = d.rows[i];
    claim* pick = nullptr;
    int best = -1;
    for (claim& c : claims) {
      if (!c.by_b.count(row.name) && !c.by_n.count(row.name)) continue;
      const bool changed = (c.b ? c.b->status : "") != (c.n ? c.n->status : "");
      const int score = (changed ? 2 : 0) + (!c.spec->scoped || scoped_data ? 1 : 0);
      if (score > best) {
        best = score;
        pick = &c;
      }
    }
    if (pick == nullptr) continue;
    const claim& cl = *pick;
    const diffscope::detail::family_spec& spec = *cl.spec;
    row.fused = (cl.by_b.count(row.name) ? cl.b : cl.n)->status == "engaged";
    int& fi = pick->family;
    if (fi < 0) {
      fi = static_cast<int>(d.families.size());
      kernel_family_diff f;
      f.id = spec.id;
      f.title = spec.title;
      f.base_status = cl.b ? cl.b->status : "";
      f.new_status = cl.n ? cl.n->status : "";
      if (spec.check == diffscope::detail::family_check::attention_backend) {
        f.separate_word = "SDPA fallback";
        f.fused_word = "flash/fmha";
      }
      d.families.push_back(std::move(f));
    }
    row.family = fi;
    kernel_family_diff& f = d.families[static_cast<std::size_t>(fi)];
    f.rows.push_back(i);
    (row.fused ? f.base_fused : f.base_separate) += row.base.count;
    (row.fused ? f.new_fused : f.new_separate) += row.now.count;
    f.base_ms += row.base.total_ms;
    f.new_ms += row.now.total_ms;
    f.known = f.known && row.known();
    f.base_at_least = f.base_at_least || row.base.at_least;
    f.new_at_least = f.new_at_least || row.now.at_least;
    f.base_estimated = f.base_estimated || row.base.estimated;
    f.new_estimated = f.new_estimated || row.now.estimated;
  }

  std::vector<std::pair<kernel_diff_detail::rank_key, kernel_diff_unit>> units;
  for (std::size_t i = 0; i < d.families.size(); ++i) {
    const kernel_family_diff& f = d.families[i];
    units.push_back(
        {{f.known, f.known ? std::fabs(f.diff_ms()) : std::max(f.base_ms, f.new_ms), f.title},
         {static_cast<int>(i), 0}});
  }
  for (std::size_t i = 0; i < d.rows.size(); ++i)
    if (d.rows[i].family < 0) units.push_back({key_of(d.rows[i]), {-1, i}});
  std::stable_sort(units.begin(), units.end(),
                   [](const auto& a, const auto& b) { return a.first.before(b.first); });
  for (const auto& u : units) d.ranking.push_back(u.second);
  return d;
}

}  // namespace diffscope::cli
