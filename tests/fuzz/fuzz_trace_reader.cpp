// libFuzzer target: arbitrary bytes as the input of `diffscope hotspots`: one pass through
// tools/lib/input.hpp's rules (gzip sniffed, byte-order mark), the streaming trace reader of
// tools/lib/trace_stream.hpp (depth limit, every event's fields) and, when the bytes are a dump,
// the dump kept from the same pass (size limit); then the ranking and its text. Everything
// must succeed or throw diffscope::cli::failure with exit code 2. Build and run: see
// tests/fuzz/README.md (.ci/run does it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "lib/hotspot_input.hpp"
#include "lib/input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diffscope::cli;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    byte_source in(bytes, "fuzz.json", no_size_limit, "a trace");
    const hotspot_source src = hotspots_from_input(in);
    const diffscope::hotspot_report rep = diffscope::analyze_hotspots(
        src.res, diffscope::kernel_classifier(), src.is_trace ? &src.overlap : nullptr);
    (void)diffscope::hotspots_text(rep, 30);
  } catch (const failure& f) {
    if (f.code != exit_usage) std::abort();  // bad input must be a usage error
  }
  return 0;
}
