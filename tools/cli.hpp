// diffscope command line: what every subcommand shares. Errors are reported as one line on
// stderr naming the file or argument, with exit code 2 (usage or bad input); a subcommand
// never crashes on bad input and never leaves partial output behind.
#pragma once

#include <cmath>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace diffscope::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_usage = 2;  ///< usage error or bad input

/// A failure that ends the command with exit code `code` and `message` on stderr.
struct failure : std::runtime_error {
  int code;
  failure(int c, const std::string& message) : std::runtime_error(message), code(c) {}
};

/// Arguments after the subcommand name.
using args = std::vector<std::string>;

/// Reads a whole file; throws failure(exit_usage) naming it when it cannot be read.
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw failure(exit_usage, path + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw failure(exit_usage, path + ": read error");
  return ss.str();
}

/// Parses a JSON file; throws failure(exit_usage) naming it when it is empty, truncated or
/// not JSON.
inline nlohmann::json read_json(const std::string& path) {
  const std::string text = read_file(path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw failure(exit_usage, path + ": empty file");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw failure(exit_usage, path + ": not valid JSON (" + e.what() + ")");
  }
}

/// A whole-string finite number >= `lo` (`lo_text` says it in the message); throws
/// failure(exit_usage) naming the option otherwise.
inline double parse_number(const std::string& opt, const std::string& text, double lo,
                           const std::string& lo_text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(v) || v < lo)
    throw failure(exit_usage, opt + ": '" + text + "' is not a number >= " + lo_text);
  return v;
}

/// A count option: a number of at least `lo` (parse_number's message otherwise) that is whole
/// and at most `hi`.
inline int whole_number(const std::string& opt, const std::string& text, int lo, int hi) {
  const double n = parse_number(opt, text, lo, std::to_string(lo));
  if (n != std::floor(n) || n > hi)
    throw failure(exit_usage, opt + ": '" + text + "' is not a whole number from " +
                                  std::to_string(lo) + " to " + std::to_string(hi));
  return static_cast<int>(n);
}

/// The single-valued options of a command: using one twice (under any of its spellings) in
/// one command line is a usage error naming it. Repeatable options and flags are not listed.
class once_options {
 public:
  /// One entry per option: its spellings, e.g. {{"-o", "--output"}, {"--top"}}.
  once_options(std::initializer_list<std::initializer_list<const char*>> options) {
    for (const auto& spellings : options) options_.emplace_back(spellings.begin(), spellings.end());
    seen_.assign(options_.size(), false);
  }

  /// Call with each argument that is an option; throws failure(exit_usage) at a repeat.
  void check(const std::string& arg) {
    for (std::size_t i = 0; i < options_.size(); ++i) {
      for (const std::string& spelling : options_[i]) {
        if (arg != spelling) continue;
        if (seen_[i]) {
          std::string all;
          for (const std::string& x : options_[i]) all += (all.empty() ? "" : "/") + x;
          throw failure(exit_usage, arg + ": given more than once (" + all + " takes one value)");
        }
        seen_[i] = true;
        return;
      }
    }
  }

 private:
  std::vector<std::vector<std::string>> options_;
  std::vector<bool> seen_;
};

}  // namespace diffscope::cli
