// Reads a perf dump (SGLang's, or ours with its "diffscope" object) into a struct, checking the
// type of every key it uses: missing keys take compare_perf.py's defaults, unknown ones are
// ignored, a wrong type is an error naming the file and key (docs/compare.md, docs/outputs.md).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../cli.hpp"
#include "input.hpp"
#include "json_input.hpp"

namespace diffscope::cli {

/// JSON with key order kept (meta and memory checkpoints are written back by merge).
using ordered_json = nlohmann::ordered_json;

struct dump_stage {
  std::string name;
  double duration_ms = 0.0;
};

struct dump_denoise_step {
  std::int64_t step = 0;
  double duration_ms = 0.0;
};

struct dump_memory {
  std::string name;
  double allocated_mb = 0.0, reserved_mb = 0.0, peak_allocated_mb = 0.0, peak_reserved_mb = 0.0;
};

/// A "comm" object (scopes, steps, stages): communication kernel time, summed over calls.
struct dump_comm {
  bool present = false;  ///< the object was there (comm kernels ran in the region)
  double busy_ms = 0.0, overlapped_ms = 0.0, exposed_ms = 0.0;
  std::int64_t kernels = 0;
};

/// One row of diffscope.scopes[]: GPU numbers are absent (has_gpu false) when not measured.
struct dump_scope {
  std::string path;
  std::string category;  ///< "" when the dump has none
  bool has_gpu = false;
  double busy_ms = 0.0, envelope_ms = 0.0;
  bool estimated = false;  ///< gpu.estimated: scaled from sampled steps (perf mode)
  dump_comm comm;
};

/// diffscope.steps[i] / diffscope.stages[i] communication, in the dump's order.
struct dump_step_comm {
  std::int64_t step = 0;
  dump_comm comm;
};
struct dump_stage_comm {
  std::string name;
  dump_comm comm;
};

/// One dump as read. A key it lacks takes compare_perf.py's default: total_duration_ms 0, steps
/// [], a step's name "unknown" and duration_ms 0.0, commit_hash "N/A".
struct perf_dump_data {
  std::string file;  ///< the path it was read from (for messages and column labels)
  std::string timestamp, request_id, tag;
  std::string commit_hash = "N/A";
  double total_duration_ms = 0.0;
  std::vector<dump_stage> steps;
  std::vector<dump_denoise_step> denoise_steps;
  std::vector<dump_memory> memory;
  ordered_json meta = ordered_json::object();
  /// The "diffscope" object, null when the dump has none (an SGLang dump).
  ordered_json diffscope;
  bool has_diffscope = false;
  bool gpu_timing = false;  ///< diffscope.status.gpu_timing
  std::string gpu_reason;   ///< diffscope.status.reason
  std::vector<dump_scope> scopes;
  /// diffscope.environment rank / world_size / local_rank; -1 when unknown or absent.
  std::int64_t rank = -1, world_size = -1, local_rank = -1;
  std::vector<dump_step_comm> step_comm;    ///< diffscope.steps[] that have "comm"
  std::vector<dump_stage_comm> stage_comm;  ///< every diffscope.stages[] entry, comm or not
};

/// Most entries of each list a dump's reader turns into rows (steps, denoise_steps_ms,
/// memory_checkpoints, diffscope.steps, .stages, .scopes): what is made of each entry (a merge
/// keeps several rows per stage) is bounded by it, not only by the size of the text.
inline constexpr std::size_t max_dump_entries = 100000;

namespace detail {

/// Builds an ordered_json in time linear in its size. nlohmann's own builder looks each key up
/// in its object's vector (ordered_map), time quadratic in the keys of one object; here keys
/// are appended and a repeated key is resolved when the object ends: its first position and
/// its last value, as nlohmann keeps them.
class ordered_builder {
 public:
  using number_integer_t = ordered_json::number_integer_t;
  using number_unsigned_t = ordered_json::number_unsigned_t;
  using number_float_t = ordered_json::number_float_t;
  using string_t = ordered_json::string_t;
  using binary_t = ordered_json::binary_t;

  explicit ordered_builder(ordered_json& root) : root_(root) {}

