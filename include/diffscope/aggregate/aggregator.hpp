// diffscope: online aggregation of ranges and GPU operations into per-scope, per-step and
// per-stage statistics. Host-only code (no CUDA, no CUPTI, no NVTX): the NVTX tool feeds it
// ranges, the CUPTI source feeds it launches and completed operations, tests feed it both
// synthetically through the very same entry points.
//
// Model
// - A scope *node* is a path in the tree of range names ("DenoisingStage/denoise_step/block").
// - A scope *instance* is one call of a node. Instances exist only for calls that launched GPU
//   work (created lazily at the first launch), so ranges without GPU work never take a
//   global lock.
// - A launch maps its correlation id to the innermost instance open on the launching thread;
//   a completed operation updates that instance and all its ancestors (inclusive timings).
//   Launches take no lock: each launching thread appends them to a ring of its own, which
//   is taken into the tables (under the lock) when the thread closes a scope, when a record
//   finds no launch, and before results are read. Only the first launch in a scope call
//   takes the lock, to make the instance.
// - An instance is finalised (its union of intervals computed, its numbers folded into its
//   node, step and stage, its memory freed) once it is closed on the host and every
//   operation it launched has arrived; stop() finalises what is left. Memory is therefore
//   bounded by the work in flight, not by the length of the run.
// - CUDA graphs: nodes created during capture remember the scope open on the capturing
//   thread; when a replayed node's operation arrives, it is attributed to that capture path
//   grafted under the scope around the graph launch.
// - Distinct scopes are capped (aggregator_options::max_scopes, and as many range names):
//   past the cap a new (parent, name) goes into the parent's one "(other)" scope, counted
//   like any scope, and ranges opened inside such a call have no scope of their own (their
//   time is already in it). Stages, steps and requests are never folded. Names past the cap
//   are not stored. Ids or shapes in range names thus cost bounded memory.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <diffscope/aggregate/histogram.hpp>
#include <diffscope/aggregate/overlap.hpp>
#include <diffscope/capture/activity.hpp>
#include <diffscope/results.hpp>
#include <diffscope/sglang/range_names.hpp>
#include <diffscope/util/clock.hpp>

namespace diffscope::detail {

inline constexpr std::uint32_t no_node = 0xffffffffu;

/// Domains the aggregator distinguishes. Ranges of any other domain are ignored.
enum class range_domain : std::uint8_t { default_domain = 0, diffscope = 1 };

inline const char* domain_label(range_domain d) noexcept {
  return d == range_domain::diffscope ? "diffscope" : "";
}

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

  void add(const gpu_acc& o) noexcept {
    timed += o.timed;
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

/// Distinct 64-bit keys: exact up to `exact_limit`, then a HyperLogLog estimate (4,096
/// one-byte registers, about 1.6% standard error), so a million keys cost 4 KiB.
class distinct_counter {
 public:
  static constexpr std::size_t exact_limit = 1024;
  void add(std::uint64_t key) {
    const std::uint64_t h = mix(key);
    if (registers_.empty()) {
      if (!exact_.insert(h).second || exact_.size() <= exact_limit) return;
      registers_.assign(std::size_t{1} << bits, 0);
      for (std::uint64_t x : exact_) add_register(x);
      std::unordered_set<std::uint64_t>().swap(exact_);
      return;
    }
    add_register(h);
  }
  /// Exact while estimated() is false.
  std::uint64_t count() const {
    if (registers_.empty()) return exact_.size();
    const double m = static_cast<double>(registers_.size());
    double sum = 0;
    std::size_t zeros = 0;
    for (std::uint8_t r : registers_) {
      sum += std::ldexp(1.0, -static_cast<int>(r));
      zeros += r == 0;
    }
    double e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros > 0) e = m * std::log(m / static_cast<double>(zeros));
    return static_cast<std::uint64_t>(std::llround(e));
  }
  bool estimated() const noexcept { return !registers_.empty(); }

 private:
  static constexpr unsigned bits = 12;
  static std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  void add_register(std::uint64_t h) {
    std::uint8_t& r = registers_[h >> (64 - bits)];
    std::uint64_t rest = h << bits;
    std::uint8_t rank = 1;
    while (rank <= 64 - bits && (rest & (1ull << 63)) == 0) {
      rest <<= 1;
      ++rank;
    }
    r = std::max(r, rank);
  }
  std::unordered_set<std::uint64_t> exact_;
  std::vector<std::uint8_t> registers_;
};

struct aggregator_options {
  bool keep_trace = false;
  std::uint64_t trace_cap = 2'000'000;  ///< ranges + ops kept for the trace
  /// The first N requests (warm-up ranges not counted) are warm-ups: excluded like them.
  std::uint64_t skip_requests = 0;
  /// Distinct scopes (tree nodes other than stages, steps, requests and "(other)"), and
  /// distinct range names, kept before folding into "(other)"; 0: no cap.
  std::uint64_t max_scopes = 10'000;
};

/// What unclosed_ranges() found: every range of this aggregator still open, and the
/// innermost one of the first few threads holding any.
struct unclosed_report {
  std::uint64_t count = 0;
  std::vector<unclosed_range> innermost;
};

class aggregator final : public activity_sink {
 public:
  explicit aggregator(aggregator_options options = {})
      : epoch_(next_epoch()),
        keep_trace_(options.keep_trace),
        options_(options),
        origin_ns_(now_ns()) {
    step_name_id_ = intern(step_scope_name, false);
    other_name_id_ = intern(folded_scope_name, false);
    trace_.enabled = options.keep_trace;
    trace_.cap = options.trace_cap;
    trace_.origin_ns = origin_ns_;
  }
  ~aggregator() override {
    for (auto& chunk : chunks_) delete[] chunk.load(std::memory_order_relaxed);
    thread_registry& r = registry();
    std::lock_guard<std::mutex> g(r.mutex);
    r.exited.erase(std::remove_if(r.exited.begin(), r.exited.end(),
                                  [this](const open_record& e) { return e.epoch == epoch_; }),
                   r.exited.end());
  }
  aggregator(const aggregator&) = delete;
  aggregator& operator=(const aggregator&) = delete;

  std::uint64_t origin_ns() const noexcept { return origin_ns_; }
  /// Name id of the canonical step scope name, interned up front: steps arrive with a
  /// formatted name every time and must not pay a lookup for it.
  std::uint32_t step_name_id() const noexcept { return step_name_id_; }
  /// Name id of "(other)": what intern() gives for a range name past the cap.
  std::uint32_t other_name_id() const noexcept { return other_name_id_; }
  /// Ranges of these categories carry the dump's own figures: never folded into "(other)".
  static bool never_folded(category c) noexcept {
    return c == category::stage || c == category::denoise_step || c == category::request;
  }

  // ---- names ------------------------------------------------------------------------------

