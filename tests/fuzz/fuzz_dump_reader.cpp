// libFuzzer target: arbitrary bytes through the perf dump reader as every dump reader gets
// them (the input rules of tools/lib/input.hpp: gzip sniffed, size and depth limits, one
// byte-order mark; then the parse and type checks) and on to the compare report and the
// merge, which must either succeed or throw diffscope::cli::failure with exit code 2, never
// crash. Build and run: see tests/fuzz/README.md (.ci/run does it).
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
#include "lib/merge.hpp"
#include "lib/repeated_runs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffscope::cli;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    byte_source src(bytes, "fuzz.json", max_dump_bytes, "a perf dump");
    perf_dump_data d = parse_dump(read_json_text(src), "fuzz.json");
    d.file = "dir/fuzz.json";
    const std::vector<perf_dump_data> two = {d, d};
    (void)compare_report(two, "now");
    (void)repeated_report({d}, {d, d});
    std::vector<std::string> warnings;
    (void)dump_text(merge_dumps(two, warnings));
  } catch (const failure& f) {
    if (f.code != exit_usage) std::abort();  // bad input must be a usage error
  }
  return 0;
}
