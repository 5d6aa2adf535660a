// diffscope: the native-backend gate. SGLang's rule (docs/gate.md): a run that fell back to
// the diffusers backend is not SGLang evidence and keeps no numbers; a breakable-CUDA-graph
// (BCG) run is valid only when its log shows the capture marker and none of the failure
// markers. This is the gate's entry header and its policy:
//   - diffscope::gate_scanner (sglang/gate_scanner.hpp): a streaming scanner giving a
//     gate_verdict; the signals are in sglang/log_signals.hpp;
//   - diffscope::output_watch (sglang/output_watch.hpp): the watch over the process's own
//     stdout and stderr, and current_gate_verdict(), the verdict of the active watch;
//   - here: verdict_text(), the verdict as one line, and detail::gated_output_path(), the
//     collector's rule for an output file when the gate has tripped.
// POSIX only. No CUDA, CUPTI or JSON library.
#pragma once

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>

#include <diffscope/sglang/gate_scanner.hpp>
#include <diffscope/sglang/log_signals.hpp>
#include <diffscope/sglang/output_watch.hpp>
#include <diffscope/util/utf8.hpp>

namespace diffscope {

/// The verdict as one line, e.g.
///   fallback: "Falling back to diffusers backend" at line 42: <the line>
inline std::string verdict_text(const gate_verdict& v) {
  auto where = [](const gate_hit& h) {
    std::string s = h.stream.empty() ? std::string() : h.stream + " ";
    s += "line " + std::to_string(h.line);
    return s;
  };
  auto shown = [](const gate_hit& h) {
    constexpr std::size_t cap = 160;
    std::string t = h.text.size() > cap ? h.text.substr(0, cap) + "..." : h.text;
    if (h.column + h.matched.size() > cap + 1 || h.text.size() > cap)
      t += " [at byte " + std::to_string(h.column) + ": " + detail::printable_utf8(h.matched) + "]";
    return t;
  };
  std::string s = v.code();
  s += ": ";
  switch (v.kind) {
    case verdict_kind::fallback:
      s += "diffusers backend, not SGLang: \"" + std::string(v.fallback->signal_text()) + "\" at " +
           where(*v.fallback) + ": " + shown(*v.fallback);
      break;
    case verdict_kind::bcg_invalid: {
      s += "breakable CUDA graph run failed:";
      bool first = true;
      for (const gate_hit& h : v.bcg_failures) {
        s += first ? " \"" : "; \"";
        s += h.signal_text();
        s += "\" at " + where(h);
        first = false;
      }
      break;
    }
    case verdict_kind::bcg_unverified:
      s += "breakable CUDA graphs expected but \"" + std::string(gate_signals[3].text) +
           "\" not found in " + std::to_string(v.lines) + " lines";
      break;
    case verdict_kind::valid:
      s += "no diffusers fallback in " + std::to_string(v.lines) + " lines";
      if (v.expect_bcg && v.bcg_captured) s += ", BCG captured at " + where(*v.bcg_captured);
      if (!v.expect_bcg && !v.bcg_failures.empty()) {
        s += " (BCG not expected; seen:";
        for (const gate_hit& h : v.bcg_failures)
          s += std::string(" \"") + h.signal_text() + "\" at " + where(h) + ";";
        s.back() = ')';
      }
      break;
  }
  return s;
}

namespace detail {

/// The collector's rule for an output file about to be written at `path`: with no active
/// watch, or a valid verdict, `path` itself (and `verdict_out` = the verdict code, or "" when
/// not gated). Otherwise a message naming the signal on stderr and "" (write nothing), or
/// with keep_invalid "<path>.invalid.json".
inline std::string gated_output_path(const std::string& path, const char* what, bool keep_invalid,
                                     std::string& verdict_out) {
  const std::optional<gate_verdict> v = current_gate_verdict();
  if (!v) return path;
  verdict_out = v->code();
  if (v->ok()) return path;
  const std::string target = keep_invalid ? path + ".invalid.json" : std::string();
  const std::string action =
      keep_invalid ? "kept as " + target + " (marked invalid)"
                   : "not written to " + path + " (DIFFSCOPE_KEEP_INVALID=1 keeps it)";
  std::fprintf(stderr, "diffscope: gate tripped, %s %s: %s\n", what, action.c_str(),
               verdict_text(*v).c_str());
  std::fflush(stderr);
  return target;
}

}  // namespace detail
}  // namespace diffscope