  /// Interns a name; ids are stable for the aggregator's life. A `capped` name (a range
  /// name that may be folded) past the cap is not stored: it gets other_name_id().
  std::uint32_t intern(std::string_view name, bool capped = true) {
    std::lock_guard<std::mutex> g(names_mutex_);
    auto it = name_ids_.find(std::string(name));
    if (it != name_ids_.end()) return it->second;
    if (capped && options_.max_scopes != 0) {
      if (capped_names_ >= options_.max_scopes) {
        note_folded_name(std::hash<std::string_view>()(name));
        return other_name_id_;
      }
      ++capped_names_;
    }
    const auto id = static_cast<std::uint32_t>(names_.size());
    names_.emplace_back(new std::string(name));
    name_ids_.emplace(*names_.back(), id);
    return id;
  }
  /// Names stored (range names within the cap, kernel names, the fixed ones).
  std::size_t names_stored() const {
    std::lock_guard<std::mutex> g(names_mutex_);
    return names_.size();
  }
  std::string name_of(std::uint32_t id) const {
    std::lock_guard<std::mutex> g(names_mutex_);
    return id < names_.size() ? *names_[id] : std::string();
  }

  // ---- ranges (called on the annotating thread) ------------------------------------------

  /// Opens a range. `name_id` from intern(); `step` set for denoise steps; requests
  /// (category request) carry their id and whether they are a warm-up. Returns false when
  /// the range has no scope of its own (opened inside a call folded into "(other)"): perf
  /// mode must not time it, its span is its folded ancestor's.
  bool push(range_domain dom, std::uint32_t name_id, category cat, std::optional<std::int64_t> step,
            std::uint64_t t_ns, std::string_view request_id = {}, bool warmup = false) {
    thread_state& ts = local();
    ++ranges_;
    const frame* top = ts.stack.empty() ? nullptr : &ts.stack.back();
    frame f;
    f.domain = dom;
    node* n = nullptr;
    if (top != nullptr && top->fold != fold_none && !never_folded(cat)) {
      f.node = top->node;  // inside a folded call: counted there already
      f.fold = fold_absorbed;
    } else {
      f.node = child(ts, top ? top->node : no_node, name_id, cat, dom);
      if (f.node != no_node) {
        n = &node_at(f.node);
        if (n->is_other) f.fold = fold_other;
      }
    }
    if (f.fold != fold_none) {  // past the cap: the uncommon case
      ranges_folded_.fetch_add(1, std::memory_order_relaxed);
      if (name_id != other_name_id_) note_folded_name(name_key(name_id));  // else intern() did
    }
    f.start_ns = t_ns;
    f.step = step ? *step : (top ? top->step : -1);
    f.is_step = step.has_value();
    f.request = top ? top->request : -1;
    f.excluded = top ? top->excluded : false;
    if (cat == category::request) f.request = begin_request(request_id, warmup, t_ns, f.excluded);
    f.stage = cat == category::stage
                  ? static_cast<std::int32_t>(stage_index(f.node, t_ns, f.excluded))
                  : (top ? top->stage : -1);
    // Warm-up-only scopes stay out of the tables (an absorbed frame's node is its
    // ancestor's, marked already).
    if (!f.excluded && n != nullptr && !n->included.load(std::memory_order_relaxed))
      n->included.store(true, std::memory_order_relaxed);
    ts.stack.push_back(f);
    track_top(ts);
    ts.open.store(ts.stack.size(), std::memory_order_relaxed);
    ts.innermost.store(innermost_of(f), std::memory_order_relaxed);
    return f.fold != fold_absorbed;
  }

  /// What pop() closed.
  struct popped {
    bool ok = false;     ///< false: no open range of that domain (counted as unbalanced)
    bool stage = false;  ///< the range was a stage
    bool step = false;   ///< the range was a denoise step
    std::uint32_t name_id = 0;
    std::uint32_t timed = 0;  ///< perf mode: the timing pair opened with the range (0: none)
  };

  /// Closes the innermost open range of `dom` on this thread.
  popped pop(range_domain dom, std::uint64_t t_ns) {
    thread_state& ts = local();
    frame f;
    if (!ts.stack.empty() && ts.stack.back().domain == dom) {  // the usual, nested case
      f = ts.stack.back();
      ts.stack.pop_back();
    } else {  // ranges of two domains crossing: close the innermost one of this domain
      auto it = std::find_if(ts.stack.rbegin(), ts.stack.rend(),
                             [dom](const frame& x) { return x.domain == dom; });
      if (it == ts.stack.rend()) {
        unbalanced_pops_.fetch_add(1, std::memory_order_relaxed);
        return {};
      }
      f = *it;
      ts.stack.erase(std::next(it).base());
    }
    if (f.node == no_node) {  // opened before this aggregator existed
      const std::uint64_t stale = ts.stale.load(std::memory_order_relaxed);
      if (stale > 0) ts.stale.store(stale - 1, std::memory_order_relaxed);
    }
    track_top(ts);
    ts.open.store(ts.stack.size(), std::memory_order_relaxed);
    ts.innermost.store(ts.stack.empty() ? innermost_of(frame{}) : innermost_of(ts.stack.back()),
                       std::memory_order_relaxed);
    popped p;
    p.ok = true;
    if (f.node == no_node) return p;
    const node& n = node_at(f.node);
    p.stage = n.cat == category::stage;
    p.step = n.cat == category::denoise_step;
    p.name_id = n.name_id;
    p.timed = f.timed;
    close_frame(ts, f, t_ns);
    return p;
  }

  /// Whether this thread has an open range of `dom` known to this aggregator.
  bool has_open(range_domain dom) {
    thread_state& ts = local();
    return std::any_of(ts.stack.begin(), ts.stack.end(),
                       [dom](const frame& f) { return f.domain == dom; });
  }

  // ---- activity_sink ----------------------------------------------------------------------

