// diffscope: kernel names as people read them. CUPTI reports a kernel by its mangled symbol
// (`_ZN2at6native...`); torch.profiler traces carry the demangled text. Demangling once per
// distinct name makes dumps and traces rank, match categories and diff by the same names.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#if defined(__has_include)
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define DIFFSCOPE_DETAIL_HAVE_CXXABI 1
#endif
#endif
#ifndef DIFFSCOPE_DETAIL_HAVE_CXXABI
#define DIFFSCOPE_DETAIL_HAVE_CXXABI 0
#endif

namespace diffscope::detail {

/// True for an Itanium C++ ABI symbol (`_Z...`), the form nvcc gives every C++ kernel.
inline bool looks_mangled(std::string_view name) noexcept {
  return name.size() > 2 && name[0] == '_' && name[1] == 'Z';
}

/// The demangled text of `name` (`void at::native::foo<float>(int, float*)`), or `name`
/// itself when it is not mangled or does not demangle (an `extern "C"` kernel, a name cut
/// short, a vendor's own scheme). Never throws for a bad name.
inline std::string demangle(std::string_view name) {
#if DIFFSCOPE_DETAIL_HAVE_CXXABI
  if (!looks_mangled(name)) return std::string(name);
  const std::string zname(name);
  int status = 0;
  char* out = abi::__cxa_demangle(zname.c_str(), nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) {
    std::free(out);
    return zname;
  }
  std::string result(out);
  std::free(out);
  return result;
#else
  return std::string(name);
#endif
}

}  // namespace diffscope::detail
