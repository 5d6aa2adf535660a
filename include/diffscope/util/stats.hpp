// diffscope: min, median and max of a handful of figures (repeated runs, requests). Exact:
// these are tens of values, not the streams histogram.hpp summarises.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace diffscope::detail {

struct spread3 {
  double min = 0, median = 0, max = 0;
  std::size_t count = 0;
};

/// min, median (the mean of the middle two for an even count), max; zeros when empty.
inline spread3 spread_of(std::vector<double> v) {
  spread3 s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  const std::size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return s;
}

}  // namespace diffscope::detail
