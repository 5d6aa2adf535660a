// diffscope: a streaming multi-pattern matcher over terminal output: the first occurrence of
// each of a few fixed strings (ASCII case-insensitive) in two byte streams, with its line,
// column and the line's start, in bounded memory and without allocating per line.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/util/pattern_search.hpp>
#include <diffscope/util/utf8.hpp>

namespace diffscope {

/// Where a pattern was first seen.
struct pattern_hit {
  std::size_t pattern = 0;   ///< index into the patterns
  int stream = 0;            ///< 0 or 1
  std::uint64_t line = 0;    ///< 1-based, counted by LF like `grep -n`
  std::uint64_t column = 0;  ///< 1-based byte offset in the line, colour codes removed
  std::string matched;       ///< the pattern as it appeared (its case kept)
  std::string text;          ///< the line's start: colour codes removed, capped, sanitised
};

/// Streaming scanner over two byte streams (stdout and stderr, say) for the patterns of
/// `Patterns`, a type with `static constexpr detail::pattern_tables<N> tables`. Feed it bytes
/// in any chunking; a pattern split across feeds, or by colour codes, still matches. Memory
/// stays bounded whatever the line length: per stream it keeps at most a few KiB of the
/// current line and the line's start for the report (line_cap bytes). Lines end at LF; a CR
/// ends a segment too (progress bars redraw with CR), so a match never spans one. Not
/// thread-safe.
template <class Patterns>
class pattern_scanner {
  static_assert(Patterns::tables.min_len >= detail::pattern_block &&
                    Patterns::tables.max_len <= detail::pattern_max_len,
                "patterns are 3 to 48 bytes long");

 public:
  explicit pattern_scanner(std::size_t line_cap = 512) : line_cap_(line_cap) {}

  /// Bytes of stream 0 or 1 (the two keep separate line state).
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

  /// The first occurrence of every pattern seen so far, in the order seen (a line still
  /// being received counts up to its last byte fed).
  const std::vector<pattern_hit>& hits() const noexcept { return hits_; }

  /// Bit i is set once pattern i was seen.
  unsigned seen() const noexcept { return seen_; }

  /// Bytes fed, both streams.
  std::uint64_t bytes() const noexcept { return streams_[0].bytes + streams_[1].bytes; }

  /// Lines fed, both streams (a last unterminated one counts).
  std::uint64_t lines() const noexcept {
    std::uint64_t n = 0;
    for (const stream_state& st : streams_)
      n += (st.line - 1) + ((st.bytes > 0 && st.last_byte != '\n') ? 1 : 0);
    return n;
  }

 private:
  enum : unsigned char { esc_none, esc_start, esc_csi, esc_nf };
  // A later match may start this many bytes before the end of what was searched.
  static constexpr std::size_t carry = Patterns::tables.max_len - 1;
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
    if (have >= line_cap_ || have < offset || have >= offset + n) return;
    const std::size_t from = static_cast<std::size_t>(have - offset);
    st.head.append(reinterpret_cast<const char*>(p + from), std::min(n - from, line_cap_ - have));
  }

  void record(stream_state& st, int stream, std::size_t pattern, std::uint64_t offset,
              const unsigned char* at) {
    if ((seen_ & (1u << pattern)) != 0) return;  // first occurrence of each pattern only
    seen_ |= 1u << pattern;
    pattern_hit h;
    h.pattern = pattern;
    h.stream = stream;
    h.line = st.line;
    h.column = offset + 1;
    h.matched.assign(reinterpret_cast<const char*>(at), Patterns::tables.length[pattern]);
    st.new_hits.push_back(hits_.size());
    hits_.push_back(std::move(h));
  }

  void search(stream_state& st, int stream, const unsigned char* t, std::size_t n,
              std::uint64_t offset) {
    if (seen_ == all_seen) return;  // nothing left to learn
    detail::pattern_search<Patterns>(
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
        st.head.assign(reinterpret_cast<const char*>(p), std::min(n, line_cap_));
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
    // Pending text is searched now, so hits() shows a pattern before its line ends.
    if (st.pending_n > 0) commit(st, stream);
  }
  static constexpr unsigned all_seen = (1u << Patterns::tables.count) - 1;

  std::size_t line_cap_;
  std::array<stream_state, 2> streams_{};
  std::vector<pattern_hit> hits_;
  unsigned seen_ = 0;
};

}  // namespace diffscope
