// diffscope: the collector's life cycle: start (calibrate, choose and start the timing source,
// connect the NVTX tool), stop (drain, assemble the results once, write the outputs), and the
// hooks that start it from the environment and stop it at exit.
// Part of collector.hpp's implementation (collector/state.hpp says why it includes it first).
#include <diffscope/collector.hpp>

#ifndef DIFFSCOPE_COLLECTOR_LIFECYCLE_HPP
#define DIFFSCOPE_COLLECTOR_LIFECYCLE_HPP

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/capture/event_timer.hpp>
#include <diffscope/capture/nvtx_tool.hpp>
#include <diffscope/collector/assemble_results.hpp>
#include <diffscope/collector/calibration.hpp>
#include <diffscope/collector/environment.hpp>
#include <diffscope/collector/state.hpp>
#include <diffscope/collector/write_outputs.hpp>
#include <diffscope/config.hpp>
#include <diffscope/results.hpp>
#include <diffscope/sglang/gate.hpp>
#include <diffscope/sglang/range_names.hpp>

namespace diffscope {
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

/// Sampled mode: CUPTI traces (true) or not from the next launch on; the aggregator's frames
/// opened from now on say so. A program's pause (set_timing_paused) keeps CUPTI off.
inline void collector_switch_tracing(collector_state& st, bool trace) {
  if (st.sample_tracing.load(std::memory_order_relaxed) == trace) return;
  std::lock_guard<std::recursive_mutex> g(st.mutex);
  if (!st.active || st.sample_tracing.load(std::memory_order_relaxed) == trace) return;
  const std::uint64_t t0 = now_ns();
  const bool paused = nvtx_state().timing_paused.load(std::memory_order_relaxed);
  if (!st.cupti.set_paused(paused || !trace))
    st.sample_switch_failures.fetch_add(1, std::memory_order_relaxed);
  st.agg->set_tracing(trace);
  st.sample_tracing.store(trace, std::memory_order_relaxed);
  st.sample_switches.fetch_add(1, std::memory_order_relaxed);
  st.sample_switch_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
}

/// Sampled mode's sample points (nvtx_tool_state::on_sample_point): a denoise step is traced
/// when the rule picks its index, everything outside steps always.
inline void collector_sample_point(std::int64_t step) {
  auto& st = collector_globals();
  collector_switch_tracing(st, step < 0 || st.options.sample.traces(step));
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

}  // namespace detail

inline collector& collector::instance() {
  static collector c;
  return c;
}

inline bool collector::start(const collector_options& options) {
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
  // One dump per request holds the same tables: every counted request's, not the last one's.
  ao.window = options.dump_path.find("{request}") != std::string::npos
                  ? detail::window_mode::requests
                  : options.window;
  ao.max_scopes = options.max_scopes;
  ao.spans_apart = options.mode == timing_mode::sampled;
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
  } else if (options.mode != timing_mode::profile) {
    // Perf mode: CUPTI stays untouched (another profiler may hold it; perf mode needs none of
    // it). Sampled mode: the events time stages and steps, CUPTI traces the sample.
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
    if (st.gpu_ok && options.mode == timing_mode::sampled) {
      st.sample_tracing.store(true, std::memory_order_relaxed);
      st.sample_switches.store(0, std::memory_order_relaxed);
      st.sample_switch_ns.store(0, std::memory_order_relaxed);
      st.sample_switch_failures.store(0, std::memory_order_relaxed);
      st.agg->set_tracing(true);
      st.cupti_status = st.cupti.start(*st.agg, options.cupti);
      if (!st.cupti_status.ok)
        st.gpu_reason =
            "no operation traced, stages and steps timed only: " + st.cupti_status.reason;
      else if (detail::nvtx_state().timing_paused.load(std::memory_order_relaxed))
        st.cupti.set_paused(true);
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
  nv.time_all.store(options.perf_all_scopes && options.mode == timing_mode::perf,
                    std::memory_order_relaxed);
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
  // CUPTI's upkeep, where CUPTI runs (profile mode: gpu_ok says it started).
  const bool upkeep =
      st.cupti_status.ok && options.cupti.launch_apis == detail::cupti_launch_apis::automatic;
  nv.on_push.store(upkeep ? &detail::collector_cupti_upkeep : nullptr, std::memory_order_relaxed);
  nv.on_sample_point.store(options.mode == timing_mode::sampled && st.cupti_status.ok
                               ? &detail::collector_sample_point
                               : nullptr,
                           std::memory_order_release);
  nv.sink.store(st.agg, std::memory_order_release);
  st.active = true;
  detail::take_memory_checkpoint(st, "start");
  return st.gpu_ok;
}

inline results collector::stop() {
  auto& st = detail::collector_globals();
  std::lock_guard<std::recursive_mutex> g(st.mutex);
  if (!st.active) return st.last;
  detail::take_memory_checkpoint(st, "end");
  auto& nv = detail::nvtx_state();
  nv.sink.store(nullptr, std::memory_order_release);
  nv.timer.store(nullptr, std::memory_order_release);
  nv.on_push.store(nullptr, std::memory_order_relaxed);
  nv.on_sample_point.store(nullptr, std::memory_order_release);
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
  results r = detail::assemble_results(st, /*final_snapshot=*/true, &unclosed);
  st.active = false;
  st.last = r;
  st.last.trace = {};  // the big part: the caller has it, nobody keeps a copy
  // Everything printed so far is scanned before the outputs consult the verdict.
  if (st.watch) st.watch->stop();
  st.output_errors = detail::write_outputs(st.options, r);
  st.watch.reset();
  return r;
}

inline results collector::snapshot() {
  auto& st = detail::collector_globals();
  std::lock_guard<std::recursive_mutex> g(st.mutex);
  if (!st.active) return st.last;
  if (st.cupti_status.ok) st.cupti.flush(false);
  if (st.timer != nullptr) st.timer->drain(*st.agg, false, 1);  // all that completed
  return detail::assemble_results(st, /*final_snapshot=*/false);
}

inline bool collector::active() {
  auto& st = detail::collector_globals();
  std::lock_guard<std::recursive_mutex> g(st.mutex);
  return st.active;
}

inline std::vector<std::string> collector::output_errors() {
  auto& st = detail::collector_globals();
  std::lock_guard<std::recursive_mutex> g(st.mutex);
  return st.output_errors;
}

namespace detail {

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

#endif  // DIFFSCOPE_COLLECTOR_LIFECYCLE_HPP
