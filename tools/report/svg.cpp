// `diffscope report`'s SVG chart writer (svg.hpp): layout, axes with units, legends,
// patterns and titles. Plain string building; no library.
#include "svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <diffscope/util/json_writer.hpp>
#include <diffscope/util/text_table.hpp>

namespace diffscope::cli::report {

namespace {

// Okabe & Ito's palette, darkest first; each colour is also told apart by its pattern.
constexpr const char* palette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                   "#56B4E9", "#D55E00", "#F0E442", "#555555"};
constexpr std::size_t palette_size = sizeof palette / sizeof palette[0];
constexpr std::size_t pattern_kinds = 6;
constexpr const char* text_colour = "#1a1a1a";
constexpr const char* muted_colour = "#555555";
constexpr const char* grid_colour = "#d9d9d9";
constexpr double char_width = 6.8;  // a 12 px sans-serif character, a little generous
constexpr double font_size = 12;
constexpr std::size_t max_label = 44;

/// A row label as drawn: whole in its <title>, shortened on the chart.
std::string shown(std::string_view label, bool path) {
  return path ? escape(path_label(label, max_label)) : label_text(label, max_label);
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

double text_width(std::string_view s, std::size_t max) {
  return static_cast<double>(std::min(diffscope::detail::display_width(s), max)) * char_width;
}

/// A round step for about `n` ticks up to `hi` (> 0), and the axis end it gives.
std::pair<double, double> nice_axis(double hi, int n = 5) {
  if (!(hi > 0) || !std::isfinite(hi)) return {1, 1};
  const double raw = hi / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  return {step, std::ceil(hi / step - 1e-9) * step};
}

std::string tick_text(double v, double step) {
  char buf[32];
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 6), v);
  return buf;
}

/// The chart's opening: root element with its data attributes, title and description.
std::string open_svg(const std::string& id, double w, double h, const char* kind,
                     const std::string& count_attr, std::size_t count, const std::string& title,
                     const std::string& description, std::size_t series) {
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" + num(w) +
                  "\" height=\"" + num(h) + "\" viewBox=\"0 0 " + num(w) + " " + num(h) +
                  "\" role=\"img\" aria-labelledby=\"" + id + "-t " + id + "-d\" data-chart=\"" +
                  id + "\" data-kind=\"" + kind + "\" " + count_attr + "=\"" +
                  std::to_string(count) + "\" data-series=\"" + std::to_string(series) +
                  "\" font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', "
                  "sans-serif\" font-size=\"12\" fill=\"" +
                  text_colour + "\">\n";
  o += "<title id=\"" + id + "-t\">" + escape(title) + "</title>\n";
  o += "<desc id=\"" + id + "-d\">" + escape(description) + "</desc>\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  o +=
      "<text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">" + escape(title) + "</text>\n";
  return o;
}

/// A legend row of swatches at `y`; returns the y below it. `line` draws line swatches with
/// the series' markers instead of filled boxes.
double legend(std::string& o, const std::string& id, const std::vector<std::string>& names,
              double y, double width, bool line = false,
              const std::vector<std::string>& fills = {}) {
  double x = 8;
  o += "<g class=\"legend\">";
  for (std::size_t i = 0; i < names.size(); ++i) {
    const double w = 22 + text_width(names[i], 60) + 14;
    if (x + w > width && x > 8) {
      x = 8;
      y += 18;
    }
    if (line) {
      o += "<line x1=\"" + num(x) + "\" y1=\"" + num(y - 4) + "\" x2=\"" + num(x + 16) +
           "\" y2=\"" + num(y - 4) + "\" stroke=\"" + series_colour(i) + "\" stroke-width=\"2\"" +
           (i % 3 == 1   ? " stroke-dasharray=\"5 3\""
            : i % 3 == 2 ? " stroke-dasharray=\"2 2\""
                         : "") +
           "/>";
    } else {
      const std::string fill = i < fills.size() ? fills[i] : series_fill(id, i);
      o += "<rect x=\"" + num(x) + "\" y=\"" + num(y - 11) +
           "\" width=\"14\" height=\"12\" fill=\"" + fill +
           "\" stroke=\"#333\" stroke-width=\"0.5\"/>";
    }
    o += "<text x=\"" + num(x + 20) + "\" y=\"" + num(y) + "\">" + label_text(names[i], 60) +
         "</text>";
    x += w;
  }
  o += "</g>\n";
  return y + 14;
}

