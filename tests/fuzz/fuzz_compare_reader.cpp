// libFuzzer target: arbitrary bytes as one input of `diffscope compare`, read as compare reads
// it (tools/lib/input.hpp's rules, the perf-dump check), then compared against an SGLang
// (host-timed) dump and a diffscope (device-timed) one in every form compare has: the
// timing-mode check, the note on mixed timings, the report with and without --sglang-only,
// and the repeated-run table. Everything must succeed or throw diffscope::cli::failure with
// exit code 2. Build and run: see tests/fuzz/README.md (.ci/run does it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lib/compare.hpp"
#include "lib/dump_reader.hpp"
#include "lib/input.hpp"
#include "lib/json_input.hpp"
#include "lib/repeated_runs.hpp"

namespace {

const diffscope::cli::perf_dump_data& sglang_dump() {
  static const auto d = diffscope::cli::parse_dump(
      R"({"total_duration_ms": 100, "steps": [{"name": "DenoisingStage", "duration_ms": 90},
          {"name": "denoising_step_0", "duration_ms": 45}], "denoise_steps_ms":
          [{"step": 0, "duration_ms": 45}], "commit_hash": "abc"})",
      "sglang.json");
  return d;
}

const diffscope::cli::perf_dump_data& device_dump() {
  static const auto d = diffscope::cli::parse_dump(
      R"({"total_duration_ms": 100, "steps": [{"name": "DenoisingStage", "duration_ms": 80}],
          "diffscope": {"status": {"gpu_timing": true, "mode": "perf"}, "scopes": [{"path":
          "DenoisingStage", "gpu": {"busy_ms": 70, "envelope_ms": 80}}]}})",
      "device.json");
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffscope::cli;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    byte_source src(bytes, "dir/fuzz.json", max_dump_bytes, "a perf dump");
    const perf_dump_data d = parse_dump(read_json_text(src), src.path());
    for (const perf_dump_data* other : {&sglang_dump(), &device_dump()}) {
      const std::vector<perf_dump_data> dumps = {d, *other};
      const std::vector<const perf_dump_data*> all = {&dumps[0], &dumps[1]};
      const std::string modes = check_modes(all, true);
      for (const bool strict : {false, true}) {
        try {
          (void)timing_note(all, strict, true);
          (void)timing_note(all, strict, false);
        } catch (const failure& f) {
          if (!strict || f.code != exit_usage) std::abort();  // only --strict refuses
        }
      }
      (void)compare_report(dumps, "now", false, modes);
      (void)compare_report({*other, d, d}, "now", true, modes);
      (void)repeated_report({d, *other}, {*other, d}, {}, modes);
    }
  } catch (const failure& f) {
    if (f.code != exit_usage) std::abort();  // bad input must be a usage error
  }
  return 0;
}
