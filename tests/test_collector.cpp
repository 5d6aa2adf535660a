// The collector end to end through real NVTX calls (our macros and the plain NVTX C API, as
// PyTorch and SGLang use it), on whatever machine runs the tests: without a GPU it must give
// host timings and say why GPU timings are missing.
#include <doctest/doctest.h>

#include <diffscope/collector.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include <cuda_runtime_api.h>

namespace {

bool gpu_present() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

const diffscope::scope_result* find_scope(const diffscope::results& r, const std::string& path) {
  for (const auto& s : r.scopes)
    if (s.path == path) return &s;
  return nullptr;
}

diffscope::collector_options quiet() {
  diffscope::collector_options o;  // no outputs: the tests read the results
  return o;
}

void throwing_step(int i) {
  DIFFSCOPE_DENOISE_STEP(i);
  DIFFSCOPE_ATTENTION("attention");
  throw std::runtime_error("boom");
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_SUITE("collector") {
  TEST_CASE("the macros reach the collector as scopes, stages and steps") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    {
      DIFFSCOPE_STAGE("DenoisingStage");
      for (int i = 0; i < 4; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        DIFFSCOPE_NORM_ROPE("qk_norm_rope");
        DIFFSCOPE_ATTENTION("attention");
      }
    }
    auto r = c.stop();
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "DenoisingStage");
    REQUIRE(r.steps.size() == 4);
    CHECK(r.steps[3].step == 3);
    const auto* attn = find_scope(r, "DenoisingStage/denoise_step/qk_norm_rope/attention");
    REQUIRE(attn);
    CHECK(attn->host.calls == 4);
    CHECK(attn->cat == diffscope::category::attention);
    CHECK(attn->domain == "diffscope");
    CHECK(r.faults.unbalanced_pops == 0);
    CHECK(r.faults.unclosed_at_stop == 0);
  }

  TEST_CASE("without a GPU the collector keeps host timings and says why") {
    auto& c = diffscope::collector::instance();
    const bool gpu = c.start(quiet());
    { DIFFSCOPE_SCOPE("work"); }
    auto r = c.stop();
    CHECK(gpu == gpu_present());
    CHECK(r.status.gpu_timing == gpu);
    REQUIRE(find_scope(r, "work"));
    CHECK(find_scope(r, "work")->host.calls == 1);
    if (!gpu) {
      CHECK(r.status.reason.find("no CUDA driver or GPU") != std::string::npos);
      CHECK_FALSE(find_scope(r, "work")->gpu.measured);
    } else {
      CHECK(r.status.reason.empty());
    }
  }

