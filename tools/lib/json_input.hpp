// The JSON side of the input rules (docs/outputs.md, "Reading inputs"): nesting depth and value
// count checked before anything recursive touches the text, one byte-order mark skipped, and
// parse errors as one printable line naming the input.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "../cli.hpp"
#include "input.hpp"

namespace diffscope::cli {

/// Finds where JSON nests deeper than max_json_depth containers or holds more than
/// max_dump_values values, fed in pieces. Strings are skipped (brackets and commas inside them
/// do not count); a value is counted at each container opening and each comma, which counts
/// every value but the first scalar of each container: close enough for a limit. Only that is
/// checked: the parser that follows checks the syntax.
class json_shape_check {
 public:
  enum class problem { none, too_deep, too_many_values };

  /// Feeds the next piece; returns false (offset() and what() then say where and what) once
  /// a limit is passed.
  bool feed(std::string_view text) noexcept {
    for (std::size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (in_string_) {
        if (escaped_)
          escaped_ = false;
        else if (c == '\\')
          escaped_ = true;
        else if (c == '"')
          in_string_ = false;
      } else if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[' || c == ',') {
        if (c != ',' && ++depth_ > max_json_depth) return stop(problem::too_deep, i);
        if (++values_ > max_dump_values) return stop(problem::too_many_values, i);
      } else if ((c == '}' || c == ']') && depth_ > 0) {
        --depth_;
      }
    }
    offset_ += text.size();
    return true;
  }
  std::uint64_t offset() const noexcept { return offset_; }
  problem what() const noexcept { return problem_; }

 private:
  bool stop(problem p, std::size_t i) noexcept {
    problem_ = p;
    offset_ += i;
    return false;
  }

  std::size_t depth_ = 0;
  std::uint64_t values_ = 0, offset_ = 0;
  bool in_string_ = false, escaped_ = false;
  problem problem_ = problem::none;
};

/// The message for a check that stopped in `name`.
inline std::string shape_error(const std::string& name, const json_shape_check& check) {
  const std::string at = " (at byte " + std::to_string(check.offset()) + ")";
  if (check.what() == json_shape_check::problem::too_many_values)
    return name + ": more than " + std::to_string(max_dump_values) +
           " JSON values, the limit for a perf dump" + at;
  return name + ": JSON nested too deeply: more than " + std::to_string(max_json_depth) +
         " levels" + at;
}

/// All uncompressed bytes of `src`, checking the JSON depth and value count as they arrive,
/// so a file of brackets stops at the first level too deep, not at the size limit.
inline std::string read_json_text(byte_source& src) {
  std::string out;
  json_shape_check depth;
  for (;;) {
    const std::string_view w = src.window();
    if (w.empty()) return out;
    if (!depth.feed(w)) throw failure(exit_usage, shape_error(src.path(), depth));
    out.append(w);
    src.advance(w.size());
  }
}

/// The whole JSON text of a perf dump at `path` (plain or gzip, at most max_dump_bytes).
inline std::string read_dump_text(const std::string& path) {
  byte_source src(path, max_dump_bytes, "a perf dump");
  return read_json_text(src);
}

/// The JSON text with the one byte-order mark the input rules allow removed; failure(exit_usage)
/// naming `name` when it is empty (or only whitespace), nests too deeply or has too many
/// values.
inline std::string_view checked_json_text(std::string_view text, const std::string& name) {
  if (text.substr(0, utf8_bom.size()) == utf8_bom) text.remove_prefix(utf8_bom.size());
  // A second mark would be skipped by nlohmann's parser: it is not JSON.
  if (text.substr(0, utf8_bom.size()) == utf8_bom)
    throw failure(exit_usage, name + ": not valid JSON (a second byte-order mark)");
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw failure(exit_usage, name + ": empty file");
  json_shape_check depth;
  if (!depth.feed(text)) throw failure(exit_usage, shape_error(name, depth));
  return text;
}

/// nlohmann's message, one printable line (what() quotes the bytes it read).
inline std::string json_error_text(const std::exception& e) {
  std::string why = e.what();
  for (char& c : why)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return why;
}

/// Parses a JSON file under the input rules, at most max_dump_bytes; failure(exit_usage)
/// naming it when it cannot be read, is empty, too deep, truncated or not JSON.
inline nlohmann::json read_json(const std::string& path) {
  const std::string text = read_dump_text(path);
  const std::string_view json = checked_json_text(text, input_name(path));
  try {
    return nlohmann::json::parse(json.begin(), json.end());
  } catch (const nlohmann::json::exception& e) {
    throw failure(exit_usage, input_name(path) + ": not valid JSON (" + json_error_text(e) + ")");
  }
}

}  // namespace diffscope::cli
