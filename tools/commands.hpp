// The table of diffscope subcommands. A command lives in tools/cmd_<name>.cpp as
//   int run_<name>(const diffscope::cli::args&);
// declared here, with one line in the table; what several commands share is in tools/lib/.
#pragma once

#include <vector>

#include "cli.hpp"

namespace diffscope::cli {

int run_compare(const args& a);
int run_merge(const args& a);
int run_hotspots(const args& a);
int run_gate(const args& a);
int run_run(const args& a);
int run_ab(const args& a);
int run_report(const args& a);

struct command {
  const char* name;
  const char* summary;
  int (*run)(const args&);
};

inline const std::vector<command>& commands() {
  static const std::vector<command> table = {
      {"compare", "compare perf dumps like SGLang's compare_perf.py, then their kernels; or traces",
       run_compare},
      {"merge", "merge per-rank perf dumps into one (max over ranks)", run_merge},
      {"hotspots", "rank kernels of a dump or torch.profiler trace; fast-path families",
       run_hotspots},
      {"gate", "check output for diffusers fallback / CUDA-graph failure signals", run_gate},
      {"run", "collect from an unmodified command (libdiffscope_inject.so), gated", run_run},
      {"ab", "A/B runs A B B A ... on one idle GPU, compared by median", run_ab},
      {"report", "one self-contained HTML page (charts) from dumps, or dumps compared", run_report},
  };
  return table;
}

}  // namespace diffscope::cli
