// toy_dit: a small DiT-style text-to-image denoise loop, annotated with every diffscope
// macro. Runs on the GPU when one is usable and on the CPU (same math, host code) otherwise.
//
//   toy_dit [--steps N] [--blocks N] [--tokens T] [--dim D] [--heads H] [--streams 1|2]
//           [--cpu] [--dump FILE] [--trace FILE] [--summary] [--quiet] [--check]
//           [--step-events] [--repeat N [--paired-timing]] [--help]
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <diffscope/scope.hpp>
#include <diffscope/util/atomic_file.hpp>
#ifdef DIFFSCOPE_TOY_DIT_WITH_COLLECTOR
// Makes the collector this program's NVTX tool: it starts at the first range when
// DIFFSCOPE_DUMP / DIFFSCOPE_TRACE / DIFFSCOPE_SUMMARY are set and writes them at exit.
#include <diffscope/collector.hpp>
#endif

#include "cpu_backend.hpp"
#include "gpu_backend.cuh"
#include "model.hpp"
#include "pipeline.hpp"

namespace {

using toy_dit::config;

constexpr char usage_text[] =
    "usage: toy_dit [options]\n"
    "A small DiT-style denoise loop annotated with diffscope (GPU if usable, else CPU).\n"
    "\n"
    "model:\n"
    "  --steps N      denoise steps (default 10)\n"
    "  --blocks N     transformer blocks (default 4)\n"
    "  --tokens T     latent tokens (default 256)\n"
    "  --dim D        model width (default 256)\n"
    "  --heads H      attention heads; D/H must be even and at most 128 (default 4)\n"
    "  --streams S    1, or 2 to run the MLP of odd blocks on a second stream (default 1)\n"
    "execution:\n"
    "  --cpu          use the CPU path even when a GPU is usable\n"
    "  --check        compare the GPU path with the CPU reference at tiny sizes (or the\n"
    "                 sizes given); without a GPU check that the CPU path is deterministic.\n"
    "                 Exit 1 on mismatch\n"
    "diffscope outputs (set DIFFSCOPE_DUMP / DIFFSCOPE_TRACE / DIFFSCOPE_SUMMARY for the\n"
    "collector, which writes them at exit when it is linked in):\n"
    "  --dump FILE    SGLang-compatible perf dump\n"
    "  --trace FILE   Chrome trace (Perfetto)\n"
    "  --summary      console summary\n"
    "other:\n"
    "  --quiet        print only the checksum lines\n"
    "  --step-events  GPU: time each denoise step with CUDA events, print step_ms lines\n"
    "  --repeat N     run the pipeline N times, each a request range; wall_ms is their\n"
    "                 median, the outputs and step_ms lines are the last run's (default 1)\n"
    "  --paired-timing  with --repeat >= 2 and DIFFSCOPE_MODE=perf: pause perf-mode timing\n"
    "                 in every other run (A B B A) and print wall_ms_timed / wall_ms_untimed\n"
    "                 medians: what the timing costs, measured within one process\n"
    "  --help         this text\n"
    "Exit status: 0 ok, 1 runtime error or --check mismatch, 2 bad arguments.\n";

struct options {
  config cfg;
  bool cpu = false, check = false, quiet = false, summary = false, help = false;
  bool paired_timing = false;
  int repeat = 1;
  bool size_given = false;  // any of --tokens/--dim/--heads/--blocks/--steps
  std::string dump, trace;
};

/// Strict integer parse: the whole string, base 10, within [lo, hi].
bool parse_int(const char* s, long lo, long hi, int& out) {
  if (s == nullptr || *s == '\0') return false;
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  out = static_cast<int>(v);
  return true;
}

/// Fills `o` from argv; returns "" or the message for a bad command line.
std::string parse_args(int argc, char** argv, options& o) {
  struct int_option {
    const char* name;
    int* target;
    long lo, hi;
    bool is_size;
  };
  const int_option int_options[] = {
      {"--steps", &o.cfg.steps, 1, 10000, true},   {"--blocks", &o.cfg.blocks, 1, 256, true},
      {"--tokens", &o.cfg.tokens, 1, 16384, true}, {"--dim", &o.cfg.dim, 2, 4096, true},
      {"--heads", &o.cfg.heads, 1, 4096, true},    {"--streams", &o.cfg.streams, 1, 2, false},
      {"--repeat", &o.repeat, 1, 1000, false},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const char* inline_value = nullptr;  // --name=value
    const std::size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = argv[i] + eq + 1;
      arg.resize(eq);
    }
    // The value of an option that takes one: inline, or the next argument.
    const auto value = [&]() -> const char* {
      if (inline_value) return inline_value;
      if (i + 1 < argc) return argv[++i];
      return nullptr;
    };
    const auto flag = [&](bool& target) -> std::string {
      if (inline_value) return arg + " takes no value";
      target = true;
      return "";
    };

    bool matched = false;
    for (const int_option& io : int_options) {
      if (arg != io.name) continue;
      matched = true;
      const char* v = value();
      if (v == nullptr) return arg + " needs a value";
      if (!parse_int(v, io.lo, io.hi, *io.target)) {
        return arg + ": '" + v + "' is not an integer in [" + std::to_string(io.lo) + ", " +
               std::to_string(io.hi) + "]";
      }
      o.size_given = o.size_given || io.is_size;
    }
    if (matched) continue;

    std::string err;
    if (arg == "--cpu") {
      err = flag(o.cpu);
    } else if (arg == "--check") {
      err = flag(o.check);
    } else if (arg == "--quiet") {
      err = flag(o.quiet);
    } else if (arg == "--step-events") {
      err = flag(o.cfg.step_events);
    } else if (arg == "--summary") {
      err = flag(o.summary);
    } else if (arg == "--paired-timing") {
      err = flag(o.paired_timing);
    } else if (arg == "--help" || arg == "-h") {
      err = flag(o.help);
    } else if (arg == "--dump" || arg == "--trace") {
      const char* v = value();
      if (v == nullptr || *v == '\0') return arg + " needs a file name";
      // Written at exit: say now what is wrong with the path rather than after the run (a
      // path with {pid} or {request} is known only then).
      if (std::strchr(v, '{') == nullptr)
        if (auto bad = diffscope::detail::check_output_path(v)) return arg + ": " + *bad;
      (arg == "--dump" ? o.dump : o.trace) = v;
    } else {
      return "unknown argument '" + std::string(argv[i]) + "'";
    }
    if (!err.empty()) return err;
  }

