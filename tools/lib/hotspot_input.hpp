// What `diffscope hotspots` ranks, read once from a perf dump (lib/dump_results.hpp: the kernels
// it lists and its window's totals, kept whole up to max_dump_bytes) or a torch.profiler Chrome
// trace (kernel and gpu_memcpy events, dur summed by name: SGLang's quick ranking; streamed),
// names demangled, and its category rules file.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/output/hotspots_report.hpp>
#include <diffscope/results.hpp>
#include <diffscope/util/demangle.hpp>

#include "../cli.hpp"
#include "dump_reader.hpp"
#include "dump_results.hpp"
#include "input.hpp"
#include "json_input.hpp"
#include "trace_stream.hpp"

namespace diffscope::cli {

/// Most operation intervals kept per kind for the all-to-all/attention overlap check.
inline constexpr std::size_t max_overlap_intervals = 1u << 18;
/// Most distinct kernel names aggregated from a trace, and most bytes of them together; later
/// new names go to one bucket.
inline constexpr std::size_t max_trace_kernel_names = 1u << 18;
inline constexpr std::size_t max_trace_name_bytes = 64u << 20;

/// What a trace or dump gave the ranking.
struct hotspot_source {
  results res;
  overlap_input overlap;
  bool is_trace = false;
  std::uint64_t events = 0, kernels_total = 0;
  std::uint64_t names_folded = 0;  ///< distinct names beyond the cap, folded into one row
  bool gzip = false;
  bool has_window = false;  ///< a dump that names its window (res.window)
};

/// A torch.profiler (Kineto) trace, streamed: sums dur (us) by name over kernel and
/// gpu_memcpy events, and keeps intervals of all-to-all and attention kernels (capped).
inline hotspot_source hotspots_from_trace(byte_source& in, trace_scan_info* info_out) {
  const std::string& path = in.path();
  struct agg {
    std::string kind;
    std::uint64_t count = 0;
    double total_us = 0, min_us = 0, max_us = 0;
    overlap_role role = overlap_role::none;
  };
  hotspot_source src;
  std::unordered_map<std::string, agg> by_name;
  const std::string folded = "(other kernel names beyond the name cap)";
  std::size_t name_bytes = 0;
  src.overlap.available = true;
  const trace_scan_info info = scan_trace(in, [&](const trace_event& ev) {
    const bool kernel = ev.cat == "kernel";
    if (!kernel && ev.cat != "gpu_memcpy") return;
    if (!ev.has_name || !ev.name_is_string)
      throw failure(exit_usage, path + ": traceEvents[" + std::to_string(ev.index) + "] (cat " +
                                    ev.cat + ") has no string \"name\"");
    if (!ev.dur_is_number)
      throw failure(exit_usage, path + ": traceEvents[" + std::to_string(ev.index) +
                                    "] has a \"dur\" that is not a number");
    const double dur = ev.has_dur ? ev.dur : 0.0;  // SGLang: e.get("dur", 0)
    auto it = by_name.find(ev.name);
    if (it == by_name.end()) {
      std::string key = ev.name;
      if (by_name.size() >= max_trace_kernel_names ||
          name_bytes + key.size() > max_trace_name_bytes) {
        ++src.names_folded;
        key = folded;
      } else {
        name_bytes += key.size();
      }
      it = by_name.try_emplace(std::move(key)).first;
      agg& a = it->second;
      if (a.count == 0) {
        a.kind = kernel ? "kernel" : "memcpy";
        a.min_us = dur;
        a.max_us = dur;
        if (kernel) a.role = classify_overlap_role(ev.name);
      }
    }
    agg& a = it->second;
    ++a.count;
    a.total_us += dur;
    a.min_us = std::min(a.min_us, dur);
    a.max_us = std::max(a.max_us, dur);
    if (a.role != overlap_role::none && ev.has_ts && ev.ts_is_number) {
      auto& list =
          a.role == overlap_role::all_to_all ? src.overlap.all_to_all : src.overlap.attention;
      if (list.size() < max_overlap_intervals) {
        list.push_back({ev.ts, ev.ts + dur});
      } else {
        src.overlap.truncated = true;
      }
    }
  });
  if (info_out != nullptr) *info_out = info;
  src.is_trace = true;
  src.events = info.events;
  src.gzip = info.gzip;
  src.kernels_total = by_name.size();
  for (auto& [name, a] : by_name) {
    kernel_result k;
    k.name =
        diffscope::detail::demangle(name);  // a trace of mangled names ranks with torch.profiler's
    k.kind = a.kind;
    k.count = a.count;
    k.total_ms = a.total_us / 1000.0;
    k.min_ms = a.min_us / 1000.0;
    k.max_ms = a.max_us / 1000.0;
    src.res.kernels.push_back(std::move(k));
  }
  return src;
}

/// A diffscope perf dump held in memory, read by the dump reader's rules (dump_reader.hpp) into
/// what dump_results.hpp makes of it: the kernels it lists, its scopes, steps and window;
/// `path` names it in messages.
inline hotspot_source hotspots_from_dump(std::string_view text, const std::string& path) {
  dump_results d = results_of_dump(parse_dump(text, path));
  hotspot_source src;
  src.res = std::move(d.res);
  src.kernels_total = d.kernels_total;
  src.has_window = d.has_window;
  return src;
}

/// A trace or a dump, read once from `in`: streamed as a trace while its text is kept (up to
/// max_dump_bytes) in case it turns out to be a dump.
inline hotspot_source hotspots_from_input(byte_source& in) {
  std::string text;
  in.capture(&text, max_dump_bytes);
  trace_scan_info info;
  hotspot_source src = hotspots_from_trace(in, &info);
  if (info.has_trace_events) return src;
  if (!info.has_diffscope)
    throw failure(exit_usage, in.path() +
                                  ": neither a Chrome trace (no \"traceEvents\") nor a "
                                  "diffscope perf dump (no \"diffscope\" object)");
  if (in.capture_overflowed())
    throw failure(exit_usage, too_large(in.path(), max_dump_bytes, "a perf dump"));
  hotspot_source dump = hotspots_from_dump(text, in.path());
  dump.gzip = in.gzip();
  return dump;
}

/// Most bytes of a rules file.
inline constexpr std::uint64_t max_rules_bytes = 1u << 20;

/// Reads a rules file; failure(exit_usage) naming the file and line on a bad rule.
inline kernel_classifier load_rules(const std::string& path) {
  std::vector<category_rule> rules;
  std::string text = read_file(path, max_rules_bytes, "a rules file");
  if (std::string_view(text).substr(0, utf8_bom.size()) == utf8_bom) text.erase(0, utf8_bom.size());
  if (auto err = parse_category_rules(text, input_name(path), rules))
    throw failure(exit_usage, *err);
  if (rules.empty()) throw failure(exit_usage, path + ": no rules in the file");
  return kernel_classifier(std::move(rules));
}

}  // namespace diffscope::cli
