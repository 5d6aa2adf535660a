// Host cost of a kernel launch under CUPTI: (a) no CUPTI, (b) bare CUPTI concurrent-kernel
// activity tracing, (c) the diffscope cupti_source (activity tracing + launch and graph
// callbacks) with a sink that does nothing, (d) the whole collector (the aggregator as sink),
// launching inside a scope. Prints ns per launch and the ratios c/b and d/b.
// Only the host time of the launch calls is measured: launches go in batches short enough
// not to fill the launch queue, and the wait for the GPU between batches is not timed.
// A second table paces the launches like a Python loop does (host work between launches, no
// wait for the GPU until the end), so CUPTI's buffers fill and are handed to the sink while
// launches go on: its figure is wall time per launch, to the end of the GPU's work, and shows
// what the records' processing costs the launching thread (a lock both sides take, CPU time).
// Exits 77 without a GPU. Usage: bench_cupti_launch [launches=100000] [pace_ns=8000]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>
#include <cupti.h>

#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/collector.hpp>
#include <diffscope/util/clock.hpp>

namespace ds = diffscope::detail;

namespace {

__global__ void empty_kernel() {}

constexpr int batch = 256;  // well below the launch queue depth: launches never wait on the GPU

// Host ns per launch over `launches` launches; the best of `repeats` runs.
double ns_per_launch(int launches, int repeats) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    std::uint64_t host_ns = 0;
    for (int done = 0; done < launches; done += batch) {
      const int n = std::min(batch, launches - done);
      const std::uint64_t t0 = ds::now_ns();
      for (int i = 0; i < n; ++i) empty_kernel<<<1, 1>>>();
      host_ns += ds::now_ns() - t0;
      if (cudaDeviceSynchronize() != cudaSuccess) {
        std::fprintf(stderr, "launch failed: %s\n", cudaGetErrorString(cudaGetLastError()));
        std::exit(1);
      }
    }
    best = std::min(best, double(host_ns) / launches);
  }
  return best;
}

// Wall ns per launch of `launches` launches paced `pace_ns` of host work apart (a spin on the
// clock, as a Python op's own overhead), with no wait for the GPU until the last one.
double paced_ns_per_launch(int launches, std::uint64_t pace_ns) {
  if (cudaDeviceSynchronize() != cudaSuccess) std::exit(1);
  const std::uint64_t t0 = ds::now_ns();
  for (int i = 0; i < launches; ++i) {
    const std::uint64_t until = ds::now_ns() + pace_ns;
    while (ds::now_ns() < until) {
    }
    empty_kernel<<<1, 1>>>();
  }
  if (cudaDeviceSynchronize() != cudaSuccess) {
    std::fprintf(stderr, "launch failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    std::exit(1);
  }
  return double(ds::now_ns() - t0) / launches;
}

// (b): the minimum a CUPTI activity tracer does.
std::atomic<std::uint64_t> bare_records{0};
void CUPTIAPI bare_request(std::uint8_t** buffer, std::size_t* size, std::size_t* max) {
  *size = std::size_t{8} << 20;
  *buffer = static_cast<std::uint8_t*>(std::aligned_alloc(8, *size));
  *max = 0;
}
void CUPTIAPI bare_complete(CUcontext, std::uint32_t, std::uint8_t* buffer, std::size_t,
                            std::size_t valid) {
  CUpti_Activity* rec = nullptr;
  while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) bare_records.fetch_add(1);
  }
  std::free(buffer);
}

class null_sink : public ds::activity_sink {
 public:
  void on_launch(std::uint32_t, ds::launch_kind) noexcept override {}
  void on_launch_alias(std::uint32_t, std::uint32_t) noexcept override {}
  void on_graph_node_created(std::uint64_t) noexcept override {}
  void on_graph_node_cloned(std::uint64_t, std::uint64_t) noexcept override {}
  void on_gpu_op(const ds::gpu_op& op) noexcept override {
    if (op.kind == ds::op_kind::kernel) kernels.fetch_add(1, std::memory_order_relaxed);
  }
  void on_dropped(std::uint64_t) noexcept override {}
  std::atomic<std::uint64_t> kernels{0};
};

