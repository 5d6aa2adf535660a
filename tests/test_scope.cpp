// Annotation semantics of <diffscope/scope.hpp>, observed through the recording NVTX tool
// compiled into this test (recording_injection.cpp).
#include <diffscope/scope.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "recording_injection.hpp"

namespace {

using diffscope_test::event;
using diffscope_test::event_kind;

// Runs f on this thread with a fresh recording and returns what this thread recorded.
template <class F>
std::vector<event> record(F&& f) {
  diffscope_test::clear();
  f();
  return diffscope_test::events_of(std::this_thread::get_id());
}

std::vector<event_kind> kinds(const std::vector<event>& evs) {
  std::vector<event_kind> out;
  for (const event& e : evs) out.push_back(e.kind);
  return out;
}

std::vector<std::string> push_names(const std::vector<event>& evs) {
  std::vector<std::string> out;
  for (const event& e : evs)
    if (e.kind == event_kind::push) out.push_back(e.message);
  return out;
}

void annotated_function_name() {
  DIFFSCOPE_FUNC();
}

void throws_through_three_scopes() {
  DIFFSCOPE_STAGE("unwind_outer");
  DIFFSCOPE_DENOISE_STEP(3);
  DIFFSCOPE_ATTENTION("unwind_inner");
  throw std::runtime_error("boom");
}

// A user macro that expands to two scopes: __COUNTER__, not __LINE__, keeps them apart.
#define TEST_TWO_SCOPES(a, b) \
  DIFFSCOPE_SCOPE(a);         \
  DIFFSCOPE_SCOPE(b)

}  // namespace

