// `diffscope compare`: SGLang's compare_perf.py report on perf dumps (lib/compare.hpp), or with
// --base/--new repeated runs compared by median with a verdict (lib/repeated_runs.hpp); then the
// kernel diff (lib/kernel_diff.hpp), which alone compares torch.profiler traces.
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "lib/compare.hpp"
#include "lib/compare_input.hpp"
#include "lib/dump_reader.hpp"
#include "lib/kernel_diff_markdown.hpp"
#include "lib/repeated_runs.hpp"

namespace diffscope::cli {

namespace {

constexpr const char* compare_usage =
    "usage: diffscope compare [--sglang-only] [--scopes N|all] [--kernels N|all]\n"
    "                         [--allow-mixed-modes] [--strict] BASE.json NEW.json [...]\n"
    "       diffscope compare [--rel-tol PCT] [--abs-tol MS] [--kernels N|all]\n"
    "                         [--allow-mixed-modes] [--strict] --base A.json... --new B.json...\n"
    "Prints SGLang compare_perf.py's Markdown report (then per-scope GPU rows where both\n"
    "dumps carry a diffscope object: the scopes timed on either side whose busy time changed\n"
    "most: 20, --scopes N or --scopes all; --sglang-only leaves them out). With --base/--new,\n"
    "compares repeated runs by median with a verdict per row (docs/compare.md).\n"
    "Then the kernel diff: per kernel each side's count, total and mean, ranked by the change\n"
    "in total time and grouped under SGLang's fast-path families (20 rows, --kernels N or\n"
    "all). Two or more torch.profiler traces (.json or .json.gz) get the kernel diff alone;\n"
    "a trace among dumps is refused (exit 2).\n"
    "Dumps of different timing modes (diffscope.status.mode perf, profile, sampled) are refused\n"
    "(exit 2) unless --allow-mixed-modes; dumps without a mode (SGLang's) go with any.\n"
    "Host-timed stage durations (SGLang's dumps, diffscope without GPU timing) against\n"
    "device-timed ones (diffscope with GPU timing) get a note above the report (on stderr\n"
    "with --sglang-only); --strict refuses them (exit 2). A file may be gzip; - reads stdin.\n";

/// The value of --scopes or --kernels: a positive integer, or all.
std::size_t parse_rows(const std::string& opt, const std::string& v, std::size_t all) {
  if (v == "all") return all;
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 1 || n > 1000000)
    throw failure(exit_usage, opt + " '" + v + "': expected a positive integer or all");
  return static_cast<std::size_t>(n);
}

/// The dumps of inputs known to be dumps, moved out.
std::vector<perf_dump_data> dumps_of(std::vector<compare_input>& in) {
  std::vector<perf_dump_data> out;
  for (auto& i : in) out.push_back(std::move(i.dump));
  return out;
}

/// compare on torch.profiler traces: the kernel diff alone.
std::string trace_compare(std::vector<compare_input>& in, std::size_t base_runs, bool sglang_only,
                          bool scopes_given, std::size_t kernel_rows) {
  if (sglang_only || scopes_given)
    throw failure(exit_usage, std::string(sglang_only ? "--sglang-only" : "--scopes") + ": " +
                                  in[0].kernels.file +
                                  " is a torch.profiler trace, which has no stages or scopes "
                                  "(traces get the kernel diff alone)");
  std::vector<kernel_run> runs;
  for (auto& i : in) runs.push_back(std::move(i.kernels));
  return trace_kernel_report(runs, base_runs, kernel_rows);
}

}  // namespace

