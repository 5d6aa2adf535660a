// Launches 20 kernels of 5 ms inside a scope and returns from main without synchronising:
// run with DIFFSCOPE_DUMP set, the dump must still count all 20 (the collector waits for
// work in flight at exit, before the CUDA runtime tears down).
#include <diffscope/collector.hpp>

#include "spin_kernel.cuh"

int main() {
  DIFFSCOPE_SCOPE("in_flight");
  for (int i = 0; i < 20; ++i) diffscope_test::spin(5'000'000);
  return 0;
}
