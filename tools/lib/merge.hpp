// Per-rank perf dumps of one request merged into one (`diffscope merge`, `diffscope run`): each
// stage, denoise step, total and memory checkpoint the maximum over ranks (the critical path);
// each rank's numbers, the spread, straggler and communication in the "diffscope" object.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <diffscope/util/utc_time.hpp>
#include <diffscope/version.hpp>

#include "../cli.hpp"
#include "dump_reader.hpp"
#include "dump_results.hpp"

namespace diffscope::cli {

namespace merge_detail {

/// A stage is the n-th entry of its name in a rank's steps (a stage may run twice).
struct stage_key {
  std::string name;
  std::size_t occurrence;
  bool operator==(const stage_key& o) const { return occurrence == o.occurrence && name == o.name; }
};

// The lookups below are hashed: a dump may hold very many entries, and the merge must not
// take time quadratic in them.
inline std::vector<stage_key> keys_of(const std::vector<dump_stage>& steps) {
  std::vector<stage_key> keys;
  std::unordered_map<std::string, std::size_t> seen;
  for (const auto& s : steps) keys.push_back({s.name, seen[s.name]++});
  return keys;
}

/// A stage_key as one string, for hashing (the occurrence first: a name may hold anything).
inline std::string key_text(const stage_key& k) {
  return std::to_string(k.occurrence) + ":" + k.name;
}

/// Each key's first position in `keys`.
inline std::unordered_map<std::string, std::size_t> positions(const std::vector<stage_key>& keys) {
  std::unordered_map<std::string, std::size_t> pos;
  for (std::size_t i = 0; i < keys.size(); ++i) pos.emplace(key_text(keys[i]), i);
  return pos;
}

/// Each input's rank: diffscope.environment.rank when every input has a distinct one (>= 0),
/// else the input order for all (mixing the two could give two inputs one rank).
inline std::vector<std::int64_t> rank_ids(const std::vector<perf_dump_data>& ranks,
                                          bool& from_environment,
                                          std::vector<std::string>& warnings) {
  std::vector<std::int64_t> ids;
  bool all = true, any = false;
  for (const auto& r : ranks) {
    any = any || r.rank >= 0;
    all = all && r.rank >= 0 && std::find(ids.begin(), ids.end(), r.rank) == ids.end();
    ids.push_back(r.rank);
  }
  from_environment = all;
  if (all) return ids;
  if (any)
    warnings.push_back(
        "diffscope.environment.rank is missing or repeated in some inputs: ranks are numbered "
        "in input order");
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>(i);
  return ids;
}

/// Input indices in increasing rank.
inline std::vector<std::size_t> by_rank(const std::vector<std::int64_t>& ids) {
  std::vector<std::size_t> order(ids.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return ids[a] < ids[b]; });
  return order;
}

/// One step or stage over the ranks that ran it: the critical path (max), the fastest (min),
/// their difference (spread) and the rank that set the critical path (straggler; ties go to
/// the lowest rank).
inline ordered_json spread_row(const std::vector<std::pair<std::int64_t, double>>& per_rank) {
  double hi = per_rank.at(0).second, lo = hi;
  std::int64_t straggler = per_rank[0].first;
  ordered_json values = ordered_json::array();
  for (const auto& [rank, ms] : per_rank) {
    if (ms > hi || (ms == hi && rank < straggler)) {
      hi = ms;
      straggler = rank;
    }
    lo = std::min(lo, ms);
    values.push_back({{"rank", rank}, {"duration_ms", ms}});
  }
  return {{"duration_ms", hi},
          {"min_ms", lo},
          {"spread_ms", hi - lo},
          {"straggler_rank", straggler},
          {"ranks", std::move(values)}};
}

inline ordered_json comm_json(std::int64_t rank, const dump_comm& c) {
  return {{"rank", rank},
          {"busy_ms", c.busy_ms},
          {"overlapped_ms", c.overlapped_ms},
          {"exposed_ms", c.exposed_ms},
          {"kernels", c.kernels},
          {"overlapped_pct", c.busy_ms > 0 ? 100.0 * c.overlapped_ms / c.busy_ms : 0.0}};
}

/// An attention scope: category "attention" (DIFFSCOPE_ATTENTION), or a default-domain range
/// whose last path element names attention like SGLang's modules do ("...blocks.0.attn",
/// "attn1", "self_attention").
inline bool is_attention_scope(const std::string& path, const std::string& category) {
  if (category == "attention") return true;
  const std::size_t slash = path.find_last_of('/');
  std::string last = path.substr(slash == std::string::npos ? 0 : slash + 1);
  for (char& c : last)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return last.find("attn") != std::string::npos || last.find("attention") != std::string::npos;
}

/// Sampled-mode ranks: the first rank's diffscope.sampling (rule, steps, traced steps), whether
/// every rank traced the same steps (the rule makes them, so that the ranks' estimates come from
/// like steps), and each rank's traced steps; null when no rank is a sampled-mode dump. Ranks
/// that traced different steps are said so (a warning and "same_traced_steps": false), not
/// refused.
inline ordered_json merged_sampling(const std::vector<perf_dump_data>& ranks,
                                    const std::vector<std::int64_t>& ids,
                                    const std::vector<std::size_t>& rank_order,
                                    std::vector<std::string>& warnings) {
  std::vector<std::pair<std::int64_t, sampling_info>> sampled;
  for (const std::size_t ri : rank_order) {
    sampling_info s = sampling_of_dump(ranks[ri]);
    if (s.active) sampled.emplace_back(ids[ri], std::move(s));
  }
  if (sampled.empty()) return nullptr;
  const sampling_info& first = sampled.front().second;
  bool same = sampled.size() == ranks.size();
  ordered_json per_rank = ordered_json::array();
  for (const auto& [rank, s] : sampled) {
    same = same && s.traced_indices == first.traced_indices;
    per_rank.push_back({{"rank", rank}, {"rule", s.rule}, {"traced_indices", s.traced_indices}});
  }
  ordered_json out = {{"rule", first.rule},
                      {"steps", first.steps},
                      {"traced_steps", first.traced_steps},
                      {"traced_indices", first.traced_indices},
                      {"same_traced_steps", same},
                      {"ranks", std::move(per_rank)}};
  if (!same) {
    const std::string what = sampled.size() < ranks.size()
                                 ? "only " + std::to_string(sampled.size()) + " of " +
                                       std::to_string(ranks.size()) +
                                       " ranks are sampled-mode dumps"
                                 : "the ranks traced different denoise steps (sampling.ranks)";
    out["note"] = what + ": their estimated scope and kernel figures come from unlike steps";
    warnings.push_back(what);
  }
  return out;
}

}  // namespace merge_detail

