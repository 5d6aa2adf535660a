// diffscope: bounded-memory quantiles of host durations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace diffscope::detail {

/// Quantiles of nanosecond durations: exact while there are at most `exact_limit` samples,
/// then a log-linear histogram (each power of two split into 64 equal buckets, read at their
/// midpoints) whose quantiles are within 0.8% of the true sample. Integer arithmetic only
/// (this runs at every scope exit); memory grows with the largest duration seen, about
/// 4 KB for millisecond scopes, 9 KB at most.
class duration_histogram {
 public:
  static constexpr std::size_t exact_limit = 256;

  void add(std::uint64_t ns) {
    ++count_;
    if (buckets_.empty() && exact_.size() < exact_limit) {
      exact_.push_back(ns);
      return;
    }
    if (buckets_.empty()) {
      for (std::uint64_t v : exact_) bucket_add(v);
      exact_.clear();
      exact_.shrink_to_fit();
    }
    bucket_add(ns);
  }

  std::uint64_t count() const { return count_; }

  /// q in [0, 1]; nearest-rank quantile. 0 when empty.
  double quantile_ns(double q) const {
    if (count_ == 0) return 0;
    // Nearest rank: the smallest sample with at least q of the samples at or below it.
    const double wanted = std::ceil(q * static_cast<double>(count_));
    const std::uint64_t rank = std::min<std::uint64_t>(
        count_ - 1, wanted < 1 ? 0 : static_cast<std::uint64_t>(wanted) - 1);
    if (buckets_.empty()) {
      std::vector<std::uint64_t> sorted(exact_);
      std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(rank),
                       sorted.end());
      return static_cast<double>(sorted[rank]);
    }
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen > rank) return bucket_midpoint(i);
    }
    return bucket_midpoint(buckets_.size() - 1);
  }

 private:
  static constexpr unsigned sub_bits = 6;  // 64 buckets per power of two
  static constexpr std::uint64_t linear_limit = 1u << sub_bits;

  // Values below 64 ns get a bucket each; above, bucket = 64 + 64 * (e - 6) + the six bits
  // after the leading one, e being the leading bit's position.
  static std::size_t bucket_of(std::uint64_t ns) noexcept {
    if (ns < linear_limit) return static_cast<std::size_t>(ns);
    const unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(ns));
    const std::uint64_t sub = (ns >> (e - sub_bits)) & (linear_limit - 1);
    return static_cast<std::size_t>(linear_limit + (e - sub_bits) * linear_limit + sub);
  }
  static double bucket_midpoint(std::size_t i) noexcept {
    if (i < linear_limit) return static_cast<double>(i);
    const std::size_t e = (i - linear_limit) / linear_limit + sub_bits;
    const std::size_t sub = (i - linear_limit) % linear_limit;
    return (static_cast<double>(linear_limit + sub) + 0.5) *
           std::ldexp(1.0, static_cast<int>(e - sub_bits));
  }

  void bucket_add(std::uint64_t ns) {
    const std::size_t i = bucket_of(ns);
    if (i >= buckets_.size()) buckets_.resize(i + 1, 0);
    ++buckets_[i];
  }

  std::uint64_t count_ = 0;
  std::vector<std::uint64_t> exact_;
  std::vector<std::uint32_t> buckets_;
};

}  // namespace diffscope::detail