TEST_SUITE("scope") {
  TEST_CASE("the recording NVTX tool is attached to this test binary") {
    INFO("NVTX_INJECTION64_PATH overrides the static injection; unset it to run these tests");
    REQUIRE(std::getenv("NVTX_INJECTION64_PATH") == nullptr);
    const auto evs = record([] { DIFFSCOPE_SCOPE("attach_check"); });
    REQUIRE(diffscope_test::attached());
    REQUIRE(evs.size() == 2);
  }

  TEST_CASE("a scope is one push and one pop in the diffscope domain named by its call site") {
    const auto evs = record([] { DIFFSCOPE_SCOPE("my_region"); });
    REQUIRE(kinds(evs) == std::vector<event_kind>{event_kind::push, event_kind::pop});
    CHECK(evs[0].domain == "diffscope");
    CHECK_FALSE(evs[0].default_domain);
    CHECK(evs[0].message == "my_region");
    CHECK(evs[0].registered_message);
    CHECK(evs[0].payload_type == 0);
    CHECK(evs[1].domain == "diffscope");
    CHECK(evs[1].domain_handle == evs[0].domain_handle);
    CHECK(std::string(diffscope::domain_name) == "diffscope");
  }

  TEST_CASE("the diffscope domain names its six categories") {
    record([] { DIFFSCOPE_SCOPE("make_sure_the_domain_exists"); });
    const std::map<std::uint32_t, std::string> expected{{1, "stage"},     {2, "denoise_step"},
                                                        {3, "attention"}, {4, "norm_rope"},
                                                        {5, "other"},     {6, "request"}};
    CHECK(diffscope_test::category_names("diffscope") == expected);
    for (const auto& c : expected) {
      CHECK(diffscope::category_name(static_cast<diffscope::category>(c.first)) == c.second);
    }
  }

  TEST_CASE("each annotation macro pushes its category id and the category's name") {
    std::vector<event> evs;
    std::uint32_t id = 0;
    std::string name;
    std::string message;
    SUBCASE("DIFFSCOPE_SCOPE is other") {
      evs = record([] { DIFFSCOPE_SCOPE("cat_other"); });
      id = 5, name = "other", message = "cat_other";
    }
    SUBCASE("DIFFSCOPE_STAGE is stage") {
      evs = record([] { DIFFSCOPE_STAGE("DenoisingStage"); });
      id = 1, name = "stage", message = "DenoisingStage";
    }
    SUBCASE("DIFFSCOPE_DENOISE_STEP is denoise_step") {
      evs = record([] { DIFFSCOPE_DENOISE_STEP(0); });
      id = 2, name = "denoise_step", message = "denoising_step_0";
    }
    SUBCASE("DIFFSCOPE_ATTENTION is attention") {
      evs = record([] { DIFFSCOPE_ATTENTION("self_attn"); });
      id = 3, name = "attention", message = "self_attn";
    }
    SUBCASE("DIFFSCOPE_NORM_ROPE is norm_rope") {
      evs = record([] { DIFFSCOPE_NORM_ROPE("rope"); });
      id = 4, name = "norm_rope", message = "rope";
    }
    SUBCASE("DIFFSCOPE_FUNC is other") {
      evs = record([] { annotated_function_name(); });
      id = 5, name = "other", message = "annotated_function_name";
    }
    REQUIRE(kinds(evs) == std::vector<event_kind>{event_kind::push, event_kind::pop});
    CHECK(evs[0].domain == "diffscope");
    CHECK(evs[0].category == id);
    CHECK(evs[0].category_name == name);
    CHECK(evs[0].message == message);
  }

  TEST_CASE("a denoise step is named denoising_step_<i> and carries i as an int64 payload") {
    std::int64_t step = 0;
    std::string name;
    SUBCASE("zero") {
      step = 0, name = "denoising_step_0";
    }
    SUBCASE("small") {
      step = 7, name = "denoising_step_7";
    }
    SUBCASE("two digits") {
      step = 49, name = "denoising_step_49";
    }
    SUBCASE("negative") {
      step = -3, name = "denoising_step_-3";
    }
    SUBCASE("large") {
      step = 1234567890123, name = "denoising_step_1234567890123";
    }
    SUBCASE("int64 max") {
      step = std::numeric_limits<std::int64_t>::max();
      name = "denoising_step_9223372036854775807";
    }
    SUBCASE("int64 min") {
      step = std::numeric_limits<std::int64_t>::min();
      name = "denoising_step_-9223372036854775808";
    }
    const auto evs = record([step] { DIFFSCOPE_DENOISE_STEP(step); });
    REQUIRE(kinds(evs) == std::vector<event_kind>{event_kind::push, event_kind::pop});
    CHECK(evs[0].message == name);
    CHECK_FALSE(evs[0].registered_message);
    CHECK(evs[0].category == 2);
    CHECK(evs[0].category_name == "denoise_step");
    CHECK(evs[0].payload_type == 2);  // NVTX_PAYLOAD_TYPE_INT64
    CHECK(evs[0].payload_i64 == step);
  }

  TEST_CASE("a denoise step accepts any integer type and evaluates its argument once") {
    SUBCASE("size_t") {
      const auto evs = record([] {
        const std::size_t i = 12;
        DIFFSCOPE_DENOISE_STEP(i);
      });
      REQUIRE(evs.size() == 2);
      CHECK(evs[0].message == "denoising_step_12");
      CHECK(evs[0].payload_i64 == 12);
    }
    SUBCASE("an expression with a side effect") {
      int calls = 0;
      const auto evs = record([&calls] { DIFFSCOPE_DENOISE_STEP(++calls); });
      CHECK(calls == 1);
      REQUIRE(evs.size() == 2);
      CHECK(evs[0].payload_i64 == 1);
    }
  }

  TEST_CASE("a macro executed 1000 times registers its name once") {
    const auto evs = record([] {
      for (int i = 0; i < 1000; ++i) {
        DIFFSCOPE_SCOPE("registered_once_site");
      }
    });
    CHECK(diffscope_test::register_string_calls("registered_once_site") == 1);
    CHECK(evs.size() == 2000);
    for (const event& e : evs) {
      if (e.kind != event_kind::push) continue;
      CHECK(e.message == "registered_once_site");
      CHECK(e.registered_message);
    }
  }

  TEST_CASE("a call site registers its name on its first execution only") {
    const auto site = [] { DIFFSCOPE_SCOPE("registered_on_first_call"); };
    record(site);
    CHECK(diffscope_test::register_string_calls("registered_on_first_call") == 1);
    const auto again = record(site);
    CHECK(diffscope_test::register_string_calls("registered_on_first_call") == 0);
    REQUIRE(again.size() == 2);
    CHECK(again[0].message == "registered_on_first_call");
  }

  TEST_CASE("names are registered per call site, runtime names and steps never") {
    const auto evs = record([] {
      for (int i = 0; i < 10; ++i) {
        { DIFFSCOPE_SCOPE("same_name_two_sites"); }
        { DIFFSCOPE_SCOPE("same_name_two_sites"); }
        diffscope::scope runtime{"runtime_name_not_registered"};
        DIFFSCOPE_DENOISE_STEP(i);
      }
    });
    CHECK(diffscope_test::register_string_calls("same_name_two_sites") == 2);
    CHECK(diffscope_test::register_string_calls() == 2);
    CHECK(evs.size() == 80);
  }

  TEST_CASE("nested scopes pop in the reverse order of their pushes") {
    const auto evs = record([] {
      DIFFSCOPE_STAGE("nest_stage");
      for (int i = 0; i < 2; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        { DIFFSCOPE_ATTENTION("nest_attn"); }
        DIFFSCOPE_NORM_ROPE("nest_norm");
      }
    });
    using K = event_kind;
    CHECK(kinds(evs) == std::vector<K>{K::push,                            // stage
                                       K::push, K::push, K::pop, K::push,  // step 0
                                       K::pop, K::pop,                     //
                                       K::push, K::push, K::pop, K::push,  // step 1
                                       K::pop, K::pop, K::pop});
    CHECK(push_names(evs) == std::vector<std::string>{"nest_stage", "denoising_step_0", "nest_attn",
                                                      "nest_norm", "denoising_step_1", "nest_attn",
                                                      "nest_norm"});
    CHECK(diffscope_test::check_balanced(evs) == "");
  }

  TEST_CASE("an exception unwinding through scopes pops every one of them") {
    const auto evs = record([] {
      try {
        throws_through_three_scopes();
        FAIL("no exception");
      } catch (const std::runtime_error&) {
      }
    });
    using K = event_kind;
    CHECK(kinds(evs) == std::vector<K>{K::push, K::push, K::push, K::pop, K::pop, K::pop});
    CHECK(push_names(evs) ==
          std::vector<std::string>{"unwind_outer", "denoising_step_3", "unwind_inner"});
    CHECK(diffscope_test::check_balanced(evs) == "");
  }

  TEST_CASE("eight threads each record their own nested stack") {
    constexpr int threads = 8;
    constexpr int steps = 200;
    diffscope_test::clear();
    std::atomic<int> ready{0};
    std::vector<std::thread> pool;
    std::vector<std::thread::id> ids(threads);
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([t, &ready, &ids] {
        ids[t] = std::this_thread::get_id();
        ready.fetch_add(1);
        while (ready.load() < threads) std::this_thread::yield();  // start together
        DIFFSCOPE_STAGE("thread_stage");
        for (int k = 0; k < steps; ++k) {
          DIFFSCOPE_DENOISE_STEP(t * 1000 + k);
          DIFFSCOPE_ATTENTION("thread_attention");
        }
      });
    }
    for (std::thread& th : pool) th.join();
    const auto all = diffscope_test::events();
    CHECK(all.size() == threads * (2 + steps * 4));
    CHECK(diffscope_test::check_balanced(all) == "");
    for (int t = 0; t < threads; ++t) {
      CAPTURE(t);
      const auto evs = diffscope_test::events_of(ids[t]);
      REQUIRE(evs.size() == 2 + steps * 4);
      CHECK(evs.front().message == "thread_stage");
      CHECK(evs.back().kind == event_kind::pop);
      bool in_order = true;
      for (int k = 0; k < steps; ++k) {
        const event* e = &evs[1 + 4 * k];
        in_order = in_order && e[0].kind == event_kind::push && e[0].payload_i64 == t * 1000 + k &&
                   e[1].kind == event_kind::push && e[1].message == "thread_attention" &&
                   e[2].kind == event_kind::pop && e[3].kind == event_kind::pop;
      }
      CHECK(in_order);
    }
  }

  TEST_CASE("runtime-name scopes pass their name as text on every push") {
    std::vector<event> evs;
    std::uint32_t id = 5;
    SUBCASE("const char*") {
      evs = record([] {
        const char* name = "runtime_cstr";
        diffscope::scope s{name};
      });
    }
    SUBCASE("std::string that dies right after the constructor") {
      evs = record([] { diffscope::scope s{std::string("runtime_") + "cstr"}; });
    }
    SUBCASE("with a category") {
      evs = record([] { diffscope::scope s{"runtime_cstr", diffscope::category::attention}; });
      id = 3;
    }
    SUBCASE("std::string with a category") {
      evs = record([] {
        const std::string name = "runtime_cstr";
        diffscope::scope s{name, diffscope::category::stage};
      });
      id = 1;
    }
    REQUIRE(kinds(evs) == std::vector<event_kind>{event_kind::push, event_kind::pop});
    CHECK(evs[0].domain == "diffscope");
    CHECK(evs[0].message == "runtime_cstr");
    CHECK_FALSE(evs[0].registered_message);
    CHECK(evs[0].category == id);
    CHECK(diffscope_test::register_string_calls() == 0);
  }

  TEST_CASE("DIFFSCOPE_FUNC names the enclosing function") {
    const auto evs = record([] { annotated_function_name(); });
    REQUIRE(evs.size() == 2);
    CHECK(evs[0].message == "annotated_function_name");
  }

  TEST_CASE("DIFFSCOPE_MARK produces a mark and no range") {
    SUBCASE("macro") {
      const auto evs = record([] { DIFFSCOPE_MARK("checkpoint"); });
      REQUIRE(evs.size() == 1);
      CHECK(evs[0].kind == event_kind::mark);
      CHECK(evs[0].domain == "diffscope");
      CHECK(evs[0].message == "checkpoint");
      CHECK(evs[0].category == 5);
    }
    SUBCASE("function with a category") {
      const auto evs = record([] { diffscope::mark("stage_mark", diffscope::category::stage); });
      REQUIRE(evs.size() == 1);
      CHECK(evs[0].kind == event_kind::mark);
      CHECK(evs[0].category_name == "stage");
    }
  }

  TEST_CASE("several macros on one line compile and nest") {
    SUBCASE("written on one line") {
      // clang-format off
      const auto evs = record([] { DIFFSCOPE_SCOPE("line_a"); DIFFSCOPE_SCOPE("line_b"); DIFFSCOPE_DENOISE_STEP(1); DIFFSCOPE_DENOISE_STEP(2); DIFFSCOPE_MARK("line_m"); });
      // clang-format on
      using K = event_kind;
      CHECK(kinds(evs) == std::vector<K>{K::push, K::push, K::push, K::push, K::mark, K::pop,
                                         K::pop, K::pop, K::pop});
      CHECK(push_names(evs) ==
            std::vector<std::string>{"line_a", "line_b", "denoising_step_1", "denoising_step_2"});
    }
    SUBCASE("expanded from one user macro") {
      const auto evs = record([] { TEST_TWO_SCOPES("macro_a", "macro_b"); });
      CHECK(push_names(evs) == std::vector<std::string>{"macro_a", "macro_b"});
      CHECK(evs.size() == 4);
    }
  }
}