/// The merged dump as JSON; timestamp, request_id, commit_hash, tag and meta come from the first
/// input. `warnings` gets one line per inconsistency between inputs.
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
  std::unordered_map<std::string, std::size_t> order_pos;
  std::vector<double> stage_ms;
  double total = 0.0;
  std::size_t steps = 0;
  for (const auto& r : ranks) {
    total = std::max(total, r.total_duration_ms);
    steps = std::max(steps, r.denoise_steps.size());
    const auto keys = merge_detail::keys_of(r.steps);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto [it, added] = order_pos.emplace(merge_detail::key_text(keys[i]), order.size());
      if (added) {
        order.push_back(keys[i]);
        stage_ms.push_back(r.steps[i].duration_ms);
      } else {
        double& v = stage_ms[it->second];
        v = std::max(v, r.steps[i].duration_ms);
      }
    }
  }
  std::vector<double> step_ms(steps, 0.0);
  std::vector<dump_memory> memory;
  std::unordered_map<std::string, std::size_t> memory_pos;
  for (const auto& r : ranks) {
    for (std::size_t i = 0; i < r.denoise_steps.size(); ++i)
      step_ms[i] = std::max(step_ms[i], r.denoise_steps[i].duration_ms);
    for (const auto& m : r.memory) {
      const auto [pos, added] = memory_pos.emplace(m.name, memory.size());
      if (added) {
        memory.push_back(m);
        continue;
      }
      const auto it = memory.begin() + static_cast<std::ptrdiff_t>(pos->second);
      it->allocated_mb = std::max(it->allocated_mb, m.allocated_mb);
      it->reserved_mb = std::max(it->reserved_mb, m.reserved_mb);
      it->peak_allocated_mb = std::max(it->peak_allocated_mb, m.peak_allocated_mb);
      it->peak_reserved_mb = std::max(it->peak_reserved_mb, m.peak_reserved_mb);
    }
  }

  ordered_json out = ordered_json::object();
  out["timestamp"] =
      first.timestamp.empty() ? diffscope::detail::utc_timestamp_now() : first.timestamp;
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

  bool ids_from_environment = false;
  const std::vector<std::int64_t> ids =
      merge_detail::rank_ids(ranks, ids_from_environment, warnings);
  const std::vector<std::size_t> rank_order = merge_detail::by_rank(ids);

  // GPU timing holds for the merge only when every rank measured it.
  bool gpu = true;
  std::string reason;
  ordered_json faults = ordered_json::object();
  ordered_json jr = ordered_json::array();
  for (std::size_t ri = 0; ri < ranks.size(); ++ri) {
    const perf_dump_data& r = ranks[ri];
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
                  {"rank", ids[ri]},
                  {"world_size", r.world_size},
                  {"local_rank", r.local_rank},
                  {"total_duration_ms", r.total_duration_ms},
                  {"gpu_timing", r.has_diffscope && r.gpu_timing},
                  {"steps", std::move(rs)},
                  {"denoise_steps_ms", std::move(rd)}});
  }
  // Spread and straggler per denoise step (by index) and per stage (by name and occurrence),
  // over the ranks that ran it, ranks in increasing order.
  ordered_json cp_steps = ordered_json::array();
  for (std::size_t i = 0; i < steps; ++i) {
    std::vector<std::pair<std::int64_t, double>> per_rank;
    for (const std::size_t ri : rank_order)
      if (i < ranks[ri].denoise_steps.size())
        per_rank.emplace_back(ids[ri], ranks[ri].denoise_steps[i].duration_ms);
    ordered_json row = {{"step", static_cast<std::int64_t>(i)}};
    row.update(merge_detail::spread_row(per_rank));
    cp_steps.push_back(std::move(row));
  }
  ordered_json cp_stages = ordered_json::array();
  std::vector<std::unordered_map<std::string, std::size_t>> rank_keys;
  for (const auto& r : ranks)
    rank_keys.push_back(merge_detail::positions(merge_detail::keys_of(r.steps)));
  for (const auto& key : order) {
    std::vector<std::pair<std::int64_t, double>> per_rank;
    const std::string text = merge_detail::key_text(key);
    for (const std::size_t ri : rank_order) {
      const auto it = rank_keys[ri].find(text);
      if (it != rank_keys[ri].end())
        per_rank.emplace_back(ids[ri], ranks[ri].steps[it->second].duration_ms);
    }
    ordered_json row = {{"name", key.name},
                        {"occurrence", static_cast<std::int64_t>(key.occurrence)}};
    row.update(merge_detail::spread_row(per_rank));
    cp_stages.push_back(std::move(row));
  }

  // Communication per rank: scopes by path (first appearance, lowest rank first), steps by
  // step number, stages by name and occurrence; only regions where some rank ran comm kernels.
  ordered_json comm_scopes = ordered_json::array();
  std::vector<std::string> comm_paths;
  std::unordered_set<std::string> comm_seen;
  std::vector<std::unordered_map<std::string, const dump_scope*>> scope_of(ranks.size());
  for (const std::size_t ri : rank_order)
    for (const auto& sc : ranks[ri].scopes) {
      scope_of[ri].emplace(sc.path, &sc);  // the first of a repeated path
      if (sc.comm.present && comm_seen.insert(sc.path).second) comm_paths.push_back(sc.path);
    }
  for (const auto& path : comm_paths) {
    std::string category;
    ordered_json per_rank = ordered_json::array();
    for (const std::size_t ri : rank_order) {
      const auto it = scope_of[ri].find(path);
      if (it == scope_of[ri].end()) continue;
      const dump_scope& sc = *it->second;
      if (category.empty()) category = sc.category;
      if (sc.comm.present) per_rank.push_back(merge_detail::comm_json(ids[ri], sc.comm));
    }
    comm_scopes.push_back({{"path", path},
                           {"category", category},
                           {"attention", merge_detail::is_attention_scope(path, category)},
                           {"ranks", std::move(per_rank)}});
  }
  ordered_json comm_steps = ordered_json::array();
  std::vector<std::unordered_map<std::int64_t, const dump_comm*>> step_of(ranks.size());
  std::vector<std::int64_t> comm_step_ids;
  for (const std::size_t ri : rank_order)
    for (const auto& sc : ranks[ri].step_comm)
      if (step_of[ri].emplace(sc.step, &sc.comm).second) comm_step_ids.push_back(sc.step);
  std::sort(comm_step_ids.begin(), comm_step_ids.end());
  comm_step_ids.erase(std::unique(comm_step_ids.begin(), comm_step_ids.end()), comm_step_ids.end());
  for (const std::int64_t step : comm_step_ids) {
    ordered_json per_rank = ordered_json::array();
    for (const std::size_t ri : rank_order) {
      const auto it = step_of[ri].find(step);
      if (it != step_of[ri].end())
        per_rank.push_back(merge_detail::comm_json(ids[ri], *it->second));
    }
    comm_steps.push_back({{"step", step}, {"ranks", std::move(per_rank)}});
  }
  ordered_json comm_stages = ordered_json::array();
  {
    std::unordered_map<std::string, std::size_t> seen;  // key_text -> row
    std::vector<ordered_json> rows;
    for (const std::size_t ri : rank_order) {
      std::vector<dump_stage> names;
      for (const auto& sc : ranks[ri].stage_comm) names.push_back({sc.name, 0.0});
      const auto keys = merge_detail::keys_of(names);
      for (std::size_t k = 0; k < keys.size(); ++k) {
        const dump_comm& c = ranks[ri].stage_comm[k].comm;
        if (!c.present) continue;
        const auto [it, added] = seen.emplace(merge_detail::key_text(keys[k]), rows.size());
        if (added)
          rows.push_back({{"name", keys[k].name},
                          {"occurrence", static_cast<std::int64_t>(keys[k].occurrence)},
                          {"ranks", ordered_json::array()}});
        rows[it->second]["ranks"].push_back(merge_detail::comm_json(ids[ri], c));
      }
    }
    for (auto& row : rows) comm_stages.push_back(std::move(row));
  }

  ordered_json ds = ordered_json::object();
  ds["schema_version"] = 1;
  ds["version"] = DIFFSCOPE_VERSION_STRING;
  ds["merged"] = true;
  ds["merge_rule"] =
      "total_duration_ms, each steps entry (by name and occurrence), each denoise step and "
      "each memory checkpoint field: the maximum over ranks; the rest from the first rank";
  ds["status"] = {{"gpu_timing", gpu}, {"reason", reason}};
  if (ordered_json sampling = merge_detail::merged_sampling(ranks, ids, rank_order, warnings);
      !sampling.is_null()) {
    ds["status"]["mode"] = "sampled";
    ds["sampling"] = std::move(sampling);
  }
  ds["faults"] = std::move(faults);
  ds["ranks"] = std::move(jr);
  ds["critical_path"] = {
      {"rule",
       "per denoise step (by index) and stage (by name and occurrence), over the ranks that "
       "ran it: duration_ms the maximum, min_ms the minimum, spread_ms their difference, "
       "straggler_rank the rank with the maximum (lowest on ties)"},
      {"rank_source", ids_from_environment ? "diffscope.environment.rank" : "input order"},
      {"denoise_steps", std::move(cp_steps)},
      {"stages", std::move(cp_stages)}};
  ds["comm"] = {{"rule",
                 "each rank's own communication kernel time (names starting with nccl, custom "
                 "all-reduce, all-to-all): busy_ms the union of comm kernel intervals, "
                 "overlapped_ms the part with other work running on the device, exposed_ms "
                 "the rest; summed over calls"},
                {"scopes", std::move(comm_scopes)},
                {"denoise_steps", std::move(comm_steps)},
                {"stages", std::move(comm_stages)}};
  out["diffscope"] = std::move(ds);
  return out;
}

/// SGLang's layout: json.dump(..., indent=2), non-ASCII escaped as Python does by default.
inline std::string dump_text(const ordered_json& j) {
  return j.dump(2, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace diffscope::cli