bool cupti_ok(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return true;
  std::fprintf(stderr, "%s: %s\n", what, ds::cupti_result_text(r).c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int launches = argc > 1 ? std::max(batch, std::atoi(argv[1])) : 100000;
  const std::uint64_t pace_ns = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 8000;
  const int rounds = 3;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "SKIP: no usable GPU\n");
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  ns_per_launch(batch * 8, 1);  // warm up: context, module load, clocks

  // The three configurations in turn, `rounds` times, best of each: drift (clocks, other
  // tenants of the machine) then hits all three alike.
  double a = 1e300, b = 1e300, c = 1e300, d = 1e300;
  std::vector<double> pa, pb, pc, pd;  // paced: wall ns per launch, every round
  std::uint64_t d_kernels = 0;
  double d_callback_ns = 0;
  std::uint64_t b_records = 0;
  null_sink sink;
  ds::cupti_counter_values counters;
  for (int round = 0; round < rounds; ++round) {
    a = std::min(a, ns_per_launch(launches, 1));
    pa.push_back(paced_ns_per_launch(launches, pace_ns));

    bare_records = 0;
    if (!cupti_ok(cuptiActivityRegisterCallbacks(bare_request, bare_complete),
                  "cuptiActivityRegisterCallbacks") ||
        !cupti_ok(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL),
                  "cuptiActivityEnable")) {
      return 1;
    }
    ns_per_launch(batch, 1);
    b = std::min(b, ns_per_launch(launches, 1));
    pb.push_back(paced_ns_per_launch(launches, pace_ns));
    cudaDeviceSynchronize();
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    b_records = bare_records.load();

    ds::cupti_source source;
    const auto started = source.start(sink);
    if (!started.ok) {
      std::fprintf(stderr, "cupti_source::start: %s\n", started.reason.c_str());
      return 1;
    }
    sink.kernels = 0;
    ns_per_launch(batch, 1);
    c = std::min(c, ns_per_launch(launches, 1));
    pc.push_back(paced_ns_per_launch(launches, pace_ns));
    source.flush(true);
    counters = ds::snapshot(source.counters());
    source.stop();

    auto& coll = diffscope::collector::instance();
    if (!coll.start(diffscope::collector_options{})) {
      std::fprintf(stderr, "collector: no GPU timing\n");
      return 1;
    }
    {
      DIFFSCOPE_SCOPE("launches");
      ns_per_launch(batch, 1);
      d = std::min(d, ns_per_launch(launches, 1));
      pd.push_back(paced_ns_per_launch(launches, pace_ns));
    }
    const auto r = coll.stop();
    d_callback_ns = r.overhead.per_launch_callback_ns;
    for (const auto& sc : r.scopes)
      if (sc.path == "launches") d_kernels = sc.gpu.kernels;
  }

  std::printf("bench_cupti_launch: %s, %d launches, best of %d interleaved rounds, batches of %d\n",
              prop.name, launches, rounds, batch);
  std::printf("%-52s %10s\n", "configuration", "ns/launch");
  std::printf("%-52s %10.1f\n", "(a) no CUPTI", a);
  std::printf("%-52s %10.1f\n", "(b) CUPTI CONCURRENT_KERNEL activity only", b);
  std::printf("%-52s %10.1f\n", "(c) diffscope cupti_source, null sink", c);
  std::printf("%-52s %10.1f\n", "(d) diffscope collector, launches in a scope", d);
  std::printf("ratio c/b = %.3f   (c-b = %.1f ns/launch; b-a = %.1f ns/launch)\n", c / b, c - b,
              b - a);
  std::printf(
      "ratio d/b = %.3f   (d-b = %.1f ns/launch); (d) attributed %llu kernels to the scope\n",
      d / b, d - b, static_cast<unsigned long long>(d_kernels));
  std::printf(
      "last round: (b) %llu kernel records; (c) %llu kernels to the sink, %llu records, "
      "%llu launch callbacks (%llu nested same-id, %llu aliased), sampled mean %.1f ns\n",
      static_cast<unsigned long long>(b_records),
      static_cast<unsigned long long>(sink.kernels.load()),
      static_cast<unsigned long long>(counters.records),
      static_cast<unsigned long long>(counters.launch_callbacks),
      static_cast<unsigned long long>(counters.launch_nested),
      static_cast<unsigned long long>(counters.launch_aliases), counters.launch_callback_mean_ns());
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double ma = median(pa), mb = median(pb), mc = median(pc), md = median(pd);
  std::printf(
      "\npaced: %llu ns of host work before each launch, no wait until the last; wall ns per "
      "launch, median of %d rounds (minus (a))\n",
      static_cast<unsigned long long>(pace_ns), rounds);
  std::printf("%-52s %10.1f\n", "(a) no CUPTI", ma);
  std::printf("%-52s %10.1f %+8.1f\n", "(b) CUPTI CONCURRENT_KERNEL activity only", mb, mb - ma);
  std::printf("%-52s %10.1f %+8.1f\n", "(c) diffscope cupti_source, null sink", mc, mc - ma);
  std::printf("%-52s %10.1f %+8.1f\n", "(d) diffscope collector, launches in a scope", md, md - ma);
  std::printf("(d) our launch callback, sampled, last round (both loops): %.1f ns\n",
              d_callback_ns);
  return 0;
}
