// diffscope: the native-backend gate. SGLang's rule (docs/gate.md): a run that fell back to
// the diffusers backend is not SGLang evidence and keeps no numbers; a breakable-CUDA-graph
// (BCG) run is valid only when its log shows the capture marker and none of the failure
// markers. This header scans output for those signals:
//   - diffscope::gate_scanner: a streaming scanner over bytes (any chunking, bounded memory,
//     colour codes, CR/LF/CRLF, NUL and invalid UTF-8), giving a gate_verdict;
//   - diffscope::output_watch: RAII redirection of the process's own stdout and stderr
//     through a reader thread that passes every byte through and feeds the scanner;
//   - diffscope::current_gate_verdict(): the verdict of the active watch, which the
//     collector consults before it writes a dump.
// POSIX only. No CUDA, CUPTI or JSON library.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <diffscope/util/utf8.hpp>

namespace diffscope {

/// What a signal means.
enum class gate_signal_kind {
  fallback,      ///< the diffusers backend ran instead of SGLang's: a hard stop
  bcg_captured,  ///< a breakable CUDA graph was captured
  bcg_failure,   ///< a BCG run failed or was disabled
};

struct gate_signal {
  const char* text;  ///< matched case-insensitively as a substring of one line
  gate_signal_kind kind;
};

/// The signals, as SGLang prints them (docs/sglang.md, section 4).
inline constexpr std::size_t gate_signal_count = 9;
inline constexpr std::array<gate_signal, gate_signal_count> gate_signals = {{
    {"Falling back to diffusers backend", gate_signal_kind::fallback},
    {"Using diffusers backend", gate_signal_kind::fallback},
    {"Loaded diffusers pipeline", gate_signal_kind::fallback},
    {"[Diffusion BCG] captured", gate_signal_kind::bcg_captured},
    {"[Diffusion BCG] capture failed", gate_signal_kind::bcg_failure},
    {"[Diffusion BCG] disabled", gate_signal_kind::bcg_failure},
    {"[Diffusion BCG] serving signature MISSED", gate_signal_kind::bcg_failure},
    {"no graph will be captured", gate_signal_kind::bcg_failure},
    {"cannot be used with breakable cuda graphs", gate_signal_kind::bcg_failure},
}};

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

inline constexpr std::size_t gate_min_len = 23;  // "Using diffusers backend"
inline constexpr std::size_t gate_max_len = 41;  // "cannot be used with breakable cuda graphs"

inline constexpr std::size_t gate_strlen(const char* s) noexcept {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

inline constexpr unsigned char gate_fold(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + 32) : c;
}

/// Hash of the 3-byte block ending at p, case folded (12 bits).
inline constexpr unsigned gate_hash(unsigned char a, unsigned char b, unsigned char c) noexcept {
  return ((static_cast<unsigned>(gate_fold(a)) << 6) ^ (static_cast<unsigned>(gate_fold(b)) << 3) ^
          gate_fold(c)) &
         0xfffu;
}

inline constexpr std::size_t gate_block = 3;

/// Wu-Manber tables over 3-byte blocks of case-folded text: how far a window may move when
/// its last block hashes to a value, and which signals end their first gate_min_len bytes
/// with such a block. Built at compile time; 12 KiB, stays in L1.
struct gate_tables {
  std::array<unsigned char, 256> fold{};
  std::array<unsigned char, 4096> shift{};
  std::array<std::uint16_t, 4096> candidates{};
  std::array<std::array<unsigned char, 48>, gate_signal_count> pattern{};
  std::array<std::size_t, gate_signal_count> length{};
};

inline constexpr gate_tables make_gate_tables() {
  gate_tables t{};
  for (unsigned c = 0; c < 256; ++c) t.fold[c] = gate_fold(static_cast<unsigned char>(c));
  for (auto& s : t.shift) s = static_cast<unsigned char>(gate_min_len - gate_block + 1);
  for (std::size_t i = 0; i < gate_signal_count; ++i) {
    const char* s = gate_signals[i].text;
    t.length[i] = gate_strlen(s);
    for (std::size_t k = 0; k < t.length[i]; ++k)
      t.pattern[i][k] = gate_fold(static_cast<unsigned char>(s[k]));
    const auto& q = t.pattern[i];
    for (std::size_t j = gate_block - 1; j < gate_min_len; ++j) {
      const unsigned h = gate_hash(q[j - 2], q[j - 1], q[j]);
      const auto sh = static_cast<unsigned char>(gate_min_len - 1 - j);
      if (sh < t.shift[h]) t.shift[h] = sh;
    }
    constexpr std::size_t e = gate_min_len - 1;
    const unsigned last = gate_hash(q[e - 2], q[e - 1], q[e]);
    t.candidates[last] = static_cast<std::uint16_t>(t.candidates[last] | (1u << i));
  }
  return t;
}

inline constexpr gate_tables gate_table = make_gate_tables();

/// Calls on_match(signal, offset) for every signal occurrence lying wholly in [t, t + n).
template <class F>
inline void gate_search(const unsigned char* t, std::size_t n, F&& on_match) {
  constexpr std::size_t m = gate_min_len;
  if (n < m) return;
  const auto& tb = gate_table;
  std::size_t pos = m - 1;  // the window's last byte
  while (pos < n) {
    const unsigned h = ((static_cast<unsigned>(tb.fold[t[pos - 2]]) << 6) ^
                        (static_cast<unsigned>(tb.fold[t[pos - 1]]) << 3) ^ tb.fold[t[pos]]) &
                       0xfffu;
    const unsigned s = tb.shift[h];
    if (s != 0) {
      pos += s;
      continue;
    }
    unsigned mask = tb.candidates[h];
    const std::size_t start = pos - (m - 1);
    const unsigned char* w = t + start;
    while (mask != 0) {
      const unsigned i = static_cast<unsigned>(__builtin_ctz(mask));
      mask &= mask - 1;
      const std::size_t len = tb.length[i];
      if (len > n - start) continue;
      const unsigned char* p = tb.pattern[i].data();
      std::size_t k = 0;
      while (k < len && tb.fold[w[k]] == p[k]) ++k;
      if (k == len) on_match(i, start);
    }
    ++pos;
  }
}

}  // namespace detail

