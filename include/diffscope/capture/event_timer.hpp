// diffscope: perf mode's GPU timing. Each timed scope records one device event on a stream
// when it opens and one when it closes; the GPU executes them in stream order, so their
// difference is the time the stream spent on the scope, measured on the device, without the
// host waiting for anything and without tracing a single launch. Completed pairs are picked
// up later (cuEventQuery never blocks) and handed to the aggregator as one "timing"
// operation of the scope's own instance.
//
// The parts: event_api.hpp (the driver's event calls), event_pool.hpp (events reused per
// context), event_resolver.hpp (the thread that settles pairs in the background).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <diffscope/capture/activity.hpp>
#include <diffscope/capture/event_api.hpp>
#include <diffscope/capture/event_pool.hpp>
#include <diffscope/capture/event_resolver.hpp>
#include <diffscope/util/clock.hpp>

namespace diffscope::detail {

/// The stream timing events go to on this thread when the program names one
/// (diffscope::set_timing_stream); nullptr: the collector's default.
inline void*& timing_stream_override() noexcept {
  thread_local void* stream = nullptr;
  return stream;
}

/// What perf mode saw, for the results' fault and overhead counters.
struct event_timer_counts {
  std::uint64_t timed = 0;       ///< pairs resolved into GPU times
  std::uint64_t no_context = 0;  ///< scopes not timed: no CUDA context on their thread yet
  std::uint64_t failed = 0;      ///< event creation, recording or timing failed
  std::uint64_t unresolved = 0;  ///< pairs dropped at stop (unclosed scope, GPU error)
  std::uint64_t shared = 0;      ///< stamps that reused the previous stamp's event
  std::uint64_t chained = 0;     ///< of those, steps that started at the previous step's end
  std::uint64_t in_flight = 0;   ///< pairs waiting for the GPU now
  double begin_end_ns = 0;       ///< mean host cost of our begin() + end() per timed scope
};

/// Pairs start and end events per timed scope and resolves completed pairs in order.
/// Thread-safe; begin() and end() may come from any thread, drain() from any thread.
class event_timer {
 public:
  /// `default_stream`: where events go unless the thread names a stream (CU_STREAM_LEGACY,
  /// (void*)1, by default: the stream PyTorch and plain CUDA code launch to).
  /// `side`: instead of a timing event in the work stream, put only a marker there (an
  /// event without timing) and take the timestamp on a stream of our own that waits for it,
  /// so the work stream never executes a timestamp.
  /// `share_ns`: a stamp that follows the previous one on the same thread and stream by less
  /// than this much host time reuses its event instead of recording another (0: never).
  /// `batch_drain` (the default): a lazy drain looks once `2 * lag` pairs have closed and
  /// settles the oldest `lag` with one query (see drain()); false: one query per pair.
  /// `chain_steps` (the default): a denoise step that follows the previous one starts at
  /// its end stamp (see begin()); false: every step records its own start.
  /// Pair ids have the top bit set: the aggregator's launch table holds them beside CUPTI's
  /// correlation ids (which count up from 1) in sampled mode.
  static constexpr std::uint32_t pair_id_base = 0x80000000u;

  event_timer(event_api& api, void* default_stream, bool side = false,
              std::uint64_t share_ns = default_share_ns, bool batch_drain = true,
              bool chain_steps = true)
      : api_(api),
        stream_(default_stream),
        side_(side),
        share_ns_(share_ns),
        batch_drain_(batch_drain),
        chain_steps_(chain_steps) {}
  ~event_timer() { release_all(); }
  event_timer(const event_timer&) = delete;
  event_timer& operator=(const event_timer&) = delete;

