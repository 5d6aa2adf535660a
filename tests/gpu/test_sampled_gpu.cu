// Sampled mode on a real GPU against profile mode and CUDA events: one deterministic loop run
// under both, scope shares, kernel totals, stage and step spans, which steps were traced.
// Exits 77 (skipped) without a usable GPU (tests/main.cpp).
#include <doctest/doctest.h>

#include <diffscope/collector.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ground_truth.cuh"
#include "spin_kernel.cuh"

using diffscope_test::elapsed_ms;
using diffscope_test::tagged_spin;

namespace {

#define CUDA_OK(expr) REQUIRE((expr) == cudaSuccess)

constexpr int steps = 12;
constexpr char step_path[] = "request/DenoisingStage/denoise_step";

// One step's work (about 1.9 ms of GPU time in 32 kernels of tens of microseconds) and the
// work outside the steps, each kernel of its own name so kernel totals can be told apart.
// tagged_spin<4> runs both inside the steps (scaled from the sample) and in the encoder
// (traced whole): its total mixes the two.
void step_body(cudaStream_t s) {
  {
    DIFFSCOPE_ATTENTION("attention");
    for (int k = 0; k < 8; ++k) {
      tagged_spin<1><<<1, 1, 0, s>>>(40'000);
      tagged_spin<2><<<1, 1, 0, s>>>(90'000);
    }
  }
  {
    DIFFSCOPE_SCOPE("mlp");
    for (int k = 0; k < 12; ++k) tagged_spin<3><<<1, 1, 0, s>>>(60'000);
  }
  for (int k = 0; k < 4; ++k) tagged_spin<4><<<1, 1, 0, s>>>(20'000);  // in the step itself
}

void encode_body(cudaStream_t s) {
  for (int k = 0; k < 10; ++k) tagged_spin<5><<<1, 1, 0, s>>>(50'000);
  for (int k = 0; k < 5; ++k) tagged_spin<4><<<1, 1, 0, s>>>(20'000);
}

void decode_body(cudaStream_t s) {
  for (int k = 0; k < 5; ++k) tagged_spin<6><<<1, 1, 0, s>>>(70'000);
}

// Loads every kernel once, outside any collection (lazy module loading costs host time).
void warm_kernels(cudaStream_t s) {
  tagged_spin<1><<<1, 1, 0, s>>>(1000);
  tagged_spin<2><<<1, 1, 0, s>>>(1000);
  tagged_spin<3><<<1, 1, 0, s>>>(1000);
  tagged_spin<4><<<1, 1, 0, s>>>(1000);
  tagged_spin<5><<<1, 1, 0, s>>>(1000);
  tagged_spin<6><<<1, 1, 0, s>>>(1000);
  tagged_spin<7><<<1, 1, 0, s>>>(1000);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
}

struct run_result {
  diffscope::results r;
  std::vector<double> step_truth;  // CUDA events just inside each step, ms
  double stage_truth = 0;          // CUDA events just inside the denoising stage, ms
};

// One request (encode, 12 denoise steps, decode) under the collector with these options, the
// test's own events around the stage and every step, all on `s` (the legacy default stream,
// where the collector's events go). The host runs ahead of the GPU: the steps' kernels run
// back to back whatever tracing costs the host.
run_result run_loop(const diffscope::collector_options& o, cudaStream_t s) {
  std::vector<cudaEvent_t> begin(steps), end(steps);
  cudaEvent_t stage_begin, stage_end;
  for (int i = 0; i < steps; ++i) {
    CUDA_OK(cudaEventCreate(&begin[i]));
    CUDA_OK(cudaEventCreate(&end[i]));
  }
  CUDA_OK(cudaEventCreate(&stage_begin));
  CUDA_OK(cudaEventCreate(&stage_end));
  auto& c = diffscope::collector::instance();
  REQUIRE(c.start(o));
  tagged_spin<7><<<1, 1, 0, s>>>(1000);  // CUPTI instruments the module at its first launch
  CUDA_OK(cudaStreamSynchronize(s));
  tagged_spin<7><<<1, 1, 0, s>>>(30'000'000);  // queued ahead of the request, in no range
  {
    DIFFSCOPE_REQUEST("r0");
    {
      DIFFSCOPE_STAGE("TextEncodingStage");
      encode_body(s);
    }
    {
      DIFFSCOPE_STAGE("DenoisingStage");
      cudaEventRecord(stage_begin, s);
      for (int i = 0; i < steps; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        cudaEventRecord(begin[i], s);
        step_body(s);
        cudaEventRecord(end[i], s);
      }
      cudaEventRecord(stage_end, s);
    }
    {
      DIFFSCOPE_STAGE("DecodingStage");
      decode_body(s);
    }
  }
  run_result out;
  out.r = c.stop();
  CUDA_OK(cudaStreamSynchronize(s));
  for (int i = 0; i < steps; ++i) out.step_truth.push_back(elapsed_ms(begin[i], end[i]));
  out.stage_truth = elapsed_ms(stage_begin, stage_end);
  for (int i = 0; i < steps; ++i) {
    cudaEventDestroy(begin[i]);
    cudaEventDestroy(end[i]);
  }
  cudaEventDestroy(stage_begin);
  cudaEventDestroy(stage_end);
  return out;
}

// The defaults, but for DIFFSCOPE_EXPERIMENT_CUPTI_* (which CUPTI settings to run under).
diffscope::collector_options with_mode(diffscope::timing_mode mode) {
  diffscope::collector_options o;
  o.cupti = diffscope::collector_options::from_env().cupti;
  o.mode = mode;
  return o;
}

const diffscope::scope_result& scope_at(const diffscope::results& r, const std::string& path) {
  const diffscope::scope_result* found = nullptr;
  for (const auto& sc : r.scopes)
    if (sc.path == path) found = &sc;
  REQUIRE_MESSAGE(found != nullptr, "no scope " << path);
  return *found;
}

bool inside_steps(const std::string& path) {
  return path.compare(0, sizeof step_path - 1, step_path) == 0;
}

// Total busy ms and count by kernel name (a name may have several rows, one per scope).
std::map<std::string, std::pair<double, double>> kernel_totals(const diffscope::results& r) {
  std::map<std::string, std::pair<double, double>> out;
  for (const auto& k : r.kernels) {
    out[k.name].first += k.total_ms;
    out[k.name].second += static_cast<double>(k.count);
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Every bound of sampled mode against the profile run of the same loop.
void check_against_profile(const run_result& prof, const run_result& samp,
                           const diffscope::detail::step_sample_rule& rule) {
  const diffscope::results& p = prof.r;
  const diffscope::results& q = samp.r;
  REQUIRE(p.status.gpu_timing);
  REQUIRE(q.status.gpu_timing);
  CHECK(p.status.mode == "profile");
  CHECK(q.status.mode == "sampled");
  CHECK(q.faults.sample_switch_failures == 0);
  CHECK(q.faults.sampled_steps_empty == 0);
  CHECK(q.faults.dropped_records == 0);

  // Which steps were traced.
  std::vector<std::int64_t> expected;
  for (int i = 0; i < steps; ++i)
    if (rule.traces(i)) expected.push_back(i);
  CHECK(q.sampling.active);
  CHECK(q.sampling.rule == rule.describe());
  CHECK(q.sampling.steps == static_cast<std::uint64_t>(steps));
  CHECK(q.sampling.traced_steps == expected.size());
  CHECK(q.sampling.traced_indices == expected);
  MESSAGE("sampled: " << q.sampling.rule << ", traced " << q.sampling.traced_steps << " of "
                      << q.sampling.steps << ", " << q.sampling.switches << " switches in "
                      << q.sampling.switch_ms << " ms, launches traced "
                      << q.sampling.launches_traced << ", untraced (estimated) "
                      << q.sampling.launches_untraced_estimated);

  // Every step: traced as the rule says; its span is what the test's events measured.
  REQUIRE(p.steps.size() == steps);
  REQUIRE(q.steps.size() == steps);
  std::vector<double> step_error;
  std::ostringstream spans;  // one MESSAGE line for every step
  spans << "step span / CUDA events, ms (* traced):";
  for (int i = 0; i < steps; ++i) {
    const auto& st = q.steps[i];
    INFO("step " << i);
    CHECK(st.step == i);
    CHECK(st.traced == rule.traces(i));
    CHECK(st.gpu.timed_calls == 1);
    CHECK(st.gpu.span_ms > 0);
    if (st.traced) {
      CHECK(!st.kernels.empty());
      CHECK(st.categories_measured);
      CHECK(diffscope_test::within(st.gpu.busy_ms, p.steps[i].gpu.busy_ms, 0.01));
    } else {
      CHECK(st.kernels.empty());
      CHECK(!st.categories_measured);
      CHECK(st.gpu.busy_ms == 0);
      CHECK(st.gpu.kernels == 0);
    }
    CHECK(p.steps[i].traced);
    step_error.push_back(std::abs(st.gpu.span_ms - samp.step_truth[i]) / samp.step_truth[i]);
    spans << (i ? ", " : " ") << i << (st.traced ? "* " : " ") << st.gpu.span_ms << "/"
          << samp.step_truth[i];
  }
  MESSAGE(spans.str());
  const double step_median = median(step_error);
  MESSAGE("step span vs events: median relative error " << step_median * 100 << "%");
  CHECK(step_median <= 0.001);

  // The denoising stage's span.
  const diffscope::stage_result* stage = nullptr;
  for (const auto& st : q.stages)
    if (st.name == "DenoisingStage") stage = &st;
  REQUIRE(stage != nullptr);
  const double stage_error = std::abs(stage->gpu.span_ms - samp.stage_truth) / samp.stage_truth;
  MESSAGE("DenoisingStage: span " << stage->gpu.span_ms << " ms, events " << samp.stage_truth
                                  << " ms (" << stage_error * 100 << "%)");
  CHECK(stage->gpu.timed_calls == 1);
  CHECK(stage_error <= 0.001);
  for (const auto& st : q.stages) {
    INFO("stage " << st.name);
    CHECK(st.gpu.span_ms > 0);
  }
  REQUIRE(q.requests.size() == 1);
  CHECK(q.requests[0].gpu.span_ms > 0);

  // Every scope inside the steps: its share of the steps' busy within 1 percentage point;
  // estimated, from the traced calls, with an error. Outside the steps: exact.
  const double p_steps_busy = scope_at(p, step_path).gpu.busy_ms;
  const double q_steps_busy = scope_at(q, step_path).gpu.busy_ms;
  double p_sum = 0;
  for (const auto& st : p.steps) p_sum += st.gpu.busy_ms;
  CHECK(diffscope_test::within(p_sum, p_steps_busy, 1e-6));
  // Sampled: the traced steps' busy scaled to every step is the step scope's estimate.
  double q_traced = 0;
  for (const auto& st : q.steps) q_traced += st.gpu.busy_ms;
  CHECK(diffscope_test::within(q_traced * steps / expected.size(), q_steps_busy, 0.01));
  MESSAGE("steps' busy: profile " << p_steps_busy << " ms, sampled " << q_steps_busy << " ms ± "
                                  << scope_at(q, step_path).gpu.error_ms);
  REQUIRE(p_steps_busy > 0);
  REQUIRE(q_steps_busy > 0);
  int inside = 0;
  for (const auto& ps : p.scopes) {
    INFO("scope " << ps.path);
    const auto& qs = scope_at(q, ps.path);
    CHECK(qs.host.calls == ps.host.calls);
    if (inside_steps(ps.path)) {
      ++inside;
      const double p_share = 100 * ps.gpu.busy_ms / p_steps_busy;
      const double q_share = 100 * qs.gpu.busy_ms / q_steps_busy;
      MESSAGE(ps.path << ": share " << q_share << "% sampled (busy " << qs.gpu.busy_ms << " ± "
                      << qs.gpu.error_ms << " ms, " << qs.gpu.traced_calls << " of "
                      << qs.host.calls << " calls traced), " << p_share << "% profile (busy "
                      << ps.gpu.busy_ms << " ms)");
      CHECK(std::abs(q_share - p_share) <= 1.0);
      CHECK(qs.gpu.estimated);
      CHECK(qs.gpu.error_ms >= 0);
      CHECK(qs.gpu.traced_calls ==
            expected.size() * (qs.host.calls / static_cast<std::uint64_t>(steps)));
    } else if (ps.path.find("denoise_step") == std::string::npos &&
               ps.path.find("DenoisingStage") == std::string::npos && ps.path != "request") {
      // Encoder and decoder stages: traced whole.
      MESSAGE(ps.path << ": busy " << qs.gpu.busy_ms << " ms sampled, " << ps.gpu.busy_ms
                      << " ms profile");
      CHECK(!qs.gpu.estimated);
      CHECK(qs.gpu.error_ms == 0);
      CHECK(diffscope_test::within(qs.gpu.busy_ms, ps.gpu.busy_ms, 0.01));
    }
  }
  CHECK(inside == 3);  // the step, its attention and its mlp

  // Every kernel with >= 1% of the GPU time: within 3% of its fully traced total.
  const auto pk = kernel_totals(p);
  const auto qk = kernel_totals(q);
  double p_total = 0;
  for (const auto& [name, t] : pk) p_total += t.first;
  REQUIRE(p_total > 0);
  int big = 0;
  for (const auto& entry : pk) {
    const std::string& name = entry.first;  // INFO captures it: no structured binding
    const auto& t = entry.second;
    if (t.first < 0.01 * p_total) continue;
    ++big;
    INFO("kernel " << name);
    const auto it = qk.find(name);
    REQUIRE(it != qk.end());
    MESSAGE(name << ": " << it->second.first << " ms x" << it->second.second << " sampled, "
                 << t.first << " ms x" << t.second << " profile ("
                 << 100 * (it->second.first - t.first) / t.first << "%)");
    CHECK(diffscope_test::within(it->second.first, t.first, 0.03));
    CHECK(diffscope_test::within(it->second.second, t.second, 0.03));
  }
  CHECK(big >= 6);
  for (const auto& k : q.kernels) {
    INFO("kernel row " << k.name << " in " << k.scope_path);
    CHECK(k.error_ms >= 0);
    if (inside_steps(k.scope_path)) CHECK(k.estimated);
  }
  MESSAGE("overhead: profile wall " << p.wall_ms << " ms, sampled wall " << q.wall_ms
                                    << " ms; callbacks " << p.overhead.callbacks << " vs "
                                    << q.overhead.callbacks);
}

}  // namespace

TEST_SUITE("sampled_gpu") {
  TEST_CASE("sampled mode, default rule (steps 1-2 of 12), against profile mode and CUDA events") {
    CUDA_OK(cudaFree(nullptr));  // a context on this thread
    const cudaStream_t s = nullptr;
    warm_kernels(s);
    const run_result prof = run_loop(with_mode(diffscope::timing_mode::profile), s);
    const run_result samp = run_loop(with_mode(diffscope::timing_mode::sampled), s);
    check_against_profile(prof, samp, diffscope::detail::step_sample_rule{});
    CHECK(samp.r.sampling.rule == "steps 1-2");
    CHECK(samp.r.sampling.traced_steps == 2);
  }

  TEST_CASE("sampled mode, every:3 (steps 1, 4, 7, 10), against profile mode and CUDA events") {
    CUDA_OK(cudaFree(nullptr));  // a context on this thread
    const cudaStream_t s = nullptr;
    warm_kernels(s);
    diffscope::collector_options o = with_mode(diffscope::timing_mode::sampled);
    const auto rule = diffscope::detail::parse_step_sample("every:3");
    REQUIRE(rule.has_value());
    o.sample = *rule;
    const run_result prof = run_loop(with_mode(diffscope::timing_mode::profile), s);
    const run_result samp = run_loop(o, s);
    check_against_profile(prof, samp, *rule);
    CHECK(samp.r.sampling.traced_indices == std::vector<std::int64_t>{1, 4, 7, 10});
  }
}
