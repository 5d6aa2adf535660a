// diffscope: the aggregator's tables as results.hpp's structs: scope rows, steps, stages and
// kernels of the window, every request, and the work outside the window's requests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <diffscope/aggregate/accumulators.hpp>
#include <diffscope/aggregate/kernel_table.hpp>
#include <diffscope/aggregate/names.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/aggregate/timeline.hpp>
#include <diffscope/aggregate/window.hpp>
#include <diffscope/results.hpp>
#include <diffscope/util/stats.hpp>

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

/// One row per scope entered in `window`, and per scope around one (a range open across
/// requests, around the window's: no call of its own in the window), parents before children.
/// `gpu_measured` says whether GPU timing was available at all.
inline void snapshot_scopes(results& r, const scope_tree& tree, const name_table& names,
                            bool gpu_measured, std::uint64_t window, bool sampled = false) {
  const std::uint32_t count = tree.node_count();
  std::vector<std::int64_t> index(count, -1);
  // Parents are always created before children: a child's row makes its parent's.
  std::vector<char> row(count, 0);
  for (std::uint32_t i = count; i-- > 0;) {
    const scope_node& n = tree.node_at(i);
    if (n.entered.load(std::memory_order_relaxed) == window) row[i] = 1;
    if (row[i] != 0 && n.parent != no_node) row[n.parent] = 1;
  }
  // Creation order is thus a valid order.
  for (std::uint32_t i = 0; i < count; ++i) {
    scope_node& n = tree.node_at(i);
    if (row[i] == 0) continue;
    scope_result s;
    s.name = names.name_of(n.name_id);
    s.path = n.path;
    s.cat = n.cat;
    s.domain = domain_label(n.domain);
    s.depth = n.depth;
    s.parent = n.parent == no_node ? -1 : index[n.parent];
    std::uint64_t traced = 0;
    {
      std::lock_guard<spin_lock> ng(n.host_lock);
      if (n.host_window == window) {
        s.host = host_summary(n.host);
        traced = n.host.traced;
      }
    }
    const bool gpu = n.gpu_window == window;  // else none of the window's work
    const gpu_acc acc = gpu ? n.gpu : gpu_acc{};
    s.gpu = acc.to_stats(gpu_measured);
    if (sampled) {
      // Calls made while tracing, those without operations included (busy 0).
      s.gpu.traced_calls = traced;
      s.gpu.error_ms =
          sampled_total_error(static_cast<double>(s.host.calls), static_cast<double>(traced),
                              s.gpu.busy_ms, acc.busy_sq_ms2);
    }
    s.launches = gpu ? n.launches : 0;
    index[i] = static_cast<std::int64_t>(r.scopes.size());
    r.scopes.push_back(std::move(s));
  }
}