/// A value axis along the bottom of a horizontal chart, from x0 to x1 for [lo, hi].
void value_axis(std::string& o, double x0, double x1, double top, double bottom, double lo,
                double hi, double step, const std::string& label) {
  o += "<g class=\"axis\">";
  const double span = hi - lo;
  for (double v = lo; v <= hi + step * 1e-6; v += step) {
    const double x = x0 + (x1 - x0) * (v - lo) / span;
    o += "<line x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x) + "\" y2=\"" +
         num(bottom) + "\" stroke=\"" + (std::fabs(v) < step * 1e-6 ? "#888" : grid_colour) +
         "\"/>";
    o += "<text x=\"" + num(x) + "\" y=\"" + num(bottom + 14) +
         "\" text-anchor=\"middle\" fill=\"" + muted_colour + "\">" +
         tick_text(std::fabs(v) < step * 1e-9 ? 0 : v, step) + "</text>";
  }
  o += "<text x=\"" + num((x0 + x1) / 2) + "\" y=\"" + num(bottom + 30) +
       "\" text-anchor=\"middle\">" + escape(label) + "</text></g>\n";
}

std::string marker(std::size_t series, double x, double y, const std::string& colour) {
  const std::string cx = num(x), cy = num(y);
  switch (series % 4) {
    case 0:
      return "<circle class=\"pt\" cx=\"" + cx + "\" cy=\"" + cy + "\" r=\"3\" fill=\"" + colour +
             "\"";
    case 1:
      return "<rect class=\"pt\" x=\"" + num(x - 3) + "\" y=\"" + num(y - 3) +
             "\" width=\"6\" height=\"6\" fill=\"" + colour + "\"";
    case 2:
      return "<path class=\"pt\" d=\"M" + num(x) + " " + num(y - 4) + "L" + num(x + 3.5) + " " +
             num(y + 2.5) + "L" + num(x - 3.5) + " " + num(y + 2.5) + "Z\" fill=\"" + colour + "\"";
    default:
      return "<path class=\"pt\" d=\"M" + num(x) + " " + num(y - 4) + "L" + num(x + 4) + " " +
             num(y) + "L" + num(x) + " " + num(y + 4) + "L" + num(x - 4) + " " + num(y) +
             "Z\" fill=\"#ffffff\" stroke=\"" + colour + "\" stroke-width=\"1.5\"";
  }
}

}  // namespace

std::string escape(std::string_view s, bool keep_lines) {
  std::string o;
  o.reserve(s.size());
  diffscope::detail::append_sanitised_utf8(o, s, [keep_lines](std::string& out, unsigned char c) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '\n':
        out += keep_lines ? '\n' : ' ';
        break;
      case '\t':
        out += ' ';
        break;
      default:
        // XML allows no other control character, not even escaped.
        out += c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
    }
  });
  return o;
}

std::string label_text(std::string_view s, std::size_t max) {
  return escape(diffscope::detail::display_name(s, max));
}

std::string path_label(std::string_view path, std::size_t max) {
  const std::string p = diffscope::detail::printable(path);
  const std::size_t width = diffscope::detail::display_width(p);
  if (width <= max) return p;
  const std::size_t keep = max > 3 ? max - 3 : 0;
  // Skip columns from the start, never inside a UTF-8 sequence.
  std::size_t drop = width - keep, i = 0;
  while (i < p.size() && drop > 0) {
    ++i;
    while (i < p.size() && (static_cast<unsigned char>(p[i]) & 0xC0) == 0x80) ++i;
    --drop;
  }
  std::string_view tail(p);
  tail.remove_prefix(i);
  // Start at an element boundary when one is near.
  const std::size_t slash = tail.find('/');
  if (slash != std::string_view::npos && slash < tail.size() / 2) tail.remove_prefix(slash);
  return "..." + std::string(tail);
}

