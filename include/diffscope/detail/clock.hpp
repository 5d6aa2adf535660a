// diffscope: the one host clock. Scope times, collection start/stop and (through CUPTI's
// timestamp callback) device activity timestamps all use it, so host and GPU times share
// one time base without any per-scope CUPTI call.
#pragma once

#include <chrono>
#include <cstdint>

namespace diffscope::detail {

/// Monotonic nanoseconds (std::chrono::steady_clock, CLOCK_MONOTONIC on Linux).
inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace diffscope::detail
