// The GPU `diffscope ab` runs on: chosen through NVML (lib/nvml.hpp) and waited for until it is
// idle before every run (docs/ab.md).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../cli.hpp"
#include "ab.hpp"
#include "compare.hpp"
#include "nvml.hpp"

namespace diffscope::cli {

namespace ab_detail {

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

/// The GPU of --gpu, before anything is created (no driver means no directory left behind):
/// none (not checked), an NVML index, or the first idle GPU (auto). Opens `lib` and sets
/// `gpu_count` unless none; failure(exit_usage) when NVML cannot say, wait_idle's when no GPU
/// becomes idle.
inline gpu_choice choose_gpu(const ab_args& o, nvml::library& lib, int& gpu_count) {
  gpu_choice gpu;
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
  return gpu;
}

}  // namespace ab_detail

}  // namespace diffscope::cli
