// diffscope: what the aggregator keeps per thread: the stack of open ranges (frames), the
// innermost scope the launch path reads, the process-wide registry of threads, and the
// ranges threads left open (the "unclosed at stop" fault).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

struct launch_ring;  // launch_table.hpp

// How a frame stands to the scope cap: its own scope, counted in an "(other)" scope, or
// opened inside a call counted there (no scope of its own: its time is in that call's).
inline constexpr std::uint8_t fold_none = 0, fold_other = 1, fold_absorbed = 2;

/// One open range on a thread.
struct scope_frame {
  std::uint32_t node = no_node;
  range_domain domain = range_domain::default_domain;
  bool is_step = false;
  std::int32_t stage = -1;  // index into the timeline's stages of the enclosing stage
  std::int64_t step = -1;   // enclosing denoise step
  std::uint64_t start_ns = 0;
  std::uint64_t instance = 0;  // 0 until the first launch inside
  std::uint32_t timed = 0;     // perf mode: the event pair timing this range
  std::int32_t request = -1;   // index into the timeline's requests of the enclosing request
  bool excluded = false;       // inside a warm-up: kept out of every table
  bool traced = true;          // sampled mode: opened while operations were traced
  std::uint8_t fold = fold_none;
};

// A frame's node and step in one word (steps past 2^31 are not a denoise loop).
inline std::uint64_t innermost_of(const scope_frame& f) noexcept {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(f.step)) << 32) | f.node;
}

// A thread with ranges open: live (read at unclosed_ranges()) or exited (kept).
struct open_record {
  std::uint64_t epoch = 0, number = 0, open = 0;
  std::uint32_t top = no_node;
  std::int64_t step = -1;
  std::uint64_t uncounted = 0;  // more ranges open on threads that exited past the cap
  bool exited = false;
};

struct thread_state;

// Every thread that ever touched an aggregator, process-wide (so a thread outliving an
// aggregator never points back into it), and what threads that exited left open.
struct thread_registry {
  static constexpr std::size_t exited_cap = 256;
  std::mutex mutex;
  std::vector<thread_state*> threads;
  std::vector<open_record> exited;

  static thread_registry& instance() {
    static thread_registry* r = new thread_registry();  // never destroyed: threads may outlive
    return *r;
  }
};

// The launch path reads only the first cache line: epoch, ring and the innermost frame's
// scope (top_*, kept by track_top whenever the stack or its instances change).
struct alignas(64) thread_state {
  std::uint64_t epoch = 0;
  launch_ring* ring = nullptr;     // this aggregator's ring for this thread's launches
  std::uint64_t top_instance = 0;  // the innermost frame's instance (0: none yet)
  bool top_scoped = false;         // the innermost frame is a scope of this aggregator
  std::uint64_t number = 0;
  std::vector<scope_frame> stack;
  // Read by unclosed_ranges() from other threads, written by this one at push and pop, on
  // the second line (beside the children map's head, which a push reads anyway): the
  // frames on the stack, how many of them an earlier aggregator's (below the others), and
  // the innermost one's node and step (innermost_of).
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> stale{0};
  std::atomic<std::uint64_t> innermost{0};
  child_cache children;  // (parent, name, cat, dom)
  bool registered = false;

  // This thread's open frames of the aggregator of its epoch.
  open_record record() const noexcept {
    open_record e;
    e.epoch = epoch;
    e.number = number;
    const std::uint64_t all = open.load(std::memory_order_relaxed);
    const std::uint64_t older = stale.load(std::memory_order_relaxed);
    e.open = all > older ? all - older : 0;
    const std::uint64_t top = innermost.load(std::memory_order_relaxed);
    e.top = static_cast<std::uint32_t>(top);
    e.step = static_cast<std::int32_t>(top >> 32);
    return e;
  }
  ~thread_state() {
    if (!registered) return;
    thread_registry& r = thread_registry::instance();
    std::lock_guard<std::mutex> g(r.mutex);
    r.threads.erase(std::remove(r.threads.begin(), r.threads.end(), this), r.threads.end());
    // Exiting with ranges open (the main thread at exit, before the collector's exit
    // hook): they stay counted for stop().
    open_record e = record();
    if (e.open == 0) return;
    const std::uint64_t n = e.open;
    e.exited = true;
    if (r.exited.size() >= thread_registry::exited_cap) {  // counted, not named
      for (open_record& x : r.exited) {
        if (x.epoch == epoch) {
          x.uncounted += n;
          return;
        }
      }
      r.exited.erase(r.exited.begin());  // another aggregator's, the oldest
    }
    r.exited.push_back(e);
  }
};

inline void track_top(thread_state& ts) noexcept {
  const scope_frame* top = ts.stack.empty() ? nullptr : &ts.stack.back();
  ts.top_scoped = top != nullptr && top->node != no_node;
  ts.top_instance = ts.top_scoped ? top->instance : 0;
}

/// What unclosed_ranges() found: every range of this aggregator still open, and the
/// innermost one of the first few threads holding any.
struct unclosed_report {
  std::uint64_t count = 0;
  std::vector<unclosed_range> innermost;
};

/// Ranges of the aggregator of `epoch` still open, on live threads and on threads that
/// exited with ranges open; names the innermost open range of the first `max_named` such
/// threads.
inline unclosed_report unclosed_ranges_of(std::uint64_t epoch, const scope_tree& tree,
                                          std::size_t max_named) {
  unclosed_report out;
  std::vector<open_record> found;
  {
    thread_registry& r = thread_registry::instance();
    std::lock_guard<std::mutex> g(r.mutex);
    for (const thread_state* ts : r.threads) {
      if (ts->epoch != epoch) continue;
      const open_record e = ts->record();
      if (e.open > 0) found.push_back(e);
    }
    for (const open_record& e : r.exited) {
      if (e.epoch != epoch) continue;
      out.count += e.uncounted;
      if (e.open == 0) continue;
      found.push_back(e);
    }
  }
  std::sort(found.begin(), found.end(),
            [](const open_record& a, const open_record& b) { return a.number < b.number; });
  const std::uint32_t nodes = tree.node_count();
  for (const open_record& e : found) {
    out.count += e.open;
    if (out.innermost.size() >= max_named) continue;
    unclosed_range u;
    u.thread = e.number;
    u.open = e.open;
    u.path = e.top < nodes ? tree.node_at(e.top).path : std::string();
    u.step = e.step;
    u.thread_exited = e.exited;
    out.innermost.push_back(std::move(u));
  }
  return out;
}

}  // namespace diffscope::detail
