// `diffscope report`: one self-contained HTML page from perf dumps (tools/report/).
#pragma once

#include "../cli.hpp"

namespace diffscope::cli {

int run_report(const args& a);

}  // namespace diffscope::cli
