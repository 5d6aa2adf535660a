// diffscope: the one window every table covers (the last counted request, every counted one,
// or the whole run while none counts): each context's window key, the scope nodes' figures kept
// for the window alone, its steps' busy by kernel name, and the GPU operations outside every
// counted request.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include <diffscope/aggregate/accumulators.hpp>
#include <diffscope/aggregate/kernel_table.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/capture/activity.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

/// Which requests the window holds once one counts (DIFFSCOPE_WINDOW).
enum class window_mode : std::uint8_t { last, requests };

// Window keys. A context's key says which window its work belongs to; the current window's
// key only grows: run_window while no request has counted, then the last counted request's
// index + 2 (last) or all_requests_window (requests). A node's figures carry the key they
// were gathered for and start again when a later window's arrive, so no table is ever reset
// by a sweep, and work of an earlier window that arrives late is left out.
inline constexpr std::uint64_t no_window = 0;  // a node not entered in any window
inline constexpr std::uint64_t run_window = 1;
inline constexpr std::uint64_t all_requests_window = 2;
inline constexpr std::uint64_t warmup_window = ~std::uint64_t{0};  // never a window

/// Operation counts and busy time, in ns.
struct op_count {
  std::uint64_t busy = 0, kernels = 0, memcpys = 0, memsets = 0;
  void add(op_kind kind, std::uint64_t dur) noexcept {
    busy += dur;
    kernels += kind == op_kind::kernel;
    memcpys += kind == op_kind::memcpy;
    memsets += kind == op_kind::memset;
  }
  void add(const op_count& o) noexcept {
    busy += o.busy;
    kernels += o.kernels;
    memcpys += o.memcpys;
    memsets += o.memsets;
  }
  op_totals to_totals(bool measured) const noexcept {
    op_totals t;
    t.measured = measured;
    t.busy_ms = busy / 1e6;
    t.kernels = kernels;
    t.memcpys = memcpys;
    t.memsets = memsets;
    return t;
  }
};

/// The current window and the work outside every counted request. `current` is read
/// anywhere; the rest is guarded by the aggregator's mutex.
class window_state {
 public:
  explicit window_state(window_mode mode) : mode_(mode) {}

  window_mode mode() const noexcept { return mode_; }

  /// The key of a context inside request `request` (-1: none), `excluded` inside a warm-up.
  std::uint64_t key_of(std::int32_t request, bool excluded) const noexcept {
    if (excluded) return warmup_window;
    if (request < 0) return run_window;
    return mode_ == window_mode::requests ? all_requests_window
                                          : static_cast<std::uint64_t>(request) + 2;
  }
  std::uint64_t current() const noexcept { return current_.load(std::memory_order_relaxed); }

  /// A request that counts began: the window moves to it (last) or to every counted one.
  void request_counted(std::int32_t index) noexcept {
    current_.store(key_of(index, false), std::memory_order_relaxed);
  }

  /// One operation (kernel, copy or set) of a context of key `key`, outside the window's
  /// tables: counted when it is outside every counted request.
  void add_outside(std::uint64_t key, op_kind kind, std::uint64_t dur) noexcept {
    if (key == warmup_window) warmups_.add(kind, dur);
    if (key == run_window) unrequested_.add(kind, dur);
  }
  const op_count& warmups() const noexcept { return warmups_; }
  /// Work launched with no counted request open: the window's own while none has counted.
  const op_count& unrequested() const noexcept { return unrequested_; }

 private:
  std::atomic<std::uint64_t> current_{run_window};
  const window_mode mode_;
  op_count warmups_, unrequested_;
};

/// The window's denoise steps by kernel name: each step instance's operations by name, added
/// when it is finalised in the window, as its busy time is added to its step (timeline.hpp),
/// so the two agree. Bounded by the window's steps times their distinct kernel names; an
/// earlier window's are dropped when a later one's first arrive. Aggregator's mutex held.
class window_step_kernels {
 public:
  void add(std::uint64_t key, std::int64_t step, const std::vector<name_busy>& kernels) {
    if (key_ > key) return;
    if (key_ < key) {
      steps_.clear();
      key_ = key;
    }
    std::vector<name_busy>& into = steps_[step];
    for (const name_busy& k : kernels) add_name_busy(into, k.name, k.kind, k.busy);
  }
  /// The window's steps, or nullptr when they are not `window`'s.
  const std::map<std::int64_t, std::vector<name_busy>>* of(std::uint64_t window) const noexcept {
    return key_ == window ? &steps_ : nullptr;
  }

 private:
  std::uint64_t key_ = no_window;
  std::map<std::int64_t, std::vector<name_busy>> steps_;
};

/// A scope was entered in a context of key `key`: a row of the window when that is `current`.
inline void note_entered(scope_node& n, std::uint64_t key, std::uint64_t current) noexcept {
  if (key != current) return;
  std::uint64_t seen = n.entered.load(std::memory_order_relaxed);
  while (seen < key && !n.entered.compare_exchange_weak(seen, key, std::memory_order_relaxed)) {
  }
}

/// The node's host figures for window `key`, started afresh when they were an earlier
/// window's; nullptr when they are a later one's already. The caller holds n.host_lock.
inline host_acc* window_host(scope_node& n, std::uint64_t key) {
  if (n.host_window > key) return nullptr;
  if (n.host_window < key) {
    n.host = host_acc{};
    n.host_window = key;
  }
  return &n.host;
}

/// The node's GPU figures and launches for window `key`, likewise (aggregator's mutex held).
inline void add_window_gpu(scope_node& n, std::uint64_t key, const gpu_acc& acc,
                           std::uint64_t launches) {
  if (n.gpu_window > key) return;
  if (n.gpu_window < key) {
    n.gpu = gpu_acc{};
    n.launches = 0;
    n.gpu_window = key;
  }
  n.gpu.add(acc);
  n.launches += launches;
}

}  // namespace diffscope::detail
