// diffscope: the range collector. Attributes every GPU kernel, copy and set to the scope
// that launched it and aggregates per-scope, per-step and per-stage timings online, without
// adding synchronisation.
//
// Including this header in one translation unit of a program (and linking the CMake target
// diffscope::collector, or CUPTI + the CUDA runtime) makes the collector the process's NVTX
// tool. It then starts either
//   - from the environment, at the first NVTX range: DIFFSCOPE_DUMP=FILE (perf dump),
//     DIFFSCOPE_TRACE=FILE (Chrome trace), DIFFSCOPE_SUMMARY=1 (console summary on stderr);
//     outputs are written at process exit; or
//   - through the API: diffscope::collector::instance().start(options) / stop(), or the RAII
//     diffscope::collector_session.
// Without a GPU, a driver or CUPTI (another profiler holds it), it keeps host timings and
// says why GPU timings are missing. It never stops the program.
//
// This header is the API: the options, the collector, the session and the timing controls.
// The implementation is in collector/ (state, results assembly, outputs, start and stop),
// included at the end of this file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <diffscope/aggregate/window.hpp>
#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/capture/event_timer.hpp>
#include <diffscope/capture/step_sampling.hpp>
#include <diffscope/config.hpp>
#include <diffscope/output/perf_dump.hpp>
#include <diffscope/results.hpp>
#include <diffscope/scope.hpp>
#include <diffscope/sglang/range_names.hpp>

namespace diffscope {

/// How GPU time is measured (docs/modes.md).
enum class timing_mode {
  /// CUPTI traces every kernel, copy and set: per-kernel tables, busy/occupied/envelope per
  /// scope; costs about a microsecond or two per launch.
  profile,
  /// Device events at the boundaries of timed scopes, on the stream they launch to: each
  /// timed scope's span measured on the GPU, no per-launch cost, no per-kernel data.
  perf,
  /// Both: events time every stage and step (as perf), CUPTI traces the operations of a
  /// sample of denoise steps and of the work outside steps (as profile); scope and kernel
  /// figures are scaled from the sample to every step and marked as estimates.
  sampled,
};

inline const char* timing_mode_name(timing_mode m) noexcept {
  return m == timing_mode::perf ? "perf" : m == timing_mode::sampled ? "sampled" : "profile";
}

/// Perf mode: who settles completed event pairs (collector_options::perf_drain).
enum class perf_drain_policy {
  thread,  ///< a resolver thread of ours, in batches (the default)
  batch,   ///< the program's threads at timed scopes' ends, one query per batch
  each,    ///< the program's threads, one query per pair
};

inline const char* perf_drain_name(perf_drain_policy p) noexcept {
  return p == perf_drain_policy::thread  ? "thread"
         : p == perf_drain_policy::batch ? "batch"
                                         : "each";
}

/// What to collect and where to write it.
struct collector_options {
  std::string dump_path;   ///< perf dump written at stop ("" = none)
  std::string trace_path;  ///< Chrome trace written at stop ("" = none; raw events kept only then)
  bool summary = false;    ///< print the console summary to stderr at stop
  /// Scopes the summary lists: the N with the most GPU time, to depth 6; config::no_limit:
  /// every scope (DIFFSCOPE_SUMMARY_SCOPES, `all`).
  std::uint64_t summary_scopes = 25;
  bool gpu = true;                      ///< false: host timings only, CUPTI untouched
  std::uint64_t trace_cap = 2'000'000;  ///< raw events kept for the trace
  perf_dump_options dump;               ///< tag, meta, legacy step entries, ...
  /// Watch stdout and stderr with the native-backend gate (sglang/gate.hpp) while collecting; a
  /// tripped gate writes no dump or trace at the requested paths.
  bool watch_output = false;
  bool expect_bcg = false;    ///< the gate requires the breakable-CUDA-graph capture marker
  bool keep_invalid = false;  ///< a tripped gate writes them beside as <path>.invalid.json
  timing_mode mode = timing_mode::profile;
  /// Sampled mode: the denoise steps traced (DIFFSCOPE_SAMPLE_STEPS; default steps 1-2).
  detail::step_sample_rule sample;
  /// Outputs create their missing parent directories (false: a missing one is an error and
  /// nothing is created; DIFFSCOPE_CREATE_DIRS).
  bool create_dirs = true;
  /// Perf mode: time every scope (true) or only stages and denoise steps (false: what the
  /// perf dump's figures need, the cheapest).
  bool perf_all_scopes = false;
  /// Perf mode with every scope timed: the scopes inside denoise steps are timed in one step
  /// of this many (DIFFSCOPE_PERF_SAMPLE; 1, the default: every step). Stages, steps and
  /// requests are always timed; a sampled scope's totals are scaled to its calls. Each
  /// stamp costs about 1.8 us of GPU time in a stream of dependent kernels (docs/modes.md),
  /// so sampling is what makes every-scope timing affordable in a launch-bound loop.
  std::uint64_t perf_sample_steps = 1;
  /// Perf mode: the stream timing events go to unless a thread names one with
  /// diffscope::set_timing_stream(). Default: the legacy default stream (CU_STREAM_LEGACY),
  /// where PyTorch and plain CUDA code launch; (void*)2 is CU_STREAM_PER_THREAD.
  void* perf_stream = reinterpret_cast<void*>(1);
  /// Perf mode: take timestamps on a stream of our own that waits for a marker event in the
  /// work stream (DIFFSCOPE_EXPERIMENT_PERF_EVENTS=side) instead of timing events in the work
  /// stream (inline, the default). docs/modes.md compares their cost.
  bool perf_side_stream = false;
  /// Perf mode: stamps less than this many host ns apart on one thread and stream share one
  /// event (DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS; 0: every stamp records its own). See event_timer.
  std::uint64_t perf_share_ns = detail::event_timer::default_share_ns;
  /// Perf mode: who settles completed pairs. `thread` (the default,
  /// DIFFSCOPE_EXPERIMENT_PERF_DRAIN= thread): a thread of ours, in batches, so the program's
  /// threads only record events; `batch`: the program's threads at timed scopes' ends, one event
  /// query per batch; `each`: likewise, one query per pair. See event_timer::drain and
  /// start_resolver.
  perf_drain_policy perf_drain = perf_drain_policy::thread;
  /// Perf mode: consecutive denoise steps on a thread meet (DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS,
  /// on by default): step k + 1 starts at step k's end stamp, one record a step instead of two, and
  /// what the program enqueues between two steps counts in the later one. Off: every step
  /// records its own start. See event_timer::begin.
  bool perf_chain_steps = true;
  /// Profile mode: how CUPTI is driven (buffer size, who zeroes buffers, which launch APIs
  /// get a callback). The defaults are right everywhere; DIFFSCOPE_EXPERIMENT_CUPTI_* change them
  /// to measure what each part costs (docs/modes.md, "What profile mode costs").
  detail::cupti_options cupti;
  /// The first N requests (DIFFSCOPE_REQUEST) are warm-ups: in no dump, table or summary.
  std::uint64_t skip_requests = 0;
  /// With request markers, every table (scopes, kernels, stages, steps) covers the last
  /// counted request, or every counted one (DIFFSCOPE_WINDOW); a dump path holding {request}
  /// makes it every counted one, so each request's file holds the same tables.
  detail::window_mode window = detail::window_mode::last;
  /// How plain NVTX names (torch.cuda.nvtx, SGLang) map to stages, steps and requests.
  detail::name_rules names;
  /// Distinct scopes kept, and distinct range names (DIFFSCOPE_MAX_SCOPES; 0: no cap):
  /// past it a new scope goes into its parent's "(other)" scope, reported as a fault.
  /// Stages, steps and requests are never folded. Real models stay far below.
  std::uint64_t max_scopes = 10'000;

