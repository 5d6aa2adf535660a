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
#pragma once

#include <dlfcn.h>
#include <unistd.h>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>
#include <cupti.h>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/capture/event_timer.hpp>
#include <diffscope/capture/nvtx_tool.hpp>
#include <diffscope/config.hpp>
#include <diffscope/output/chrome_trace.hpp>
#include <diffscope/output/output_path.hpp>
#include <diffscope/output/perf_dump.hpp>
#include <diffscope/output/summary.hpp>
#include <diffscope/results.hpp>
#include <diffscope/scope.hpp>
#include <diffscope/sglang/gate.hpp>

namespace diffscope {

/// How GPU time is measured (docs/modes.md).
enum class timing_mode {
  /// CUPTI traces every kernel, copy and set: per-kernel tables, busy/occupied/envelope per
  /// scope; costs about a microsecond or two per launch.
  profile,
  /// Device events at the boundaries of timed scopes, on the stream they launch to: each
  /// timed scope's span measured on the GPU, no per-launch cost, no per-kernel data.
  perf,
};

inline const char* timing_mode_name(timing_mode m) noexcept {
  return m == timing_mode::perf ? "perf" : "profile";
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
  bool gpu = true;         ///< false: host timings only, CUPTI untouched
  std::uint64_t trace_cap = 2'000'000;  ///< raw events kept for the trace
  perf_dump_options dump;               ///< tag, meta, legacy step entries, ...
  /// Watch stdout and stderr with the native-backend gate (sglang/gate.hpp) while collecting; a
  /// tripped gate writes no dump or trace at the requested paths.
  bool watch_output = false;
  bool expect_bcg = false;    ///< the gate requires the breakable-CUDA-graph capture marker
  bool keep_invalid = false;  ///< a tripped gate writes them beside as <path>.invalid.json
  timing_mode mode = timing_mode::profile;
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
  /// stream (inline, the default). BENCHMARKS.md compares their cost.
  bool perf_side_stream = false;
  /// Perf mode: stamps less than this many host ns apart on one thread and stream share one
  /// event (DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS; 0: every stamp records its own). See
  /// event_timer.
  std::uint64_t perf_share_ns = detail::event_timer::default_share_ns;
  /// Perf mode: who settles completed pairs. `thread` (the default,
  /// DIFFSCOPE_EXPERIMENT_PERF_DRAIN=thread): a thread of ours, in batches, so the program's
  /// threads only record events; `batch`: the program's threads at timed scopes' ends, one
  /// event query per batch; `each`: likewise, one query per pair. See event_timer::drain and
  /// start_resolver.
  perf_drain_policy perf_drain = perf_drain_policy::thread;
  /// Perf mode: consecutive denoise steps on a thread meet
  /// (DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS, on by default): step k + 1 starts at step k's end
  /// stamp, one record a step instead of two, and what the program enqueues between two steps
  /// counts in the later one. Off: every step records its own start. See event_timer::begin.
  bool perf_chain_steps = true;
  /// Profile mode: how CUPTI is driven (buffer size, who zeroes buffers, which launch APIs
  /// get a callback). The defaults are right everywhere; DIFFSCOPE_EXPERIMENT_CUPTI_* change
  /// them to measure what each part costs (BENCHMARKS.md, "Experiment settings").
  detail::cupti_options cupti;
  /// The first N requests (DIFFSCOPE_REQUEST) are warm-ups: in no dump, table or summary.
  std::uint64_t skip_requests = 0;
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
    o.max_scopes = config::count("DIFFSCOPE_MAX_SCOPES").value_or(o.max_scopes);
    o.dump.tag = config::text("DIFFSCOPE_TAG");
    o.dump.legacy_step_entries = config::flag("DIFFSCOPE_LEGACY_STEPS");
    o.expect_bcg = config::flag("DIFFSCOPE_EXPECT_BCG");
    o.watch_output = config::flag("DIFFSCOPE_GATE") || o.expect_bcg;
    o.keep_invalid = config::flag("DIFFSCOPE_KEEP_INVALID");
    o.mode = config::choice("DIFFSCOPE_MODE") == 1 ? timing_mode::perf : timing_mode::profile;
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

namespace detail {

/// Perf mode's event settings that differ from the defaults, as "name=value" words ("" when
/// none): for the dump's status, so two perf-mode figures taken differently say so.
inline std::string perf_settings_text(const collector_options& o) {
  const collector_options d;
  std::string out;
  const auto add = [&out](const std::string& word) { out += (out.empty() ? "" : " ") + word; };
  if (o.perf_stream != d.perf_stream)
    add(o.perf_stream == reinterpret_cast<void*>(2) ? "stream=per-thread" : "stream=custom");
  if (o.perf_side_stream != d.perf_side_stream)
    add(o.perf_side_stream ? "events=side" : "events=inline");
  if (o.perf_share_ns != d.perf_share_ns) add("share_ns=" + std::to_string(o.perf_share_ns));
  if (o.perf_drain != d.perf_drain) add(std::string("drain=") + perf_drain_name(o.perf_drain));
  if (!o.perf_chain_steps) add("chain_steps=off");
  return out;
}

/// Measured once per start on a private aggregator: the host cost of our own part of a
/// range push+pop and of a launch callback (CUPTI's own callback dispatch comes on top).
struct calibration {
  double per_range_ns = 0;
  double per_launch_ns = 0;
};

inline calibration calibrate() {
  calibration c;
  aggregator a;
  const std::uint32_t id = a.intern("calibration");
  constexpr int n = 20000;
  std::uint64_t t0 = now_ns();
  for (int i = 0; i < n; ++i) {
    a.push(range_domain::diffscope, id, category::other, std::nullopt, now_ns());
    a.pop(range_domain::diffscope, now_ns());
  }
  c.per_range_ns = static_cast<double>(now_ns() - t0) / n;
  a.push(range_domain::diffscope, id, category::other, std::nullopt, now_ns());
  t0 = now_ns();
  for (int i = 0; i < n; ++i) a.on_launch(static_cast<std::uint32_t>(i + 1), launch_kind::kernel);
  c.per_launch_ns = static_cast<double>(now_ns() - t0) / n;
  a.pop(range_domain::diffscope, now_ns());
  return c;
}

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

/// Device memory in use now on the current device, when its context exists (never creates
/// one: the collector must not change what the program does).
inline void take_memory_checkpoint(collector_state& st, const std::string& name) {
  if (!st.gpu_ok) return;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  if (!primary_context_active(device).value_or(st.cupti.counters().contexts_created.load() > 0))
    return;
  std::size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  std::lock_guard<std::mutex> g(st.memory_mutex);
  memory_checkpoint m;
  m.name = name;
  m.device = static_cast<std::uint32_t>(device);
  m.used_mb = static_cast<double>(total_b - free_b) / (1024.0 * 1024.0);
  st.peak_used_mb = std::max(st.peak_used_mb, m.used_mb);
  m.peak_used_mb = st.peak_used_mb;
  st.memory.push_back(m);
}

inline environment_info read_environment(const collector_state& st) {
  environment_info e;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) e.hostname = host;
  e.pid = static_cast<std::int64_t>(getpid());
  // -1: unset (or not a number, reported once); counts below 2^30 by the table.
  auto int_env = [](std::optional<std::uint64_t> v) { return v ? static_cast<int>(*v) : -1; };
  e.rank = int_env(config::rank());
  e.world_size = int_env(config::count("WORLD_SIZE"));
  e.local_rank = int_env(config::count("LOCAL_RANK"));
  if (st.gpu_ok) {
    int n = 0;
    if (cudaGetDeviceCount(&n) == cudaSuccess) e.device_count = n;
    cudaDeviceProp prop{};
    if (n > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) e.gpu_name = prop.name;
    cudaDriverGetVersion(&e.driver_version);
    cudaGetLastError();
  }
  cudaRuntimeGetVersion(&e.runtime_version);
  std::uint32_t v = 0;
  if (st.cupti_status.ok && cuptiGetVersion(&v) == CUPTI_SUCCESS) e.cupti_version = v;
  return e;
}

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
  if (o.summary) print_summary(stderr, r);
  return errors;
}

inline void collector_exit_hook();
inline void collector_stage_end(const std::string& stage);
inline void collector_cupti_upkeep();

/// The N of "one step in N" these options give: 1 unless every scope is timed; at least 1.
inline std::uint32_t sampled_steps(const collector_options& o) noexcept {
  if (!o.perf_all_scopes) return 1;
  return static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::max<std::uint64_t>(o.perf_sample_steps, 1), 1u << 30));
}

