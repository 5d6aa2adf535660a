// diffscope: the SGLang-compatible perf dump. The file has exactly the keys, order and
// types of `sglang generate --perf-dump-path` (timestamp ... meta), so SGLang's
// compare_perf.py and benchmark helpers read it unchanged, followed by one "diffscope"
// object with everything else (per-scope, per-step and per-kernel tables, collector status,
// faults). The meaning of every field is in docs/outputs.md. No CUDA, CUPTI or JSON library.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <diffscope/analysis/figures.hpp>
#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/config.hpp>
#include <diffscope/output/hotspots_report.hpp>
#include <diffscope/output/perf_dump_parts.hpp>
#include <diffscope/results.hpp>
#include <diffscope/util/atomic_file.hpp>
#include <diffscope/util/json_writer.hpp>
#include <diffscope/util/stats.hpp>
#include <diffscope/util/text.hpp>
#include <diffscope/util/utc_time.hpp>
#include <diffscope/version.hpp>

namespace diffscope {

/// Version of the layout of the "diffscope" object in the dump; bumped on incompatible change.
inline constexpr int perf_dump_schema_version = 1;

struct perf_dump_options {
  /// SGLang's tags: "cli_generate", "server_perf_dump", "benchmark_dump".
  std::string tag = "cli_generate";
  /// Empty: a random UUID (version 4), like SGLang's request ids.
  std::string request_id;
  /// Empty: env DIFFSCOPE_COMMIT, then SGLANG_GIT_COMMIT, then `git rev-parse HEAD` in the
  /// current directory, else "N/A".
  std::string commit_hash;
  /// The dump's "meta" object, e.g. {"model", "..."}, {"prompt", "..."}. A repeated key keeps
  /// its first position and its last value, like a Python dict.
  std::vector<std::pair<std::string, std::string>> meta;
  /// Also write one "denoising_step_<i>" entry per denoise step into "steps", after the
  /// stage entries, as SGLang dumps of late 2025 did. compare_perf.py then shows a
  /// "Denoising Loop (N steps)" row (which overlaps the DenoisingStage row, as it did there).
  bool legacy_step_entries = false;
  /// Verdict of the log gate (sglang/gate.hpp), "" when the run was not gated.
  std::string gate_verdict;
  /// Most entries (a kernel in a scope) listed in diffscope.kernels, longest first: room for
  /// every entry of a real model, so `diffscope compare` tells a removed kernel from one left
  /// off the list, while the list stays bounded (under 1 KB an entry).
  std::size_t max_kernels = 2000;
  /// Empty: the current UTC time. Set it for reproducible files.
  std::string timestamp;
  /// With request markers: the index into results::requests whose stages, steps, end-to-end
  /// time and id the SGLang part holds. Unset: the last request that is not a warm-up (what
  /// SGLang's per-request dump at a fixed path ends up holding). The diffscope object
  /// summarises every request either way.
  std::optional<std::size_t> request;
};

namespace detail {

/// The request a dump's SGLang part holds (nullptr: no counted request; then the whole run).
inline const request_result* dumped_request(const results& r, const perf_dump_options& o) {
  if (o.request) return *o.request < r.requests.size() ? &r.requests[*o.request] : nullptr;
  for (auto it = r.requests.rbegin(); it != r.requests.rend(); ++it)
    if (!it->warmup) return &*it;
  return nullptr;
}

/// Python's round(v, 2): correctly rounded to two decimals, as a double.
inline double round2(double v) noexcept {
  if (!std::isfinite(v)) return v;
  char buf[512];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 2);
  if (res.ec != std::errc()) return v;
  double out = v;
  std::from_chars(buf, res.ptr, out);
  return out == 0 ? 0.0 : out;
}

/// A random version-4 UUID, lowercase, "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx".
inline std::string random_uuid4() {
  std::uint64_t seed = 0;
  try {
    std::random_device rd;
    seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy source: time and pid still make ids of separate runs differ.
    seed = static_cast<std::uint64_t>(
               std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
           (static_cast<std::uint64_t>(::getpid()) << 40);
  }
  std::mt19937_64 gen(seed);
  std::uint64_t hi = gen(), lo = gen();
  hi = (hi & ~0xF000ull) | 0x4000ull;                          // version 4
  lo = (lo & ~0xC000000000000000ull) | 0x8000000000000000ull;  // RFC 4122 variant
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx",
                static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xFFFF),
                static_cast<unsigned long long>(hi & 0xFFFF),
                static_cast<unsigned long long>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

inline bool is_commit_hash(std::string_view s) noexcept {
  if (s.size() < 7 || s.size() > 64) return false;
  for (char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

/// The commit the numbers belong to: DIFFSCOPE_COMMIT, SGLANG_GIT_COMMIT (SGLang's own
/// variable), `git rev-parse HEAD` (stderr silenced, first line, must be hex), else "N/A".
inline std::string resolve_commit_hash() {
  for (const char* var : {"DIFFSCOPE_COMMIT", "SGLANG_GIT_COMMIT"}) {
    if (const char* v = config::raw(var)) {
      std::string t(trim(v));
      if (!t.empty()) return t;
    }
  }
  if (FILE* p = ::popen("git rev-parse HEAD 2>/dev/null </dev/null", "r")) {
    char line[128] = {};
    const bool got = std::fgets(line, sizeof line, p) != nullptr;
    while (std::fgetc(p) != EOF) {
    }  // drain so git never sees a closed pipe
    const int rc = ::pclose(p);
    const std::string hash = got ? std::string(trim(line)) : std::string();
    if (rc == 0 && is_commit_hash(hash)) return hash;
  }
  return "N/A";
}

/// Memory checkpoint keys: the checkpoint's name; when several devices report the same
/// name, the later devices' entries become "<name>@gpu<d>" so no key repeats.
inline std::vector<std::pair<std::string, const memory_checkpoint*>> memory_checkpoint_keys(
    const std::vector<memory_checkpoint>& memory) {
  std::vector<std::pair<std::string, const memory_checkpoint*>> out;
  for (const memory_checkpoint& m : memory) {
    std::string key = m.name;
    for (const auto& [k, prev] : out) {
      if (k == m.name && prev->device != m.device) {
        key = m.name + "@gpu" + std::to_string(m.device);
        break;
      }
    }
    bool replaced = false;
    for (auto& entry : out) {
      if (entry.first == key) {  // same checkpoint again: dict semantics, last value wins
        entry.second = &m;
        replaced = true;
        break;
      }
    }
    if (!replaced) out.emplace_back(std::move(key), &m);
  }
  return out;
}

/// diffscope.requests: every counted request summarised (count, median/min/max of the
/// end-to-end time, of each stage and of each step), which one the SGLang part holds, and
/// the list, warm-ups included.
inline void write_requests(json_writer& w, const results& r, const perf_dump_options& o) {
  const request_result* chosen = dumped_request(r, o);
  const request_figures fig = figures_of_requests(r);
  const auto write_spread = [&w](const spread3& s) {
    w.field("count", static_cast<std::uint64_t>(s.count));
    w.field("median_ms", s.median);
    w.field("min_ms", s.min);
    w.field("max_ms", s.max);
  };
  w.key("requests").begin_object();
  w.field("count", static_cast<std::uint64_t>(fig.e2e.size()));
  w.field("warmups", static_cast<std::uint64_t>(fig.warmups));
  w.key("dumped");
  if (chosen != nullptr) {
    w.begin_object();
    w.field("index", chosen->index);
    w.field("id", chosen->id);
    w.end_object();
  } else {
    w.null();
  }
  w.key("e2e_ms").begin_object();
  write_spread(spread_of(fig.e2e));
  w.end_object();
  w.key("stages").begin_array();
  for (const auto& [name, v] : fig.stages) {
    w.begin_object();
    w.field("name", name);
    write_spread(spread_of(v));
    w.end_object();
  }
  w.end_array();
  w.key("steps").begin_array();
  for (const auto& [step, v] : fig.steps) {
    w.begin_object();
    w.field("step", step);
    write_spread(spread_of(v));
    w.end_object();
  }
  w.end_array();
  w.key("list").begin_array();
  for (const request_result& q : r.requests) {
    w.begin_object();
    w.field("index", q.index);
    w.field("id", q.id);
    w.field("warmup", q.warmup);
    w.field("e2e_ms", q.host_ms);
    if (uses_gpu_span(q.gpu)) w.field("span_ms", q.gpu.span_ms);  // sampled mode
    w.field("start_ms", q.start_ms);
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

inline void write_diffscope_section(json_writer& w, const results& r, const perf_dump_options& o) {
  w.key("diffscope").begin_object();
  w.field("schema_version", perf_dump_schema_version);
  w.field("version", DIFFSCOPE_VERSION_STRING);

  write_timing_notes(w, r);

  w.key("status").begin_object();
  w.field("gpu_timing", r.status.gpu_timing);
  w.field("reason", r.status.reason);
  w.field("cupti_holder", r.status.cupti_holder);
  w.field("mode", r.status.mode);
  if (!r.status.perf_scopes.empty()) {
    w.field("perf_scopes", r.status.perf_scopes);
    w.field("perf_sample_steps", r.status.perf_sample_steps);
  }
  if (r.status.timing_pauses > 0) w.field("timing_pauses", r.status.timing_pauses);
  if (!r.status.cupti_settings.empty()) w.field("cupti_settings", r.status.cupti_settings);
  if (!r.status.perf_settings.empty()) w.field("perf_settings", r.status.perf_settings);
  w.field("max_scopes", r.status.max_scopes);
  w.end_object();
  const bool sampled = r.status.mode == "sampled";
  // Only where operations were traced: without a GPU or CUPTI the status says why not.
  if (r.sampling.active) write_sampling(w, r.sampling);

  w.key("gate").begin_object();
  w.field("gated", !o.gate_verdict.empty());
  w.field("verdict", o.gate_verdict);
  w.end_object();

  const environment_info& e = r.environment;
  w.key("environment").begin_object();
  w.field("gpu_name", e.gpu_name);
  w.field("device_count", e.device_count);
  w.field("driver_version", e.driver_version);
  w.field("runtime_version", e.runtime_version);
  w.field("cupti_version", static_cast<std::uint64_t>(e.cupti_version));
  w.field("hostname", e.hostname);
  w.field("pid", e.pid);
  w.field("rank", e.rank);
  w.field("world_size", e.world_size);
  w.field("local_rank", e.local_rank);
  w.end_object();

  // Categories and fast-path families over every kernel of the window: analysed here, from
  // results.kernels (analysis/hotspots.hpp).
  const hotspot_report hotspots = analyze_hotspots(r);
  write_window(w, r, hotspots.kernel_names);

  // Stages and steps share every field but the one that names them.
  const auto write_timed = [&w, sampled](const auto& s) {
    w.field("calls", s.calls);
    w.field("duration_ms", dump_duration_ms(s.host_ms, s.gpu));
    w.field("duration_source", duration_source(s.gpu));
    w.field("host_ms", s.host_ms);
    w.field("start_ms", s.start_ms);
    w.key("gpu");
    write_gpu_stats(w, s.gpu, sampled);
    write_comm(w, s.gpu);
  };
  w.key("stages").begin_array();
  for (const stage_result& s : r.stages) {
    w.begin_object();
    w.field("name", s.name);
    write_timed(s);
    w.end_object();
  }
  w.end_array();

  w.key("steps").begin_array();
  for (const step_result& s : r.steps) {
    w.begin_object();
    w.field("step", s.step);
    write_timed(s);
    if (sampled) w.field("traced", s.traced);
    if (s.categories_measured) {  // operations traced: the step's busy by kernel category
      w.key("categories").begin_object();
      for (const step_category_busy& c : s.categories) w.field(c.category, c.busy_ms);
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();

  write_requests(w, r, o);

  w.key("scopes").begin_array();
  for (const scope_result& s : r.scopes) {
    w.begin_object();
    w.field("path", s.path);
    w.field("name", s.name);
    w.field("category", category_name(s.cat));
    w.field("domain", s.domain);
    w.field("depth", s.depth);
    w.field("parent", s.parent);
    w.field("calls", s.host.calls);
    w.key("host").begin_object();
    w.field("sum_ms", s.host.sum_ms);
    w.field("min_ms", s.host.min_ms);
    w.field("max_ms", s.host.max_ms);
    w.field("mean_ms", s.host.mean_ms);
    w.field("p50_ms", s.host.p50_ms);
    w.field("p90_ms", s.host.p90_ms);
    w.end_object();
    w.key("gpu");
    write_gpu_stats(w, s.gpu, sampled);
    write_comm(w, s.gpu);
    w.field("launches", s.launches);
    w.end_object();
  }
  w.end_array();

  const std::size_t n_kernels = std::min(r.kernels.size(), o.max_kernels);
  w.field("kernels_total", static_cast<std::uint64_t>(r.kernels.size()));
  w.key("kernels").begin_array();
  for (std::size_t i = 0; i < n_kernels; ++i) {
    const kernel_result& k = r.kernels[i];
    w.begin_object();
    w.field("name", k.name);
    if (!k.mangled.empty()) w.field("mangled", k.mangled);
    w.field("kind", k.kind);
    w.field("scope_path", k.scope_path);
    w.field("count", k.count);
    w.field("total_ms", k.total_ms);
    w.field("mean_ms", k.count > 0 ? k.total_ms / static_cast<double>(k.count) : 0.0);
    w.field("min_ms", k.min_ms);
    w.field("max_ms", k.max_ms);
    if (k.estimated) {  // sampled mode: scaled from the traced steps
      w.field("estimated", true);
      w.field("error_ms", k.error_ms);
    }
    w.end_object();
  }
  w.end_array();

  w.key("hotspots");
  write_hotspots_json(w, hotspots);

  w.key("memory").begin_array();
  for (const memory_checkpoint& m : r.memory) {
    w.begin_object()
        .field("name", m.name)
        .field("device", static_cast<std::uint64_t>(m.device))
        .field("used_mb", m.used_mb)
        .field("peak_used_mb", m.peak_used_mb)
        .end_object();
  }
  w.end_array();

  const fault_counts& f = r.faults;
  w.key("faults").begin_object();
  w.field("dropped_records", f.dropped_records);
  w.field("zero_timestamps", f.zero_timestamps);
  w.field("inverted_timestamps", f.inverted_timestamps);
  w.field("unattributed_records", f.unattributed_records);
  w.field("unbalanced_pops", f.unbalanced_pops);
  w.field("unclosed_at_stop", f.unclosed_at_stop);
  w.field("late_records", f.late_records);
  w.field("trace_events_dropped", f.trace_events_dropped);
  w.field("untimed_no_context", f.untimed_no_context);
  w.field("timing_failures", f.timing_failures);
  w.field("timing_unresolved", f.timing_unresolved);
  if (sampled) {
    w.field("sample_switch_failures", f.sample_switch_failures);
    w.field("sampled_steps_empty", f.sampled_steps_empty);
  }
  w.field("ranges_folded", f.ranges_folded);
  w.field("names_folded", f.names_folded);
  w.end_object();

  // Beside `faults`, which holds counts only (readers sum them across ranks).
  w.key("unclosed_ranges").begin_array();
  for (const unclosed_range& u : r.unclosed_ranges) {
    w.begin_object()
        .field("thread", u.thread)
        .field("open", u.open)
        .field("path", u.path)
        .field("step", u.step)
        .field("thread_exited", u.thread_exited)
        .end_object();
  }
  w.end_array();

  const overhead_stats& ov = r.overhead;
  w.key("overhead").begin_object();
  w.field("ranges", ov.ranges);
  w.field("callbacks", ov.callbacks);
  w.field("records", ov.records);
  w.field("buffers", ov.buffers);
  w.field("per_launch_callback_ns", ov.per_launch_callback_ns);
  w.field("per_range_ns", ov.per_range_ns);
  w.field("timed_scopes", ov.timed_scopes);
  w.field("per_timed_scope_ns", ov.per_timed_scope_ns);
  w.field("shared_stamps", ov.shared_stamps);
  w.field("chained_steps", ov.chained_steps);
  if (!ov.launch_callbacks.empty()) w.field("launch_callbacks", ov.launch_callbacks);
  w.end_object();

  w.key("trace").begin_object();
  w.field("enabled", r.trace.enabled);
  w.field("cap", r.trace.cap);
  w.field("ranges", static_cast<std::uint64_t>(r.trace.ranges.size()));
  w.field("ops", static_cast<std::uint64_t>(r.trace.ops.size()));
  w.field("dropped", f.trace_events_dropped);
  w.end_object();

  w.end_object();
}

}  // namespace detail

/// The perf dump as text (indent 2, UTF-8, trailing newline).
inline std::string perf_dump_json(const results& r, const perf_dump_options& o = {}) {
  detail::json_writer w(2);
  w.begin_object();
  w.field("timestamp", o.timestamp.empty() ? detail::utc_timestamp_now() : o.timestamp);
  // With request markers the SGLang part is one request's (dumped_request), as SGLang
  // writes one dump per request; warm-up time never counts.
  const request_result* q = detail::dumped_request(r, o);
  const std::vector<stage_result>& stages = q != nullptr ? q->stages : r.stages;
  const std::vector<step_result>& steps = q != nullptr ? q->steps : r.steps;
  double total_ms = r.wall_ms;
  if (q != nullptr) {
    total_ms = q->host_ms;
  } else {
    for (const request_result& x : r.requests)
      if (x.warmup) total_ms -= x.host_ms;
  }
  std::string request_id = o.request_id;
  if (request_id.empty() && q != nullptr) request_id = q->id;
  w.field("request_id", request_id.empty() ? detail::random_uuid4() : request_id);
  w.field("commit_hash", o.commit_hash.empty() ? detail::resolve_commit_hash() : o.commit_hash);
  w.field("tag", o.tag);
  w.field("total_duration_ms", total_ms);

  w.key("steps").begin_array();
  for (const stage_result& s : stages) {
    w.begin_object()
        .field("name", s.name)
        .field("duration_ms", detail::dump_duration_ms(s.host_ms, s.gpu))
        .end_object();
  }
  if (o.legacy_step_entries) {
    for (const step_result& s : steps) {
      w.begin_object()
          .field("name", denoise_step_prefix + std::to_string(s.step))
          .field("duration_ms", detail::dump_duration_ms(s.host_ms, s.gpu))
          .end_object();
    }
  }
  w.end_array();

  w.key("denoise_steps_ms").begin_array();
  for (const step_result& s : steps) {
    w.begin_object()
        .field("step", s.step)
        .field("duration_ms", detail::dump_duration_ms(s.host_ms, s.gpu))
        .end_object();
  }
  w.end_array();

  w.key("memory_checkpoints").begin_object();
  for (const auto& [key, m] : detail::memory_checkpoint_keys(r.memory)) {
    w.key(key).begin_object();
    w.field("allocated_mb", detail::round2(m->used_mb));
    w.field("reserved_mb", detail::round2(m->used_mb));
    w.field("peak_allocated_mb", detail::round2(m->peak_used_mb));
    w.field("peak_reserved_mb", detail::round2(m->peak_used_mb));
    w.end_object();
  }
  w.end_object();

  w.key("meta").begin_object();
  std::vector<std::pair<std::string_view, std::string_view>> meta;
  for (const auto& [k, v] : o.meta) {
    bool replaced = false;
    for (auto& m : meta) {
      if (m.first == k) {
        m.second = v;
        replaced = true;
      }
    }
    if (!replaced) meta.emplace_back(k, v);
  }
  for (const auto& [k, v] : meta) w.field(k, v);
  w.end_object();

  detail::write_diffscope_section(w, r, o);
  w.end_object();
  std::string out = w.take();
  out.push_back('\n');
  return out;
}

/// Writes the perf dump to `path` atomically (see detail::write_file_atomically; with
/// `create_parents` false the directory must exist). Returns std::nullopt on success, else the
/// error message. Never throws.
inline std::optional<std::string> write_perf_dump(const std::string& path, const results& r,
                                                  const perf_dump_options& o = {},
                                                  bool create_parents = true) noexcept {
  return detail::write_generated_file(
      path, [&] { return perf_dump_json(r, o); }, create_parents);
}

}  // namespace diffscope
