// `diffscope ab` (docs/ab.md): A and B run A B B A ... on one idle GPU, each through `diffscope
// run`, compared by median with the repeated-run verdict, and the decision whether B beats A by
// the threshold (lib/ab.hpp).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/util/atomic_file.hpp>
#include <diffscope/util/utc_time.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "lib/ab.hpp"
#include "lib/child.hpp"
#include "lib/compare.hpp"
#include "lib/dump_reader.hpp"
#include "lib/gate_runner.hpp"
#include "lib/idle_gpu.hpp"
#include "lib/nvml.hpp"
#include "lib/repeated_runs.hpp"

namespace diffscope::cli {

namespace {

using namespace ab_detail;

constexpr const char* usage =
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

using diffscope::detail::utc_now;

/// OUT: created; an existing one must be empty (old dumps must not mix with new ones).
std::string make_out_dir(const std::string& given) {
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

std::string md_code(const std::string& s) {
  std::string t = s;
  for (char& c : t)
    if (c == '\n') c = ' ';
  return "`` " + t + " ``";
}

}  // namespace

/// `diffscope ab`.
int run_ab(const args& a) {
  using namespace ab_detail;
  const ab_args o = parse(a);
  if (o.help) {
    std::fputs(usage, stdout);
    return exit_ok;
  }
  const std::string A = side_name(o, 0), B = side_name(o, 1);

  // The GPU, before anything is created: no driver means no directory left behind.
  nvml::library lib;
  int gpu_count = 0;
  const gpu_choice gpu = choose_gpu(o, lib, gpu_count);

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