/// Perf mode, scopes sampled in one denoise step of N: a scope timed in fewer calls than it
/// made gets its spans scaled by calls / timed calls (the mean span of a timed call times
/// the calls), so its totals and shares compare with its step's. Marked `estimated`.
inline void scale_sampled_scopes(results& r) {
  for (scope_result& s : r.scopes) {
    gpu_stats& g = s.gpu;
    if (!g.measured || g.timed_calls == 0 || s.host.calls <= g.timed_calls) continue;
    const double f = static_cast<double>(s.host.calls) / static_cast<double>(g.timed_calls);
    g.busy_ms *= f;
    g.occupied_ms *= f;
    g.envelope_ms *= f;
    g.estimated = true;
  }
}

}  // namespace detail

/// The process-wide collector.
class collector {
 public:
  static collector& instance() {
    static collector c;
    return c;
  }

  /// Starts collecting (a no-op returning true when already active). GPU timing is
  /// attempted unless options.gpu is false; when it is unavailable the collector keeps host
  /// timings and results().status.reason says why. Returns whether GPU timing is on.
  bool start(const collector_options& options = collector_options::from_env()) {
    auto& st = detail::collector_globals();
    std::lock_guard<std::recursive_mutex> g(st.mutex);
    if (st.active) return st.gpu_ok;
    st.options = options;
    st.output_errors.clear();
    st.calib = detail::calibrate();
    detail::aggregator_options ao;
    ao.keep_trace = !options.trace_path.empty();
    ao.trace_cap = options.trace_cap;
    ao.skip_requests = options.skip_requests;
    ao.max_scopes = options.max_scopes;
    auto agg = std::make_unique<detail::aggregator>(ao);
    st.agg = agg.get();
    st.retired.push_back(std::move(agg));
    {
      std::lock_guard<std::mutex> mg(st.memory_mutex);
      st.memory.clear();
      st.peak_used_mb = 0;
    }
    st.nvtx_note.clear();
    if (const char* inj = config::raw("NVTX_INJECTION64_PATH");
        inj != nullptr && std::string(inj).find("diffscope") == std::string::npos)
      st.nvtx_note = std::string("NVTX ranges go to another tool (NVTX_INJECTION64_PATH=") + inj +
                     "): scopes are not collected";
    st.cupti_status = {};
    st.timer = nullptr;
    st.timer_counts = {};
    if (!options.gpu) {
      st.gpu_ok = false;
      st.gpu_reason = "GPU timing disabled (DIFFSCOPE_NO_GPU or options.gpu = false)";
    } else if (options.mode == timing_mode::perf) {
      // CUPTI stays untouched: another profiler may hold it, and perf mode needs none of it.
      st.gpu_reason = st.driver.load();
      st.gpu_ok = st.gpu_reason.empty();
      if (st.gpu_ok) {
        st.timers.push_back(std::make_unique<detail::event_timer>(
            st.driver, options.perf_stream, options.perf_side_stream, options.perf_share_ns,
            options.perf_drain != perf_drain_policy::each, options.perf_chain_steps));
        st.timer = st.timers.back().get();
        st.timer->warm();  // the current context's event pool: made here, not in a scope
        if (options.perf_drain == perf_drain_policy::thread) st.timer->start_resolver(*st.agg);
      }
    } else {
      st.cupti_status = st.cupti.start(*st.agg, options.cupti);
      st.gpu_ok = st.cupti_status.ok;
      // Paused before the start (set_timing_paused): tracing starts paused.
      if (st.gpu_ok && detail::nvtx_state().timing_paused.load(std::memory_order_relaxed))
        st.cupti.set_paused(true);
      st.gpu_reason = st.cupti_status.reason;
    }
    if (options.watch_output && !st.watch) {
      gate_options go;
      go.expect_bcg = options.expect_bcg;
      st.watch = std::make_unique<output_watch>(go);
      if (!st.watch->active())
        std::fprintf(stderr, "diffscope: the gate cannot watch the output (%s)\n",
                     st.watch->error().c_str());
    }
    detail::cupti_source::set_exit_hook(&detail::collector_exit_hook);
    static const bool atexit_registered = (std::atexit(&detail::collector_exit_hook), true);
    (void)atexit_registered;
    auto& nv = detail::nvtx_state();
    nv.sink_epoch.fetch_add(1);
    nv.time_all.store(options.perf_all_scopes, std::memory_order_relaxed);
    nv.sample_steps.store(detail::sampled_steps(options), std::memory_order_relaxed);
    nv.steps_seen.store(0, std::memory_order_relaxed);
    // Counted from this start; paused already (before it) counts as one.
    nv.timing_pauses.store(nv.timing_paused.load(std::memory_order_relaxed) ? 1 : 0,
                           std::memory_order_relaxed);
    st.rules.push_back(std::make_unique<detail::name_rules>(options.names));
    nv.rules.store(st.rules.back().get(), std::memory_order_release);
    // Allocations the first launch or timed scope would otherwise make inside the program's
    // timeline: made here, before anything is measured.
    if (st.gpu_ok) st.agg->prepare_launches();
    nv.timer.store(st.timer, std::memory_order_release);
    // Profile mode's GPU timing is CUPTI's: gpu_ok says the source started.
    const bool upkeep = options.mode == timing_mode::profile && st.gpu_ok &&
                        options.cupti.launch_apis == detail::cupti_launch_apis::automatic;
    nv.on_push.store(upkeep ? &detail::collector_cupti_upkeep : nullptr, std::memory_order_relaxed);
    nv.sink.store(st.agg, std::memory_order_release);
    st.active = true;
    detail::take_memory_checkpoint(st, "start");
    return st.gpu_ok;
  }

