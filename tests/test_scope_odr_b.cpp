// Second translation unit of the one-definition test (see test_scope_odr_a.cpp).
#include <diffscope/scope.hpp>

// Same body as in test_scope_odr_a.cpp and the library (one definition).
inline void diffscope_odr_shared_inline() {
  DIFFSCOPE_NORM_ROPE("odr_shared_inline");
}

void diffscope_odr_b_work(int steps) {
  DIFFSCOPE_FUNC();
  for (int i = 0; i < steps; ++i) {
    DIFFSCOPE_DENOISE_STEP(100 + i);
    DIFFSCOPE_SCOPE("odr_b_scope");
    diffscope_odr_shared_inline();
  }
}
