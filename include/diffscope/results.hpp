// diffscope: the collector's results snapshot, plain data that outputs (perf dump, trace,
// summary) are built from. No CUDA, no CUPTI, no NVTX: tools and tests read it anywhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <diffscope/scope.hpp>

namespace diffscope {

/// Host (CPU wall-clock) timing of a scope over its calls, in milliseconds.
/// p50/p90 come from a log-bucketed histogram with at most 1% relative error.
struct host_stats {
  std::uint64_t calls = 0;
  double sum_ms = 0, min_ms = 0, max_ms = 0, mean_ms = 0, p50_ms = 0, p90_ms = 0;
};

/// GPU timing of the work a scope launched (inclusive of nested scopes), in milliseconds,
/// from device timestamps. Summed over the scope's calls, each call measured on its own:
/// - busy: sum of operation durations (kernels, copies, sets);
/// - occupied: length of the union of operation intervals, across streams and devices;
/// - envelope: first operation start to last operation end.
/// In perf mode (collector_status::mode) a timed scope's one "operation" per call is its span
/// on the stream between two device events: busy = occupied = envelope = that span, and
/// there are no kernel, copy or set counts.
/// `measured` is false when no GPU timing was available (no GPU, CUPTI unavailable):
/// then the numbers are absent, never invented.
struct gpu_stats {
  bool measured = false;
  double busy_ms = 0, occupied_ms = 0, envelope_ms = 0;
  std::uint64_t kernels = 0, memcpys = 0, memsets = 0;
  std::uint64_t bytes = 0;        ///< bytes moved by copies and sets
  std::uint64_t timed_calls = 0;  ///< perf mode: calls timed by device events (the spans)
  /// Perf mode, scopes sampled (DIFFSCOPE_PERF_SAMPLE): busy/occupied/envelope are the timed
  /// calls' spans scaled by calls / timed_calls, an estimate of the total over every call.
  /// Sampled mode: busy/occupied/envelope and the counts are the traced calls' figures scaled
  /// to every call (traced_calls < calls), an estimate with `error_ms`.
  bool estimated = false;
  /// Sampled mode: the span of the timed calls (stages, steps, requests) between two device
  /// events, every call timed: what CUDA events around the range measure. 0 when not timed.
  /// (Perf mode keeps its spans in busy/occupied/envelope, as before; this is 0 there.)
  double span_ms = 0;
  /// Sampled mode: calls whose operations were traced; the others are estimated from them.
  std::uint64_t traced_calls = 0;
  /// Sampled mode, estimated figures: one standard error of busy_ms, from the spread of the
  /// traced calls (0 when exact).
  double error_ms = 0;
  /// Communication kernels (NCCL, custom all-reduce, ...; detail::is_communication_kernel),
  /// each call on its own: busy = union of their intervals, overlapped = the part of it
  /// during which other GPU work of the scope ran, exposed = busy - overlapped.
  std::uint64_t comm_kernels = 0;
  double comm_busy_ms = 0, comm_overlapped_ms = 0, comm_exposed_ms = 0;
};

/// The scope that takes a parent's new children past the scope cap
/// (collector_status::max_scopes): one per parent, counted like any scope.
inline constexpr char folded_scope_name[] = "(other)";

/// One scope path ("DenoisingStage/denoise_step/block/attention"), aggregated over calls.
struct scope_result {
  std::string path;  ///< names joined by '/'; denoise steps appear as "denoise_step"
  std::string name;  ///< last component
  category cat = category::other;
  std::string domain;        ///< NVTX domain the range came from ("diffscope" or "" = default)
  int depth = 0;             ///< 0 for top-level scopes
  std::int64_t parent = -1;  ///< index of the parent in results::scopes, -1 at top level
  host_stats host;
  gpu_stats gpu;
  std::uint64_t launches = 0;  ///< launch API calls made inside (inclusive)
};

/// One denoise step (index from the payload or the name "denoising_step_<i>[_t<ts>]").
/// GPU busy of one kernel name (or copy, set) inside a denoise step.
struct step_kernel_busy {
  std::string name;  ///< demangled, as kernel_result::name
  std::string kind;  ///< "kernel", "memcpy" or "memset"
  double busy_ms = 0;
};

/// GPU busy of one kernel category inside a denoise step.
struct step_category_busy {
  std::string category;
  double busy_ms = 0;
};

struct step_result {
  std::int64_t step = 0;
  std::uint64_t calls = 0;  ///< >1 when the same index was entered several times
  double host_ms = 0;       ///< host wall time of the step scope(s)
  gpu_stats gpu;            ///< all work launched inside the step
  double start_ms = 0;      ///< host start relative to the collection start
  /// The step's operations by kernel name, summing to gpu.busy_ms (profile mode, the
  /// window's steps only; empty otherwise).
  std::vector<step_kernel_busy> kernels;
  /// The same by kernel category (SGLang's rules, analysis/hotspots.hpp), in the rules'
  /// order; meaningful only where `categories_measured` (operations were traced).
  std::vector<step_category_busy> categories;
  bool categories_measured = false;
  /// Sampled mode: this step's operations were traced (kernels, categories, busy are its
  /// own); false: only its span (gpu.span_ms) was timed. Always true in profile mode.
  bool traced = true;
};

/// One pipeline stage, in order of first entry.
struct stage_result {
  std::string name;
  std::uint64_t calls = 0;
  double host_ms = 0;
  gpu_stats gpu;
  double start_ms = 0;
};

/// One request (DIFFSCOPE_REQUEST, a plain NVTX range "request_<id>"), or a warm-up
/// (DIFFSCOPE_WARMUP, "warmup", or among the first DIFFSCOPE_SKIP_REQUESTS requests).
struct request_result {
  std::string id;
  std::uint64_t index = 0;  ///< order of entry among all requests, warm-ups included
  bool warmup = false;      ///< in no window: its GPU work counts in window_info::outside
  std::uint64_t calls = 0;
  double host_ms = 0;                ///< host wall time of the request range: its end-to-end time
  double start_ms = 0;               ///< host start relative to the collection start
  gpu_stats gpu;                     ///< work launched inside it (inclusive)
  std::vector<stage_result> stages;  ///< this request's stages, in order of first entry
  std::vector<step_result> steps;    ///< this request's denoise steps
};

/// Per-kernel (or copy / set) totals, for hotspot ranking.
struct kernel_result {
  std::string name;        ///< demangled kernel name, "memcpy HtoD", "memset", ...
  std::string mangled;     ///< the symbol CUPTI reported, where it was demangled ("" else)
  std::string kind;        ///< "kernel", "memcpy" or "memset"
  std::string scope_path;  ///< innermost scope path it was attributed to ("" = none)
  std::uint64_t count = 0;
  double total_ms = 0, min_ms = 0, max_ms = 0;
  /// Sampled mode: count and total_ms are scaled from the traced steps to every step of the
  /// window (the work outside steps is traced whole), `error_ms` one standard error of
  /// total_ms from the spread across traced steps.
  bool estimated = false;
  double error_ms = 0;
};

/// GPU operations (kernels, copies, sets) counted together.
struct op_totals {
  /// Operations were traced (profile mode with GPU timing); false: the numbers are absent.
  bool measured = false;
  double busy_ms = 0;  ///< sum of their durations
  std::uint64_t kernels = 0, memcpys = 0, memsets = 0;
  std::uint64_t operations() const noexcept { return kernels + memcpys + memsets; }
};

/// What the window of the results is: whose work every table holds.
inline constexpr char window_last[] = "last";          ///< the last counted request
inline constexpr char window_requests[] = "requests";  ///< every counted request
inline constexpr char window_run[] = "run";  ///< no counted request: the whole run, warm-ups aside

/// The one time window every table of the results covers (scopes, steps, stages, kernels, and
/// what is computed from them: categories, fast-path findings, shares), and the GPU work left
/// out of it. Work belongs to the request range open on the thread that launched it, when it
/// was launched (CUDA graph replays: the range around the graph launch), whenever its record
/// arrives.
struct window_info {
  /// window_last, window_requests (DIFFSCOPE_WINDOW), or window_run when no request counted.
  std::string covers = window_run;
  std::vector<std::uint64_t> requests;  ///< indices into results::requests, in order
  std::uint64_t kernel_names = 0;       ///< distinct names among results::kernels
  op_totals gpu;                        ///< the window's operations: results::kernels summed
  /// Operations outside every counted request: warm-ups, and work launched with no request
  /// range open on its thread (with requests; without, such work is the window's).
  op_totals outside;
  op_totals warmups;  ///< of `outside`, the warm-ups'
};

/// Sampled mode (collector_status::mode "sampled"): which denoise steps were traced, and what
/// tracing only those cost and saved. Events time every stage and step; CUPTI traces the
/// operations of the sampled steps and of everything outside denoise steps.
struct sampling_info {
  bool active = false;
  std::string rule;                          ///< "steps 1-2", "every 4th step", ...
  std::uint64_t steps = 0;                   ///< the window's denoise step calls
  std::uint64_t traced_steps = 0;            ///< of those, traced
  std::vector<std::int64_t> traced_indices;  ///< the traced steps' indices (window), in order
  std::uint64_t switches = 0;         ///< tracing turned on or off (CUPTI callbacks and records)
  double switch_ms = 0;               ///< host time those switches took, in total
  std::uint64_t launches_traced = 0;  ///< launches seen by the callback while tracing
  /// Launches made while tracing was off, estimated from the traced steps' launches per step
  /// (no callback saw them: that is what sampling saves).
  std::uint64_t launches_untraced_estimated = 0;
  /// What tracing those launches would have cost the program's threads, at this run's
  /// measured callback cost per launch (overhead_stats::per_launch_callback_ns); CUPTI's own
  /// per-launch work, larger, comes on top (docs/modes.md).
  double saved_callback_ms_estimated = 0;
};

/// Everything that went wrong and was survived; every counter is reported, none is fatal.
struct fault_counts {
  std::uint64_t dropped_records = 0;       ///< activity records CUPTI reported as dropped
  std::uint64_t zero_timestamps = 0;       ///< records with start or end == 0 (ignored)
  std::uint64_t inverted_timestamps = 0;   ///< records with end < start (ignored)
  std::uint64_t unattributed_records = 0;  ///< records whose launch was not seen
  std::uint64_t unbalanced_pops = 0;       ///< pops with no open range on that thread
  std::uint64_t unclosed_at_stop = 0;      ///< ranges still open when collection stopped
  std::uint64_t late_records = 0;          ///< records that arrived after their scope was
                                           ///< finalised (counted in totals, not in unions)
  std::uint64_t trace_events_dropped = 0;  ///< raw events beyond the trace cap
  std::uint64_t untimed_no_context = 0;    ///< perf mode: scopes not timed (no CUDA context
                                           ///< on their thread when they opened)
  std::uint64_t timing_failures = 0;       ///< perf mode: event create/record/elapsed failed
  std::uint64_t timing_unresolved = 0;     ///< perf mode: event pairs dropped at stop
  /// Sampled mode: switches of tracing that failed (a CUPTI call), so a sampled step may lack
  /// operations or an unsampled one carry them; and traced steps that delivered none.
  std::uint64_t sample_switch_failures = 0;
  std::uint64_t sampled_steps_empty = 0;
  /// Range calls with no scope of their own: past the scope cap (collector_status::
  /// max_scopes) counted in their parent's "(other)" scope, or opened inside such a call.
  std::uint64_t ranges_folded = 0;
  /// Distinct names among those ranges: exact up to 1,024, above that an estimate within a
  /// few percent (names_folded_estimated), as the names themselves are not kept.
  std::uint64_t names_folded = 0;
  bool names_folded_estimated = false;
};

/// The innermost range still open on one thread when collection stopped.
struct unclosed_range {
  std::uint64_t thread = 0;    ///< per-process thread number (as in the trace)
  std::uint64_t open = 0;      ///< ranges open on that thread, this one and those around it
  std::string path;            ///< its scope path ("request/DenoisingStage/denoise_step")
  std::int64_t step = -1;      ///< the enclosing denoise step's index, -1 when none
  bool thread_exited = false;  ///< the thread had ended (the main thread, at exit)
};

/// Collector self-measurement.
struct overhead_stats {
  std::uint64_t ranges = 0;           ///< range pushes handled
  std::uint64_t callbacks = 0;        ///< CUPTI API callbacks handled
  std::uint64_t records = 0;          ///< activity records processed
  std::uint64_t buffers = 0;          ///< activity buffers processed
  double per_launch_callback_ns = 0;  ///< mean host time spent in our launch callback: sampled
                                      ///< (1 launch in 64), else calibrated at start; 0 in
                                      ///< perf mode and with launch_apis=none (no callback)
  double per_range_ns = 0;            ///< mean host time spent in our push+pop handlers
  std::uint64_t timed_scopes = 0;     ///< perf mode: scope calls timed with device events
  double per_timed_scope_ns = 0;      ///< perf mode: mean host cost of a timed scope's two
                                      ///< event records (on top of per_range_ns)
  std::uint64_t shared_stamps = 0;    ///< perf mode: stamps that reused the previous event
  std::uint64_t chained_steps = 0;    ///< perf mode: of those, steps started at the previous end
                                      ///< (nothing could have entered the stream between)
  /// Profile mode: the launch APIs whose callbacks were on at the end: "runtime+driver",
  /// "driver" (the runtime's proved redundant and turned off, or chosen), "runtime", "none";
  /// empty in perf mode.
  std::string launch_callbacks;
};

/// How GPU numbers were obtained, or why they are missing.
struct collector_status {
  bool gpu_timing = false;   ///< true when device timestamps were collected
  std::string reason;        ///< why gpu_timing is false ("no CUDA driver", "CUPTI held by
                             ///< Nsight Systems", ...); empty when it is true, but in sampled
                             ///< mode without CUPTI: why no operation was traced
  std::string cupti_holder;  ///< name of the other CUPTI subscriber, when one was found
  /// "profile": CUPTI traces every kernel, copy and set (per-kernel tables, busy/occupied/
  /// envelope from operations). "perf": device events at scope boundaries time each timed
  /// scope's span on its stream; no per-kernel data, near-zero per-launch cost. "sampled":
  /// events time every stage and step (gpu_stats::span_ms), CUPTI traces a sample of denoise
  /// steps and the work outside steps; scope and kernel figures are estimates from the sample
  /// (results::sampling). Neither of the other two: outputs and compare say so.
  std::string mode = "profile";
  /// Perf mode: "steps" (stages, denoise steps and requests timed) or "all" (every scope);
  /// empty in profile mode.
  std::string perf_scopes;
  /// Perf mode with "all": the scopes inside denoise steps are timed in one step of this
  /// many (1: every step); their totals are then estimates (gpu_stats::estimated).
  std::uint64_t perf_sample_steps = 1;
  /// Times GPU timing was paused (diffscope::set_timing_paused) during the collection. When
  /// not 0, scopes that ran while paused have no GPU figures of their own (zeros in profile
  /// mode, no timed calls in perf mode): their host timings are complete, their GPU ones not.
  std::uint64_t timing_pauses = 0;
  /// Profile mode: CUPTI settings that differ from the defaults ("launch_apis=none ...",
  /// collector_options::cupti), empty with the defaults. launch_apis other than "both" can
  /// leave operations unattributed: such runs measure cost, not where time goes.
  std::string cupti_settings;
  /// Perf mode: event settings that differ from the defaults ("events=side drain=each ...",
  /// DIFFSCOPE_EXPERIMENT_PERF_STREAM, _EVENTS, _SHARE_NS, _DRAIN), empty with the defaults.
  /// They change what timing costs, not what it measures.
  std::string perf_settings;
  /// The scope cap in force (DIFFSCOPE_MAX_SCOPES): distinct scopes, and distinct range
  /// names, kept before folding into "(other)" (fault_counts::ranges_folded); 0: none.
  std::uint64_t max_scopes = 0;
};

/// Device memory at a named point ("start", "after_<Stage>", "end"), in MiB. Device-wide
/// figures from the driver (total - free), not a framework allocator's view.
struct memory_checkpoint {
  std::string name;
  std::uint32_t device = 0;
  double used_mb = 0;       ///< device memory in use at the checkpoint
  double peak_used_mb = 0;  ///< highest used_mb seen at any checkpoint so far
};

/// Where the numbers were taken.
struct environment_info {
  std::string gpu_name;  ///< "" without a GPU
  int device_count = 0;
  int driver_version = 0;           ///< cudaDriverGetVersion, 0 when unknown
  int runtime_version = 0;          ///< cudaRuntimeGetVersion
  std::uint32_t cupti_version = 0;  ///< cuptiGetVersion
  std::string hostname;
  std::int64_t pid = 0;
  int rank = -1;        ///< RANK (torchrun, SGLang workers), -1 when unset
  int world_size = -1;  ///< WORLD_SIZE, -1 when unset
  int local_rank = -1;  ///< LOCAL_RANK, -1 when unset
};

/// Raw events, kept only when a trace was requested, up to a cap (see fault_counts).
/// Times are detail::now_ns() nanoseconds; `origin_ns` is the collection start.
struct trace_range {
  std::string name, path, domain;
  category cat = category::other;
  std::uint64_t thread = 0;  ///< small per-process thread number (1, 2, ...)
  std::uint64_t start_ns = 0, end_ns = 0;
  std::int64_t step = -1;  ///< enclosing denoise step, -1 when none
};
struct trace_op {
  std::string name, kind, scope_path;
  std::uint32_t device = 0, stream = 0, correlation_id = 0;
  std::uint64_t start_ns = 0, end_ns = 0, bytes = 0;
  std::int64_t step = -1;
  std::uint64_t launch_thread = 0;  ///< thread that launched it (0 = unknown)
  std::uint64_t launch_ns = 0;      ///< host time of the launch call (0 = unknown)
};
struct trace_events {
  bool enabled = false;
  std::uint64_t cap = 0;  ///< max ranges + ops kept
  std::uint64_t origin_ns = 0;
  std::vector<trace_range> ranges;
  std::vector<trace_op> ops;
};

/// A consistent snapshot of everything collected so far.
struct results {
  collector_status status;
  double wall_ms = 0;                     ///< host wall time from collection start to snapshot
  std::vector<scope_result> scopes;       ///< parents before children, in order of first entry
  std::vector<step_result> steps;         ///< by step index (the window's)
  std::vector<stage_result> stages;       ///< in order of first entry (the window's)
  std::vector<request_result> requests;   ///< every request in order, warm-ups included
                                          ///< (empty: no request markers, one implicit run)
  window_info window;                     ///< whose work the tables below and above hold
  std::vector<kernel_result> kernels;     ///< by total_ms, descending
  std::vector<memory_checkpoint> memory;  ///< in order taken
  environment_info environment;
  fault_counts faults;
  /// Ranges open at stop (faults.unclosed_at_stop of them): the innermost of each of the
  /// first five threads holding any, by thread number.
  std::vector<unclosed_range> unclosed_ranges;
  overhead_stats overhead;
  sampling_info sampling;  ///< sampled mode only (active)
  trace_events trace;
};

}  // namespace diffscope
