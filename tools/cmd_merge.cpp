// `diffscope merge -o OUT IN...`: per-rank perf dumps of one request into one dump
// (lib/merge.hpp says how); `--summary` prints it as text (lib/merge_summary.hpp). Written
// atomically.
#include <cstdio>
#include <string>
#include <vector>

#include <diffscope/util/atomic_file.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "lib/dump_reader.hpp"
#include "lib/merge.hpp"
#include "lib/merge_summary.hpp"

namespace diffscope::cli {

namespace {

constexpr const char* merge_usage =
    "usage: diffscope merge [-o OUT.json] [--summary] IN.json [IN.json ...]\n"
    "Merges per-rank perf dumps of one request: every stage, denoise step, total and memory\n"
    "checkpoint takes the maximum over ranks (the critical path); per-rank values are kept\n"
    "in diffscope.ranks, the spread and straggler rank of each step and stage in\n"
    "diffscope.critical_path, each rank's communication overlap per scope in diffscope.comm.\n"
    "Ranks come from diffscope.environment.rank, else the input order. Written atomically.\n"
    "--summary prints steps, stages (critical path, spread, straggler) and communication\n"
    "(busy, overlapped, exposed per rank) as text on stdout. Needs -o or --summary.\n";

}  // namespace

int run_merge(const args& a) {
  std::string out_path;
  bool help = false, summary = false;
  std::vector<std::string> inputs;
  const command_line cl{
      "merge",
      {
          help_flag(help),
          single({"-o", "--output"}, "a file name", "the merged dump",
                 [&](const std::string&, const std::string& v) { out_path = v; }),
          flag({"--summary"}, "print the merge as text on stdout", [&] { summary = true; }),
      },
      [&](const std::string& s) { inputs.push_back(s); }};
  parse_options(cl, a);
  if (help) {
    std::fputs(merge_usage, stdout);
    return exit_ok;
  }
  if (out_path.empty() && !summary)
    throw failure(exit_usage, "-o OUT.json is required (diffscope merge --help)");
  if (inputs.empty()) throw failure(exit_usage, "no input dumps (diffscope merge --help)");
  const std::vector<perf_dump_data> ranks = load_dumps(inputs);
  std::vector<std::string> warnings;
  const ordered_json merged = merge_dumps(ranks, warnings);
  for (const auto& w : warnings) std::fprintf(stderr, "diffscope merge: warning: %s\n", w.c_str());
  if (!out_path.empty())
    if (auto err = diffscope::detail::write_file_atomically(out_path, dump_text(merged)))
      throw failure(exit_usage, *err);
  if (summary) std::fputs(merge_summary_text(merged).c_str(), stdout);
  return exit_ok;
}

}  // namespace diffscope::cli