  /// Records the start of a timed scope. Returns the pair's id (never 0), or 0 when the scope
  /// is not timed (no context on this thread, or the driver failed).
  ///
  /// `next_step`: the caller (the NVTX tool) saw this thread close denoise step k, timed,
  /// and open step k + 1 with no other range in between. When the latest stamp on this
  /// stream is still that step's end (end() with `step_end`: no stamp since, from any
  /// thread), the new step starts at it instead of recording another event: consecutive
  /// steps meet, so a step costs one record, not two, and the steps' spans add up to the
  /// loop's. Whatever the program enqueues between two steps counts in the later one.
  std::uint32_t begin(std::uint64_t host_ns, bool next_step = false) noexcept {
    void* ctx = api_.current_context();
    std::lock_guard<std::mutex> g(mutex_);
    if (ctx == nullptr) {
      ++counts_.no_context;
      return 0;
    }
    warm_locked(ctx);  // once per context, not counted in the per-scope cost
    const std::uint64_t t0 = now_ns();
    open_pair p;
    p.ctx = ctx;
    p.stream = timing_stream_override() != nullptr ? timing_stream_override() : stream_;
    p.host_ns = host_ns;
    p.thread = thread_token();
    p.start = next_step && chain_steps_ ? chained_stamp(ctx, p.stream) : nullptr;
    if (p.start == nullptr) p.start = stamp_event(ctx, p.stream);
    if (p.start == nullptr) {
      ++counts_.failed;
      return 0;
    }
    // Never 0 ("not timed"), and never a CUPTI correlation id: sampled mode runs both.
    const std::uint32_t id = pair_id_base | (++next_id_ & (pair_id_base - 1));
    open_.emplace(id, p);
    cost_ns_ += now_ns() - t0;
    return id;
  }

  /// Makes the current context's event pool (if a context is current) now instead of in
  /// the first timed scopes, which would otherwise each pay a cuEventCreate inside the
  /// program's timeline. The collector calls it at start.
  void warm() noexcept {
    void* ctx = api_.current_context();
    if (ctx == nullptr) return;
    std::lock_guard<std::mutex> g(mutex_);
    warm_locked(ctx);
  }

  /// Our own range handler, entered at `entered_ns` on this thread, is returning. It put
  /// nothing in a stream but its own stamps, so its time does not count towards the sharing
  /// window: when the latest stamp was made inside it, or was still within the window when
  /// it was entered, the window restarts now. Only the program's code between two handlers
  /// counts, and no launch fits in under `share_ns` of it: a step's end and the next step's
  /// start still share their event when the first handler also resolved old pairs (drain).
  /// Called for every range our NVTX tool handles, so the usual case (the latest stamp is
  /// another thread's, or the window closed before the handler began) takes no lock.
  void handler_returning(std::uint64_t entered_ns) noexcept {
    if (share_ns_ == 0) return;
    const auto open = [&](std::uint64_t at) {
      return at >= entered_ns || entered_ns - at < share_ns_;
    };
    if (last_token_.load(std::memory_order_relaxed) != thread_token() ||
        !open(last_at_.load(std::memory_order_relaxed))) {
      return;
    }
    std::lock_guard<std::mutex> g(mutex_);
    if (last_.event == nullptr || last_.thread != std::this_thread::get_id()) return;
    if (open(last_.at_ns)) set_last_at(now_ns());
  }

  /// Stamps closer than this (host ns, same thread and stream) share one event. No CUDA call
  /// that puts work in a stream returns that fast (a kernel launch takes 2-4 us of host time,
  /// an event record about 1-3 us), so nothing can have entered the stream between the two:
  /// a child's start right after its parent's, siblings back to back, consecutive steps.
  /// Each shared stamp saves a record's host time and its GPU time (BENCHMARKS.md).
  static constexpr std::uint64_t default_share_ns = 1000;
  /// Closed pairs a lazy drain lets pile up before it looks (see drain()).
  static constexpr std::size_t default_lag = 32;
  /// Events created ahead per context: enough for the pairs a lazy drain keeps in flight
  /// for stage and step timing (up to `2 * default_lag` closed pairs in a batch drain, two
  /// events each).
  static constexpr std::size_t warm_events = 4 * default_lag;

  /// Records the end of the timed scope `id` on the stream its start went to. `step_end`:
  /// the scope is a denoise step, whose end the next step may start at (begin()).
  void end(std::uint32_t id, bool step_end = false) noexcept {
    const std::uint64_t t0 = now_ns();
    std::lock_guard<std::mutex> g(mutex_);
    auto it = open_.find(id);
    if (it == open_.end()) return;
    open_pair p = it->second;
    open_.erase(it);
    void* end = stamp_event(p.ctx, p.stream);
    if (end == nullptr) {
      release(p.ctx, p.start);
      ++counts_.failed;  // the scope's instance is finalised at stop without a GPU time
      return;
    }
    last_.step_end = step_end;  // stamp_event() made `end` the latest stamp
    closed_.push_back(closed_pair{id, p, end});
    cost_ns_ += now_ns() - t0;
    ++cost_samples_;
  }

