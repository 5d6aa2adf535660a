// diffscope: min, median and max of a handful of figures (repeated runs, requests). Exact:
// these are tens of values, not the streams histogram.hpp summarises. And the standard error
// of a total estimated from a sample (sampled mode's estimates).
#pragma once

#include <algorithm>
#include <cmath>
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

/// One standard error of a total over `n` items estimated as n times the mean of `k` of them,
/// sampled without replacement, from their sum and sum of squares: the finite-population
/// factor makes it 0 when every item was sampled; 0 too with fewer than two in the sample.
inline double sampled_total_error(double n, double k, double sum, double sum_sq) {
  if (k < 2 || k >= n) return 0;
  const double mean = sum / k;
  const double var = std::max(0.0, (sum_sq - k * mean * mean) / (k - 1));
  return n * std::sqrt(var / k * (1 - k / n));
}

}  // namespace diffscope::detail