/// Streaming scanner. Feed it bytes in any chunking; a signal split across feeds, or by
/// colour codes, still matches. Memory stays bounded whatever the line length: per stream it
/// keeps at most a few KiB of the current line and the line's start for the report.
/// Lines end at LF; a CR ends a segment too (progress bars redraw with CR), so a match never
/// spans one. Not thread-safe (output_watch locks around it).
class gate_scanner {
 public:
  explicit gate_scanner(gate_options options = {}) : options_(std::move(options)) {}

  /// Bytes of stream 0.
  void feed(const char* data, std::size_t n) { feed(0, data, n); }

  /// Bytes of stream 0 or 1 (stdout and stderr keep separate line state).
  void feed(int stream, const char* data, std::size_t n) {
    stream_state& st = streams_[stream == 0 ? 0 : 1];
    if (n == 0) return;
    st.bytes += n;
    st.last_byte = static_cast<unsigned char>(data[n - 1]);
    scan(st, stream == 0 ? 0 : 1, reinterpret_cast<const unsigned char*>(data), n);
  }

  /// Ends every stream's last line (output without a final newline). Feeding more after
  /// finish() starts new lines.
  void finish() {
    for (int s = 0; s < 2; ++s) {
      stream_state& st = streams_[static_cast<std::size_t>(s)];
      st.esc = esc_none;
      end_segment(st, s, nullptr, 0, false);
    }
  }