/// The window's steps and stages (the counted requests' in it summed, else the whole run's
/// outside warm-ups), which requests it holds, and every request with its own stages and steps.
inline void snapshot_timeline(results& r, const timeline& tl, const scope_tree& tree,
                              const name_table& names, std::uint64_t origin_ns, bool gpu_measured,
                              const window_state& window, bool sampled = false) {
  auto step_of = [&](std::int64_t step, const step_acc& acc) {
    step_result s;
    s.step = step;
    s.calls = acc.calls;
    s.host_ms = acc.host_ns / 1e6;
    s.gpu = acc.gpu.to_stats(gpu_measured);
    s.start_ms = acc.first_start_ns > origin_ns ? (acc.first_start_ns - origin_ns) / 1e6 : 0;
    if (sampled) {
      s.traced = acc.gpu.traced > 0;
      s.gpu.traced_calls = acc.gpu.traced;
    }
    return s;
  };
  auto stage_of = [&](const stage_acc& st) {
    stage_result s;
    s.name = names.name_of(tree.node_at(st.node).name_id);
    s.calls = st.calls;
    s.host_ms = st.host_ns / 1e6;
    s.gpu = st.gpu.to_stats(gpu_measured);
    if (sampled) s.gpu.traced_calls = st.gpu.traced;
    s.start_ms = st.first_start_ns > origin_ns ? (st.first_start_ns - origin_ns) / 1e6 : 0;
    return s;
  };
  const std::vector<request_acc>& requests = tl.requests();
  const std::uint64_t current = window.current();
  if (current == run_window) {
    r.window.covers = window_run;
    for (const auto& kv : tl.steps()) r.steps.push_back(step_of(kv.first, kv.second));
    for (const stage_acc& st : tl.stages())
      if (st.included) r.stages.push_back(stage_of(st));
  } else {
    r.window.covers = window.mode() == window_mode::last ? window_last : window_requests;
    std::vector<stage_acc> stages;  // in order of first entry
    std::map<std::int64_t, step_acc> steps;
    const auto merge = [](auto& into, const auto& from) {
      if (into.first_start_ns == 0 ||
          (from.first_start_ns != 0 && from.first_start_ns < into.first_start_ns))
        into.first_start_ns = from.first_start_ns;
      into.calls += from.calls;
      into.host_ns += from.host_ns;
      into.gpu.add(from.gpu);
    };
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const request_acc& rq = requests[i];
      if (rq.excluded || window.key_of(static_cast<std::int32_t>(i), false) != current) continue;
      r.window.requests.push_back(i);
      for (const stage_acc& st : rq.stages) {
        auto it = std::find_if(stages.begin(), stages.end(),
                               [&](const stage_acc& x) { return x.node == st.node; });
        if (it == stages.end()) {
          stages.push_back(st);
        } else {
          merge(*it, st);
        }
      }
      for (const auto& kv : rq.steps) {
        auto [it, fresh] = steps.emplace(kv.first, kv.second);
        if (!fresh) merge(it->second, kv.second);
      }
    }
    for (const auto& kv : steps) r.steps.push_back(step_of(kv.first, kv.second));
    for (const stage_acc& st : stages) r.stages.push_back(stage_of(st));
  }
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
    if (sampled) q.gpu.traced_calls = rq.gpu.traced;
    for (const stage_acc& st : rq.stages) q.stages.push_back(stage_of(st));
    for (const auto& kv : rq.steps) q.steps.push_back(step_of(kv.first, kv.second));
    r.requests.push_back(std::move(q));
  }
}

/// One row per (kernel, scope, kind) of the window, longest total first (`kernels` null: the
/// window has none yet), and the window's operations summed.
inline void snapshot_kernels(results& r, const kernel_table* kernels, const scope_tree& tree,
                             const name_table& names, bool gpu_measured) {
  op_count ops;
  std::unordered_set<std::uint32_t> distinct;
  const kernel_table::map empty;
  for (const auto& kv : kernels != nullptr ? kernels->entries() : empty) {
    ops.busy += kv.second.total;
    if (kv.first.kind == op_kind::kernel) ops.kernels += kv.second.count;
    if (kv.first.kind == op_kind::memcpy) ops.memcpys += kv.second.count;
    if (kv.first.kind == op_kind::memset) ops.memsets += kv.second.count;
    distinct.insert(kv.first.name);
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
  r.window.gpu = ops.to_totals(gpu_measured);
  r.window.kernel_names = distinct.size();
}

/// The window's steps by kernel name (`steps` null: none of the window's yet), in the order
/// the names were interned.
inline void snapshot_step_kernels(results& r,
                                  const std::map<std::int64_t, std::vector<name_busy>>* steps,
                                  const name_table& names) {
  if (steps == nullptr) return;
  for (step_result& s : r.steps) {
    const auto it = steps->find(s.step);
    if (it == steps->end()) continue;
    for (const name_busy& k : it->second)
      s.kernels.push_back({names.name_of(k.name), kind_label(k.kind), k.busy / 1e6});
  }
}

/// The operations outside every counted request: warm-ups', and, once a request counts, those
/// launched with none open.
inline void snapshot_outside(results& r, const window_state& window, bool gpu_measured) {
  op_count outside = window.warmups();
  if (window.current() != run_window) outside.add(window.unrequested());
  r.window.outside = outside.to_totals(gpu_measured);
  r.window.warmups = window.warmups().to_totals(gpu_measured);
}

}  // namespace diffscope::detail
