// diffscope: bounded-memory quantiles of host durations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace diffscope::detail {

/// Quantiles of nanosecond durations: exact while there are at most `exact_limit` samples,
/// then a log-bucketed histogram (buckets 2% wide, geometric midpoints) whose quantiles are
/// within 1% of the true sample; memory stays under ~6 KB however many samples arrive.
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
      if (seen > rank) return i == 0 ? 0.0 : std::exp((static_cast<double>(i) - 0.5) * log_base);
    }
    return std::exp((static_cast<double>(buckets_.size()) - 0.5) * log_base);
  }

 private:
  static constexpr double log_base = 0.0198026272961797;  // ln(1.02)

  void bucket_add(std::uint64_t ns) {
    // Bucket 0 holds 0 ns; bucket i >= 1 holds [1.02^(i-1), 1.02^i).
    const std::size_t i =
        ns == 0 ? 0 : static_cast<std::size_t>(std::log(static_cast<double>(ns)) / log_base) + 1;
    if (i >= buckets_.size()) buckets_.resize(i + 1, 0);
    ++buckets_[i];
  }

  std::uint64_t count_ = 0;
  std::vector<std::uint64_t> exact_;
  std::vector<std::uint32_t> buckets_;
};

}  // namespace diffscope::detail
