// Ground truth for GPU tests: CUDA-event elapsed time and a relative comparison with it.
#pragma once

#include <cmath>

#include <cuda_runtime.h>

namespace diffscope_test {

/// |value - truth| <= rel * |truth| (doctest's Approx adds an absolute scale of 1, far too
/// loose for millisecond values).
inline bool within(double value, double truth, double rel) {
  return std::abs(value - truth) <= rel * std::abs(truth);
}

/// Milliseconds between two recorded events (0 when either is not complete).
inline float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  if (cudaEventElapsedTime(&ms, a, b) != cudaSuccess) cudaGetLastError();
  return ms;
}

}  // namespace diffscope_test
