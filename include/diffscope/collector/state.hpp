// diffscope: the collector's process-wide state: the current run's aggregator, timing source,
// options and outputs, and what is kept of past runs.
//
// The files of collector/ that need collector.hpp's declarations include it first, outside
// their include guard: collector.hpp includes them back at its end, and #pragma once would
// leave a file entered first out of that list while the files after it need it.
#include <diffscope/collector.hpp>

#ifndef DIFFSCOPE_COLLECTOR_STATE_HPP
#define DIFFSCOPE_COLLECTOR_STATE_HPP

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/capture/event_timer.hpp>
#include <diffscope/collector/calibration.hpp>
#include <diffscope/results.hpp>
#include <diffscope/sglang/gate.hpp>
#include <diffscope/sglang/range_names.hpp>

namespace diffscope::detail {

struct collector_state {
  std::recursive_mutex mutex;  // start/stop; recursive: the exit hook calls stop()
  std::atomic<bool> active{false};
  collector_options options;
  aggregator* agg = nullptr;
  std::vector<std::unique_ptr<aggregator>> retired;  // kept: late handlers may still read them
  cupti_source cupti;
  cupti_start_result cupti_status;
  // GPU timing of the current run, either mode: on, or why not.
  bool gpu_ok = false;
  std::string gpu_reason;
  // Perf mode. Timers are kept after stop like aggregators: a range handler may still hold one.
  driver_event_api driver;
  event_timer* timer = nullptr;
  std::vector<std::unique_ptr<event_timer>> timers;
  std::vector<std::unique_ptr<name_rules>> rules;  // one per start, kept like aggregators
  event_timer_counts timer_counts;
  // Sampled mode: whether CUPTI traces now (the NVTX tool's sample points switch it), and what
  // the switches cost.
  std::atomic<bool> sample_tracing{true};
  std::atomic<std::uint64_t> sample_switches{0}, sample_switch_ns{0}, sample_switch_failures{0};
  calibration calib;
  std::string nvtx_note;  // why ranges may be missing
  // options.watch_output: the gate's view of stdout and stderr.
  std::unique_ptr<output_watch> watch;
  std::mutex memory_mutex;
  std::vector<memory_checkpoint> memory;
  double peak_used_mb = 0;
  results last;
  std::vector<std::string> output_errors;  // what the last stop() could not write
};

inline collector_state& collector_globals() {
  static collector_state* s = new collector_state();  // never destroyed: used from atexit
  return *s;
}

}  // namespace diffscope::detail

#endif  // DIFFSCOPE_COLLECTOR_STATE_HPP
