// `diffscope report DUMP... | --base A... --new B...`: options, reading, and writing the page
// (atomically, like merge -o) and, with --svg-dir, each chart as a file of its own.
#include <cstddef>
#include <cstdio>
#include <iterator>
#include <string>
#include <unordered_set>
#include <vector>

#include <diffscope/util/atomic_file.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "lib/compare.hpp"
#include "lib/dump_reader.hpp"
#include "lib/kernel_diff_markdown.hpp"
#include "lib/repeated_runs.hpp"
#include "report/html_page.hpp"
#include "report/report_model.hpp"

namespace diffscope::cli {

namespace {

constexpr const char* report_usage =
    "usage: diffscope report [-o OUT.html] [--labels A,B,...] [--svg-dir DIR]\n"
    "                        [--allow-mixed-modes] DUMP [DUMP ...]\n"
    "       diffscope report [-o OUT.html] [--labels BASE,NEW] [--svg-dir DIR] [--rel-tol PCT]\n"
    "                        [--abs-tol MS] [--allow-mixed-modes] --base A.json... --new "
    "B.json...\n"
    "Writes one self-contained HTML page (inline SVG and CSS; no network, no external file)\n"
    "made from the perf dumps alone. One DUMP: what was measured (mode, GPU, gate, requests,\n"
    "overhead, faults), stages (GPU envelope and host), denoise steps (envelope, host, busy),\n"
    "GPU time by kernel category, the scope tree, top kernels, fast-path findings and\n"
    "communication; a merged dump (diffscope merge) adds each step's critical path, spread\n"
    "and straggler rank. Two or more DUMPs (the first is the baseline), or repeated runs with\n"
    "--base/--new: stages and steps side by side with compare's verdicts, per-scope and\n"
    "per-kernel changes ranked by size, and the Markdown diffscope compare prints. What a\n"
    "dump lacks is said on the page. -o writes atomically (default: stdout); --svg-dir also\n"
    "writes each chart as DIR/<chart>.svg; --labels names the dumps (the two sides with\n"
    "--base/--new). Timing modes and tolerances as in diffscope compare --help.\n"
    "A file may be gzip; - reads stdin.\n";

std::vector<std::string> split_labels(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? comma : comma - start));
    if (out.back().empty())
      throw failure(exit_usage, "--labels: '" + text + "' has an empty label");
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

void write_or_fail(const std::string& path, const std::string& content) {
  if (auto err = diffscope::detail::write_file_atomically(path, content))
    throw failure(exit_usage, *err);
}

}  // namespace

