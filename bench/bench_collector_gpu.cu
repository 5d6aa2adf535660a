// Collector costs on a GPU machine (exits 77 without a GPU):
//  1. host cost of a scope enter+exit with the collector attached and collecting (no GPU
//     work inside), for a registered-name scope, a denoise step and a runtime-name scope;
//  2. collector memory growth (RSS) over 1,000,000 kernels in 1,000 steps, no trace.
// The per-launch cost against bare CUPTI tracing is bench_cupti_launch's (d) row.
// Usage: bench_collector_gpu [kernels=1000000]
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <diffscope/collector.hpp>

namespace {

__global__ void empty_kernel() {}

double rss_mb() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  f >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) /
         (1024.0 * 1024.0);
}

template <class F>
double ns_per_iteration(F&& body, int n) {
  double best = 1e300;
  for (int rep = 0; rep < 5; ++rep) {
    const std::uint64_t t0 = diffscope::detail::now_ns();
    for (int i = 0; i < n; ++i) body(i);
    best = std::min(best, static_cast<double>(diffscope::detail::now_ns() - t0) / n);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const long kernels = argc > 1 ? std::max(1000L, std::atol(argv[1])) : 1'000'000L;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "SKIP: no usable GPU\n");
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  cudaFree(nullptr);  // create the context outside the measurements
  auto& c = diffscope::collector::instance();

  // 1. Scope cost with the collector collecting: two clock reads plus our bookkeeping.
  constexpr int n = 1'000'000;
  volatile std::uint64_t sink_ns = 0;
  const double clock_now = ns_per_iteration([&](int) { sink_ns = diffscope::detail::now_ns(); }, n);
  const double clock_steady =
      ns_per_iteration([&](int) { sink_ns = diffscope::detail::steady_ns(); }, n);
  const double idle_scope = ns_per_iteration([](int) { DIFFSCOPE_SCOPE("bench_scope"); }, n);
  if (!c.start(diffscope::collector_options{})) {
    std::fprintf(stderr, "collector has no GPU timing: CUPTI unavailable\n");
    return 1;
  }
  const double scope = ns_per_iteration([](int) { DIFFSCOPE_SCOPE("bench_scope"); }, n);
  const double step = ns_per_iteration([](int i) { DIFFSCOPE_DENOISE_STEP(i & 63); }, n);
  const double runtime_name =
      ns_per_iteration([](int) { diffscope::scope s{"bench_runtime_name"}; }, n);
  c.stop();

  // 1b. Perf mode: a timed scope (two event records on the legacy stream, paired and
  // drained on the host), an untimed scope, and the bare runtime event record for scale.
  diffscope::collector_options perf;
  perf.mode = diffscope::timing_mode::perf;
  if (!c.start(perf)) {
    std::fprintf(stderr, "perf mode has no GPU timing\n");
    return 1;
  }
  constexpr int n_timed = 100'000;
  const double perf_step = ns_per_iteration([](int i) { DIFFSCOPE_DENOISE_STEP(i & 63); }, n_timed);
  const double perf_untimed = ns_per_iteration([](int) { DIFFSCOPE_SCOPE("bench_scope"); }, n);
  const auto perf_results = c.stop();
  cudaEvent_t ev;
  cudaEventCreate(&ev);
  const double event_record = ns_per_iteration([&](int) { cudaEventRecord(ev, 0); }, n_timed);
  cudaEventSynchronize(ev);
  cudaEventDestroy(ev);

  // 1c. Perf mode in a launch stream: a timed step around 10 empty kernels, wall time per
  // step to the last kernel's end (host launch cost and GPU-side cost of the events both
  // show), with the events on the kernels' stream, on another stream, and with no collector.
  cudaStream_t ks, other;
  cudaStreamCreateWithFlags(&ks, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking);
  const auto loop_us = [&](int variant) {  // 0 off, 1 events on ks, 2 events on `other`
    if (variant > 0) {
      c.start(perf);
      diffscope::set_timing_stream(variant == 1 ? ks : other);
    }
    double best = 1e300;
    for (int rep = 0; rep < 5; ++rep) {
      cudaStreamSynchronize(ks);
      const std::uint64_t t0 = diffscope::detail::now_ns();
      for (int i = 0; i < 2000; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        for (int k = 0; k < 10; ++k) empty_kernel<<<1, 1, 0, ks>>>();
      }
      cudaStreamSynchronize(ks);
      best = std::min(best, static_cast<double>(diffscope::detail::now_ns() - t0) / 2000 / 1e3);
    }
    if (variant > 0) {
      c.stop();
      diffscope::set_timing_stream(nullptr);
    }
    return best;
  };
  const double step_off = loop_us(0), step_same = loop_us(1), step_other = loop_us(2);

  // 2. Memory growth over `kernels` kernels in steps of 1000, no trace.
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  c.start(diffscope::collector_options{});
  const double rss_before = rss_mb();
  double rss_peak = rss_before, rss_tenth = rss_before;
  const long steps = kernels / 1000;
  for (long st = 0; st < steps; ++st) {
    if (st == steps / 10) {
      cudaStreamSynchronize(s);
      rss_tenth = rss_mb();
    }
    DIFFSCOPE_DENOISE_STEP(st);
    for (int k = 0; k < 1000; ++k) {
      DIFFSCOPE_SCOPE("kernel_scope");
      empty_kernel<<<1, 1, 0, s>>>();
    }
    if (st % 50 == 0) rss_peak = std::max(rss_peak, rss_mb());
  }
  cudaStreamSynchronize(s);
  rss_peak = std::max(rss_peak, rss_mb());
  const auto r = c.stop();
  const double rss_after = rss_mb();
  std::uint64_t counted = 0;
  for (const auto& sc : r.scopes)
    if (sc.path == "denoise_step") counted = sc.gpu.kernels;

  std::printf("bench_collector_gpu: %s\n", prop.name);
  std::printf("%-58s %10s\n", "scope enter+exit (host, best of 5 x 1e6)", "ns");
  std::printf("%-58s %10.1f\n", "clock read: detail::now_ns()", clock_now);
  std::printf("%-58s %10.1f\n", "clock read: steady_clock", clock_steady);
  std::printf("%-58s %10.1f\n", "DIFFSCOPE_SCOPE, collector linked but not started", idle_scope);
  std::printf("%-58s %10.1f\n", "DIFFSCOPE_SCOPE, collector collecting", scope);
  std::printf("%-58s %10.1f\n", "DIFFSCOPE_DENOISE_STEP, collector collecting", step);
  std::printf("%-58s %10.1f\n", "runtime-name scope, collector collecting", runtime_name);
  std::printf("%-58s %10.1f\n", "perf mode: DIFFSCOPE_DENOISE_STEP, timed (best of 5 x 1e5)",
              perf_step);
  std::printf("%-58s %10.1f\n", "perf mode: DIFFSCOPE_SCOPE, not timed", perf_untimed);
  std::printf("%-58s %10.1f\n", "cudaEventRecord alone, legacy stream (best of 5 x 1e5)",
              event_record);
  std::printf(
      "perf mode, step of 10 empty kernels (us per step, best of 5 x 2000): no collector %.2f, "
      "events on the kernels' stream %.2f, events on another stream %.2f\n",
      step_off, step_same, step_other);
  std::printf(
      "perf mode: %llu scopes timed, %.1f ns mean host cost of our two records each, "
      "failures %llu, unresolved %llu\n",
      static_cast<unsigned long long>(perf_results.overhead.timed_scopes),
      perf_results.overhead.per_timed_scope_ns,
      static_cast<unsigned long long>(perf_results.faults.timing_failures),
      static_cast<unsigned long long>(perf_results.faults.timing_unresolved));
  // The first tenth holds the one-off allocations (CUPTI's activity buffers and its own
  // per-context state, our pools); what grows after it is what grows with the run.
  std::printf(
      "memory over %ld kernels in %ld steps (no trace): RSS %.1f MB at start, %.1f MB after the "
      "first tenth, peak %.1f MB: +%.1f MB from start, +%.1f MB over the last nine tenths; "
      "%.1f MB after stop; kernels attributed to steps: %llu\n",
      kernels, steps, rss_before, rss_tenth, rss_peak, rss_peak - rss_before, rss_peak - rss_tenth,
      rss_after, static_cast<unsigned long long>(counted));
  std::printf("faults: dropped %llu, unattributed %llu, late %llu\n",
              static_cast<unsigned long long>(r.faults.dropped_records),
              static_cast<unsigned long long>(r.faults.unattributed_records),
              static_cast<unsigned long long>(r.faults.late_records));
  return 0;
}
