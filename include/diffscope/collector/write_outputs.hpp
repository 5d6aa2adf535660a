// diffscope: the outputs a collector run writes at stop: perf dumps (one per request with
// {request} in the path), the Chrome trace and the console summary, each gated by the log gate.
// Part of collector.hpp's implementation (collector/state.hpp says why it includes it first).
#include <diffscope/collector.hpp>

#ifndef DIFFSCOPE_COLLECTOR_WRITE_OUTPUTS_HPP
#define DIFFSCOPE_COLLECTOR_WRITE_OUTPUTS_HPP

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <diffscope/output/chrome_trace.hpp>
#include <diffscope/output/output_path.hpp>
#include <diffscope/output/perf_dump.hpp>
#include <diffscope/output/summary.hpp>
#include <diffscope/results.hpp>
#include <diffscope/sglang/gate.hpp>

namespace diffscope::detail {

/// Writes the outputs the options ask for; returns why each one that failed could not be
/// written (each also said on stderr).
inline std::vector<std::string> write_outputs(const collector_options& o, const results& r) {
  std::vector<std::string> errors;
  // A tripped gate keeps no numbers at the requested paths (sglang/gate.hpp): gated_output_path
  // says so and gives "" (or the .invalid.json path with keep_invalid).
  if (!o.dump_path.empty()) {
    // One dump per request that is not a warm-up with {request} in the path, as SGLang
    // writes them; else one dump (the last request's SGLang part, with request markers).
    // Request ids that name the same file ("", "..", a repeated id) get distinct names.
    std::vector<std::optional<std::size_t>> requests;
    std::vector<std::string> ids;
    if (o.dump_path.find("{request}") != std::string::npos) {
      for (const request_result& q : r.requests) {
        if (q.warmup) continue;
        requests.emplace_back(q.index);
        ids.push_back(q.id.empty() ? std::to_string(q.index) : q.id);
      }
    }
    if (requests.empty()) {
      requests.emplace_back(std::nullopt);
      ids.emplace_back("all");
    }
    const std::vector<std::string> names = distinct_file_name_parts(ids);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      perf_dump_options one = o.dump;
      one.request = requests[i];
      const std::string path = gated_output_path(expand_output_path(o.dump_path, names[i]),
                                                 "perf dump", o.keep_invalid, one.gate_verdict);
      if (path.empty()) continue;
      if (auto err = write_perf_dump(path, r, one, o.create_dirs)) {
        std::fprintf(stderr, "diffscope: could not write the perf dump: %s\n", err->c_str());
        errors.push_back(*err);
      }
    }
  }
  if (!o.trace_path.empty()) {
    std::string unused;
    const std::string trace_path =
        gated_output_path(expand_output_path(o.trace_path), "trace", o.keep_invalid, unused);
    if (!trace_path.empty()) {
      if (auto err = write_chrome_trace(trace_path, r, o.create_dirs)) {
        std::fprintf(stderr, "diffscope: could not write the trace: %s\n", err->c_str());
        errors.push_back(*err);
      }
    }
  }
  if (o.summary)
    print_summary(stderr, r, default_summary_kernels, static_cast<std::size_t>(o.summary_scopes));
  return errors;
}

}  // namespace diffscope::detail

#endif  // DIFFSCOPE_COLLECTOR_WRITE_OUTPUTS_HPP
