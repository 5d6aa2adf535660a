// What a GPU timestamp costs in a stream of dependent kernels, by the way it is taken (exits
// 77 without a GPU). Perf mode (docs/modes.md) stamps each timed scope's start and end in the
// scope's stream; this program measures the candidate ways of doing so on a loop shaped like
// toy_dit's launch-bound one (a device-to-device copy, then K dependent kernels per step), with
// the host far ahead, so what it reports is GPU time added per step:
//   none       no stamp (the baseline)
//   timing     cudaEventRecord of a timing event (what perf mode does today), at step start+end
//   marker     an event without timing (CU_EVENT_DISABLE_TIMING): the cost of the release alone
//   side       a marker in the work stream; a stream of our own waits for it and records the
//              timing event, so the work stream never executes a timestamp
//   kernel     a one-thread kernel writing %globaltimer to device memory
//   write      cuStreamWriteValue32 to device memory (a bare semaphore write, no timestamp)
//   shared     one timing event per step (the end of a step is the start of the next)
//   create     timing, but each stamp creates its event first (a pool that is still growing)
//   query      timing, and each stamp queries the event recorded 32 stamps before it (a drain
//              that looks at pairs the GPU may not have reached)
// Each configuration runs every variant R times, alternating (A B C ... then ... C B A), and
// reports the median time per step and the difference to `none`.
// Usage: bench_event_cost [steps=200] [reps=7]
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

#define CHECK(call)                                                      \
  do {                                                                   \
    cudaError_t err_ = (call);                                           \
    if (err_ != cudaSuccess) {                                           \
      std::fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(err_)); \
      std::exit(1);                                                      \
    }                                                                    \
  } while (0)

// A small dependent kernel: `iters` dependent FMAs per element of an 8192-float buffer.
__global__ void work(float* x, int n, int iters) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = x[i];
  for (int k = 0; k < iters; ++k) v = v * 0.999f + 0.001f;
  x[i] = v;
}

__global__ void stamp(unsigned long long* out) {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  *out = t;
}

enum variant { none, timing, marker, side, kernel, write, shared, create, query, variant_count };
const char* const names[] = {"none",  "timing", "marker", "side", "kernel",
                             "write", "shared", "create", "query"};

struct config {
  int kernels;
  int iters;
  bool copy;
};

using write_fn = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);

struct rig {
  cudaStream_t work_stream{}, side_stream{};
  float *a{}, *b{};
  unsigned long long* stamps{};
  unsigned* flag{};
  std::vector<cudaEvent_t> timing_events, marker_events;
  std::vector<cudaEvent_t> created;  // `create`: destroyed after the timed loop
  write_fn write_value = nullptr;
  static constexpr int n = 8192;
  static constexpr int max_stamps = 1 << 16;
};

// Puts one stamp of `v` at the end of the work stream; `slot` picks the event or the slot.
void put_stamp(rig& r, variant v, int slot) {
  const int e = slot % static_cast<int>(r.timing_events.size());
  switch (v) {
    case none:
      break;
    case timing:
    case shared:
      CHECK(cudaEventRecord(r.timing_events[e], r.work_stream));
      break;
    case marker:
      CHECK(cudaEventRecord(r.marker_events[e], r.work_stream));
      break;
    case create: {
      cudaEvent_t ev{};
      CHECK(cudaEventCreate(&ev));
      r.created.push_back(ev);
      CHECK(cudaEventRecord(ev, r.work_stream));
      break;
    }
    case query: {
      CHECK(cudaEventRecord(r.timing_events[e], r.work_stream));
      if (slot >= 32) {
        const cudaError_t q = cudaEventQuery(r.timing_events[(slot - 32) % r.timing_events.size()]);
        if (q != cudaSuccess && q != cudaErrorNotReady) CHECK(q);
      }
      break;
    }
    case side:
      CHECK(cudaEventRecord(r.marker_events[e], r.work_stream));
      CHECK(cudaStreamWaitEvent(r.side_stream, r.marker_events[e], 0));
      CHECK(cudaEventRecord(r.timing_events[e], r.side_stream));
      break;
    case kernel:
      stamp<<<1, 1, 0, r.work_stream>>>(r.stamps + slot % rig::max_stamps);
      break;
    case write:
      if (r.write_value(r.work_stream, reinterpret_cast<CUdeviceptr>(r.flag),
                        static_cast<cuuint32_t>(slot), 0) != CUDA_SUCCESS) {
        std::fprintf(stderr, "cuStreamWriteValue32 failed\n");
        std::exit(1);
      }
      break;
    default:
      break;
  }
}

struct timing_result {
  double step_us;  // wall time per step, to the end of the GPU's work
  double host_us;  // host time per step to enqueue it
};

