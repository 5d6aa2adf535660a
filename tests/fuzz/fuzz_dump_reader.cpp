// libFuzzer target: arbitrary bytes through the perf dump reader (parse, type checks) and
// on to the compare report and the merge, which must either succeed or throw
// diffscope::cli::failure with exit code 2, never crash. Build (clang only):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Itools \
//     tests/fuzz/fuzz_dump_reader.cpp -o fuzz_dump_reader
//   ./fuzz_dump_reader -max_total_time=20 corpus/ tests/fixtures/compare/
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "cmd_compare.hpp"
#include "cmd_merge.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffscope::cli;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    perf_dump_data d = parse_dump(text, "fuzz.json");
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
