// ODR across linkage units (docs/architecture.md): this TU, test_scope_odr_b.cpp and the shared
// library built from test_scope_odr_lib.cpp (hidden visibility, like a Python extension) all
// use the macros in one process. Each linkage unit has its own copy of NVTX's state
// (nvtxLinkOnce.h) and of scope.hpp's statics, so the tool is initialised once per copy and
// gets one "diffscope" domain per copy: what must hold is that every range arrives under the
// domain name "diffscope", with its categories named, every push matched by a pop.
//
// Two binaries are built from these sources:
// - test_scope_odr: the recording tool is a shared library named by NVTX_INJECTION64_PATH
//   (set below before any NVTX call), the way `diffscope run` loads the collector. Every
//   linkage unit reaches it.
// - test_scope_odr_static (DIFFSCOPE_TEST_STATIC_INJECTION): the tool is linked into the
//   executable as a static injection. NVTX declares the static hook hidden in every linkage
//   unit, so the library's ranges never reach it. This pins down that limitation: a collector
//   linked into a program sees annotated code of other shared objects only when it is loaded
//   through NVTX_INJECTION64_PATH.
#include <diffscope/scope.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "recording_injection.hpp"

// Defined in test_scope_odr_b.cpp and in the shared library.
void diffscope_odr_b_work(int steps);
void diffscope_odr_lib_work(int steps);

// Same body as in test_scope_odr_b.cpp and the library (one definition).
inline void diffscope_odr_shared_inline() {
  DIFFSCOPE_NORM_ROPE("odr_shared_inline");
}

namespace {

#ifndef DIFFSCOPE_TEST_STATIC_INJECTION
// Before main, hence before any NVTX call: every NVTX copy reads the variable at its first call.
const bool injection_path_set = [] {
  return setenv("NVTX_INJECTION64_PATH", diffscope_test::own_path().c_str(), 1) == 0;
}();
constexpr bool library_reaches_tool = true;
#else
constexpr bool library_reaches_tool = false;
#endif

void diffscope_odr_a_work(int steps) {
  DIFFSCOPE_STAGE("odr_a_stage");
  for (int i = 0; i < steps; ++i) {
    DIFFSCOPE_DENOISE_STEP(i);
    DIFFSCOPE_ATTENTION("odr_a_attention");
    diffscope_odr_shared_inline();
  }
}

void run_all_units(int steps) {
  diffscope_odr_a_work(steps);
  diffscope_odr_b_work(steps);
  diffscope_odr_lib_work(steps);
}

}  // namespace

TEST_SUITE("scope") {
  TEST_CASE("two translation units and a shared library meet in one diffscope domain") {
    diffscope_test::clear();
    run_all_units(3);
    std::thread other([] { run_all_units(2); });
    other.join();
    const auto evs = diffscope_test::events();
    REQUIRE(diffscope_test::attached());
#ifndef DIFFSCOPE_TEST_STATIC_INJECTION
    REQUIRE(injection_path_set);
#endif

    // a and b: 1 + 3 per step pushes each; the library: the same plus one mark.
    const std::size_t exe_events = 2 * (2 * (1 + 3 * 3)) + 2 * (2 * (1 + 3 * 2));
    const std::size_t lib_events = 2 * (1 + 3 * 3) + 1 + 2 * (1 + 3 * 2) + 1;
    CHECK(evs.size() == exe_events + (library_reaches_tool ? lib_events : 0));
    CHECK(diffscope_test::check_balanced(evs) == "");

    const std::map<std::uint32_t, std::string> categories{{1, "stage"},     {2, "denoise_step"},
                                                          {3, "attention"}, {4, "norm_rope"},
                                                          {5, "other"},     {6, "request"}};
    std::map<std::string, std::string> expected_category{{"odr_a_stage", "stage"},
                                                         {"odr_a_attention", "attention"},
                                                         {"diffscope_odr_b_work", "other"},
                                                         {"odr_b_scope", "other"},
                                                         {"odr_shared_inline", "norm_rope"}};
    if (library_reaches_tool) {
      expected_category.insert({{"odr_lib_stage", "stage"},
                                {"odr_lib_attention", "attention"},
                                {"odr_lib_mark", "other"}});
    }
    std::set<const void*> handles;
    std::set<std::string> seen;
    for (const auto& e : evs) {
      CAPTURE(e.message);
      CHECK_FALSE(e.default_domain);
      CHECK(e.domain == "diffscope");
      handles.insert(e.domain_handle);
      if (e.kind == diffscope_test::event_kind::pop) continue;
      seen.insert(e.message);
      const auto it = expected_category.find(e.message);
      if (it != expected_category.end()) {
        CHECK(e.category_name == it->second);
      } else {
        CHECK(e.message.rfind("denoising_step_", 0) == 0);
        CHECK(e.category_name == "denoise_step");
      }
    }
    for (const auto& name : expected_category) CHECK(seen.count(name.first) == 1);
    CHECK(seen.count("denoising_step_102") == 1);

    // Every handle used came from a DomainCreateA("diffscope") and had its categories named.
    const auto creates = diffscope_test::domain_creates();
    std::set<const void*> created;
    for (const auto& c : creates) {
      CHECK(c.name == "diffscope");
      created.insert(c.handle);
    }
    for (const void* h : handles) {
      CHECK(created.count(h) == 1);
      CHECK(diffscope_test::category_names_of(h) == categories);
    }
    MESSAGE("NVTX copies attached: ", diffscope_test::init_count(),
            ", diffscope domains created: ", creates.size(), ", used: ", handles.size());
    // The executable's NVTX copy, and the library's own copy when it can reach the tool.
    const int copies = library_reaches_tool ? 2 : 1;
    CHECK(diffscope_test::init_count() == copies);
    CHECK(creates.size() == static_cast<std::size_t>(copies));
    CHECK(handles.size() == static_cast<std::size_t>(copies));
  }
}
