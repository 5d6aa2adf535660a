// diffscope: small text helpers shared by the library (trimming). No dependency on the rest
// of diffscope.
#pragma once

#include <cctype>
#include <string_view>

namespace diffscope::detail {

/// `s` without leading and trailing white space (std::isspace in the C locale).
inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace diffscope::detail
