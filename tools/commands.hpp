// The table of diffscope subcommands. A command lives in tools/cmd_<name>.hpp as
//   int run_<name>(const diffscope::cli::args&);
// and gets one line here.
#pragma once

#include <vector>

#include "cli.hpp"
#include "cmd_ab.hpp"
#include "cmd_compare.hpp"
#include "cmd_gate.hpp"
#include "cmd_hotspots.hpp"
#include "cmd_merge.hpp"
#include "cmd_run.hpp"
#include "report/cmd_report.hpp"

namespace diffscope::cli {

struct command {
  const char* name;
  const char* summary;
  int (*run)(const args&);
};

inline const std::vector<command>& commands() {
  static const std::vector<command> table = {
      {"compare", "compare perf dumps like SGLang's compare_perf.py (+ repeated runs)",
       run_compare},
      {"merge", "merge per-rank perf dumps into one (max over ranks)", run_merge},
      {"hotspots", "rank kernels of a dump or torch.profiler trace; fast-path families",
       run_hotspots},
      {"gate", "check output for diffusers fallback / CUDA-graph failure signals", run_gate},
      {"run", "collect from an unmodified command (libdiffscope_inject.so), gated", run_run},
      {"ab", "A/B runs A B B A ... on one idle GPU, compared by median", run_ab},
      {"report", "one self-contained HTML page (charts) from dumps, or dumps compared",
       run_report},
  };
  return table;
}

}  // namespace diffscope::cli