  /// Stops: waits for GPU work in flight, delivers every record, finalises, writes the
  /// outputs named in the options, and returns the results. A no-op returning the last
  /// results when not active.
  results stop() {
    auto& st = detail::collector_globals();
    std::lock_guard<std::recursive_mutex> g(st.mutex);
    if (!st.active) return st.last;
    detail::take_memory_checkpoint(st, "end");
    auto& nv = detail::nvtx_state();
    nv.sink.store(nullptr, std::memory_order_release);
    nv.timer.store(nullptr, std::memory_order_release);
    nv.on_push.store(nullptr, std::memory_order_relaxed);
    const detail::unclosed_report unclosed = st.agg->unclosed_ranges();
    if (st.cupti_status.ok) {
      st.cupti.flush(true);
      st.cupti.stop();
    }
    if (st.timer != nullptr) {
      // The end of the measurement: wait for the timed spans still running on the GPU.
      st.timer->stop_resolver();
      st.timer->drain(*st.agg, true);
      st.timer->release_all();
      st.timer_counts = st.timer->counts();
      st.timer = nullptr;
    }
    st.agg->finalize_all();  // also gives back the pending-launch table
    results r = build_results(st, /*final_snapshot=*/true);
    r.faults.unclosed_at_stop = unclosed.count;
    r.unclosed_ranges = unclosed.innermost;
    st.active = false;
    st.last = r;
    st.last.trace = {};  // the big part: the caller has it, nobody keeps a copy
    // Everything printed so far is scanned before the outputs consult the verdict.
    if (st.watch) st.watch->stop();
    st.output_errors = detail::write_outputs(st.options, r);
    st.watch.reset();
    return r;
  }

