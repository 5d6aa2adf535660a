// `diffscope run`: collects from an unmodified command through libdiffscope_inject.so, gates its
// output (lib/gate_runner.hpp) and writes the requested outputs from what its processes wrote
// (lib/run_session.hpp).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <diffscope/capture/step_sampling.hpp>
#include <diffscope/config.hpp>
#include <diffscope/sglang/gate.hpp>
#include <diffscope/util/atomic_file.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "lib/child.hpp"
#include "lib/gate_runner.hpp"
#include "lib/input.hpp"
#include "lib/run_session.hpp"

namespace diffscope::cli {

namespace run_detail {
namespace {

constexpr const char* usage =
    "usage: diffscope run [--dump FILE] [--trace FILE] [--summary]\n"
    "                     [--mode profile|perf|sampled] [--sample-steps SPEC]\n"
    "                     [--perf-scopes steps|all] [--perf-sample N]\n"
    "                     [--expect-bcg] [--no-gate] [--keep-invalid] -- CMD [ARGS...]\n"
    "Runs CMD with the diffscope collector injected into it and every process it starts\n"
    "(NVTX_INJECTION64_PATH=libdiffscope_inject.so), its output passed through and gated\n"
    "(diffscope gate). Writes the perf dump (one process: its dump; several: their merge,\n"
    "as diffscope merge, plus each process's own dump as FILE with -rank<r> before the\n"
    "extension, from its RANK, or -pid<pid> without one), the trace (one per process: FILE,\n"
    "or FILE with -<pid> before the extension), and the summary of each process on stderr\n"
    "(several: then the merged summary, as diffscope merge --summary).\n"
    "--mode: the timing mode (DIFFSCOPE_MODE; default: the environment's, else profile):\n"
    "profile traces every kernel through CUPTI, perf times stages and steps with device\n"
    "events and no per-launch cost, sampled times every stage and step with events and\n"
    "traces the kernels of a sample of denoise steps (docs/modes.md).\n"
    "--sample-steps: the denoise steps sampled mode traces (DIFFSCOPE_SAMPLE_STEPS): A-B (step\n"
    "indices, default 1-2), A (one step) or every:N (every N-th step from step 1).\n"
    "--perf-scopes: what perf mode times (DIFFSCOPE_PERF_SCOPES): steps (stages and denoise\n"
    "steps, the default) or all (every scope). --perf-sample N (DIFFSCOPE_PERF_SAMPLE, implies\n"
    "--perf-scopes all): the scopes inside denoise steps timed in one step of N, their totals\n"
    "estimated.\n"
    "Exit: the command's code (128+N when it was killed by signal N: it wrote no dump then);\n"
    "3 when the gate trips (no dump is kept, unless --keep-invalid writes it beside as\n"
    "FILE.invalid.json); 2 bad usage, no injection library, or a dump was asked for and no\n"
    "process wrote one; 127 command not found. When an output (dump or trace) cannot be\n"
    "written, a line says so and the exit is the command's code when that is not 0, else 2.\n"
    "Stopped by SIGINT, SIGTERM or SIGHUP (passed on to the command): waits for the command\n"
    "to end and writes nothing; exit: the command's code, or 128+N for signal N when it\n"
    "exited 0.\n"
    "DIFFSCOPE_INJECT_LIB overrides where libdiffscope_inject.so is looked for (next to this\n"
    "program, then ../lib).\n";

struct run_args {
  bool help = false;
  std::string dump, trace;
  bool summary = false, expect_bcg = false, no_gate = false, keep_invalid = false;
  std::string mode;          ///< "" = leave DIFFSCOPE_MODE as it is
  std::string sample_steps;  ///< "" = leave DIFFSCOPE_SAMPLE_STEPS as it is
  std::string perf_scopes;   ///< "" = leave DIFFSCOPE_PERF_SCOPES as it is
  int perf_sample = 0;       ///< 0 = leave DIFFSCOPE_PERF_SAMPLE as it is
  std::vector<std::string> command;
};

run_args parse(const args& a) {
  run_args r;
  const auto choice = [](std::string& dst, const char* one, const char* other) {
    return [&dst, one, other](const std::string& s, const std::string& v) {
      dst = v;
      if (dst != one && dst != other)
        throw failure(exit_usage, s + ": '" + dst + "' is not " + one + " or " + other);
    };
  };
  const command_line cl{
      "run",
      {
          help_flag(r.help),
          single({"--dump"}, "a file", "the perf dump",
                 [&](const std::string&, const std::string& v) { r.dump = v; }),
          single({"--trace"}, "a file", "the Chrome trace (one per process)",
                 [&](const std::string&, const std::string& v) { r.trace = v; }),
          flag({"--summary"}, "each process's summary on stderr", [&] { r.summary = true; }),
          flag({"--expect-bcg"}, "the gate requires breakable CUDA graphs",
               [&] { r.expect_bcg = true; }),
          flag({"--no-gate"}, "a tripped gate does not fail the run", [&] { r.no_gate = true; }),
          flag({"--keep-invalid"}, "keep the dump of a tripped gate as FILE.invalid.json",
               [&] { r.keep_invalid = true; }),
          single({"--mode"}, "profile, perf or sampled", "the timing mode (DIFFSCOPE_MODE)",
                 [&](const std::string& s, const std::string& v) {
                   r.mode = v;
                   if (v != "profile" && v != "perf" && v != "sampled")
                     throw failure(exit_usage, s + ": '" + v + "' is not profile, perf or sampled");
                 }),
          single({"--sample-steps"}, "A-B, A or every:N",
                 "the denoise steps sampled mode traces (DIFFSCOPE_SAMPLE_STEPS)",
                 [&](const std::string& s, const std::string& v) {
                   if (!diffscope::detail::parse_step_sample(v))
                     throw failure(exit_usage, s + ": '" + v +
                                                   "' is not a step window A-B (0 <= A <= B), "
                                                   "one step A, or every:N (N >= 1)");
                   r.sample_steps = v;
                 }),
          single({"--perf-scopes"}, "steps or all", "what perf mode times (DIFFSCOPE_PERF_SCOPES)",
                 choice(r.perf_scopes, "steps", "all")),
          single({"--perf-sample"}, "a step count", "time the scopes inside steps in one of N",
                 [&](const std::string& s, const std::string& v) {
                   r.perf_sample = whole_number(s, v, 1, 1 << 20);
                 }),
      },
      /*operands=*/nullptr,
      separator::command_only};
  const parsed_args p = parse_options(cl, a);
  if (r.help) return r;
  if (!p.saw_dashes)
    throw failure(exit_usage, "no command: give -- CMD [ARGS...] (diffscope run --help)");
  r.command = p.command;
  if (r.command.empty()) throw failure(exit_usage, "no command after --");
  // Sampling needs every scope timed.
  if (r.perf_sample > 0 && r.perf_scopes == "steps")
    throw failure(exit_usage,
                  "--perf-sample samples the scopes inside steps: it needs "
                  "--perf-scopes all, not steps");
  return r;
}

}  // namespace
}  // namespace run_detail

/// `diffscope run`.
int run_run(const args& a) {
  const run_detail::run_args r = run_detail::parse(a);
  if (r.help) {
    std::fputs(run_detail::usage, stdout);
    return exit_ok;
  }
  const std::string library = run_detail::find_inject_library();
  run_detail::temp_dir dir;

  // The command and everything it starts inherit this environment. The collector in each
  // process expands {pid} when it writes. A process's own gate is off: this one gates.
  config::set_for_children("NVTX_INJECTION64_PATH", library.c_str());
  config::set_for_children("DIFFSCOPE_DUMP", (dir.path + "/dump-{pid}.json").c_str());
  config::set_for_children("DIFFSCOPE_TRACE",
                           r.trace.empty() ? nullptr : (dir.path + "/trace-{pid}.json").c_str());
  // A process that outlives the run must not recreate the directory once it is removed.
  config::set_for_children("DIFFSCOPE_CREATE_DIRS", "0");
  if (r.summary) config::set_for_children("DIFFSCOPE_SUMMARY", "1");
  if (!r.mode.empty()) config::set_for_children("DIFFSCOPE_MODE", r.mode.c_str());
  if (!r.sample_steps.empty())
    config::set_for_children("DIFFSCOPE_SAMPLE_STEPS", r.sample_steps.c_str());
  if (r.perf_sample > 0) {
    config::set_for_children("DIFFSCOPE_PERF_SAMPLE", std::to_string(r.perf_sample).c_str());
    config::set_for_children("DIFFSCOPE_PERF_SCOPES", "all");
  }
  if (!r.perf_scopes.empty())
    config::set_for_children("DIFFSCOPE_PERF_SCOPES", r.perf_scopes.c_str());
  for (const char* v : {"DIFFSCOPE_GATE", "DIFFSCOPE_EXPECT_BCG", "DIFFSCOPE_KEEP_INVALID"})
    config::set_for_children(v, nullptr);

  gate_detail::gate_args g;
  g.expect_bcg = r.expect_bcg;
  g.command = r.command;
  gate_verdict verdict;
  int command_code = 0;
  gate_detail::command_outcome outcome;
  gate_detail::run_command(g, &verdict, &command_code, &outcome);
  if (command_code == 126 || command_code == 127) return command_code;  // said why already
  const std::string killed = outcome.killed_by != 0 ? signal_name(outcome.killed_by) : "";

  if (outcome.received_signal != 0) {
    // Asked to stop: the command has ended; write nothing, leave nothing behind.
    dir.remove();
    std::fprintf(stderr, "diffscope run: stopped by %s: no output written\n",
                 signal_name(outcome.received_signal).c_str());
    return command_code != 0 ? command_code : 128 + outcome.received_signal;
  }
  const bool tripped = !r.no_gate && !verdict.ok();

  const auto dumps = run_detail::outputs_in(dir.path, "dump-");
  const auto traces = run_detail::outputs_in(dir.path, "trace-");
  std::vector<std::string> output_errors;
  if (!r.dump.empty()) {
    if (dumps.empty()) {
      if (!killed.empty())
        std::fprintf(stderr,
                     "diffscope run: the command was killed by %s and so wrote no dump; "
                     "nothing written to %s\n",
                     killed.c_str(), r.dump.c_str());
      else
        std::fprintf(stderr,
                     "diffscope run: no process wrote a dump (no NVTX range was seen, or the "
                     "command ended before its first range); nothing written to %s\n",
                     r.dump.c_str());
      dir.remove();
      return command_code != 0 ? command_code : exit_usage;
    }
    if (tripped && !r.keep_invalid) {
      std::fprintf(stderr, "diffscope run: gate tripped (%s): no dump written to %s\n",
                   verdict.code(), r.dump.c_str());
    } else {
      const std::string tail = tripped ? ".invalid.json" : "";
      const std::string out = r.dump + tail;
      std::string err;
      try {
        err = run_detail::write_dump(dumps, r.dump, tail, r.summary);
      } catch (const failure& f) {
        err = f.what();
      }
      if (!err.empty())
        output_errors.push_back(err);
      else if (tripped)
        std::fprintf(stderr, "diffscope run: invalid dump kept as %s\n", out.c_str());
    }
  }
  if (!r.trace.empty() && !(tripped && !r.keep_invalid)) {
    for (const auto& t : traces) {
      std::string out = traces.size() == 1
                            ? r.trace
                            : run_detail::with_suffix(
                                  r.trace, std::filesystem::path(t).stem().string().substr(6));
      if (tripped) out += ".invalid.json";
      try {
        if (auto err = diffscope::detail::write_file_atomically(out, read_file(t)))
          output_errors.push_back(*err);
      } catch (const failure& f) {
        output_errors.push_back(f.what());
      }
    }
  }
  dir.remove();

  int code = tripped ? exit_gate_tripped : command_code;
  if (!output_errors.empty()) {
    // The command's own result still counts: its code is relayed, and only a clean exit
    // becomes our 2.
    for (const auto& e : output_errors)
      std::fprintf(stderr, "diffscope run: output failed: %s\n", e.c_str());
    if (tripped)
      std::fprintf(stderr, "diffscope run: exit 3 (the gate tripped)\n");
    else if (command_code == 0)
      std::fprintf(stderr, "diffscope run: the command exited 0; exit 2 (an output failed)\n");
    else
      std::fprintf(stderr, "diffscope run: the command %s; its exit code %d is relayed\n",
                   killed.empty() ? ("exited with " + std::to_string(command_code)).c_str()
                                  : ("was killed by " + killed).c_str(),
                   command_code);
    if (!tripped && command_code == 0) code = exit_usage;
  }
  gate_detail::deliver_pending_signals();
  return code;
}

}  // namespace diffscope::cli
