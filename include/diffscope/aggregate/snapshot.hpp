// diffscope: the aggregator's tables as results.hpp's structs: scope rows, steps, stages,
// requests and kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/aggregate/accumulators.hpp>
#include <diffscope/aggregate/kernel_table.hpp>
#include <diffscope/aggregate/names.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/aggregate/timeline.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

inline host_stats host_summary(const host_acc& h) {
  host_stats s;
  s.calls = h.calls;
  if (h.calls == 0) return s;
  s.sum_ms = h.sum / 1e6;
  s.min_ms = h.min / 1e6;
  s.max_ms = h.max / 1e6;
  s.mean_ms = s.sum_ms / static_cast<double>(h.calls);
  s.p50_ms = h.hist.quantile_ns(0.5) / 1e6;
  s.p90_ms = h.hist.quantile_ns(0.9) / 1e6;
  return s;
}

/// One row per scope entered outside warm-ups, parents before children. `gpu_measured`
/// says whether GPU timing was available at all.
inline void snapshot_scopes(results& r, const scope_tree& tree, const name_table& names,
                            bool gpu_measured) {
  const std::uint32_t count = tree.node_count();
  std::vector<std::int64_t> index(count, -1);
  // Parents are always created before children, so creation order is a valid order.
  for (std::uint32_t i = 0; i < count; ++i) {
    scope_node& n = tree.node_at(i);
    // Entered only inside warm-ups (so are all its children): not a row.
    if (!n.included.load(std::memory_order_relaxed)) continue;
    scope_result s;
    s.name = names.name_of(n.name_id);
    s.path = n.path;
    s.cat = n.cat;
    s.domain = domain_label(n.domain);
    s.depth = n.depth;
    s.parent = n.parent == no_node ? -1 : index[n.parent];
    {
      std::lock_guard<spin_lock> ng(n.host_lock);
      s.host = host_summary(n.host);
    }
    s.gpu = n.gpu.to_stats(gpu_measured);
    s.launches = n.launches;
    index[i] = static_cast<std::int64_t>(r.scopes.size());
    r.scopes.push_back(std::move(s));
  }
}

/// Steps, stages entered outside warm-ups, and every request with its own stages and steps.
inline void snapshot_timeline(results& r, const timeline& tl, const scope_tree& tree,
                              const name_table& names, std::uint64_t origin_ns, bool gpu_measured) {
  auto step_of = [&](std::int64_t step, const step_acc& acc) {
    step_result s;
    s.step = step;
    s.calls = acc.calls;
    s.host_ms = acc.host_ns / 1e6;
    s.gpu = acc.gpu.to_stats(gpu_measured);
    s.start_ms = acc.first_start_ns > origin_ns ? (acc.first_start_ns - origin_ns) / 1e6 : 0;
    return s;
  };
  auto stage_of = [&](const stage_acc& st) {
    stage_result s;
    s.name = names.name_of(tree.node_at(st.node).name_id);
    s.calls = st.calls;
    s.host_ms = st.host_ns / 1e6;
    s.gpu = st.gpu.to_stats(gpu_measured);
    s.start_ms = st.first_start_ns > origin_ns ? (st.first_start_ns - origin_ns) / 1e6 : 0;
    return s;
  };
  for (const auto& kv : tl.steps()) r.steps.push_back(step_of(kv.first, kv.second));
  for (const stage_acc& st : tl.stages())
    if (st.included) r.stages.push_back(stage_of(st));
  const std::vector<request_acc>& requests = tl.requests();
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const request_acc& rq = requests[i];
    request_result q;
    q.id = rq.id;
    q.index = i;
    q.warmup = rq.excluded;
    q.calls = rq.calls;
    q.host_ms = rq.host_ns / 1e6;
    q.start_ms = rq.start_ns > origin_ns ? (rq.start_ns - origin_ns) / 1e6 : 0;
    q.gpu = rq.gpu.to_stats(gpu_measured);
    for (const stage_acc& st : rq.stages) q.stages.push_back(stage_of(st));
    for (const auto& kv : rq.steps) q.steps.push_back(step_of(kv.first, kv.second));
    r.requests.push_back(std::move(q));
  }
}

/// One row per (kernel, scope, kind), longest total first.
inline void snapshot_kernels(results& r, const kernel_table& kernels, const scope_tree& tree,
                             const name_table& names) {
  for (const auto& kv : kernels.entries()) {
    kernel_result k;
    k.name = names.name_of(kv.first.name);
    k.mangled = names.mangled_of(kv.first.name);
    k.kind = kind_label(kv.first.kind);
    k.scope_path = kv.first.node == no_node ? std::string() : tree.node_at(kv.first.node).path;
    k.count = kv.second.count;
    k.total_ms = kv.second.total / 1e6;
    k.min_ms = kv.second.min / 1e6;
    k.max_ms = kv.second.max / 1e6;
    r.kernels.push_back(std::move(k));
  }
  std::sort(r.kernels.begin(), r.kernels.end(), [](const kernel_result& a, const kernel_result& b) {
    return a.total_ms != b.total_ms ? a.total_ms > b.total_ms : a.name < b.name;
  });
}

}  // namespace diffscope::detail
