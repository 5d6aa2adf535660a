// diffscope: aligned text tables for the console outputs (summary, hotspots). One place for
// terminal-safe names and column alignment.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <diffscope/util/json_writer.hpp>

namespace diffscope::detail {

/// Columns a UTF-8 string takes in a terminal, counting one per code point (good enough
/// for kernel and scope names; wide CJK glyphs would need a table).
inline std::size_t display_width(std::string_view s) noexcept {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

/// `s` cut to at most `max` columns, ending in "..." when cut, never inside a UTF-8 sequence.
inline std::string truncate_display(std::string_view s, std::size_t max) {
  if (display_width(s) <= max) return std::string(s);
  const std::size_t keep = max > 3 ? max - 3 : 0;
  std::size_t cols = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (cols == keep) break;
      ++cols;
    }
  }
  return std::string(s.substr(0, i)) + "...";
}

/// A name made safe for a terminal table: control characters become '?', bytes that are
/// not valid UTF-8 become U+FFFD (as in the JSON outputs).
inline std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_sanitised_utf8(out, s, [](std::string& o, unsigned char c) {
    o.push_back(c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c));
  });
  return out;
}

inline std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// A text table: the first `left_columns` columns left-aligned, the others right-aligned,
/// two spaces apart.
class text_table {
 public:
  explicit text_table(std::vector<std::string> headers, std::size_t left_columns = 1)
      : headers_(std::move(headers)), left_(left_columns) {}
  void add(std::vector<std::string> row) {
    row.resize(headers_.size());
    rows_.push_back(std::move(row));
  }
  bool empty() const noexcept { return rows_.empty(); }
  void render(std::string& out, std::string_view indent = "  ") const {
    std::vector<std::size_t> width(headers_.size(), 0);
    for (std::size_t c = 0; c < headers_.size(); ++c) {
      width[c] = display_width(headers_[c]);
      for (const auto& row : rows_) width[c] = std::max(width[c], display_width(row[c]));
    }
    const auto line = [&](const std::vector<std::string>& cells) {
      std::string l(indent);
      for (std::size_t c = 0; c < cells.size(); ++c) {
        const std::size_t pad = width[c] - display_width(cells[c]);
        if (c > 0) l += "  ";
        if (c < left_) {
          l += cells[c];
          if (c + 1 < cells.size()) l.append(pad, ' ');
        } else {
          l.append(pad, ' ');
          l += cells[c];
        }
      }
      out += l;
      out.push_back('\n');
    };
    line(headers_);
    for (const auto& row : rows_) line(row);
  }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
  std::size_t left_;
};

/// A name for a terminal table: printable(), then cut to `max` columns.
inline std::string display_name(std::string_view s, std::size_t max) {
  return truncate_display(printable(s), max);
}

}  // namespace diffscope::detail