  /// Results so far: completed GPU work only (records still buffered or running are not
  /// waited for: nothing synchronises while measuring).
  results snapshot() {
    auto& st = detail::collector_globals();
    std::lock_guard<std::recursive_mutex> g(st.mutex);
    if (!st.active) return st.last;
    if (st.cupti_status.ok) st.cupti.flush(false);
    if (st.timer != nullptr) st.timer->drain(*st.agg, false, 1);  // all that completed
    return build_results(st);
  }

  bool active() {
    auto& st = detail::collector_globals();
    std::lock_guard<std::recursive_mutex> g(st.mutex);
    return st.active;
  }

  /// Why each output the last stop() was asked for could not be written (empty: all were, or
  /// none was asked for). A program that must fail when its dump is lost checks this after
  /// stop(), since outputs written at exit cannot change its exit code.
  std::vector<std::string> output_errors() {
    auto& st = detail::collector_globals();
    std::lock_guard<std::recursive_mutex> g(st.mutex);
    return st.output_errors;
  }

 private:
  collector() = default;

  static results build_results(detail::collector_state& st, bool final_snapshot = false) {
    results r = st.agg->snapshot(st.gpu_ok, final_snapshot);
    r.status.mode = timing_mode_name(st.options.mode);
    r.status.gpu_timing = st.gpu_ok;
    r.status.reason = st.gpu_ok ? std::string() : st.gpu_reason;
    r.status.cupti_holder = st.cupti_status.holder;
    r.status.timing_pauses = detail::nvtx_state().timing_pauses.load(std::memory_order_relaxed);
    if (st.options.mode == timing_mode::profile && st.options.gpu)
      r.status.cupti_settings = detail::cupti_settings_text(st.options.cupti);
    if (st.options.mode == timing_mode::perf && st.options.gpu)
      r.status.perf_settings = detail::perf_settings_text(st.options);
    if (!st.nvtx_note.empty())
      r.status.reason =
          r.status.reason.empty() ? st.nvtx_note : r.status.reason + "; " + st.nvtx_note;
    r.environment = detail::read_environment(st);
    {
      std::lock_guard<std::mutex> g(st.memory_mutex);
      r.memory = st.memory;
    }
    r.overhead.per_range_ns = st.calib.per_range_ns;
    r.overhead.per_launch_callback_ns =
        st.options.mode == timing_mode::perf ? 0.0 : st.calib.per_launch_ns;
    if (st.options.mode == timing_mode::perf) {
      const detail::event_timer_counts c =
          st.timer != nullptr ? st.timer->counts() : st.timer_counts;
      r.overhead.timed_scopes = c.timed;
      r.overhead.per_timed_scope_ns = c.begin_end_ns;
      r.overhead.shared_stamps = c.shared;
      r.overhead.chained_steps = c.chained;
      r.faults.untimed_no_context = c.no_context;
      r.faults.timing_failures = c.failed;
      r.faults.timing_unresolved = c.unresolved;
      r.status.perf_scopes = st.options.perf_all_scopes ? "all" : "steps";
      r.status.perf_sample_steps = detail::sampled_steps(st.options);
      if (r.status.perf_sample_steps > 1) detail::scale_sampled_scopes(r);
    }
    if (st.cupti_status.ok)
      detail::report_counters(detail::snapshot(st.cupti.counters()), st.options.cupti.launch_apis,
                              r.overhead, r.faults);
    return r;
  }
};

