// `diffscope ab`'s options, its run order (A B B A ...) and its decision: whether B beats A by
// the threshold on the denoise time (else end to end), by the repeated-run verdict of
// lib/repeated_runs.hpp (docs/ab.md).
#pragma once

#include <cctype>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "../cli.hpp"
#include "compare.hpp"
#include "dump_reader.hpp"
#include "repeated_runs.hpp"

namespace diffscope::cli {

namespace ab_detail {

inline constexpr int exit_invalid = 4;   ///< a run failed or tripped the gate: no verdict
inline constexpr int exit_gpu_busy = 5;  ///< the GPU did not become idle within --idle-wait

struct ab_args {
  bool help = false;
  std::string command[2];
  std::string label[2] = {"A", "B"};
  int runs = 4;
  int warmup_runs = 0;
  std::string gpu = "auto";
  double threshold_pct = 1.5, abs_tol_ms = 0.1, idle_wait_s = 30;
  std::string out, mode = "perf", figure = "auto";
  bool expect_bcg = false;
};

inline double parse_number(const std::string& opt, const std::string& text, double lo) {
  return cli::parse_number(opt, text, lo,
                           compare_detail::py_fixed(lo, lo == std::floor(lo) ? 0 : 1));
}

/// A label names files (OUT/<label>-<i>.json): letters, digits, '.', '_', '-'.
inline bool label_ok(const std::string& s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == '-') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

/// --labels A,B: two distinct file-name labels.
inline void set_labels(ab_args& r, const std::string& v) {
  const auto comma = v.find(',');
  if (comma == std::string::npos || v.find(',', comma + 1) != std::string::npos)
    throw failure(exit_usage, "--labels: '" + v + "' is not two labels A,B");
  r.label[0] = v.substr(0, comma);
  r.label[1] = v.substr(comma + 1);
  for (const auto& l : r.label)
    if (!label_ok(l))
      throw failure(exit_usage,
                    "--labels: '" + l + "' is not a file-name label (letters, digits, . _ -)");
  if (r.label[0] == r.label[1]) throw failure(exit_usage, "--labels: the two labels are equal");
}

/// --gpu: an index (at most 5 digits), auto or none.
inline void set_gpu(ab_args& r, const std::string& v) {
  r.gpu = v;
  const bool digits = !r.gpu.empty() && r.gpu.size() < 6 &&
                      r.gpu.find_first_not_of("0123456789") == std::string::npos;
  if (!digits && r.gpu != "auto" && r.gpu != "none")
    throw failure(exit_usage, "--gpu: '" + r.gpu + "' is not a GPU index, auto or none");
}

inline ab_args parse(const args& a) {
  ab_args r;
  bool have[2] = {false, false};
  using value_use = std::function<void(const std::string&, const std::string&)>;
  const value_use command = [&](const std::string& s, const std::string& v) {
    const int side = s == "--a" ? 0 : 1;
    r.command[side] = v;
    if (r.command[side].find_first_not_of(" \t\n") == std::string::npos)
      throw failure(exit_usage, s + ": empty command");
    have[side] = true;
  };
  const auto number = [](double& dst) -> value_use {
    return [&dst](const std::string& s, const std::string& v) { dst = parse_number(s, v, 0); };
  };
  const command_line cl{
      "ab",
      {
          help_flag(r.help),
          single({"--a"}, "a value", "command A (run with sh -c)", command),
          single({"--b"}, "a value", "command B (run with sh -c)", command),
          single({"--runs"}, "a value", "runs of each side, 2 to 1000 (default 4)",
                 [&](const std::string& s, const std::string& v) {
                   r.runs = whole_number(s, v, 2, 1000);
                 }),
          single({"--warmup-runs"}, "a value", "warm-up runs of each side, not compared",
                 [&](const std::string& s, const std::string& v) {
                   r.warmup_runs = whole_number(s, v, 0, 100);
                 }),
          single({"--labels"}, "a value", "the two sides' names, A,B (they name the dumps)",
                 [&](const std::string&, const std::string& v) { set_labels(r, v); }),
          single({"--gpu"}, "a value", "the GPU: an NVML index, auto or none",
                 [&](const std::string&, const std::string& v) { set_gpu(r, v); }),
          single({"--threshold"}, "a value", "% by which B must beat A (default 1.5)",
                 number(r.threshold_pct)),
          single({"--abs-tol"}, "a value", "smallest difference that matters, ms (default 0.1)",
                 number(r.abs_tol_ms)),
          single({"--idle-wait"}, "a value", "seconds to wait for an idle GPU (default 30)",
                 number(r.idle_wait_s)),
          single({"--out"}, "a value", "the directory of dumps and report",
                 [&](const std::string&, const std::string& v) {
                   r.out = v;
                   if (r.out.empty()) throw failure(exit_usage, "--out: empty path");
                 }),
          single({"--mode"}, "a value", "the timing mode, perf or profile (default perf)",
                 [&](const std::string&, const std::string& v) {
                   r.mode = v;
                   if (r.mode != "perf" && r.mode != "profile")
                     throw failure(exit_usage, "--mode: '" + r.mode +
                                                   "' is not a mode ab runs: perf or profile");
                 }),
          single({"--figure"}, "a value", "what is decided on: auto, denoise or e2e",
                 [&](const std::string&, const std::string& v) {
                   r.figure = v;
                   if (r.figure != "auto" && r.figure != "denoise" && r.figure != "e2e")
                     throw failure(exit_usage,
                                   "--figure: '" + r.figure + "' is not auto, denoise or e2e");
                 }),
          flag({"--expect-bcg"}, "the runs use breakable CUDA graphs (diffscope run --expect-bcg)",
               [&] { r.expect_bcg = true; }),
      }};
  parse_options(cl, a);
  if (r.help) return r;
  if (!have[0] || !have[1]) throw failure(exit_usage, "--a and --b are both required");
  return r;
}

/// One planned run: side 0 (A) or 1 (B), and its number on that side (1-based).
struct planned_run {
  int side = 0;
  int index = 0;
  bool warmup = false;  ///< not compared: its dump is kept as <label>-warmup<i>.json
};

/// `warmup` rounds of A B first, then abba_order(runs).
inline std::vector<planned_run> with_warmup(int warmup, std::vector<planned_run> order) {
  std::vector<planned_run> all;
  for (int i = 1; i <= warmup; ++i) {
    all.push_back({0, i, true});
    all.push_back({1, i, true});
  }
  all.insert(all.end(), order.begin(), order.end());
  return all;
}

/// A B B A A B B A ...: each pair of positions holds one A and one B, so any prefix of even
/// length is balanced, and a whole A B B A block cancels a drift linear in time.
inline std::vector<planned_run> abba_order(int runs) {
  std::vector<planned_run> order;
  int count[2] = {0, 0};
  for (int k = 0; k < 2 * runs; ++k) {
    const int side = ((k + 1) / 2) % 2;
    order.push_back({side, ++count[side]});
  }
  return order;
}

inline std::string order_text(const std::vector<planned_run>& order) {
  std::string s;
  for (const auto& r : order)
    s += (s.empty() ? "" : " ") + std::string(r.side ? "B" : "A") + (r.warmup ? "(warm-up)" : "");
  return s;
}

/// "A", or "A (label)" when the label is not just the letter.
inline std::string side_name(const ab_args& o, int side) {
  const std::string letter = side ? "B" : "A";
  return o.label[side] == letter ? letter : letter + " (" + o.label[side] + ")";
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The denoise time of the SGLang benchmark helper (docs/sglang.md, section 3): the stages whose
/// name ends in DenoisingStage or RefinementStage (not BeforeDenoisingStage), else the sum
/// of denoise_steps_ms; none when the dump has neither.
inline std::optional<double> denoise_ms(const perf_dump_data& d) {
  double sum = 0;
  bool any = false;
  for (const auto& s : d.steps) {
    if ((ends_with(s.name, "DenoisingStage") || ends_with(s.name, "RefinementStage")) &&
        s.name.find("BeforeDenoisingStage") == std::string::npos) {
      sum += s.duration_ms;
      any = true;
    }
  }
  if (any) return sum;
  if (d.denoise_steps.empty()) return std::nullopt;
  for (const auto& s : d.denoise_steps) sum += s.duration_ms;
  return sum;
}

/// The figure the decision is made on, with its values per run.
struct figure_values {
  std::string name;  ///< "denoise time" or "E2E latency"
  std::string why;
  std::vector<double> a, b;
};

inline figure_values pick_figure(const std::vector<perf_dump_data>& a,
                                 const std::vector<perf_dump_data>& b, const std::string& want) {
  figure_values f;
  bool all_denoise = true;
  for (const auto* side : {&a, &b})
    for (const auto& d : *side) all_denoise = all_denoise && denoise_ms(d).has_value();
  if (want == "denoise" && !all_denoise)
    throw failure(exit_usage,
                  "--figure denoise: a dump has no *DenoisingStage stage and no "
                  "denoise_steps_ms");
  if (want != "e2e" && all_denoise) {
    f.name = "denoise time";
    f.why =
        "the SGLang benchmark helper's denoise seconds: *DenoisingStage/*RefinementStage "
        "stages, else the sum of denoise_steps_ms; the loop a change targets, without "
        "process start, loading and teardown";
    for (const auto& d : a) f.a.push_back(*denoise_ms(d));
    for (const auto& d : b) f.b.push_back(*denoise_ms(d));
  } else {
    f.name = "E2E latency";
    f.why = want == "e2e" ? "--figure e2e: total_duration_ms"
                          : "total_duration_ms: the dumps carry no denoise stage or steps";
    for (const auto& d : a) f.a.push_back(d.total_duration_ms);
    for (const auto& d : b) f.b.push_back(d.total_duration_ms);
  }
  return f;
}

struct decision {
  figure_values figure;
  noise_verdict verdict;
  bool b_wins = false;
  std::string text;  ///< the section, ending with the one-line decision
};

/// B beats A when the repeated-run verdict on the figure is "faster" with the threshold as
/// its relative tolerance: the median gain exceeds threshold % of A's median (and abs_tol)
/// and the two sides' run-to-run spread.
inline decision decide(const std::vector<perf_dump_data>& a, const std::vector<perf_dump_data>& b,
                       const ab_args& o) {
  using compare_detail::py_fixed;
  decision d;
  d.figure = pick_figure(a, b, o.figure);
  noise_options opt;
  opt.rel_tol_pct = o.threshold_pct;
  opt.abs_tol_ms = o.abs_tol_ms;
  d.verdict = judge(d.figure.a, d.figure.b, opt);
  d.b_wins = std::string(d.verdict.verdict) == "faster";
  const noise_verdict& v = d.verdict;
  const std::string A = side_name(o, 0), B = side_name(o, 1);
  std::string t = "\n### Decision\n\n";
  t += "- Figure: " + d.figure.name + " (" + d.figure.why + ")\n";
  t += "- " + A + " median " + py_fixed(v.base_median, 3) + " ms, " + B + " median " +
       py_fixed(v.new_median, 3) + " ms: " + py_fixed(v.diff, 3, true) + " ms (" +
       py_fixed(v.diff_pct, 2, true) + "%)\n";
  t += "- Threshold " + py_fixed(v.threshold, 3) + " ms (max(" + py_fixed(o.threshold_pct, 2) +
       "% of A, " + py_fixed(o.abs_tol_ms, 2) + " ms)), run-to-run spread " + py_fixed(v.noise, 3) +
       " ms (A " + py_fixed(v.base_spread, 3) + " + B " + py_fixed(v.new_spread, 3) + ")\n";
  t += std::string("- Verdict: ") + v.verdict + "\n\n";
  const std::string by = "by " + py_fixed(o.threshold_pct, 2) + "% on the " + d.figure.name;
  if (d.b_wins) {
    t += "Decision: " + B + " beats " + A + " " + by + " (" + py_fixed(-v.diff_pct, 2) +
         "% faster).\n";
  } else {
    std::string why = v.verdict;
    if (why == "slower") why = "B is slower, " + py_fixed(v.diff_pct, 2, true) + "%";
    if (why == "same") why = "no difference beyond the threshold";
    if (why == "unsure")
      why =
          "unsure: the difference is within the run-to-run spread, or the runs are too "
          "scattered to have shown a threshold-sized one";
    t += "Decision: " + B + " does not beat " + A + " " + by + " (" + why + ").\n";
  }
  d.text = t;
  return d;
}

}  // namespace ab_detail

}  // namespace diffscope::cli
