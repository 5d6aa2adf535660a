// Host cost of the aggregator's launch path (activity_sink::on_launch, what every kernel
// launch pays in profile mode beside CUPTI's own callback dispatch), with the caches cold as
// in a Python loop: between two launches the program walks `evict` KiB of memory, as the
// interpreter and PyTorch's dispatcher do in the ~10 us between two launches of a
// launch-bound loop. Launches go in steps of 100 inside a denoise step and a block scope;
// each step is closed (its launches taken into the tables), its records delivered, and a
// new one opened.
//
// Prints, for each eviction size, the median over steps of the ns a launch took, minus the
// same timer around nothing (measured under the same eviction). CPU only.
// Usage: bench_launch_path [steps=300] [evict KiB list, default 0,1024,4096]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/util/clock.hpp>

namespace ds = diffscope::detail;

namespace {

constexpr int launches_per_step = 100;

// Touches every cache line of `buf` once: what stands in for the host work between launches.
void evict(std::vector<std::uint64_t>& buf) {
  for (std::size_t i = 0; i < buf.size(); i += 8) buf[i] += i;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Median ns per launch over `steps` steps; `launch` false times the timer alone.
double run(ds::activity_sink& sink, ds::aggregator& agg, std::vector<std::uint64_t>& buf, int steps,
           bool launch, std::uint32_t& corr) {
  std::vector<double> per_step;
  per_step.reserve(static_cast<std::size_t>(steps));
  const std::uint32_t step_name = agg.intern("denoise_step");
  const std::uint32_t block_name = agg.intern("block");
  for (int s = 0; s < steps; ++s) {
    agg.push(ds::range_domain::diffscope, step_name, diffscope::category::denoise_step, s, 0);
    agg.push(ds::range_domain::diffscope, block_name, diffscope::category::other, std::nullopt, 0);
    std::uint64_t ns = 0;
    for (int k = 0; k < launches_per_step; ++k) {
      evict(buf);
      const std::uint64_t t0 = ds::now_ns();
      if (launch) sink.on_launch(corr++, ds::launch_kind::kernel);
      ns += ds::now_ns() - t0;
    }
    agg.pop(ds::range_domain::diffscope, 0);
    agg.pop(ds::range_domain::diffscope, 0);
    if (launch) {  // the step's records, as CUPTI's thread delivers them: keeps tables small
      for (std::uint32_t c = corr - launches_per_step; c != corr; ++c) {
        ds::gpu_op op;
        op.correlation_id = c;
        op.start_ns = 1000 + c;
        op.end_ns = 2000 + c;
        op.name = "k";
        sink.on_gpu_op(op);
      }
    }
    per_step.push_back(static_cast<double>(ns) / launches_per_step);
  }
  return median(per_step);
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 300;
  std::vector<std::size_t> sizes_kib = {0, 1024, 4096};
  if (argc > 2) {
    sizes_kib.clear();
    std::stringstream list(argv[2]);
    for (std::string item; std::getline(list, item, ',');)
      sizes_kib.push_back(std::strtoull(item.c_str(), nullptr, 10));
  }
  if (steps <= 0 || sizes_kib.empty()) {
    std::fprintf(stderr, "usage: bench_launch_path [steps>0] [evict KiB,...]\n");
    return 2;
  }
  std::printf("%-12s %-8s %14s %14s %14s\n", "evict KiB", "trace", "timer ns", "launch ns",
              "on_launch ns");
  for (const bool trace : {false, true}) {
    for (const std::size_t kib : sizes_kib) {
      ds::aggregator_options o;
      o.keep_trace = trace;
      ds::aggregator agg(o);
      std::vector<std::uint64_t> buf(std::max<std::size_t>(kib * 1024 / 8, 8), 1);
      std::uint32_t corr = 1;
      run(agg, agg, buf, steps / 10 + 1, true, corr);  // warm-up: the ring, the instances
      const double timer = run(agg, agg, buf, steps, false, corr);
      const double with = run(agg, agg, buf, steps, true, corr);
      std::printf("%-12zu %-8s %14.1f %14.1f %14.1f\n", kib, trace ? "on" : "off", timer, with,
                  with - timer);
    }
  }
  return 0;
}