  /// From the environment: every DIFFSCOPE_* setting of the table in config.hpp
  /// (docs/configuration.md). A value that cannot be used is reported once on stderr and
  /// the default kept (the program must run on).
  static collector_options from_env() {
    config::check_all();
    collector_options o;
    o.dump_path = config::text("DIFFSCOPE_DUMP");
    o.trace_path = config::text("DIFFSCOPE_TRACE");
    o.summary = config::flag("DIFFSCOPE_SUMMARY");
    o.summary_scopes = config::count("DIFFSCOPE_SUMMARY_SCOPES").value_or(o.summary_scopes);
    o.create_dirs = config::flag("DIFFSCOPE_CREATE_DIRS");
    o.gpu = !config::flag("DIFFSCOPE_NO_GPU");
    o.trace_cap = config::count("DIFFSCOPE_TRACE_CAP").value_or(o.trace_cap);
    // "none" turns a rule off (an empty variable reads as unset).
    auto prefix = [](const char* name) {
      std::string v = config::text(name);
      return v == "none" ? std::string() : v;
    };
    o.names.stage_prefix = prefix("DIFFSCOPE_STAGE_PREFIX");
    o.names.step_prefix = prefix("DIFFSCOPE_STEP_PREFIX");
    o.names.request_prefix = prefix("DIFFSCOPE_REQUEST_PREFIX");
    o.names.strip_shapes = config::flag("DIFFSCOPE_STRIP_SHAPES");
    o.skip_requests = config::count("DIFFSCOPE_SKIP_REQUESTS").value_or(o.skip_requests);
    o.window = config::choice("DIFFSCOPE_WINDOW") == 1 ? detail::window_mode::requests
                                                       : detail::window_mode::last;
    o.max_scopes = config::count("DIFFSCOPE_MAX_SCOPES").value_or(o.max_scopes);
    o.dump.tag = config::text("DIFFSCOPE_TAG");
    o.dump.legacy_step_entries = config::flag("DIFFSCOPE_LEGACY_STEPS");
    o.expect_bcg = config::flag("DIFFSCOPE_EXPECT_BCG");
    o.watch_output = config::flag("DIFFSCOPE_GATE") || o.expect_bcg;
    o.keep_invalid = config::flag("DIFFSCOPE_KEEP_INVALID");
    o.mode = static_cast<timing_mode>(config::choice("DIFFSCOPE_MODE"));
    if (const char* v = config::raw("DIFFSCOPE_SAMPLE_STEPS")) {
      if (const auto rule = detail::parse_step_sample(v))
        o.sample = *rule;
      else
        config::detail::warn_once(config::detail::entry("DIFFSCOPE_SAMPLE_STEPS"), v);
    }
    o.perf_all_scopes = config::choice("DIFFSCOPE_PERF_SCOPES") == 1;
    if (config::choice("DIFFSCOPE_EXPERIMENT_PERF_STREAM") == 1)
      o.perf_stream = reinterpret_cast<void*>(2);
    o.perf_side_stream = config::choice("DIFFSCOPE_EXPERIMENT_PERF_EVENTS") == 1;
    o.perf_share_ns = config::count("DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS").value_or(o.perf_share_ns);
    o.perf_drain =
        static_cast<perf_drain_policy>(config::choice("DIFFSCOPE_EXPERIMENT_PERF_DRAIN"));
    o.perf_chain_steps = config::flag("DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS");
    o.perf_sample_steps = config::count("DIFFSCOPE_PERF_SAMPLE").value_or(o.perf_sample_steps);
    o.cupti.launch_apis = static_cast<detail::cupti_launch_apis>(
        config::choice("DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS"));
    o.cupti.zero_buffers = config::flag("DIFFSCOPE_EXPERIMENT_CUPTI_ZERO_BUFFERS");
    o.cupti.host_clock = config::flag("DIFFSCOPE_EXPERIMENT_CUPTI_HOST_CLOCK");
    if (const auto kb = config::count("DIFFSCOPE_EXPERIMENT_CUPTI_BUFFER_KB"))
      o.cupti.buffer_bytes = static_cast<std::size_t>(*kb) << 10;
    return o;
  }

