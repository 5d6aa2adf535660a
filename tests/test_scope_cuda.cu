// <diffscope/scope.hpp> from a CUDA source compiled by nvcc, enabled (test_scope_cuda) and
// compiled out with DIFFSCOPE_DISABLE (test_scope_cuda_disabled): the macros sit in host code
// next to a kernel, the recording NVTX tool counts what reaches it. Runs without a GPU (no
// kernel is launched).
#include <diffscope/scope.hpp>

#include <doctest/doctest.h>

#include <string>

#include "recording_injection.hpp"

namespace {

__global__ void scale_kernel(float* x, float a, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}

// Host code that would launch scale_kernel once per block; the launch itself is not made
// (no GPU needed), the annotations are what is under test.
int annotated_host_loop(int steps) {
  DIFFSCOPE_FUNC();
  DIFFSCOPE_STAGE("DenoisingStage");
  int blocks = 0;
  for (int i = 0; i < steps; ++i) {
    DIFFSCOPE_DENOISE_STEP(i);
    DIFFSCOPE_NORM_ROPE("qk_norm_rope");
    DIFFSCOPE_ATTENTION("attention");
    DIFFSCOPE_SCOPE("mlp");
    ++blocks;
  }
  DIFFSCOPE_MARK("done");
  const diffscope::scope runtime_name{std::string("runtime")};
  (void)&scale_kernel;
  return blocks;
}

}  // namespace

TEST_SUITE("scope_cuda") {
  TEST_CASE("the macros work from a .cu file compiled by nvcc") {
    diffscope_test::clear();
    CHECK(annotated_host_loop(3) == 3);
    const auto evs = diffscope_test::events();
    std::size_t pushes = 0, steps = 0;
    for (const auto& e : evs) {
      if (e.kind != diffscope_test::event_kind::push) continue;
      ++pushes;
      if (e.message.rfind("denoising_step_", 0) == 0) ++steps;
    }
#ifdef DIFFSCOPE_DISABLE
    CHECK(pushes == 0);
    CHECK(evs.empty());
    diffscope_test::probe();  // the tool is live: the annotations really compiled out
    CHECK(diffscope_test::events().size() == 2);
#else
    // function + stage + 3 x (step, norm_rope, attention, mlp) + runtime name
    CHECK(pushes == 15);
    CHECK(steps == 3);
    CHECK(diffscope_test::check_balanced(evs).empty());
#endif
  }
}
