// A perf dump read back as results (results.hpp), what `hotspots` and `report` rank: the kernels
// it lists (demangled), its scopes, steps and requests, and its window, whose totals cover
// every kernel, listed or not.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <diffscope/results.hpp>
#include <diffscope/util/demangle.hpp>

#include "../cli.hpp"
#include "dump_reader.hpp"

namespace diffscope::cli {

/// A dump as results: kernels (the ones it lists), scopes (path and category), steps (GPU
/// busy, span, traced), requests (id and warm-up), window, mode and sampling.
struct dump_results {
  results res;
  std::uint64_t kernels_total = 0;  ///< kernel entries of the dump, listed or not
  bool has_window = false;          ///< it names its window (older dumps cover the whole run)
};

namespace detail_dump_results {

/// Typed access to a dump's optional keys: absent or null gives nothing, a wrong type is
/// failure(exit_usage) naming the file and the key. report_model.cpp reads with it too.
struct reader {
  const std::string& file;

  [[noreturn]] void bad(const std::string& where, const char* what) const {
    throw failure(exit_usage, file + ": " + where + " " + what);
  }
  static const ordered_json* member(const ordered_json& o, const char* key) {
    const ordered_json* v = detail::find_key(o, key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }
  const ordered_json* object(const ordered_json& o, const char* key, const std::string& at) const {
    const ordered_json* v = member(o, key);
    if (v != nullptr && !v->is_object()) bad(at + "." + key, "is not an object");
    return v;
  }
  const ordered_json* array(const ordered_json& o, const char* key, const std::string& at) const {
    const ordered_json* v = member(o, key);
    if (v != nullptr && !v->is_array()) bad(at + "." + key, "is not an array");
    if (v != nullptr) detail::check_entries(v->size(), file, (at + "." + key).c_str());
    return v;
  }
  std::optional<double> number(const ordered_json& o, const char* key,
                               const std::string& at) const {
    const ordered_json* v = member(o, key);
    if (v == nullptr) return std::nullopt;
    return detail::number_at(*v, file, at + "." + key);
  }
  std::optional<std::string> string(const ordered_json& o, const char* key,
                                    const std::string& at) const {
    const ordered_json* v = member(o, key);
    if (v == nullptr) return std::nullopt;
    return detail::string_at(*v, file, at + "." + key);
  }
  std::optional<bool> boolean(const ordered_json& o, const char* key, const std::string& at) const {
    const ordered_json* v = member(o, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) bad(at + "." + key, "is not a boolean");
    return v->get<bool>();
  }
  std::optional<std::int64_t> integer(const ordered_json& o, const char* key,
                                      const std::string& at) const {
    const ordered_json* v = member(o, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) bad(at + "." + key, "is not an integer");
    return v->get<std::int64_t>();
  }
  std::optional<std::uint64_t> count(const ordered_json& o, const char* key,
                                     const std::string& at) const {
    const ordered_json* v = member(o, key);
    if (v == nullptr) return std::nullopt;
    const double n = detail::number_at(*v, file, at + "." + key);
    if (n < 0) bad(at + "." + key, "is negative");
    return static_cast<std::uint64_t>(n);
  }
  /// Each element of an array, which must be an object.
  template <typename F>
  void each_object(const ordered_json& a, const std::string& at, F&& f) const {
    for (std::size_t i = 0; i < a.size(); ++i) {
      const std::string where = at + "[" + std::to_string(i) + "]";
      if (!a[i].is_object()) bad(where, "is not an object");
      f(a[i], where);
    }
  }
  /// {busy_ms, kernels, memcpys, memsets} (operations without the split counts as kernels);
  /// null or absent: not measured.
  op_totals totals(const ordered_json& o, const char* key, const std::string& at) const {
    op_totals t;
    const ordered_json* v = object(o, key, at);
    if (v == nullptr) return t;
    const std::string w = at + "." + key;
    t.measured = true;
    t.busy_ms = number(*v, "busy_ms", w).value_or(0);
    t.kernels = count(*v, "kernels", w).value_or(0);
    t.memcpys = count(*v, "memcpys", w).value_or(0);
    t.memsets = count(*v, "memsets", w).value_or(0);
    const std::uint64_t ops = count(*v, "operations", w).value_or(t.operations());
    if (ops > t.operations()) t.kernels += ops - t.operations();
    return t;
  }
};

inline category category_from_name(const std::string& s) {
  for (category c : {category::stage, category::denoise_step, category::attention,
                     category::norm_rope, category::request, category::other})
    if (s == category_name(c)) return c;
  return category::other;
}

}  // namespace detail_dump_results

/// A sampled-mode dump's diffscope.sampling (active false when the dump has none). Throws
/// failure(exit_usage) naming the file and the key at a value of the wrong type.
inline sampling_info sampling_of_dump(const perf_dump_data& d) {
  using detail_dump_results::reader;
  sampling_info s;
  if (!d.has_diffscope || !d.diffscope.is_object()) return s;
  const reader k{d.file};
  const ordered_json* sm = k.object(d.diffscope, "sampling", "diffscope");
  if (sm == nullptr) return s;
  const std::string at = "diffscope.sampling";
  s.active = true;
  s.rule = k.string(*sm, "rule", at).value_or("");
  s.steps = k.count(*sm, "steps", at).value_or(0);
  s.traced_steps = k.count(*sm, "traced_steps", at).value_or(0);
  if (const ordered_json* a = k.array(*sm, "traced_indices", at))
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (!(*a)[i].is_number_integer())
        k.bad(at + ".traced_indices[" + std::to_string(i) + "]", "is not an integer");
      s.traced_indices.push_back((*a)[i].get<std::int64_t>());
    }
  s.switches = k.count(*sm, "switches", at).value_or(0);
  s.switch_ms = k.number(*sm, "switch_ms", at).value_or(0);
  s.launches_traced = k.count(*sm, "launches_traced", at).value_or(0);
  s.launches_untraced_estimated = k.count(*sm, "launches_untraced_estimated", at).value_or(0);
  s.saved_callback_ms_estimated = k.number(*sm, "saved_callback_ms_estimated", at).value_or(0);
  return s;
}

/// `d`'s diffscope object as results. Throws failure(exit_usage) naming the file and the key
/// at a key of the wrong type, or a kernel entry without name or total_ms.
inline dump_results results_of_dump(const perf_dump_data& d) {
  using detail_dump_results::reader;
  dump_results out;
  results& r = out.res;
  for (const dump_scope& s : d.scopes) {
    scope_result sr;
    sr.path = s.path;
    sr.cat = detail_dump_results::category_from_name(s.category);
    r.scopes.push_back(std::move(sr));
  }
  if (!d.has_diffscope) return out;
  const ordered_json& ds = d.diffscope;
  const reader k{d.file};
  if (const ordered_json* a = k.array(ds, "kernels", "diffscope")) {
    k.each_object(*a, "diffscope.kernels", [&](const ordered_json& o, const std::string& at) {
      const auto name = k.string(o, "name", at);
      const auto total = k.number(o, "total_ms", at);
      if (!name || !total) k.bad(at, "lacks name/total_ms");
      kernel_result kr;
      kr.name = diffscope::detail::demangle(*name);  // older dumps carry mangled names
      kr.total_ms = *total;
      kr.kind = k.string(o, "kind", at).value_or("kernel");
      kr.scope_path = k.string(o, "scope_path", at).value_or("");
      kr.count = k.count(o, "count", at).value_or(0);
      kr.min_ms = k.number(o, "min_ms", at).value_or(0);
      kr.max_ms = k.number(o, "max_ms", at).value_or(0);
      kr.estimated = k.boolean(o, "estimated", at).value_or(false);  // sampled mode
      kr.error_ms = k.number(o, "error_ms", at).value_or(0);
      r.kernels.push_back(std::move(kr));
    });
  }
  out.kernels_total = std::max<std::uint64_t>(
      r.kernels.size(), k.count(ds, "kernels_total", "diffscope").value_or(0));
  if (const ordered_json* a = k.array(ds, "steps", "diffscope")) {
    k.each_object(*a, "diffscope.steps", [&](const ordered_json& o, const std::string& at) {
      const ordered_json* step = reader::member(o, "step");
      if (step == nullptr) return;
      if (!step->is_number_integer()) k.bad(at + ".step", "is not an integer");
      step_result st;
      st.step = step->get<std::int64_t>();
      if (const ordered_json* g = k.object(o, "gpu", at)) {
        const std::string ga = at + ".gpu";
        if (const auto busy = k.number(*g, "busy_ms", ga)) {
          st.gpu.measured = true;
          st.gpu.busy_ms = *busy;
        }
        st.gpu.envelope_ms = k.number(*g, "envelope_ms", ga).value_or(0);
        st.gpu.timed_calls = k.count(*g, "timed_calls", ga).value_or(0);
        st.gpu.estimated = k.boolean(*g, "estimated", ga).value_or(false);
        st.gpu.span_ms = k.number(*g, "span_ms", ga).value_or(0);  // sampled mode
        st.gpu.traced_calls = k.count(*g, "traced_calls", ga).value_or(0);
        st.gpu.error_ms = k.number(*g, "error_ms", ga).value_or(0);
      }
      st.calls = k.count(o, "calls", at).value_or(0);
      st.host_ms = k.number(o, "host_ms", at).value_or(0);
      st.traced = k.boolean(o, "traced", at).value_or(true);        // sampled mode
      if (const ordered_json* c = k.object(o, "categories", at)) {  // older dumps: none
        st.categories_measured = true;
        for (auto it = c->begin(); it != c->end(); ++it)
          st.categories.push_back(
              {it.key(), detail::number_at(it.value(), d.file, at + ".categories." + it.key())});
      }
      r.steps.push_back(std::move(st));
    });
  }
  if (const ordered_json* q = k.object(ds, "requests", "diffscope")) {
    if (const ordered_json* list = k.array(*q, "list", "diffscope.requests"))
      k.each_object(*list, "diffscope.requests.list",
                    [&](const ordered_json& o, const std::string& at) {
                      request_result rq;
                      rq.index = k.count(o, "index", at).value_or(r.requests.size());
                      rq.id = k.string(o, "id", at).value_or("");
                      if (const ordered_json* w = reader::member(o, "warmup")) {
                        if (!w->is_boolean()) k.bad(at + ".warmup", "is not a boolean");
                        rq.warmup = w->get<bool>();
                      }
                      rq.host_ms = k.number(o, "e2e_ms", at).value_or(0);
                      r.requests.push_back(std::move(rq));
                    });
  }
  if (const ordered_json* st = k.object(ds, "status", "diffscope"))
    if (const auto mode = k.string(*st, "mode", "diffscope.status")) r.status.mode = *mode;
  r.sampling = sampling_of_dump(d);
  if (const ordered_json* w = k.object(ds, "window", "diffscope")) {
    const std::string at = "diffscope.window";
    out.has_window = true;
    window_info& win = r.window;
    win.covers = k.string(*w, "covers", at).value_or(window_run);
    if (const ordered_json* a = k.array(*w, "requests", at))
      k.each_object(*a, at + ".requests", [&](const ordered_json& o, const std::string& x) {
        win.requests.push_back(k.count(o, "index", x).value_or(0));
      });
    win.kernel_names = k.count(*w, "kernel_names", at).value_or(0);
    win.gpu = k.totals(*w, "gpu", at);
    win.outside = k.totals(*w, "outside", at);
    win.warmups = k.totals(*w, "warmups", at);
  }
  return out;
}

}  // namespace diffscope::cli
