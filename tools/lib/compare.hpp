// The compare core (`diffscope compare`, `diffscope ab`): SGLang's compare_perf.py report byte
// for byte, per-scope GPU rows where both dumps carry a "diffscope" object, the timing-mode
// checks. It mirrors compare_perf.py of sglang 0.5.23 (docs/compare.md lists each rule).
#pragma once

#include <sys/time.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <ctime>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <diffscope/analysis/figures.hpp>
#include <diffscope/util/short_names.hpp>

#include "../cli.hpp"
#include "dump_reader.hpp"
#include "dump_results.hpp"

namespace diffscope::cli {

namespace compare_detail {

// compare_perf.py's status emojis, as its source spells them.
inline constexpr const char* red = "\xF0\x9F\x94\xB4";              // U+1F534
inline constexpr const char* green = "\xF0\x9F\x9F\xA2";            // U+1F7E2
inline constexpr const char* neutral = "\xE2\x9A\xAA\xEF\xB8\x8F";  // U+26AA U+FE0F
inline constexpr const char* check = "\xE2\x9C\x85";                // U+2705
inline constexpr const char* cross = "\xE2\x9D\x8C";                // U+274C
inline constexpr const char* denoising_group = "Denoising Loop";

/// Python's format(v, "[+].<prec>f"): printf's %f is correctly rounded like Python's, but
/// non-finite values differ ("-nan" vs "nan"; Python never signs a NaN negative).
inline std::string py_fixed(double v, int prec, bool plus = false) {
  if (std::isnan(v)) return plus ? "+nan" : "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : (plus ? "+inf" : "inf");
  char buf[512];
  std::snprintf(buf, sizeof buf, plus ? "%+.*f" : "%.*f", prec, v);
  return buf;
}

/// calculate_diff: (new - base, percent of base; 0 when base is 0).
inline std::pair<double, double> diff_of(double base, double now) {
  const double diff = now - base;
  return {diff, base == 0 ? 0.0 : (diff / base) * 100};
}

/// get_perf_status_emoji with its defaults rel_tol 0.1, min_abs_tol 120 ms.
inline const char* stage_status(double base, double now) {
  const double rel_tol = 0.1, min_abs_tol = 120.0;
  const double upper = std::max(base * (1 + rel_tol), base + min_abs_tol);
  const double lower = std::min(base * (1 - rel_tol), base - min_abs_tol);
  if (now > upper) return red;
  if (now < lower) return green;
  return neutral;
}

/// _get_status_emoji_from_diff_percent: +-2 % on the end-to-end time.
inline const char* e2e_status(double pct) {
  if (pct < -2.0) return check;
  if (pct > 2.0) return cross;
  return neutral;
}

/// consolidate_steps: denoising_step_<digits> entries summed into "Denoising Loop", other
/// repeated names summed; names in order of first occurrence.
struct consolidated {
  std::unordered_map<std::string, double> durations;
  std::unordered_map<std::string, long> counts;
  std::vector<std::string> order;
};

inline bool is_legacy_step(const std::string& name) {
  const std::size_t prefix = sizeof("denoising_step_") - 1;
  if (name.size() <= prefix || name.compare(0, prefix, "denoising_step_") != 0) return false;
  // Python's \d also matches non-ASCII digits; SGLang writes ASCII ones.
  return std::all_of(name.begin() + prefix, name.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

inline consolidated consolidate(const std::vector<dump_stage>& steps) {
  consolidated c;
  for (const dump_stage& s : steps) {
    const std::string key = is_legacy_step(s.name) ? denoising_group : s.name;
    auto it = c.durations.find(key);
    if (it == c.durations.end()) {
      it = c.durations.emplace(key, 0.0).first;
      c.counts[key] = 0;
      c.order.push_back(key);
    }
    it->second += s.duration_ms;
    ++c.counts[key];
  }
  return c;
}

inline double get_or(const std::unordered_map<std::string, double>& m, const std::string& k,
                     double def) {
  const auto it = m.find(k);
  return it == m.end() ? def : it->second;
}

/// Stage order: the newest file's stages first, then earlier files', then the baseline's.
inline std::vector<std::string> combined_order(const consolidated& base,
                                               const std::vector<consolidated>& others) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;  // a dump may hold many names: no linear search
  auto add = [&](const std::vector<std::string>& names) {
    for (const auto& n : names)
      if (seen.insert(n).second) out.push_back(n);
  };
  for (auto it = others.rbegin(); it != others.rend(); ++it) add(it->order);
  add(base.order);
  return out;
}

/// os.path.basename.
inline std::string base_name(const std::string& p) {
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

/// Python's datetime.now().isoformat(): local time, microseconds only when non-zero.
inline std::string now_isoformat() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  std::tm tm{};
  const std::time_t secs = tv.tv_sec;
  localtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s = buf;
  if (tv.tv_usec != 0) {
    std::snprintf(buf, sizeof buf, ".%06ld", static_cast<long>(tv.tv_usec));
    s += buf;
  }
  return s;
}

inline std::string md_cell(const std::string& s) {  // our own tables only
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

/// A dump's scopes by path (the first of a repeated path), for lookups in time independent of
/// the number of scopes.
using scope_index = std::unordered_map<std::string, const dump_scope*>;

inline scope_index index_scopes(const perf_dump_data& d) {
  scope_index idx;
  for (const auto& s : d.scopes) idx.emplace(s.path, &s);
  return idx;
}

inline const dump_scope* find_scope(const scope_index& idx, const std::string& path) {
  const auto it = idx.find(path);
  return it == idx.end() ? nullptr : it->second;
}

/// Most columns of a scope's label in section 3.
inline constexpr std::size_t scope_label_columns = 100;

/// Whether perf mode timed only stages and denoise steps in a dump (status.mode "perf",
/// status.perf_scopes "steps"): its other scopes carry no time of their own.
inline bool times_steps_only(const perf_dump_data& d) {
  if (!d.has_diffscope || !d.diffscope.is_object()) return false;
  const auto st = d.diffscope.find("status");
  if (st == d.diffscope.end() || !st->is_object()) return false;
  const auto is = [&](const char* key, const char* value) {
    const auto v = st->find(key);
    return v != st->end() && v->is_string() && v->get<std::string>() == value;
  };
  return is("mode", "perf") && is("perf_scopes", "steps");
}

/// Whether a dump says it was written in sampled mode (diffscope.status.mode "sampled").
inline bool is_sampled(const perf_dump_data& d) {
  if (!d.has_diffscope || !d.diffscope.is_object()) return false;
  const auto st = d.diffscope.find("status");
  if (st == d.diffscope.end() || !st->is_object()) return false;
  const auto v = st->find("mode");
  return v != st->end() && v->is_string() && v->get<std::string>() == "sampled";
}

/// Our section for one (base, new) pair that both carry a diffscope object: the scopes timed
/// on either side (for perf-mode dumps that timed only stages and steps, those), ranked by
/// the absolute change in busy time, the first `max_rows` of them.
inline std::string scope_section(const perf_dump_data& base, const perf_dump_data& now,
                                 const std::string& label,
                                 std::size_t max_rows = static_cast<std::size_t>(-1)) {
  std::string o = "\n#### 3. diffscope: GPU time per scope (" + label + ")\n";
  for (const perf_dump_data* d : {&base, &now}) {
    if (d->gpu_timing) continue;
    o += "GPU timing was not measured in " + base_name(d->file) +
         (d->gpu_reason.empty() ? std::string() : " (" + d->gpu_reason + ")") + ": no GPU rows.\n";
    return o;
  }
  o += "| Scope | Base busy (ms) | New busy (ms) | Busy diff (%) | Base envelope (ms) | New "
       "envelope (ms) | Envelope diff (%) |\n";
  o += "| :--- | :--- | :--- | :--- | :--- | :--- | :--- |\n";
  std::vector<std::string> paths;
  std::unordered_set<std::string> seen;
  for (const auto* d : {&base, &now})
    for (const auto& s : d->scopes)
      if (seen.insert(s.path).second) paths.push_back(s.path);
  const scope_index base_idx = index_scopes(base), now_idx = index_scopes(now);
  const auto timed = [](const dump_scope* s) {
    return s != nullptr && s->has_gpu && (s->busy_ms > 0 || s->envelope_ms > 0);
  };
  const auto busy = [](const dump_scope* s) { return s != nullptr && s->has_gpu ? s->busy_ms : 0; };
  const bool steps_only = times_steps_only(base) || times_steps_only(now);
  const auto stage_or_step = [](const dump_scope* s) {
    return s != nullptr && (s->category == "stage" || s->category == "denoise_step");
  };
  struct row {
    std::string path;
    const dump_scope *b, *n;
    double change;
  };
  std::vector<row> rows;
  for (const auto& p : paths) {
    const dump_scope* b = find_scope(base_idx, p);
    const dump_scope* n = find_scope(now_idx, p);
    if (!timed(b) && !timed(n)) continue;  // host-only or untimed on both sides
    if (steps_only && !stage_or_step(b) && !stage_or_step(n)) continue;
    rows.push_back({p, b, n, std::fabs(busy(n) - busy(b))});
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const row& x, const row& y) { return x.change > y.change; });
  const std::size_t more = rows.size() > max_rows ? rows.size() - max_rows : 0;
  rows.resize(rows.size() - more);
  bool estimates = false;
  auto cell = [&estimates](const dump_scope* s, bool busy) {
    if (!s || !s->has_gpu) return std::string("-");
    estimates |= s->estimated;
    return (s->estimated ? "~" : "") + py_fixed(busy ? s->busy_ms : s->envelope_ms, 2);
  };
  auto pct = [](const dump_scope* b, const dump_scope* n, bool busy) {
    if (!b || !n || !b->has_gpu || !n->has_gpu) return std::string("-");
    const double bv = busy ? b->busy_ms : b->envelope_ms, nv = busy ? n->busy_ms : n->envelope_ms;
    return py_fixed(diff_of(bv, nv).second, 1, true) + "%";
  };
  // Each name relative to its parent's, cut in the middle: short, and never two rows alike.
  std::vector<std::string> keys, shown;
  for (const row& r : rows) {
    keys.push_back(r.path);
    shown.push_back(diffscope::detail::compact_path(r.path));
  }
  const std::vector<std::string> labels =
      diffscope::detail::distinct_labels(shown, keys, scope_label_columns);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const dump_scope *b = rows[i].b, *n = rows[i].n;
    o += "| " + md_cell(labels[i]) + " | " + cell(b, true) + " | " + cell(n, true) + " | " +
         pct(b, n, true) + " | " + cell(b, false) + " | " + cell(n, false) + " | " +
         pct(b, n, false) + " |\n";
  }
  if (more > 0)
    o += "\n" + std::to_string(more) +
         " more scopes timed on either side changed less: `diffscope compare --scopes all` "
         "lists them.\n";
  if (estimates && (is_sampled(base) || is_sampled(now)))
    o += "\n~: an estimate, scaled from the denoise steps a sampled-mode dump traced "
         "(diffscope.sampling) to every step.\n";
  else if (estimates)
    o += "\n~: estimated from the steps perf mode sampled (diffscope.status.perf_sample_steps), "
         "not timed in every call.\n";
  return o;
}

}  // namespace compare_detail

/// diffscope.status.mode of a dump: "perf" (scope-level timing), "profile" (per-kernel
/// CUPTI) or "sampled" (both, kernels from a sample of steps); empty when the dump does not say (an
/// SGLang dump, or an older diffscope one, whose mode field said how the collector was attached,
/// e.g. "linked").
inline std::string dump_mode(const perf_dump_data& d) {
  if (!d.has_diffscope || !d.diffscope.is_object()) return "";
  const auto st = d.diffscope.find("status");
  if (st == d.diffscope.end() || !st->is_object()) return "";
  const auto m = st->find("mode");
  if (m == st->end() || m->is_null()) return "";
  if (!m->is_string())
    throw failure(exit_usage, d.file + ": diffscope.status.mode is not a string");
  const std::string mode = m->get<std::string>();
  return mode == "perf" || mode == "profile" || mode == "sampled" ? mode : "";
}

/// What the inputs' timing modes are, for the report: "perf", "profile", "" when no input
/// says, or "mixed (perf: a.json; profile: b.json)". Dumps without a mode are compatible with
/// any. A mix of known modes is refused (exit 2): a perf-mode scope time (one pair of events
/// per scope) and a profile-mode one (CUPTI per kernel, with its overhead) measure different
/// things, so their difference is not the change under test; a sampled dump is neither (its
/// scope and kernel figures are estimates from the steps it traced). allow_mixed turns it into
/// a warning on stderr.
inline std::string check_modes(const std::vector<const perf_dump_data*>& dumps, bool allow_mixed) {
  std::vector<std::string> modes;
  std::vector<std::string> files;  // per mode, the files in it
  for (const perf_dump_data* d : dumps) {
    const std::string m = dump_mode(*d);
    if (m.empty()) continue;
    const auto it = std::find(modes.begin(), modes.end(), m);
    if (it == modes.end()) {
      modes.push_back(m);
      files.push_back(compare_detail::base_name(d->file));
    } else {
      files[static_cast<std::size_t>(it - modes.begin())] +=
          ", " + compare_detail::base_name(d->file);
    }
  }
  if (modes.empty()) return "";
  if (modes.size() == 1) return modes[0];
  std::string what;
  for (std::size_t i = 0; i < modes.size(); ++i)
    what += (i ? "; " : "") + modes[i] + ": " + files[i];
  const bool sampled = std::find(modes.begin(), modes.end(), "sampled") != modes.end();
  const std::string why =
      sampled ? "; a sampled dump's scope and kernel figures are estimates from the steps it "
                "traced, not every step's"
              : "";
  if (!allow_mixed)
    throw failure(exit_usage, "inputs mix timing modes (" + what +
                                  "): their times are not comparable" + why +
                                  "; re-run in one mode, or give --allow-mixed-modes");
  std::fprintf(stderr, "diffscope compare: warning: inputs mix timing modes (%s)\n", what.c_str());
  return "mixed (" + what + ")";
}

/// Whether a dump's stage durations are device times: a diffscope dump that measured GPU
/// timing (its `duration_ms` is the GPU envelope where the stage launched GPU work). Otherwise
/// they are host times taken without synchronising (an SGLang dump, or diffscope without GPU
/// timing), which credit asynchronous GPU work to whichever stage waits for it.
inline bool device_timed(const perf_dump_data& d) {
  return d.has_diffscope && d.gpu_timing;
}

/// When the inputs mix host-timed and device-timed dumps: {host-timed files, device-timed
/// files} (base names, comma-separated); both empty otherwise.
inline std::pair<std::string, std::string> timing_mix(
    const std::vector<const perf_dump_data*>& dumps) {
  std::string host, device;
  for (const perf_dump_data* d : dumps) {
    std::string& list = device_timed(*d) ? device : host;
    list += (list.empty() ? "" : ", ") + compare_detail::base_name(d->file);
  }
  if (host.empty() || device.empty()) return {};
  return {host, device};
}

/// The note on mixed stage timings (docs/compare.md): "" when the inputs do not mix. `strict`
/// makes a mix an error (exit 2). With `markdown` the note is a quote block for the top of the
/// report; otherwise one line for stderr.
inline std::string timing_note(const std::vector<const perf_dump_data*>& dumps, bool strict,
                               bool markdown) {
  const auto [host, device] = timing_mix(dumps);
  if (host.empty()) return "";
  if (strict)
    throw failure(exit_usage, "inputs mix host-timed stage durations (" + host +
                                  ") and device-timed ones (" + device +
                                  "): different quantities; compare dumps timed the same way, "
                                  "or leave out --strict");
  const std::string what =
      "the stage durations are different quantities: host time without synchronisation in " + host +
      " (SGLang's timing, or diffscope without GPU timing), the GPU envelope in " + device +
      " (diffscope with GPU timing), so a stage's difference mixes the two (docs/compare.md)";
  if (!markdown) return "diffscope compare: note: " + what + "\n";
  return "> **Note:** " + compare_detail::md_cell(what) + ".\n\n";
}

/// For each sampled-mode dump, a line naming the steps it traced ("" when none is sampled):
/// its scope and kernel figures are estimates from them.
inline std::string sampled_lines(const std::vector<perf_dump_data>& dumps) {
  std::string o;
  for (const perf_dump_data& d : dumps) {
    if (!compare_detail::is_sampled(d)) continue;
    const sampling_info s = sampling_of_dump(d);
    o += "- " + compare_detail::base_name(d.file) + ": sampled mode, " +
         (s.active ? diffscope::detail::traced_steps_text(s) +
                         "; its scope and kernel figures are estimates from those steps"
                   : std::string("no operation traced (its status says why): stage and step "
                                 "times only")) +
         "\n";
  }
  return o;
}

/// Rows of section 3 by default (`compare --scopes`), and the value that lists them all.
inline constexpr std::size_t default_scope_rows = 20;
inline constexpr std::size_t all_scope_rows = static_cast<std::size_t>(-1);

/// The report of compare_perf.py for dumps[0] (baseline) against the others, with
/// `timestamp` in its Timestamp line; then, unless sglang_only, the inputs' timing mode (when
/// known: see check_modes) and our per-scope sections (at most `scope_rows` rows each).
/// compare_perf's part comes first and unchanged, so the mode line follows it.
inline std::string compare_report(const std::vector<perf_dump_data>& dumps,
                                  const std::string& timestamp, bool sglang_only = false,
                                  const std::string& mode = "",
                                  std::size_t scope_rows = default_scope_rows) {
  using namespace compare_detail;
  const perf_dump_data& base = dumps.at(0);
  const std::vector<perf_dump_data> others(dumps.begin() + 1, dumps.end());
  std::vector<std::string> labels;
  for (const auto& d : others) labels.push_back(base_name(d.file));
  const double base_e2e = base.total_duration_ms;
  const consolidated b = consolidate(base.steps);
  std::vector<consolidated> processed;
  for (const auto& d : others) processed.push_back(consolidate(d.steps));
  const std::vector<std::string> order = combined_order(b, processed);

  std::string o = "### Performance Comparison Report\n\n";
  if (others.size() == 1) {
    const double new_e2e = others[0].total_duration_ms;
    const auto [diff_ms, diff_pct] = diff_of(base_e2e, new_e2e);
    o += "#### 1. High-level Summary\n";
    o += "| Metric | Baseline | New | Diff | Status |\n";
    o += "| :--- | :--- | :--- | :--- | :--- |\n";
    o += "| **E2E Latency** | " + py_fixed(base_e2e, 2) + " ms | " + py_fixed(new_e2e, 2) +
         " ms | **" + py_fixed(diff_ms, 2, true) + " ms (" + py_fixed(diff_pct, 1, true) +
         "%)** | " + e2e_status(diff_pct) + " |\n";
    o += "| **Throughput** | " + py_fixed(base_e2e != 0 ? 1000 / base_e2e : 0, 2) + " req/s | " +
         py_fixed(new_e2e != 0 ? 1000 / new_e2e : 0, 2) + " req/s | - | - |\n";
    o += "\n\n";
    o += "#### 2. Stage Breakdown\n";
    o += "| Stage Name | Baseline (ms) | New (ms) | Diff (ms) | Diff (%) | Status |\n";
    o += "| :--- | :--- | :--- | :--- | :--- | :--- |\n";
    const consolidated& n = processed[0];
    for (const auto& stage : order) {
      const double bv = get_or(b.durations, stage, 0.0);
      const double nv = get_or(n.durations, stage, 0.0);
      const auto bc = b.counts.count(stage) ? b.counts.at(stage) : 1;
      const auto nc = n.counts.count(stage) ? n.counts.at(stage) : 1;
      const auto [s_diff, s_pct] = diff_of(bv, nv);
      std::string count;
      if (stage == denoising_group)
        count = nc == bc ? " (" + std::to_string(nc) + " steps)"
                         : " (" + std::to_string(bc) + "->" + std::to_string(nc) + " steps)";
      o += "| " + stage + count + " | " + py_fixed(bv, 2) + " | " + py_fixed(nv, 2) + " | " +
           py_fixed(s_diff, 2, true) + " | " + py_fixed(s_pct, 1, true) + "% | " +
           stage_status(bv, nv) + " |\n";
    }
  } else {
    std::string cols, seps;
    for (const auto& l : labels) {
      cols += cols.empty() ? l : " | " + l;
      seps += seps.empty() ? ":---" : " | :---";
    }
    o += "#### 1. High-level Summary\n";
    o += "| Metric | Baseline | " + cols + " |\n";
    o += "| :--- | :--- | " + seps + " |\n";
    o += "| **E2E Latency** | " + py_fixed(base_e2e, 2) + " ms |";
    for (const auto& d : others) {
      const double pct = diff_of(base_e2e, d.total_duration_ms).second;
      o += " " + py_fixed(d.total_duration_ms, 2) + " ms (" + py_fixed(pct, 1, true) + "%) " +
           e2e_status(pct) + " |";
    }
    o += "\n\n\n";
    o += "#### 2. Stage Breakdown\n";
    o += "| Stage Name | Baseline | " + cols + " |\n";
    o += "| :--- | :--- | " + seps + " |\n";
    for (const auto& stage : order) {
      const double bv = get_or(b.durations, stage, 0.0);
      o += "| " + stage + " | " + py_fixed(bv, 2) + " |";
      for (const auto& n : processed) {
        const double nv = get_or(n.durations, stage, 0.0);
        o += " " + py_fixed(nv, 2) + " (" + py_fixed(diff_of(bv, nv).second, 1, true) + "%) " +
             stage_status(bv, nv) + " |";
      }
      o += "\n";
    }
  }
  o += "\n\n";
  o += "<details>\n<summary>Metadata</summary>\n\n";
  o += "- Baseline Commit: `" + base.commit_hash + "`\n";
  for (std::size_t i = 0; i < others.size(); ++i)
    o += "- " + (others.size() == 1 ? std::string("New") : labels[i]) + " Commit: `" +
         others[i].commit_hash + "`\n";
  o += "- Timestamp: " + timestamp + "\n";
  o += "</details>\n";
  if (sglang_only) return o;
  if (!mode.empty()) o += "\n- diffscope timing mode: " + mode + "\n";
  o += sampled_lines(dumps);
  if (!base.has_diffscope) return o;
  for (std::size_t i = 0; i < others.size(); ++i)
    if (others[i].has_diffscope)
      o += scope_section(base, others[i], others.size() == 1 ? "New" : labels[i], scope_rows);
  return o;
}

}  // namespace diffscope::cli
