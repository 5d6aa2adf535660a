// `diffscope hotspots [--top N] [--rules FILE] FILE`: ranks the GPU kernels of a diffscope perf
// dump or a torch.profiler Chrome trace (read by lib/hotspot_input.hpp), with categories and
// SGLang's known fast-path families (include/diffscope/analysis/hotspots.hpp).
#include <cstdio>
#include <cstdlib>
#include <string>

#include <diffscope/analysis/figures.hpp>
#include <diffscope/analysis/hotspots.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "lib/hotspot_input.hpp"
#include "lib/input.hpp"

namespace diffscope::cli {

namespace {

constexpr const char* hotspots_usage =
    "usage: diffscope hotspots [--top N] [--rules FILE] [--print-rules] FILE\n"
    "  FILE: a diffscope perf dump or a torch.profiler Chrome trace (.json or .json.gz);\n"
    "        - reads stdin\n"
    "  --top N        kernels listed (default 30)\n"
    "  --rules FILE   category rules, one per line: <category> <regex> (replaces the defaults)\n"
    "  --print-rules  print the default rules (a starting point for --rules) and exit\n";

}  // namespace

int run_hotspots(const args& a) {
  std::size_t top = 30;
  std::string rules_path, file;
  bool help = false, print_rules = false;
  const command_line cl{
      "hotspots",
      {
          help_flag(help),
          ending(flag({"--print-rules"}, "print the default rules", [&] { print_rules = true; })),
          single({"--top"}, "a value", "kernels listed (default 30)",
                 [&](const std::string&, const std::string& v) {
                   char* end = nullptr;
                   const long n = std::strtol(v.c_str(), &end, 10);
                   if (v.empty() || *end != '\0' || n < 1 || n > 1000000)
                     throw failure(exit_usage, "--top '" + v + "': expected a positive integer");
                   top = static_cast<std::size_t>(n);
                 }),
          single({"--rules"}, "a value", "category rules replacing the defaults",
                 [&](const std::string&, const std::string& v) { rules_path = v; }),
      },
      [&](const std::string& s) {
        if (!file.empty()) throw failure(exit_usage, "more than one FILE ('" + s + "')");
        file = s;
      }};
  parse_options(cl, a);
  if (help) {
    std::fputs(hotspots_usage, stdout);
    return exit_ok;
  }
  if (print_rules) {
    std::fputs(default_category_rules_text, stdout);
    return exit_ok;
  }
  if (file.empty()) throw failure(exit_usage, "no FILE (diffscope hotspots --help)");
  if (file == "-" && rules_path == "-")
    throw failure(exit_usage, "'-' (stdin) given as both FILE and --rules");

  const kernel_classifier rules = rules_path.empty() ? kernel_classifier() : load_rules(rules_path);
  byte_source in(file, no_size_limit, "a trace");
  const hotspot_source src = hotspots_from_input(in);
  const hotspot_report rep =
      analyze_hotspots(src.res, rules, src.is_trace ? &src.overlap : nullptr);

  std::string out;
  if (src.is_trace) {
    out += in.path() + ": torch.profiler trace" + (src.gzip ? " (gzip)" : "") + ", " +
           std::to_string(src.events) + " events, " + std::to_string(rep.operations) +
           " kernel/gpu_memcpy events\n";
    if (src.names_folded > 0)
      out += "note: more than " + std::to_string(max_trace_kernel_names) +
             " distinct names; later new names are summed in one row\n";
  } else {
    out += in.path() + ": diffscope perf dump, " + std::to_string(src.res.kernels.size()) +
           " kernel entries";
    if (src.kernels_total > src.res.kernels.size())
      out += " (the dump lists the top " + std::to_string(src.res.kernels.size()) + " of " +
             std::to_string(src.kernels_total) + ")";
    out += "\n";
    // The dump's own totals: its window's, over every kernel it saw, listed or not.
    if (src.has_window) {
      const window_info& w = src.res.window;
      out += "window: " + diffscope::detail::window_text(src.res);
      if (w.gpu.measured)
        out += "; " + diffscope::detail::fixed(w.gpu.busy_ms, 2) + " ms of GPU work in " +
               std::to_string(w.gpu.operations()) + " operations";
      out += "\n";
      const std::string outside = diffscope::detail::outside_text(w);
      if (!outside.empty()) out += "outside requests: " + outside + ", not ranked\n";
    }
    if (src.res.sampling.active)
      out += "sampled mode: " + diffscope::detail::traced_steps_text(src.res.sampling) +
             "; the kernels inside denoise steps are estimates, scaled from the traced steps\n";
  }
  out += "\n";
  if (rep.kernels.empty()) {
    out += "no kernel or memcpy operations\n";
  } else {
    out += hotspots_text(rep, top);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? exit_ok : exit_usage;
}

}  // namespace diffscope::cli