// One timed loop of `steps` steps. When host_us < step_us the host was ahead and the figure is
// the GPU's time; otherwise the loop was host-bound and the stamps' host cost shows.
timing_result run_loop(rig& r, const config& c, variant v, int steps) {
  CHECK(cudaStreamSynchronize(r.work_stream));
  CHECK(cudaStreamSynchronize(r.side_stream));
  const auto t0 = std::chrono::steady_clock::now();
  int slot = 0;
  for (int s = 0; s < steps; ++s) {
    put_stamp(r, v, slot++);
    if (c.copy)
      CHECK(cudaMemcpyAsync(r.a, r.b, rig::n * sizeof(float), cudaMemcpyDeviceToDevice,
                            r.work_stream));
    for (int k = 0; k < c.kernels; ++k)
      work<<<rig::n / 256, 256, 0, r.work_stream>>>(r.a, rig::n, c.iters);
    if (v != shared) put_stamp(r, v, slot++);
  }
  const auto t1 = std::chrono::steady_clock::now();
  CHECK(cudaStreamSynchronize(r.work_stream));
  CHECK(cudaStreamSynchronize(r.side_stream));
  const auto t2 = std::chrono::steady_clock::now();
  CHECK(cudaGetLastError());
  for (cudaEvent_t ev : r.created) CHECK(cudaEventDestroy(ev));
  r.created.clear();
  using us = std::chrono::duration<double, std::micro>;
  return {us(t2 - t0).count() / steps, us(t1 - t0).count() / steps};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::max(10, std::atoi(argv[1])) : 200;
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 7;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "SKIP: no usable GPU\n");
    return 77;
  }
  rig r;
  CHECK(cudaStreamCreateWithFlags(&r.work_stream, cudaStreamNonBlocking));
  CHECK(cudaStreamCreateWithFlags(&r.side_stream, cudaStreamNonBlocking));
  CHECK(cudaMalloc(&r.a, rig::n * sizeof(float)));
  CHECK(cudaMalloc(&r.b, rig::n * sizeof(float)));
  CHECK(cudaMemset(r.a, 0, rig::n * sizeof(float)));
  CHECK(cudaMemset(r.b, 0, rig::n * sizeof(float)));
  CHECK(cudaMalloc(&r.stamps, rig::max_stamps * sizeof(unsigned long long)));
  CHECK(cudaMalloc(&r.flag, sizeof(unsigned)));
  // Enough events that a record never reuses one the GPU has not passed (2 per step).
  for (int i = 0; i < 2 * steps + 2; ++i) {
    cudaEvent_t t{}, m{};
    CHECK(cudaEventCreate(&t));
    CHECK(cudaEventCreateWithFlags(&m, cudaEventDisableTiming));
    r.timing_events.push_back(t);
    r.marker_events.push_back(m);
  }
  cudaDriverEntryPointQueryResult q{};
  void* fn = nullptr;
  if (cudaGetDriverEntryPointByVersion("cuStreamWriteValue32", &fn, 12000, cudaEnableDefault, &q) !=
          cudaSuccess ||
      q != cudaDriverEntryPointSuccess || fn == nullptr) {
    std::fprintf(stderr, "cuStreamWriteValue32 not found\n");
    return 1;
  }
  r.write_value = reinterpret_cast<write_fn>(fn);

  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("bench_event_cost: %s, %d steps per loop, %d loops per variant (median)\n", prop.name,
              steps, reps);
  const config configs[] = {
      {45, 0, true}, {45, 0, false}, {45, 6000, true}, {45, 6000, false}, {10, 0, false}};
  for (const config& c : configs) {
    for (int v = 0; v < variant_count; ++v) run_loop(r, c, static_cast<variant>(v), 10);  // warm
    std::vector<std::vector<double>> step_us(variant_count), host_us(variant_count);
    for (int rep = 0; rep < reps; ++rep)
      for (int i = 0; i < variant_count; ++i) {
        const int v = rep % 2 ? variant_count - 1 - i : i;
        const timing_result t = run_loop(r, c, static_cast<variant>(v), steps);
        step_us[v].push_back(t.step_us);
        host_us[v].push_back(t.host_us);
      }
    const double base = median(step_us[none]);
    std::printf("\n%d kernels/step, %d FMAs/element, %s copy: none %.2f us/step (%.2f us/kernel)\n",
                c.kernels, c.iters, c.copy ? "a D2D" : "no", base, base / c.kernels);
    std::printf("  %-8s %10s %10s %12s %12s\n", "variant", "us/step", "+us/step", "+us/stamp",
                "host us/step");
    for (int v = 0; v < variant_count; ++v) {
      const double m = median(step_us[v]);
      const int per_step = v == shared ? 1 : 2;
      std::printf("  %-8s %10.2f %+10.2f %+12.2f %12.2f\n", names[v], m, m - base,
                  (m - base) / per_step, median(host_us[v]));
    }
  }
  return 0;
}
