// What every diffscope subcommand shares: failures with their exit codes (one line on stderr
// naming the file or argument; 2 for usage or bad input), the option parser each command
// declares its options to, and number arguments.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace diffscope::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_usage = 2;  ///< usage error or bad input

/// A failure that ends the command with exit code `code` and `message` on stderr. A command
/// never crashes on bad input and never leaves partial output behind.
struct failure : std::runtime_error {
  int code;
  failure(int c, const std::string& message) : std::runtime_error(message), code(c) {}
};

/// Arguments after the subcommand name.
using args = std::vector<std::string>;

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

/// One option in a command's table.
struct option {
  std::vector<std::string> names;  ///< its spellings, e.g. {"-o", "--output"}
  /// What its value is, for the message when the value is missing ("--log needs a file");
  /// nullptr for a flag, which takes none.
  const char* value = nullptr;
  /// May be given more than once (a flag, a list). A single-valued option given twice, under
  /// any of its spellings, is a usage error naming it.
  bool repeatable = false;
  const char* help = "";  ///< one line: what it does
  /// Called at each use, in command-line order, with the spelling used and the value ("" for
  /// a flag); throws failure to refuse the value.
  std::function<void(const std::string& name, const std::string& value)> use;
  bool stops = false;  ///< nothing after it is looked at (--help)
};

/// A flag: no value, repeatable.
inline option flag(std::vector<std::string> names, const char* help, std::function<void()> use) {
  auto call = [use = std::move(use)](const std::string&, const std::string&) { use(); };
  return {std::move(names), nullptr, true, help, std::move(call), false};
}

/// `o`, after which nothing is looked at (--print-rules prints and exits).
inline option ending(option o) {
  o.stops = true;
  return o;
}

/// -h/--help, setting `help`; it ends the parse unless `ends` is false (gate still checks what
/// follows it).
inline option help_flag(bool& help, bool ends = true) {
  option o = flag({"-h", "--help"}, "print the usage", [&help] { help = true; });
  o.stops = ends;
  return o;
}

/// A single-valued option; `value` says what the value is ("a file").
inline option single(std::vector<std::string> names, const char* value, const char* help,
                     std::function<void(const std::string& name, const std::string& value)> use) {
  return {std::move(names), value, false, help, std::move(use), false};
}

/// What "--" means on a command's line.
enum class separator {
  none,          ///< nothing: it is an unknown option or argument
  command,       ///< the options end; the arguments after it are a command to run (gate)
  command_only,  ///< the same, and it is never an option's value: `--dump -- CMD` lacks the
                 ///< file (run)
};

/// What a command accepts: its options and what it makes of the other arguments.
struct command_line {
  command_line(std::string name, std::vector<option> table,
               std::function<void(const std::string&)> operands = {},
               separator dash_dash = separator::none)
      : command(std::move(name)),
        options(std::move(table)),
        operand(std::move(operands)),
        dashes(dash_dash) {}

  std::string command;  ///< names the command in messages: "(diffscope <command> --help)"
  std::vector<option> options;
  /// Called with each argument that is not an option, in order (input files). Unset: the
  /// command takes none, and every such argument is an unknown argument; set: only one that
  /// starts with '-' (and is not "-", stdin) is an unknown option.
  std::function<void(const std::string&)> operand;
  separator dashes;
};

/// What parse_options saw besides what the options' `use` calls took.
struct parsed_args {
  bool stopped = false;              ///< an option that `stops` ended the parse
  bool saw_dashes = false;           ///< "--" came (separator::command, command_only)
  std::vector<std::string> command;  ///< the arguments after "--"
};

/// Reads `a` left to right against `cl`: each option's use is called as it comes, so the first
/// bad argument is the one reported. Throws failure(exit_usage) naming the argument for an
/// unknown option or argument, a missing value, or a single-valued option given twice.
inline parsed_args parse_options(const command_line& cl, const args& a) {
  parsed_args r;
  std::vector<bool> seen(cl.options.size(), false);
  const std::string see_help = " (diffscope " + cl.command + " --help)";
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string& s = a[i];
    if (cl.dashes != separator::none && s == "--") {
      r.saw_dashes = true;
      r.command.assign(a.begin() + static_cast<std::ptrdiff_t>(i) + 1, a.end());
      return r;
    }
    const auto known = std::find_if(cl.options.begin(), cl.options.end(), [&](const option& o) {
      return std::find(o.names.begin(), o.names.end(), s) != o.names.end();
    });
    if (known == cl.options.end()) {
      if (!cl.operand) throw failure(exit_usage, "unknown argument '" + s + "'" + see_help);
      if (s.size() > 1 && s[0] == '-')
        throw failure(exit_usage, "unknown option '" + s + "'" + see_help);
      cl.operand(s);
      continue;
    }
    const option& o = *known;
    const auto k = static_cast<std::size_t>(known - cl.options.begin());
    if (!o.repeatable && seen[k]) {
      std::string all;
      for (const std::string& x : o.names) all += (all.empty() ? "" : "/") + x;
      throw failure(exit_usage, s + ": given more than once (" + all + " takes one value)");
    }
    seen[k] = true;
    std::string value;
    if (o.value != nullptr) {
      if (i + 1 >= a.size() || (cl.dashes == separator::command_only && a[i + 1] == "--"))
        throw failure(exit_usage, s + " needs " + o.value);
      value = a[++i];
    }
    if (o.use) o.use(s, value);
    if (o.stops) {
      r.stopped = true;
      return r;
    }
  }
  return r;
}

}  // namespace diffscope::cli