  bool null() { return add(nullptr) != nullptr; }
  bool boolean(bool v) { return add(v) != nullptr; }
  bool number_integer(number_integer_t v) { return add(v) != nullptr; }
  bool number_unsigned(number_unsigned_t v) { return add(v) != nullptr; }
  bool number_float(number_float_t v, const string_t&) { return add(v) != nullptr; }
  bool string(string_t& v) { return add(std::move(v)) != nullptr; }
  bool binary(binary_t& v) { return add(ordered_json::binary(std::move(v))) != nullptr; }
  bool start_object(std::size_t) {
    stack_.push_back(add(ordered_json::object()));
    return true;
  }
  bool key(string_t& k) {
    auto& members = members_of(*stack_.back());
    members.emplace_back(std::move(k), nullptr);
    pending_ = &members.back().second;
    return true;
  }
  bool end_object() {
    resolve_repeated_keys(members_of(*stack_.back()));
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    stack_.push_back(add(ordered_json::array()));
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    error_ = e.what();
    return false;
  }
  const std::string& error() const noexcept { return error_; }

 private:
  using members = ordered_json::object_t::Container;

  static members& members_of(ordered_json& obj) {
    return static_cast<members&>(obj.get_ref<ordered_json::object_t&>());
  }

  // Pointers stay valid: a container only grows while none of its elements is open.
  ordered_json* add(ordered_json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    ordered_json& top = *stack_.back();
    if (top.is_array()) {
      auto& a = top.get_ref<ordered_json::array_t&>();
      a.push_back(std::move(v));
      return &a.back();
    }
    *pending_ = std::move(v);
    return pending_;
  }

  static void resolve_repeated_keys(members& m) {
    std::unordered_map<std::string_view, std::size_t> first;
    bool repeated = false;
    for (std::size_t i = 0; i < m.size() && !repeated; ++i)
      repeated = !first.emplace(m[i].first, i).second;
    if (!repeated) return;
    members out;
    std::unordered_map<std::string, std::size_t> at;
    for (auto& kv : m) {
      const auto [it, added] = at.emplace(kv.first, out.size());
      if (added)
        out.emplace_back(kv.first, std::move(kv.second));
      else
        out[it->second].second = std::move(kv.second);
    }
    m.swap(out);
  }

