// diffscope: short names for console tables that never merge two rows. A real model has
// hundreds of scopes whose qualified names repeat their parent's (`transformer.x.y.linear_1`
// under `transformer.x.y`) and kernels whose demangled names run to hundreds of characters;
// tables show them shortened, and two different rows never print the same text.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <diffscope/util/text_table.hpp>

namespace diffscope::detail {

/// Byte offset of the `cols`-th code point of `s` (s.size() when it has fewer).
inline std::size_t byte_of_column(std::string_view s, std::size_t cols) noexcept {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (seen == cols) return i;
    ++seen;
  }
  return s.size();
}

/// `s` in at most `max` columns (at least 5), cut in the middle as "head...tail" so both the
/// start (module path, kernel base name) and the end (leaf, last template arguments) stay.
inline std::string truncate_middle(std::string_view s, std::size_t max) {
  max = std::max<std::size_t>(max, 5);
  const std::size_t width = display_width(s);
  if (width <= max) return std::string(s);
  const std::size_t keep = max - 3, head = (keep + 1) / 2, tail = keep - head;
  return std::string(s.substr(0, byte_of_column(s, head))) + "..." +
         std::string(s.substr(byte_of_column(s, width - tail)));
}

/// `child` relative to `parent` when it repeats the parent's qualified name: `.linear_1` for
/// `transformer.embed.linear_1` under `transformer.embed`. The separator is kept so the
/// reader sees the name continues its parent's. Otherwise `child` itself.
inline std::string relative_name(std::string_view child, std::string_view parent) {
  if (parent.empty() || child.size() <= parent.size() + 1 ||
      child.substr(0, parent.size()) != parent)
    return std::string(child);
  const char sep = child[parent.size()];
  if (sep != '.' && sep != ':' && sep != '/' && sep != '_') return std::string(child);
  return std::string(child.substr(parent.size()));
}

/// A demangled kernel name as nsys shortens it: no return type, no parameter list, no
/// namespace: `vectorized_layer_norm_kernel<float, float>` for
/// `void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>(int, ...)`.
/// A name that is not C++ (mangled, `extern "C"`) comes back as it is.
inline std::string kernel_display_name(std::string_view name) {
  std::string_view s = name;
  if (s.substr(0, 5) == "void ") s.remove_prefix(5);
  // Drop a trailing parameter list: the '(' matching the last ')'.
  if (!s.empty() && s.back() == ')') {
    int depth = 0;
    for (std::size_t i = s.size(); i-- > 0;) {
      if (s[i] == ')') ++depth;
      if (s[i] == '(' && --depth == 0) {
        if (i > 0) s = s.substr(0, i);
        break;
      }
    }
  }
  // Keep what follows the last "::" outside template arguments and parentheses.
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    const char c = s[i];
    if (c == '<' || c == '(') ++depth;
    if ((c == '>' || c == ')') && depth > 0) --depth;
    if (depth == 0 && c == ':' && s[i + 1] == ':') start = i + 2;
  }
  s.remove_prefix(std::min(start, s.size()));
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);  // "name (args)" loses its space
  return s.empty() ? std::string(name) : std::string(s);
}

/// A kernel's name for a console table: printable, shortened by kernel_display_name where it
/// is a kernel (a memcpy's "Memcpy HtoD (Pageable -> Device)" keeps its parentheses).
inline std::string short_kernel_name(std::string_view name, std::string_view kind) {
  const std::string p = printable(name);
  return kind == "kernel" ? kernel_display_name(p) : p;
}

/// A scope path with each component shown relative to the one before it (relative_name):
/// `a/transformer.blocks.0/.attn` for `a/transformer.blocks.0/transformer.blocks.0.attn`.
inline std::string compact_path(std::string_view path) {
  std::string out;
  std::string_view prev;
  for (std::size_t start = 0;;) {
    const std::size_t slash = path.find('/', start);
    const std::string_view part = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (start > 0) out += '/';
    out += relative_name(part, prev);
    if (slash == std::string_view::npos) break;
    prev = part;
    start = slash + 1;
  }
  return out;
}

inline std::uint64_t name_hash(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// Labels for table rows, each at most `max` columns where it can be: `labels[i]` cut in the
/// middle, and where two rows with different `keys` (their full identity: a scope path, a
/// kernel's full name) would print the same text, both get a short hash of their key; if that
/// still collides (or the hash does), every row gets its row number, which keeps all
/// distinct. Rows with equal keys keep equal labels.
inline std::vector<std::string> distinct_labels(const std::vector<std::string>& labels,
                                                const std::vector<std::string>& keys,
                                                std::size_t max) {
  const std::size_t n = std::min(labels.size(), keys.size());
  std::vector<std::string> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = truncate_middle(labels[i], max);
  const auto collisions = [&] {
    std::map<std::string, std::vector<std::size_t>> by_text;
    for (std::size_t i = 0; i < n; ++i) by_text[out[i]].push_back(i);
    std::vector<std::size_t> rows;
    for (const auto& entry : by_text) {
      const std::vector<std::size_t>& idx = entry.second;
      const bool mixed = std::any_of(idx.begin(), idx.end(),
                                     [&](std::size_t j) { return keys[j] != keys[idx.front()]; });
      if (mixed) rows.insert(rows.end(), idx.begin(), idx.end());
    }
    return rows;
  };
  static constexpr char hex[] = "0123456789abcdef";
  for (int hex_digits : {4, 8, 16}) {
    const std::vector<std::size_t> rows = collisions();
    if (rows.empty()) return out;
    for (std::size_t i : rows) {
      std::string suffix = " #";
      const std::uint64_t h = name_hash(keys[i]);
      for (int d = hex_digits - 1; d >= 0; --d) suffix += hex[(h >> (4 * d)) & 0xF];
      out[i] =
          truncate_middle(labels[i], max > suffix.size() + 5 ? max - suffix.size() : 5) + suffix;
    }
  }
  if (collisions().empty()) return out;
  // Row numbers of first appearance per key: every label ends in " #<k>" with k unique per
  // key, so two different keys can no longer print alike.
  std::map<std::string, std::size_t> number;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = number.emplace(keys[i], number.size() + 1).first->second;
    const std::string suffix = " #" + std::to_string(k);
    out[i] = truncate_middle(labels[i], max > suffix.size() + 5 ? max - suffix.size() : 5) + suffix;
  }
  return out;
}

/// Labels for the rows of a scope tree: each name relative to its parent's (relative_name;
/// `parents[i]` is "" where the parent is not shown), then distinct_labels over the paths
/// (`keys`): `.attn` under each of two blocks gets a hash of its path.
inline std::vector<std::string> tree_labels(const std::vector<std::string>& names,
                                            const std::vector<std::string>& parents,
                                            const std::vector<std::string>& keys, std::size_t max) {
  const std::size_t n = std::min({names.size(), parents.size(), keys.size()});
  std::vector<std::string> labels(n);
  for (std::size_t i = 0; i < n; ++i) labels[i] = relative_name(names[i], parents[i]);
  return distinct_labels(labels, std::vector<std::string>(keys.begin(), keys.begin() + n), max);
}

}  // namespace diffscope::detail
