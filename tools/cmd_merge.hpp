// `diffscope merge -o OUT IN...`: per-rank perf dumps of one request into one dump. Each
// stage and each denoise step takes the maximum over ranks (the rank that finished last sets
// the critical path), total_duration_ms and memory checkpoints too; timestamp, request_id,
// commit_hash, tag and meta come from the first input. Each rank's own numbers are kept in
// the "diffscope" object (ranks[]). Written atomically, indent 2, like SGLang's dumps.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/detail/atomic_file.hpp>
#include <diffscope/version.hpp>

#include "cli.hpp"
#include "dump_reader.hpp"

namespace diffscope::cli {

namespace merge_detail {

/// A stage is the n-th entry of its name in a rank's steps (a stage may run twice).
struct stage_key {
  std::string name;
  std::size_t occurrence;
  bool operator==(const stage_key& o) const { return occurrence == o.occurrence && name == o.name; }
};

inline std::vector<stage_key> keys_of(const std::vector<dump_stage>& steps) {
  std::vector<stage_key> keys;
  for (const auto& s : steps) {
    std::size_t n = 0;
    for (const auto& k : keys) n += k.name == s.name;
    keys.push_back({s.name, n});
  }
  return keys;
}

inline std::string utc_now_iso() {
  const auto now = std::chrono::system_clock::now();
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[32];
  std::snprintf(frac, sizeof frac, ".%06lld+00:00", static_cast<long long>(us % 1000000));
  return std::string(buf) + frac;
}

}  // namespace merge_detail

/// The merged dump as JSON; `warnings` gets one line per inconsistency between inputs.
inline ordered_json merge_dumps(const std::vector<perf_dump_data>& ranks,
                                std::vector<std::string>& warnings) {
  auto warn = [&](std::string w) { warnings.push_back(std::move(w)); };
  using merge_detail::stage_key;
  const perf_dump_data& first = ranks.at(0);
  for (std::size_t i = 1; i < ranks.size(); ++i) {
    if (ranks[i].commit_hash != first.commit_hash)
      warn("commit_hash differs: " + first.file + " has '" + first.commit_hash + "', " +
           ranks[i].file + " has '" + ranks[i].commit_hash + "' (keeping the first)");
    if (ranks[i].tag != first.tag)
      warn("tag differs: " + first.file + " has '" + first.tag + "', " + ranks[i].file + " has '" +
           ranks[i].tag + "' (keeping the first)");
  }

  // Stages: union in order of first appearance (first rank first), max over the ranks.
  std::vector<stage_key> order;
  std::vector<double> stage_ms;
  double total = 0.0;
  std::size_t steps = 0;
  for (const auto& r : ranks) {
    total = std::max(total, r.total_duration_ms);
    steps = std::max(steps, r.denoise_steps.size());
    const auto keys = merge_detail::keys_of(r.steps);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto it = std::find(order.begin(), order.end(), keys[i]);
      if (it == order.end()) {
        order.push_back(keys[i]);
        stage_ms.push_back(r.steps[i].duration_ms);
      } else {
        double& v = stage_ms[static_cast<std::size_t>(it - order.begin())];
        v = std::max(v, r.steps[i].duration_ms);
      }
    }
  }
  std::vector<double> step_ms(steps, 0.0);
  std::vector<dump_memory> memory;
  for (const auto& r : ranks) {
    for (std::size_t i = 0; i < r.denoise_steps.size(); ++i)
      step_ms[i] = std::max(step_ms[i], r.denoise_steps[i].duration_ms);
    for (const auto& m : r.memory) {
      auto it = std::find_if(memory.begin(), memory.end(),
                             [&](const dump_memory& x) { return x.name == m.name; });
      if (it == memory.end()) {
        memory.push_back(m);
        continue;
      }
      it->allocated_mb = std::max(it->allocated_mb, m.allocated_mb);
      it->reserved_mb = std::max(it->reserved_mb, m.reserved_mb);
      it->peak_allocated_mb = std::max(it->peak_allocated_mb, m.peak_allocated_mb);
      it->peak_reserved_mb = std::max(it->peak_reserved_mb, m.peak_reserved_mb);
    }
  }

