// A kernel of known duration for GPU tests and benchmarks: one thread spins on the GPU's
// global nanosecond timer. Include it in one translation unit per program (the kernels are
// not inline: nvcc ignores inline on __global__).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace diffscope_test {

__device__ inline std::uint64_t global_timer_ns() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel(std::uint64_t ns) {
  const std::uint64_t start = global_timer_ns();
  while (global_timer_ns() - start < ns) {
  }
}

inline void spin(std::uint64_t ns, cudaStream_t stream = nullptr) {
  spin_kernel<<<1, 1, 0, stream>>>(ns);
}

__global__ void empty_kernel() {}

/// A spin kernel whose name carries a tag (`_Z11tagged_spinILi<T>EEvm`), so a test can tell
/// from a kernel record alone which thread launched it.
template <int T>
__global__ void tagged_spin(std::uint64_t ns) {
  const std::uint64_t start = global_timer_ns();
  while (global_timer_ns() - start < ns) {
  }
}

}  // namespace diffscope_test