namespace detail {
/// Calls `call(f)` with the function `symbol` of libdiffscope_inject.so when the process's
/// NVTX tool is that library (diffscope run) rather than this copy of the collector.
template <class Fn, class Call>
void forward_to_injection(const char* symbol, Call call) noexcept {
#ifndef DIFFSCOPE_DISABLE
  (void)domain();  // NVTX loads the injection library at the first NVTX call: make one
#endif
  const char* path = config::raw("NVTX_INJECTION64_PATH");
  if (path == nullptr) return;
  if (void* lib = ::dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD)) {
    if (auto f = reinterpret_cast<Fn>(::dlsym(lib, symbol))) call(f);
    ::dlclose(lib);  // NOLOAD took a reference: give it back (NVTX keeps its own)
  }
}
}  // namespace detail

/// Perf mode: timing events of the scopes this thread opens from now on go to `stream`
/// (nullptr: back to collector_options::perf_stream). Name the stream your scopes launch to
/// when it is not the default stream: perf mode sees only work ordered on the timed stream.
/// A scope's start and end go to the stream current when it opened. No effect in profile
/// mode. Thread-local, never synchronises.
inline void set_timing_stream(cudaStream_t stream) noexcept {
  detail::timing_stream_override() = static_cast<void*>(stream);
  detail::forward_to_injection<void (*)(void*)>(
      "diffscope_set_timing_stream", [stream](auto f) { f(static_cast<void*>(stream)); });
}

