// diffscope: figures the perf dump and the console summary share: the duration_ms rule (GPU
// envelope else host time) and the counted requests' figures side by side. No CUDA, CUPTI or
// JSON library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/results.hpp>

namespace diffscope::detail {

/// True when the statistics saw any GPU operation.
inline bool launched_gpu_work(const gpu_stats& g) noexcept {
  return g.kernels + g.memcpys + g.memsets + g.timed_calls > 0;
}

/// The rule for every `duration_ms` in the SGLang part of the dump: the GPU envelope (first
/// operation start to last operation end) when GPU timing was measured and the region
/// launched GPU work, else the host wall time.
inline bool uses_gpu_envelope(const gpu_stats& g) noexcept {
  return g.measured && launched_gpu_work(g);
}
inline double dump_duration_ms(double host_ms, const gpu_stats& g) noexcept {
  return uses_gpu_envelope(g) ? g.envelope_ms : host_ms;
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

}  // namespace diffscope::detail
