// Sampled mode on synthetic ranges and records: which steps the rule traces, how the traced
// steps' operations are scaled to every step, and the error of the estimates.
#include <doctest/doctest.h>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/analysis/sample_estimates.hpp>
#include <diffscope/capture/step_sampling.hpp>

#include <cmath>
#include <string>
#include <vector>

using diffscope::category;
using namespace diffscope::detail;

namespace {

// A loop fed as the collector feeds it in sampled mode: every step timed by a span, the
// operations of the steps the rule picks (and of everything outside steps) traced.
struct sampled_loop {
  aggregator agg{[] {
    aggregator_options o;
    o.spans_apart = true;
    return o;
  }()};
  std::uint32_t corr = 1;
  std::uint64_t t = 1'000;  // host and GPU clock, ns

  std::uint32_t name(const char* n, category c) {
    return agg.intern(n, !aggregator::never_folded(c));
  }
  void push(const char* n, category c = category::other) {
    agg.push(range_domain::diffscope, name(n, c), c, std::nullopt, t);
  }
  void pop() { agg.pop(range_domain::diffscope, t += 10); }
  // A kernel of `ns` launched in the innermost open range, when traced.
  void kernel(const char* n, std::uint64_t ns) {
    agg.on_launch(corr, launch_kind::kernel);
    gpu_op o;
    o.kind = op_kind::kernel;
    o.correlation_id = corr++;
    o.start_ns = t;
    o.end_ns = t + ns;
    o.stream_id = 7;
    o.name = n;
    agg.on_gpu_op(o);
    t += ns;
  }
  // The step's span, as the event timer delivers it.
  void span(std::uint32_t pair, std::uint64_t start, std::uint64_t end) {
    gpu_op o;
    o.kind = op_kind::timing;
    o.correlation_id = pair;
    o.start_ns = start;
    o.end_ns = end;
    agg.on_gpu_op(o);
  }
  // `steps` steps; step i's attention takes attn_ns(i), its mlp 300 us; traced per `rule`.
  template <class AttnNs>
  void run(const step_sample_rule& rule, int steps, AttnNs attn_ns) {
    push("DenoisingStage", category::stage);
    kernel("text_encoder_kernel", 50'000);  // outside steps: traced whole
    for (int i = 0; i < steps; ++i) {
      agg.set_tracing(rule.traces(i));
      agg.push(range_domain::diffscope, agg.intern("denoise_step"), category::denoise_step, i, t);
      const std::uint32_t pair = 0x80000000u + static_cast<std::uint32_t>(i);
      agg.on_launch(pair, launch_kind::timing);
      const std::uint64_t start = t;
      const bool traced = rule.traces(i);
      push("attention");
      if (traced)
        kernel("flash_attn_fwd", attn_ns(i));
      else
        t += attn_ns(i);
      pop();
      push("mlp");
      if (traced)
        kernel("gemm_bf16", 300'000);
      else
        t += 300'000;
      pop();
      pop();
      span(pair, start, t);
    }
    agg.set_tracing(true);
    pop();
    agg.finalize_all();
  }
};

const diffscope::scope_result& scope(const diffscope::results& r, const std::string& path) {
  for (const auto& s : r.scopes)
    if (s.path == path) return s;
  FAIL("no scope " << path);
  static diffscope::scope_result none;
  return none;
}

const diffscope::kernel_result& kernel(const diffscope::results& r, const std::string& name) {
  for (const auto& k : r.kernels)
    if (k.name == name) return k;
  FAIL("no kernel " << name);
  static diffscope::kernel_result none;
  return none;
}

}  // namespace

TEST_SUITE("sampling") {
  TEST_CASE("the rule: a window of step indices or every N-th step from step 1") {
    const auto d = parse_step_sample("1-2");
    REQUIRE(d);
    CHECK_FALSE(d->traces(0));
    CHECK(d->traces(1));
    CHECK(d->traces(2));
    CHECK_FALSE(d->traces(3));
    CHECK_FALSE(d->traces(-1));  // no index: not a step of the loop
    CHECK(d->describe() == "steps 1-2");
    CHECK(step_sample_rule{}.describe() == "steps 1-2");  // the default

    const auto one = parse_step_sample("5");
    REQUIRE(one);
    CHECK(one->traces(5));
    CHECK_FALSE(one->traces(4));
    CHECK(one->describe() == "step 5");

    const auto every = parse_step_sample("every:4");
    REQUIRE(every);
    std::vector<int> picked;
    for (int i = 0; i < 12; ++i)
      if (every->traces(i)) picked.push_back(i);
    CHECK(picked == std::vector<int>{1, 5, 9});
    CHECK(parse_step_sample("every:1")->traces(0));

    for (const char* bad : {"", "2-1", "-1", "1-", "a", "1-2 ", " 1", "every:0",
                            "every:", "every:x", "every:-2", "1--2", "+1", "99999999999999999"})
      CHECK_MESSAGE(!parse_step_sample(bad), bad);
  }

  TEST_CASE("traced steps scaled to every step: scopes, stage, kernels, with their error") {
    sampled_loop l;
    // Attention alternates 100 and 140 us by step; every:3 traces steps 1, 4, 7 and 10, which
    // see 140, 100, 140, 100 us.
    const auto rule = *parse_step_sample("every:3");
    l.run(rule, 12, [](int i) { return i % 2 == 0 ? 100'000u : 140'000u; });
    diffscope::results r = l.agg.snapshot(true);
    diffscope::categorise_steps(r.steps, diffscope::kernel_classifier());
    estimate_from_sample(r);

    CHECK(r.sampling.active);
    CHECK(r.sampling.steps == 12);
    CHECK(r.sampling.traced_steps == 4);
    CHECK(r.sampling.traced_indices == std::vector<std::int64_t>{1, 4, 7, 10});
    REQUIRE(r.steps.size() == 12);
    for (const auto& s : r.steps) {
      INFO("step " << s.step);
      CHECK(s.traced == rule.traces(s.step));
      // Every step's span is timed, traced or not: attention + mlp + three pops of 10 ns.
      const double attn = s.step % 2 == 0 ? 0.1 : 0.14;
      CHECK(s.gpu.span_ms == doctest::Approx(attn + 0.3 + 0.00003));
      CHECK(s.gpu.timed_calls == 1);
      if (s.traced) {
        CHECK(s.gpu.busy_ms == doctest::Approx(attn + 0.3));
        CHECK(s.categories_measured);
        CHECK_FALSE(s.kernels.empty());
      } else {
        CHECK(s.gpu.busy_ms == 0);
        CHECK(s.kernels.empty());
        CHECK_FALSE(s.categories_measured);
      }
    }

    // The traced attention: 2 x 140 + 2 x 100 us, mean 120 us, times 12 calls = 1.44 ms, the
    // true total too (6 x 100 + 6 x 140).
    const auto& attn = scope(r, "DenoisingStage/denoise_step/attention");
    CHECK(attn.gpu.estimated);
    CHECK(attn.gpu.traced_calls == 4);
    CHECK(attn.host.calls == 12);
    CHECK(attn.gpu.busy_ms == doctest::Approx(1.44));
    CHECK(attn.gpu.kernels == 12);
    // sd of {140, 100, 140, 100} (n-1) = 23.09 us; 12 * sqrt(sd^2 / 4 * (1 - 4/12)) = 0.1131 ms
    CHECK(attn.gpu.error_ms == doctest::Approx(0.1131).epsilon(0.01));
    const auto& mlp = scope(r, "DenoisingStage/denoise_step/mlp");
    CHECK(mlp.gpu.busy_ms == doctest::Approx(3.6));
    CHECK(mlp.gpu.error_ms == doctest::Approx(0.0));  // the same every step
    const auto& step = scope(r, "DenoisingStage/denoise_step");
    CHECK(step.gpu.estimated);
    CHECK(step.gpu.busy_ms == doctest::Approx(5.04));
    CHECK(step.gpu.span_ms == doctest::Approx(5.04 + 12 * 0.00003));
    // The stage: its own text encoder (traced whole, 50 us) plus its steps' estimate.
    const auto& stage = scope(r, "DenoisingStage");
    CHECK(stage.gpu.estimated);
    CHECK(stage.gpu.busy_ms == doctest::Approx(0.05 + 5.04));
    CHECK(stage.gpu.error_ms == doctest::Approx(step.gpu.error_ms));
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].gpu.busy_ms == doctest::Approx(0.05 + 5.04));
    CHECK(r.stages[0].gpu.estimated);