namespace detail {
/// What set_timing_paused() does in this copy of the collector.
inline void apply_timing_pause(bool paused) noexcept {
  nvtx_tool_state& nv = nvtx_state();
  if (!nv.timing_paused.exchange(paused, std::memory_order_relaxed) && paused)
    nv.timing_pauses.fetch_add(1, std::memory_order_relaxed);
  try {
    auto& st = collector_globals();
    std::lock_guard<std::recursive_mutex> g(st.mutex);
    if (st.active && st.cupti_status.ok) st.cupti.set_paused(paused);
  } catch (...) {
    // A failed lock leaves tracing as it was: the program runs on.
  }
}
}  // namespace detail

/// While paused, GPU timing stops; ranges keep their host timings. Perf mode: scopes that
/// open are not timed (a scope opened before the pause still closes its pair). Profile mode:
/// CUPTI's tracing is off (launch callbacks and activity records), so launches cost what
/// they cost without it; work launched before the pause is still recorded. Process-wide.
/// For timing only the part of a run you read, and for paired overhead measurements: the
/// same process, loops timed and untimed in turn (bench/perf_mode.py, bench/torch_overhead.py).
inline void set_timing_paused(bool paused) noexcept {
  detail::apply_timing_pause(paused);
  detail::forward_to_injection<void (*)(int)>("diffscope_set_timing_paused",
                                              [paused](auto f) { f(paused ? 1 : 0); });
}

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

namespace detail {

inline void collector_exit_hook() {
  auto& st = collector_globals();
  std::lock_guard<std::recursive_mutex> g(st.mutex);
  if (st.active) collector::instance().stop();
}

// Once the runtime launch callbacks are dropped, or proved needed, this hook goes: pushes
// no longer pay for it.
inline void collector_cupti_upkeep() {
  auto& cupti = collector_globals().cupti;
  cupti.drop_redundant_runtime_callbacks();
  if (cupti.upkeep_done()) nvtx_state().on_push.store(nullptr, std::memory_order_relaxed);
}

inline void collector_stage_end(const std::string& stage) {
  auto& st = collector_globals();
  if (st.active) take_memory_checkpoint(st, "after_" + stage);
}

/// Started from the environment at the first NVTX range when an output was asked for.
inline void collector_auto_start() {
  const collector_options o = collector_options::from_env();
  if (o.wants_output()) collector::instance().start(o);
}

/// Connects the NVTX tool to this collector: auto-start from the environment at the first
/// range, memory checkpoints after each stage. Both injection routes call it first.
inline void install_collector_hooks() noexcept {
  auto& nv = nvtx_state();
  nv.on_first_init = &collector_auto_start;
  nv.on_stage_end = &collector_stage_end;
}

/// Makes this program's NVTX copies call our tool. NVTX defines the pointer as a weak,
/// zero-initialised symbol in every translation unit that includes it; setting it before
/// the first NVTX call is NVTX's documented static-injection hook. An injection named by
/// NVTX_INJECTION64_PATH (Nsight Systems, libdiffscope_inject.so) still takes precedence.
inline bool install_static_injection() noexcept {
  install_collector_hooks();
  if (InitializeInjectionNvtx2_fnptr == nullptr)
    InitializeInjectionNvtx2_fnptr = &nvtx_initialize_injection;
  return true;
}

#ifndef DIFFSCOPE_COLLECTOR_NO_STATIC_INJECTION
inline const bool static_injection_installed = install_static_injection();
#endif

}  // namespace detail
}  // namespace diffscope