  /// Hands completed pairs, oldest first, to `sink` as timing operations (start at the
  /// scope's host start; the device measures only the length). Stops at the first pair still
  /// running unless `wait` (stop(): then it waits for each).
  ///
  /// Without `wait` it is lazy: it looks only once `lag` pairs have closed after the oldest
  /// one, and after finding the oldest still running it waits for `lag` more. Querying an
  /// event the GPU has not reached yet is not free: the driver pushes the queued work to the
  /// GPU, several times the cost of the two records themselves in a latency-bound loop
  /// (BENCHMARKS.md); a pair `lag` steps old has long completed. `lag` 1: look at every
  /// closed pair now (snapshots).
  ///
  /// Batch drain (`batch_drain`): it looks once `2 * lag` pairs have closed and settles the
  /// oldest `lag` of them at once. When they all went to one stream of one context, the
  /// newest one's end event is the only one queried: a stream completes its work in order,
  /// so every older event of theirs is done when it is. Steady state: one query per `lag`
  /// pairs instead of one per pair.
  ///
  /// The driver calls (queries, elapsed times) run without the timer's lock, so a program
  /// thread stamping meanwhile never waits for them; drainers take turns (the resolver
  /// thread, a snapshot, stop). `bind`: make each pair's context current first (the resolver
  /// thread only: it is ours).
  void drain(activity_sink& sink, bool wait, std::size_t lag = default_lag,
             bool bind = false) noexcept {
    std::lock_guard<std::mutex> turn(drain_mutex_);  // only drainers take closed_'s front
    std::vector<closed_pair> batch;                  // copies of closed_'s front, in order
    bool batched = false;
    {
      std::lock_guard<std::mutex> g(mutex_);
      const bool lazy = !wait && lag > 1;
      std::size_t n = closed_.size();
      if (lazy && batch_drain_) {
        if (n < std::max(2 * lag, retry_at_)) return;
        n = lag;
        batched = true;
      } else if (lazy) {
        if (n < std::max(lag, retry_at_)) return;
        n = n - lag + 1;  // one by one while `lag` or more stay closed
      }
      batch.assign(closed_.begin(), closed_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    if (batch.empty()) return;
    void* bound = nullptr;
    const auto use = [&](void* ctx) {
      if (bind && ctx != bound) api_.bind(ctx);
      bound = ctx;
    };
    std::size_t known_done = 0;  // front pairs a later event showed complete
    if (batched) {
      use(batch.back().p.ctx);
      switch (batch_state(batch)) {
        case event_api::state::pending: {
          std::lock_guard<std::mutex> g(mutex_);
          retry_at_ = closed_.size() + lag;
          return;
        }
        case event_api::state::done:
          known_done = batch.size();
          break;
        case event_api::state::failed:  // several streams, or the query failed: one by one
          break;
      }
    }
    std::vector<gpu_op> ready;
    std::size_t settled = 0, timed = 0, failed = 0;
    bool stalled = false;
    for (const closed_pair& c : batch) {
      use(c.p.ctx);
      event_api::state s = event_api::state::done;
      if (known_done > 0)
        --known_done;
      else
        s = api_.query(c.end);
      if (s == event_api::state::pending && wait)
        s = api_.synchronize(c.end) ? event_api::state::done : event_api::state::failed;
      if (s == event_api::state::pending) {
        stalled = true;
        break;
      }
      std::optional<double> ms;
      if (s == event_api::state::done) ms = api_.elapsed_ms(c.p.start, c.end);
      if (ms && *ms >= 0) {
        gpu_op op;
        op.kind = op_kind::timing;
        op.correlation_id = c.id;
        op.start_ns = c.p.host_ns;
        op.end_ns = c.p.host_ns + static_cast<std::uint64_t>(*ms * 1e6 + 0.5);
        ready.push_back(op);
        ++timed;
      } else {
        ++failed;
      }
      ++settled;
    }
    {
      std::lock_guard<std::mutex> g(mutex_);
      for (std::size_t i = 0; i < settled; ++i) {
        const closed_pair& c = closed_.front();
        release(c.p.ctx, c.p.start);
        release(c.p.ctx, c.end);
        closed_.pop_front();
      }
      counts_.timed += timed;
      counts_.failed += failed;
      retry_at_ = stalled ? closed_.size() + lag : 0;
    }
    for (const gpu_op& op : ready) sink.on_gpu_op(op);
  }

  /// Resolves closed pairs on a thread of our own (DIFFSCOPE_EXPERIMENT_PERF_DRAIN=thread, the
  /// default): every `period` it drains lazily into `sink`, so the program's threads only
  /// record events; the queries, the elapsed times and the aggregator's work for each pair,
  /// a large part of a timed step's host cost (BENCHMARKS.md), happen elsewhere. Stop it
  /// before the final drain.
  void start_resolver(activity_sink& sink,
                      std::chrono::microseconds period = std::chrono::milliseconds(2)) {
    resolver_.start([this, &sink] { drain(sink, false, default_lag, /*bind=*/true); }, period);
  }

  /// Stops the resolver thread (a no-op when none runs). In a forked child the thread is
  /// the parent's: it is let go, not joined.
  void stop_resolver() noexcept { resolver_.stop(); }

  /// Whether a resolver thread drains (range handlers then leave it alone).
  bool resolves_in_background() const noexcept { return resolver_.running(); }

  /// Drops every pair (unclosed scopes, pairs the GPU never completed) and frees the events.
  void release_all() noexcept {
    stop_resolver();
    std::lock_guard<std::mutex> turn(drain_mutex_);
    std::lock_guard<std::mutex> g(mutex_);
    counts_.unresolved += open_.size() + closed_.size();
    for (auto& kv : open_) release(kv.second.ctx, kv.second.start);
    for (auto& c : closed_) {
      release(c.p.ctx, c.p.start);
      release(c.p.ctx, c.end);
    }
    open_.clear();
    closed_.clear();
    refs_.clear();
    last_ = last_stamp{};  // its event is destroyed below
    last_token_.store(0, std::memory_order_relaxed);
    pool_.destroy_all();
    for (const side_state& s : sides_) {
      if (s.marker != nullptr) api_.destroy(s.marker);
      if (s.stream != nullptr) api_.destroy_stream(s.stream);
    }
    sides_.clear();
  }

  event_timer_counts counts() const {
    std::lock_guard<std::mutex> g(mutex_);
    event_timer_counts c = counts_;
    c.in_flight = open_.size() + closed_.size();
    c.begin_end_ns = cost_samples_ > 0 ? static_cast<double>(cost_ns_) / cost_samples_ : 0;
    return c;
  }

 private:
  struct open_pair {
    void* ctx = nullptr;
    void* stream = nullptr;
    void* start = nullptr;
    std::uint64_t host_ns = 0;
    std::uint64_t thread = 0;  // thread_token(): CU_STREAM_PER_THREAD is one handle, many streams
  };
  struct closed_pair {
    std::uint32_t id;
    open_pair p;
    void* end;
  };

  // Side mode's marker and stream of a context. One marker serves every stamp: a stream
  // wait takes the marker's state at the time of the call, so re-recording it is safe.
  struct side_state {
    void* ctx = nullptr;
    void* marker = nullptr;
    void* stream = nullptr;
  };

  // The event marking the current end of `stream` for a pair: the previous stamp's when it
  // is recent enough (see default_share_ns), else a new one. nullptr when recording failed.
  void* stamp_event(void* ctx, void* stream) {
    const std::thread::id self = std::this_thread::get_id();
    if (share_ns_ > 0 && last_.event != nullptr && last_.thread == self && last_.ctx == ctx &&
        last_.stream == stream && now_ns() - last_.at_ns < share_ns_) {
      return reuse_last();
    }
    void* ev = pool_.take(ctx);
    if (ev == nullptr) return nullptr;
    if (!stamp(ctx, ev, stream)) {
      pool_.give(ctx, ev);
      return nullptr;
    }
    refs_[ev] = 1;
    last_ = last_stamp{self, ctx, stream, ev, 0, false};
    last_token_.store(thread_token(), std::memory_order_relaxed);
    set_last_at(now_ns());
    return ev;
  }

  // The previous step's end event for a step that follows it (see begin()), or nullptr
  // when the latest stamp is not that end on this thread, context and stream.
  void* chained_stamp(void* ctx, void* stream) {
    if (!last_.step_end || last_.event == nullptr || last_.thread != std::this_thread::get_id() ||
        last_.ctx != ctx || last_.stream != stream)
      return nullptr;
    ++counts_.chained;
    return reuse_last();
  }

  // The latest stamp's event, held once more by the caller's pair. It is no longer a step's
  // unused end, and the next gap is measured from now: no launch fits in either.
  void* reuse_last() {
    ++refs_[last_.event];
    ++counts_.shared;
    last_.step_end = false;
    set_last_at(now_ns());
    return last_.event;
  }

  // A batch's completion in one query: its newest end event's state when one thread sent
  // them all to one stream of one context (so they complete in order), else `failed` (ask
  // each).
  event_api::state batch_state(const std::vector<closed_pair>& batch) {
    const closed_pair& newest = batch.back();
    for (const closed_pair& c : batch) {
      const open_pair& p = c.p;
      if (p.ctx != newest.p.ctx || p.stream != newest.p.stream || p.thread != newest.p.thread)
        return event_api::state::failed;
    }
    return api_.query(newest.end);
  }

  // A pair lets go of an event; the last holder returns it to the pool.
  void release(void* ctx, void* ev) {
    auto it = refs_.find(ev);
    if (it != refs_.end() && --it->second > 0) return;
    if (it != refs_.end()) refs_.erase(it);
    if (last_.event == ev) last_.event = nullptr;  // it may be recorded again elsewhere
    pool_.give(ctx, ev);
  }

  // Puts timing event `ev` at the current end of `stream` (inline), or after it (side).
  bool stamp(void* ctx, void* ev, void* stream) {
    if (!side_) return api_.record(ev, stream);
    side_state& s = side_of(ctx);
    return s.marker != nullptr && s.stream != nullptr && api_.record(s.marker, stream) &&
           api_.wait(s.stream, s.marker) && api_.record(ev, s.stream);
  }
  side_state& side_of(void* ctx) {
    for (side_state& x : sides_)
      if (x.ctx == ctx) return x;
    sides_.push_back(side_state{ctx, api_.create_marker(), api_.create_stream()});
    return sides_.back();
  }

  // First use of `ctx`: its pool with `warm_events` events (and side mode's marker and
  // stream). The pool exists afterwards even if creation failed, so this runs once.
  void warm_locked(void* ctx) {
    if (!pool_.warm(ctx, warm_events)) return;
    if (side_) side_of(ctx);
  }

  // The latest stamp's host time, kept in last_ (authoritative, under the lock) and in an
  // atomic copy that handler_returning() reads without it.
  void set_last_at(std::uint64_t ns) noexcept {
    last_.at_ns = ns;
    last_at_.store(ns, std::memory_order_relaxed);
  }
  // A number per thread, never 0: which thread made the latest stamp, readable lock-free.
  static std::uint64_t thread_token() noexcept {
    static std::atomic<std::uint64_t> next{1};
    thread_local const std::uint64_t token = next.fetch_add(1, std::memory_order_relaxed);
    return token;
  }

  // The latest recorded stamp, for sharing.
  struct last_stamp {
    std::thread::id thread;
    void* ctx = nullptr;
    void* stream = nullptr;
    void* event = nullptr;
    std::uint64_t at_ns = 0;  // host time when the stamp call returned
    bool step_end = false;    // a timed denoise step's end, not used since (chained_stamp)
  };

  event_api& api_;
  void* stream_;
  const bool side_;
  const std::uint64_t share_ns_;
  const bool batch_drain_;
  const bool chain_steps_;
  last_stamp last_;
  std::atomic<std::uint64_t> last_token_{0};       // thread_token() of last_.thread (0: none)
  std::atomic<std::uint64_t> last_at_{0};          // last_.at_ns
  std::unordered_map<void*, std::uint32_t> refs_;  // pairs (start or end) holding each event
  std::vector<side_state> sides_;
  std::size_t retry_at_ = 0;  // closed pairs needed before the next lazy query
  mutable std::mutex mutex_;
  std::mutex drain_mutex_;  // held by the one drainer at a time (outside mutex_)
  std::uint32_t next_id_ = 0;
  std::unordered_map<std::uint32_t, open_pair> open_;
  std::deque<closed_pair> closed_;
  event_pool pool_{api_};  // guarded by mutex_
  event_timer_counts counts_;
  std::uint64_t cost_ns_ = 0, cost_samples_ = 0;
  resolver_thread resolver_;  // start_resolver(); last: stopped before the rest goes
};

}  // namespace diffscope::detail