int run_report(const args& a) {
  bool help = false, allow_mixed = false, repeated = false;
  int side = 0;  // 0 positional, 1 after --base, 2 after --new
  std::string out_path, labels_text, svg_dir;
  bool have_labels = false;
  noise_options noise;
  std::vector<std::string> files, base_files, new_files;
  const auto tolerance = [&](const std::string& s, const std::string& v) {
    (s == "--rel-tol" ? noise.rel_tol_pct : noise.abs_tol_ms) = parse_tolerance(s, v);
  };
  // --base and --new start lists: each may come again and adds to its list.
  const command_line cl{
      "report",
      {
          help_flag(help),
          flag({"--allow-mixed-modes"}, "compare perf-mode and profile-mode dumps (a warning)",
               [&] { allow_mixed = true; }),
          flag({"--base"}, "the files after it are the base runs",
               [&] {
                 repeated = true;
                 side = 1;
               }),
          flag({"--new"}, "the files after it are the new runs",
               [&] {
                 repeated = true;
                 side = 2;
               }),
          single({"-o", "--output"}, "a value", "write the page there (atomically)",
                 [&](const std::string& s, const std::string& v) {
                   if (v.empty()) throw failure(exit_usage, s + ": empty file name");
                   out_path = v;
                 }),
          single({"--labels"}, "a value", "names of the dumps, or of the two sides",
                 [&](const std::string&, const std::string& v) {
                   labels_text = v;
                   have_labels = true;
                 }),
          single({"--svg-dir"}, "a value", "also write each chart as DIR/<chart>.svg",
                 [&](const std::string&, const std::string& v) {
                   if (v.empty()) throw failure(exit_usage, "--svg-dir: empty directory name");
                   svg_dir = v;
                 }),
          single({"--rel-tol"}, "a value", "smallest relative difference that matters, %",
                 tolerance),
          single({"--abs-tol"}, "a value", "smallest absolute difference that matters, ms",
                 tolerance),
      },
      [&](const std::string& s) {
        (side == 0 ? files : side == 1 ? base_files : new_files).push_back(s);
      }};
  parse_options(cl, a);
  if (help) {
    std::fputs(report_usage, stdout);
    return exit_ok;
  }
  report::page_options opt;
  opt.noise = noise;
  std::vector<std::string> every;
  if (repeated) {
    if (!files.empty())
      throw failure(exit_usage, "'" + files[0] + "': files go after --base or --new");
    if (base_files.empty() || new_files.empty())
      throw failure(exit_usage, "--base and --new each need at least one file");
    every = base_files;
    every.insert(every.end(), new_files.begin(), new_files.end());
    opt.kind = report::page_kind::repeated;
    opt.base_runs = base_files.size();
  } else {
    if (files.empty()) throw failure(exit_usage, "no DUMP (diffscope report --help)");
    every = files;
    opt.kind = files.size() == 1 ? report::page_kind::single : report::page_kind::compare;
  }
  std::vector<std::string> labels;
  if (have_labels) {
    labels = split_labels(labels_text);
    const std::size_t want = repeated ? 2 : every.size();
    if (labels.size() != want)
      throw failure(exit_usage, "--labels: " + std::to_string(labels.size()) + " label(s) for " +
                                    std::to_string(want) +
                                    (repeated ? " sides (--base, --new)" : " dump(s)"));
  }

  std::vector<perf_dump_data> dumps = load_dumps(every);
  if (opt.kind != report::page_kind::single) {
    std::vector<const perf_dump_data*> all;
    for (const auto& d : dumps) all.push_back(&d);
    opt.modes = check_modes(all, allow_mixed);
    // Exactly what `diffscope compare` prints for the same files (the dumps are moved, not
    // copied: a dump may be large).
    const std::string note = timing_note(all, false, true);
    if (repeated) {
      const auto first_new = dumps.begin() + static_cast<std::ptrdiff_t>(opt.base_runs);
      std::vector<perf_dump_data> n(std::make_move_iterator(first_new),
                                    std::make_move_iterator(dumps.end()));
      dumps.erase(first_new, dumps.end());
      opt.markdown =
          note + repeated_report(dumps, n, noise, opt.modes) + repeated_kernel_section(dumps, n);
      for (auto& d : n) dumps.push_back(std::move(d));
    } else {
      opt.markdown = note +
                     compare_report(dumps, compare_detail::now_isoformat(), false, opt.modes) +
                     dump_kernel_sections(dumps);
    }
  }
  std::vector<report::run_view> runs;
  for (auto& d : dumps) runs.push_back(report::view_of(std::move(d)));
  // Two files of one base name in different directories: name them by the path as given.
  std::unordered_set<std::string> names;
  bool clash = false;
  for (const auto& r : runs) clash = clash || !names.insert(r.label).second;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (clash) runs[i].label = runs[i].dump.file;
    if (have_labels && !repeated) runs[i].label = labels[i];
  }
  if (have_labels && repeated) {
    opt.base_label = labels[0];
    opt.new_label = labels[1];
  }
  opt.command = "diffscope report";
  for (const std::string& s : a) opt.command += " " + s;

  // Everything is made before the first byte is written: no half-written report.
  const report::page p = report::build_page(runs, opt);
  if (!svg_dir.empty())
    for (const auto& [id, svg] : p.charts)
      write_or_fail(svg_dir + "/" + id + ".svg",
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + svg);
  if (!out_path.empty()) {
    write_or_fail(out_path, p.html);
  } else if (std::fwrite(p.html.data(), 1, p.html.size(), stdout) != p.html.size() ||
             std::fflush(stdout) != 0) {
    throw failure(exit_usage, "cannot write to stdout");
  }
  return exit_ok;
}

}  // namespace diffscope::cli
