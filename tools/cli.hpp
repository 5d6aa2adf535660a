// diffscope command line: what every subcommand shares. Errors are reported as one line on
// stderr naming the file or argument, with exit code 2 (usage or bad input); a subcommand
// never crashes on bad input and never leaves partial output behind.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
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

/// The input rules every reader follows (docs/outputs.md, "Reading inputs"). A path is opened
/// once: "-" is stdin, FIFOs and /dev/stdin work, a directory is refused. A dump is read whole,
/// up to max_dump_bytes (uncompressed) and max_dump_values JSON values (what its parsed form
/// costs in memory grows with the values, not the bytes); traces are streamed. JSON nested
/// deeper than max_json_depth containers is refused before anything recursive touches it.
/// One UTF-8 byte-order mark at the start of the (uncompressed) content is skipped.
#ifndef DIFFSCOPE_MAX_DUMP_BYTES
#define DIFFSCOPE_MAX_DUMP_BYTES (64ull << 20)
#endif
inline constexpr std::uint64_t max_dump_bytes = DIFFSCOPE_MAX_DUMP_BYTES;
inline constexpr std::uint64_t max_dump_values = 4u << 20;
inline constexpr std::size_t max_json_depth = 256;
inline constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

/// How messages name an input: "stdin" for "-", else the path as given.
inline std::string input_name(const std::string& path) {
  return path == "-" ? "stdin" : path;
}

/// "64 MiB", "256 KiB" or "1000 bytes".
inline std::string size_text(std::uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

/// The message of an input above its size limit; `what` says what kind of input it is.
inline std::string too_large(const std::string& name, std::uint64_t limit, const char* what) {
  return name + ": larger than " + size_text(limit) + ", the limit for " + what;
}

/// An open input: fd 0 for "-" (not closed), else the path opened read-only.
class input_file {
 public:
  explicit input_file(const std::string& path) : name_(input_name(path)) {
    if (path.empty()) throw failure(exit_usage, "empty file name");
    if (path != "-") {
      do fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      while (fd_ < 0 && errno == EINTR);
      if (fd_ < 0)
        throw failure(exit_usage, name_ + ": cannot open (" + std::strerror(errno) + ")");
      owned_ = true;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int e = errno;
      close();
      throw failure(exit_usage, name_ + ": cannot open (" + std::strerror(e) + ")");
    }
    if (S_ISDIR(st.st_mode)) {
      close();
      throw failure(exit_usage, name_ + ": is a directory");
    }
    if (S_ISREG(st.st_mode)) size_ = static_cast<std::int64_t>(st.st_size);
  }
  input_file(const input_file&) = delete;
  input_file& operator=(const input_file&) = delete;
  ~input_file() { close(); }

  const std::string& name() const noexcept { return name_; }
  /// The size of a regular file, -1 for a pipe, FIFO or device (read until the end).
  std::int64_t size() const noexcept { return size_; }

  /// Up to `n` bytes into `dst`; 0 at the end. Throws failure(exit_usage) on a read error.
  std::size_t read(char* dst, std::size_t n) {
    for (;;) {
      const ssize_t r = ::read(fd_, dst, n);
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR)
        throw failure(exit_usage, name_ + ": read error (" + std::strerror(errno) + ")");
    }
  }

 private:
  void close() noexcept {
    if (owned_ && fd_ >= 0) ::close(fd_);
    owned_ = false;
    fd_ = -1;
  }

  std::string name_;
  int fd_ = 0;
  bool owned_ = false;
  std::int64_t size_ = -1;
};

/// The bytes of a file as they are (no gzip, no BOM handling), at most `max_bytes` of them
/// (`what` names the kind of input in the message). Throws failure(exit_usage) naming it.
inline std::string read_file(const std::string& path, std::uint64_t max_bytes = ~std::uint64_t{0},
                             const char* what = "this input") {
  input_file in(path);
  if (in.size() >= 0 && static_cast<std::uint64_t>(in.size()) > max_bytes)
    throw failure(exit_usage, too_large(in.name(), max_bytes, what));
  std::string out;
  if (in.size() > 0) out.reserve(static_cast<std::size_t>(in.size()));
  char buf[1 << 16];
  for (;;) {
    const std::size_t n = in.read(buf, sizeof buf);
    if (n == 0) return out;
    if (out.size() + n > max_bytes)
      throw failure(exit_usage, too_large(in.name(), max_bytes, what));
    out.append(buf, n);
  }
}

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
