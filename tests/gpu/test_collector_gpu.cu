// The collector on a real GPU: attribution against CUDA-event ground truth, streams,
// a CPU running ahead, graphs, threads, another CUPTI subscriber, exit with work in flight.
// Exits 77 (skipped) without a usable GPU (tests/main.cpp).
#include <doctest/doctest.h>

#include <diffscope/collector.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ground_truth.cuh"
#include "spin_kernel.cuh"

using diffscope_test::elapsed_ms;
using diffscope_test::spin;
using diffscope_test::within;

namespace {

#define CUDA_OK(expr) REQUIRE((expr) == cudaSuccess)

const diffscope::scope_result* find_scope(const diffscope::results& r, const std::string& path) {
  for (const auto& s : r.scopes)
    if (s.path == path) return &s;
  return nullptr;
}

// The scope at `path`; the test stops here when there is none.
const diffscope::scope_result& scope_at(const diffscope::results& r, const std::string& path) {
  const auto* s = find_scope(r, path);
  REQUIRE_MESSAGE(s != nullptr, "no scope " << path);
  return *s;
}

// The defaults, but for DIFFSCOPE_EXPERIMENT_CUPTI_* (which CUPTI settings to run the tests under).
diffscope::collector_options quiet() {
  diffscope::collector_options o;
  o.cupti = diffscope::collector_options::from_env().cupti;
  return o;
}

// Starts the collector and runs one kernel outside any scope: CUPTI instruments a module at
// its first launch after tracing is enabled (about a millisecond), which would otherwise
// land in the first measured scope.
void start_warm(cudaStream_t s) {
  REQUIRE(diffscope::collector::instance().start(quiet()));
  spin(1000, s);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
}

}  // namespace

