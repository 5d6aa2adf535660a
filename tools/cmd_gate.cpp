// `diffscope gate`: the native-backend gate (sglang/gate.hpp, docs/gate.md) on a saved log, or
// around a command (lib/gate_runner.hpp). Exit: 0 or the command's code when it holds, 3 when it
// trips, 2 bad usage or log, 127/126 command not found/not executable, 128+N killed by signal N.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <diffscope/sglang/gate.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "lib/gate_runner.hpp"
#include "lib/input.hpp"

namespace diffscope::cli {

namespace {

using gate_detail::gate_args;
using gate_detail::options_for;

constexpr const char* usage =
    "usage: diffscope gate [--expect-bcg] --log FILE\n"
    "       diffscope gate [--expect-bcg] [--kill-on-fallback] [--kill-grace SECONDS] -- CMD "
    "[ARGS...]\n"
    "\n"
    "Checks output for SGLang's invalid-run signals: a diffusers-backend fallback (the run is\n"
    "not SGLang evidence) and, with --expect-bcg, the breakable-CUDA-graph capture marker and\n"
    "its failure markers. --log scans a saved log (FILE or - for stdin). With a command, its\n"
    "stdout and stderr pass through unchanged while being scanned.\n"
    "\n"
    "  --expect-bcg        the run used breakable CUDA graphs: require '[Diffusion BCG] "
    "captured'\n"
    "                      and none of its failure markers\n"
    "  --kill-on-fallback  on a fallback signal, SIGTERM the command's process group (SIGKILL\n"
    "                      after the grace period)\n"
    "  --kill-grace S      seconds between SIGTERM and SIGKILL (default 5)\n"
    "\n"
    "The verdict is one line on stderr. Exit: 0 (--log) or the command's exit code when the\n"
    "gate holds, 3 when it trips, 2 bad usage or unreadable log, 127 command not found,\n"
    "128+N when the command was killed by signal N.\n";

gate_args parse_gate_args(const args& a) {
  gate_args g;
  const command_line cl{
      "gate",
      {
          help_flag(g.help, false),
          flag({"--expect-bcg"}, "require the breakable-CUDA-graph capture marker",
               [&] { g.expect_bcg = true; }),
          flag({"--kill-on-fallback"}, "on a fallback signal, stop the command",
               [&] { g.kill_on_fallback = true; }),
          single({"--kill-grace"}, "a number of seconds", "seconds between SIGTERM and SIGKILL",
                 [&](const std::string&, const std::string& v) {
                   char* end = nullptr;
                   g.kill_grace_s = std::strtod(v.c_str(), &end);
                   if (v.empty() || end == nullptr || *end != '\0' || !(g.kill_grace_s >= 0) ||
                       g.kill_grace_s > 86400)
                     throw failure(exit_usage,
                                   "--kill-grace: not a number of seconds: '" + v + "'");
                 }),
          single({"--log"}, "a file (or - for stdin)", "scan a saved log",
                 [&](const std::string&, const std::string& v) {
                   g.log = v;
                   g.has_log = true;
                 }),
      },
      /*operands=*/nullptr,
      separator::command};
  const parsed_args p = parse_options(cl, a);
  const bool has_command = p.saw_dashes;
  g.command = p.command;
  if (g.help) return g;
  if (g.has_log && has_command) throw failure(exit_usage, "give --log FILE or -- CMD, not both");
  if (!g.has_log && !has_command)
    throw failure(exit_usage,
                  "nothing to check: give --log FILE or -- CMD (diffscope gate --help)");
  if (has_command && g.command.empty()) throw failure(exit_usage, "no command after --");
  if (g.has_log && g.log.empty()) throw failure(exit_usage, "--log: empty file name");
  if (g.has_log && g.kill_on_fallback)
    throw failure(exit_usage, "--kill-on-fallback needs a command (-- CMD), not --log");
  return g;
}

int scan_log(const gate_args& g) {
  gate_options o = options_for(g);
  o.stream_names[0] = g.log == "-" ? "stdin" : g.log;
  gate_scanner scanner(o);
  input_file in(g.log);  // the readers' input rule: "-" is stdin, a directory is refused
  std::vector<char> buf(1 << 16);
  while (const std::size_t n = in.read(buf.data(), buf.size())) scanner.feed(buf.data(), n);
  scanner.finish();
  const gate_verdict v = scanner.verdict();
  std::fprintf(stderr, "diffscope gate: %s\n", verdict_text(v).c_str());
  return v.ok() ? exit_ok : exit_gate_tripped;
}

}  // namespace

/// `diffscope gate`.
int run_gate(const args& a) {
  const gate_args g = parse_gate_args(a);
  if (g.help) {
    std::fputs(usage, stdout);
    return exit_ok;
  }
  return g.has_log ? scan_log(g) : gate_detail::run_command(g);
}

}  // namespace diffscope::cli