  /// The verdict so far (a line still being received counts up to its last byte fed).
  gate_verdict verdict() const {
    gate_verdict v;
    v.expect_bcg = options_.expect_bcg;
    for (const gate_hit& h : hits_) {
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
    for (const stream_state& st : streams_) {
      v.bytes += st.bytes;
      v.lines += (st.line - 1) + ((st.bytes > 0 && st.last_byte != '\n') ? 1 : 0);
    }
    if (v.fallback)
      v.kind = verdict_kind::fallback;
    else if (v.expect_bcg && !v.bcg_failures.empty())
      v.kind = verdict_kind::bcg_invalid;
    else if (v.expect_bcg && !v.bcg_captured)
      v.kind = verdict_kind::bcg_unverified;
    return v;
  }

  /// The first occurrence of every signal seen so far, in the order seen.
  const std::vector<gate_hit>& hits() const noexcept { return hits_; }

  /// True once a fallback signal was seen (cheap: for kill-on-fallback polling).
  bool fallback_seen() const noexcept { return fallback_seen_; }

  const gate_options& options() const noexcept { return options_; }

 private:
  enum : unsigned char { esc_none, esc_start, esc_csi, esc_nf };
  static constexpr std::size_t carry = detail::gate_max_len - 1;  // a later match may start here
  static constexpr std::size_t in_place_min = 1024;  // larger pieces are searched where they lie
  static constexpr std::size_t buffer_limit = 8192;  // pending text is searched at this size
  static constexpr std::size_t buffer_capacity = buffer_limit + in_place_min + carry;

  struct stream_state {
    unsigned char esc = esc_none;
    unsigned char last_byte = '\n';
    std::uint64_t bytes = 0;
    std::uint64_t line = 1;
    std::uint64_t offset = 0;  // byte offset in the segment of pending[0]
    std::size_t pending_n = 0;
    std::unique_ptr<unsigned char[]> pending{new unsigned char[buffer_capacity]};
    std::string head;                   // the segment's start, filled lazily up to line_cap
    std::vector<std::size_t> new_hits;  // hits_ indices recorded in this segment
  };

  /// Extends head with pending bytes that follow it (head covers segment bytes [0, size)).
  void fill_head(stream_state& st, const unsigned char* p, std::size_t n, std::uint64_t offset) {
    const std::size_t have = st.head.size();
    if (have >= options_.line_cap || have < offset || have >= offset + n) return;
    const std::size_t from = static_cast<std::size_t>(have - offset);
    st.head.append(reinterpret_cast<const char*>(p + from),
                   std::min(n - from, options_.line_cap - have));
  }

  void record(stream_state& st, int stream, std::size_t signal, std::uint64_t offset,
              const unsigned char* at) {
    if ((seen_ & (1u << signal)) != 0) return;  // first occurrence of each signal only
    seen_ |= 1u << signal;
    gate_hit h;
    h.signal = signal;
    h.stream = options_.stream_names[static_cast<std::size_t>(stream)];
    h.line = st.line;
    h.column = offset + 1;
    h.matched.assign(reinterpret_cast<const char*>(at), detail::gate_table.length[signal]);
    if (gate_signals[signal].kind == gate_signal_kind::fallback) fallback_seen_ = true;
    st.new_hits.push_back(hits_.size());
    hits_.push_back(std::move(h));
  }

  void search(stream_state& st, int stream, const unsigned char* t, std::size_t n,
              std::uint64_t offset) {
    if (seen_ == all_seen) return;  // nothing left to learn
    detail::gate_search(
        t, n, [&](std::size_t i, std::size_t at) { record(st, stream, i, offset + at, t + at); });
  }

  /// Hits of this segment get the line text known so far.
  void refresh_hits(stream_state& st) {
    if (st.new_hits.empty()) return;
    fill_head(st, st.pending.get(), st.pending_n, st.offset);
    const std::string text = detail::printable_utf8(st.head);
    for (std::size_t i : st.new_hits) hits_[i].text = text;
  }

  /// Searches the pending text and keeps only the tail a later match could start in.
  void commit(stream_state& st, int stream) {
    search(st, stream, st.pending.get(), st.pending_n, st.offset);
    fill_head(st, st.pending.get(), st.pending_n, st.offset);
    refresh_hits(st);
    if (st.pending_n > carry) {
      const std::size_t drop = st.pending_n - carry;
      std::memmove(st.pending.get(), st.pending.get() + drop, carry);
      st.pending_n = carry;
      st.offset += drop;
    }
  }

  /// Text of the current segment, not yet known to end here.
  void add_text(stream_state& st, int stream, const unsigned char* p, std::size_t n) {
    if (n < in_place_min) {
      std::memcpy(st.pending.get() + st.pending_n, p, n);
      st.pending_n += n;
      if (st.pending_n >= buffer_limit) commit(st, stream);
      return;
    }
    // A large piece: search the seam with what is pending, then the piece where it lies.
    const std::uint64_t piece_offset = st.offset + st.pending_n;
    fill_head(st, st.pending.get(), st.pending_n, st.offset);
    fill_head(st, p, n, piece_offset);
    const std::size_t seam = std::min(n, carry);
    std::memcpy(st.pending.get() + st.pending_n, p, seam);
    search(st, stream, st.pending.get(), st.pending_n + seam, st.offset);
    search(st, stream, p, n, piece_offset);
    refresh_hits(st);
    std::memcpy(st.pending.get(), p + n - carry, carry);  // n >= in_place_min > carry
    st.pending_n = carry;
    st.offset = piece_offset + n - carry;
  }

  /// The last text of a segment, then its end.
  void end_segment(stream_state& st, int stream, const unsigned char* p, std::size_t n,
                   bool newline) {
    if (st.pending_n == 0 && st.new_hits.empty()) {
      // A whole segment in one piece (the common case): searched where it lies.
      search(st, stream, p, n, 0);
      if (!st.new_hits.empty()) {
        st.head.assign(reinterpret_cast<const char*>(p), std::min(n, options_.line_cap));
        refresh_hits(st);
      }
    } else {
      if (n > 0) add_text(st, stream, p, n);
      search(st, stream, st.pending.get(), st.pending_n, st.offset);
      refresh_hits(st);
    }
    st.pending_n = 0;
    st.offset = 0;
    st.head.clear();
    st.new_hits.clear();
    st.esc = esc_none;  // CR and LF end an escape sequence too
    if (newline) ++st.line;
  }

  /// One byte of an escape sequence; false when the byte is not part of it (it is then
  /// ordinary output).
  static bool escape_byte(unsigned char& esc, unsigned char c) noexcept {
    switch (esc) {
      case esc_start:
        if (c == '[')
          esc = esc_csi;
        else if (c >= 0x20 && c <= 0x2f)
          esc = esc_nf;
        else if (c >= 0x30 && c <= 0x7e)
          esc = esc_none;  // a two-byte sequence
        else {
          esc = esc_none;
          return false;
        }
        return true;
      case esc_csi:  // ESC [ parameters (0x30-0x3f), intermediates (0x20-0x2f), final (0x40-0x7e)
        if (c >= 0x20 && c <= 0x3f) return true;
        esc = esc_none;
        return c >= 0x40 && c <= 0x7e;
      case esc_nf:  // ESC intermediates (0x20-0x2f), final (0x30-0x7e)
        if (c >= 0x20 && c <= 0x2f) return true;
        esc = esc_none;
        return c >= 0x30 && c <= 0x7e;
      default:
        return false;
    }
  }

  /// Bytes [p, lim) of a line with escape sequences (lim: the line's LF or the chunk's
  /// end), byte by byte with the state in locals: colour codes make short runs, for which
  /// this beats a memchr per run. A sequence cut by the chunk's end continues in st.esc.
  void scan_escaped(stream_state& st, int stream, const unsigned char* p,
                    const unsigned char* lim) {
    unsigned char* const buf = st.pending.get();
    std::size_t n = st.pending_n;
    unsigned char esc = st.esc;
    while (p < lim) {
      const unsigned char c = *p;
      if (esc != esc_none) {
        if (escape_byte(esc, c)) {
          ++p;
          continue;
        }
      }
      if (c == 0x1b) {
        const unsigned char* q = p + 1;
        if (q < lim && *q == '[') {  // CSI, usually whole here: skip it in one go
          ++q;
          while (q < lim && *q >= 0x20 && *q <= 0x3f) ++q;
          if (q == lim)
            esc = esc_csi;
          else if (*q >= 0x40 && *q <= 0x7e)
            ++q;
          p = q;
        } else {
          esc = esc_start;
          ++p;
        }
        continue;
      }
      if (c == '\r') {
        st.pending_n = n;
        st.esc = esc;
        end_segment(st, stream, p, 0, false);
        n = 0;
        ++p;
        continue;
      }
      const std::size_t room = buffer_limit - n;  // n < buffer_limit here
      const unsigned char* const stop = static_cast<std::size_t>(lim - p) > room ? p + room : lim;
      buf[n++] = c;
      ++p;
      // Eight bytes at a time while none is ESC or CR (SWAR zero-byte test), then bytewise.
      constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
      while (stop - p >= 8) {
        std::uint64_t x;
        std::memcpy(&x, p, 8);
        const std::uint64_t e = x ^ (ones * 0x1b), r = x ^ (ones * '\r');
        if ((((e - ones) & ~e) | ((r - ones) & ~r)) & highs) break;
        std::memcpy(buf + n, p, 8);
        n += 8;
        p += 8;
      }
      for (; p < stop; ++p) {
        const unsigned char d = *p;
        if (d == 0x1b || d == '\r') break;
        buf[n++] = d;
      }
      if (n >= buffer_limit) {
        st.pending_n = n;
        commit(st, stream);
        n = st.pending_n;
      }
    }
    st.pending_n = n;
    st.esc = esc;
  }

  void scan(stream_state& st, int stream, const unsigned char* data, std::size_t size) {
    const unsigned char* p = data;
    const unsigned char* const end = data + size;
    auto find = [end](const unsigned char* from, int ch) {
      const void* f = std::memchr(from, ch, static_cast<std::size_t>(end - from));
      return f != nullptr ? static_cast<const unsigned char*>(f) : end;
    };
    const unsigned char* nl = find(p, '\n');
    const unsigned char* cr = find(p, '\r');
    const unsigned char* es = find(p, 0x1b);
    while (p < end) {
      if (nl < p) nl = find(p, '\n');
      if (st.esc != esc_none || (es < nl && (es = find(p, 0x1b)) < nl)) {
        scan_escaped(st, stream, p, nl);  // also handles the line's CRs
        if (nl == end) break;
        end_segment(st, stream, nl, 0, true);
        p = nl + 1;
        continue;
      }
      if (cr < p) cr = find(p, '\r');
      const unsigned char* q = std::min(nl, cr);
      if (q == end) {
        add_text(st, stream, p, static_cast<std::size_t>(end - p));
        break;
      }
      end_segment(st, stream, p, static_cast<std::size_t>(q - p), *q == '\n');
      p = q + 1;
    }
    // Pending text is searched now, so verdict() sees a signal before its line ends.
    if (st.pending_n > 0) commit(st, stream);
  }

  static constexpr unsigned all_seen = (1u << gate_signal_count) - 1;

  gate_options options_;
  std::array<stream_state, 2> streams_{};
  std::vector<gate_hit> hits_;
  unsigned seen_ = 0;
  bool fallback_seen_ = false;
};

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

class output_watch;

namespace detail {

/// Process-wide: the watch the collector consults. Never destroyed (used from atexit).
struct gate_registry {
  std::mutex mutex;
  output_watch* active = nullptr;
  bool exit_hook = false;
};

inline gate_registry& gate_globals() {
  static gate_registry* r = new gate_registry();
  return *r;
}

inline void gate_exit_hook();

/// Writes all of [p, p + n) to fd; false when the fd is gone (the bytes are dropped).
inline bool gate_write_all(int fd, const char* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd pf{fd, POLLOUT, 0};
        ::poll(&pf, 1, -1);
        continue;
      }
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace detail

/// Watches this process's own stdout and stderr while it lives: fd 1 and 2 are redirected
/// into pipes; a reader thread writes every byte, unchanged and in order per stream, to the
/// original descriptors and feeds a gate_scanner. Child processes that inherit fd 1 and 2 are
/// watched too. stop() (and the destructor, and exit() while a watch is active) flushes C
/// stdio, restores the descriptors and drains the pipes, so nothing written before is lost.
/// When the pipes cannot be set up the program goes on unwatched: active() is false and
/// error() says why.
class output_watch {
 public:
  explicit output_watch(gate_options options = {}) : scanner_(prepare(std::move(options))) {
    start();
  }
  ~output_watch() {
    stop();
    auto& g = detail::gate_globals();
    std::lock_guard<std::mutex> lock(g.mutex);
    if (g.active == this) g.active = previous_;
  }
  output_watch(const output_watch&) = delete;
  output_watch& operator=(const output_watch&) = delete;

