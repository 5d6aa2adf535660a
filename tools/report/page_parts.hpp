// What the report page's sections share (html_page.cpp, single_sections.cpp,
// compare_sections.cpp): the builder that collects sections, charts and notes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "html_page.hpp"
#include "report_model.hpp"
#include "svg.hpp"

namespace diffscope::cli::report {

/// Most rows a chart draws (the rest is said in a note); keeps big dumps' pages small.
inline constexpr std::size_t max_chart_rows = 40;
inline constexpr std::size_t max_bar_groups = 120;
inline constexpr std::size_t max_line_points = 1000;
inline constexpr std::size_t max_table_rows = 200;
inline constexpr std::size_t max_tree_rows = 5000;

class page_builder {
 public:
  /// Opens a section with an <h2> and a table-of-contents entry.
  void section(const std::string& id, const std::string& title);
  void end_section() { body_ += "</section>\n"; }
  /// A chart inline in a <figure> and, for --svg-dir, as a file of its own.
  void chart(const std::string& id, const std::string& svg, const std::string& caption = "");
  /// A chart for --svg-dir only (the page shows the same data another way).
  void svg_only(const std::string& id, const std::string& svg) { charts_.emplace_back(id, svg); }
  /// What the dump lacks, said where the chart would be. `key` goes to data-missing.
  void missing(const std::string& key, const std::string& text);
  /// A paragraph of plain text (escaped).
  void note(const std::string& text);
  /// Raw HTML.
  void html(const std::string& h) { body_ += h; }

  const std::string& body() const { return body_; }
  const std::vector<std::pair<std::string, std::string>>& toc() const { return toc_; }
  std::vector<std::pair<std::string, std::string>>& charts() { return charts_; }

 private:
  std::string body_;
  std::vector<std::pair<std::string, std::string>> toc_;
  std::vector<std::pair<std::string, std::string>> charts_;
};

/// A chart id safe in HTML ids, SVG ids and file names: [a-z0-9-] only.
std::string slug(const std::string& s);

/// "12.35 ms".
std::string ms_text(double v);

/// The single-dump sections: header, stages, steps, categories, scopes, kernels, families,
/// communication, and the multi-rank sections of a merged dump.
void run_header(page_builder& b, const run_view& r);
void single_sections(page_builder& b, const run_view& r);
/// One dump's stages and denoise steps (timing_sections.cpp).
void stages_section(page_builder& b, const run_view& r);
void steps_section(page_builder& b, const run_view& r);

/// The sections of a comparison (page_kind compare or repeated). The verdicts are compare's own
/// rules (lib/compare.hpp, lib/repeated_runs.hpp), called, not copied.
void compare_sections(page_builder& b, const std::vector<run_view>& runs, const page_options& o);

}  // namespace diffscope::cli::report
