// diffscope: the one host clock. Scope times, collection start/stop and (through CUPTI's
// timestamp callback) device activity timestamps all use it, so host and GPU times share
// one time base without any per-scope CUPTI call.
//
// Every scope reads the clock twice, so its cost is most of a scope's cost while collecting.
// On x86-64 with an invariant TSC the clock is the TSC scaled to nanoseconds (cheaper to read
// than clock_gettime, much more so in some VMs; BENCHMARKS.md), calibrated once against
// std::chrono::steady_clock over 5 ms; elsewhere, or with DIFFSCOPE_EXPERIMENT_CLOCK=steady,
// it is steady_clock itself.
#pragma once

#include <chrono>
#include <cstdint>

#include <diffscope/config.hpp>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <x86intrin.h>
#define DIFFSCOPE_DETAIL_HAVE_TSC 1
#else
#define DIFFSCOPE_DETAIL_HAVE_TSC 0
#endif

namespace diffscope::detail {

inline std::uint64_t steady_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

struct tsc_calibration {
  bool usable = false;
  std::uint64_t tsc0 = 0, ns0 = 0;
  double ns_per_tick = 0;
};

#if DIFFSCOPE_DETAIL_HAVE_TSC
inline bool invariant_tsc() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000007u) return false;
  __get_cpuid(0x80000007u, &a, &b, &c, &d);
  return (d & (1u << 8)) != 0;  // "TscInvariant": constant rate across P-, C- and T-states
}

inline tsc_calibration calibrate_tsc() noexcept {
  tsc_calibration c;
  const bool steady = config::choice("DIFFSCOPE_EXPERIMENT_CLOCK") == 1;  // auto|steady
  if (steady || !invariant_tsc()) return c;
  const std::uint64_t ns_a = steady_ns(), tsc_a = __rdtsc();
  std::uint64_t ns_b = ns_a, tsc_b = tsc_a;
  while (ns_b - ns_a < 5'000'000) {
    ns_b = steady_ns();
    tsc_b = __rdtsc();
  }
  if (tsc_b <= tsc_a) return c;
  c.usable = true;
  c.tsc0 = tsc_a;
  c.ns0 = ns_a;
  c.ns_per_tick = static_cast<double>(ns_b - ns_a) / static_cast<double>(tsc_b - tsc_a);
  return c;
}
#endif

/// Monotonic nanoseconds, in steady_clock's epoch.
inline std::uint64_t now_ns() noexcept {
#if DIFFSCOPE_DETAIL_HAVE_TSC
  static const tsc_calibration c = calibrate_tsc();
  if (c.usable) {
    const std::uint64_t t = __rdtsc();
    // A TSC read a little before calibration (another thread) must not wrap around.
    return t >= c.tsc0
               ? c.ns0 + static_cast<std::uint64_t>(static_cast<double>(t - c.tsc0) * c.ns_per_tick)
               : c.ns0;
  }
#endif
  return steady_ns();
}

}  // namespace diffscope::detail