    // Kernels: inside steps scaled by 12 / 4, outside steps exact.
    const auto& fa = kernel(r, "flash_attn_fwd");
    CHECK(fa.estimated);
    CHECK(fa.total_ms == doctest::Approx(1.44));
    CHECK(fa.count == 12);
    CHECK(fa.error_ms == doctest::Approx(attn.gpu.error_ms).epsilon(0.01));
    const auto& te = kernel(r, "text_encoder_kernel");
    CHECK_FALSE(te.estimated);
    CHECK(te.total_ms == doctest::Approx(0.05));
    CHECK(te.count == 1);
    CHECK(r.window.gpu.busy_ms == doctest::Approx(0.05 + 5.04));
    CHECK(r.window.gpu.kernels == 1 + 24);
  }

  TEST_CASE("every step traced: nothing is an estimate") {
    sampled_loop l;
    step_sample_rule all;
    all.every = 1;
    l.run(all, 4, [](int) { return 100'000u; });
    diffscope::results r = l.agg.snapshot(true);
    estimate_from_sample(r);
    CHECK(r.sampling.traced_steps == 4);
    for (const auto& s : r.scopes) {
      INFO(s.path);
      CHECK_FALSE(s.gpu.estimated);
      CHECK(s.gpu.error_ms == 0);
    }
    for (const auto& k : r.kernels) CHECK_FALSE(k.estimated);
    CHECK(scope(r, "DenoisingStage/denoise_step/attention").gpu.busy_ms == doctest::Approx(0.4));
  }

  TEST_CASE("a scope that ran only in untraced steps has no GPU figures, not zeros") {
    sampled_loop l;
    const step_sample_rule rule;  // steps 1-2
    l.push("DenoisingStage", category::stage);
    for (int i = 0; i < 4; ++i) {
      l.agg.set_tracing(rule.traces(i));
      l.agg.push(range_domain::diffscope, l.agg.intern("denoise_step"), category::denoise_step, i,
                 l.t);
      const std::uint32_t pair = 0x80000000u + static_cast<std::uint32_t>(i);
      l.agg.on_launch(pair, launch_kind::timing);
      const std::uint64_t start = l.t;
      if (i == 3) {  // a cache refresh in the last step only: not traced
        l.push("refresh");
        l.t += 500'000;
        l.pop();
      }
      l.push("attention");
      if (rule.traces(i))
        l.kernel("flash_attn_fwd", 100'000);
      else
        l.t += 100'000;
      l.pop();
      l.pop();
      l.span(pair, start, l.t);
    }
    l.agg.set_tracing(true);
    l.pop();
    l.agg.finalize_all();
    diffscope::results r = l.agg.snapshot(true);
    estimate_from_sample(r);
    const auto& refresh = scope(r, "DenoisingStage/denoise_step/refresh");
    CHECK(refresh.host.calls == 1);
    CHECK(refresh.gpu.traced_calls == 0);
    CHECK_FALSE(refresh.gpu.measured);
    CHECK(r.sampling.traced_indices == std::vector<std::int64_t>{1, 2});
  }
}
