// The table of diffscope subcommands. A command lives in tools/cmd_<name>.hpp as
//   int run_<name>(const diffscope::cli::args&);
// and gets one line here.
#pragma once

#include <vector>

#include "cli.hpp"

namespace diffscope::cli {

struct command {
  const char* name;
  const char* summary;
  int (*run)(const args&);
};

inline const std::vector<command>& commands() {
  static const std::vector<command> table = {};
  return table;
}

}  // namespace diffscope::cli