  /// The verdict so far (any time, from any thread; after stop(), the final one).
  gate_verdict verdict() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return scanner_.verdict();
  }

  bool fallback_seen() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return scanner_.fallback_seen();
  }

  /// Flushes C stdio and waits (at most timeout_ms) until everything written to fd 1 and 2
  /// so far has been scanned, so that verdict() covers it.
  void settle(int timeout_ms = 2000) {
    std::fflush(stdout);
    std::fflush(stderr);
    std::lock_guard<std::mutex> stop_lock(stop_mutex_);
    if (!running_ || owner_pid_ != ::getpid()) return;
    for (int waited = 0; waited < timeout_ms; ++waited) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        int a = 0, b = 0;
        if (::ioctl(read_[0], FIONREAD, &a) != 0 || ::ioctl(read_[1], FIONREAD, &b) != 0) return;
        if (a == 0 && b == 0) return;
      }
      ::usleep(1000);
    }
  }

  /// True while the output is being watched.
  bool active() const noexcept { return running_.load(); }
  /// Why watching could not start ("" when it did).
  const std::string& error() const noexcept { return error_; }

  /// Flushes stdio, restores fd 1 and 2, passes through what is still in the pipes, ends
  /// the reader. Idempotent.
  void stop() {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    if (!running_) return;
    running_ = false;
    std::fflush(stdout);
    std::fflush(stderr);
    if (owner_pid_ != ::getpid()) {  // a forked child: the reader thread is the parent's
      ::dup2(saved_[0], 1);
      ::dup2(saved_[1], 2);
      close_all();
      return;
    }
    ::dup2(saved_[0], 1);  // closes our write ends: the reader sees EOF
    ::dup2(saved_[1], 2);
    const char x = 'x';
    (void)!::write(control_[1], &x, 1);  // in case a child process still holds a write end
    ::pthread_join(thread_, nullptr);
    close_all();
  }

 private:
  friend void detail::gate_exit_hook();

  static gate_options prepare(gate_options o) {
    if (o.stream_names[0].empty()) o.stream_names[0] = "stdout";
    if (o.stream_names[1].empty()) o.stream_names[1] = "stderr";
    return o;
  }

  void start() {
    std::fflush(stdout);
    std::fflush(stderr);
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    auto fail = [&](const char* what) {
      error_ = std::string(what) + ": " + std::strerror(errno);
      for (int fd :
           {out[0], out[1], err[0], err[1], control_[0], control_[1], saved_[0], saved_[1]})
        if (fd >= 0) ::close(fd);
      control_[0] = control_[1] = saved_[0] = saved_[1] = -1;
    };
    if (::fcntl(1, F_GETFD) < 0 || ::fcntl(2, F_GETFD) < 0) {
      error_ = "stdout or stderr is closed";  // a pipe would take its number
      return;
    }
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
        ::pipe2(control_, O_CLOEXEC) != 0)
      return fail("pipe");
    saved_[0] = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
    saved_[1] = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (saved_[0] < 0 || saved_[1] < 0) return fail("duplicating stdout/stderr");
    read_[0] = out[0];
    read_[1] = err[0];
    for (int fd : read_) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    owner_pid_ = ::getpid();
    if (::pthread_create(&thread_, nullptr, &output_watch::reader_main, this) != 0) {
      read_[0] = read_[1] = -1;
      return fail("starting the reader thread");
    }
    ::dup2(out[1], 1);  // the copies on 1 and 2 are inherited by child processes
    ::dup2(err[1], 2);
    ::close(out[1]);
    ::close(err[1]);
    running_ = true;
    auto& g = detail::gate_globals();
    std::lock_guard<std::mutex> lock(g.mutex);
    previous_ = g.active;
    g.active = this;
    if (!g.exit_hook) {
      g.exit_hook = true;
      std::atexit(&detail::gate_exit_hook);
    }
  }

  void close_all() {
    for (int* fd : {&read_[0], &read_[1], &control_[0], &control_[1], &saved_[0], &saved_[1]}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }

  static void* reader_main(void* self) {
    static_cast<output_watch*>(self)->reader();
    return nullptr;
  }

  /// Reads what one pipe has (non-blocking) and scans it under the lock, so settle() knows
  /// that an empty pipe means everything was scanned; then passes it through. Returns
  /// read(2)'s result.
  ssize_t pass_some(int s, std::vector<char>& buf) {
    ssize_t r;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      r = ::read(read_[s], buf.data(), buf.size());
      if (r > 0) scanner_.feed(s, buf.data(), static_cast<std::size_t>(r));
    }
    if (r > 0) detail::gate_write_all(saved_[s], buf.data(), static_cast<std::size_t>(r));
    return r;
  }

  void reader() {
    std::vector<char> buf(1 << 16);
    bool open[2] = {true, true};
    bool stopping = false;
    while ((open[0] || open[1]) && !stopping) {
      pollfd pf[3] = {{open[0] ? read_[0] : -1, POLLIN, 0},
                      {open[1] ? read_[1] : -1, POLLIN, 0},
                      {control_[0], POLLIN, 0}};
      if (::poll(pf, 3, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int s = 0; s < 2; ++s) {
        if (!open[s] || pf[s].revents == 0) continue;
        const ssize_t r = pass_some(s, buf);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) open[s] = false;
      }
      if (pf[2].revents != 0) stopping = true;
    }
    // Stopping: what is in the pipes now goes through; a child process still holding a
    // write end does not keep us waiting.
    for (int s = 0; s < 2; ++s) {
      while (open[s]) {
        const ssize_t r = pass_some(s, buf);
        if (r <= 0 && !(r < 0 && errno == EINTR)) open[s] = false;
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    scanner_.finish();
  }

  mutable std::mutex mutex_;  // the scanner
  std::mutex stop_mutex_;
  gate_scanner scanner_;
  pthread_t thread_{};
  pid_t owner_pid_ = 0;
  int read_[2] = {-1, -1};
  int saved_[2] = {-1, -1};
  int control_[2] = {-1, -1};
  std::atomic<bool> running_{false};
  std::string error_;
  output_watch* previous_ = nullptr;
};

/// The verdict of the active output watch (the most recently started one still alive), once
/// it has scanned everything written so far (C stdio flushed first); nothing when no watch
/// is active.
inline std::optional<gate_verdict> current_gate_verdict() {
  auto& g = detail::gate_globals();
  std::lock_guard<std::mutex> lock(g.mutex);
  if (g.active == nullptr) return std::nullopt;
  g.active->settle();
  return g.active->verdict();
}

namespace detail {

inline void gate_exit_hook() {
  auto& g = gate_globals();
  std::lock_guard<std::mutex> lock(g.mutex);
  for (output_watch* w = g.active; w != nullptr; w = w->previous_) w->stop();
}

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
