// Cost of entering and leaving a diffscope scope with no NVTX tool attached, against raw NVTX3
// C++ ranges and an empty loop. Built twice: bench_scope (annotations on) and
// bench_scope_disabled (DIFFSCOPE_DISABLE: every macro compiles to nothing, so each
// benchmark there must match the empty loop). Numbers go to BENCHMARKS.md.
//
//   ./bench_scope --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#define NVTX3_CPP_REQUIRE_EXPLICIT_VERSION
#include <diffscope/scope.hpp>

#ifndef DIFFSCOPE_DISABLE
#include <nvtx3/nvtx3.hpp>
#endif

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

// The floor: what one iteration of any benchmark below costs besides the scope.
void empty_loop(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::ClobberMemory();
  }
}
BENCHMARK(empty_loop);

void diffscope_scope_macro(benchmark::State& state) {
  for (auto _ : state) {
    DIFFSCOPE_SCOPE("bench_scope");
    benchmark::ClobberMemory();
  }
}
BENCHMARK(diffscope_scope_macro);

void diffscope_attention_macro(benchmark::State& state) {
  for (auto _ : state) {
    DIFFSCOPE_ATTENTION("bench_attention");
    benchmark::ClobberMemory();
  }
}
BENCHMARK(diffscope_attention_macro);

// Steps cycle through 0..49 like a 50-step denoise loop; the counter alone is measured by
// empty_loop_step_counter, the floor for this one.
void diffscope_denoise_step(benchmark::State& state) {
  std::int64_t step = 0;
  for (auto _ : state) {
    DIFFSCOPE_DENOISE_STEP(step);
    step = step == 49 ? 0 : step + 1;
    benchmark::DoNotOptimize(step);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(diffscope_denoise_step);

void empty_loop_step_counter(benchmark::State& state) {
  std::int64_t step = 0;
  for (auto _ : state) {
    step = step == 49 ? 0 : step + 1;
    benchmark::DoNotOptimize(step);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(empty_loop_step_counter);

void diffscope_runtime_name_cstr(benchmark::State& state) {
  const char* name = "bench_runtime";
  benchmark::DoNotOptimize(name);
  for (auto _ : state) {
    diffscope::scope s{name};
    benchmark::ClobberMemory();
  }
}
BENCHMARK(diffscope_runtime_name_cstr);

void diffscope_runtime_name_string(benchmark::State& state) {
  const std::string name = "bench_runtime_with_a_name_past_sso";
  for (auto _ : state) {
    diffscope::scope s{name};
    benchmark::ClobberMemory();
  }
}
BENCHMARK(diffscope_runtime_name_string);

#ifndef DIFFSCOPE_DISABLE

struct raw_domain {
  static constexpr const char* name{"diffscope"};
};

// The reference: NVTX3's own C++ range with a registered message, set up the way
// NVTX3_FUNC_RANGE_IN does (function-local statics, one push and one pop per iteration).
void nvtx3_scoped_range_registered(benchmark::State& state) {
  for (auto _ : state) {
    static const nvtx3::v1::registered_string_in<raw_domain> message{"bench_raw"};
    static const nvtx3::v1::event_attributes attributes{message};
    const nvtx3::v1::scoped_range_in<raw_domain> range{attributes};
    benchmark::ClobberMemory();
  }
}
BENCHMARK(nvtx3_scoped_range_registered);

// The C API floor: push/pop with a handle and attributes prepared outside the loop.
void nvtx_c_push_pop(benchmark::State& state) {
  const nvtxDomainHandle_t domain = nvtxDomainCreateA("diffscope_bench_c");
  nvtxEventAttributes_t a{};
  a.version = NVTX_VERSION;
  a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  a.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
  a.message.registered = nvtxDomainRegisterStringA(domain, "bench_c");
  for (auto _ : state) {
    nvtxDomainRangePushEx(domain, &a);
    nvtxDomainRangePop(domain);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(nvtx_c_push_pop);

#endif  // DIFFSCOPE_DISABLE

}  // namespace

int main(int argc, char** argv) {
  // "No tool attached" is what is measured: NVTX reads this at its first call, below.
  unsetenv("NVTX_INJECTION64_PATH");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
#ifdef DIFFSCOPE_DISABLE
  benchmark::AddCustomContext("diffscope", "disabled (DIFFSCOPE_DISABLE)");
#else
  benchmark::AddCustomContext("diffscope", "enabled");
#endif
  benchmark::AddCustomContext("nvtx_tool", "none (NVTX_INJECTION64_PATH unset)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