  void on_launch(std::uint32_t correlation_id, launch_kind kind) noexcept override {
    try {
      thread_state& ts = local();
      const std::uint64_t launch_ns = keep_trace_ ? now_ns() : 0;
      if (kind == launch_kind::timing) {  // perf mode's spans: one per timed scope, locked
        std::lock_guard<std::mutex> g(mutex_);
        pending p;
        p.kind = kind;
        p.thread = ts.number;
        p.launch_ns = launch_ns;
        if (!ts.stack.empty()) ts.stack.back().timed = correlation_id;  // pop() ends the pair
        if (!ts.stack.empty() && ts.stack.back().node != no_node) {
          p.instance = ensure_instances(ts);
          ++find_instance(p.instance)->expected;  // the scope's own span: its instance alone
        }
        pending_.insert(correlation_id, p);
        return;
      }
      // Only lines this thread owns or nobody writes: the thread_state's first line, the
      // ring's tail line and one slot (the frame stack and the ring's head stay cold).
      const bool scoped = ts.top_scoped;
      std::uint64_t inst = ts.top_instance;
      launch_ring* ring = ts.ring;
      if (ring == nullptr || (scoped && inst == 0) || ring->full()) {
        // The first launch of this thread or of this scope call, or a full ring.
        std::lock_guard<std::mutex> g(mutex_);
        if (ring == nullptr) {
          rings_.push_back(std::make_unique<launch_ring>());
          ring = ts.ring = rings_.back().get();
          ring->thread = ts.number;
        }
        if (scoped && inst == 0) inst = ensure_instances(ts);
        if (ring->full()) {
          take_launches(*ring);
          ring->room();
        }
      }
      ring->append(correlation_id, kind, inst, launch_ns);
    } catch (...) {
      internal_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void on_launch_alias(std::uint32_t nested_id, std::uint32_t outer_id) noexcept override {
    try {
      std::lock_guard<std::mutex> g(mutex_);
      aliases_[nested_id] = outer_id;
      if (aliases_.size() > prune_threshold_) aliases_.clear();  // only ever a fallback
    } catch (...) {
      internal_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void on_graph_node_created(std::uint64_t node_id) noexcept override {
    try {
      thread_state& ts = local();
      std::vector<std::uint32_t> path;
      for (const frame& f : ts.stack)
        if (f.node != no_node) path.push_back(f.node);
      std::lock_guard<std::mutex> g(mutex_);
      graph_nodes_[node_id] = path.empty() ? no_node : path.back();
    } catch (...) {
      internal_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void on_graph_node_cloned(std::uint64_t original_id, std::uint64_t clone_id) noexcept override {
    try {
      std::lock_guard<std::mutex> g(mutex_);
      auto it = graph_nodes_.find(original_id);
      graph_nodes_[clone_id] = it == graph_nodes_.end() ? no_node : it->second;
    } catch (...) {
      internal_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void on_gpu_op(const gpu_op& op) noexcept override {
    try {
      records_.fetch_add(1, std::memory_order_relaxed);
      if (op.start_ns == 0 || op.end_ns == 0) {
        zero_timestamps_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (op.end_ns < op.start_ns) {
        inverted_timestamps_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      const std::uint32_t op_name = intern(op.name, false);  // kernels are not scopes
      std::lock_guard<std::mutex> g(mutex_);
      ingest(op, op_name);
    } catch (...) {
      internal_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void on_dropped(std::uint64_t count) noexcept override {
    dropped_.fetch_add(count, std::memory_order_relaxed);
  }

  // ---- results ----------------------------------------------------------------------------

  /// Finalises every instance still waiting for operations (call after the last flush).
  void finalize_all() {
    std::lock_guard<std::mutex> g(mutex_);
    take_all_launches();
    for (instance& in : slots_)
      if (in.live) finalize(in.id);
    pending_.clear();
    aliases_.clear();
  }

  /// Ranges of this aggregator still open (the "unclosed at stop" fault): on live threads,
  /// and on threads that exited with ranges open (the program's main thread among them when
  /// the collector stops at exit: its thread-locals are destroyed before atexit handlers
  /// run). Names the innermost open range of the first `max_named` such threads.
  unclosed_report unclosed_ranges(std::size_t max_named = 5) const {
    unclosed_report out;
    std::vector<open_record> found;
    {
      thread_registry& r = registry();
      std::lock_guard<std::mutex> g(r.mutex);
      for (const thread_state* ts : r.threads) {
        if (ts->epoch != epoch_) continue;
        const open_record e = ts->record();
        if (e.open > 0) found.push_back(e);
      }
      for (const open_record& e : r.exited) {
        if (e.epoch != epoch_) continue;
        out.count += e.uncounted;
        if (e.open == 0) continue;
        found.push_back(e);
      }
    }
    std::sort(found.begin(), found.end(),
              [](const open_record& a, const open_record& b) { return a.number < b.number; });
    const std::uint32_t nodes = node_count_.load(std::memory_order_acquire);
    for (const open_record& e : found) {
      out.count += e.open;
      if (out.innermost.size() >= max_named) continue;
      unclosed_range u;
      u.thread = e.number;
      u.open = e.open;
      u.path = e.top < nodes ? node_at(e.top).path : std::string();
      u.step = e.step;
      u.thread_exited = e.exited;
      out.innermost.push_back(std::move(u));
    }
    return out;
  }
  /// How many ranges unclosed_ranges() would count.
  std::uint64_t open_ranges() const { return unclosed_ranges(0).count; }

  /// Builds the results. `gpu_measured` says whether GPU timing was available at all. The
  /// trace's raw events are copied, or moved out with `take_trace` (a final snapshot: the
  /// aggregator then keeps none).
  results snapshot(bool gpu_measured, bool take_trace = false) {
    results r;
    r.wall_ms = (now_ns() - origin_ns_) / 1e6;
    std::lock_guard<std::mutex> g(mutex_);
    const std::uint32_t count = node_count_.load(std::memory_order_acquire);
    std::vector<std::int64_t> index(count, -1);
    // Parents are always created before children, so creation order is a valid order.
    for (std::uint32_t i = 0; i < count; ++i) {
      node& n = node_at(i);
      // Entered only inside warm-ups (so are all its children): not a row.
      if (!n.included.load(std::memory_order_relaxed)) continue;
      scope_result s;
      s.name = name_of(n.name_id);
      s.path = n.path;
      s.cat = n.cat;
      s.domain = domain_label(n.domain);
      s.depth = n.depth;
      s.parent = n.parent == no_node ? -1 : index[n.parent];
      {
        std::lock_guard<spin_lock> ng(n.host_lock);
        s.host = host_summary(n.host);
      }
      s.gpu = n.gpu.to_stats(gpu_measured);
      s.launches = n.launches;
      index[i] = static_cast<std::int64_t>(r.scopes.size());
      r.scopes.push_back(std::move(s));
    }
    auto step_of = [&](std::int64_t step, const step_acc& acc) {
      step_result s;
      s.step = step;
      s.calls = acc.calls;
      s.host_ms = acc.host_ns / 1e6;
      s.gpu = acc.gpu.to_stats(gpu_measured);
      s.start_ms = acc.first_start_ns > origin_ns_ ? (acc.first_start_ns - origin_ns_) / 1e6 : 0;
      return s;
    };
    for (const auto& kv : steps_) r.steps.push_back(step_of(kv.first, kv.second));
    auto stage_of = [&](const stage_acc& st) {
      stage_result s;
      s.name = name_of(node_at(st.node).name_id);
      s.calls = st.calls;
      s.host_ms = st.host_ns / 1e6;
      s.gpu = st.gpu.to_stats(gpu_measured);
      s.start_ms = st.first_start_ns > origin_ns_ ? (st.first_start_ns - origin_ns_) / 1e6 : 0;
      return s;
    };
    for (const stage_acc& st : stages_)
      if (st.included) r.stages.push_back(stage_of(st));
    for (std::size_t i = 0; i < requests_.size(); ++i) {
      const request_acc& rq = requests_[i];
      request_result q;
      q.id = rq.id;
      q.index = i;
      q.warmup = rq.excluded;
      q.calls = rq.calls;
      q.host_ms = rq.host_ns / 1e6;
      q.start_ms = rq.start_ns > origin_ns_ ? (rq.start_ns - origin_ns_) / 1e6 : 0;
      q.gpu = rq.gpu.to_stats(gpu_measured);
      for (const stage_acc& st : rq.stages) q.stages.push_back(stage_of(st));
      for (const auto& kv : rq.steps) q.steps.push_back(step_of(kv.first, kv.second));
      r.requests.push_back(std::move(q));
    }
    for (const auto& kv : kernels_) {
      kernel_result k;
      k.name = name_of(kv.first.name);
      k.kind = kind_label(kv.first.kind);
      k.scope_path = kv.first.node == no_node ? std::string() : node_at(kv.first.node).path;
      k.count = kv.second.count;
      k.total_ms = kv.second.total / 1e6;
      k.min_ms = kv.second.min / 1e6;
      k.max_ms = kv.second.max / 1e6;
      r.kernels.push_back(std::move(k));
    }
    std::sort(r.kernels.begin(), r.kernels.end(),
              [](const kernel_result& a, const kernel_result& b) {
                return a.total_ms != b.total_ms ? a.total_ms > b.total_ms : a.name < b.name;
              });
    r.faults.dropped_records = dropped_.load();
    r.faults.zero_timestamps = zero_timestamps_.load();
    r.faults.inverted_timestamps = inverted_timestamps_.load();
    r.faults.unattributed_records = unattributed_;
    r.faults.unbalanced_pops = unbalanced_pops_.load();
    r.faults.late_records = late_records_;
    r.faults.trace_events_dropped = trace_dropped_;
    r.faults.ranges_folded = ranges_folded_.load(std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> fg(fold_mutex_);
      r.faults.names_folded = folded_names_.count();
      r.faults.names_folded_estimated = folded_names_.estimated();
    }
    r.status.max_scopes = options_.max_scopes;
    r.overhead.ranges = ranges_.load();
    std::uint64_t launches = 0;
    for (const auto& ring : rings_) launches += ring->tail.load(std::memory_order_acquire);
    r.overhead.callbacks = launches;
    r.overhead.records = records_.load();
    if (take_trace) {
      r.trace = std::move(trace_);
      trace_.ranges = {};
      trace_.ops = {};
    } else {
      r.trace = trace_;
    }
    return r;
  }

  std::uint64_t internal_errors() const noexcept { return internal_errors_.load(); }
  std::size_t instances_in_flight() const {
    std::lock_guard<std::mutex> g(mutex_);
    return live_instances_;
  }
  std::size_t pending_launches() {
    std::lock_guard<std::mutex> g(mutex_);
    take_all_launches();
    return pending_.count();
  }
  /// Allocates the pending-launch table now. The collector calls it at start when GPU
  /// timing is on: made at the first launch instead, its 4 MB (about 1.3 ms on the H200
  /// host) landed inside the first timed scope of a perf-mode run, while the GPU waited.
  void prepare_launches() {
    std::lock_guard<std::mutex> g(mutex_);
    pending_.prepare();
  }
  bool launch_table_ready() const {
    std::lock_guard<std::mutex> g(mutex_);
    return pending_.prepared();
  }

 private:
  using interval = ns_interval;

  struct host_acc {
    std::uint64_t calls = 0, sum = 0, min = std::numeric_limits<std::uint64_t>::max(), max = 0;
    duration_histogram hist;
  };

  struct node {
    std::uint32_t parent = no_node;
    std::uint32_t name_id = 0;
    category cat = category::other;
    range_domain domain = range_domain::default_domain;
    int depth = 0;
    std::string path;
    mutable spin_lock host_lock;
    host_acc host;                      // guarded by host_lock
    gpu_acc gpu;                        // guarded by mutex_
    std::uint64_t launches = 0;         // guarded by mutex_
    std::atomic<bool> included{false};  // entered at least once outside a warm-up
    bool is_other = false;              // "(other)": holds its parent's folded children
  };

  // How a frame stands to the scope cap: its own scope, counted in an "(other)" scope, or
  // opened inside a call counted there (no scope of its own: its time is in that call's).
  static constexpr std::uint8_t fold_none = 0, fold_other = 1, fold_absorbed = 2;

  struct frame {
    std::uint32_t node = no_node;
    range_domain domain = range_domain::default_domain;
    bool is_step = false;
    std::int32_t stage = -1;  // index into stages_ of the enclosing stage
    std::int64_t step = -1;   // enclosing denoise step
    std::uint64_t start_ns = 0;
    std::uint64_t instance = 0;  // 0 until the first launch inside
    std::uint32_t timed = 0;     // perf mode: the event pair timing this range
    std::int32_t request = -1;   // index into requests_ of the enclosing request
    bool excluded = false;       // inside a warm-up: kept out of every table
    std::uint8_t fold = fold_none;
  };

  // One launching thread's launches not yet in the tables: appended by that thread without a
  // lock, taken by whoever holds mutex_ (take_launches). One writer, readers serialised.
  struct launch_ring {
    static constexpr std::size_t capacity = 1024;  // a power of two; 24 KiB a thread
    struct entry {
      std::uint32_t correlation_id = 0;
      launch_kind kind = launch_kind::kernel;
      std::uint64_t instance = 0, launch_ns = 0;
    };
    // The writer reads `head` (which readers move) only when its cached bound says full.
    bool full() noexcept { return tail.load(std::memory_order_relaxed) >= limit && room() == 0; }
    std::uint64_t room() noexcept {
      limit = head.load(std::memory_order_acquire) + capacity;
      return limit - tail.load(std::memory_order_relaxed);
    }
    void append(std::uint32_t id, launch_kind k, std::uint64_t inst, std::uint64_t t) noexcept {
      const std::uint64_t at = tail.load(std::memory_order_relaxed);
      slots[at & (capacity - 1)] = entry{id, k, inst, t};
      tail.store(at + 1, std::memory_order_release);
    }
    std::array<entry, capacity> slots{};
    std::uint64_t thread = 0;                        // the writer's number
    alignas(64) std::atomic<std::uint64_t> head{0};  // next to take
    alignas(64) std::atomic<std::uint64_t> tail{0};  // next to write; launches so far
    std::uint64_t limit = capacity;                  // the writer's: head + capacity, as last read
  };

  // A thread with ranges open: live (read at unclosed_ranges()) or exited (kept).
  struct open_record {
    std::uint64_t epoch = 0, number = 0, open = 0;
    std::uint32_t top = no_node;
    std::int64_t step = -1;
    std::uint64_t uncounted = 0;  // more ranges open on threads that exited past the cap
    bool exited = false;
  };
  static constexpr std::size_t exited_cap = 256;

  // The launch path reads only the first cache line: epoch, ring and the innermost frame's
  // scope (top_*, kept by track_top whenever the stack or its instances change).
  struct alignas(64) thread_state {
    std::uint64_t epoch = 0;
    launch_ring* ring = nullptr;     // this aggregator's ring for this thread's launches
    std::uint64_t top_instance = 0;  // the innermost frame's instance (0: none yet)
    bool top_scoped = false;         // the innermost frame is a scope of this aggregator
    std::uint64_t number = 0;
    std::vector<frame> stack;
    // Read by unclosed_ranges() from other threads, written by this one at push and pop, on
    // the second line (beside the children map's head, which a push reads anyway): the
    // frames on the stack, how many of them an earlier aggregator's (below the others), and
    // the innermost one's node and step (innermost_of).
    std::atomic<std::uint64_t> open{0};
    std::atomic<std::uint64_t> stale{0};
    std::atomic<std::uint64_t> innermost{0};
    std::unordered_map<std::uint64_t, std::uint32_t> children;  // (parent, name, cat, dom)
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
      thread_registry& r = registry();
      std::lock_guard<std::mutex> g(r.mutex);
      r.threads.erase(std::remove(r.threads.begin(), r.threads.end(), this), r.threads.end());
      // Exiting with ranges open (the main thread at exit, before the collector's exit
      // hook): they stay counted for stop().
      open_record e = record();
      if (e.open == 0) return;
      const std::uint64_t n = e.open;
      e.exited = true;
      if (r.exited.size() >= exited_cap) {  // counted, not named
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

  // Every thread that ever touched an aggregator, process-wide (so a thread outliving an
  // aggregator never points back into it), and what threads that exited left open.
  struct thread_registry {
    std::mutex mutex;
    std::vector<thread_state*> threads;
    std::vector<open_record> exited;
  };
  static thread_registry& registry() {
    static thread_registry* r = new thread_registry();  // never destroyed: threads may outlive
    return *r;
  }

  struct pending {
    std::uint64_t instance = 0;  // 0: launched outside any scope
    launch_kind kind = launch_kind::kernel;
    std::uint64_t thread = 0, launch_ns = 0;
  };

  struct instance {
    std::uint64_t parent = 0;
    std::uint32_t node = no_node;
    bool is_step = false;  // the step's own instance
    std::int64_t step = -1;
    std::int32_t stage = -1;  // set only on the stage's own instance
    std::int32_t request = -1;
    bool is_request = false;  // the request's own instance
    bool excluded = false;    // a warm-up's work: kept out of every table
    bool closed = false;
    bool open_ended = false;  // launched a graph: record count unknown until stop
    std::uint64_t expected = 0, received = 0, launches = 0;
    std::uint64_t first = std::numeric_limits<std::uint64_t>::max(), last = 0;
    gpu_acc gpu;  // busy, counts, bytes (occupied/envelope computed at finalise)
    std::vector<interval> intervals;  // every operation but communication kernels
    std::vector<interval> comm;       // communication kernels (NCCL, custom all-reduce, ...)
    std::size_t compact_at = compact_threshold;  // next interval count that triggers a merge
    std::vector<std::pair<std::uint32_t, std::uint64_t>> grafted;  // graph scope node -> id
    std::uint64_t id = 0;  // (generation << 32) | (slot + 1); 0 = none
    bool live = false;
  };

  // Launches waiting for their records, by correlation id: a direct-mapped table (no
  // allocation per launch) with an overflow map for the rare collision.
  class pending_table {
   public:
    struct entry {
      std::uint32_t correlation_id = 0;
      bool used = false;
      pending p;
    };
    // The table is allocated by prepare() (at start, when GPU timing is on) or else at the
    // first launch; host-only runs never pay for it. clear() gives it back.
    void prepare() {
      if (table_.empty()) table_.resize(size);
    }
    bool prepared() const { return !table_.empty(); }
    void insert(std::uint32_t id, const pending& p) {
      prepare();
      entry& e = table_[id & (size - 1)];
      if (e.used && e.correlation_id != id) {
        overflow_[e.correlation_id] = e.p;  // an older launch still waiting
        if (overflow_.size() > prune_threshold_) prune(id);
      }
      if (!e.used) ++used_;
      e = entry{id, true, p};
    }
    pending* find(std::uint32_t id) {
      if (!table_.empty()) {
        entry& e = table_[id & (size - 1)];
        if (e.used && e.correlation_id == id) return &e.p;
      }
      auto it = overflow_.find(id);
      return it == overflow_.end() ? nullptr : &it->second;
    }
    void erase(std::uint32_t id) {
      if (!table_.empty()) {
        entry& e = table_[id & (size - 1)];
        if (e.used && e.correlation_id == id) {
          e.used = false;
          --used_;
          return;
        }
      }
      overflow_.erase(id);
    }
    void clear() {
      std::vector<entry>().swap(table_);
      used_ = 0;
      overflow_ = {};
    }
    std::size_t count() const { return used_ + overflow_.size(); }

   private:
    static constexpr std::size_t size = 1u << 16;
    // Launches that never produced a record (a zero-byte copy, a failed launch) would pile
    // up: drop those far older than the newest id.
    void prune(std::uint32_t newest) {
      for (auto it = overflow_.begin(); it != overflow_.end();) {
        if (newest - it->first > prune_threshold_ / 2)
          it = overflow_.erase(it);
        else
          ++it;
      }
    }
    std::vector<entry> table_;
    std::size_t used_ = 0;
    std::unordered_map<std::uint32_t, pending> overflow_;
  };

  struct kernel_key {
    std::uint32_t name, node;
    op_kind kind;
    bool operator==(const kernel_key& o) const {
      return name == o.name && node == o.node && kind == o.kind;
    }
  };
  struct kernel_key_hash {
    std::size_t operator()(const kernel_key& k) const noexcept {
      return (static_cast<std::size_t>(k.name) * 0x9E3779B97F4A7C15ull) ^
             (static_cast<std::size_t>(k.node) << 3) ^ static_cast<std::size_t>(k.kind);
    }
  };
  struct kernel_acc {
    std::uint64_t count = 0, total = 0, min = std::numeric_limits<std::uint64_t>::max(), max = 0;
  };

  struct step_acc {
    std::uint64_t calls = 0, host_ns = 0, first_start_ns = 0;
    gpu_acc gpu;
  };
  struct stage_acc {
    std::uint32_t node = no_node;
    std::uint64_t calls = 0, host_ns = 0, first_start_ns = 0;
    gpu_acc gpu;
    bool included = false;  // entered outside a warm-up
  };
  struct request_acc {
    std::string id;
    bool warmup = false, excluded = false;
    std::uint64_t calls = 0, host_ns = 0, start_ns = 0;
    gpu_acc gpu;
    std::vector<stage_acc> stages;  // in order of first entry within the request
    std::map<std::int64_t, step_acc> steps;
  };

  static constexpr std::size_t chunk_size = 1024;
  static constexpr std::size_t max_chunks = 4096;  // 4M scope nodes
  static constexpr std::size_t prune_threshold_ = 1u << 20;
  static constexpr std::size_t compact_threshold = 1u << 16;

  static std::uint64_t next_epoch() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
  }

  static const char* kind_label(op_kind k) {
    switch (k) {
      case op_kind::kernel:
        return "kernel";
      case op_kind::memcpy:
        return "memcpy";
      case op_kind::memset:
        return "memset";
      case op_kind::timing:
        return "timing";
    }
    return "kernel";
  }

  static host_stats host_summary(const host_acc& h) {
    host_stats s;
    s.calls = h.calls;
    if (h.calls == 0) return s;
    s.sum_ms = h.sum / 1e6;
    s.min_ms = h.min / 1e6;
    s.max_ms = h.max / 1e6;
    s.mean_ms = s.sum_ms / static_cast<double>(h.calls);
    s.p50_ms = h.hist.quantile_ns(0.5) / 1e6;
    s.p90_ms = h.hist.quantile_ns(0.9) / 1e6;
    return s;
  }

  // One thread_state per thread, reset when a different aggregator (a restarted collector,
  // another test) uses the thread: frames opened before are kept as anonymous frames so
  // their pops still balance.
  thread_state& local() {
    thread_local thread_state ts;
    if (ts.epoch != epoch_) {
      for (frame& f : ts.stack) f = frame{no_node, f.domain};
      track_top(ts);
      ts.stale.store(ts.stack.size(), std::memory_order_relaxed);
      ts.open.store(ts.stack.size(), std::memory_order_relaxed);
      ts.innermost.store(innermost_of(frame{}), std::memory_order_relaxed);
      ts.children.clear();
      ts.ring = nullptr;
      thread_registry& r = registry();
      std::lock_guard<std::mutex> g(r.mutex);
      ts.number = thread_count_.fetch_add(1) + 1;  // unclosed_ranges() reads it, locked
      ts.epoch = epoch_;
      if (!ts.registered) r.threads.push_back(&ts);
      ts.registered = true;
    }
    return ts;
  }

  node& node_at(std::uint32_t i) const {
    return chunks_[i / chunk_size].load(std::memory_order_acquire)[i % chunk_size];
  }

  std::uint32_t child(thread_state& ts, std::uint32_t parent, std::uint32_t name_id, category cat,
                      range_domain dom) {
    // name ids stay far below 2^27; category needs 3 bits, domain 1.
    const std::uint64_t key =
        (static_cast<std::uint64_t>(parent) << 32) | (static_cast<std::uint64_t>(name_id) << 4) |
        (static_cast<std::uint64_t>(cat) << 1) | static_cast<std::uint64_t>(dom);
    auto it = ts.children.find(key);
    if (it != ts.children.end()) return it->second;
    const std::uint32_t n = find_or_create_node(parent, name_id, cat, dom);
    // Bounded like the tree: past the cap, pairs that fold ask the tree each time.
    if (options_.max_scopes == 0 || ts.children.size() < 4 * options_.max_scopes + 64)
      ts.children.emplace(key, n);
    return n;
  }

  std::uint32_t find_or_create_node(std::uint32_t parent, std::uint32_t name_id, category cat,
                                    range_domain dom) {
    std::lock_guard<std::mutex> g(nodes_mutex_);
    return find_or_create_node_locked(parent, name_id, cat, dom);
  }

  // A scope past the cap is its parent's "(other)", made once (it is not counted).
  std::uint32_t find_or_create_node_locked(std::uint32_t parent, std::uint32_t name_id,
                                           category cat, range_domain dom) {
    const bool other = name_id == other_name_id_;
    if (other) cat = category::other;  // one "(other)" per parent and domain
    const auto key = std::make_tuple(parent, name_id, cat, dom);
    auto it = node_index_.find(key);
    if (it != node_index_.end()) return it->second;
    const bool counted = !other && !never_folded(cat);
    if (counted && options_.max_scopes != 0 && scoped_nodes_ >= options_.max_scopes)
      return find_or_create_node_locked(parent, other_name_id_, cat, dom);
    const std::uint32_t id = node_count_.load(std::memory_order_relaxed);
    if (id / chunk_size >= max_chunks) return parent;  // absurdly many scopes: fold into parent
    if (chunks_[id / chunk_size].load(std::memory_order_relaxed) == nullptr)
      chunks_[id / chunk_size].store(new node[chunk_size], std::memory_order_release);
    node& n = node_at(id);
    n.parent = parent;
    n.name_id = name_id;
    n.cat = cat;
    n.domain = dom;
    n.depth = parent == no_node ? 0 : node_at(parent).depth + 1;
    n.path = parent == no_node ? name_of(name_id) : node_at(parent).path + "/" + name_of(name_id);
    n.is_other = other;
    node_index_.emplace(key, id);
    if (counted) ++scoped_nodes_;
    node_count_.store(id + 1, std::memory_order_release);
    return id;
  }

  // A frame's node and step in one word (steps past 2^31 are not a denoise loop).
  static std::uint64_t innermost_of(const frame& f) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(f.step)) << 32) | f.node;
  }

  // Distinct folded names are counted by key: a stored name by its id, one past the name
  // cap by the hash of its text (never stored). The two key sets are disjoint but for
  // hash collisions (the counter's estimate is coarser than that anyway).
  static std::uint64_t name_key(std::uint32_t id) noexcept { return (1ull << 63) | id; }
  void note_folded_name(std::uint64_t key) {
    std::lock_guard<std::mutex> g(fold_mutex_);
    folded_names_.add(key);
  }

  std::uint32_t stage_index(std::uint32_t node_id, std::uint64_t t_ns, bool excluded) {
    std::lock_guard<std::mutex> g(mutex_);
    for (std::size_t i = 0; i < stages_.size(); ++i) {
      if (stages_[i].node != node_id) continue;
      if (!excluded && !stages_[i].included) {
        stages_[i].included = true;
        stages_[i].first_start_ns = t_ns;  // first entry that counts
      }
      return static_cast<std::uint32_t>(i);
    }
    stage_acc s;
    s.node = node_id;
    s.first_start_ns = t_ns;
    s.included = !excluded;
    stages_.push_back(s);
    return static_cast<std::uint32_t>(stages_.size() - 1);
  }

  // A new request; `excluded` in: inside a warm-up already, out: this one is excluded.
  std::int32_t begin_request(std::string_view id, bool warmup, std::uint64_t t_ns, bool& excluded) {
    std::lock_guard<std::mutex> g(mutex_);
    request_acc r;
    r.id = std::string(id);
    r.warmup = warmup;
    r.start_ns = t_ns;
    if (!warmup && counted_requests_++ < options_.skip_requests) r.warmup = true;
    r.excluded = excluded = excluded || r.warmup;
    requests_.push_back(std::move(r));
    return static_cast<std::int32_t>(requests_.size() - 1);
  }

  // The request's accumulator of global stage `stage`.
  stage_acc& request_stage(request_acc& r, std::int32_t stage, std::uint64_t t_ns) {
    const std::uint32_t node = stages_[static_cast<std::size_t>(stage)].node;
    for (stage_acc& s : r.stages)
      if (s.node == node) return s;
    stage_acc s;
    s.node = node;
    s.first_start_ns = t_ns;
    s.included = true;
    r.stages.push_back(s);
    return r.stages.back();
  }

  void close_frame(thread_state& ts, const frame& f, std::uint64_t t_ns) {
    const std::uint64_t dur = t_ns > f.start_ns ? t_ns - f.start_ns : 0;
    node& n = node_at(f.node);
    const bool absorbed = f.fold == fold_absorbed;  // its instance is its ancestor's
    if (!f.excluded && !absorbed) {
      std::lock_guard<spin_lock> g(n.host_lock);
      ++n.host.calls;
      n.host.sum += dur;
      n.host.min = std::min(n.host.min, dur);
      n.host.max = std::max(n.host.max, dur);
      n.host.hist.add(dur);
    }
    const bool is_stage = n.cat == category::stage;
    const bool is_request = n.cat == category::request;
    if (f.is_step || is_stage || is_request || (f.instance != 0 && !absorbed) || keep_trace_) {
      std::lock_guard<std::mutex> g(mutex_);
      request_acc* rq = f.request >= 0 ? &requests_[static_cast<std::size_t>(f.request)] : nullptr;
      if (f.is_step) {
        auto add = [&](step_acc& s) {
          if (s.calls++ == 0) s.first_start_ns = f.start_ns;
          s.host_ns += dur;
        };
        if (!f.excluded) add(steps_[f.step]);
        if (rq != nullptr) add(rq->steps[f.step]);
      }
      if (is_stage && f.stage >= 0) {
        auto add = [&](stage_acc& s) {
          ++s.calls;
          s.host_ns += dur;
        };
        if (!f.excluded) add(stages_[static_cast<std::size_t>(f.stage)]);
        if (rq != nullptr) add(request_stage(*rq, f.stage, f.start_ns));
      }
      if (is_request && rq != nullptr) {
        ++rq->calls;
        rq->host_ns += dur;
      }
      if (!absorbed) {
        if (ts.ring != nullptr) take_launches(*ts.ring);  // the scope's own launches first
        if (instance* in = find_instance(f.instance)) {
          in->closed = true;
          maybe_finalize(f.instance);
        }
      }
      if (keep_trace_) {
        if (trace_.ranges.size() + trace_.ops.size() < trace_.cap) {
          trace_range tr;
          tr.name = name_of(n.name_id);
          if (f.is_step) tr.name = std::string(denoise_step_prefix) + std::to_string(f.step);
          tr.path = n.path;
          tr.domain = domain_label(n.domain);
          tr.cat = n.cat;
          tr.thread = ts.number;
          tr.start_ns = f.start_ns;
          tr.end_ns = t_ns;
          tr.step = f.step;
          trace_.ranges.push_back(std::move(tr));
        } else {
          ++trace_dropped_;
        }
      }
    }
  }

  // Creates instances for every open frame of this thread that has none yet (outermost
  // first, so parents exist before children). Returns the innermost instance id. A frame
  // without a scope of its own (fold_absorbed) launches into its folded ancestor's.
  std::uint64_t ensure_instances(thread_state& ts) {
    std::uint64_t parent = 0;
    for (frame& f : ts.stack) {
      if (f.node == no_node) continue;
      if (f.fold == fold_absorbed) {
        f.instance = parent;
      } else if (f.instance == 0) {
        instance& in = create_instance();
        in.parent = parent;
        in.node = f.node;
        in.is_step = f.is_step;
        in.step = f.step;
        in.request = f.request;
        in.excluded = f.excluded;
        if (node_at(f.node).cat == category::stage) in.stage = f.stage;
        in.is_request = node_at(f.node).cat == category::request;
        f.instance = in.id;
      }
      parent = f.instance;
    }
    track_top(ts);
    return parent;
  }

  static void track_top(thread_state& ts) noexcept {
    const frame* top = ts.stack.empty() ? nullptr : &ts.stack.back();
    ts.top_scoped = top != nullptr && top->node != no_node;
    ts.top_instance = ts.top_scoped ? top->instance : 0;
  }

  // Moves a ring's launches into the tables (mutex_ held). Whether there were any.
  bool take_launches(launch_ring& ring) {
    const std::uint64_t tail = ring.tail.load(std::memory_order_acquire);
    std::uint64_t head = ring.head.load(std::memory_order_relaxed);
    if (head == tail) return false;
    for (; head != tail; ++head) {
      const launch_ring::entry& e = ring.slots[head & (launch_ring::capacity - 1)];
      pending p;
      p.instance = e.instance;
      p.kind = e.kind;
      p.thread = ring.thread;
      p.launch_ns = e.launch_ns;
      for (instance* in = find_instance(e.instance); in != nullptr;
           in = find_instance(in->parent)) {
        ++in->launches;
        if (e.kind == launch_kind::graph) {
          in->open_ended = true;
        } else {
          ++in->expected;
        }
      }
      pending_.insert(e.correlation_id, p);
    }
    ring.head.store(head, std::memory_order_release);
    return true;
  }
  // Every thread's (mutex_ held). Whether any launch was taken.
  bool take_all_launches() {
    bool any = false;
    for (auto& ring : rings_) any |= take_launches(*ring);
    return any;
  }

  void ingest(const gpu_op& op, std::uint32_t op_name) {
    std::uint32_t id = op.correlation_id;
    pending* pit = pending_.find(id);
    if (pit == nullptr && take_all_launches()) pit = pending_.find(id);
    if (pit == nullptr) {
      auto ait = aliases_.find(id);
      if (ait != aliases_.end()) {
        id = ait->second;
        pit = pending_.find(id);
      }
    }
    std::uint64_t inst = 0;
    if (pit != nullptr) {
      inst = pit->instance;
      if (keep_trace_ && op.kind != op_kind::timing) add_trace_op(op, op_name, *pit);
      if (pit->kind != launch_kind::graph) pending_.erase(id);  // one record per launch
    } else {
      ++unattributed_;
      if (keep_trace_) add_trace_op(op, op_name, pending{});
    }
    if (inst != 0 && find_instance(inst) == nullptr) {
      ++late_records_;  // finalised already: counted in totals below, not in the scope
      inst = 0;
    }
    if (inst != 0 && op.graph_node_id != 0) inst = grafted_instance(inst, op.graph_node_id);
    instance* leaf = find_instance(inst);

    const std::uint64_t dur = op.end_ns - op.start_ns;
    const bool timing = op.kind == op_kind::timing;  // not a kernel, and the leaf's alone
    const bool comm = op.kind == op_kind::kernel && is_comm_name(op_name, op.name);
    if (!timing && !(leaf != nullptr && leaf->excluded)) {
      kernel_acc& k = kernels_[kernel_key{op_name, leaf ? leaf->node : no_node, op.kind}];
      ++k.count;
      k.total += dur;
      k.min = std::min(k.min, dur);
      k.max = std::max(k.max, dur);
    }

    for (instance* in = leaf; in != nullptr; in = timing ? nullptr : find_instance(in->parent)) {
      in->first = std::min(in->first, op.start_ns);
      in->last = std::max(in->last, op.end_ns);
      in->gpu.busy += dur;
      in->gpu.bytes += op.bytes;
      switch (op.kind) {
        case op_kind::kernel:
          ++in->gpu.kernels;
          break;
        case op_kind::memcpy:
          ++in->gpu.memcpys;
          break;
        case op_kind::memset:
          ++in->gpu.memsets;
          break;
        case op_kind::timing:
          ++in->gpu.timed;
          break;
      }
      std::vector<interval>& list = comm ? in->comm : in->intervals;
      list.emplace_back(op.start_ns, op.end_ns);
      if (list.size() >= in->compact_at) {
        // Merging keeps the union; the next merge waits until the list doubles, so a long
        // scope with disjoint intervals costs amortised O(log n) per operation, not a sort.
        merge_intervals(list);
        in->compact_at = std::max(compact_threshold, 2 * list.size());
      }
      if (op.graph_node_id == 0) ++in->received;
    }
    // Finalise the chain bottom-up where complete.
    for (std::uint64_t cur = leaf ? leaf->id : 0; cur != 0;) {
      const instance* in = find_instance(cur);
      if (in == nullptr) break;
      const std::uint64_t parent = in->parent;
      maybe_finalize(cur);
      cur = parent;
    }
  }

  // Whether a kernel name is communication, decided once per name.
  bool is_comm_name(std::uint32_t name_id, std::string_view name) {
    if (name_id >= comm_names_.size()) comm_names_.resize(name_id + 1, -1);
    std::int8_t& f = comm_names_[name_id];
    if (f < 0) f = is_communication_kernel(name) ? 1 : 0;
    return f == 1;
  }

  // Instances live in a pool of slots (stable addresses: a deque) reused through a free list;
  // an id carries its slot's generation, so a stale id (a late record) finds nothing.
  instance* find_instance(std::uint64_t id) {
    if (id == 0) return nullptr;
    const std::size_t slot = (id & 0xffffffffu) - 1;
    if (slot >= slots_.size()) return nullptr;
    instance& in = slots_[slot];
    return in.live && in.id == id ? &in : nullptr;
  }

  instance& create_instance() {
    std::size_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = slots_.size();
      slots_.emplace_back();
    }
    instance& in = slots_[slot];
    const std::uint64_t generation = (in.id >> 32) + 1;
    std::vector<interval> keep;
    keep.swap(in.intervals);
    in = instance{};
    if (keep.capacity() <= 64) {  // reuse small buffers, give big ones back (a pooled slot
                                  // must not pin a long scope's interval list)
      keep.clear();
      in.intervals.swap(keep);
    }
    in.id = (generation << 32) | (slot + 1);
    in.live = true;
    ++live_instances_;
    return in;
  }

  void release_instance(instance& in) {
    in.live = false;
    in.grafted.clear();
    --live_instances_;
    free_slots_.push_back((in.id & 0xffffffffu) - 1);
  }

  // The instance of the capture-time scope path of a graph node, grafted under `launch`.
  std::uint64_t grafted_instance(std::uint64_t launch, std::uint64_t graph_node_id) {
    auto git = graph_nodes_.find(graph_node_id);
    if (git == graph_nodes_.end() || git->second == no_node) return launch;
    // Path from the capture-time root to the captured scope.
    std::vector<std::uint32_t> chain;
    for (std::uint32_t n = git->second; n != no_node; n = node_at(n).parent) chain.push_back(n);
    std::uint64_t cur = launch;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      instance& parent = *find_instance(cur);
      const node& captured = node_at(*it);
      // Under an "(other)" scope nothing has a scope of its own: its work stays there.
      if (node_at(parent.node).is_other && !never_folded(captured.cat)) break;
      const std::uint32_t grafted_node =
          find_or_create_node(parent.node, captured.name_id, captured.cat, captured.domain);
      auto found = std::find_if(parent.grafted.begin(), parent.grafted.end(),
                                [&](const auto& g) { return g.first == grafted_node; });
      if (found != parent.grafted.end()) {
        cur = found->second;
        continue;
      }
      instance& in = create_instance();  // a deque: `parent` stays valid
      in.parent = cur;
      in.node = grafted_node;
      in.step = parent.step;
      in.request = parent.request;
      in.excluded = parent.excluded;
      in.closed = true;
      in.open_ended = true;  // finalised with the launch scope at stop
      parent.grafted.emplace_back(grafted_node, in.id);
      // One "call" of a grafted scope per replay that ran it.
      node& gn = node_at(grafted_node);
      if (!parent.excluded) gn.included.store(true, std::memory_order_relaxed);
      if (!parent.excluded) {
        std::lock_guard<spin_lock> g(gn.host_lock);
        ++gn.host.calls;
      }
      cur = in.id;
    }
    return cur;
  }

  void maybe_finalize(std::uint64_t id) {
    const instance* in = find_instance(id);
    if (in != nullptr && in->closed && !in->open_ended && in->received >= in->expected &&
        in->grafted.empty())
      finalize(id);
  }

  void finalize(std::uint64_t id) {
    instance* in = find_instance(id);
    if (in == nullptr) return;
    // Grafted children first: they hold part of this instance's graph work.
    for (const auto& g : in->grafted) finalize(g.second);
    gpu_acc acc = in->gpu;
    if (in->last > 0) {
      acc.envelope = in->last - in->first;
      if (in->comm.empty()) {
        acc.occupied = union_length(in->intervals);
      } else {
        acc.comm = compute_comm_overlap(in->comm, in->intervals);  // both merged in place
        acc.occupied = acc.comm.busy + merged_length(in->intervals) - acc.comm.overlapped;
      }
    }
    if (!in->excluded) {
      node& n = node_at(in->node);
      n.gpu.add(acc);
      n.launches += in->launches;
      if (in->is_step) steps_[in->step].gpu.add(acc);
      if (in->stage >= 0) stages_[static_cast<std::size_t>(in->stage)].gpu.add(acc);
    }
    if (in->request >= 0) {
      request_acc& rq = requests_[static_cast<std::size_t>(in->request)];
      if (in->is_step) rq.steps[in->step].gpu.add(acc);
      if (in->stage >= 0) request_stage(rq, in->stage, 0).gpu.add(acc);
      if (in->is_request) rq.gpu.add(acc);
    }
    release_instance(*in);
  }

  void add_trace_op(const gpu_op& op, std::uint32_t op_name, const pending& p) {
    if (trace_.ranges.size() + trace_.ops.size() >= trace_.cap) {
      ++trace_dropped_;
      return;
    }
    trace_op t;
    t.name = name_of(op_name);
    t.kind = kind_label(op.kind);
    if (const instance* in = find_instance(p.instance)) {
      t.scope_path = node_at(in->node).path;
      t.step = in->step;
    }
    t.device = op.device_id;
    t.stream = op.stream_id;
    t.correlation_id = op.correlation_id;
    t.start_ns = op.start_ns;
    t.end_ns = op.end_ns;
    t.bytes = op.bytes;
    t.launch_thread = p.thread;
    t.launch_ns = p.launch_ns;
    trace_.ops.push_back(std::move(t));
  }

  // Read on every launch, written never: beside the vtable pointer, on the object's first line.
  const std::uint64_t epoch_;
  const bool keep_trace_;  // the one flag read inside; trace_.enabled is its copy for output
  aggregator_options options_;
  const std::uint64_t origin_ns_;
  std::uint32_t step_name_id_ = 0;
  std::uint32_t other_name_id_ = 0;

  mutable std::mutex names_mutex_;
  std::vector<std::unique_ptr<std::string>> names_;
  std::unordered_map<std::string, std::uint32_t> name_ids_;
  std::uint64_t capped_names_ = 0;  // names stored that count against the cap

  mutable std::mutex fold_mutex_;  // taken after names_mutex_ when both are
  distinct_counter folded_names_;

  std::mutex nodes_mutex_;
  std::map<std::tuple<std::uint32_t, std::uint32_t, category, range_domain>, std::uint32_t>
      node_index_;
  mutable std::array<std::atomic<node*>, max_chunks> chunks_{};
  std::atomic<std::uint32_t> node_count_{0};
  std::uint64_t scoped_nodes_ = 0;  // nodes that count against the cap (nodes_mutex_)

  std::atomic<std::uint64_t> thread_count_{0};

  mutable std::mutex mutex_;  // everything below
  std::deque<instance> slots_;
  std::vector<std::size_t> free_slots_;
  std::size_t live_instances_ = 0;
  pending_table pending_;
  std::vector<std::unique_ptr<launch_ring>> rings_;  // one per launching thread
  std::unordered_map<std::uint32_t, std::uint32_t> aliases_;
  std::unordered_map<std::uint64_t, std::uint32_t> graph_nodes_;
  std::unordered_map<kernel_key, kernel_acc, kernel_key_hash> kernels_;
  std::map<std::int64_t, step_acc> steps_;
  std::vector<stage_acc> stages_;
  std::vector<request_acc> requests_;
  std::vector<std::int8_t> comm_names_;  // by name id: -1 unknown, 0 no, 1 communication
  std::uint64_t counted_requests_ = 0;   // requests seen, warm-up ranges not counted
  trace_events trace_;
  std::uint64_t trace_dropped_ = 0;
  std::uint64_t unattributed_ = 0;
  std::uint64_t late_records_ = 0;

  std::atomic<std::uint64_t> ranges_{0}, dropped_{0};
  alignas(64) std::atomic<std::uint64_t> records_{0};  // CUPTI's thread: off the ranges' line
  std::atomic<std::uint64_t> zero_timestamps_{0}, inverted_timestamps_{0}, unbalanced_pops_{0};
  std::atomic<std::uint64_t> internal_errors_{0};
  std::atomic<std::uint64_t> ranges_folded_{0};
};

}  // namespace diffscope::detail
