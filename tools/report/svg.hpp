// `diffscope report`'s charts: small SVG documents that stand alone (a file for a pull
// request) and inline in the page. Every bar and point has a <title> with its exact value;
// the chart element carries data-chart, data-kind and data-bars / data-points for checks.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace diffscope::cli::report {

/// Text for XML and HTML: & < > " ' escaped, bytes that are not UTF-8 as U+FFFD, control
/// characters as '?' (XML allows none), newlines as spaces unless `keep_lines`.
std::string escape(std::string_view s, bool keep_lines = false);

/// `s` for a label: printable and at most `max` columns, "..." when cut (the console's rule:
/// diffscope::detail::display_name), escaped.
std::string label_text(std::string_view s, std::size_t max);

/// A scope path for a label: printable and at most `max` columns, its start cut ("...") when
/// too long, so the innermost elements stay readable.
std::string path_label(std::string_view path, std::size_t max);

/// A millisecond value for labels: "12.35" (2 decimals), or 3 significant digits below 0.1.
std::string ms_label(double v);
/// A millisecond value for titles: every digit that matters ("%.6g" up to 1e6, else fixed).
std::string ms_exact(double v);

/// Horizontal bars: one group per row, one bar per series (missing values are left out,
/// and said so in the row's title).
struct bar_group {
  std::string label;  ///< row label (shortened on the chart, whole in the title)
  std::vector<std::optional<double>> values;
  std::string note;  ///< text after the bars, e.g. a verdict ("" for none)
};
struct bar_chart {
  bool path_labels = false;  ///< labels are scope paths: cut at the start, not the end
  std::string id, title, description;
  std::string value_label = "time (ms)";
  std::string unit = "ms";
  std::vector<std::string> series;
  std::vector<bar_group> groups;
};
std::string render_bars(const bar_chart& c);

/// Lines over an integer x (denoise step); a missing value breaks the line.
struct line_series {
  std::string name;
  std::vector<std::optional<double>> y;
};
struct line_chart {
  std::string id, title, description;
  std::string x_label = "denoise step", y_label = "time (ms)", unit = "ms";
  std::vector<long long> x;
  std::vector<line_series> series;
  std::vector<std::string> point_notes;  ///< per x, added to every point's title ("" none)
};
std::string render_lines(const line_chart& c);

/// Horizontal stacked bars: one row, one segment per part (zero parts drawn as nothing).
struct stack_row {
  std::string label;
  std::vector<double> parts;
  std::string note;
};
struct stacked_chart {
  bool path_labels = false;  ///< labels are scope paths: cut at the start, not the end
  std::string id, title, description;
  std::string value_label = "time (ms)", unit = "ms";
  std::vector<std::string> parts;
  std::vector<stack_row> rows;
};
std::string render_stacked(const stacked_chart& c);

/// Diverging bars around zero: new - base per row (left: less time, right: more).
struct diverging_row {
  std::string label;
  double base = 0, now = 0;
  std::string verdict;  ///< "faster", "slower", "same", "unsure", ... ("" none)
};
struct diverging_chart {
  bool path_labels = false;  ///< labels are scope paths: cut at the start, not the end
  std::string id, title, description;
  std::string base_name = "base", new_name = "new", unit = "ms";
  std::vector<diverging_row> rows;  ///< drawn in the given order
};
std::string render_diverging(const diverging_chart& c);

/// Indented bars: a tree drawn as rows indented by depth, bar length by value.
struct tree_row {
  std::string label, full;  ///< shown name; whole path for the title
  int depth = 0;
  std::optional<double> value;
  std::string note;
};
struct tree_chart {
  std::string id, title, description;
  std::string value_label = "GPU busy (ms)", unit = "ms";
  std::vector<tree_row> rows;
};
std::string render_tree(const tree_chart& c);

/// The fill of series `i` of chart `id` (a pattern over the series colour), and the defs
/// that chart needs for `n` series. Series differ by colour (Okabe-Ito, safe for colour-blind
/// readers), by pattern or marker shape, and by a legend and value labels, so colour never
/// carries meaning alone.
std::string series_fill(const std::string& id, std::size_t i);
std::string series_colour(std::size_t i);
std::string pattern_defs(const std::string& id, std::size_t n);

}  // namespace diffscope::cli::report
