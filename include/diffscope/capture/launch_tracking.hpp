// diffscope: launch tracking for the CUPTI source's launch callbacks: the per-thread nesting
// of launch API calls (one launch announced once), and the verdicts of `automatic` launch
// APIs (when the runtime's callbacks are proved redundant and may go). No CUPTI calls here,
// so CPU tests drive every rule.
#pragma once

#include <atomic>
#include <cstdint>

#include <diffscope/capture/counters.hpp>

namespace diffscope::detail {

/// What one more outermost runtime launch says about the runtime launch callbacks
/// (`automatic` launch APIs).
enum class runtime_launch_verdict { undecided, redundant, needed };

/// One outermost runtime launch has returned; `nested_same`: a driver launch with its
/// correlation id ran inside it. Counts it in `runtime_verified` or `runtime_unmatched`. One
/// launch without such a driver launch (another id, a driver call we do not table, an early
/// error), or any nested launch with an id of its own, means the runtime callbacks are
/// `needed`; `needed_launches` verified ones in a row make them `redundant`. Lock-free:
/// launching threads call it at once.
inline runtime_launch_verdict judge_runtime_launch(bool nested_same, cupti_counters& c,
                                                   std::uint64_t needed_launches) noexcept {
  constexpr auto r = std::memory_order_relaxed;
  if (!nested_same || c.launch_aliases.load(r) != 0) {
    c.runtime_unmatched.fetch_add(1, r);
    return runtime_launch_verdict::needed;
  }
  if (c.runtime_verified.fetch_add(1, r) + 1 < needed_launches)
    return runtime_launch_verdict::undecided;
  // Another thread's unmatched launch may have raced this one: it wins.
  return c.runtime_unmatched.load(r) == 0 ? runtime_launch_verdict::redundant
                                          : runtime_launch_verdict::needed;
}

/// The launch API calls this thread is inside: how deep, and the outermost one's id. The
/// generation is the start() that wrote it, so an enter or exit callback lost to a start()
/// or stop() cannot leave a stale depth behind.
struct cupti_outer_launch {
  std::uint32_t generation = 0;
  std::uint32_t depth = 0;
  std::uint32_t id = 0;
  bool runtime = false;             ///< the outermost call is a runtime API
  bool nested_same = false;         ///< a driver launch inside it shared its id
  std::uint32_t counted_start = 0;  ///< the start() whose launch_threads count this thread
};

inline cupti_outer_launch& cupti_thread_outer_launch() noexcept {
  thread_local cupti_outer_launch outer;
  return outer;
}

/// This thread, as a number no other live thread has.
inline std::uintptr_t cupti_thread_token() noexcept {
  return reinterpret_cast<std::uintptr_t>(&cupti_thread_outer_launch());
}

/// Counts the calling thread among those that launched since the start `start_generation`
/// (once per start; one thread-local compare after that).
inline void count_launch_thread(cupti_outer_launch& outer, std::uint32_t start_generation,
                                cupti_counters& c, std::uintptr_t me) noexcept {
  if (outer.counted_start == start_generation) return;
  outer.counted_start = start_generation;
  if (c.launch_threads.fetch_add(1, std::memory_order_acq_rel) == 0)
    c.first_launch_thread.store(me, std::memory_order_release);
}

/// Whether `automatic` turns the runtime launch callbacks off now, from thread `me`.
enum class runtime_drop_verdict : std::uint8_t {
  now,            ///< proved redundant, and `me` is the only thread that launched
  not_from_here,  ///< proved, but `me` is not the launching thread: wait for its next push
  never,          ///< an unmatched launch, an alias, or a second launching thread
};

/// Switching the runtime callbacks off while another thread is inside a runtime launch can
/// cost that thread its later launches (unattributed records in the eight-thread GPU test,
/// never with `both` or `driver`); from the one launching thread, between its calls, no
/// runtime call is cut short.
inline runtime_drop_verdict judge_runtime_drop(const cupti_counters& c,
                                               std::uintptr_t me) noexcept {
  if (c.runtime_unmatched.load(std::memory_order_relaxed) != 0 ||
      c.launch_aliases.load(std::memory_order_relaxed) != 0 ||
      c.launch_threads.load(std::memory_order_acquire) != 1)
    return runtime_drop_verdict::never;
  return c.first_launch_thread.load(std::memory_order_acquire) == me
             ? runtime_drop_verdict::now
             : runtime_drop_verdict::not_from_here;
}

/// What one launch API callback is, given the thread's nesting state (which it updates).
enum class launch_callback_role : std::uint8_t {
  exit,                    ///< an exit that ends nothing we track
  exit_outermost_runtime,  ///< the exit of the outermost call, a runtime API
  nested_same,             ///< a call inside the outermost one with its id: already announced
  alias,                   ///< a call inside the outermost one with an id of its own
  announce,                ///< the outermost call: a launch to announce
};

/// The nesting rules of api_callback, apart from CUPTI so that CPU tests name them. A new
/// generation (a start, a resume, the runtime callbacks dropped) forgets the nesting but keeps
/// the last id: a call caught in the switch is still known as announced. `runtime_dropped`
/// is read only when a driver call looks nested, with an id of its own, in a runtime call:
/// once the runtime callbacks are off (or going off) that runtime call is one whose exit
/// callback was lost in the switch, so the driver call is a launch of its own, not an alias
/// of a launch that may be long finished.
template <class DroppedFn>
launch_callback_role track_launch_callback(cupti_outer_launch& outer, std::uint32_t generation,
                                           bool runtime, bool enter, std::uint32_t id,
                                           DroppedFn runtime_dropped) noexcept {
  if (outer.generation != generation)
    outer = {generation, 0, outer.id, false, false, outer.counted_start};
  if (!enter) {
    return outer.depth > 0 && --outer.depth == 0 && runtime
               ? launch_callback_role::exit_outermost_runtime
               : launch_callback_role::exit;
  }
  bool inside = ++outer.depth > 1;
  if (outer.id == id && id != 0) {
    // The runtime call's nested driver call: same id (CUDA 13). Not inside only when the
    // runtime call began before a new generation (its callbacks went off while it ran).
    if (inside) outer.nested_same = true;
    return launch_callback_role::nested_same;
  }
  if (inside && !runtime && outer.runtime && runtime_dropped()) {
    outer.depth = 1;
    inside = false;
  }
  if (inside) return launch_callback_role::alias;
  outer.id = id;
  outer.runtime = runtime;
  outer.nested_same = false;
  return launch_callback_role::announce;
}

}  // namespace diffscope::detail
