// diffscope: the gate's verdict over a log: options, hits, verdicts, and gate_scanner, which
// scans bytes for SGLang's log signals (sglang/log_signals.hpp) and says what they mean for
// the run (docs/gate.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/sglang/log_signals.hpp>
#include <diffscope/util/pattern_scanner.hpp>

namespace diffscope {

enum class verdict_kind {
  valid,           ///< no fallback; with expect_bcg also captured and no failure marker
  fallback,        ///< a diffusers-fallback signal: keep no numbers
  bcg_invalid,     ///< BCG expected and a failure marker seen
  bcg_unverified,  ///< BCG expected and no capture marker seen
};

/// Stable short code, as written to the perf dump's diffscope.gate.verdict.
inline const char* verdict_code(verdict_kind k) noexcept {
  switch (k) {
    case verdict_kind::valid:
      return "valid";
    case verdict_kind::fallback:
      return "fallback";
    case verdict_kind::bcg_invalid:
      return "bcg_invalid";
    case verdict_kind::bcg_unverified:
      return "bcg_unverified";
  }
  return "valid";
}

/// Where a signal was first seen.
struct gate_hit {
  std::size_t signal = 0;    ///< index into gate_signals
  std::string stream;        ///< the stream's name ("" when unnamed)
  std::uint64_t line = 0;    ///< 1-based, counted by LF like `grep -n`
  std::uint64_t column = 0;  ///< 1-based byte offset in the line, colour codes removed
  std::string matched;       ///< the signal as it appeared (its case kept)
  std::string text;          ///< the line's start: colour codes removed, capped, sanitised
  const char* signal_text() const noexcept { return gate_signals[signal].text; }
};

struct gate_verdict {
  verdict_kind kind = verdict_kind::valid;
  bool expect_bcg = false;
  std::optional<gate_hit> fallback;      ///< the first fallback signal seen
  std::optional<gate_hit> bcg_captured;  ///< the first capture marker seen
  std::vector<gate_hit> bcg_failures;    ///< every failure marker seen (first of each)
  std::uint64_t bytes = 0;               ///< bytes scanned, all streams
  std::uint64_t lines = 0;  ///< lines scanned, all streams (a last unterminated one counts)

  const char* code() const noexcept { return verdict_code(kind); }
  bool ok() const noexcept { return kind == verdict_kind::valid; }
};

struct gate_options {
  /// The run used breakable CUDA graphs: require the capture marker and no failure marker.
  /// Without it BCG markers are reported but do not decide the verdict ("[Diffusion BCG]
  /// disabled" is what a run without BCG may print).
  bool expect_bcg = false;
  /// Bytes of a matched line kept for the report (its start).
  std::size_t line_cap = 512;
  /// Names of the scanner's streams in reports ("" = unnamed, e.g. a single log).
  std::array<std::string, 2> stream_names{};
};

namespace detail {

inline constexpr std::array<const char*, gate_signal_count> gate_signal_texts() {
  std::array<const char*, gate_signal_count> t{};
  for (std::size_t i = 0; i < gate_signal_count; ++i) t[i] = gate_signals[i].text;
  return t;
}

inline constexpr unsigned gate_fallback_signals_of() {
  unsigned mask = 0;
  for (std::size_t i = 0; i < gate_signal_count; ++i)
    if (gate_signals[i].kind == gate_signal_kind::fallback) mask |= 1u << i;
  return mask;
}

/// The fallback signals as a mask of gate_signals indices.
inline constexpr unsigned gate_fallback_signals = gate_fallback_signals_of();

/// The signals as the pattern scanner's patterns.
struct gate_patterns {
  static constexpr pattern_tables<gate_signal_count> tables =
      make_pattern_tables(gate_signal_texts());
};

}  // namespace detail

/// Streaming scanner for the log signals (util/pattern_scanner.hpp: any chunking, bounded
/// memory, colour codes, CR/LF/CRLF, NUL and invalid UTF-8), giving a gate_verdict. Not
/// thread-safe (output_watch locks around it).
class gate_scanner {
 public:
  explicit gate_scanner(gate_options options = {})
      : options_(std::move(options)), scanner_(options_.line_cap) {}

  /// Bytes of stream 0.
  void feed(const char* data, std::size_t n) { feed(0, data, n); }

  /// Bytes of stream 0 or 1 (stdout and stderr keep separate line state).
  void feed(int stream, const char* data, std::size_t n) { scanner_.feed(stream, data, n); }

  /// Ends every stream's last line (output without a final newline). Feeding more after
  /// finish() starts new lines.
  void finish() { scanner_.finish(); }

  /// The verdict so far (a line still being received counts up to its last byte fed).
  gate_verdict verdict() const {
    gate_verdict v;
    v.expect_bcg = options_.expect_bcg;
    for (const gate_hit& h : hits()) {
      switch (gate_signals[h.signal].kind) {
        case gate_signal_kind::fallback:
          if (!v.fallback) v.fallback = h;
          break;
        case gate_signal_kind::bcg_captured:
          if (!v.bcg_captured) v.bcg_captured = h;
          break;
        case gate_signal_kind::bcg_failure:
          v.bcg_failures.push_back(h);
          break;
      }
    }
    v.bytes = scanner_.bytes();
    v.lines = scanner_.lines();
    if (v.fallback)
      v.kind = verdict_kind::fallback;
    else if (v.expect_bcg && !v.bcg_failures.empty())
      v.kind = verdict_kind::bcg_invalid;
    else if (v.expect_bcg && !v.bcg_captured)
      v.kind = verdict_kind::bcg_unverified;
    return v;
  }

  /// The first occurrence of every signal seen so far, in the order seen.
  std::vector<gate_hit> hits() const {
    std::vector<gate_hit> out;
    out.reserve(scanner_.hits().size());
    for (const pattern_hit& p : scanner_.hits()) {
      gate_hit h;
      h.signal = p.pattern;
      h.stream = options_.stream_names[static_cast<std::size_t>(p.stream)];
      h.line = p.line;
      h.column = p.column;
      h.matched = p.matched;
      h.text = p.text;
      out.push_back(std::move(h));
    }
    return out;
  }

  /// True once a fallback signal was seen (cheap: for kill-on-fallback polling).
  bool fallback_seen() const noexcept {
    return (scanner_.seen() & detail::gate_fallback_signals) != 0;
  }

  const gate_options& options() const noexcept { return options_; }

 private:
  gate_options options_;
  pattern_scanner<detail::gate_patterns> scanner_;
};

}  // namespace diffscope
