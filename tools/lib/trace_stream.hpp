// Streaming reader for Chrome-trace JSON (torch.profiler / Kineto, ours), plain or gzip: walks
// "traceEvents" without loading the file, keeping per event only name, cat, ph, ts and dur while
// checking the JSON is well formed; memory is bounded whatever the file size.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../cli.hpp"
#include "input.hpp"

namespace diffscope::cli {

/// The fields of one trace event the readers use. Strings are only valid during the callback.
struct trace_event {
  std::string name, cat, ph;
  double ts = 0, dur = 0;
  bool has_name = false, has_cat = false, has_ts = false, has_dur = false;
  bool name_is_string = true, dur_is_number = true, ts_is_number = true;
  std::uint64_t index = 0;  ///< position in traceEvents
};

/// What a scan saw at the top level.
struct trace_scan_info {
  bool gzip = false;
  bool has_trace_events = false;    ///< a "traceEvents" array (or a top-level array)
  bool has_diffscope = false;       ///< a top-level "diffscope" key (a perf dump)
  bool has_total_duration = false;  ///< a top-level "total_duration_ms" key (a perf dump)
  std::uint64_t events = 0;
  std::uint64_t bytes = 0;  ///< uncompressed bytes read
};

inline constexpr std::size_t max_field_bytes = 1u << 16;  ///< longer names are cut

/// The incremental tokenizer over a byte_source. Every error throws failure(exit_usage)
/// naming the file and the byte offset.
class json_stream {
 public:
  explicit json_stream(byte_source& src) : src_(src) {}

  [[noreturn]] void fail(const std::string& what) {
    throw failure(exit_usage,
                  src_.path() + ": " + what + " (at byte " + std::to_string(src_.offset()) + ")");
  }

  int peek_non_ws() {
    for (;;) {
      const std::string_view w = src_.window();
      if (w.empty()) return -1;
      std::size_t i = 0;
      while (i < w.size() && (w[i] == ' ' || w[i] == '\n' || w[i] == '\r' || w[i] == '\t')) ++i;
      src_.advance(i);
      if (i < w.size()) return static_cast<unsigned char>(w[i]);
    }
  }

  void expect(char c, const char* what) {
    const int got = peek_non_ws();
    if (got != static_cast<unsigned char>(c)) {
      if (got < 0) fail(std::string("truncated JSON: expected ") + what);
      fail(std::string("not valid JSON: expected ") + what);
    }
    src_.advance(1);
  }

  /// After a member or element: true when another follows (a ',' was read), false at
  /// the closing bracket (consumed).
  bool next_in(char close) {
    const int c = peek_non_ws();
    if (c == ',') {
      src_.advance(1);
      return true;
    }
    if (c == static_cast<unsigned char>(close)) {
      src_.advance(1);
      return false;
    }
    if (c < 0) fail("truncated JSON");
    fail(std::string("not valid JSON: expected ',' or '") + close + "'");
  }

  /// Reads a string (the opening quote is next), unescaped into `out` (cut at `cap`
  /// bytes) when out is non-null.
  void string(std::string* out, std::size_t cap = max_field_bytes) {
    expect('"', "a string");
    if (out) out->clear();
    for (;;) {
      const std::string_view w = src_.window();
      if (w.empty()) fail("truncated JSON in a string");
      std::size_t i = plain_run(w);
      while (i < w.size() && w[i] != '"' && w[i] != '\\' &&
             static_cast<unsigned char>(w[i]) >= 0x20)
        ++i;
      if (out && out->size() < cap) out->append(w.data(), std::min(i, cap - out->size()));
      src_.advance(i);
      if (i == w.size()) continue;
      const char c = w[i];
      src_.advance(1);
      if (c == '"') return;
      if (c != '\\') fail("not valid JSON: control character in a string");
      escape(out, cap);
    }
  }

  /// Reads a number into `out`.
  double number() {
    char buf[64];
    const std::size_t n = number_text(buf, sizeof buf);
    double v = 0;
    const auto res = std::from_chars(buf, buf + n, v);
    if (res.ec != std::errc() || res.ptr != buf + n) {
      if (src_.peek() < 0) fail("truncated JSON");
      fail("not valid JSON: bad number");
    }
    return v;
  }

  /// Skips a number (skipped values are not converted, only scanned).
  void skip_number() { number_text(nullptr, 4096); }

