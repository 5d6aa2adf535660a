// <diffscope/scope.hpp> compiled out: this file is built with DIFFSCOPE_DISABLE (target
// test_scope_disabled) or with NVTX_DISABLE (target test_scope_nvtx_disabled) defined for the
// whole target, and with warnings as errors where the compiler allows. Every macro and type
// must still compile, leave no unused-variable warning, and emit nothing: the recording NVTX
// tool linked into this binary (its own TU always sees NVTX) must see no event.
#include <diffscope/scope.hpp>

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <type_traits>

#include "recording_injection.hpp"

#if !defined(DIFFSCOPE_DISABLE)
#error "build this test with DIFFSCOPE_DISABLE or NVTX_DISABLE defined"
#endif
#if defined(NVTX_VERSION)
#error "a disabled scope.hpp must not include NVTX"
#endif

static_assert(std::is_empty<diffscope::scope>::value, "a disabled scope holds nothing");
static_assert(!std::is_copy_constructible<diffscope::scope>::value,
              "disabled scope keeps the enabled scope's copy rules");

namespace {

// Every annotation form a user may write, with step variables used only by the macros.
void annotated_pipeline(int steps) {
  DIFFSCOPE_FUNC();
  DIFFSCOPE_STAGE("DenoisingStage");
  for (int i = 0; i < steps; ++i) {
    DIFFSCOPE_DENOISE_STEP(i);
    DIFFSCOPE_ATTENTION("attn");
    DIFFSCOPE_NORM_ROPE("rope");
    DIFFSCOPE_SCOPE("other");
    DIFFSCOPE_MARK("mark");
  }
  // clang-format off
  DIFFSCOPE_SCOPE("a"); DIFFSCOPE_SCOPE("b"); DIFFSCOPE_DENOISE_STEP(1); DIFFSCOPE_DENOISE_STEP(2);
  // clang-format on
  diffscope::scope s{"x"};
  diffscope::scope with_category{"y", diffscope::category::attention};
  const std::string name = "runtime";
  diffscope::scope from_string{name};
  const auto step = diffscope::scope::denoise_step(3);
  diffscope::mark("m", diffscope::category::stage);
}

// A step index that exists only to be annotated: must not warn as unused.
void only_used_by_the_macro(long long step_index) {
  DIFFSCOPE_DENOISE_STEP(step_index);
}

}  // namespace

TEST_SUITE("scope") {
  TEST_CASE("a disabled build compiles every macro and records nothing") {
    diffscope_test::clear();
    annotated_pipeline(4);
    only_used_by_the_macro(5);
    {
      const std::size_t local_step = 9;
      DIFFSCOPE_DENOISE_STEP(local_step);
    }
    CHECK(diffscope_test::events().empty());
    CHECK(diffscope_test::register_string_calls() == 0);
    CHECK_FALSE(diffscope_test::attached());
  }

  TEST_CASE("a disabled build does not evaluate the denoise step argument") {
    // Like assert under NDEBUG: the argument is not evaluated.
    int calls = 0;
    DIFFSCOPE_DENOISE_STEP(++calls);
    CHECK(calls == 0);
  }

  TEST_CASE("the recording tool is live in the disabled build") {
    // Guards the test above against passing because the tool is broken.
    diffscope_test::clear();
    diffscope_test::probe();
    const auto evs = diffscope_test::events_of(std::this_thread::get_id());
    REQUIRE(evs.size() == 2);
    CHECK(evs[0].kind == diffscope_test::event_kind::push);
    CHECK(evs[0].message == "diffscope_test.probe");
    CHECK(diffscope_test::attached());
  }

  TEST_CASE("the category names stay available in a disabled build") {
    CHECK(std::string(diffscope::category_name(diffscope::category::denoise_step)) ==
          "denoise_step");
    CHECK(std::string(diffscope::domain_name) == "diffscope");
  }
}
