// diffscope: a small streaming JSON writer for the outputs (perf dump, Chrome trace). The
// output headers are compiled into user programs next to the collector, so they carry no
// JSON library; this writes exactly what Python's json.dump(..., indent=2) lays out.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <diffscope/util/utf8.hpp>

namespace diffscope::detail {

/// Appends `s` as a quoted JSON string. Quotes, backslashes and control characters are
/// escaped exactly as Python's json.dumps escapes them; valid UTF-8 passes through; every byte that
/// is not part of a valid UTF-8 sequence becomes U+FFFD, so the output is valid UTF-8 whatever a
/// name holds.
inline void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  append_sanitised_utf8(out, s, [](std::string& o, unsigned char c) {
    constexpr const char* hex = "0123456789abcdef";
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\b':
        o += "\\b";
        break;
      case '\f':
        o += "\\f";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (c < 0x20) {  // as Python's json.dumps: \u00XX, lowercase hex
          o += "\\u00";
          o.push_back(hex[c >> 4]);
          o.push_back(hex[c & 0xF]);
        } else {
          o.push_back(static_cast<char>(c));
        }
    }
  });
  out.push_back('"');
}

/// Appends a double the way Python's repr() does for the values we write: the shortest
/// text that reads back as the same double, with ".0" on integral values so readers see a
/// float. NaN and infinities are not JSON: they become null.
inline void append_json_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  if (v == 0) v = 0;  // -0.0 prints as 0.0
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  const std::string_view text(buf, static_cast<std::size_t>(res.ptr - buf));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

inline void append_json_number(std::string& out, std::int64_t v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

inline void append_json_number(std::string& out, std::uint64_t v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

/// Streaming writer. Containers are opened and closed explicitly; inside an object every
/// value is preceded by key(). Layout follows json.dump(indent=2): one member per line,
/// ": " after keys, empty containers as {} and [].
class json_writer {
 public:
  explicit json_writer(int indent = 2) : indent_(indent) {}

  json_writer& begin_object() { return open('{'); }
  json_writer& end_object() { return close('}'); }
  json_writer& begin_array() { return open('['); }
  json_writer& end_array() { return close(']'); }

  json_writer& key(std::string_view k) {
    separate();
    append_json_string(out_, k);
    out_ += indent_ > 0 ? ": " : ":";
    after_key_ = true;
    return *this;
  }

  json_writer& value(std::string_view s) {
    separate();
    append_json_string(out_, s);
    return *this;
  }
  json_writer& value(const char* s) { return value(std::string_view(s)); }
  json_writer& value(const std::string& s) { return value(std::string_view(s)); }
  json_writer& value(double v) {
    separate();
    append_json_number(out_, v);
    return *this;
  }
  json_writer& value(bool v) {
    separate();
    out_ += v ? "true" : "false";
    return *this;
  }
  json_writer& value(std::int64_t v) {
    separate();
    append_json_number(out_, v);
    return *this;
  }
  json_writer& value(std::uint64_t v) {
    separate();
    append_json_number(out_, v);
    return *this;
  }
  json_writer& value(int v) { return value(static_cast<std::int64_t>(v)); }
  json_writer& value(unsigned v) { return value(static_cast<std::uint64_t>(v)); }
  json_writer& null() {
    separate();
    out_ += "null";
    return *this;
  }

  /// key(k).value(v) in one call.
  template <class T>
  json_writer& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  /// The document so far; complete once every container is closed.
  const std::string& str() const noexcept { return out_; }
  std::string take() { return std::move(out_); }
  bool complete() const noexcept { return levels_.empty() && !out_.empty(); }

 private:
  struct level {
    char close;
    bool empty;
  };

  // Writes what goes before a value or key: a comma, a newline and indentation.
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (levels_.empty()) return;
    if (!levels_.back().empty) out_.push_back(',');
    levels_.back().empty = false;
    newline(levels_.size());
  }

  void newline(std::size_t depth) {
    if (indent_ <= 0) return;
    out_.push_back('\n');
    out_.append(depth * static_cast<std::size_t>(indent_), ' ');
  }

  json_writer& open(char c) {
    separate();
    out_.push_back(c);
    levels_.push_back({c == '{' ? '}' : ']', true});
    return *this;
  }

  json_writer& close(char c) {
    if (levels_.empty() || levels_.back().close != c) return *this;  // misuse: ignore
    const bool was_empty = levels_.back().empty;
    levels_.pop_back();
    if (!was_empty) newline(levels_.size());
    out_.push_back(c);
    return *this;
  }

  std::string out_;
  std::vector<level> levels_;
  int indent_;
  bool after_key_ = false;
};

}  // namespace diffscope::detail