  ordered_json& root_;
  std::vector<ordered_json*> stack_;
  ordered_json* pending_ = nullptr;
  std::string error_;
};

/// Refuses a list with more than max_dump_entries entries.
inline void check_entries(std::size_t n, const std::string& file, const char* what) {
  if (n > max_dump_entries)
    throw failure(exit_usage, file + ": " + what + " has more than " +
                                  std::to_string(max_dump_entries) +
                                  " entries, the limit for a perf dump");
}

inline bool is_number(const ordered_json& v) {
  return v.is_number();
}

/// A number (not a bool, which nlohmann keeps apart), finite.
inline double number_at(const ordered_json& v, const std::string& file, const std::string& where) {
  if (!is_number(v)) throw failure(exit_usage, file + ": " + where + " is not a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw failure(exit_usage, file + ": " + where + " is not finite");
  return d;
}

inline std::string string_at(const ordered_json& v, const std::string& file,
                             const std::string& where) {
  if (!v.is_string()) throw failure(exit_usage, file + ": " + where + " is not a string");
  return v.get<std::string>();
}

inline const ordered_json* find_key(const ordered_json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

/// An optional "comm" member of `obj` (absent or null: not present).
inline dump_comm comm_at(const ordered_json& obj, const std::string& file, const std::string& at) {
  dump_comm c;
  const auto* v = find_key(obj, "comm");
  if (!v || v->is_null()) return c;
  if (!v->is_object()) throw failure(exit_usage, file + ": " + at + ".comm is not an object");
  const std::pair<const char*, double*> fields[] = {
      {"busy_ms", &c.busy_ms}, {"overlapped_ms", &c.overlapped_ms}, {"exposed_ms", &c.exposed_ms}};
  for (const auto& [key, dst] : fields) {
    const auto* x = find_key(*v, key);
    if (!x) throw failure(exit_usage, file + ": " + at + ".comm has no " + key);
    *dst = number_at(*x, file, at + ".comm." + key);
  }
  if (const auto* k = find_key(*v, "kernels")) {
    if (!k->is_number_integer() || k->get<std::int64_t>() < 0)
      throw failure(exit_usage, file + ": " + at + ".comm.kernels is not a non-negative integer");
    c.kernels = k->get<std::int64_t>();
  }
  c.present = true;
  return c;
}

/// An optional integer member; -1 when absent or null.
inline std::int64_t int_or_unknown(const ordered_json& obj, const char* key,
                                   const std::string& file, const std::string& at) {
  const auto* v = find_key(obj, key);
  if (!v || v->is_null()) return -1;
  if (!v->is_number_integer())
    throw failure(exit_usage, file + ": " + at + "." + key + " is not an integer");
  return v->get<std::int64_t>();
}

inline void read_diffscope(const ordered_json& ds, perf_dump_data& d) {
  const std::string& f = d.file;
  if (!ds.is_object()) throw failure(exit_usage, f + ": diffscope is not an object");
  d.has_diffscope = true;
  d.diffscope = ds;
  if (const auto* st = find_key(ds, "status")) {
    if (!st->is_object()) throw failure(exit_usage, f + ": diffscope.status is not an object");
    if (const auto* g = find_key(*st, "gpu_timing")) {
      if (!g->is_boolean())
        throw failure(exit_usage, f + ": diffscope.status.gpu_timing is not a boolean");
      d.gpu_timing = g->get<bool>();
    }
    if (const auto* r = find_key(*st, "reason"); r && !r->is_null())
      d.gpu_reason = string_at(*r, f, "diffscope.status.reason");
  }
  if (const auto* env = find_key(ds, "environment"); env && !env->is_null()) {
    if (!env->is_object())
      throw failure(exit_usage, f + ": diffscope.environment is not an object");
    d.rank = int_or_unknown(*env, "rank", f, "diffscope.environment");
    d.world_size = int_or_unknown(*env, "world_size", f, "diffscope.environment");
    d.local_rank = int_or_unknown(*env, "local_rank", f, "diffscope.environment");
  }
  if (const auto* steps = find_key(ds, "steps"); steps && !steps->is_null()) {
    if (!steps->is_array()) throw failure(exit_usage, f + ": diffscope.steps is not an array");
    check_entries(steps->size(), f, "diffscope.steps");
    for (std::size_t i = 0; i < steps->size(); ++i) {
      const auto& s = (*steps)[i];
      const std::string at = "diffscope.steps[" + std::to_string(i) + "]";
      if (!s.is_object()) throw failure(exit_usage, f + ": " + at + " is not an object");
      dump_step_comm sc;
      sc.step = static_cast<std::int64_t>(i);
      if (const auto* n = find_key(s, "step")) {
        if (!n->is_number_integer())
          throw failure(exit_usage, f + ": " + at + ".step is not an integer");
        sc.step = n->get<std::int64_t>();
      }
      sc.comm = comm_at(s, f, at);
      if (sc.comm.present) d.step_comm.push_back(sc);
    }
  }
  if (const auto* stages = find_key(ds, "stages"); stages && !stages->is_null()) {
    if (!stages->is_array()) throw failure(exit_usage, f + ": diffscope.stages is not an array");
    check_entries(stages->size(), f, "diffscope.stages");
    for (std::size_t i = 0; i < stages->size(); ++i) {
      const auto& s = (*stages)[i];
      const std::string at = "diffscope.stages[" + std::to_string(i) + "]";
      if (!s.is_object()) throw failure(exit_usage, f + ": " + at + " is not an object");
      dump_stage_comm sc;
      sc.name = "unknown";
      if (const auto* n = find_key(s, "name")) sc.name = string_at(*n, f, at + ".name");
      sc.comm = comm_at(s, f, at);
      d.stage_comm.push_back(std::move(sc));
    }
  }
  const auto* scopes = find_key(ds, "scopes");
  if (!scopes) return;
  if (!scopes->is_array()) throw failure(exit_usage, f + ": diffscope.scopes is not an array");
  check_entries(scopes->size(), f, "diffscope.scopes");
  for (std::size_t i = 0; i < scopes->size(); ++i) {
    const auto& s = (*scopes)[i];
    const std::string at = "diffscope.scopes[" + std::to_string(i) + "]";
    if (!s.is_object()) throw failure(exit_usage, f + ": " + at + " is not an object");
    dump_scope sc;
    const auto* p = find_key(s, "path");
    if (!p) throw failure(exit_usage, f + ": " + at + " has no path");
    sc.path = string_at(*p, f, at + ".path");
    if (const auto* c = find_key(s, "category"); c && !c->is_null())
      sc.category = string_at(*c, f, at + ".category");
    if (const auto* g = find_key(s, "gpu"); g && !g->is_null()) {
      if (!g->is_object()) throw failure(exit_usage, f + ": " + at + ".gpu is not an object");
      const auto* b = find_key(*g, "busy_ms");
      const auto* e = find_key(*g, "envelope_ms");
      if (!b || !e) throw failure(exit_usage, f + ": " + at + ".gpu lacks busy_ms/envelope_ms");
      sc.busy_ms = number_at(*b, f, at + ".gpu.busy_ms");
      sc.envelope_ms = number_at(*e, f, at + ".gpu.envelope_ms");
      sc.has_gpu = true;
      if (const auto* est = find_key(*g, "estimated")) {
        if (!est->is_boolean())
          throw failure(exit_usage, f + ": " + at + ".gpu.estimated is not a boolean");
        sc.estimated = est->get<bool>();
      }
    }
    sc.comm = comm_at(s, f, at);
    d.scopes.push_back(std::move(sc));
  }
}

}  // namespace detail

/// The keys that make a JSON object a perf dump: at least one of them, and no traceEvents.
inline constexpr const char* perf_dump_keys[] = {"total_duration_ms", "steps", "denoise_steps_ms",
                                                 "diffscope"};

/// JSON's name for the type of `j`, for messages.
inline std::string json_type_name(const ordered_json& j) {
  if (j.is_array()) return "an array";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_null()) return "null";
  if (j.is_number()) return "a number";
  return "an object";
}

/// Reads a parsed dump; `file` names it in messages. Throws failure(exit_usage).
inline perf_dump_data read_dump(const ordered_json& j, const std::string& file) {
  perf_dump_data d;
  d.file = file;
  if (!j.is_object())
    throw failure(exit_usage, file + ": not a perf dump (the top level is " + json_type_name(j) +
                                  ", not a JSON object)");
  if (j.contains("traceEvents"))
    throw failure(exit_usage, file +
                                  ": a Chrome trace (it has traceEvents), not a perf dump "
                                  "(diffscope hotspots reads traces)");
  const std::pair<const char*, std::string*> strings[] = {{"timestamp", &d.timestamp},
                                                          {"request_id", &d.request_id},
                                                          {"commit_hash", &d.commit_hash},
                                                          {"tag", &d.tag}};
  for (const auto& [key, dst] : strings)
    if (const auto* v = detail::find_key(j, key)) *dst = detail::string_at(*v, file, key);
  if (const auto* v = detail::find_key(j, "total_duration_ms"))
    d.total_duration_ms = detail::number_at(*v, file, "total_duration_ms");
  if (const auto* v = detail::find_key(j, "steps")) {
    if (!v->is_array()) throw failure(exit_usage, file + ": steps is not an array");
    detail::check_entries(v->size(), file, "steps");
    for (std::size_t i = 0; i < v->size(); ++i) {
      const auto& s = (*v)[i];
      const std::string at = "steps[" + std::to_string(i) + "]";
      if (!s.is_object()) throw failure(exit_usage, file + ": " + at + " is not an object");
      dump_stage st{"unknown", 0.0};
      if (const auto* n = detail::find_key(s, "name"))
        st.name = detail::string_at(*n, file, at + ".name");
      if (const auto* du = detail::find_key(s, "duration_ms"))
        st.duration_ms = detail::number_at(*du, file, at + ".duration_ms");
      d.steps.push_back(std::move(st));
    }
  }
  if (const auto* v = detail::find_key(j, "denoise_steps_ms")) {
    if (!v->is_array()) throw failure(exit_usage, file + ": denoise_steps_ms is not an array");
    detail::check_entries(v->size(), file, "denoise_steps_ms");
    for (std::size_t i = 0; i < v->size(); ++i) {
      const auto& s = (*v)[i];
      const std::string at = "denoise_steps_ms[" + std::to_string(i) + "]";
      if (!s.is_object()) throw failure(exit_usage, file + ": " + at + " is not an object");
      dump_denoise_step ds;
      ds.step = static_cast<std::int64_t>(i);
      if (const auto* n = detail::find_key(s, "step")) {
        if (!n->is_number_integer())
          throw failure(exit_usage, file + ": " + at + ".step is not an integer");
        ds.step = n->get<std::int64_t>();
      }
      if (const auto* du = detail::find_key(s, "duration_ms"))
        ds.duration_ms = detail::number_at(*du, file, at + ".duration_ms");
      d.denoise_steps.push_back(ds);
    }
  }
  if (const auto* v = detail::find_key(j, "memory_checkpoints")) {
    if (!v->is_object()) throw failure(exit_usage, file + ": memory_checkpoints is not an object");
    detail::check_entries(v->size(), file, "memory_checkpoints");
    for (const auto& [name, m] : v->items()) {
      const std::string at = "memory_checkpoints[\"" + name + "\"]";
      if (!m.is_object()) throw failure(exit_usage, file + ": " + at + " is not an object");
      dump_memory mem;
      mem.name = name;
      const std::pair<const char*, double*> fields[] = {
          {"allocated_mb", &mem.allocated_mb},
          {"reserved_mb", &mem.reserved_mb},
          {"peak_allocated_mb", &mem.peak_allocated_mb},
          {"peak_reserved_mb", &mem.peak_reserved_mb}};
      for (const auto& [key, dst] : fields)
        if (const auto* x = detail::find_key(m, key))
          *dst = detail::number_at(*x, file, at + "." + key);
      d.memory.push_back(std::move(mem));
    }
  }
  if (const auto* v = detail::find_key(j, "meta")) {
    if (!v->is_object()) throw failure(exit_usage, file + ": meta is not an object");
    d.meta = *v;
  }
  if (const auto* v = detail::find_key(j, "diffscope"); v && !v->is_null())
    detail::read_diffscope(*v, d);
  // Checked last, so that a key of the wrong type is named as such.
  if (std::none_of(std::begin(perf_dump_keys), std::end(perf_dump_keys),
                   [&](const char* k) { return j.contains(k); }))
    throw failure(exit_usage, file +
                                  ": not a perf dump (it has none of total_duration_ms, steps, "
                                  "denoise_steps_ms, diffscope)");
  return d;
}

/// Parses and reads a dump held in memory (the fuzz targets' entry point), under the input
/// rules: at most max_dump_bytes, one leading byte-order mark skipped, at most max_json_depth
/// levels (checked before the parser builds anything).
inline perf_dump_data parse_dump(std::string_view text, const std::string& file) {
  if (text.size() > max_dump_bytes)
    throw failure(exit_usage, too_large(file, max_dump_bytes, "a perf dump"));
  const std::string_view json = checked_json_text(text, file);
  ordered_json j;
  detail::ordered_builder builder(j);
  bool ok = false;
  try {
    ok = ordered_json::sax_parse(json.begin(), json.end(), &builder);
  } catch (const nlohmann::json::exception& e) {
    throw failure(exit_usage, file + ": not valid JSON (" + json_error_text(e) + ")");
  }
  // Parse errors and number overflows (1e999) alike.
  if (!ok) {
    const std::runtime_error why(builder.error());
    throw failure(exit_usage, file + ": not valid JSON (" + json_error_text(why) + ")");
  }
  return read_dump(j, file);
}

/// Reads a dump file ("-" = stdin; plain or gzip). Throws failure(exit_usage) naming the file
/// on any problem.
inline perf_dump_data load_dump(const std::string& path) {
  return parse_dump(read_dump_text(path), input_name(path));
}

/// load_dump of each path, in order; stdin ("-") may be given once.
inline std::vector<perf_dump_data> load_dumps(const std::vector<std::string>& paths) {
  if (std::count(paths.begin(), paths.end(), "-") > 1)
    throw failure(exit_usage, "'-' (stdin) given more than once");
  std::vector<perf_dump_data> out;
  for (const auto& p : paths) out.push_back(load_dump(p));
  return out;
}

}  // namespace diffscope::cli
