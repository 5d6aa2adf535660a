// diffscope: the collector's calibration: the host cost of its own part of a range and of a
// launch callback, measured at each start on a private aggregator (the overhead figures).
#pragma once

#include <cstdint>
#include <optional>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/capture/activity.hpp>
#include <diffscope/scope.hpp>
#include <diffscope/util/clock.hpp>

namespace diffscope::detail {

/// Measured once per start on a private aggregator: the host cost of our own part of a
/// range push+pop and of a launch callback (CUPTI's own callback dispatch comes on top).
struct calibration {
  double per_range_ns = 0;
  double per_launch_ns = 0;
};

inline calibration calibrate() {
  calibration c;
  aggregator a;
  const std::uint32_t id = a.intern("calibration");
  constexpr int n = 20000;
  std::uint64_t t0 = now_ns();
  for (int i = 0; i < n; ++i) {
    a.push(range_domain::diffscope, id, category::other, std::nullopt, now_ns());
    a.pop(range_domain::diffscope, now_ns());
  }
  c.per_range_ns = static_cast<double>(now_ns() - t0) / n;
  a.push(range_domain::diffscope, id, category::other, std::nullopt, now_ns());
  t0 = now_ns();
  for (int i = 0; i < n; ++i) a.on_launch(static_cast<std::uint32_t>(i + 1), launch_kind::kernel);
  c.per_launch_ns = static_cast<double>(now_ns() - t0) / n;
  a.pop(range_domain::diffscope, now_ns());
  return c;
}

}  // namespace diffscope::detail
