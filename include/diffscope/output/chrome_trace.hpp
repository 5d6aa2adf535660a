// diffscope: Chrome trace event JSON (opens in Perfetto and chrome://tracing) from the raw
// events the collector kept when a trace was requested. Host ranges go on one track per
// thread of process "host"; GPU operations on one track per stream of a process per
// device, with torch.profiler's categories ("kernel", "gpu_memcpy", "gpu_memset") so
// SGLang's ranking script reads it; flow arrows join each launch to its first operation.
// No CUDA, CUPTI or JSON library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include <diffscope/results.hpp>
#include <diffscope/util/atomic_file.hpp>
#include <diffscope/util/json_writer.hpp>
#include <diffscope/version.hpp>

namespace diffscope {

/// Chrome trace pid of the host process; GPU device d is pid trace_gpu_pid_base + d.
inline constexpr std::int64_t trace_host_pid = 0;
inline constexpr std::int64_t trace_gpu_pid_base = 1;

namespace detail {

/// Microseconds of `ns` after `origin_ns` (negative when before it).
inline double trace_us(std::uint64_t ns, std::uint64_t origin_ns) noexcept {
  return ns >= origin_ns ? static_cast<double>(ns - origin_ns) / 1000.0
                         : -static_cast<double>(origin_ns - ns) / 1000.0;
}

inline double trace_dur_us(std::uint64_t start_ns, std::uint64_t end_ns) noexcept {
  return end_ns > start_ns ? static_cast<double>(end_ns - start_ns) / 1000.0 : 0.0;
}

/// torch.profiler's category for an operation kind ("kernel", "memcpy", "memset").
inline const char* trace_op_category(const std::string& kind) noexcept {
  if (kind == "memcpy") return "gpu_memcpy";
  if (kind == "memset") return "gpu_memset";
  return "kernel";
}

inline void trace_metadata(json_writer& w, const char* what, std::int64_t pid, std::int64_t tid,
                           const char* arg, const std::string& name_or_empty, std::int64_t number) {
  w.begin_object();
  w.field("ph", "M").field("name", what).field("pid", pid).field("tid", tid);
  w.key("args").begin_object();
  if (name_or_empty.empty()) {
    w.field(arg, number);
  } else {
    w.field(arg, name_or_empty);
  }
  w.end_object();
  w.end_object();
}

}  // namespace detail

/// The trace as Chrome trace event JSON (object form, compact).
inline std::string chrome_trace_json(const results& r) {
  using detail::json_writer;
  const trace_events& t = r.trace;
  const std::uint64_t dropped = r.faults.trace_events_dropped;
  const bool capped = dropped > 0;
  json_writer w(0);
  w.begin_object();
  w.field("displayTimeUnit", "ms");
  w.key("traceEvents").begin_array();

  // Tracks: host threads (ranges and launching threads), GPU devices and their streams.
  std::set<std::uint64_t> threads;
  std::map<std::uint32_t, std::set<std::uint32_t>> streams;
  for (const trace_range& x : t.ranges) threads.insert(x.thread);
  for (const trace_op& op : t.ops) {
    streams[op.device].insert(op.stream);
    if (op.launch_thread != 0) threads.insert(op.launch_thread);
  }
  detail::trace_metadata(w, "process_name", trace_host_pid, 0, "name", "host", 0);
  detail::trace_metadata(w, "process_sort_index", trace_host_pid, 0, "sort_index", "", 0);
  for (std::uint64_t th : threads) {
    const auto tid = static_cast<std::int64_t>(th);
    detail::trace_metadata(w, "thread_name", trace_host_pid, tid, "name",
                           "thread " + std::to_string(th), 0);
  }
  for (const auto& [device, ids] : streams) {
    const std::int64_t pid = trace_gpu_pid_base + device;
    detail::trace_metadata(w, "process_name", pid, 0, "name", "GPU " + std::to_string(device), 0);
    detail::trace_metadata(w, "process_sort_index", pid, 0, "sort_index", "", pid);
    for (std::uint32_t s : ids) {
      detail::trace_metadata(w, "thread_name", pid, static_cast<std::int64_t>(s), "name",
                             "stream " + std::to_string(s), 0);
    }
  }

  double last_us = 0;
  for (const trace_range& x : t.ranges) {
    const double ts = detail::trace_us(x.start_ns, t.origin_ns);
    const double dur = detail::trace_dur_us(x.start_ns, x.end_ns);
    last_us = std::max(last_us, ts + dur);
    w.begin_object();
    w.field("ph", "X").field("name", x.name).field("cat", category_name(x.cat));
    w.field("pid", trace_host_pid).field("tid", x.thread);
    w.field("ts", ts).field("dur", dur);
    w.key("args").begin_object();
    w.field("path", x.path).field("step", x.step).field("domain", x.domain);
    w.end_object();
    w.end_object();
  }

  // One flow per correlation id, to its earliest operation (a graph launch has many).
  std::map<std::uint32_t, std::size_t> first_op;
  for (std::size_t i = 0; i < t.ops.size(); ++i) {
    const trace_op& op = t.ops[i];
    const std::int64_t pid = trace_gpu_pid_base + op.device;
    const double ts = detail::trace_us(op.start_ns, t.origin_ns);
    const double dur = detail::trace_dur_us(op.start_ns, op.end_ns);
    last_us = std::max(last_us, ts + dur);
    w.begin_object();
    w.field("ph", "X").field("name", op.name).field("cat", detail::trace_op_category(op.kind));
    w.field("pid", pid).field("tid", static_cast<std::uint64_t>(op.stream));
    w.field("ts", ts).field("dur", dur);
    w.key("args").begin_object();
    w.field("scope", op.scope_path).field("step", op.step);
    w.field("correlation", static_cast<std::uint64_t>(op.correlation_id));
    w.field("device", static_cast<std::uint64_t>(op.device));
    w.field("stream", static_cast<std::uint64_t>(op.stream));
    if (op.kind != "kernel") w.field("bytes", op.bytes);
    w.end_object();
    w.end_object();
    if (op.correlation_id != 0 && op.launch_thread != 0 && op.launch_ns != 0) {
      auto [it, inserted] = first_op.emplace(op.correlation_id, i);
      if (!inserted && t.ops[it->second].start_ns > op.start_ns) it->second = i;
    }
  }
  for (const auto& [correlation, i] : first_op) {
    const trace_op& op = t.ops[i];
    const auto id = static_cast<std::uint64_t>(correlation);
    w.begin_object();
    w.field("ph", "s").field("name", "launch").field("cat", "launch").field("id", id);
    w.field("pid", trace_host_pid).field("tid", op.launch_thread);
    w.field("ts", detail::trace_us(op.launch_ns, t.origin_ns));
    w.end_object();
    w.begin_object();
    w.field("ph", "f").field("bp", "e").field("name", "launch").field("cat", "launch");
    w.field("id", id);
    w.field("pid", trace_gpu_pid_base + op.device)
        .field("tid", static_cast<std::uint64_t>(op.stream));
    w.field("ts", detail::trace_us(op.start_ns, t.origin_ns));
    w.end_object();
  }

  // Say loudly in the timeline itself when it is incomplete or empty.
  if (capped || !t.enabled) {
    const std::string msg = !t.enabled ? std::string("diffscope: trace collection was not enabled")
                                       : "diffscope: trace capped at " + std::to_string(t.cap) +
                                             " events, " + std::to_string(dropped) + " dropped";
    w.begin_object();
    w.field("ph", "i").field("s", "g").field("name", msg).field("cat", "diffscope");
    w.field("pid", trace_host_pid).field("tid", static_cast<std::int64_t>(0));
    w.field("ts", last_us);
    w.end_object();
  }
  w.end_array();

  // Extra top-level keys are ignored by trace viewers (torch.profiler writes several).
  w.key("diffscope").begin_object();
  w.field("schema_version", 1).field("version", DIFFSCOPE_VERSION_STRING);
  w.field("trace_enabled", t.enabled);
  w.field("trace_capped", capped);
  w.field("cap", t.cap);
  w.field("events_dropped", dropped);
  w.field("ranges", static_cast<std::uint64_t>(t.ranges.size()));
  w.field("ops", static_cast<std::uint64_t>(t.ops.size()));
  w.field("gpu_timing", r.status.gpu_timing);
  w.field("reason", r.status.reason);
  w.end_object();
  w.end_object();
  std::string out = w.take();
  out.push_back('\n');
  return out;
}

/// Writes the Chrome trace to `path` atomically (see detail::write_file_atomically; with
/// `create_parents` false the directory must exist). Returns std::nullopt on success, else the
/// error message. Never throws.
inline std::optional<std::string> write_chrome_trace(const std::string& path, const results& r,
                                                     bool create_parents = true) noexcept {
  return detail::write_generated_file(
      path, [&] { return chrome_trace_json(r); }, create_parents);
}

}  // namespace diffscope