  ordered_json out = ordered_json::object();
  out["timestamp"] = first.timestamp.empty() ? merge_detail::utc_now_iso() : first.timestamp;
  out["request_id"] = first.request_id.empty() ? "N/A" : first.request_id;
  out["commit_hash"] = first.commit_hash.empty() ? "N/A" : first.commit_hash;
  out["tag"] = first.tag.empty() ? "cli_generate" : first.tag;
  out["total_duration_ms"] = total;
  ordered_json js = ordered_json::array();
  for (std::size_t i = 0; i < order.size(); ++i)
    js.push_back({{"name", order[i].name}, {"duration_ms", stage_ms[i]}});
  out["steps"] = std::move(js);
  ordered_json jd = ordered_json::array();
  for (std::size_t i = 0; i < steps; ++i)
    jd.push_back({{"step", static_cast<std::int64_t>(i)}, {"duration_ms", step_ms[i]}});
  out["denoise_steps_ms"] = std::move(jd);
  ordered_json jm = ordered_json::object();
  for (const auto& m : memory)
    jm[m.name] = {{"allocated_mb", m.allocated_mb},
                  {"reserved_mb", m.reserved_mb},
                  {"peak_allocated_mb", m.peak_allocated_mb},
                  {"peak_reserved_mb", m.peak_reserved_mb}};
  out["memory_checkpoints"] = std::move(jm);
  out["meta"] = first.meta;

  // GPU timing holds for the merge only when every rank measured it.
  bool gpu = true;
  std::string reason;
  ordered_json faults = ordered_json::object();
  ordered_json jr = ordered_json::array();
  for (const auto& r : ranks) {
    if (!(r.has_diffscope && r.gpu_timing) && gpu) {
      gpu = false;
      reason = r.file + ": " +
               (!r.has_diffscope       ? std::string("no diffscope object (an SGLang dump)")
                : r.gpu_reason.empty() ? std::string("GPU timing not measured")
                                       : r.gpu_reason);
    }
    if (r.has_diffscope) {
      const auto f = r.diffscope.find("faults");
      if (f != r.diffscope.end() && f->is_object())
        for (const auto& [k, v] : f->items())
          if (v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0))
            faults[k] =
                (faults.contains(k) ? faults[k].get<std::uint64_t>() : 0) + v.get<std::uint64_t>();
    }
    ordered_json rs = ordered_json::array();
    for (const auto& s : r.steps) rs.push_back({{"name", s.name}, {"duration_ms", s.duration_ms}});
    ordered_json rd = ordered_json::array();
    for (const auto& s : r.denoise_steps)
      rd.push_back({{"step", s.step}, {"duration_ms", s.duration_ms}});
    jr.push_back({{"file", r.file},
                  {"total_duration_ms", r.total_duration_ms},
                  {"gpu_timing", r.has_diffscope && r.gpu_timing},
                  {"steps", std::move(rs)},
                  {"denoise_steps_ms", std::move(rd)}});
  }
  ordered_json ds = ordered_json::object();
  ds["schema_version"] = 1;
  ds["version"] = DIFFSCOPE_VERSION_STRING;
  ds["merged"] = true;
  ds["merge_rule"] =
      "total_duration_ms, each steps entry (by name and occurrence), each denoise step and "
      "each memory checkpoint field: the maximum over ranks; the rest from the first rank";
  ds["status"] = {{"gpu_timing", gpu}, {"reason", reason}};
  ds["faults"] = std::move(faults);
  ds["ranks"] = std::move(jr);
  out["diffscope"] = std::move(ds);
  return out;
}

/// SGLang's layout: json.dump(..., indent=2), non-ASCII escaped as Python does by default.
inline std::string dump_text(const ordered_json& j) {
  return j.dump(2, ' ', true, nlohmann::json::error_handler_t::replace);
}

inline constexpr const char* merge_usage =
    "usage: diffscope merge -o OUT.json IN.json [IN.json ...]\n"
    "Merges per-rank perf dumps of one request: every stage, denoise step, total and memory\n"
    "checkpoint takes the maximum over ranks (the critical path); per-rank values are kept\n"
    "in diffscope.ranks. Written atomically.\n";

inline int run_merge(const args& a) {
  std::string out_path;
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string& s = a[i];
    if (s == "-h" || s == "--help") {
      std::fputs(merge_usage, stdout);
      return exit_ok;
    }
    if (s == "-o" || s == "--output") {
      if (i + 1 >= a.size()) throw failure(exit_usage, s + " needs a file name");
      out_path = a[++i];
    } else if (s.size() > 1 && s[0] == '-') {
      throw failure(exit_usage, "unknown option '" + s + "' (diffscope merge --help)");
    } else {
      inputs.push_back(s);
    }
  }
  if (out_path.empty())
    throw failure(exit_usage, "-o OUT.json is required (diffscope merge --help)");
  if (inputs.empty()) throw failure(exit_usage, "no input dumps (diffscope merge --help)");
  std::vector<perf_dump_data> ranks;
  for (const auto& f : inputs) ranks.push_back(load_dump(f));
  std::vector<std::string> warnings;
  const ordered_json merged = merge_dumps(ranks, warnings);
  for (const auto& w : warnings) std::fprintf(stderr, "diffscope merge: warning: %s\n", w.c_str());
  if (auto err = diffscope::detail::write_file_atomically(out_path, dump_text(merged)))
    throw failure(exit_usage, *err);
  return exit_ok;
}

}  // namespace diffscope::cli