std::string ms_label(double v) {
  char buf[48];
  if (std::fabs(v) < 0.1 && v != 0)
    std::snprintf(buf, sizeof buf, "%.3g", v);
  else
    std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string ms_exact(double v) {
  char buf[64];
  if (std::fabs(v) < 1e6)
    std::snprintf(buf, sizeof buf, "%.6g", v);
  else
    std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string series_colour(std::size_t i) {
  return palette[i % palette_size];
}

std::string series_fill(const std::string& id, std::size_t i) {
  if (i % pattern_kinds == 0 && i < palette_size) return series_colour(i);
  return "url(#" + id + "-p" + std::to_string(i) + ")";
}

std::string pattern_defs(const std::string& id, std::size_t n) {
  std::string o = "<defs>";
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t kind = i % pattern_kinds;
    if (kind == 0 && i < palette_size) continue;  // solid
    const std::string c = series_colour(i);
    // White marks on the colour; on the light colours (yellow, sky) dark marks.
    const bool light = c == "#F0E442" || c == "#56B4E9" || c == "#E69F00";
    const std::string mark =
        light ? "#1a1a1a\" fill-opacity=\"0.45" : "#ffffff\" fill-opacity=\"0.6";
    o += "<pattern id=\"" + id + "-p" + std::to_string(i) +
         "\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\"";
    if (kind == 1) o += " patternTransform=\"rotate(45)\"";
    if (kind == 5) o += " patternTransform=\"rotate(-45)\"";
    o += "><rect width=\"6\" height=\"6\" fill=\"" + c + "\"/>";
    switch (kind) {
      case 1:
      case 5:
        o += "<rect width=\"2\" height=\"6\" fill=\"" + mark + "\"/>";
        break;
      case 2:
        o += "<circle cx=\"3\" cy=\"3\" r=\"1.4\" fill=\"" + mark + "\"/>";
        break;
      case 3:
        o += "<rect width=\"6\" height=\"2\" fill=\"" + mark + "\"/>";
        break;
      case 4:
        o += "<rect width=\"6\" height=\"1.5\" fill=\"" + mark +
             "\"/><rect width=\"1.5\" height=\"6\" fill=\"" + mark + "\"/>";
        break;
      default:  // solid colours again past the palette: a border pattern
        o += "<rect x=\"2\" y=\"2\" width=\"2\" height=\"2\" fill=\"" + mark + "\"/>";
    }
    o += "</pattern>";
  }
  o += "</defs>\n";
  return o;
}

std::string render_bars(const bar_chart& c) {
  double label_w = 60, note_w = 0, hi = 0;
  std::size_t bars = 0;
  for (const bar_group& g : c.groups) {
    label_w = std::max(label_w, text_width(g.label, max_label) + (c.path_labels ? 20 : 0));
    note_w = std::max(note_w, text_width(g.note, 60));
    for (const auto& v : g.values)
      if (v) {
        hi = std::max(hi, *v);
        ++bars;
      }
  }
  const std::size_t ns = std::max<std::size_t>(1, c.series.size());
  // Many rows: thinner bars, so that 100 steps stay one screen or two.
  const std::size_t rows = ns * c.groups.size();
  const double bar_h = ns > 4 || rows > 60 ? 9 : 14, group_gap = rows > 60 ? 4 : 8, value_w = 70;
  const double x0 = 16 + label_w, plot_w = 440;
  const double x1 = x0 + plot_w;
  const double width = x1 + value_w + (note_w > 0 ? note_w + 10 : 0) + 10;
  double y = 40;
  std::string body;
  const double legend_end = c.series.size() > 1 ? legend(body, c.id, c.series, y, width) : y - 8;
  const double top = legend_end + 6;
  const double group_h = bar_h * static_cast<double>(ns) + group_gap;
  const double bottom = top + group_h * static_cast<double>(c.groups.size());
  const auto [step, axis_hi] = nice_axis(hi);
  std::string o = open_svg(c.id, width, bottom + 44, "bars", "data-bars", bars, c.title,
                           c.description, c.series.size());
  o += pattern_defs(c.id, c.series.size());
  o += body;
  value_axis(o, x0, x1, top, bottom, 0, axis_hi, step, c.value_label);
  y = top;
  for (const bar_group& g : c.groups) {
    const double mid = y + bar_h * static_cast<double>(ns) / 2;
    o += "<g class=\"group\"><text x=\"" + num(x0 - 6) + "\" y=\"" + num(mid + 4) +
         "\" text-anchor=\"end\">" + shown(g.label, c.path_labels) + "<title>" + escape(g.label) +
         "</title></text>";
    for (std::size_t s = 0; s < g.values.size(); ++s) {
      const double by = y + bar_h * static_cast<double>(s);
      const std::string who =
          escape(g.label) + (c.series.size() > 1 ? ", " + escape(c.series[s]) : std::string());
      if (!g.values[s]) {
        o += "<text x=\"" + num(x0 + 4) + "\" y=\"" + num(by + bar_h - 3) + "\" fill=\"" +
             muted_colour + "\" font-size=\"10\">not measured<title>" + who +
             ": not measured</title></text>";
        continue;
      }
      const double v = *g.values[s];
      const double w = std::max(0.0, plot_w * v / axis_hi);
      o += "<rect class=\"bar\" x=\"" + num(x0) + "\" y=\"" + num(by + 1) + "\" width=\"" + num(w) +
           "\" height=\"" + num(bar_h - 2) + "\" fill=\"" + series_fill(c.id, s) +
           "\" stroke=\"#333\" stroke-width=\"0.5\" data-value=\"" + ms_exact(v) + "\"><title>" +
           who + ": " + ms_exact(v) + " " + escape(c.unit) + "</title></rect>";
      o += "<text x=\"" + num(x0 + w + 4) + "\" y=\"" + num(by + bar_h - 3) +
           "\" font-size=\"10\">" + (c.unit == "ms" ? ms_label(v) : ms_exact(v)) + "</text>";
    }
    if (!g.note.empty())
      o += "<text x=\"" + num(x1 + value_w) + "\" y=\"" + num(mid + 4) + "\">" +
           label_text(g.note, 60) + "</text>";
    o += "</g>\n";
    y += group_h;
  }
  o += "</svg>\n";
  return o;
}

std::string render_lines(const line_chart& c) {
  double hi = 0;
  std::size_t points = 0;
  for (const line_series& s : c.series)
    for (const auto& v : s.y)
      if (v) {
        hi = std::max(hi, *v);
        ++points;
      }
  const double width = 820, x0 = 70, x1 = width - 24;
  std::string body;
  const double top = legend(
                         body, c.id,
                         [&] {
                           std::vector<std::string> n;
                           for (const line_series& s : c.series) n.push_back(s.name);
                           return n;
                         }(),
                         40, width, true) +
                     8;
  const double bottom = top + 260;
  const auto [step, axis_hi] = nice_axis(hi);
  std::string o = open_svg(c.id, width, bottom + 44, "lines", "data-points", points, c.title,
                           c.description, c.series.size());
  o += body;
  // y axis: ticks, grid, label (rotated).
  o += "<g class=\"axis\">";
  for (double v = 0; v <= axis_hi + step * 1e-6; v += step) {
    const double y = bottom - (bottom - top) * v / axis_hi;
    o += "<line x1=\"" + num(x0) + "\" y1=\"" + num(y) + "\" x2=\"" + num(x1) + "\" y2=\"" +
         num(y) + "\" stroke=\"" + (v == 0 ? "#888" : grid_colour) + "\"/><text x=\"" +
         num(x0 - 6) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\" fill=\"" + muted_colour +
         "\">" + tick_text(v, step) + "</text>";
  }
  o += "<text transform=\"translate(16 " + num((top + bottom) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + escape(c.y_label) + "</text>";
  // x axis: at most ~12 labelled steps.
  const std::size_t n = c.x.size();
  const double xspan = n > 1 ? static_cast<double>(n - 1) : 1;
  auto px = [&](std::size_t i) {
    return n > 1 ? x0 + 10 + (x1 - x0 - 20) * static_cast<double>(i) / xspan : (x0 + x1) / 2;
  };
  auto py = [&](double v) { return bottom - (bottom - top) * v / axis_hi; };
  const std::size_t every = std::max<std::size_t>(1, (n + 11) / 12);
  for (std::size_t i = 0; i < n; i += every)
    o += "<text x=\"" + num(px(i)) + "\" y=\"" + num(bottom + 14) +
         "\" text-anchor=\"middle\" fill=\"" + muted_colour + "\">" + std::to_string(c.x[i]) +
         "</text>";
  o += "<text x=\"" + num((x0 + x1) / 2) + "\" y=\"" + num(bottom + 30) +
       "\" text-anchor=\"middle\">" + escape(c.x_label) + "</text></g>\n";
  for (std::size_t s = 0; s < c.series.size(); ++s) {
    const line_series& ls = c.series[s];
    const std::string colour = series_colour(s);
    std::string d;
    bool pen = false;
    for (std::size_t i = 0; i < ls.y.size() && i < n; ++i) {
      if (!ls.y[i]) {
        pen = false;
        continue;
      }
      d += (pen ? "L" : "M") + num(px(i)) + " " + num(py(*ls.y[i]));
      pen = true;
    }
    o += "<g class=\"series\" data-series-name=\"" + escape(ls.name) + "\">";
    if (!d.empty())
      o += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.8\"" +
           (s % 3 == 1   ? " stroke-dasharray=\"5 3\""
            : s % 3 == 2 ? " stroke-dasharray=\"2 2\""
                         : "") +
           "/>";
    for (std::size_t i = 0; i < ls.y.size() && i < n; ++i) {
      if (!ls.y[i]) continue;
      const std::string note = i < c.point_notes.size() && !c.point_notes[i].empty()
                                   ? "; " + escape(c.point_notes[i])
                                   : std::string();
      o += marker(s, px(i), py(*ls.y[i]), colour) + " data-value=\"" + ms_exact(*ls.y[i]) +
           "\"><title>" + escape(c.x_label) + " " + std::to_string(c.x[i]) + ", " +
           escape(ls.name) + ": " + ms_exact(*ls.y[i]) + " " + escape(c.unit) + note + "</title>" +
           (s % 4 == 0   ? "</circle>"
            : s % 4 == 1 ? "</rect>"
                         : "</path>");
    }
    o += "</g>\n";
  }
  o += "</svg>\n";
  return o;
}

std::string render_stacked(const stacked_chart& c) {
  double label_w = 60, note_w = 0, hi = 0;
  std::size_t bars = 0;
  for (const stack_row& r : c.rows) {
    label_w = std::max(label_w, text_width(r.label, max_label) + (c.path_labels ? 20 : 0));
    note_w = std::max(note_w, text_width(r.note, 50));
    double sum = 0;
    for (const double p : r.parts) {
      sum += std::max(0.0, p);
      bars += p > 0;
    }
    hi = std::max(hi, sum);
  }
  const double x0 = 16 + label_w, plot_w = 440, x1 = x0 + plot_w, value_w = 70;
  const double width = x1 + value_w + (note_w > 0 ? note_w + 10 : 0) + 10;
  std::string body;
  const double top = legend(body, c.id, c.parts, 40, width) + 6;
  const double row_h = 20;
  const double bottom = top + row_h * static_cast<double>(c.rows.size());
  const auto [step, axis_hi] = nice_axis(hi);
  std::string o = open_svg(c.id, width, bottom + 44, "stacked", "data-bars", bars, c.title,
                           c.description, c.parts.size());
  o += pattern_defs(c.id, c.parts.size());
  o += body;
  value_axis(o, x0, x1, top, bottom, 0, axis_hi, step, c.value_label);
  double y = top;
  for (const stack_row& r : c.rows) {
    o += "<g class=\"row\"><text x=\"" + num(x0 - 6) + "\" y=\"" + num(y + 14) +
         "\" text-anchor=\"end\">" + shown(r.label, c.path_labels) + "<title>" + escape(r.label) +
         "</title></text>";
    double x = x0, sum = 0;
    for (std::size_t p = 0; p < r.parts.size() && p < c.parts.size(); ++p) {
      const double v = r.parts[p];
      if (!(v > 0)) continue;
      sum += v;
      const double w = plot_w * v / axis_hi;
      o += "<rect class=\"bar\" x=\"" + num(x) + "\" y=\"" + num(y + 3) + "\" width=\"" + num(w) +
           "\" height=\"" + num(row_h - 6) + "\" fill=\"" + series_fill(c.id, p) +
           "\" stroke=\"#333\" stroke-width=\"0.5\" data-value=\"" + ms_exact(v) + "\"><title>" +
           escape(r.label) + ", " + escape(c.parts[p]) + ": " + ms_exact(v) + " " + escape(c.unit) +
           "</title></rect>";
      x += w;
    }
    o += "<text x=\"" + num(x + 4) + "\" y=\"" + num(y + 14) + "\" font-size=\"10\">" +
         ms_label(sum) + "</text>";
    if (!r.note.empty())
      o += "<text x=\"" + num(x1 + value_w) + "\" y=\"" + num(y + 14) + "\">" +
           label_text(r.note, 50) + "</text>";
    o += "</g>\n";
    y += row_h;
  }
  o += "</svg>\n";
  return o;
}

std::string render_diverging(const diverging_chart& c) {
  double label_w = 60, note_w = 0, hi = 0;
  for (const diverging_row& r : c.rows) {
    label_w = std::max(label_w, text_width(r.label, max_label) + (c.path_labels ? 20 : 0));
    note_w = std::max(note_w, text_width(r.verdict, 20));
    hi = std::max(hi, std::fabs(r.now - r.base));
  }
  const double x0 = 16 + label_w, plot_w = 480, x1 = x0 + plot_w, mid = (x0 + x1) / 2;
  const double width = x1 + 12 + note_w + 10;
  // Two fixed fills: less time (solid blue) and more time (hatched vermillion).
  const std::string less = "#0072B2", more = "url(#" + c.id + "-more)";
  std::string body;
  const double top = legend(body, c.id,
                            {c.new_name + " takes less time than " + c.base_name,
                             c.new_name + " takes more time than " + c.base_name},
                            40, width, false, {less, more}) +
                     6;
  const double row_h = 20;
  const double bottom = top + row_h * static_cast<double>(c.rows.size());
  const auto [step, axis_hi] = nice_axis(hi, 3);
  std::string o = open_svg(c.id, width, bottom + 44, "diverging", "data-bars", c.rows.size(),
                           c.title, c.description, 2);
  o += "<defs><pattern id=\"" + c.id +
       "-more\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
       "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#D55E00\"/><rect "
       "width=\"2\" height=\"6\" fill=\"#ffffff\" fill-opacity=\"0.6\"/></pattern></defs>\n";
  o += body;
  value_axis(o, x0, x1, top, bottom, -axis_hi, axis_hi, step,
             "change, " + c.new_name + " - " + c.base_name + " (" + c.unit + ")");
  double y = top;
  for (const diverging_row& r : c.rows) {
    const double d = r.now - r.base;
    const double pct = r.base != 0 ? 100.0 * d / r.base : 0.0;
    const double w = (plot_w / 2) * std::fabs(d) / axis_hi;
    const double x = d < 0 ? mid - w : mid;
    char change[96];
    std::snprintf(change, sizeof change, "%s%s %s (%+.1f%%)", d >= 0 ? "+" : "-",
                  ms_label(std::fabs(d)).c_str(), c.unit.c_str(), pct);
    o += "<g class=\"row\"><text x=\"" + num(x0 - 6) + "\" y=\"" + num(y + 14) +
         "\" text-anchor=\"end\">" + shown(r.label, c.path_labels) + "<title>" + escape(r.label) +
         "</title></text>";
    o += "<rect class=\"bar\" x=\"" + num(x) + "\" y=\"" + num(y + 3) + "\" width=\"" + num(w) +
         "\" height=\"" + num(row_h - 6) + "\" fill=\"" + (d < 0 ? less : more) +
         "\" stroke=\"#333\" stroke-width=\"0.5\" data-value=\"" + ms_exact(d) + "\"><title>" +
         escape(r.label) + ": " + escape(c.base_name) + " " + ms_exact(r.base) + " " +
         escape(c.unit) + ", " + escape(c.new_name) + " " + ms_exact(r.now) + " " + escape(c.unit) +
         ", change " + escape(change) + (r.verdict.empty() ? "" : ", " + escape(r.verdict)) +
         "</title></rect>";
    // The change on the far side of the bar's free half, so it never covers the bar.
    o += "<text x=\"" + num(d < 0 ? mid + 4 : mid - 4) + "\" y=\"" + num(y + 14) +
         "\" font-size=\"10\" text-anchor=\"" + (d < 0 ? "start" : "end") + "\">" + escape(change) +
         "</text>";
    if (!r.verdict.empty())
      o += "<text x=\"" + num(x1 + 12) + "\" y=\"" + num(y + 14) + "\">" +
           label_text(r.verdict, 20) + "</text>";
    o += "</g>\n";
    y += row_h;
  }
  o += "</svg>\n";
  return o;
}

std::string render_tree(const tree_chart& c) {
  double label_w = 60, hi = 0, note_w = 0;
  std::size_t bars = 0;
  for (const tree_row& r : c.rows) {
    label_w = std::max(label_w, 12.0 * r.depth + text_width(r.label, 40));
    note_w = std::max(note_w, text_width(r.note, 40));
    if (r.value) {
      hi = std::max(hi, *r.value);
      ++bars;
    }
  }
  label_w = std::min(label_w, 420.0);
  const double x0 = 16 + label_w, plot_w = 400, x1 = x0 + plot_w, value_w = 70;
  const double width = x1 + value_w + (note_w > 0 ? note_w + 10 : 0) + 10;
  const double top = 34, row_h = 18;
  const double bottom = top + row_h * static_cast<double>(c.rows.size());
  const auto [step, axis_hi] = nice_axis(hi);
  std::string o =
      open_svg(c.id, width, bottom + 44, "tree", "data-bars", bars, c.title, c.description, 1);
  value_axis(o, x0, x1, top, bottom, 0, axis_hi, step, c.value_label);
  double y = top;
  for (const tree_row& r : c.rows) {
    o += "<g class=\"row\"><text x=\"" + num(8 + 12.0 * std::min(r.depth, 30)) + "\" y=\"" +
         num(y + 13) + "\">" + label_text(r.label, 40) + "<title>" + escape(r.full) +
         "</title></text>";
    if (r.value) {
      const double w = plot_w * *r.value / axis_hi;
      o += "<rect class=\"bar\" x=\"" + num(x0) + "\" y=\"" + num(y + 3) + "\" width=\"" + num(w) +
           "\" height=\"" + num(row_h - 6) + "\" fill=\"" + series_colour(0) +
           "\" stroke=\"#333\" stroke-width=\"0.5\" data-value=\"" + ms_exact(*r.value) +
           "\"><title>" + escape(r.full) + ": " + ms_exact(*r.value) + " " + escape(c.unit) +
           "</title></rect><text x=\"" + num(x0 + w + 4) + "\" y=\"" + num(y + 13) +
           "\" font-size=\"10\">" + ms_label(*r.value) + "</text>";
    } else {
      o += "<text x=\"" + num(x0 + 4) + "\" y=\"" + num(y + 13) + "\" font-size=\"10\" fill=\"" +
           muted_colour + "\">not measured</text>";
    }
    if (!r.note.empty())
      o += "<text x=\"" + num(x1 + value_w) + "\" y=\"" + num(y + 13) + "\">" +
           label_text(r.note, 40) + "</text>";
    o += "</g>\n";
    y += row_h;
  }
  o += "</svg>\n";
  return o;
}

}  // namespace diffscope::cli::report
