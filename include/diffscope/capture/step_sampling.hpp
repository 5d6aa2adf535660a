// diffscope: sampled mode's rule for which denoise steps CUPTI traces (DIFFSCOPE_SAMPLE_STEPS):
// a window of step indices ("1-2", the default: two steps after the first, whose kernels may
// still be warming caches), or every N-th step ("every:4": steps 1, 5, 9, ...). Decided from the
// step's own index, so every rank of a multi-GPU run traces the same steps. Host-only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace diffscope::detail {

struct step_sample_rule {
  std::int64_t first = 1;   ///< window: first traced step index
  std::int64_t last = 2;    ///< window: last traced step index (inclusive)
  std::uint64_t every = 0;  ///< >0: every N-th step from step 1 instead of the window

  /// Whether the step with this index (from 0; -1: unknown) is traced. A step without an index
  /// is counted by its position in its loop (step_position).
  bool traces(std::int64_t index) const noexcept {
    if (index < 0) return false;
    if (every > 0) return every == 1 || index % static_cast<std::int64_t>(every) == 1;
    return index >= first && index <= last;
  }

  std::string describe() const {
    if (every == 1) return "every step";
    if (every > 0) return "every " + std::to_string(every) + "th step from step 1";
    if (first == last) return "step " + std::to_string(first);
    return "steps " + std::to_string(first) + "-" + std::to_string(last);
  }
};

/// Parses DIFFSCOPE_SAMPLE_STEPS: "A-B" (0 <= A <= B), "A" (one step), "every:N" (N >= 1).
/// Anything else (spaces, signs, a reversed window, overflow) is rejected.
inline std::optional<step_sample_rule> parse_step_sample(std::string_view text) {
  const auto number = [](std::string_view s) -> std::optional<std::int64_t> {
    if (s.empty() || s.size() > 12) return std::nullopt;
    std::int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  };
  step_sample_rule r;
  constexpr std::string_view every = "every:";
  if (text.substr(0, every.size()) == every) {
    const auto n = number(text.substr(every.size()));
    if (!n || *n < 1) return std::nullopt;
    r.every = static_cast<std::uint64_t>(*n);
    return r;
  }
  const std::size_t dash = text.find('-');
  const auto a = number(text.substr(0, dash));
  const auto b = dash == std::string_view::npos ? a : number(text.substr(dash + 1));
  if (!a || !b || *b < *a) return std::nullopt;
  r.first = *a;
  r.last = *b;
  return r;
}

}  // namespace diffscope::detail
