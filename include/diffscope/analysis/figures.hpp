// diffscope: figures the perf dump and the console summary share: the duration_ms rule (span,
// else GPU envelope, else host time), the counted requests' figures side by side, and the words
// that name the window, the work outside it and sampled mode's traced steps. No CUDA, CUPTI or JSON
// library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/results.hpp>
#include <diffscope/util/text_table.hpp>

namespace diffscope::detail {

/// True when the statistics saw any GPU operation.
inline bool launched_gpu_work(const gpu_stats& g) noexcept {
  return g.kernels + g.memcpys + g.memsets + g.timed_calls > 0;
}

/// Sampled mode: the region was timed by device events in its calls (gpu_stats::span_ms; perf
/// mode keeps its spans in the envelope and leaves span_ms 0).
inline bool uses_gpu_span(const gpu_stats& g) noexcept {
  return g.measured && g.timed_calls > 0 && g.span_ms > 0;
}

/// The rule for every `duration_ms` in the SGLang part of the dump: the span between device
/// events where there is one (sampled mode: exact, every call timed), else the GPU envelope
/// (first operation start to last operation end) when GPU timing was measured and the region
/// launched GPU work, else the host wall time.
inline bool uses_gpu_envelope(const gpu_stats& g) noexcept {
  return g.measured && launched_gpu_work(g);
}
inline double dump_duration_ms(double host_ms, const gpu_stats& g) noexcept {
  return uses_gpu_span(g) ? g.span_ms : uses_gpu_envelope(g) ? g.envelope_ms : host_ms;
}

/// The counted requests' figures side by side: end-to-end (host) times, and each stage's and
/// step's duration_ms (the dump's rule), for medians and ranges over requests.
struct request_figures {
  std::vector<double> e2e;
  std::vector<std::pair<std::string, std::vector<double>>> stages;  // first-entry order
  std::map<std::int64_t, std::vector<double>> steps;
  std::size_t warmups = 0;
};

inline request_figures figures_of_requests(const results& r) {
  request_figures f;
  for (const request_result& q : r.requests) {
    if (q.warmup) {
      ++f.warmups;
      continue;
    }
    f.e2e.push_back(q.host_ms);
    for (const stage_result& s : q.stages) {
      auto it = std::find_if(f.stages.begin(), f.stages.end(),
                             [&](const auto& x) { return x.first == s.name; });
      if (it == f.stages.end()) it = f.stages.insert(f.stages.end(), {s.name, {}});
      it->second.push_back(dump_duration_ms(s.host_ms, s.gpu));
    }
    for (const step_result& s : q.steps)
      f.steps[s.step].push_back(dump_duration_ms(s.host_ms, s.gpu));
  }
  return f;
}

/// The requests the window holds, in words: "the last of 3 counted requests (id r7)", "all 3
/// counted requests", "the whole run (no request markers)".
inline std::string window_text(const results& r) {
  const window_info& w = r.window;
  std::size_t counted = 0;
  for (const request_result& q : r.requests) counted += q.warmup ? 0 : 1;
  counted = std::max(counted, w.requests.size());
  if (w.covers == window_run)
    return r.requests.empty() ? "the whole run (no request markers)"
                              : "the whole run but its warm-ups (no request counted)";
  if (w.covers == window_last && w.requests.size() == 1) {
    const std::uint64_t i = w.requests[0];
    const std::string id = i < r.requests.size() ? " (id " + printable(r.requests[i].id) + ")" : "";
    return (counted == 1 ? std::string("the one counted request")
                         : "the last of " + std::to_string(counted) + " counted requests") +
           id;
  }
  if (w.covers == window_requests)
    return w.requests.size() == 1
               ? std::string("the one counted request")
               : "all " + std::to_string(w.requests.size()) + " counted requests";
  return printable(w.covers);
}

/// Sampled mode's traced steps in words: "steps 1-2, traced 2 of 28 steps (1, 2)" (the first
/// 16 indices, then "...").
inline std::string traced_steps_text(const sampling_info& s) {
  std::string idx;
  for (std::size_t i = 0; i < s.traced_indices.size() && i < 16; ++i)
    idx += (i ? ", " : "") + std::to_string(s.traced_indices[i]);
  if (s.traced_indices.size() > 16) idx += ", ...";
  return (s.rule.empty() ? std::string("(rule unknown)") : printable(s.rule)) + ", traced " +
         std::to_string(s.traced_steps) + " of " + std::to_string(s.steps) + " steps" +
         (idx.empty() ? std::string() : " (" + idx + ")");
}

/// The GPU work outside every counted request, in words ("" when none or not measured):
/// "421.00 ms of GPU work in 22000 operations (warm-ups: 300.00 ms in 12000)".
inline std::string outside_text(const window_info& w) {
  if (!w.outside.measured || w.outside.operations() == 0) return "";
  std::string t = fixed(w.outside.busy_ms, 2) + " ms of GPU work in " +
                  std::to_string(w.outside.operations()) + " operations";
  if (w.warmups.measured && w.warmups.operations() > 0 &&
      w.warmups.operations() != w.outside.operations())
    t += " (warm-ups: " + fixed(w.warmups.busy_ms, 2) + " ms in " +
         std::to_string(w.warmups.operations()) + ")";
  else if (w.warmups.measured && w.warmups.operations() > 0)
    t += ", all in warm-ups";
  return t;
}

}  // namespace diffscope::detail
