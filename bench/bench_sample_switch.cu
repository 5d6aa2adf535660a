// What sampled mode pays, in one process (no process-to-process spread): (1) the host time of
// switching CUPTI's tracing off and on (cupti_source::set_paused), with the GPU idle and with
// a kernel in flight (does a switch wait for the GPU?); (2) a launch-bound denoise loop paced
// like a Python one (host work before each launch), one request a loop, timed whole under each
// mode in interleaved rounds: no collector, perf, sampled, sampled tracing no step, profile,
// profile with CUPTI's records only. Prints the median loop time per mode and its change
// against no collector.
// Exits 77 without a GPU. Usage: bench_sample_switch [steps=28] [launches_per_step=400]
//                                                   [pace_ns=8000] [rounds=7]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/collector.hpp>
#include <diffscope/util/clock.hpp>

namespace ds = diffscope::detail;

namespace {

__global__ void empty_kernel() {}

__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

class null_sink : public ds::activity_sink {
 public:
  void on_launch(std::uint32_t, ds::launch_kind) noexcept override {}
  void on_launch_alias(std::uint32_t, std::uint32_t) noexcept override {}
  void on_graph_node_created(std::uint64_t) noexcept override {}
  void on_graph_node_cloned(std::uint64_t, std::uint64_t) noexcept override {}
  void on_gpu_op(const ds::gpu_op&) noexcept override {}
  void on_dropped(std::uint64_t) noexcept override {}
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void paced_launch(std::uint64_t pace_ns) {
  const std::uint64_t until = ds::now_ns() + pace_ns;
  while (ds::now_ns() < until) {
  }
  empty_kernel<<<1, 1>>>();
}

// One request: a stage of `steps` denoise steps of `launches` paced launches each, synchronised
// at the end. Returns its wall time in ms.
double denoise_loop(int steps, int launches, std::uint64_t pace_ns, int request) {
  cudaDeviceSynchronize();
  const std::uint64_t t0 = ds::now_ns();
  {
    DIFFSCOPE_REQUEST(("r" + std::to_string(request)).c_str());
    DIFFSCOPE_STAGE("DenoisingStage");
    for (int s = 0; s < steps; ++s) {
      DIFFSCOPE_DENOISE_STEP(s);
      {
        DIFFSCOPE_SCOPE("transformer");
        for (int i = 0; i < launches; ++i) paced_launch(pace_ns);
      }
    }
  }
  cudaDeviceSynchronize();
  return (ds::now_ns() - t0) / 1e6;
}

struct mode {
  const char* name;
  bool collect;
  diffscope::collector_options options;
};

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 28;
  const int launches = argc > 2 ? std::max(1, std::atoi(argv[2])) : 400;
  const std::uint64_t pace_ns = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 8000;
  const int rounds = argc > 4 ? std::max(1, std::atoi(argv[4])) : 7;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "SKIP: no usable GPU\n");
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  for (int i = 0; i < 1000; ++i) empty_kernel<<<1, 1>>>();  // context, module, clocks
  cudaDeviceSynchronize();

  // (1) Switches, alone.
  std::vector<double> off_idle, on_idle, off_busy, on_busy;
  {
    null_sink sink;
    ds::cupti_source source;
    const auto started = source.start(sink);
    if (!started.ok) {
      std::fprintf(stderr, "cupti_source::start: %s\n", started.reason.c_str());
      return 1;
    }
    int khz = 0;
    cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0);
    const long long cycles = static_cast<long long>(khz) * 20;  // ~20 ms
    for (int i = 0; i < 50; ++i) {
      const bool busy = i % 2 == 1;
      if (busy) spin_kernel<<<1, 1>>>(cycles);
      std::uint64_t t = ds::now_ns();
      source.set_paused(true);
      (busy ? off_busy : off_idle).push_back((ds::now_ns() - t) / 1e3);
      t = ds::now_ns();
      source.set_paused(false);
      (busy ? on_busy : on_idle).push_back((ds::now_ns() - t) / 1e3);
      for (int k = 0; k < 64; ++k) empty_kernel<<<1, 1>>>();
      cudaDeviceSynchronize();
    }
    source.flush(true);
    source.stop();
  }
  std::printf("bench_sample_switch: %s\n", prop.name);
  std::printf(
      "switch (us, median / max of 25): off idle %.1f / %.1f, on idle %.1f / %.1f, "
      "off with a kernel in flight %.1f / %.1f, on with a kernel in flight %.1f / %.1f\n",
      median(off_idle), *std::max_element(off_idle.begin(), off_idle.end()), median(on_idle),
      *std::max_element(on_idle.begin(), on_idle.end()), median(off_busy),
      *std::max_element(off_busy.begin(), off_busy.end()), median(on_busy),
      *std::max_element(on_busy.begin(), on_busy.end()));

  // (2) The loop under each mode, interleaved.
  std::vector<mode> modes;
  modes.push_back({"no collector", false, {}});
  diffscope::collector_options o;
  o.mode = diffscope::timing_mode::perf;
  modes.push_back({"perf", true, o});
  o.mode = diffscope::timing_mode::sampled;
  modes.push_back({"sampled (steps 1-2)", true, o});
  o.sample.first = o.sample.last = 1'000'000;
  modes.push_back({"sampled, no step traced", true, o});
  o = {};
  modes.push_back({"profile", true, o});
  o.cupti.launch_apis = ds::cupti_launch_apis::none;
  modes.push_back({"profile, records only", true, o});
  std::vector<std::vector<double>> ms(modes.size());
  std::vector<double> switch_ms(modes.size(), 0), switches(modes.size(), 0);
  int request = 0;
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t m = 0; m < modes.size(); ++m) {
      auto& c = diffscope::collector::instance();
      if (modes[m].collect && !c.start(modes[m].options)) {
        std::fprintf(stderr, "%s: no GPU timing\n", modes[m].name);
        return 1;
      }
      denoise_loop(steps, launches, pace_ns, request++);  // warm: the first request of a start
      ms[m].push_back(denoise_loop(steps, launches, pace_ns, request++));
      if (modes[m].collect) {
        const diffscope::results res = c.stop();
        switch_ms[m] = res.sampling.switch_ms;
        switches[m] = static_cast<double>(res.sampling.switches);
      }
    }
  }
  std::printf(
      "loop: 1 request, %d steps x %d launches paced %llu ns; median of %d interleaved "
      "rounds (the second request of each start)\n",
      steps, launches, static_cast<unsigned long long>(pace_ns), rounds);
  const double base = median(ms[0]);
  std::printf("%-28s %10s %9s %12s\n", "mode", "loop ms", "vs none", "switches");
  for (std::size_t m = 0; m < modes.size(); ++m) {
    const double v = median(ms[m]);
    std::printf("%-28s %10.2f %+8.2f%% %5.0f in %.2f ms (last run)\n", modes[m].name, v,
                100 * (v - base) / base, switches[m], switch_ms[m]);
  }
  return 0;
}