TEST_SUITE("collector_gpu") {
  TEST_CASE("kernels in nested scopes match CUDA-event ground truth within 2%") {
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1, e2;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaEventCreate(&e2);
    spin(1000, s);  // warm up the module
    CUDA_OK(cudaStreamSynchronize(s));

    auto& c = diffscope::collector::instance();
    start_warm(s);
    // Keep the GPU busy while the scopes launch, so the measured kernels run back to back and
    // the events bracket GPU work only, not launch latency.
    spin(3'000'000, s);
    {
      DIFFSCOPE_SCOPE("outer");
      cudaEventRecord(e0, s);
      {
        DIFFSCOPE_SCOPE("inner");
        for (int i = 0; i < 5; ++i) spin(200'000, s);
      }
      cudaEventRecord(e1, s);
      spin(300'000, s);
      cudaEventRecord(e2, s);
    }
    auto r = c.stop();
    CUDA_OK(cudaStreamSynchronize(s));
    const float inner_truth = elapsed_ms(e0, e1), outer_truth = elapsed_ms(e0, e2);
    const auto* inner = find_scope(r, "outer/inner");
    const auto* outer = find_scope(r, "outer");
    REQUIRE(inner);
    REQUIRE(outer);
    MESSAGE("inner envelope " << inner->gpu.envelope_ms << " ms vs events " << inner_truth
                              << " ms; outer " << outer->gpu.envelope_ms << " vs " << outer_truth);
    CHECK(inner->gpu.measured);
    CHECK(inner->gpu.kernels == 5);
    CHECK(outer->gpu.kernels == 6);
    CHECK(within(inner->gpu.envelope_ms, inner_truth, 0.02));
    CHECK(within(outer->gpu.envelope_ms, outer_truth, 0.02));
    CHECK(within(inner->gpu.busy_ms, 1.0, 0.02));
    CHECK(r.faults.unattributed_records == 0);
    cudaStreamDestroy(s);
  }

  TEST_CASE("two overlapping streams give occupied below busy") {
    cudaStream_t a, b;
    CUDA_OK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
    CUDA_OK(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
    auto& c = diffscope::collector::instance();
    start_warm(a);
    {
      // 10 ms each: the two overlap by all but the launch gap between them.
      DIFFSCOPE_SCOPE("two_streams");
      spin(10'000'000, a);
      spin(10'000'000, b);
    }
    auto r = c.stop();
    const auto* s = find_scope(r, "two_streams");
    REQUIRE(s);
    MESSAGE("busy " << s->gpu.busy_ms << " occupied " << s->gpu.occupied_ms << " envelope "
                    << s->gpu.envelope_ms);
    CHECK(s->gpu.kernels == 2);
    CHECK(within(s->gpu.busy_ms, 20.0, 0.02));
    CHECK(s->gpu.occupied_ms < 0.9 * s->gpu.busy_ms);
    CHECK(s->gpu.envelope_ms >= s->gpu.occupied_ms);
    cudaStreamDestroy(a);
    cudaStreamDestroy(b);
  }

  TEST_CASE("a CPU running ahead still gives equal per-step GPU envelopes") {
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto& c = diffscope::collector::instance();
    start_warm(s);
    // Queued work ahead of the steps: every launch below is made before the GPU reaches it,
    // even when a loaded host (ctest -j) is descheduled for a while between launches.
    spin(20'000'000, s);
    {
      DIFFSCOPE_STAGE("DenoisingStage");
      for (int i = 0; i < 10; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        for (int k = 0; k < 4; ++k) spin(250'000, s);  // 1 ms of GPU work per step
      }
    }
    auto r = c.stop();
    REQUIRE(r.steps.size() == 10);
    double host_max = 0;
    for (const auto& st : r.steps) {
      CHECK(within(st.gpu.envelope_ms, 1.0, 0.03));
      host_max = std::max(host_max, st.host_ms);
      // Profile mode: the step's busy by category, its spin kernels all in one, summing to it.
      CHECK(st.categories_measured);
      double sum = 0;
      for (const auto& cat : st.categories) sum += cat.busy_ms;
      CHECK(sum == doctest::Approx(st.gpu.busy_ms).epsilon(1e-9));
      CHECK(st.categories.size() == 1);
    }
    MESSAGE("step 0 host " << r.steps[0].host_ms << " ms, envelope " << r.steps[0].gpu.envelope_ms
                           << " ms; max host " << host_max << " ms");
    // The host only enqueues: its step times say nothing about the 1 ms of GPU work.
    CHECK(host_max < 0.5);
    REQUIRE(r.stages.size() == 1);
    CHECK(within(r.stages[0].gpu.envelope_ms, 10.0, 0.03));
    cudaStreamDestroy(s);
  }

  TEST_CASE("a graph captured in scopes A and B and replayed in C attributes to C/A and C/B") {
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto& c = diffscope::collector::instance();
    REQUIRE(c.start(quiet()));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    {
      DIFFSCOPE_SCOPE("A");
      spin(100'000, s);
    }
    {
      DIFFSCOPE_SCOPE("B");
      spin(50'000, s);
      spin(50'000, s);
    }
    CUDA_OK(cudaStreamEndCapture(s, &graph));
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    {
      DIFFSCOPE_SCOPE("C");
      for (int i = 0; i < 3; ++i) CUDA_OK(cudaGraphLaunch(exec, s));
    }
    auto r = c.stop();
    const auto* ca = find_scope(r, "C/A");
    const auto* cb = find_scope(r, "C/B");
    const auto* cc = find_scope(r, "C");
    REQUIRE(cc);
    REQUIRE(ca);
    REQUIRE(cb);
    CHECK(cc->gpu.kernels == 9);
    CHECK(ca->gpu.kernels == 3);
    CHECK(cb->gpu.kernels == 6);
    CHECK(within(ca->gpu.busy_ms, 0.3, 0.03));
    CHECK(within(cb->gpu.busy_ms, 0.3, 0.03));
    CHECK(r.faults.unattributed_records == 0);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
  }

  TEST_CASE("one window: requests whose work runs after their ranges closed, graphs included") {
    // The host runs ahead: request r1's kernels (behind a 5 ms one) run while r2 is open and
    // after it closed; a graph captured before any request is replayed in the warm-up and in
    // both requests. Every record counts in the request that launched it.
    for (const auto window :
         {diffscope::detail::window_mode::last, diffscope::detail::window_mode::requests}) {
      CAPTURE(static_cast<int>(window));
      cudaStream_t s;
      CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      auto& c = diffscope::collector::instance();
      auto o = quiet();
      o.window = window;
      REQUIRE(c.start(o));
      spin(1000, s);  // module instrumentation, outside any range
      CUDA_OK(cudaStreamSynchronize(s));
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      {
        DIFFSCOPE_SCOPE("G");
        spin(100'000, s);
        spin(100'000, s);
      }
      CUDA_OK(cudaStreamEndCapture(s, &graph));
      CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
      {
        DIFFSCOPE_WARMUP();
        spin(2'000'000, s);
        CUDA_OK(cudaGraphLaunch(exec, s));
      }
      spin(1'000'000, s);  // between the warm-up and the requests, in no range
      for (int r = 1; r <= 2; ++r) {
        DIFFSCOPE_REQUEST("r" + std::to_string(r));
        if (r == 1) spin(5'000'000, s);
        DIFFSCOPE_SCOPE("denoise");
        for (int i = 0; i < 3; ++i) spin(100'000 * static_cast<std::uint64_t>(r + 1), s);
        CUDA_OK(cudaGraphLaunch(exec, s));
      }
      spin(500'000, s);  // after the requests, in no range
      auto r = c.stop();
      CUDA_OK(cudaStreamSynchronize(s));
      REQUIRE(r.requests.size() == 3);
      const bool all = window == diffscope::detail::window_mode::requests;
      const auto& r1 = r.requests[1].gpu;
      const auto& r2 = r.requests[2].gpu;
      CHECK(r1.kernels == 6);
      CHECK(r2.kernels == 5);
      CHECK(within(r1.busy_ms, 5.8, 0.03));
      CHECK(within(r2.busy_ms, 1.1, 0.03));
      double kernels = 0;
      std::uint64_t count = 0;
      for (const auto& k : r.kernels) {
        kernels += k.total_ms;
        count += k.count;
      }
      const double busy = all ? r1.busy_ms + r2.busy_ms : r2.busy_ms;
      MESSAGE("window kernels " << kernels << " ms, requests' busy " << busy << " ms");
      CHECK(within(kernels, busy, 1e-6));
      CHECK(count == (all ? 11u : 5u));
      CHECK(r.window.gpu.operations() == count);
      CHECK(within(r.window.gpu.busy_ms, busy, 1e-6));
      CHECK(scope_at(r, "request/denoise/G").gpu.kernels == (all ? 4u : 2u));
      CHECK(scope_at(r, "request/denoise").host.calls == (all ? 2u : 1u));
      // Outside: the first kernel, the warm-up (its replay too), the two in no range.
      CHECK(r.window.outside.operations() == 6);
      CHECK(within(r.window.outside.busy_ms, 3.7 + 0.001, 0.03));
      CHECK(r.window.warmups.operations() == 3);
      CHECK(r.faults.unattributed_records == 0);
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      cudaStreamDestroy(s);
    }
  }

  TEST_CASE("eight threads launching at once are never misattributed") {
    constexpr int threads = 8, launches = 200;
    // Each thread launches its own kernel (the tag is in its name), so every kernel record
    // says which thread launched it, whatever its timing.
    using launcher = void (*)(cudaStream_t);
    const launcher launch[threads] = {
        [](cudaStream_t s) { diffscope_test::tagged_spin<0><<<1, 1, 0, s>>>(2000); },
        [](cudaStream_t s) { diffscope_test::tagged_spin<1><<<1, 1, 0, s>>>(2000); },
        [](cudaStream_t s) { diffscope_test::tagged_spin<2><<<1, 1, 0, s>>>(2000); },
        [](cudaStream_t s) { diffscope_test::tagged_spin<3><<<1, 1, 0, s>>>(2000); },
        [](cudaStream_t s) { diffscope_test::tagged_spin<4><<<1, 1, 0, s>>>(2000); },
        [](cudaStream_t s) { diffscope_test::tagged_spin<5><<<1, 1, 0, s>>>(2000); },
        [](cudaStream_t s) { diffscope_test::tagged_spin<6><<<1, 1, 0, s>>>(2000); },
        [](cudaStream_t s) { diffscope_test::tagged_spin<7><<<1, 1, 0, s>>>(2000); },
    };
    auto& c = diffscope::collector::instance();
    REQUIRE(c.start(quiet()));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([t, &launch] {
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        {
          const std::string name = "thread" + std::to_string(t);
          diffscope::scope sc{name};
          for (int i = 0; i < launches; ++i) launch[t](s);
        }
        cudaStreamSynchronize(s);
        cudaStreamDestroy(s);
      });
    }
    for (auto& th : pool) th.join();
    auto r = c.stop();
    for (int t = 0; t < threads; ++t) {
      const auto* s = find_scope(r, "thread" + std::to_string(t));
      REQUIRE(s);
      CHECK(s->gpu.kernels == launches);
    }
    int checked = 0;
    for (const auto& k : r.kernels) {
      if (k.name.find("tagged_spin") == std::string::npos) continue;
      // Demangled: "void diffscope_test::tagged_spin<3>(int)".
      const std::string tag = k.name.substr(k.name.find("tagged_spin<") + 12, 1);
      CAPTURE(k.name);
      CHECK(k.scope_path == "thread" + tag);
      CHECK(k.count == launches);
      ++checked;
    }
    CHECK(checked == threads);
    CHECK(r.faults.unattributed_records == 0);
    // Several launching threads: `automatic` keeps the runtime callbacks (switching them off
    // under another thread's runtime call lost its later launches).
    if (quiet().cupti.launch_apis == diffscope::detail::cupti_launch_apis::automatic)
      CHECK(r.overhead.launch_callbacks == "runtime+driver");
  }

  TEST_CASE("profile mode paused: CUPTI traces nothing meanwhile, and resumes cleanly") {
    cudaStream_t s{};
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto& c = diffscope::collector::instance();
    start_warm(s);
    {
      DIFFSCOPE_SCOPE("before");
      for (int i = 0; i < 4; ++i) spin(20000, s);
    }
    diffscope::set_timing_paused(true);
    {
      DIFFSCOPE_SCOPE("paused");
      for (int i = 0; i < 4; ++i) spin(20000, s);
    }
    diffscope::set_timing_paused(false);
    {
      DIFFSCOPE_SCOPE("after");
      for (int i = 0; i < 4; ++i) spin(20000, s);
    }
    CUDA_OK(cudaStreamSynchronize(s));
    const auto r = c.stop();
    const auto& before = scope_at(r, "before");
    const auto& paused = scope_at(r, "paused");
    const auto& after = scope_at(r, "after");
    CHECK(before.gpu.kernels == 4);
    CHECK(paused.gpu.kernels == 0);  // no callbacks, no records
    CHECK(paused.launches == 0);
    CHECK(paused.host.calls == 1);  // host timing goes on
    CHECK(after.gpu.kernels == 4);
    // Records of the paused launches would arrive without a launch: none must.
    CHECK(r.faults.unattributed_records == 0);
    CHECK(r.faults.late_records == 0);
    CHECK(r.faults.dropped_records == 0);
    cudaStreamDestroy(s);
  }

  TEST_CASE("the runtime launch callbacks go once proved redundant; attribution stays exact") {
    cudaStream_t s{};
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto& c = diffscope::collector::instance();
    start_warm(s);  // the default launch APIs: automatic, 256 launches to verify
    {
      DIFFSCOPE_SCOPE("verifying");
      for (int i = 0; i < 300; ++i) spin(2000, s);
    }
    {
      DIFFSCOPE_SCOPE("after_drop");  // this push drops them
      for (int i = 0; i < 50; ++i) spin(2000, s);
    }
    diffscope::set_timing_paused(true);  // resuming must not bring them back
    diffscope::set_timing_paused(false);
    {
      DIFFSCOPE_SCOPE("after_resume");
      for (int i = 0; i < 20; ++i) spin(2000, s);
    }
    CUDA_OK(cudaStreamSynchronize(s));
    const auto r = c.stop();
    const std::pair<std::string, std::uint64_t> expected[] = {
        {"verifying", 300}, {"after_drop", 50}, {"after_resume", 20}};
    for (const auto& e : expected) {
      CAPTURE(e.first);
      const auto& sc = scope_at(r, e.first);
      CHECK(sc.gpu.kernels == e.second);
      CHECK(sc.launches == e.second);
    }
    CHECK(r.faults.unattributed_records == 0);
    CHECK(r.faults.late_records == 0);
    MESSAGE("launch callbacks at the end: " << r.overhead.launch_callbacks);
    if (CUDART_VERSION >= 13000) CHECK(r.overhead.launch_callbacks == "driver");
    cudaStreamDestroy(s);
  }

  TEST_CASE("with no launch callbacks the dump reports none, and the records stay unattributed") {
    // launch_apis=none: CUPTI's records alone (what profile_cost's 'bare' measures).
    cudaStream_t s{};
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto& c = diffscope::collector::instance();
    diffscope::collector_options o = quiet();
    o.cupti.launch_apis = diffscope::detail::cupti_launch_apis::none;
    REQUIRE(c.start(o));
    {
      DIFFSCOPE_SCOPE("unseen");
      for (int i = 0; i < 40; ++i) spin(2000, s);
    }
    CUDA_OK(cudaStreamSynchronize(s));
    const auto r = c.stop();
    CHECK(r.overhead.per_launch_callback_ns == 0);  // no callback ran: no figure for one
    CHECK(r.overhead.callbacks == 0);
    CHECK(r.faults.unattributed_records >= 40);
    CHECK(scope_at(r, "unseen").launches == 0);
    cudaStreamDestroy(s);
  }

  TEST_CASE("copies and sets are attributed with their bytes") {
    void* d = nullptr;
    CUDA_OK(cudaMalloc(&d, 1 << 20));
    std::vector<char> h(1 << 20, 1);
    auto& c = diffscope::collector::instance();
    REQUIRE(c.start(quiet()));
    {
      DIFFSCOPE_STAGE("CopyStage");
      DIFFSCOPE_SCOPE("copies");
      CUDA_OK(cudaMemcpy(d, h.data(), h.size(), cudaMemcpyHostToDevice));
      CUDA_OK(cudaMemset(d, 0, 1 << 20));
    }
    auto r = c.stop();
    // Device memory checkpoints: at start, after the stage, at the end.
    std::vector<std::string> names;
    for (const auto& m : r.memory) {
      names.push_back(m.name);
      CHECK(m.used_mb > 0);
      CHECK(m.peak_used_mb >= m.used_mb);
    }
    CHECK(names == std::vector<std::string>{"start", "after_CopyStage", "end"});
    const auto* s = find_scope(r, "CopyStage/copies");
    REQUIRE(s);
    CHECK(s->gpu.memcpys == 1);
    CHECK(s->gpu.memsets == 1);
    CHECK(s->gpu.bytes == 2u << 20);
    cudaFree(d);
  }

  TEST_CASE("past the scope cap, folded calls keep their GPU work, in both modes") {
    void* d = nullptr;
    CUDA_OK(cudaMalloc(&d, 1 << 20));
    // Ten distinct scopes under one stage, each with a nested scope, and two sets each: one
    // in the nested scope, one in the outer. A cap of 3 folds most of them.
    const auto loop = [d] {
      nvtxRangePushA("stage_DenoisingStage");
      for (int i = 0; i < 10; ++i) {
        nvtxRangePushA(("module_" + std::to_string(i)).c_str());
        nvtxRangePushA("nested");
        REQUIRE(cudaMemsetAsync(d, i, 1 << 20, nullptr) == cudaSuccess);
        nvtxRangePop();
        REQUIRE(cudaMemsetAsync(d, i, 1 << 20, nullptr) == cudaSuccess);
        nvtxRangePop();
      }
      nvtxRangePop();
    };
    auto& c = diffscope::collector::instance();
    // What folds is decided on the host: a run without GPU timing gives the expected counts.
    diffscope::collector_options o = quiet();
    o.max_scopes = 3;
    o.gpu = false;
    c.start(o);
    loop();
    const auto host = c.stop();
    const auto* host_other = find_scope(host, "DenoisingStage/(other)");
    REQUIRE(host_other != nullptr);
    REQUIRE(host.faults.ranges_folded > 0);
    for (const bool perf : {false, true}) {
      CAPTURE(perf);
      o.gpu = true;
      o.mode = perf ? diffscope::timing_mode::perf : diffscope::timing_mode::profile;
      o.perf_all_scopes = true;
      REQUIRE(c.start(o));
      loop();
      CUDA_OK(cudaDeviceSynchronize());
      const auto r = c.stop();
      CHECK(r.faults.ranges_folded == host.faults.ranges_folded);
      CHECK(r.faults.names_folded == host.faults.names_folded);
      CHECK(r.scopes.size() == host.scopes.size());
      CHECK(r.faults.timing_failures == 0);
      const auto& other = scope_at(r, "DenoisingStage/(other)");
      CHECK(other.host.calls == host_other->host.calls);
      CHECK(other.gpu.measured);
      CHECK(other.gpu.busy_ms > 0);
      if (perf) {
        CHECK(other.gpu.timed_calls == other.host.calls);
      } else {
        // Every set of a folded call, the nested one's included, lands in (other).
        CHECK(other.gpu.memsets == 2 * other.host.calls);
        CHECK(r.faults.unattributed_records == 0);
      }
    }
    cudaFree(d);
  }

  TEST_CASE("another CUPTI subscriber is named and host timings go on") {
    CUpti_SubscriberHandle other = nullptr;
    CUpti_SubscriberParams params{};
    params.structSize = CUpti_SubscriberParams_STRUCT_SIZE;
    params.subscriberName = "test-profiler";
    REQUIRE(cuptiSubscribe_v2(
                &other, [](void*, CUpti_CallbackDomain, CUpti_CallbackId, const void*) {}, nullptr,
                &params) == CUPTI_SUCCESS);
    auto& c = diffscope::collector::instance();
    CHECK_FALSE(c.start(quiet()));
    { DIFFSCOPE_SCOPE("held"); }
    auto r = c.stop();
    cuptiUnsubscribe(other);
    MESSAGE("reason: " << r.status.reason << " holder: " << r.status.cupti_holder);
    CHECK_FALSE(r.status.gpu_timing);
    CHECK(r.status.cupti_holder.find("test-profiler") != std::string::npos);
    REQUIRE(find_scope(r, "held"));
    CHECK(find_scope(r, "held")->host.calls == 1);
    // And CUPTI is ours again once released.
    CHECK(c.start(quiet()));
    c.stop();
  }

  TEST_CASE("a process that exits with kernels in flight loses no record") {
    const std::string dump = "diffscope_exit_app_dump.json";
    std::remove(dump.c_str());
    const std::string cmd = std::string("DIFFSCOPE_DUMP=") + dump + " " + DIFFSCOPE_EXIT_APP;
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream f(dump);
    REQUIRE(f.good());
    const auto j = nlohmann::json::parse(f);
    const auto& ds = j.at("diffscope");
    CHECK(ds.at("status").at("gpu_timing").get<bool>());
    bool found = false;
    for (const auto& s : ds.at("scopes")) {
      if (s.at("path") == "in_flight") {
        found = true;
        CHECK(s.at("gpu").at("kernels").get<int>() == 20);
      }
    }
    CHECK(found);
  }
}
