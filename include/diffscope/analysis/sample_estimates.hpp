// diffscope: sampled mode's estimates: the operations of the traced denoise steps scaled to
// every step of the window (scopes, stages, requests, kernels, the window's totals), marked as
// estimates with their error, and the sampling summary. Works on results alone (docs/modes.md,
// "Sampled mode").
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <diffscope/results.hpp>
#include <diffscope/util/stats.hpp>

namespace diffscope::detail {

/// Scales every operation figure of `g` by `f` (counts rounded).
inline void scale_operations(gpu_stats& g, double f) {
  const auto count = [f](std::uint64_t c) {
    return static_cast<std::uint64_t>(std::llround(static_cast<double>(c) * f));
  };
  g.busy_ms *= f;
  g.occupied_ms *= f;
  g.envelope_ms *= f;
  g.kernels = count(g.kernels);
  g.memcpys = count(g.memcpys);
  g.memsets = count(g.memsets);
  g.bytes = count(g.bytes);
  g.comm_kernels = count(g.comm_kernels);
  g.comm_busy_ms *= f;
  g.comm_overlapped_ms *= f;
  g.comm_exposed_ms *= f;
}

/// What scaling added to a scope: its figures after minus before.
struct sample_delta {
  double busy_ms = 0, occupied_ms = 0, envelope_ms = 0, comm_busy_ms = 0, comm_overlapped_ms = 0,
         comm_exposed_ms = 0;
  double kernels = 0, memcpys = 0, memsets = 0, bytes = 0, comm_kernels = 0, launches = 0;
  double error_sq = 0;  // variance of the estimate, ms^2
  bool any = false;