  /// Skips one value of any type, checking its syntax; `depth` containers are open around it
  /// (the limit max_json_depth counts from the top of the document).
  void skip_value(std::size_t depth) {
    std::vector<char>& stack = stack_;  // open containers: '{' or '['
    const std::size_t base = stack.size();
    for (;;) {
      int c = peek_non_ws();
      if (c < 0) fail("truncated JSON");
      if (c == '{' || c == '[') {
        if (depth + (stack.size() - base) + 1 > max_json_depth)
          fail("JSON nested too deeply: more than " + std::to_string(max_json_depth) + " levels");
        src_.advance(1);
        stack.push_back(static_cast<char>(c));
        const int d = peek_non_ws();
        if (d == (c == '{' ? '}' : ']')) {
          src_.advance(1);
          stack.pop_back();
        } else {
          if (c == '{') {
            string(nullptr);
            expect(':', "':'");
          }
          continue;
        }
      } else if (c == '"') {
        string(nullptr);
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        skip_number();
      } else if (c == 't') {
        literal("true");
      } else if (c == 'f') {
        literal("false");
      } else if (c == 'n') {
        literal("null");
      } else {
        fail("not valid JSON: unexpected " + byte_text(c));
      }
      // A value is complete: close containers that end here.
      for (;;) {
        if (stack.size() == base) return;
        const char open = stack.back();
        if (next_in(open == '{' ? '}' : ']')) {
          if (open == '{') {
            string(nullptr);
            expect(':', "':'");
          }
          break;
        }
        stack.pop_back();
      }
    }
  }

  void literal(const char* word) {
    for (const char* p = word; *p != '\0'; ++p) {
      const int c = src_.get();
      if (c < 0) fail("truncated JSON");
      if (c != *p) fail("not valid JSON: bad literal");
    }
  }

  std::uint64_t offset() const noexcept { return src_.offset(); }

 private:
  // A byte for a message: the character when printable, else its hex value.
  static std::string byte_text(int c) {
    if (c >= 0x20 && c < 0x7f) return "character '" + std::string(1, static_cast<char>(c)) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", static_cast<unsigned>(c));
    return buf;
  }

  void escape(std::string* out, std::size_t cap) {
    const int c = src_.get();
    if (c < 0) fail("truncated JSON in a string");
    std::uint32_t cp = 0;
    switch (c) {
      case '"':
        cp = '"';
        break;
      case '\\':
        cp = '\\';
        break;
      case '/':
        cp = '/';
        break;
      case 'b':
        cp = '\b';
        break;
      case 'f':
        cp = '\f';
        break;
      case 'n':
        cp = '\n';
        break;
      case 'r':
        cp = '\r';
        break;
      case 't':
        cp = '\t';
        break;
      case 'u': {
        cp = hex4();
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair, when the low half follows
          if (src_.peek() == '\\') {
            src_.advance(1);
            if (src_.get() != 'u') fail("not valid JSON: bad escape");
            const std::uint32_t lo = hex4();
            cp = (lo >= 0xDC00 && lo <= 0xDFFF) ? 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                                                : 0xFFFD;
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        break;
      }
      default:
        fail("not valid JSON: bad escape");
    }
    if (out == nullptr || out->size() >= cap) return;
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  std::uint32_t hex4() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = src_.get();
      if (c < 0) fail("truncated JSON in a string");
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        fail("not valid JSON: bad \\u escape");
      }
    }
    return v;
  }

  // The characters of a number, copied to buf (when non-null, up to cap); returns their count.
  std::size_t number_text(char* buf, std::size_t cap) {
    std::size_t n = 0;
    for (bool more = true; more;) {
      const std::string_view w = src_.window();
      if (w.empty()) break;
      std::size_t i = 0;
      for (; i < w.size(); ++i) {
        const char c = w[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) {
          more = false;
          break;
        }
        if (n == cap) fail("not valid JSON: number too long");
        if (buf != nullptr) buf[n] = c;
        ++n;
      }
      src_.advance(i);
    }
    if (n == 0) {
      if (src_.peek() < 0) fail("truncated JSON");
      fail("not valid JSON: bad number");
    }
    return n;
  }

  // Length of the leading part of `w` that has no '"', '\\' or control byte, 8 bytes at a
  // time (a word with a candidate byte ends the run; the caller checks bytewise from there).
  static std::size_t plain_run(std::string_view w) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    std::size_t i = 0;
    for (; i + 8 <= w.size(); i += 8) {
      std::uint64_t x;
      std::memcpy(&x, w.data() + i, 8);
      const std::uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
      const std::uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | (x - ones * 0x20);
      if ((hit & ~x & highs) != 0) break;
    }
    return i;
  }

  byte_source& src_;
  std::vector<char> stack_;
};