  if (o.paired_timing && o.repeat < 2) return "--paired-timing needs --repeat 2 or more";
#ifndef DIFFSCOPE_TOY_DIT_WITH_COLLECTOR
  if (o.paired_timing) return "--paired-timing needs the collector (this build has none)";
#endif
  const config& c = o.cfg;
  if (c.dim % c.heads != 0) {
    return "--dim " + std::to_string(c.dim) + " is not a multiple of --heads " +
           std::to_string(c.heads);
  }
  if (c.head_dim() % 2 != 0 || c.head_dim() > toy_dit::max_head_dim) {
    return "head dimension (--dim / --heads) is " + std::to_string(c.head_dim()) +
           "; it must be even and at most " + std::to_string(toy_dit::max_head_dim);
  }
  return "";
}

/// What the collector reads at the first range, so it must be set before any range opens.
void export_collector_settings(const options& o) {
  if (!o.dump.empty()) setenv("DIFFSCOPE_DUMP", o.dump.c_str(), 1);
  if (!o.trace.empty()) setenv("DIFFSCOPE_TRACE", o.trace.c_str(), 1);
  if (o.summary) setenv("DIFFSCOPE_SUMMARY", "1", 1);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct checksum {
  double sum = 0, abs_sum = 0;
};

checksum checksum_of(const std::vector<float>& v) {
  checksum c;
  for (float x : v) {
    c.sum += x;
    c.abs_sum += std::fabs(x);
  }
  return c;
}

std::string describe(const config& c) {
  return "tokens=" + std::to_string(c.tokens) + " dim=" + std::to_string(c.dim) +
         " heads=" + std::to_string(c.heads) + " head_dim=" + std::to_string(c.head_dim()) +
         " mlp_hidden=" + std::to_string(c.hidden()) + " blocks=" + std::to_string(c.blocks) +
         " steps=" + std::to_string(c.steps) + " streams=" + std::to_string(c.streams);
}

toy_dit::run_result run_cpu(const config& cfg) {
  toy_dit::cpu_backend be;
  return toy_dit::run_pipeline(be, cfg, toy_dit::make_weights(cfg, toy_dit::default_seed),
                               toy_dit::default_seed);
}

toy_dit::run_result run_gpu(const config& cfg) {
  toy_dit::gpu_backend be(cfg.streams, cfg.step_events);
  return toy_dit::run_pipeline(be, cfg, toy_dit::make_weights(cfg, toy_dit::default_seed),
                               toy_dit::default_seed);
}

struct difference {
  double max_abs_diff = 0, max_abs_ref = 0;
  bool same_size = true;
};

difference compare(const std::vector<float>& ref, const std::vector<float>& got) {
  difference d;
  d.same_size = ref.size() == got.size();
  if (!d.same_size) return d;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(ref[i]) - got[i]);
    // NaN never compares greater: count it as an infinite difference.
    d.max_abs_diff = std::isnan(diff) ? INFINITY : std::fmax(d.max_abs_diff, diff);
    d.max_abs_ref = std::fmax(d.max_abs_ref, std::fabs(static_cast<double>(ref[i])));
  }
  return d;
}

