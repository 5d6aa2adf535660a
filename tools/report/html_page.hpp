// `diffscope report`'s page: one self-contained HTML file (inline CSS and SVG, a little inline
// JavaScript for sorting and collapsing; it reads the same without it) for one dump, or for
// dumps compared as `diffscope compare` compares them.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "../lib/repeated_runs.hpp"
#include "report_model.hpp"

namespace diffscope::cli::report {

enum class page_kind {
  single,    ///< one dump
  compare,   ///< DUMP DUMP...: the first is the baseline (compare BASE NEW...)
  repeated,  ///< --base A... --new B...: medians per side
};

struct page_options {
  page_kind kind = page_kind::single;
  std::size_t base_runs = 0;  ///< repeated: runs[0, base_runs) are the base side
  std::string base_label = "Base", new_label = "New";
  noise_options noise;
  std::string modes;     ///< check_modes' answer ("" when no input says)
  std::string markdown;  ///< what `diffscope compare` prints for the same inputs
  std::string command;   ///< the command line, for the page's footer
};

struct page {
  std::string html;
  std::vector<std::pair<std::string, std::string>> charts;  ///< (chart id, SVG document)
};

/// The whole page. Every section says what the dumps lack instead of drawing an empty chart.
page build_page(const std::vector<run_view>& runs, const page_options& o);

}  // namespace diffscope::cli::report
