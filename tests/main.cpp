// The one translation unit with doctest's main, linked into every test binary.
//
// GPU tests (built with DIFFSCOPE_TEST_GPU_MAIN, see tests/CMakeLists.txt) first check that a
// usable GPU exists and exit 77 when none does: CTest (SKIP_RETURN_CODE 77) and Meson report
// that as skipped, never as passed. A GPU test that finds a missing capability later (CUPTI
// unavailable, say) may also call std::exit(77).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

#ifdef DIFFSCOPE_TEST_GPU_MAIN
#include <cuda_runtime_api.h>
#endif

#ifdef DIFFSCOPE_TEST_GPU_MAIN
namespace {
// Asks the runtime, not the driver: it fails the same way with no driver, no device, or a
// driver too old for the toolkit. DIFFSCOPE_TEST_FORCE_SKIP lets CI check the skip path.
bool gpu_usable() {
  if (std::getenv("DIFFSCOPE_TEST_FORCE_SKIP") != nullptr) {
    std::fprintf(stderr, "SKIP: DIFFSCOPE_TEST_FORCE_SKIP is set\n");
    return false;
  }
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    std::fprintf(stderr, "SKIP: no usable GPU (cudaGetDeviceCount: %s)\n", cudaGetErrorString(err));
    return false;
  }
  if (count == 0) {
    std::fprintf(stderr, "SKIP: no usable GPU (no CUDA device)\n");
    return false;
  }
  return true;
}
}  // namespace
#endif

int main(int argc, char** argv) {
#ifdef DIFFSCOPE_TEST_GPU_MAIN
  if (!gpu_usable()) return 77;  // skipped, see the top of this file
#endif
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
