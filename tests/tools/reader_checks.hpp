// Test helper: the dump reader on a JSON text, and the message of the failure it raises.
// Include after <doctest/doctest.h> and the tools headers, in one test file each.
#pragma once

#include <string>

#include "../../tools/lib/dump_reader.hpp"

namespace reader_checks {

inline diffscope::cli::perf_dump_data parse(const std::string& text,
                                            const std::string& file = "x.json") {
  return diffscope::cli::parse_dump(text, file);
}

/// The failure's message ("" when the text parses); a failure must be a usage error.
inline std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const diffscope::cli::failure& f) {
    CHECK(f.code == diffscope::cli::exit_usage);
    return f.what();
  }
  return "";
}

}  // namespace reader_checks
