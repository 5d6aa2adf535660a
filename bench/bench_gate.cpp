// Throughput of the gate scanner (sglang/gate_scanner.hpp over util/pattern_scanner.hpp) on
// realistic SGLang-style log text, fed in 64 KiB chunks as a pipe delivers it, plain and with
// ANSI colour codes. Plain main; prints GB/s (1e9 bytes per second), the median of 5 passes
// over ~1 GB each.
//   build/bench/bench_gate [megabytes=1024] [passes=5]
#include <diffscope/sglang/gate.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

// Lines shaped like sglang.multimodal_gen's logs: timestamps, levels, module paths, tqdm
// progress redrawn with CR, warnings, the odd long JSON-ish line.
std::string make_log(std::size_t bytes, bool colour, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const char* levels[] = {"INFO", "INFO", "INFO", "DEBUG", "WARNING"};
  const char* modules[] = {"pipeline_executor.py",      "denoising.py",
                           "model_loader.py",           "scheduler_utils.py",
                           "composed_pipeline_base.py", "gpu_worker.py"};
  const char* messages[] = {
      "Denoising step %d/50 finished, latents shape [1, 16, 21, 90, 160]",
      "Running TextEncodingStage with batch size 1 on cuda:0",
      "Loaded transformer weights from /models/Wan2.1-T2V-1.3B in %d ms",
      "Memory: allocated 23815.42 MiB, reserved 24576.00 MiB, peak 25011.37 MiB",
      "Attention backend: FlashAttention 3 (head_dim=128, num_heads=%d)",
      "Sampling params: {\"num_inference_steps\": 50, \"guidance_scale\": 5.0, \"seed\": %d}",
      "Scheduler FlowUniPCMultistepScheduler set_timesteps(50), shift=%d.0",
      "Request 3f1c2a9e-7b41-4c55-9a1d-%012d completed",
      "Using SGLang native backend for WanTransformer3DModel",
  };
  std::string out;
  out.reserve(bytes + 4096);
  char msg[512], line[1024];
  int step = 0;
  while (out.size() < bytes) {
    const unsigned r = static_cast<unsigned>(rng());
    if (r % 17 == 0) {  // a tqdm bar redrawn in place
      for (int k = 0; k < 5; ++k) {
        const int pct = (step++ % 50) * 2;
        std::snprintf(line, sizeof line, "\r%3d%%|%-40.*s| %d/50 [00:%02d<00:%02d, 1.23it/s]", pct,
                      pct * 40 / 100, "########################################", pct / 2, pct % 60,
                      (100 - pct) % 60);
        out += line;
      }
      out += '\n';
      continue;
    }
    std::snprintf(msg, sizeof msg, messages[r % 9], static_cast<int>(rng() % 1000));
    const char* level = levels[(r >> 8) % 5];
    const char* module = modules[(r >> 12) % 6];
    const int ms = static_cast<int>((r >> 16) % 1000);
    if (colour)
      std::snprintf(line, sizeof line,
                    "\x1b[32m[2025-12-18 09:54:57.%03d]\x1b[0m \x1b[1;34m%-7s\x1b[0m "
                    "\x1b[2m%s:%d\x1b[0m %s\n",
                    ms, level, module, static_cast<int>(r % 900), msg);
    else
      std::snprintf(line, sizeof line, "[2025-12-18 09:54:57.%03d] %-7s %s:%d %s\n", ms, level,
                    module, static_cast<int>(r % 900), msg);
    out += line;
  }
  // The end of a BCG run: the gate must have seen these at the end of every pass.
  out += colour ? "\x1b[32m[Diffusion BCG] captured 3 graphs\x1b[0m\n"
                : "[Diffusion BCG] captured 3 graphs\n";
  out += "Falling back to diffusers backend for this request\n";
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run(const char* name, std::size_t bytes, int passes, bool colour) {
  const std::string log = make_log(bytes, colour, colour ? 2 : 1);
  constexpr std::size_t chunk = 64 * 1024;
  std::vector<double> rates;
  for (int p = 0; p < passes; ++p) {
    diffscope::gate_scanner scanner(diffscope::gate_options{true, 512, {}});
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < log.size(); i += chunk)
      scanner.feed(log.data() + i, std::min(chunk, log.size() - i));
    scanner.finish();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const diffscope::gate_verdict v = scanner.verdict();
    if (v.kind != diffscope::verdict_kind::fallback || !v.bcg_captured) {
      std::fprintf(stderr, "bench_gate: wrong verdict: %s\n", diffscope::verdict_text(v).c_str());
      std::exit(1);
    }
    rates.push_back(static_cast<double>(log.size()) / s / 1e9);
  }
  std::printf("%-22s %8.1f MB  %6.2f GB/s median of %d (min %.2f, max %.2f)\n", name,
              static_cast<double>(log.size()) / 1e6, median(rates), passes,
              *std::min_element(rates.begin(), rates.end()),
              *std::max_element(rates.begin(), rates.end()));
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mb = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  const int passes = argc > 2 ? std::atoi(argv[2]) : 5;
  run("plain log lines", mb * 1000 * 1000, passes, false);
  run("ANSI-coloured lines", mb * 1000 * 1000, passes, true);
  return 0;
}