  void add(const sample_delta& o) {
    busy_ms += o.busy_ms;
    occupied_ms += o.occupied_ms;
    envelope_ms += o.envelope_ms;
    comm_busy_ms += o.comm_busy_ms;
    comm_overlapped_ms += o.comm_overlapped_ms;
    comm_exposed_ms += o.comm_exposed_ms;
    kernels += o.kernels;
    memcpys += o.memcpys;
    memsets += o.memsets;
    bytes += o.bytes;
    comm_kernels += o.comm_kernels;
    launches += o.launches;
    error_sq += o.error_sq;
    any = any || o.any;
  }
  static sample_delta between(const gpu_stats& before, const gpu_stats& after, double launches) {
    sample_delta d;
    d.busy_ms = after.busy_ms - before.busy_ms;
    d.occupied_ms = after.occupied_ms - before.occupied_ms;
    d.envelope_ms = after.envelope_ms - before.envelope_ms;
    d.comm_busy_ms = after.comm_busy_ms - before.comm_busy_ms;
    d.comm_overlapped_ms = after.comm_overlapped_ms - before.comm_overlapped_ms;
    d.comm_exposed_ms = after.comm_exposed_ms - before.comm_exposed_ms;
    d.kernels = static_cast<double>(after.kernels) - static_cast<double>(before.kernels);
    d.memcpys = static_cast<double>(after.memcpys) - static_cast<double>(before.memcpys);
    d.memsets = static_cast<double>(after.memsets) - static_cast<double>(before.memsets);
    d.bytes = static_cast<double>(after.bytes) - static_cast<double>(before.bytes);
    d.comm_kernels =
        static_cast<double>(after.comm_kernels) - static_cast<double>(before.comm_kernels);
    d.launches = launches;
    d.error_sq = after.error_ms * after.error_ms;
    d.any = true;
    return d;
  }
  /// Adds the delta to a scope that holds the scaled ones (a stage around the loop, ...).
  void apply(gpu_stats& g, std::uint64_t* launches) const {
    const auto plus = [](std::uint64_t c, double d) {
      const double v = static_cast<double>(c) + d;
      return v > 0 ? static_cast<std::uint64_t>(std::llround(v)) : std::uint64_t{0};
    };
    g.busy_ms += busy_ms;
    g.occupied_ms += occupied_ms;
    g.envelope_ms += envelope_ms;
    g.comm_busy_ms += comm_busy_ms;
    g.comm_overlapped_ms += comm_overlapped_ms;
    g.comm_exposed_ms += comm_exposed_ms;
    g.kernels = plus(g.kernels, kernels);
    g.memcpys = plus(g.memcpys, memcpys);
    g.memsets = plus(g.memsets, memsets);
    g.bytes = plus(g.bytes, bytes);
    g.comm_kernels = plus(g.comm_kernels, comm_kernels);
    if (launches != nullptr) *launches = plus(*launches, this->launches);
    g.error_ms = std::sqrt(error_sq);
    g.estimated = true;
  }
};

/// Whether each scope row is a denoise step or lies inside one.
inline std::vector<char> rows_in_steps(const results& r) {
  std::vector<char> in(r.scopes.size(), 0);
  for (std::size_t i = 0; i < r.scopes.size(); ++i) {
    const scope_result& s = r.scopes[i];
    in[i] = s.cat == category::denoise_step ||
            (s.parent >= 0 && in[static_cast<std::size_t>(s.parent)] != 0);
  }
  return in;
}

/// One standard error of a total over `n` steps estimated from the `values` of the traced ones.
inline double total_error(const std::vector<double>& values, double n) {
  double sum = 0, sum_sq = 0;
  for (double v : values) {
    sum += v;
    sum_sq += v * v;
  }
  return sampled_total_error(n, static_cast<double>(values.size()), sum, sum_sq);
}

/// Scales the traced steps' operations to every step of the window. Scopes inside steps: by
/// their calls over their traced calls (a scope that only ran in untraced steps has no GPU
/// figures: `measured` false); scopes around steps (stages, requests, the user's): by what
/// their steps gained; kernels launched inside steps: by the window's step calls over its traced
/// step calls, their error from the spread of each name's busy across traced steps. Fills
/// results::sampling's step and launch counts; the collector fills its switch counts.
inline void estimate_from_sample(results& r) {
  r.sampling.active = true;
  r.sampling.steps = 0;
  r.sampling.traced_steps = 0;
  r.sampling.traced_indices.clear();
  r.sampling.launches_traced = 0;
  for (const step_result& s : r.steps) {
    r.sampling.steps += s.calls;
    if (s.traced) {
      r.sampling.traced_steps += s.gpu.traced_calls > 0 ? s.gpu.traced_calls : s.calls;
      r.sampling.traced_indices.push_back(s.step);
    }
  }

  // Scopes: inside steps scaled by calls / traced calls, the others gain their children's.
  const std::vector<char> in_steps = rows_in_steps(r);
  std::vector<sample_delta> gained(r.scopes.size());
  double untraced_launches = 0;
  for (std::size_t i = 0; i < r.scopes.size(); ++i) {
    scope_result& s = r.scopes[i];
    if (in_steps[i] == 0 || !s.gpu.measured) continue;
    // A loop's step row (not a step nested in another): what its launches were and became.
    const bool loop_step = s.cat == category::denoise_step &&
                           (s.parent < 0 || in_steps[static_cast<std::size_t>(s.parent)] == 0);
    if (loop_step) r.sampling.launches_traced += s.launches;
    const std::uint64_t n = s.host.calls, k = s.gpu.traced_calls;
    if (k >= n) continue;  // every call traced: exact
    const gpu_stats before = s.gpu;
    double launches = 0;
    if (k == 0) {
      s.gpu = gpu_stats{};  // ran only in untraced steps: nothing was measured
      s.gpu.span_ms = before.span_ms;
      s.gpu.timed_calls = before.timed_calls;
    } else {
      const double f = static_cast<double>(n) / static_cast<double>(k);
      scale_operations(s.gpu, f);
      s.gpu.estimated = true;
      launches = static_cast<double>(s.launches) * (f - 1);
      s.launches = static_cast<std::uint64_t>(std::llround(static_cast<double>(s.launches) * f));
      if (loop_step) untraced_launches += launches;
    }
    // The step node's (or the outermost scaled scope's) delta is what its ancestors gain.
    const bool top = s.parent < 0 || in_steps[static_cast<std::size_t>(s.parent)] == 0;
    if (top) gained[i] = sample_delta::between(before, s.gpu, launches);
  }
  for (std::size_t i = r.scopes.size(); i-- > 0;) {
    const scope_result& s = r.scopes[i];
    if (s.parent < 0 || !gained[i].any) continue;
    const auto p = static_cast<std::size_t>(s.parent);
    if (in_steps[p] == 0) gained[p].add(gained[i]);
  }
  for (std::size_t i = 0; i < r.scopes.size(); ++i) {
    scope_result& s = r.scopes[i];
    if (in_steps[i] == 0 && gained[i].any && s.gpu.measured) gained[i].apply(s.gpu, &s.launches);
  }
  // Stages: what their scope rows gained.
  for (stage_result& st : r.stages) {
    sample_delta d;
    for (std::size_t i = 0; i < r.scopes.size(); ++i)
      if (r.scopes[i].cat == category::stage && r.scopes[i].name == st.name && in_steps[i] == 0)
        d.add(gained[i]);
    if (d.any && st.gpu.measured) d.apply(st.gpu, nullptr);
  }
  // Requests: their untraced steps at the mean busy of their traced ones.
  for (request_result& q : r.requests) {
    std::vector<double> traced;
    double untraced = 0;
    for (const step_result& s : q.steps) {
      if (s.traced)
        traced.push_back(s.gpu.busy_ms);
      else
        untraced += static_cast<double>(s.calls);
    }
    if (traced.empty() || untraced == 0 || !q.gpu.measured) continue;
    double mean = 0;
    for (double v : traced) mean += v;
    mean /= static_cast<double>(traced.size());
    q.gpu.busy_ms += mean * untraced;
    q.gpu.error_ms = total_error(traced, static_cast<double>(traced.size()) + untraced);
    q.gpu.estimated = true;
  }
  r.sampling.launches_untraced_estimated =
      untraced_launches > 0 ? static_cast<std::uint64_t>(std::llround(untraced_launches)) : 0;

  // Kernels inside steps: by the window's step calls over traced step calls.
  const double n = static_cast<double>(r.sampling.steps);
  const double k = static_cast<double>(r.sampling.traced_steps);
  if (k <= 0 || k >= n) return;
  const double f = n / k;
  std::map<std::string, char> path_in_steps;
  for (std::size_t i = 0; i < r.scopes.size(); ++i) path_in_steps[r.scopes[i].path] = in_steps[i];
  // Each name's busy in each traced step, and in steps in all, for its error.
  std::map<std::string, std::vector<double>> per_step;
  std::size_t traced_rows = 0;
  for (const step_result& s : r.steps) {
    if (!s.traced) continue;
    for (const step_kernel_busy& kb : s.kernels) {
      auto& v = per_step[kb.name];
      v.resize(traced_rows + 1, 0.0);
      v[traced_rows] += kb.busy_ms;
    }
    ++traced_rows;
  }
  std::map<std::string, double> in_steps_total;
  for (const kernel_result& kr : r.kernels) {
    const auto it = path_in_steps.find(kr.scope_path);
    if (it != path_in_steps.end() && it->second != 0) in_steps_total[kr.name] += kr.total_ms;
  }
  op_totals window = r.window.gpu;
  window.busy_ms = 0;
  window.kernels = window.memcpys = window.memsets = 0;
  for (kernel_result& kr : r.kernels) {
    const auto it = path_in_steps.find(kr.scope_path);
    if (it != path_in_steps.end() && it->second != 0) {
      std::vector<double> v = per_step[kr.name];
      v.resize(traced_rows, 0.0);
      const double name_total = in_steps_total[kr.name];
      const double share = name_total > 0 ? kr.total_ms / name_total : 0;
      kr.error_ms = total_error(v, n * static_cast<double>(traced_rows) / k) * share;
      kr.total_ms *= f;
      kr.count = static_cast<std::uint64_t>(std::llround(static_cast<double>(kr.count) * f));
      kr.estimated = true;
    }
    window.busy_ms += kr.total_ms;
    if (kr.kind == "kernel") window.kernels += kr.count;
    if (kr.kind == "memcpy") window.memcpys += kr.count;
    if (kr.kind == "memset") window.memsets += kr.count;
  }
  r.window.gpu = window;
  std::stable_sort(r.kernels.begin(), r.kernels.end(),
                   [](const kernel_result& a, const kernel_result& b) {
                     return a.total_ms != b.total_ms ? a.total_ms > b.total_ms : a.name < b.name;
                   });
}

}  // namespace diffscope::detail
