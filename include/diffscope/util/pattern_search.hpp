// diffscope: Wu-Manber search for a few fixed strings (ASCII case-insensitive) in a block of
// bytes: the tables, built at compile time, and the search over one block.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace diffscope::detail {

inline constexpr std::size_t pattern_block = 3;     // bytes hashed per Wu-Manber block
inline constexpr std::size_t pattern_max_len = 48;  // longest pattern the tables hold

inline constexpr std::size_t pattern_strlen(const char* s) noexcept {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

inline constexpr unsigned char pattern_fold(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + 32) : c;
}

/// Hash of the 3-byte block ending at p, case folded (12 bits).
inline constexpr unsigned pattern_hash(unsigned char a, unsigned char b, unsigned char c) noexcept {
  return ((static_cast<unsigned>(pattern_fold(a)) << 6) ^
          (static_cast<unsigned>(pattern_fold(b)) << 3) ^ pattern_fold(c)) &
         0xfffu;
}

/// Wu-Manber tables over 3-byte blocks of case-folded text: how far a window may move when
/// its last block hashes to a value, and which patterns end their first min_len bytes with
/// such a block. Built at compile time; 12 KiB, stays in L1.
template <std::size_t N>
struct pattern_tables {
  static_assert(N >= 1 && N <= 16, "candidates are 16-bit masks");
  static constexpr std::size_t count = N;
  std::size_t min_len = 0;  // the shortest pattern: the window
  std::size_t max_len = 0;  // the longest: a match may start this many bytes minus one back
  std::array<unsigned char, 256> fold{};
  std::array<unsigned char, 4096> shift{};
  std::array<std::uint16_t, 4096> candidates{};
  std::array<std::array<unsigned char, pattern_max_len>, N> pattern{};
  std::array<std::size_t, N> length{};
};

/// The tables of `patterns`, each pattern_block to pattern_max_len bytes long.
template <std::size_t N>
inline constexpr pattern_tables<N> make_pattern_tables(const std::array<const char*, N>& patterns) {
  pattern_tables<N> t{};
  for (std::size_t i = 0; i < N; ++i) {
    t.length[i] = pattern_strlen(patterns[i]);
    if (i == 0 || t.length[i] < t.min_len) t.min_len = t.length[i];
    if (t.length[i] > t.max_len) t.max_len = t.length[i];
  }
  const std::size_t m = t.min_len;
  for (unsigned c = 0; c < 256; ++c) t.fold[c] = pattern_fold(static_cast<unsigned char>(c));
  for (auto& s : t.shift) s = static_cast<unsigned char>(m - pattern_block + 1);
  for (std::size_t i = 0; i < N; ++i) {
    const char* s = patterns[i];
    for (std::size_t k = 0; k < t.length[i]; ++k)
      t.pattern[i][k] = pattern_fold(static_cast<unsigned char>(s[k]));
    const auto& q = t.pattern[i];
    for (std::size_t j = pattern_block - 1; j < m; ++j) {
      const unsigned h = pattern_hash(q[j - 2], q[j - 1], q[j]);
      const auto sh = static_cast<unsigned char>(m - 1 - j);
      if (sh < t.shift[h]) t.shift[h] = sh;
    }
    const std::size_t e = m - 1;
    const unsigned last = pattern_hash(q[e - 2], q[e - 1], q[e]);
    t.candidates[last] = static_cast<std::uint16_t>(t.candidates[last] | (1u << i));
  }
  return t;
}

/// Calls on_match(pattern, offset) for every occurrence of a pattern of `Patterns` lying
/// wholly in [t, t + n).
template <class Patterns, class F>
inline void pattern_search(const unsigned char* t, std::size_t n, F&& on_match) {
  constexpr std::size_t m = Patterns::tables.min_len;
  if (n < m) return;
  const auto& tb = Patterns::tables;
  std::size_t pos = m - 1;  // the window's last byte
  while (pos < n) {
    const unsigned h = ((static_cast<unsigned>(tb.fold[t[pos - 2]]) << 6) ^
                        (static_cast<unsigned>(tb.fold[t[pos - 1]]) << 3) ^ tb.fold[t[pos]]) &
                       0xfffu;
    const unsigned s = tb.shift[h];
    if (s != 0) {
      pos += s;
      continue;
    }
    unsigned mask = tb.candidates[h];
    const std::size_t start = pos - (m - 1);
    const unsigned char* w = t + start;
    while (mask != 0) {
      const unsigned i = static_cast<unsigned>(__builtin_ctz(mask));
      mask &= mask - 1;
      const std::size_t len = tb.length[i];
      if (len > n - start) continue;
      const unsigned char* p = tb.pattern[i].data();
      std::size_t k = 0;
      while (k < len && tb.fold[w[k]] == p[k]) ++k;
      if (k == len) on_match(i, start);
    }
    ++pos;
  }
}

}  // namespace diffscope::detail
