// diffscope: parts of the perf dump's "diffscope" object: the gpu objects, the window, the
// explanatory "timing" notes and sampled mode's "sampling" object (docs/outputs.md).
// No CUDA, CUPTI or JSON library.
#pragma once

#include <cstdint>
#include <string>

#include <diffscope/analysis/figures.hpp>
#include <diffscope/results.hpp>
#include <diffscope/util/json_writer.hpp>

namespace diffscope::detail {

/// A gpu object. `sampled` (sampled mode) adds span_ms where the scope was timed by events,
/// traced_calls, and error_ms where the figures are estimates; other modes keep their keys.
inline void write_gpu_stats(json_writer& w, const gpu_stats& g, bool sampled = false) {
  if (!g.measured) {
    w.null();  // not measured: absent, never zero
    return;
  }
  w.begin_object()
      .field("busy_ms", g.busy_ms)
      .field("occupied_ms", g.occupied_ms)
      .field("envelope_ms", g.envelope_ms)
      .field("kernels", g.kernels)
      .field("memcpys", g.memcpys)
      .field("memsets", g.memsets)
      .field("bytes", g.bytes);
  if (g.timed_calls > 0) w.field("timed_calls", g.timed_calls);
  if (g.estimated) w.field("estimated", true);
  if (sampled) {
    if (g.timed_calls > 0) w.field("span_ms", g.span_ms);
    w.field("traced_calls", g.traced_calls);
    if (g.estimated) w.field("error_ms", g.error_ms);
  }
  w.end_object();
}

/// "comm": {busy_ms, overlapped_ms, exposed_ms, kernels}, only where communication kernels ran.
inline void write_comm(json_writer& w, const gpu_stats& g) {
  if (!g.measured || g.comm_kernels == 0) return;
  w.key("comm").begin_object();
  w.field("busy_ms", g.comm_busy_ms);
  w.field("overlapped_ms", g.comm_overlapped_ms);
  w.field("exposed_ms", g.comm_exposed_ms);
  w.field("kernels", g.comm_kernels);
  w.end_object();
}

/// {busy_ms, operations, kernels, memcpys, memsets}, or null when not measured.
inline void write_op_totals(json_writer& w, const op_totals& t) {
  if (!t.measured) {
    w.null();
    return;
  }
  w.begin_object()
      .field("busy_ms", t.busy_ms)
      .field("operations", t.operations())
      .field("kernels", t.kernels)
      .field("memcpys", t.memcpys)
      .field("memsets", t.memsets)
      .end_object();
}

/// diffscope.window: whose work every table of the object holds, and what was left out.
/// `kernel_names`: the distinct names among the window's kernels.
inline void write_window(json_writer& w, const results& r, std::uint64_t kernel_names) {
  const window_info& win = r.window;
  w.key("window").begin_object();
  w.field("covers", win.covers);
  w.key("requests").begin_array();
  for (std::uint64_t i : win.requests) {
    w.begin_object();
    w.field("index", i);
    w.field("id", i < r.requests.size() ? r.requests[i].id : std::string());
    w.end_object();
  }
  w.end_array();
  w.field("kernel_names", kernel_names);
  w.key("gpu");
  write_op_totals(w, win.gpu);
  w.key("outside");
  write_op_totals(w, win.outside);
  w.key("warmups");
  write_op_totals(w, win.warmups);
  w.end_object();
}

inline const char* duration_source(const gpu_stats& g) noexcept {
  return uses_gpu_span(g) ? "gpu_span" : uses_gpu_envelope(g) ? "gpu_envelope" : "host";
}

/// The "timing" object's summary for sampled mode.
inline constexpr char sampled_mode_note[] =
    "sampled mode: device events recorded on the stream time every stage, denoise step and "
    "request (span_ms, exact); CUPTI traces the GPU operations of a sample of denoise steps "
    "(sampling.rule, sampling.traced_indices) and of the work outside denoise steps. Figures "
    "from operations (busy_ms, occupied_ms, envelope_ms, counts, kernels) are the traced "
    "calls' scaled to every call, marked \"estimated\": true with error_ms where not every "
    "call was traced. A stage's or step's duration_ms is its span; steps with traced: false "
    "have no operations of their own. Host numbers come from a monotonic host clock; nothing "
    "is synchronised to measure.";

/// diffscope.timing: what each figure means, in the dump's mode.
inline void write_timing_notes(json_writer& w, const results& r) {
  w.key("timing").begin_object();
  const bool perf = r.status.mode == "perf";
  const bool sampled = r.status.mode == "sampled";
  w.field("summary",
          sampled ? sampled_mode_note
          : perf  ? "perf mode: GPU numbers come from device events recorded on the stream at the "
                    "start and end of each timed scope (stages and denoise steps, or every scope), "
                    "host numbers from a monotonic host clock; nothing is synchronised to measure "
                    "and no kernel is traced. A timed stage's or step's duration_ms is its span on "
                    "the stream, else its host wall time. Work on other streams is not seen."
                 : "GPU numbers come from device timestamps (CUPTI), host numbers from a monotonic "
                   "host clock; nothing is synchronised to measure. A stage's or step's "
                   "duration_ms is its GPU envelope (first GPU operation start to last end) when "
                   "GPU timing was measured and it launched GPU work, else its host wall time.");
  w.field("total_duration_ms",
          "host wall time from collection start to the snapshot (includes host-only work and "
          "idle time)");
  if (sampled) {
    w.field("steps.duration_ms",
            "per stage: its span between two device events (every call timed) when it has one, "
            "else the GPU envelope (estimated where stages[].gpu.estimated), else host wall "
            "time; see stages[].duration_source");
    w.field("denoise_steps_ms.duration_ms",
            "per denoise step: its span between two device events (every step timed, traced or "
            "not), else host wall time; see steps[].duration_source and steps[].traced");
  } else {
    w.field("steps.duration_ms",
            "per stage: GPU envelope when measured and the stage launched GPU work, else host "
            "wall time; see stages[].duration_source");
    w.field("denoise_steps_ms.duration_ms",
            "per denoise step: GPU envelope when measured and the step launched GPU work, else "
            "host wall time; see steps[].duration_source");
  }
  w.field("memory_checkpoints",
          "device-wide memory in use (driver total - free, all processes), not a framework "
          "allocator's view: allocated_mb == reserved_mb == used memory at the checkpoint, "
          "peak_* == highest used memory seen at any checkpoint so far");
  w.field("window",
          "stages, steps, scopes, kernels and hotspots cover window.requests: the last counted "
          "request (covers: last), every counted one (requests) or, none counted, the whole run "
          "(run); GPU work outside every counted request is window.outside, in no table");
  if (perf && r.status.perf_sample_steps > 1) {
    w.field("sampling",
            "perf mode, every scope: the scopes inside denoise steps were timed in one step of "
            "every " +
                std::to_string(r.status.perf_sample_steps) +
                " (status.perf_sample_steps); a scope timed in fewer calls than it made has "
                "busy_ms, occupied_ms and envelope_ms scaled by calls / timed_calls and "
                "\"estimated\": true. Stages, steps and requests are timed in every call.");
  }
  if (sampled) {
    w.field("busy_ms",
            "sum of GPU operation durations of the traced calls, scaled to every call; "
            "\"estimated\": true (with error_ms, one standard error) where not every call was "
            "traced");
    w.field("occupied_ms", "length of the union of GPU operation intervals, scaled as busy_ms");
    w.field("envelope_ms", "first GPU operation start to last end, scaled as busy_ms");
    w.field("span_ms",
            "stages, denoise steps and requests: start event to end event, summed over calls, "
            "every call timed (exact)");
    w.field("traced_calls", "calls whose GPU operations were traced");
    w.field("sampling",
            "which denoise steps were traced (rule, traced_indices), and what tracing only "
            "those cost (switches, switch_ms) and saved (launches_untraced_estimated, "
            "saved_callback_ms_estimated)");
  } else if (perf) {
    w.field("busy_ms", "perf mode: the timed span (start event to end event), summed over calls");
    w.field("occupied_ms", "perf mode: the timed span, as busy_ms");
    w.field("envelope_ms", "perf mode: the timed span, as busy_ms");
  } else {
    w.field("busy_ms", "sum of GPU operation durations (overlapping work counted twice)");
    w.field("occupied_ms", "length of the union of GPU operation intervals");
    w.field("envelope_ms", "first GPU operation start to last end, summed over calls");
  }
  w.end_object();
}

/// diffscope.sampling (sampled mode): which denoise steps were traced, what it cost and saved.
inline void write_sampling(json_writer& w, const sampling_info& s) {
  w.key("sampling").begin_object();
  w.field("rule", s.rule);
  w.field("steps", s.steps);
  w.field("traced_steps", s.traced_steps);
  w.key("traced_indices").begin_array();
  for (std::int64_t i : s.traced_indices) w.value(i);
  w.end_array();
  w.field("switches", s.switches);
  w.field("switch_ms", s.switch_ms);
  w.field("launches_traced", s.launches_traced);
  w.field("launches_untraced_estimated", s.launches_untraced_estimated);
  w.field("saved_callback_ms_estimated", s.saved_callback_ms_estimated);
  w.end_object();
}

}  // namespace diffscope::detail
