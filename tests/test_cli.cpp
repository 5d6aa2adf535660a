// The diffscope command's option parser (tools/cli.hpp): options are looked at left to right,
// so the first bad argument is the one named; a single-valued option given twice, a missing
// value and an unknown option or argument are usage errors; flags and lists repeat; "--" ends
// the options where a command follows. Every command's own messages are checked end to end by
// tests/tools/test_cli_options.sh and the other CLI tests.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "../tools/cli.hpp"

using namespace diffscope::cli;

namespace {

/// What a parse took, and the message of the failure that ended it ("" when none).
struct outcome {
  std::vector<std::string> seen;  ///< "name=value" per option use, "file:x" per operand
  parsed_args parsed;
  std::string error;
};

outcome parse(const args& a, bool operands = true, separator dashes = separator::none) {
  outcome o;
  const auto note = [&o](const std::string& n, const std::string& v) {
    o.seen.push_back(n + "=" + v);
  };
  bool help = false;
  const command_line cl{
      "demo",
      {
          help_flag(help),
          ending(flag({"--list"}, "print a list", [&o] { o.seen.push_back("list"); })),
          flag({"--fast"}, "a flag", [&o] { o.seen.push_back("fast"); }),
          single({"-o", "--output"}, "a file name", "the output", note),
          single({"--top"}, "a value", "a count",
                 [&o](const std::string& n, const std::string& v) {
                   if (v != "3") throw failure(exit_usage, n + ": not 3");
                   o.seen.push_back(n + "=" + v);
                 }),
      },
      operands ? [&o](const std::string& s) { o.seen.push_back("file:" + s); }
               : std::function<void(const std::string&)>(),
      dashes};
  try {
    o.parsed = parse_options(cl, a);
  } catch (const failure& f) {
    CHECK(f.code == exit_usage);
    o.error = f.what();
  }
  if (help) o.seen.push_back("help");
  return o;
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("options and operands are taken in order") {
    const outcome o = parse({"a", "--fast", "-o", "x", "-", "--fast", "--top", "3", "b"});
    CHECK(o.error.empty());
    CHECK(o.seen == std::vector<std::string>{"file:a", "fast", "-o=x", "file:-", "fast", "--top=3",
                                             "file:b"});
    CHECK_FALSE(o.parsed.stopped);
  }

  TEST_CASE("a single-valued option given twice is refused under any spelling") {
    CHECK(parse({"-o", "a", "--output", "b"}).error ==
          "--output: given more than once (-o/--output takes one value)");
    CHECK(parse({"--top", "3", "--top", "3"}).error ==
          "--top: given more than once (--top takes one value)");
  }

  TEST_CASE("a missing value names the option and what it needs") {
    CHECK(parse({"x", "-o"}).error == "-o needs a file name");
    CHECK(parse({"--top"}).error == "--top needs a value");
    // A value may look like an option, or be "--", unless the command says otherwise.
    CHECK(parse({"-o", "--fast"}).seen == std::vector<std::string>{"-o=--fast"});
    CHECK(parse({"-o", "--"}).seen == std::vector<std::string>{"-o=--"});
    CHECK(parse({"-o", "--", "cmd"}, false, separator::command_only).error ==
          "-o needs a file name");
  }

  TEST_CASE("unknown: an option where operands are taken, any argument where none are") {
    CHECK(parse({"--bogus"}).error == "unknown option '--bogus' (diffscope demo --help)");
    CHECK(parse({"--"}).error == "unknown option '--' (diffscope demo --help)");
    CHECK(parse({"x"}, false).error == "unknown argument 'x' (diffscope demo --help)");
    CHECK(parse({"-"}, false).error == "unknown argument '-' (diffscope demo --help)");
    CHECK(parse({""}).seen == std::vector<std::string>{"file:"});
  }

  TEST_CASE("the first bad argument is the one named") {
    CHECK(parse({"--top", "4", "--bogus"}).error == "--top: not 3");
    CHECK(parse({"--bogus", "--top", "4"}).error ==
          "unknown option '--bogus' (diffscope demo --help)");
    CHECK(parse({"--top", "3", "--help", "--bogus"}).error.empty());
    CHECK(parse({"--bogus", "--help"}).error == "unknown option '--bogus' (diffscope demo --help)");
  }

  TEST_CASE("--help and an ending option stop the parse") {
    outcome o = parse({"--fast", "--help", "--top", "4"});
    CHECK(o.error.empty());
    CHECK(o.parsed.stopped);
    CHECK(o.seen == std::vector<std::string>{"fast", "help"});
    o = parse({"--list", "--bogus"});
    CHECK(o.parsed.stopped);
    CHECK(o.seen == std::vector<std::string>{"list"});
  }

  TEST_CASE("\"--\" ends the options where a command follows") {
    outcome o = parse({"--fast", "--", "sh", "-c", "--top"}, false, separator::command);
    CHECK(o.error.empty());
    CHECK(o.parsed.saw_dashes);
    CHECK(o.parsed.command == std::vector<std::string>{"sh", "-c", "--top"});
    o = parse({"--fast", "--"}, false, separator::command);
    CHECK(o.parsed.saw_dashes);
    CHECK(o.parsed.command.empty());
    CHECK_FALSE(parse({"--fast"}, false, separator::command).parsed.saw_dashes);
  }
}
