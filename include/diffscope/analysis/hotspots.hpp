// diffscope: hotspot analysis. Ranks GPU operations by busy time (overall, per category, per
// scope, per step) and says which of SGLang diffusion's fast paths (sglang/kernel_families.hpp)
// are engaged or missed, with evidence, so a "new" hotspot is not one an existing fused kernel
// already covers. Renderers: output/hotspots_report.hpp. See docs/hotspots.md. No CUDA, CUPTI
// or JSON library.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <diffscope/analysis/kernel_classifier.hpp>
#include <diffscope/results.hpp>
#include <diffscope/sglang/kernel_families.hpp>

namespace diffscope {

/// Start and end (any unit, the same for all) of one GPU operation, for overlap checks.
struct op_interval {
  double start = 0, end = 0;
};

/// Intervals of the all-to-all and attention kernels of a run (from a trace), for the
/// Ulysses/USP overlap check. `available` false: no timestamps, the check is not made.
struct overlap_input {
  bool available = false;
  bool truncated = false;  ///< the intervals cover only the first events (memory cap)
  std::vector<op_interval> all_to_all, attention;
};

/// One ranked kernel name (entries of the same name in several scopes merged).
struct ranked_kernel {
  std::string name, kind, category;
  std::uint64_t count = 0;
  double total_ms = 0, mean_ms = 0, share = 0;  ///< share: % of all operation time
};

struct category_total {
  std::string category;
  std::uint64_t count = 0;
  double total_ms = 0, share = 0;
};

struct scope_hotspot {
  std::string path;
  std::uint64_t count = 0;
  double total_ms = 0, share = 0;
  std::string top_kernel;
  double top_kernel_ms = 0;
};

struct step_hotspot {
  std::int64_t step = 0;
  std::uint64_t count = 0;  ///< operations (0 when only the step's busy time is known)
  double busy_ms = 0;
  std::string top_kernel;  ///< "" when per-step kernels are unknown
  double top_kernel_ms = 0;
};

/// A fast-path family seen in the data. status: "engaged" (its kernels ran), "missed" (the
/// separate kernels it replaces ran instead; `hint` says what to try) or "unchecked" (the
/// data cannot tell, `evidence` says why).
struct family_finding {
  std::string family, title, status;
  std::vector<std::string> kernels;  ///< evidence kernels, by time, at most 4
  std::vector<std::string> members;  ///< every evidence kernel name, by time (the kernel diff)
  std::uint64_t count = 0;           ///< operations of the evidence kernels
  double time_ms = 0;                ///< their combined time
  std::string evidence;              ///< one line: what was seen, where
  std::string hint;                  ///< for "missed": what would be faster
};

/// The category row of a dump's operations that its kernel list leaves out.
inline constexpr char unlisted_category[] = "(not listed)";

struct hotspot_report {
  /// All operation time (kernels, copies, sets) and operations: results::window's when the
  /// kernels listed are fewer (a dump lists its longest), else the kernels' summed.
  double total_ms = 0;
  std::uint64_t operations = 0;
  std::uint64_t kernel_names = 0;  ///< distinct names, listed in `kernels` or not
  bool default_rules = true;
  std::vector<ranked_kernel> kernels;  ///< by total, descending (SGLang's order)
  std::vector<category_total> categories;
  std::vector<scope_hotspot> scopes;
  std::vector<step_hotspot> steps;
  std::vector<family_finding> families;
};

namespace detail {

struct compiled_family {
  const family_spec* spec;
  std::regex engaged;
  std::array<std::optional<std::regex>, 2> pieces;
};

/// Every regex of the family checks, compiled once per process.
struct hotspot_statics {
  std::vector<compiled_family> families;
  std::vector<std::regex> fallbacks;
  std::regex attention_scope;
};

inline const hotspot_statics& statics() {
  static const hotspot_statics s = [] {
    hotspot_statics h;
    const auto flags = std::regex::ECMAScript | std::regex::optimize;
    for (const family_spec& f : family_table) {
      compiled_family c{&f, std::regex(f.engaged, flags), {}};
      for (std::size_t i = 0; i < f.pieces.size(); ++i)
        if (f.pieces[i] != nullptr) c.pieces[i] = std::regex(f.pieces[i], flags);
      h.families.push_back(std::move(c));
    }
    for (const fallback_spec& fb : attention_fallbacks) h.fallbacks.emplace_back(fb.regex, flags);
    h.attention_scope = std::regex(attention_scope_regex, flags | std::regex::icase);
    return h;
  }();
  return s;
}

struct scoped_entry {
  const kernel_result* k;
  bool in_attention_scope;
};

inline std::string ms_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

/// Fills evidence kernels, count and time from entries (merged by name, by time).
inline void set_evidence(family_finding& f, const std::vector<const kernel_result*>& ks) {
  std::vector<std::pair<std::string, double>> by_name;
  for (const kernel_result* k : ks) {
    f.count += k->count;
    f.time_ms += k->total_ms;
    auto it = std::find_if(by_name.begin(), by_name.end(),
                           [&](const auto& p) { return p.first == k->name; });
    if (it == by_name.end()) {
      by_name.emplace_back(k->name, k->total_ms);
    } else {
      it->second += k->total_ms;
    }
  }
  std::stable_sort(by_name.begin(), by_name.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (std::size_t i = 0; i < by_name.size() && i < 4; ++i) f.kernels.push_back(by_name[i].first);
  for (const auto& p : by_name) f.members.push_back(p.first);
}

/// Sum of the parts of `a` intervals covered by the union of `b` intervals.
inline double overlapped_time(const std::vector<op_interval>& a, std::vector<op_interval> b) {
  std::sort(b.begin(), b.end(),
            [](const op_interval& x, const op_interval& y) { return x.start < y.start; });
  std::vector<op_interval> u;  // union of b, sorted, disjoint
  for (const op_interval& i : b) {
    if (!u.empty() && i.start <= u.back().end) {
      u.back().end = std::max(u.back().end, i.end);
    } else {
      u.push_back(i);
    }
  }
  double covered = 0;
  for (const op_interval& x : a) {
    auto it = std::upper_bound(u.begin(), u.end(), x.start,
                               [](double s, const op_interval& i) { return s < i.end; });
    for (; it != u.end() && it->start < x.end; ++it)
      covered += std::min(x.end, it->end) - std::max(x.start, it->start);
  }
  return covered;
}

inline void check_families(const std::vector<scoped_entry>& entries, bool has_scopes,
                           const overlap_input& ov, hotspot_report& out) {
  const hotspot_statics& st = statics();
  for (const compiled_family& cf : st.families) {
    const family_spec& f = *cf.spec;
    family_finding fnd;
    fnd.family = f.id;
    fnd.title = f.title;
    if (f.check == family_check::attention_backend) {
      std::vector<const kernel_result*> engaged;
      std::vector<std::vector<const kernel_result*>> fallback(st.fallbacks.size());
      for (const scoped_entry& e : entries) {
        bool is_fallback = false;
        for (std::size_t i = 0; i < st.fallbacks.size(); ++i) {
          if (!regex_finds(st.fallbacks[i], e.k->name)) continue;
          is_fallback = true;
          if (!attention_fallbacks[i].scoped || !has_scopes || e.in_attention_scope)
            fallback[i].push_back(e.k);
          break;
        }
        if (!is_fallback && regex_finds(cf.engaged, e.k->name)) engaged.push_back(e.k);
      }
      std::vector<const kernel_result*> seen;
      std::string labels;
      for (std::size_t i = 0; i < fallback.size(); ++i) {
        // Softmax outside any scope is evidence only when no flash kernel ran at all.
        if (fallback[i].empty() ||
            (attention_fallbacks[i].scoped && !has_scopes && !engaged.empty()))
          continue;
        seen.insert(seen.end(), fallback[i].begin(), fallback[i].end());
        labels += (labels.empty() ? "" : ", ") + std::string(attention_fallbacks[i].label);
      }
      if (!seen.empty()) {
        fnd.status = "missed";
        set_evidence(fnd, seen);
        fnd.evidence = labels + ": " + std::to_string(fnd.count) + " kernels, " +
                       ms_text(fnd.time_ms) + " ms" +
                       (engaged.empty() ? "" : " (flash/fmha kernels ran too)");
        fnd.hint = f.hint;
      } else if (!engaged.empty()) {
        fnd.status = "engaged";
        set_evidence(fnd, engaged);
        fnd.evidence = "flash/fmha attention kernels: " + std::to_string(fnd.count) + " kernels, " +
                       ms_text(fnd.time_ms) + " ms";
      } else {
        continue;
      }
      out.families.push_back(std::move(fnd));
      continue;
    }

    std::vector<const kernel_result*> engaged;
    std::array<std::vector<const kernel_result*>, 2> parts;
    for (const scoped_entry& e : entries) {
      if (regex_finds(cf.engaged, e.k->name)) {
        engaged.push_back(e.k);
        continue;
      }
      if (f.scoped && has_scopes && !e.in_attention_scope) continue;
      std::array<bool, 2> hit{false, false};
      std::size_t wanted = 0, hits = 0;
      for (std::size_t i = 0; i < 2; ++i) {
        if (!cf.pieces[i]) continue;
        ++wanted;
        hit[i] = regex_finds(*cf.pieces[i], e.k->name);
        hits += hit[i];
      }
      if (wanted > 1 && hits == wanted) continue;  // one kernel doing every part: fused
      for (std::size_t i = 0; i < 2; ++i)
        if (hit[i]) parts[i].push_back(e.k);
    }

    if (f.check == family_check::overlap) {
      if (parts[0].empty()) {
        if (engaged.empty()) continue;
        fnd.status = "engaged";
        set_evidence(fnd, engaged);
        fnd.evidence = "ring attention kernels: " + std::to_string(fnd.count) + " kernels";
        out.families.push_back(std::move(fnd));
        continue;
      }
      set_evidence(fnd, parts[0]);
      if (!ov.available) {
        fnd.status = "unchecked";
        fnd.evidence = "all-to-all kernels (" + ms_text(fnd.time_ms) +
                       " ms); overlap with attention needs timestamps (a trace)";
      } else if (ov.all_to_all.empty()) {
        fnd.status = "unchecked";
        fnd.evidence = "all-to-all kernels seen but none had timestamps";
      } else {
        double a2a = 0;
        for (const op_interval& i : ov.all_to_all) a2a += i.end - i.start;
        const double covered = overlapped_time(ov.all_to_all, ov.attention);
        const double frac = a2a > 0 ? covered / a2a : 0;
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "%.1f%% of %zu all-to-all intervals' time overlaps attention", 100.0 * frac,
                      ov.all_to_all.size());
        fnd.evidence = buf;
        if (ov.truncated) fnd.evidence += " (first events only: interval cap reached)";
        if (frac < 0.1) {
          fnd.status = "missed";
          fnd.hint = f.hint;
        } else {
          fnd.status = "engaged";
        }
      }
      out.families.push_back(std::move(fnd));
      continue;
    }

    if (!engaged.empty()) {
      fnd.status = "engaged";
      set_evidence(fnd, engaged);
      fnd.evidence = std::to_string(fnd.count) + " kernels, " + ms_text(fnd.time_ms) + " ms";
      out.families.push_back(std::move(fnd));
      continue;
    }
    const bool has_pieces = f.pieces[0] != nullptr;
    bool all = has_pieces;
    for (std::size_t i = 0; i < 2; ++i)
      if (f.pieces[i] != nullptr && parts[i].empty()) all = false;
    if (!all) continue;
    std::vector<const kernel_result*> ev = parts[0];
    for (const kernel_result* k : parts[1])
      if (std::find(ev.begin(), ev.end(), k) == ev.end()) ev.push_back(k);
    fnd.status = "missed";
    set_evidence(fnd, ev);
    fnd.evidence =
        std::to_string(fnd.count) + " separate kernels, " + ms_text(fnd.time_ms) + " ms combined" +
        (f.scoped ? (has_scopes ? " in attention/norm_rope scopes" : " (no scopes: whole run)")
                  : "");
    fnd.hint = f.hint;
    out.families.push_back(std::move(fnd));
  }
}

}  // namespace detail

/// What a kernel is for the Ulysses/USP overlap check.
enum class overlap_role { none, all_to_all, attention };

inline overlap_role classify_overlap_role(std::string_view name) {
  for (const detail::compiled_family& cf : detail::statics().families) {
    if (cf.spec->check != detail::family_check::overlap) continue;
    if (detail::regex_finds(*cf.pieces[0], name)) return overlap_role::all_to_all;
    if (detail::regex_finds(*cf.pieces[1], name)) return overlap_role::attention;
  }
  return overlap_role::none;
}

/// Ranks and classifies the operations of `r` (results.kernels; per-step detail from
/// results.trace when it was recorded) and checks the fast-path families. `ov`: operation
/// intervals for the overlap check; when absent they come from results.trace, if any.
inline hotspot_report analyze_hotspots(const results& r, const kernel_classifier& rules,
                                       const overlap_input* ov = nullptr) {
  hotspot_report rep;
  rep.default_rules = rules.is_default();
  const detail::hotspot_statics& st = detail::statics();

  std::map<std::string, category> scope_cat;
  for (const scope_result& s : r.scopes) scope_cat.emplace(s.path, s.cat);
  const auto in_attention_scope = [&](const std::string& path) {
    if (path.empty()) return false;
    for (std::size_t end = path.size();;) {  // the path and each of its parents
      const auto it = scope_cat.find(path.substr(0, end));
      if (it != scope_cat.end() &&
          (it->second == category::attention || it->second == category::norm_rope))
        return true;
      const std::size_t slash = path.rfind('/', end - 1);
      if (slash == std::string::npos || slash == 0) break;
      end = slash;
    }
    return detail::regex_finds(st.attention_scope, path);
  };

  std::vector<detail::scoped_entry> entries;
  std::unordered_map<std::string, std::size_t> by_name;
  std::map<std::string, scope_hotspot> scopes;
  std::map<std::string, std::map<std::string, double>> scope_kernels;
  bool has_scopes = false;
  for (const kernel_result& k : r.kernels) {
    entries.push_back({&k, in_attention_scope(k.scope_path)});
    rep.total_ms += k.total_ms;
    rep.operations += k.count;
    auto [it, fresh] = by_name.emplace(k.name, rep.kernels.size());
    if (fresh) {
      ranked_kernel rk;
      rk.name = k.name;
      rk.kind = k.kind;
      rk.category = rules.classify(k.name, k.kind);
      rep.kernels.push_back(std::move(rk));
    }
    ranked_kernel& rk = rep.kernels[it->second];
    rk.count += k.count;
    rk.total_ms += k.total_ms;
    if (!k.scope_path.empty()) {
      has_scopes = true;
      scope_hotspot& s = scopes[k.scope_path];
      s.path = k.scope_path;
      s.count += k.count;
      s.total_ms += k.total_ms;
      scope_kernels[k.scope_path][k.name] += k.total_ms;
    }
  }
  // A dump's kernels are its longest: shares are of its window's own totals.
  const double listed_ms = rep.total_ms;
  const std::uint64_t listed_ops = rep.operations;
  if (r.window.gpu.measured && r.window.gpu.operations() > rep.operations) {
    rep.total_ms = r.window.gpu.busy_ms;
    rep.operations = r.window.gpu.operations();
  }
  rep.kernel_names = std::max<std::uint64_t>(r.window.kernel_names, rep.kernels.size());
  // SGLang's order: total descending (ties: name, so output is stable).
  std::sort(rep.kernels.begin(), rep.kernels.end(),
            [](const ranked_kernel& a, const ranked_kernel& b) {
              return a.total_ms != b.total_ms ? a.total_ms > b.total_ms : a.name < b.name;
            });
  const auto share = [&](double v) { return rep.total_ms > 0 ? 100.0 * v / rep.total_ms : 0.0; };
  std::vector<std::string> order = rules.categories();
  std::map<std::string, category_total> cats;
  for (ranked_kernel& k : rep.kernels) {
    k.mean_ms = k.count > 0 ? k.total_ms / static_cast<double>(k.count) : 0;
    k.share = share(k.total_ms);
    category_total& c = cats[k.category];
    c.category = k.category;
    c.count += k.count;
    c.total_ms += k.total_ms;
  }
  for (auto& [name, c] : cats) {
    c.share = share(c.total_ms);
    rep.categories.push_back(c);
  }
  std::stable_sort(
      rep.categories.begin(), rep.categories.end(),
      [](const category_total& a, const category_total& b) { return a.total_ms > b.total_ms; });
  if (rep.operations > listed_ops) {  // the rest of a dump's window: no name, no category
    category_total rest;
    rest.category = unlisted_category;
    rest.count = rep.operations - listed_ops;
    rest.total_ms = std::max(0.0, rep.total_ms - listed_ms);
    rest.share = share(rest.total_ms);
    rep.categories.push_back(rest);
  }

  for (auto& [path, s] : scopes) {
    s.share = share(s.total_ms);
    for (const auto& [name, ms] : scope_kernels[path]) {
      if (ms > s.top_kernel_ms) {
        s.top_kernel = name;
        s.top_kernel_ms = ms;
      }
    }
    rep.scopes.push_back(s);
  }
  std::stable_sort(
      rep.scopes.begin(), rep.scopes.end(),
      [](const scope_hotspot& a, const scope_hotspot& b) { return a.total_ms > b.total_ms; });

  // Per step: from recorded operations when there are any, else the steps' busy time.
  std::map<std::int64_t, step_hotspot> steps;
  std::map<std::int64_t, std::map<std::string, double>> step_kernels;
  for (const trace_op& op : r.trace.ops) {
    if (op.step < 0 || op.end_ns < op.start_ns) continue;
    step_hotspot& s = steps[op.step];
    s.step = op.step;
    s.count += 1;
    const double ms = static_cast<double>(op.end_ns - op.start_ns) / 1e6;
    s.busy_ms += ms;
    step_kernels[op.step][op.name] += ms;
  }
  if (steps.empty()) {
    for (const step_result& s : r.steps) {
      if (!s.gpu.measured) continue;
      steps[s.step] = {s.step, 0, s.gpu.busy_ms, {}, 0};
    }
  }
  for (auto& [step, s] : steps) {
    for (const auto& [name, ms] : step_kernels[step]) {
      if (ms > s.top_kernel_ms) {
        s.top_kernel = name;
        s.top_kernel_ms = ms;
      }
    }
    rep.steps.push_back(s);
  }

  overlap_input from_trace;
  if (ov == nullptr && r.trace.enabled && !r.trace.ops.empty()) {
    from_trace.available = true;
    from_trace.truncated = r.faults.trace_events_dropped > 0;
    for (const trace_op& op : r.trace.ops) {
      const op_interval i{static_cast<double>(op.start_ns), static_cast<double>(op.end_ns)};
      const overlap_role role = classify_overlap_role(op.name);
      if (role == overlap_role::all_to_all) from_trace.all_to_all.push_back(i);
      if (role == overlap_role::attention) from_trace.attention.push_back(i);
    }
  }
  detail::check_families(entries, has_scopes, ov != nullptr ? *ov : from_trace, rep);
  return rep;
}

/// analyze_hotspots with SGLang's default category rules.
inline hotspot_report analyze_hotspots(const results& r) {
  return analyze_hotspots(r, kernel_classifier());
}

/// Each step's busy by kernel category, from its busy by kernel name (step_result::kernels):
/// every category with an operation, in the rules' order. Marks the steps measured.
inline void categorise_steps(std::vector<step_result>& steps, const kernel_classifier& rules) {
  const std::vector<std::string> order = rules.categories();
  for (step_result& s : steps) {
    if (!s.traced) continue;  // sampled mode: only its span was timed
    std::vector<double> ms(order.size(), 0.0);
    std::vector<char> seen(order.size(), 0);
    for (const step_kernel_busy& k : s.kernels) {
      const std::size_t i = static_cast<std::size_t>(
          std::find(order.begin(), order.end(), rules.classify(k.name, k.kind)) - order.begin());
      if (i == order.size()) continue;  // categories() holds every category classify() gives
      ms[i] += k.busy_ms;
      seen[i] = 1;
    }
    s.categories.clear();
    for (std::size_t i = 0; i < order.size(); ++i)
      if (seen[i] != 0) s.categories.push_back({order[i], ms[i]});
    s.categories_measured = true;
  }
}

}  // namespace diffscope
