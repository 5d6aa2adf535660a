// The shared library of the one-definition test (test_scope_odr_a.cpp): annotated code in a
// second linkage unit, with its own copy of NVTX's state and of scope.hpp's statics.
#include <diffscope/scope.hpp>

#if defined(__GNUC__)
#define DIFFSCOPE_TEST_ODR_EXPORT __attribute__((visibility("default")))
#else
#define DIFFSCOPE_TEST_ODR_EXPORT
#endif

// Same body as in test_scope_odr_a.cpp and test_scope_odr_b.cpp (one definition).
inline void diffscope_odr_shared_inline() {
  DIFFSCOPE_NORM_ROPE("odr_shared_inline");
}

DIFFSCOPE_TEST_ODR_EXPORT void diffscope_odr_lib_work(int steps) {
  DIFFSCOPE_STAGE("odr_lib_stage");
  for (int i = 0; i < steps; ++i) {
    DIFFSCOPE_DENOISE_STEP(i);
    DIFFSCOPE_ATTENTION("odr_lib_attention");
    diffscope_odr_shared_inline();
  }
  DIFFSCOPE_MARK("odr_lib_mark");
}
