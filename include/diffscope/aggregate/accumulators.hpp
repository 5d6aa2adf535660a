// diffscope: the figures a scope, step, stage or request accumulates: GPU time (busy,
// occupied, envelope, counts, bytes, communication) and host call durations, and the small
// lock that guards a scope's host figures.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include <diffscope/aggregate/histogram.hpp>
#include <diffscope/aggregate/overlap.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

/// A tiny test-and-set lock for per-node host statistics (uncontended: ~10 ns).
class spin_lock {
 public:
  void lock() noexcept {
    while (flag_.test_and_set(std::memory_order_acquire)) {
    }
  }
  void unlock() noexcept { flag_.clear(std::memory_order_release); }

 private:
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

/// GPU accumulators, nanoseconds.
struct gpu_acc {
  std::uint64_t busy = 0, occupied = 0, envelope = 0;
  std::uint64_t kernels = 0, memcpys = 0, memsets = 0, bytes = 0;
  std::uint64_t timed = 0;  // perf mode spans
  comm_overlap comm;        // communication kernels and how much of them other work hid
  // Sampled mode: the timed calls' spans (kept apart from the operations), the calls whose
  // operations were traced, and the sum of their busy times squared (ms^2, for the spread).
  std::uint64_t span = 0, traced = 0;
  double busy_sq_ms2 = 0;

  void add(const gpu_acc& o) noexcept {
    timed += o.timed;
    span += o.span;
    traced += o.traced;
    busy_sq_ms2 += o.busy_sq_ms2;
    comm += o.comm;
    busy += o.busy;
    occupied += o.occupied;
    envelope += o.envelope;
    kernels += o.kernels;
    memcpys += o.memcpys;
    memsets += o.memsets;
    bytes += o.bytes;
  }
  gpu_stats to_stats(bool measured) const {
    gpu_stats s;
    s.measured = measured;
    s.busy_ms = busy / 1e6;
    s.occupied_ms = occupied / 1e6;
    s.envelope_ms = envelope / 1e6;
    s.kernels = kernels;
    s.memcpys = memcpys;
    s.memsets = memsets;
    s.bytes = bytes;
    s.timed_calls = timed;
    s.span_ms = span / 1e6;
    s.comm_kernels = comm.kernels;
    s.comm_busy_ms = comm.busy / 1e6;
    s.comm_overlapped_ms = comm.overlapped / 1e6;
    s.comm_exposed_ms = comm.exposed / 1e6;
    return s;
  }
};

/// Length of the union of half-open intervals. Sorts and merges `v` in place.
inline std::uint64_t union_length(std::vector<ns_interval>& v) {
  merge_intervals(v);
  return merged_length(v);
}

/// Host durations of a scope's calls, nanoseconds.
struct host_acc {
  std::uint64_t traced = 0;  // sampled mode: calls made while operations were traced
  std::uint64_t calls = 0, sum = 0, min = std::numeric_limits<std::uint64_t>::max(), max = 0;
  duration_histogram hist;
};

}  // namespace diffscope::detail
