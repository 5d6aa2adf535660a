// Perf mode on a real GPU: per-step times against CUDA-event ground truth, a named stream,
// every-scope granularity, CUPTI held by someone else, a thread without a context.
// Exits 77 (skipped) without a usable GPU (tests/main.cpp).
#include <doctest/doctest.h>

#include <diffscope/collector.hpp>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "ground_truth.cuh"
#include "spin_kernel.cuh"

using diffscope_test::elapsed_ms;
using diffscope_test::spin;
using diffscope_test::within;

namespace {

#define CUDA_OK(expr) REQUIRE((expr) == cudaSuccess)

diffscope::collector_options perf(bool all = false) {
  diffscope::collector_options o;
  o.mode = diffscope::timing_mode::perf;
  o.perf_all_scopes = all;
  return o;
}

const diffscope::scope_result* find_scope(const diffscope::results& r, const std::string& path) {
  for (const auto& s : r.scopes)
    if (s.path == path) return &s;
  return nullptr;
}

}  // namespace

TEST_SUITE("perf_mode_gpu") {
  TEST_CASE("per-step GPU times match CUDA-event ground truth within 2%, CPU running ahead") {
    CUDA_OK(cudaFree(nullptr));  // a context on this thread
    constexpr int steps = 8;
    std::vector<cudaEvent_t> truth(steps + 1);
    for (auto& e : truth) CUDA_OK(cudaEventCreate(&e));
    auto& c = diffscope::collector::instance();
    REQUIRE(c.start(perf()));
    spin(5'000'000);  // keeps the GPU busy while the host races through every step
    {
      DIFFSCOPE_STAGE("DenoisingStage");
      for (int i = 0; i < steps; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        cudaEventRecord(truth[i], 0);
        for (int k = 0; k <= i % 3; ++k) spin(300'000 + 100'000 * k, 0);
        cudaEventRecord(truth[i + 1], 0);
      }
    }
    const diffscope::results r = c.stop();
    CHECK(r.status.mode == "perf");
    REQUIRE(r.status.gpu_timing);
    CHECK(r.kernels.empty());  // perf mode traces no kernel
    REQUIRE(r.steps.size() == steps);
    for (int i = 0; i < steps; ++i) {
      const double t = elapsed_ms(truth[i], truth[i + 1]);
      INFO("step " << i << ": perf " << r.steps[i].gpu.envelope_ms << " ms, events " << t);
      CHECK(r.steps[i].gpu.timed_calls == 1);
      CHECK(within(r.steps[i].gpu.envelope_ms, t, 0.02));
      CHECK(r.steps[i].host_ms < r.steps[i].gpu.envelope_ms);  // the host did not wait
    }
    REQUIRE(r.stages.size() == 1);
    const double stage_truth = elapsed_ms(truth[0], truth[steps]);
    CHECK(within(r.stages[0].gpu.envelope_ms, stage_truth, 0.02));
    CHECK(r.faults.timing_failures == 0);
    CHECK(r.faults.timing_unresolved == 0);
    CHECK(r.overhead.timed_scopes == steps + 1);
    CHECK(r.overhead.chained_steps == steps - 1);  // each step after the first: one record
    MESSAGE("per timed scope: " << r.overhead.per_timed_scope_ns << " ns");
    for (auto& e : truth) cudaEventDestroy(e);
  }

  TEST_CASE("chained steps: work between two steps counts in the later one; off: in neither") {
    CUDA_OK(cudaFree(nullptr));
    for (const bool chain : {true, false}) {
      INFO("chain_steps " << chain);
      cudaEvent_t e[4];  // step 0's start and end, the gap's end, step 1's end
      for (auto& x : e) CUDA_OK(cudaEventCreate(&x));
      auto& c = diffscope::collector::instance();
      diffscope::collector_options o = perf();
      o.perf_chain_steps = chain;
      REQUIRE(c.start(o));
      spin(3'000'000);  // the host runs ahead: every record waits in the stream
      {
        DIFFSCOPE_STAGE("DenoisingStage");
        {
          DIFFSCOPE_DENOISE_STEP(0);
          cudaEventRecord(e[0], 0);
          spin(400'000);
          cudaEventRecord(e[1], 0);
        }
        spin(600'000);  // between the steps, in no step
        cudaEventRecord(e[2], 0);
        {
          DIFFSCOPE_DENOISE_STEP(1);
          spin(800'000);
          cudaEventRecord(e[3], 0);
        }
      }
      const diffscope::results r = c.stop();
      REQUIRE(r.steps.size() == 2);
      const double step1 = r.steps[1].gpu.envelope_ms;
      INFO("step 1: perf " << step1 << " ms; with the gap " << elapsed_ms(e[1], e[3])
                           << ", without " << elapsed_ms(e[2], e[3]));
      CHECK(within(r.steps[0].gpu.envelope_ms, elapsed_ms(e[0], e[1]), 0.02));
      CHECK(within(step1, elapsed_ms(chain ? e[1] : e[2], e[3]), 0.02));
      CHECK(r.overhead.chained_steps == (chain ? 1u : 0u));
      CHECK(r.status.perf_settings == (chain ? "" : "chain_steps=off"));
      for (auto& x : e) cudaEventDestroy(x);
    }
  }

  TEST_CASE("a named stream is timed; every-scope granularity times inner scopes") {
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t a, b;
    CUDA_OK(cudaEventCreate(&a));
    CUDA_OK(cudaEventCreate(&b));
    auto& c = diffscope::collector::instance();
    REQUIRE(c.start(perf(/*all=*/true)));
    diffscope::set_timing_stream(s);
    spin(3'000'000, s);
    {
      DIFFSCOPE_SCOPE("outer");
      cudaEventRecord(a, s);
      {
        DIFFSCOPE_SCOPE("inner");
        for (int i = 0; i < 4; ++i) spin(250'000, s);
      }
      cudaEventRecord(b, s);
      spin(500'000, s);
    }
    diffscope::set_timing_stream(nullptr);
    const diffscope::results r = c.stop();
    CUDA_OK(cudaStreamSynchronize(s));
    const auto* outer = find_scope(r, "outer");
    const auto* inner = find_scope(r, "outer/inner");
    REQUIRE(outer != nullptr);
    REQUIRE(inner != nullptr);
    CHECK(inner->gpu.timed_calls == 1);
    CHECK(within(inner->gpu.envelope_ms, elapsed_ms(a, b), 0.02));
    CHECK(within(outer->gpu.envelope_ms, elapsed_ms(a, b) + 0.5, 0.03));
    cudaStreamDestroy(s);
  }

  TEST_CASE("perf mode needs no CUPTI: another subscriber holding it changes nothing") {
    CUpti_SubscriberHandle other;
    REQUIRE(cuptiSubscribe(
                &other, [](void*, CUpti_CallbackDomain, CUpti_CallbackId, const void*) {},
                nullptr) == CUPTI_SUCCESS);
    cudaEvent_t a, b;
    CUDA_OK(cudaEventCreate(&a));
    CUDA_OK(cudaEventCreate(&b));
    auto& c = diffscope::collector::instance();
    REQUIRE(c.start(perf()));
    spin(3'000'000, 0);  // the GPU is busy: the step's events bracket GPU work only
    {
      DIFFSCOPE_DENOISE_STEP(0);
      cudaEventRecord(a, 0);
      spin(1'000'000, 0);
      cudaEventRecord(b, 0);
    }
    const diffscope::results r = c.stop();
    cuptiUnsubscribe(other);
    CHECK(r.status.gpu_timing);
    CHECK(r.status.cupti_holder.empty());  // never asked for CUPTI
    REQUIRE(r.steps.size() == 1);
    const double truth = elapsed_ms(a, b);
    INFO("step span " << r.steps[0].gpu.envelope_ms << " ms, events " << truth << " ms");
    CHECK(within(r.steps[0].gpu.envelope_ms, truth, 0.02));
  }

  TEST_CASE("a thread without a CUDA context is not given one; its scope stays host-only") {
    auto& c = diffscope::collector::instance();
    REQUIRE(c.start(perf()));
    std::thread t([] { DIFFSCOPE_DENOISE_STEP(7); });
    t.join();
    const diffscope::results r = c.stop();
    CHECK(r.faults.untimed_no_context == 1);
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].gpu.timed_calls == 0);
  }
}