int run_compare(const args& a) {
  bool help = false, sglang_only = false, allow_mixed = false, strict = false;
  int mode = 0;  // 0 positional, 1 after --base, 2 after --new
  bool repeated = false, scopes_given = false;
  std::size_t scope_rows = default_scope_rows, kernel_rows = default_kernel_rows;
  noise_options opt;
  std::vector<std::string> files, base_files, new_files;
  const auto tolerance = [&](const std::string& s, const std::string& v) {
    (s == "--rel-tol" ? opt.rel_tol_pct : opt.abs_tol_ms) = parse_tolerance(s, v);
  };
  // --base and --new start lists: each may come again and adds to its list.
  const command_line cl{
      "compare",
      {
          help_flag(help),
          flag({"--sglang-only"}, "compare_perf.py's report alone", [&] { sglang_only = true; }),
          flag({"--allow-mixed-modes"}, "compare dumps of different timing modes (a warning)",
               [&] { allow_mixed = true; }),
          flag({"--strict"}, "refuse host-timed against device-timed stage durations",
               [&] { strict = true; }),
          flag({"--base"}, "the files after it are the base runs",
               [&] {
                 repeated = true;
                 mode = 1;
               }),
          flag({"--new"}, "the files after it are the new runs",
               [&] {
                 repeated = true;
                 mode = 2;
               }),
          single({"--scopes"}, "a value",
                 "per-scope rows: the N whose busy time changed most (20), or all",
                 [&](const std::string& o, const std::string& v) {
                   scopes_given = true;
                   scope_rows = parse_rows(o, v, all_scope_rows);
                 }),
          single({"--kernels"}, "a value",
                 "kernel rows: the N whose total time changed most (20), or all",
                 [&](const std::string& o, const std::string& v) {
                   kernel_rows = parse_rows(o, v, all_kernel_rows);
                 }),
          single({"--rel-tol"}, "a value", "smallest relative difference that matters, %",
                 tolerance),
          single({"--abs-tol"}, "a value", "smallest absolute difference that matters, ms",
                 tolerance),
      },
      [&](const std::string& s) {
        (mode == 0 ? files : mode == 1 ? base_files : new_files).push_back(s);
      }};
  parse_options(cl, a);
  if (help) {
    std::fputs(compare_usage, stdout);
    return exit_ok;
  }
  std::string out;
  if (repeated) {
    if (!files.empty())
      throw failure(exit_usage, "'" + files[0] + "': files go after --base or --new");
    if (base_files.empty() || new_files.empty())
      throw failure(exit_usage, "--base and --new each need at least one file");
    if (scopes_given)
      throw failure(exit_usage,
                    "--scopes applies to the per-scope rows, which --base/--new "
                    "does not print");
    std::vector<std::string> every = base_files;
    every.insert(every.end(), new_files.begin(), new_files.end());
    std::vector<compare_input> in = read_compare_inputs(every);
    if (in[0].trace) {
      out = trace_compare(in, base_files.size(), sglang_only, false, kernel_rows);
    } else {
      std::vector<perf_dump_data> b = dumps_of(in);
      const auto first_new = b.begin() + static_cast<std::ptrdiff_t>(base_files.size());
      const std::vector<perf_dump_data> n(std::make_move_iterator(first_new),
                                          std::make_move_iterator(b.end()));
      b.erase(first_new, b.end());
      std::vector<const perf_dump_data*> all;
      for (const auto& d : b) all.push_back(&d);
      for (const auto& d : n) all.push_back(&d);
      const std::string modes = check_modes(all, allow_mixed);
      out = timing_note(all, strict, true) + repeated_report(b, n, opt, modes) +
            (sglang_only ? "" : repeated_kernel_section(b, n, kernel_rows));
    }
  } else {
    if (files.size() < 2)
      throw failure(exit_usage, "need at least 2 files to compare (diffscope compare --help)");
    std::vector<compare_input> in = read_compare_inputs(files);
    if (in[0].trace) {
      out = trace_compare(in, 0, sglang_only, scopes_given, kernel_rows);
    } else {
      const std::vector<perf_dump_data> dumps = dumps_of(in);
      std::vector<const perf_dump_data*> all;
      for (const auto& d : dumps) all.push_back(&d);
      const std::string modes = check_modes(all, allow_mixed);
      // --sglang-only keeps compare_perf.py's bytes: the note goes to stderr there.
      const std::string note = timing_note(all, strict, !sglang_only);
      if (sglang_only) std::fputs(note.c_str(), stderr);
      out = (sglang_only ? "" : note) +
            compare_report(dumps, compare_detail::now_isoformat(), sglang_only, modes, scope_rows) +
            (sglang_only ? "" : dump_kernel_sections(dumps, kernel_rows));
    }
  }
  // All inputs were read before the first byte goes out: no partial report.
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
    throw failure(exit_usage, "cannot write to stdout");
  return exit_ok;
}

}  // namespace diffscope::cli
