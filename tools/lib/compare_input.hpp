// What `diffscope compare` reads: perf dumps (lib/dump_reader.hpp), or torch.profiler traces
// (lib/hotspot_input.hpp), whose kernels alone are compared; never the two mixed
// (docs/compare.md, "Kernel diff").
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../cli.hpp"
#include "dump_reader.hpp"
#include "hotspot_input.hpp"
#include "input.hpp"
#include "json_input.hpp"
#include "kernel_diff.hpp"

namespace diffscope::cli {

/// One input of compare: a perf dump, or a trace (then `kernels` holds its kernels).
struct compare_input {
  bool trace = false;
  perf_dump_data dump;
  kernel_run kernels;
};

namespace compare_input_detail {

inline bool regular_file(const std::string& path) {
  struct stat st {};
  return path != "-" && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// A JSON object that names "traceEvents" somewhere: worth scanning as a trace. A bare array
/// is left to the dump reader, which says what it is.
inline bool may_be_trace(std::string_view text) {
  if (text.substr(0, utf8_bom.size()) == utf8_bom) text.remove_prefix(utf8_bom.size());
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{' &&
         text.find("\"traceEvents\"") != std::string_view::npos;
}

inline compare_input trace_input(hotspot_source&& src, const std::string& name) {
  compare_input in;
  in.trace = true;
  in.kernels = kernel_run_of(std::move(src), name);
  return in;
}

}  // namespace compare_input_detail

/// Reads `path` ("-" = stdin) as a perf dump, by the dump reader's rules and messages, unless
/// it is a torch.profiler trace (an object with traceEvents): then its kernels. A trace above
/// the dump's size limit is streamed from a file; from stdin it is refused as a dump is.
inline compare_input read_compare_input(const std::string& path) {
  using namespace compare_input_detail;
  const std::string name = input_name(path);
  std::string text;
  try {
    text = read_dump_text(path);
  } catch (const failure& e) {
    const failure original = e;
    if (regular_file(path)) {
      try {
        byte_source in(path, no_size_limit, "a trace");
        trace_scan_info info;
        hotspot_source src = hotspots_from_trace(in, &info);
        if (info.has_trace_events) return trace_input(std::move(src), name);
      } catch (const failure&) {  // not a trace either: the dump reader's reason stands
      }
    }
    throw original;
  }
  if (may_be_trace(text)) {
    byte_source in(text, name);
    trace_scan_info info;
    hotspot_source src = hotspots_from_trace(in, &info);
    if (info.has_trace_events) return trace_input(std::move(src), name);
  }
  compare_input in;
  in.dump = parse_dump(text, name);
  return in;
}

/// The inputs of one compare, all dumps or all traces: a trace among dumps is refused
/// (exit 2) naming both, since their kernel times are taken over different windows by
/// different tools. stdin ("-") may be given once.
inline std::vector<compare_input> read_compare_inputs(const std::vector<std::string>& paths) {
  if (std::count(paths.begin(), paths.end(), "-") > 1)
    throw failure(exit_usage, "'-' (stdin) given more than once");
  std::vector<compare_input> out;
  for (const std::string& p : paths) out.push_back(read_compare_input(p));
  const auto trace = std::find_if(out.begin(), out.end(), [](const auto& i) { return i.trace; });
  const auto dump = std::find_if(out.begin(), out.end(), [](const auto& i) { return !i.trace; });
  if (trace != out.end() && dump != out.end())
    throw failure(exit_usage, trace->kernels.file +
                                  ": a Chrome trace (it has traceEvents), not a perf dump like " +
                                  dump->dump.file +
                                  ": compare traces with traces and dumps with dumps (their "
                                  "kernel times come from different tools and windows)");
  return out;
}

}  // namespace diffscope::cli