namespace detail {

/// The elements of a trace event array, whose '[' makes `depth` open containers.
template <class OnEvent>
void read_trace_events(json_stream& js, trace_scan_info& info, OnEvent& on_event,
                       std::size_t depth) {
  const std::size_t inside = depth + 1;  // open around an event's members
  trace_event ev;
  std::string key;
  // The '[' was consumed by the caller; an empty array ends at once.
  if (js.peek_non_ws() == ']') {
    js.expect(']', "']'");
    return;
  }
  do {
    if (js.peek_non_ws() != '{') {
      if (js.peek_non_ws() < 0) js.fail("truncated JSON in traceEvents");
      js.fail("traceEvents[" + std::to_string(info.events) + "] is not an object");
    }
    js.expect('{', "'{'");
    ev.name.clear();
    ev.cat.clear();
    ev.ph.clear();
    ev.has_name = ev.has_cat = ev.has_ts = ev.has_dur = false;
    ev.name_is_string = ev.dur_is_number = ev.ts_is_number = true;
    ev.ts = ev.dur = 0;
    ev.index = info.events;
    if (js.peek_non_ws() == '}') {
      js.expect('}', "'}'");
    } else {
      do {
        js.string(&key, 64);
        js.expect(':', "':'");
        const int c = js.peek_non_ws();
        const bool is_string = c == '"';
        const bool is_number = c == '-' || (c >= '0' && c <= '9');
        if (key == "name") {
          ev.has_name = true;
          ev.name_is_string = is_string;
          is_string ? js.string(&ev.name) : js.skip_value(inside);
        } else if (key == "cat" && is_string) {
          ev.has_cat = true;
          js.string(&ev.cat, 256);
        } else if (key == "ph" && is_string) {
          js.string(&ev.ph, 16);
        } else if (key == "dur") {
          ev.has_dur = true;
          ev.dur_is_number = is_number;
          if (is_number) {
            ev.dur = js.number();
          } else {
            js.skip_value(inside);
          }
        } else if (key == "ts") {
          ev.has_ts = true;
          ev.ts_is_number = is_number;
          if (is_number) {
            ev.ts = js.number();
          } else {
            js.skip_value(inside);
          }
        } else {
          js.skip_value(inside);
        }
      } while (js.next_in('}'));
    }
    ++info.events;
    on_event(ev);
  } while (js.next_in(']'));
}

}  // namespace detail

/// Streams `src` and calls on_event(const trace_event&) for every element of its
/// "traceEvents" array (or of a top-level array). Other top-level keys are skipped (and
/// checked). Throws failure(exit_usage, "<name>: <reason>") on malformed JSON or gzip, an
/// element that is not an object, or "traceEvents" that is not an array. A file that is
/// valid JSON without trace events is no error: info says what it has. A capture that `src`
/// holds (hotspots keeps the text in case it is a dump) ends at the trace events.
template <class OnEvent>
trace_scan_info scan_trace(byte_source& src, OnEvent&& on_event) {
  const std::string& path = src.path();
  json_stream js(src);
  trace_scan_info info;
  info.gzip = src.gzip();
  if (src.peek() == 0xEF) {  // the one byte-order mark the input rules skip
    for (const char c : utf8_bom)
      if (src.get() != static_cast<unsigned char>(c))
        throw failure(exit_usage, path + ": not JSON (a broken byte-order mark)");
  }
  const int first = js.peek_non_ws();
  if (first < 0) throw failure(exit_usage, path + ": empty file");
  if (first == '[') {
    js.expect('[', "'['");
    info.has_trace_events = true;
    src.stop_capture();
    detail::read_trace_events(js, info, on_event, 1);
  } else if (first == '{') {
    js.expect('{', "'{'");
    if (js.peek_non_ws() == '}') {
      js.expect('}', "'}'");
    } else {
      std::string key;
      do {
        js.string(&key, 256);
        js.expect(':', "':'");
        if (key == "traceEvents") {
          if (js.peek_non_ws() != '[') {
            if (js.peek_non_ws() < 0) js.fail("truncated JSON");
            js.fail("traceEvents is not an array");
          }
          js.expect('[', "'['");
          info.has_trace_events = true;
          src.stop_capture();
          detail::read_trace_events(js, info, on_event, 2);
        } else {
          info.has_diffscope |= key == "diffscope";
          info.has_total_duration |= key == "total_duration_ms";
          js.skip_value(1);
        }
      } while (js.next_in('}'));
    }
  } else {
    throw failure(exit_usage, path + ": not JSON (" + (info.gzip ? "gzip content" : "file") +
                                  " does not start with '{' or '[')");
  }
  if (js.peek_non_ws() >= 0) js.fail("not valid JSON: data after the top-level value");
  info.bytes = js.offset();
  return info;
}

/// scan_trace over the file at `path` (input rules: input.hpp).
template <class OnEvent>
trace_scan_info scan_trace(const std::string& path, OnEvent&& on_event) {
  byte_source src(path, no_size_limit, "a trace");
  return scan_trace(src, std::forward<OnEvent>(on_event));
}

}  // namespace diffscope::cli
