// `diffscope report`: perf dumps into run_views (report_model.hpp). Kernel categories and
// fast-path findings come from analysis/hotspots.hpp, as the console's hotspots do.
#include "report_model.hpp"

#include <algorithm>
#include <unordered_map>

#include <diffscope/analysis/figures.hpp>
#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/results.hpp>
#include <diffscope/util/text_table.hpp>

#include "../lib/compare.hpp"
#include "../lib/dump_results.hpp"

namespace diffscope::cli::report {

namespace {

/// The dump reader's typed access (lib/dump_results.hpp), and the report's GPU and
/// communication figures.
struct keys : detail_dump_results::reader {
  gpu_numbers gpu(const ordered_json& o, const std::string& at) const {
    gpu_numbers g;
    const ordered_json* v = object(o, "gpu", at);
    if (v == nullptr) return g;
    const auto busy = number(*v, "busy_ms", at + ".gpu");
    const auto env = number(*v, "envelope_ms", at + ".gpu");
    if (!busy || !env) bad(at + ".gpu", "lacks busy_ms/envelope_ms");
    g.has = true;
    g.busy_ms = *busy;
    g.envelope_ms = *env;
    g.estimated = boolean(*v, "estimated", at + ".gpu").value_or(false);
    return g;
  }
  comm_numbers comm(const ordered_json& o, const std::string& at) const {
    comm_numbers c;
    c.rank = integer(o, "rank", at).value_or(-1);
    c.busy_ms = number(o, "busy_ms", at).value_or(0);
    c.overlapped_ms = number(o, "overlapped_ms", at).value_or(0);
    c.exposed_ms = number(o, "exposed_ms", at).value_or(c.busy_ms - c.overlapped_ms);
    c.kernels = integer(o, "kernels", at).value_or(0);
    return c;
  }
};

std::string fixed_text(double v, int decimals) {
  return diffscope::detail::fixed(v, decimals);
}

/// The console's overhead line (output/summary.hpp) from the dump's overhead object.
std::string overhead_line(const keys& k, const ordered_json& o, const std::string& mode) {
  const std::string at = "diffscope.overhead";
  auto n = [&](const char* key) { return k.number(o, key, at).value_or(0); };
  auto whole = [&](const char* key) { return std::to_string(static_cast<std::int64_t>(n(key))); };
  if (mode == "perf")
    return whole("ranges") + " ranges, " + whole("timed_scopes") + " timed with device events; " +
           fixed_text(n("per_timed_scope_ns"), 0) + " ns per timed scope, " +
           fixed_text(n("per_range_ns"), 0) + " ns per range; no launch callbacks";
  return whole("ranges") + " ranges, " + whole("callbacks") + " callbacks, " + whole("records") +
         " records in " + whole("buffers") + " buffers; " +
         fixed_text(n("per_launch_callback_ns"), 0) + " ns per launch callback, " +
         fixed_text(n("per_range_ns"), 0) + " ns per range";
}

void read_timed(const keys& k, const ordered_json& ds, bool stages, run_view& r) {
  const char* name = stages ? "stages" : "steps";
  const ordered_json* a = k.array(ds, name, "diffscope");
  if (a == nullptr || a->empty()) return;
  std::vector<timed_row> rows;
  k.each_object(
      *a, std::string("diffscope.") + name, [&](const ordered_json& o, const std::string& at) {
        timed_row t;
        if (stages) {
          t.name = k.string(o, "name", at).value_or("unknown");
        } else {
          t.step = k.integer(o, "step", at).value_or(static_cast<std::int64_t>(rows.size()));
          t.name = std::to_string(t.step);
        }
        t.host_ms = k.number(o, "host_ms", at);
        t.gpu = k.gpu(o, at);
        t.duration_source = k.string(o, "duration_source", at).value_or("");
        if (const ordered_json* g = k.object(o, "gpu", at))
          t.span_ms = k.number(*g, "span_ms", at + ".gpu");
        t.traced = k.boolean(o, "traced", at).value_or(true);
        if (const ordered_json* c = stages ? nullptr : k.object(o, "categories", at)) {
          t.categories.emplace();
          for (auto it = c->begin(); it != c->end(); ++it)
            t.categories->emplace_back(
                it.key(), detail::number_at(it.value(), k.file, at + ".categories." + it.key()));
        }
        t.duration_ms = k.number(o, "duration_ms", at)
                            .value_or(t.gpu.has ? t.gpu.envelope_ms : t.host_ms.value_or(0));
        rows.push_back(std::move(t));
      });
  (stages ? r.stages : r.steps) = std::move(rows);
  (stages ? r.stages_detailed : r.steps_detailed) = true;
}

void read_scopes(const keys& k, const ordered_json& ds, run_view& r) {
  const ordered_json* raw = k.array(ds, "scopes", "diffscope");
  std::unordered_map<std::string, std::int64_t> index;
  for (std::size_t i = 0; i < r.dump.scopes.size(); ++i) {
    const dump_scope& s = r.dump.scopes[i];
    scope_row row;
    row.path = s.path;
    row.category = s.category;
    row.name = last_element(s.path);
    if (s.has_gpu) {
      row.gpu = {true, s.busy_ms, s.envelope_ms, s.estimated};
      r.scopes_have_gpu = true;
    }
    if (s.comm.present)
      row.comm =
          comm_numbers{-1, s.comm.busy_ms, s.comm.overlapped_ms, s.comm.exposed_ms, s.comm.kernels};
    // The reader kept one row per entry, in order: the same index holds the rest.
    if (raw != nullptr && i < raw->size()) {
      const ordered_json& o = (*raw)[i];
      const std::string at = "diffscope.scopes[" + std::to_string(i) + "]";
      row.calls = k.integer(o, "calls", at);
      if (const ordered_json* h = k.object(o, "host", at)) row.host_ms = k.number(*h, "sum_ms", at);
    }
    // The nearest enclosing path that is a scope of its own (a path may skip levels).
    for (std::size_t cut = row.path.rfind('/'); cut != std::string::npos && cut > 0;
         cut = row.path.rfind('/', cut - 1)) {
      const auto it = index.find(row.path.substr(0, cut));
      if (it != index.end()) {
        row.parent = it->second;
        row.depth = r.scopes[static_cast<std::size_t>(it->second)].depth + 1;
        row.name = row.path.substr(cut + 1);
        break;
      }
    }
    index.emplace(row.path, static_cast<std::int64_t>(r.scopes.size()));
    r.scopes.push_back(std::move(row));
  }
}

/// The kernels the dump lists, and the console's ranking and families over them (shares of
/// the window's own total where the dump names it): what lib/dump_results.hpp reads.
void read_kernels(run_view& r) {
  const dump_results d = results_of_dump(r.dump);
  const kernel_classifier rules;
  for (const kernel_result& x : d.res.kernels) {
    kernel_row kr;
    kr.name = x.name;
    kr.kind = x.kind;
    kr.scope_path = x.scope_path;
    kr.count = x.count;
    kr.total_ms = x.total_ms;
    kr.estimated = x.estimated;
    kr.category = rules.classify(kr.name, kr.kind);
    r.kernels.push_back(std::move(kr));
  }
  r.kernels_total = d.kernels_total;
  if (d.has_window) {
    r.window = diffscope::detail::window_text(d.res);
    r.outside = diffscope::detail::outside_text(d.res.window);
  }
  if (d.res.kernels.empty()) return;
  const hotspot_report rep = analyze_hotspots(d.res, rules);
  r.ranked_kernels = rep.kernels;
  r.categories = rep.categories;
  r.families = rep.families;
}

/// diffscope.hotspots, written over every kernel of the run: preferred to what the listed
/// kernels give.
void read_hotspots(const keys& k, const ordered_json& ds, run_view& r) {
  const ordered_json* h = k.object(ds, "hotspots", "diffscope");
  if (h == nullptr) return;
  const std::string at = "diffscope.hotspots";
  if (const ordered_json* cats = k.array(*h, "categories", at); cats && !cats->empty()) {
    std::vector<category_row> rows;
    k.each_object(*cats, at + ".categories", [&](const ordered_json& o, const std::string& w) {
      category_row c;
      c.category = k.string(o, "category", w).value_or("misc");
      c.count = static_cast<std::uint64_t>(std::max(0.0, k.number(o, "count", w).value_or(0)));
      c.total_ms = k.number(o, "total_ms", w).value_or(0);
      c.share = k.number(o, "share", w).value_or(0);
      rows.push_back(std::move(c));
    });
    r.categories = std::move(rows);
    r.categories_from_dump = true;
  }
  if (const ordered_json* fams = k.array(*h, "families", at)) {
    std::vector<family_row> rows;
    k.each_object(*fams, at + ".families", [&](const ordered_json& o, const std::string& w) {
      family_row f;
      f.family = k.string(o, "family", w).value_or("");
      f.title = k.string(o, "title", w).value_or(f.family);
      f.status = k.string(o, "status", w).value_or("");
      f.evidence = k.string(o, "evidence", w).value_or("");
      f.hint = k.string(o, "hint", w).value_or("");
      f.count = static_cast<std::uint64_t>(std::max(0.0, k.number(o, "count", w).value_or(0)));
      f.time_ms = k.number(o, "time_ms", w).value_or(0);
      if (const ordered_json* ks = k.array(o, "kernels", w))
        for (std::size_t i = 0; i < ks->size(); ++i)
          f.kernels.push_back(
              detail::string_at((*ks)[i], k.file, w + ".kernels[" + std::to_string(i) + "]"));
      rows.push_back(std::move(f));
    });
    r.families = std::move(rows);
    r.families_from_dump = true;
  }
}

std::vector<spread_row> read_spread(const keys& k, const ordered_json& cp, const char* key,
                                    bool steps) {
  std::vector<spread_row> out;
  const std::string at = "diffscope.critical_path";
  const ordered_json* a = k.array(cp, key, at);
  if (a == nullptr) return out;
  k.each_object(*a, at + "." + key, [&](const ordered_json& o, const std::string& w) {
    spread_row s;
    if (steps) {
      s.step = k.integer(o, "step", w).value_or(static_cast<std::int64_t>(out.size()));
      s.name = std::to_string(s.step);
    } else {
      s.name = k.string(o, "name", w).value_or("unknown");
      // Legacy denoising_step_<i> entries are the steps again: shown as steps only.
      if (compare_detail::is_legacy_step(s.name)) return;
      if (const auto occ = k.integer(o, "occurrence", w); occ && *occ > 0)
        s.name += " (" + std::to_string(*occ + 1) + ")";
    }
    s.duration_ms = k.number(o, "duration_ms", w).value_or(0);
    s.min_ms = k.number(o, "min_ms", w).value_or(s.duration_ms);
    s.spread_ms = k.number(o, "spread_ms", w).value_or(s.duration_ms - s.min_ms);
    s.straggler = k.integer(o, "straggler_rank", w).value_or(-1);
    if (const ordered_json* rs = k.array(o, "ranks", w))
      k.each_object(*rs, w + ".ranks", [&](const ordered_json& x, const std::string& xw) {
        s.ranks.emplace_back(k.integer(x, "rank", xw).value_or(-1),
                             k.number(x, "duration_ms", xw).value_or(0));
      });
    out.push_back(std::move(s));
  });
  return out;
}

void read_merge(const keys& k, const ordered_json& ds, run_view& r) {
  if (!k.boolean(ds, "merged", "diffscope").value_or(false)) return;
  merge_view& m = r.merge;
  m.present = true;
  if (const ordered_json* ranks = k.array(ds, "ranks", "diffscope"))
    k.each_object(*ranks, "diffscope.ranks", [&](const ordered_json& o, const std::string& w) {
      m.ranks.emplace_back(
          k.integer(o, "rank", w).value_or(static_cast<std::int64_t>(m.ranks.size())),
          k.string(o, "file", w).value_or(""));
    });
  std::stable_sort(m.ranks.begin(), m.ranks.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  if (const ordered_json* cp = k.object(ds, "critical_path", "diffscope")) {
    m.rank_source = k.string(*cp, "rank_source", "diffscope.critical_path").value_or("");
    m.steps = read_spread(k, *cp, "denoise_steps", true);
    m.stages = read_spread(k, *cp, "stages", false);
  }
  if (const ordered_json* comm = k.object(ds, "comm", "diffscope"))
    if (const ordered_json* scopes = k.array(*comm, "scopes", "diffscope.comm"))
      k.each_object(
          *scopes, "diffscope.comm.scopes", [&](const ordered_json& o, const std::string& w) {
            comm_scope_row c;
            c.path = k.string(o, "path", w).value_or("");
            c.category = k.string(o, "category", w).value_or("");
            c.attention = k.boolean(o, "attention", w).value_or(false);
            if (const ordered_json* rs = k.array(o, "ranks", w))
              k.each_object(*rs, w + ".ranks", [&](const ordered_json& x, const std::string& xw) {
                c.ranks.push_back(k.comm(x, xw));
              });
            m.comm_scopes.push_back(std::move(c));
          });
}

void read_header(const keys& k, const ordered_json& ds, run_view& r) {
  if (const ordered_json* st = k.object(ds, "status", "diffscope")) {
    r.mode = k.string(*st, "mode", "diffscope.status").value_or("");
    r.perf_sample_steps = k.integer(*st, "perf_sample_steps", "diffscope.status").value_or(0);
  }
  r.sampling = sampling_of_dump(r.dump);
  if (const ordered_json* g = k.object(ds, "gate", "diffscope")) {
    r.gated = k.boolean(*g, "gated", "diffscope.gate");
    r.gate_verdict = k.string(*g, "verdict", "diffscope.gate").value_or("");
  }
  if (const ordered_json* e = k.object(ds, "environment", "diffscope")) {
    const std::string at = "diffscope.environment";
    r.gpu_name = k.string(*e, "gpu_name", at).value_or("");
    // The collector writes cudaDriverGetVersion's integer (13000: CUDA 13.0); other
    // writers a string, shown as it is.
    const ordered_json* dv = detail::find_key(*e, "driver_version");
    if (dv != nullptr && dv->is_number_integer()) {
      const long long v = dv->get<long long>();
      r.driver_version = "CUDA " + std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
    } else {
      r.driver_version = k.string(*e, "driver_version", at).value_or("");
    }
    r.hostname = k.string(*e, "hostname", at).value_or("");
    r.device_count = k.integer(*e, "device_count", at).value_or(-1);
  }
  if (const ordered_json* q = k.object(ds, "requests", "diffscope")) {
    r.requests_counted = k.integer(*q, "count", "diffscope.requests");
    r.requests_warmups = k.integer(*q, "warmups", "diffscope.requests");
  }
  if (const ordered_json* f = k.object(ds, "faults", "diffscope")) {
    r.has_faults = true;
    for (const auto& [name, v] : f->items()) {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0)
        k.bad("diffscope.faults." + name, "is not a non-negative integer");
      if (v.get<std::int64_t>() > 0) r.faults.emplace_back(name, v.get<std::uint64_t>());
    }
  }
  if (const ordered_json* u = k.array(ds, "unclosed_ranges", "diffscope"))
    r.unclosed_ranges = static_cast<std::int64_t>(u->size());
  if (const ordered_json* o = k.object(ds, "overhead", "diffscope"))
    r.overhead = overhead_line(k, *o, r.mode);
}

}  // namespace

std::string last_element(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

run_view view_of(perf_dump_data dump) {
  run_view r;
  r.dump = std::move(dump);
  r.label = compare_detail::base_name(r.dump.file);
  const keys k{{r.dump.file}};
  if (r.dump.has_diffscope) {
    const ordered_json& ds = r.dump.diffscope;
    read_header(k, ds, r);
    read_timed(k, ds, true, r);
    read_timed(k, ds, false, r);
    read_scopes(k, ds, r);
    read_kernels(r);
    read_hotspots(k, ds, r);
    read_merge(k, ds, r);
  }
  // Without diffscope's own tables: what the SGLang part holds (one number per entry).
  if (!r.stages_detailed) {
    std::unordered_map<std::string, int> seen;  // a stage that runs twice: "name (2)"
    for (const dump_stage& s : r.dump.steps) {
      if (compare_detail::is_legacy_step(s.name)) continue;  // shown as steps
      timed_row t;
      const int n = ++seen[s.name];
      t.name = n > 1 ? s.name + " (" + std::to_string(n) + ")" : s.name;
      t.duration_ms = s.duration_ms;
      r.stages.push_back(std::move(t));
    }
  }
  if (!r.steps_detailed)
    for (const dump_denoise_step& s : r.dump.denoise_steps) {
      timed_row t;
      t.step = s.step;
      t.name = std::to_string(s.step);
      t.duration_ms = s.duration_ms;
      r.steps.push_back(std::move(t));
    }
  return r;
}

}  // namespace diffscope::cli::report
