// `diffscope ab`: an A/B comparison done the way the SGLang benchmark workflow asks for it
// (docs/ab.md): both commands run in the order A B B A A B B A ... on one fixed, idle GPU,
// each through `diffscope run` (collector injected, output gated), then compared by median
// with the repeated-run verdict of `diffscope compare --base/--new`, and a final decision on
// whether B beats A by the threshold.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <diffscope/util/atomic_file.hpp>

#include "cli.hpp"
#include "cmd_compare.hpp"
#include "cmd_gate.hpp"
#include "lib/dump_reader.hpp"
#include "lib/nvml.hpp"

namespace diffscope::cli {

namespace ab_detail {

inline constexpr int exit_invalid = 4;   ///< a run failed or tripped the gate: no verdict
inline constexpr int exit_gpu_busy = 5;  ///< the GPU did not become idle within --idle-wait

inline constexpr const char* usage =
    "usage: diffscope ab --a 'CMD A' --b 'CMD B' [--runs N] [--labels A,B]\n"
    "                    [--gpu ID|auto|none] [--threshold PCT] [--abs-tol MS] [--out DIR]\n"
    "                    [--mode perf|profile] [--figure auto|denoise|e2e]\n"
    "                    [--idle-wait SEC] [--warmup-runs N] [--expect-bcg]\n"
    "Runs A and B N times each (default 4, at least 2) in the order A B B A A B B A ...,\n"
    "each as `diffscope run --dump OUT/<label>-<i>.json -- sh -c CMD` with DIFFSCOPE_MODE set\n"
    "(default perf), on one GPU that must be idle before every run (no compute process,\n"
    "<= 32 MiB used, <= 5% utilisation; waits up to --idle-wait seconds, default 30).\n"
    "  --gpu ID    NVML index (nvidia-smi's numbering); CUDA_VISIBLE_DEVICES names its UUID\n"
    "  --gpu auto  the first idle GPU (default)\n"
    "  --gpu none  no idle check and CUDA_VISIBLE_DEVICES left alone (machines without a GPU)\n"
    "  --warmup-runs N  first run A and B N times each (default 0), dumps kept as\n"
    "              <label>-warmup<i>.json and left out of the comparison (caches, JIT,\n"
    "              clocks); a failed or gate-tripped warm-up run invalidates it too\n"
    "Then prints the repeated-run comparison of the medians (a verdict per row) and whether B\n"
    "beats A by --threshold percent (default 1.5) on the denoise time (else end to end), and\n"
    "writes it to OUT/ab-report.md. OUT defaults to a new ab-<UTC time>/ in the current\n"
    "directory.\n"
    "Exit: 0 a valid comparison (whatever it found); 2 bad usage, no NVML for --gpu auto/ID;\n"
    "4 invalid: a run failed or tripped the gate (the first such run ends it); 5 the GPU\n"
    "stayed busy.\n";

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

inline ab_args parse(const args& a) {
  ab_args r;
  bool have[2] = {false, false};
  once_options once{{"--a"},         {"--b"},   {"--runs"},      {"--warmup-runs"},
                    {"--labels"},    {"--gpu"}, {"--threshold"}, {"--abs-tol"},
                    {"--idle-wait"}, {"--out"}, {"--mode"},      {"--figure"}};
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string& s = a[i];
    once.check(s);
    auto value = [&]() -> std::string {
      if (i + 1 >= a.size()) throw failure(exit_usage, s + " needs a value");
      return a[++i];
    };
    if (s == "-h" || s == "--help") {
      r.help = true;
      return r;
    }
    if (s == "--a" || s == "--b") {
      const int side = s == "--a" ? 0 : 1;
      r.command[side] = value();
      if (r.command[side].find_first_not_of(" \t\n") == std::string::npos)
        throw failure(exit_usage, s + ": empty command");
      have[side] = true;
    } else if (s == "--runs") {
      r.runs = whole_number(s, value(), 2, 1000);
    } else if (s == "--warmup-runs") {
      r.warmup_runs = whole_number(s, value(), 0, 100);
    } else if (s == "--labels") {
      const std::string v = value();
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
    } else if (s == "--gpu") {
      r.gpu = value();
      const bool digits = !r.gpu.empty() && r.gpu.size() < 6 &&
                          r.gpu.find_first_not_of("0123456789") == std::string::npos;
      if (!digits && r.gpu != "auto" && r.gpu != "none")
        throw failure(exit_usage, "--gpu: '" + r.gpu + "' is not a GPU index, auto or none");
    } else if (s == "--threshold") {
      r.threshold_pct = parse_number(s, value(), 0);
    } else if (s == "--abs-tol") {
      r.abs_tol_ms = parse_number(s, value(), 0);
    } else if (s == "--idle-wait") {
      r.idle_wait_s = parse_number(s, value(), 0);
    } else if (s == "--out") {
      r.out = value();
      if (r.out.empty()) throw failure(exit_usage, "--out: empty path");
    } else if (s == "--mode") {
      r.mode = value();
      if (r.mode != "perf" && r.mode != "profile")
        throw failure(exit_usage, "--mode: '" + r.mode + "' is not perf or profile");
    } else if (s == "--figure") {
      r.figure = value();
      if (r.figure != "auto" && r.figure != "denoise" && r.figure != "e2e")
        throw failure(exit_usage, "--figure: '" + r.figure + "' is not auto, denoise or e2e");
    } else if (s == "--expect-bcg") {
      r.expect_bcg = true;
    } else {
      throw failure(exit_usage, "unknown argument '" + s + "' (diffscope ab --help)");
    }
  }
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

/// The denoise time of the SGLang benchmark helper (contract section 3): the stages whose
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

/// Runs argv (argv[0] is the file) with `env` added, output passed through; returns its exit
/// code, or 128+N when killed by signal N. Ctrl-C reaches the child (same process group);
/// here it is ignored while the child runs, as system(3) does, so the report still gets
/// written.
inline int run_child(const std::string& file, const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<char*> p;
  for (const auto& s : argv) p.push_back(const_cast<char*>(s.c_str()));
  p.push_back(nullptr);
  struct sigaction ign {
  }, old_int{}, old_quit{};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ::sigaction(SIGINT, &ign, &old_int);
  ::sigaction(SIGQUIT, &ign, &old_quit);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    throw failure(exit_usage, "cannot fork");
  }
  if (pid == 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(file.c_str(), p.data());
    std::fprintf(stderr, "diffscope ab: cannot execute %s\n", file.c_str());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

/// The GPU the runs use, and how to check it.
struct gpu_choice {
  bool checked = false;  ///< false with --gpu none
  unsigned index = 0;
  std::string name, uuid, visible;  ///< visible: the CUDA_VISIBLE_DEVICES value
};

inline std::string join_problems(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

/// Polls until GPU `index` (or, with `any`, the first of all GPUs) is idle, or `wait_s`
/// passes. Returns the idle reading; throws failure(exit_gpu_busy) saying what was busy.
inline nvml::gpu_reading wait_idle(const nvml::library& lib, int count, bool any, unsigned index,
                                   double wait_s, const std::string& before) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::duration<double>(wait_s);
  bool said = false;
  for (;;) {
    std::vector<nvml::gpu_reading> seen;
    for (unsigned i = any ? 0 : index; i < (any ? static_cast<unsigned>(count) : index + 1); ++i) {
      nvml::gpu_reading r = lib.read(i);
      if (nvml::idle_problems(r).empty()) return r;
      seen.push_back(std::move(r));
    }
    if (clock::now() >= deadline) {
      std::string msg = "no idle GPU " + before + " after waiting " +
                        compare_detail::py_fixed(wait_s, 0) +
                        " s (idle: no compute process, <= 32 "
                        "MiB used, <= 5% utilisation):";
      for (const auto& r : seen)
        msg +=
            " GPU " + std::to_string(r.index) + ": " + join_problems(nvml::idle_problems(r)) + ";";
      msg.pop_back();
      throw failure(exit_gpu_busy, msg);
    }
    if (!said) {
      std::fprintf(stderr, "diffscope ab: waiting for an idle GPU %s (%s)\n", before.c_str(),
                   seen.empty() ? "" : join_problems(nvml::idle_problems(seen[0])).c_str());
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

inline std::string utc_now(const char* fmt) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

/// OUT: created; an existing one must be empty (old dumps must not mix with new ones).
inline std::string make_out_dir(const std::string& given) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!given.empty()) {
    if (fs::exists(given, ec)) {
      if (!fs::is_directory(given, ec))
        throw failure(exit_usage, "--out " + given + ": not a directory");
      if (!fs::is_empty(given, ec))
        throw failure(exit_usage,
                      "--out " + given + ": not empty (old dumps would mix with new ones)");
      return given;
    }
    fs::create_directories(given, ec);
    if (ec) throw failure(exit_usage, "--out " + given + ": cannot create (" + ec.message() + ")");
    return given;
  }
  const std::string stem = "ab-" + utc_now("%Y%m%d-%H%M%S");
  for (int n = 1; n < 100; ++n) {
    const std::string d = n == 1 ? stem : stem + "-" + std::to_string(n);
    if (::mkdir(d.c_str(), 0777) == 0) return d;
    if (errno != EEXIST)
      throw failure(exit_usage, d + ": cannot create (" + std::strerror(errno) + ")");
  }
  throw failure(exit_usage, stem + ": cannot create a fresh directory");
}

inline std::string md_code(const std::string& s) {
  std::string t = s;
  for (char& c : t)
    if (c == '\n') c = ' ';
  return "`` " + t + " ``";
}

}  // namespace ab_detail

/// `diffscope ab`.
inline int run_ab(const args& a) {
  using namespace ab_detail;
  const ab_args o = parse(a);
  if (o.help) {
    std::fputs(usage, stdout);
    return exit_ok;
  }
  const std::string A = side_name(o, 0), B = side_name(o, 1);

  // The GPU, before anything is created: no driver means no directory left behind.
  gpu_choice gpu;
  nvml::library lib;
  int gpu_count = 0;
  if (o.gpu == "none") {
    std::fprintf(stderr,
                 "diffscope ab: --gpu none: no idle check, CUDA_VISIBLE_DEVICES left as it is; "
                 "the comparison does not know what else ran on the GPU\n");
  } else {
    if (const std::string why = lib.open(); !why.empty())
      throw failure(exit_usage, "--gpu " + o.gpu + ": " + why +
                                    "; use --gpu none to run without the idle check");
    std::string why;
    gpu_count = lib.device_count(why);
    if (gpu_count < 0) throw failure(exit_usage, "--gpu " + o.gpu + ": " + why);
    if (gpu_count == 0)
      throw failure(exit_usage, "--gpu " + o.gpu + ": NVML sees no GPU; use --gpu none");
    gpu.checked = true;
    if (o.gpu == "auto") {
      gpu.index = wait_idle(lib, gpu_count, true, 0, o.idle_wait_s, "to pick").index;
    } else {
      gpu.index = static_cast<unsigned>(std::stoul(o.gpu));
      if (gpu.index >= static_cast<unsigned>(gpu_count))
        throw failure(exit_usage, "--gpu " + o.gpu + ": NVML sees " + std::to_string(gpu_count) +
                                      " GPU(s), 0.." + std::to_string(gpu_count - 1));
    }
    const nvml::gpu_reading r = lib.read(gpu.index);
    gpu.name = r.name;
    gpu.uuid = r.uuid;
    // The UUID names the very GPU NVML checked; an index would go through CUDA's own
    // numbering (fastest first by default), which need not be NVML's.
    gpu.visible = !gpu.uuid.empty() ? gpu.uuid : std::to_string(gpu.index);
  }

  const std::string out = make_out_dir(o.out);
  const std::vector<planned_run> order = with_warmup(o.warmup_runs, abba_order(o.runs));
  const std::string started = utc_now("%Y-%m-%dT%H:%M:%SZ");
  std::fprintf(stderr, "diffscope ab: %d runs each, order %s, dumps in %s/\n", o.runs,
               order_text(order).c_str(), out.c_str());

  std::string head = "# diffscope ab: " + o.label[0] + " vs " + o.label[1] + "\n\n";
  head += "- " + A + ": " + md_code(o.command[0]) + "\n";
  head += "- " + B + ": " + md_code(o.command[1]) + "\n";
  head += "- Order: " + order_text(order) + " (" + std::to_string(o.runs) + " runs each)\n";
  if (gpu.checked)
    head += "- GPU: " + std::to_string(gpu.index) + (gpu.name.empty() ? "" : " " + gpu.name) +
            " (CUDA_VISIBLE_DEVICES=" + gpu.visible +
            "), idle before every run: no compute process, <= 32 MiB used, <= 5% utilisation\n";
  else
    head += "- GPU: not checked (--gpu none)\n";
  head += "- Timing mode: " + o.mode + " (DIFFSCOPE_MODE)" +
          (o.expect_bcg ? ", --expect-bcg" : "") + "\n";
  head += "- Started: " + started + "\n";

  std::vector<std::pair<std::string, std::string>> env = {{"DIFFSCOPE_MODE", o.mode}};
  if (gpu.checked) env.emplace_back("CUDA_VISIBLE_DEVICES", gpu.visible);

  auto write_report = [&](const std::string& text) {
    if (auto err = diffscope::detail::write_file_atomically(out + "/ab-report.md", text))
      throw failure(exit_usage, *err);
  };

  std::vector<perf_dump_data> dumps[2];
  std::string log;  // one line per run, for the report
  for (std::size_t k = 0; k < order.size(); ++k) {
    const planned_run& p = order[k];
    const std::string label = o.label[p.side];
    const std::string name = label + (p.warmup ? "-warmup" : "-") + std::to_string(p.index);
    const std::string dump = out + "/" + name + ".json";
    const std::string where = "before run " + std::to_string(k + 1) + " (" + name + ")";
    if (gpu.checked) {
      try {
        wait_idle(lib, gpu_count, false, gpu.index, o.idle_wait_s, where);
      } catch (const failure& f) {
        write_report(head + log + "\n**INVALID**: " + f.what() + "\n");
        throw;
      }
    }
    std::fprintf(stderr, "diffscope ab: run %zu/%zu: %s %s\n", k + 1, order.size(),
                 p.side ? "B" : "A", name.c_str());
    std::vector<std::string> argv = {"diffscope", "run", "--dump", dump};
    if (o.expect_bcg) argv.push_back("--expect-bcg");
    for (const char* s : {"--", "sh", "-c"}) argv.push_back(s);
    argv.push_back(o.command[p.side]);
    const int code = run_child("/proc/self/exe", argv, env);
    std::string problem;
    if (code == exit_gate_tripped)
      problem =
          "tripped the gate (exit 3: diffusers fallback or failed CUDA graph, see its "
          "`diffscope gate` line above): it is not evidence";
    else if (code != 0)
      problem = "failed (exit " + std::to_string(code) + ")";
    if (problem.empty() && !p.warmup) {
      try {
        dumps[p.side].push_back(load_dump(dump));
      } catch (const failure& f) {
        problem = std::string("left no readable dump (") + f.what() + ")";
      }
    }
    if (!problem.empty()) {
      const std::string msg = "run " + std::to_string(k + 1) + " (" + name + ") " + problem +
                              ". The comparison is invalid: no verdict; the remaining runs were "
                              "not started.";
      write_report(head + log + "\n**INVALID**: " + msg + "\n");
      std::fprintf(stderr, "diffscope ab: INVALID: %s\ndiffscope ab: report: %s/ab-report.md\n",
                   msg.c_str(), out.c_str());
      return exit_invalid;
    }
    log += "- Run " + std::to_string(k + 1) + ": " + name + ".json" +
           (p.warmup ? " (warm-up, not compared)" : "") + "\n";
  }

  // Every dump should say the requested mode; one that does not came from a collector that
  // ignored DIFFSCOPE_MODE.
  std::vector<const perf_dump_data*> all;
  for (const auto& side : dumps)
    for (const auto& d : side) all.push_back(&d);
  std::string modes;
  try {
    modes = check_modes(all, false);
  } catch (const failure& f) {
    const std::string msg = std::string("the runs' dumps ") + f.what();
    write_report(head + log + "\n**INVALID**: " + msg + "\n");
    std::fprintf(stderr, "diffscope ab: INVALID: %s\n", msg.c_str());
    return exit_invalid;
  }
  std::string note;
  if (!modes.empty() && modes != o.mode) {
    note = "- Note: DIFFSCOPE_MODE=" + o.mode + " was asked for but the dumps say " + modes +
           " (a collector that does not know the mode)\n";
    std::fprintf(stderr, "diffscope ab: warning: %s", note.c_str() + 8);
  }

  noise_options opt;
  opt.rel_tol_pct = o.threshold_pct;
  opt.abs_tol_ms = o.abs_tol_ms;
  const decision d = decide(dumps[0], dumps[1], o);
  const std::string report =
      head + "- Finished: " + utc_now("%Y-%m-%dT%H:%M:%SZ") + "\n" + note + "\n" +
      repeated_report(dumps[0], dumps[1], opt, modes.empty() ? "" : modes, A, B) + d.text;
  write_report(report);
  if (std::fwrite(report.data(), 1, report.size(), stdout) != report.size() ||
      std::fflush(stdout) != 0)
    throw failure(exit_usage, "cannot write to stdout");
  std::fprintf(stderr, "diffscope ab: report: %s/ab-report.md\n", out.c_str());
  return exit_ok;
}

}  // namespace diffscope::cli