  /// True when any output was asked for (what makes the environment start the collector).
  bool wants_output() const { return !dump_path.empty() || !trace_path.empty() || summary; }
};

/// The process-wide collector.
class collector {
 public:
  static collector& instance();

  /// Starts collecting (a no-op returning true when already active). GPU timing is
  /// attempted unless options.gpu is false; when it is unavailable the collector keeps host
  /// timings and results().status.reason says why. Returns whether GPU timing is on.
  bool start(const collector_options& options = collector_options::from_env());

  /// Stops: waits for GPU work in flight, delivers every record, finalises, writes the
  /// outputs named in the options, and returns the results. A no-op returning the last
  /// results when not active.
  results stop();

  /// Results so far: completed GPU work only (records still buffered or running are not
  /// waited for: nothing synchronises while measuring).
  results snapshot();

  bool active();

  /// Why each output the last stop() was asked for could not be written (empty: all were, or
  /// none was asked for). A program that must fail when its dump is lost checks this after
  /// stop(), since outputs written at exit cannot change its exit code.
  std::vector<std::string> output_errors();

 private:
  collector() = default;
};

/// Perf mode: timing events of the scopes this thread opens from now on go to `stream`
/// (nullptr: back to collector_options::perf_stream). Name the stream your scopes launch to
/// when it is not the default stream: perf mode sees only work ordered on the timed stream.
/// A scope's start and end go to the stream current when it opened. No effect in profile
/// mode. Thread-local, never synchronises.
inline void set_timing_stream(cudaStream_t stream) noexcept;

/// While paused, GPU timing stops; ranges keep their host timings. Perf mode: scopes that
/// open are not timed (a scope opened before the pause still closes its pair). Profile mode:
/// CUPTI's tracing is off (launch callbacks and activity records), so launches cost what
/// they cost without it; work launched before the pause is still recorded. Process-wide.
/// For timing only the part of a run you read, and for paired overhead measurements: the
/// same process, loops timed and untimed in turn (bench/perf_mode.py, bench/torch_overhead.py).
inline void set_timing_paused(bool paused) noexcept;

/// RAII collection: starts on construction, stops (and writes the configured outputs) on
/// destruction.
class collector_session {
 public:
  explicit collector_session(const collector_options& options = collector_options::from_env()) {
    collector::instance().start(options);
  }
  ~collector_session() { collector::instance().stop(); }
  collector_session(const collector_session&) = delete;
  collector_session& operator=(const collector_session&) = delete;

  results snapshot() { return collector::instance().snapshot(); }
  results stop() { return collector::instance().stop(); }
};

}  // namespace diffscope

// The implementation. Each of these files includes this header first, outside its include
// guard, so that it also compiles on its own (see collector/state.hpp).
#include <diffscope/collector/assemble_results.hpp>
#include <diffscope/collector/lifecycle.hpp>
#include <diffscope/collector/state.hpp>
#include <diffscope/collector/timing_controls.hpp>
#include <diffscope/collector/write_outputs.hpp>
