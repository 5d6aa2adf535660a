// diffscope: counting distinct 64-bit keys in bounded memory (exact while few, then a
// HyperLogLog estimate): how many distinct range names were folded into "(other)".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <unordered_set>
#include <vector>

namespace diffscope::detail {

/// Distinct 64-bit keys: exact up to `exact_limit`, then a HyperLogLog estimate (4,096
/// one-byte registers, about 1.6% standard error), so a million keys cost 4 KiB.
class distinct_counter {
 public:
  static constexpr std::size_t exact_limit = 1024;
  void add(std::uint64_t key) {
    const std::uint64_t h = mix(key);
    if (registers_.empty()) {
      if (!exact_.insert(h).second || exact_.size() <= exact_limit) return;
      registers_.assign(std::size_t{1} << bits, 0);
      for (std::uint64_t x : exact_) add_register(x);
      std::unordered_set<std::uint64_t>().swap(exact_);
      return;
    }
    add_register(h);
  }
  /// Exact while estimated() is false.
  std::uint64_t count() const {
    if (registers_.empty()) return exact_.size();
    const double m = static_cast<double>(registers_.size());
    double sum = 0;
    std::size_t zeros = 0;
    for (std::uint8_t r : registers_) {
      sum += std::ldexp(1.0, -static_cast<int>(r));
      zeros += r == 0;
    }
    double e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros > 0) e = m * std::log(m / static_cast<double>(zeros));
    return static_cast<std::uint64_t>(std::llround(e));
  }
  bool estimated() const noexcept { return !registers_.empty(); }

 private:
  static constexpr unsigned bits = 12;
  static std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  void add_register(std::uint64_t h) {
    std::uint8_t& r = registers_[h >> (64 - bits)];
    std::uint64_t rest = h << bits;
    std::uint8_t rank = 1;
    while (rank <= 64 - bits && (rest & (1ull << 63)) == 0) {
      rest <<= 1;
      ++rank;
    }
    r = std::max(r, rank);
  }
  std::unordered_set<std::uint64_t> exact_;
  std::vector<std::uint8_t> registers_;
};

}  // namespace diffscope::detail