/// Compares two runs; tolerance 0 means bit-identical. Prints one line per output.
bool report_comparison(const char* what, const toy_dit::run_result& ref,
                       const toy_dit::run_result& got, double rel_tol) {
  bool ok = true;
  struct named_output {
    const char* name;
    const std::vector<float>& ref;
    const std::vector<float>& got;
  };
  const named_output outputs[] = {{"latent", ref.latent, got.latent},
                                  {"image", ref.decoded, got.decoded}};
  for (const named_output& out : outputs) {
    const difference d = compare(out.ref, out.got);
    const double tol = rel_tol * std::fmax(1.0, d.max_abs_ref);
    const bool pass = d.same_size && (rel_tol == 0 ? out.ref == out.got : d.max_abs_diff <= tol);
    std::printf("check: %-22s %-6s max_abs_diff=%.3e tol=%.3e %s\n", what, out.name, d.max_abs_diff,
                tol, pass ? "ok" : "MISMATCH");
    ok = ok && pass;
  }
  return ok;
}

int run_check(const options& o, bool gpu, const std::string& gpu_reason) {
  std::vector<config> configs;
  if (o.size_given) {
    configs.push_back(o.cfg);
  } else {
    // Tiny shapes that leave partial tiles everywhere and hit each attention variant.
    config a;
    a.tokens = 40, a.dim = 96, a.heads = 2, a.blocks = 2, a.steps = 3;  // head_dim 48
    config b;
    b.tokens = 33, b.dim = 64, b.heads = 2, b.blocks = 2, b.steps = 2;  // head_dim 32
    config c;
    c.tokens = 70, c.dim = 256, c.heads = 2, c.blocks = 1, c.steps = 2;  // head_dim 128
    configs = {a, b, c};
  }
  if (gpu) {
    std::printf("check: GPU path against the CPU reference (tolerance 1e-3 relative)\n");
  } else {
    std::printf("check: no GPU path (%s): CPU path run twice, must be bit-identical\n",
                gpu_reason.c_str());
  }
  bool ok = true;
  for (config cfg : configs) {
    cfg.streams = 1;
    std::printf("check: %s\n", describe(cfg).c_str());
    const toy_dit::run_result ref = run_cpu(cfg);
    if (gpu) {
      const toy_dit::run_result one = run_gpu(cfg);
      ok = report_comparison("cpu vs gpu", ref, one, 1e-3) && ok;
      cfg.streams = 2;
      // Same kernels in the same order on the same data: two streams must not change a bit.
      ok = report_comparison("gpu 1 vs 2 streams", one, run_gpu(cfg), 0) && ok;
    } else {
      ok = report_comparison("cpu vs cpu", ref, run_cpu(cfg), 0) && ok;
    }
  }
  std::printf("check: %s\n", ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  const std::string error = parse_args(argc, argv, o);
  if (!error.empty()) {
    std::fprintf(stderr, "toy_dit: %s\nrun 'toy_dit --help' for usage\n", error.c_str());
    return 2;
  }
  if (o.help) {
    std::fputs(usage_text, stdout);
    return 0;
  }
  export_collector_settings(o);

  try {
    std::string device_name, gpu_reason = "--cpu given";
    if (!o.cpu) gpu_reason = toy_dit::probe_gpu(device_name);
    const bool gpu = gpu_reason.empty();
    if (!o.cpu && !gpu && !device_name.empty() && !o.quiet) {
      // A device exists but cannot run this binary (e.g. built for another architecture).
      std::fprintf(stderr, "toy_dit: warning: falling back to the CPU: %s\n", gpu_reason.c_str());
    }
    if (o.check) return run_check(o, gpu, gpu_reason);

    // --repeat: one request range per run; --paired-timing: timed in runs 0, 3, 4, 7, ...
    toy_dit::run_result r;
    std::vector<double> walls, timed_walls, untimed_walls;
    for (int i = 0; i < o.repeat; ++i) {
      const bool timed = i % 4 == 0 || i % 4 == 3;
#ifdef DIFFSCOPE_TOY_DIT_WITH_COLLECTOR
      if (o.paired_timing) diffscope::set_timing_paused(!timed);
#endif
      if (o.repeat > 1) {
        DIFFSCOPE_REQUEST(static_cast<std::int64_t>(i));
        r = gpu ? run_gpu(o.cfg) : run_cpu(o.cfg);
      } else {
        r = gpu ? run_gpu(o.cfg) : run_cpu(o.cfg);
      }
      walls.push_back(r.wall_ms);
      (timed ? timed_walls : untimed_walls).push_back(r.wall_ms);
    }
#ifdef DIFFSCOPE_TOY_DIT_WITH_COLLECTOR
    if (o.paired_timing) diffscope::set_timing_paused(false);
#endif
    const checksum lc = checksum_of(r.latent), ic = checksum_of(r.decoded);
    if (!o.quiet) {
      if (gpu) {
        std::printf("device: %s\n", device_name.c_str());
      } else if (o.cpu) {
        std::printf("device: CPU (--cpu)\n");
      } else {
        std::printf("device: CPU (no CUDA device: %s)\n", gpu_reason.c_str());
      }
      std::printf("config: %s%s\n", describe(o.cfg).c_str(),
                  !gpu && o.cfg.streams > 1 ? " (streams ignored on the CPU)" : "");
      std::printf("wall_ms: %.3f\n", median(walls));
      if (o.repeat > 1) {
        std::printf("wall_ms_all:");
        for (double w : walls) std::printf(" %.3f", w);
        std::printf("\n");
      }
      if (o.paired_timing) {
        std::printf("wall_ms_timed: %.3f\n", median(timed_walls));
        std::printf("wall_ms_untimed: %.3f\n", median(untimed_walls));
      }
    }
    for (std::size_t i = 0; i < r.step_ms.size(); ++i)
      std::printf("step_ms: %zu %.6f\n", i, r.step_ms[i]);
    std::printf("latent_checksum: sum=%.9e abs_sum=%.9e\n", lc.sum, lc.abs_sum);
    std::printf("image_checksum: sum=%.9e abs_sum=%.9e\n", ic.sum, ic.abs_sum);
#ifdef DIFFSCOPE_TOY_DIT_WITH_COLLECTOR
    // Write the outputs now rather than at exit, so a lost dump or trace fails the run.
    std::fflush(stdout);
    diffscope::collector::instance().stop();
    if (!diffscope::collector::instance().output_errors().empty()) return 2;
#endif
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "toy_dit: error: %s\n", e.what());
    return 1;
  }
}
