// diffscope: the one UTF-8 sanitiser. Every text diffscope writes (JSON strings, console tables,
// the gate's one-line reports) goes through append_sanitised_utf8; the callers choose how ASCII
// bytes and bytes that are not valid UTF-8 are written.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace diffscope::detail {

/// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not
/// one (overlong forms, surrogates, code points above U+10FFFF and truncations included).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // UTF-16 surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

/// Appends `s` to `out`: valid multi-byte sequences pass through, each ASCII byte goes to
/// `ascii(out, c)` and every other byte that is not part of a valid sequence to
/// `invalid(out, c)`, which decide how they are written.
template <class Ascii, class Invalid>
void append_sanitised_utf8(std::string& out, std::string_view s, Ascii&& ascii, Invalid&& invalid) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ascii(out, c);
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      invalid(out, c);
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
}

/// Appends `s` to `out` as valid UTF-8: every byte that is not part of a valid sequence
/// becomes U+FFFD; ASCII bytes as `ascii(out, c)` writes them (the outputs: JSON, tables).
template <class Ascii>
void append_sanitised_utf8(std::string& out, std::string_view s, Ascii&& ascii) {
  append_sanitised_utf8(out, s, ascii, [](std::string& o, unsigned char) {
    o += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
  });
}

/// Printable text of a line for a one-line report: valid UTF-8 kept, anything else (control
/// bytes, invalid sequences, a multi-byte character cut by a cap) as \xNN.
inline std::string printable_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto escape = [](std::string& o, unsigned char c) {
    char esc[8];
    std::snprintf(esc, sizeof esc, "\\x%02x", c);
    o += esc;
  };
  append_sanitised_utf8(
      out, s,
      [&](std::string& o, unsigned char c) {
        if (c >= 0x20 && c < 0x7f)
          o.push_back(static_cast<char>(c));
        else
          escape(o, c);
      },
      escape);
  return out;
}

}  // namespace diffscope::detail