  TEST_CASE("plain NVTX ranges with SGLang names map to stages and steps") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    nvtxRangePushA("stage_DenoisingStage");
    for (int i = 0; i < 3; ++i) {
      const std::string step =
          "denoising_step_" + std::to_string(i) + "_t" + std::to_string(999 - i);
      nvtxRangePushA(step.c_str());
      nvtxRangePushA("transformer.blocks.0.attn in=[[1, 4096, 3072]]");
      nvtxRangePop();
      nvtxRangePop();
    }
    nvtxRangePop();
    auto r = c.stop();
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "DenoisingStage");
    REQUIRE(r.steps.size() == 3);
    CHECK(r.steps[2].step == 2);
    const auto* m = find_scope(r, "DenoisingStage/denoise_step/transformer.blocks.0.attn");
    REQUIRE(m);
    CHECK(m->host.calls == 3);
    CHECK(m->domain.empty());
  }

  TEST_CASE("an exception unwinding through scopes closes them all") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    for (int i = 0; i < 3; ++i) {
      try {
        throwing_step(i);
      } catch (const std::runtime_error&) {
      }
    }
    auto r = c.stop();
    CHECK(r.steps.size() == 3);
    REQUIRE(find_scope(r, "denoise_step/attention"));
    CHECK(find_scope(r, "denoise_step/attention")->host.calls == 3);
    CHECK(r.faults.unclosed_at_stop == 0);
    CHECK(r.faults.unbalanced_pops == 0);
  }

  TEST_CASE("unbalanced manual ranges are counted and reported") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    nvtxRangePop();  // nothing open
    nvtxRangePushA("left_open");
    auto r = c.stop();
    CHECK(r.faults.unbalanced_pops == 1);
    CHECK(r.faults.unclosed_at_stop == 1);
    nvtxRangePop();  // closes "left_open" after stop: not a fault of the next run
    c.start(quiet());
    { DIFFSCOPE_SCOPE("next"); }
    auto r2 = c.stop();
    CHECK(r2.faults.unbalanced_pops == 0);
    CHECK(find_scope(r2, "next"));
  }

  TEST_CASE("a range opened before start and closed after is not a fault") {
    auto& c = diffscope::collector::instance();
    nvtxRangePushA("before_start");
    c.start(quiet());
    { DIFFSCOPE_SCOPE("inside"); }
    nvtxRangePop();
    auto r = c.stop();
    CHECK(r.faults.unbalanced_pops == 0);
    CHECK(find_scope(r, "inside"));
    CHECK_FALSE(find_scope(r, "before_start"));
  }

  TEST_CASE("the collector starts and stops repeatedly, each run on its own") {
    auto& c = diffscope::collector::instance();
    for (int run = 0; run < 5; ++run) {
      CHECK_FALSE(c.active());
      c.start(quiet());
      CHECK(c.active());
      for (int i = 0; i <= run; ++i) {
        DIFFSCOPE_SCOPE("repeated");
      }
      auto r = c.stop();
      REQUIRE(find_scope(r, "repeated"));
      CHECK(find_scope(r, "repeated")->host.calls == static_cast<std::uint64_t>(run + 1));
    }
    auto again = c.stop();  // stop when stopped: the last results, no crash
    CHECK(find_scope(again, "repeated"));
  }

  TEST_CASE("a session writes the dump, trace and summary it was asked for") {
    // A private temporary directory: the test may run from any working directory.
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("diffscope_test_collector_" + std::to_string(getpid())))
                                .string();
    std::remove((dir + "/perf.json").c_str());
    std::remove((dir + "/trace.json").c_str());
    diffscope::collector_options o;
    o.dump_path = dir + "/perf.json";
    o.trace_path = dir + "/trace.json";
    {
      diffscope::collector_session session(o);
      DIFFSCOPE_STAGE("DenoisingStage");
      DIFFSCOPE_DENOISE_STEP(0);
    }
    const std::string dump = read_file(dir + "/perf.json");
    CHECK(dump.find("\"DenoisingStage\"") != std::string::npos);
    CHECK(dump.find("\"denoise_steps_ms\"") != std::string::npos);
    const std::string trace = read_file(dir + "/trace.json");
    CHECK(trace.find("\"traceEvents\"") != std::string::npos);
    CHECK(trace.find("denoising_step_0") != std::string::npos);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("output paths expand {pid} and {rank} when written") {
    const std::string pid = std::to_string(static_cast<long long>(getpid()));
    unsetenv("RANK");
    unsetenv("LOCAL_RANK");
    CHECK(diffscope::detail::expand_output_path("d/dump-{pid}.json") == "d/dump-" + pid + ".json");
    CHECK(diffscope::detail::expand_output_path("r{rank}-{rank}.json") == "r0-0.json");
    setenv("LOCAL_RANK", "3", 1);
    CHECK(diffscope::detail::expand_output_path("r{rank}.json") == "r3.json");
    setenv("RANK", "5", 1);
    CHECK(diffscope::detail::expand_output_path("r{rank}.json") == "r5.json");
    unsetenv("RANK");
    unsetenv("LOCAL_RANK");
    CHECK(diffscope::detail::expand_output_path("plain.json") == "plain.json");
  }

  TEST_CASE("snapshot while running returns what was collected so far") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    { DIFFSCOPE_SCOPE("first"); }
    auto mid = c.snapshot();
    CHECK(find_scope(mid, "first"));
    { DIFFSCOPE_SCOPE("second"); }
    auto r = c.stop();
    CHECK(find_scope(r, "second"));
  }

  TEST_CASE("the collector reports its own overhead") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    for (int i = 0; i < 100; ++i) {
      DIFFSCOPE_SCOPE("x");
    }
    auto r = c.stop();
    CHECK(r.overhead.ranges == 100);
    CHECK(r.overhead.per_range_ns > 0);
    CHECK(r.overhead.per_launch_callback_ns > 0);
  }
}
