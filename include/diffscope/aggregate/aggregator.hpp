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
// - One window (window.hpp): the tables hold the last counted request's work, every counted
//   request's (aggregator_options::window), or the whole run while no request counts. A
//   range, a scope call and a launch carry their request from the frame stack at the time
//   (graph replays: the launch's), so a record arriving late still goes to its request's
//   window; warm-ups and, once a request counts, work outside request ranges are counted
//   apart.
// - Distinct scopes are capped (aggregator_options::max_scopes, and as many range names):
//   past the cap a new (parent, name) goes into the parent's one "(other)" scope, counted
//   like any scope, and ranges opened inside such a call have no scope of their own (their
//   time is already in it). Stages, steps and requests are never folded. Names past the cap
//   are not stored. Ids or shapes in range names thus cost bounded memory.
//
// Files: names.hpp (name interning), scope_tree.hpp (scope nodes and the cap),
// thread_state.hpp (open ranges per thread), instances.hpp (scope calls with GPU work),
// launch_table.hpp (launches awaiting records), graphs.hpp (graph grafting), kernel_table.hpp,
// timeline.hpp (steps, stages, requests), window.hpp, trace_buffer.hpp, snapshot.hpp (to
// results.hpp).
// This class composes them: it owns the locks and the entry points.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <diffscope/aggregate/accumulators.hpp>
#include <diffscope/aggregate/distinct_counter.hpp>
#include <diffscope/aggregate/graphs.hpp>
#include <diffscope/aggregate/instances.hpp>
#include <diffscope/aggregate/kernel_table.hpp>
#include <diffscope/aggregate/launch_table.hpp>
#include <diffscope/aggregate/names.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/aggregate/snapshot.hpp>
#include <diffscope/aggregate/thread_state.hpp>
#include <diffscope/aggregate/timeline.hpp>
#include <diffscope/aggregate/trace_buffer.hpp>
#include <diffscope/aggregate/window.hpp>
#include <diffscope/capture/activity.hpp>
#include <diffscope/results.hpp>
#include <diffscope/util/clock.hpp>

namespace diffscope::detail {

struct aggregator_options {
  bool keep_trace = false;
  std::uint64_t trace_cap = 2'000'000;  ///< ranges + ops kept for the trace
  /// The first N requests (warm-up ranges not counted) are warm-ups: excluded like them.
  std::uint64_t skip_requests = 0;
  /// Distinct scopes (tree nodes other than stages, steps, requests and "(other)"), and
  /// distinct range names, kept before folding into "(other)"; 0: no cap.
  std::uint64_t max_scopes = 10'000;
  /// Once a request counts, the tables hold the last counted request or every counted one.
  window_mode window = window_mode::last;
  /// Sampled mode: timed scopes' spans are kept apart from their operations (gpu_acc::span),
  /// since both arrive for the same call.
  bool spans_apart = false;
};

class aggregator final : public activity_sink {
 public:
  explicit aggregator(aggregator_options options = {})
      : epoch_(next_epoch()),
        keep_trace_(options.keep_trace),
        options_(options),
        origin_ns_(now_ns()),
        names_(options.max_scopes),
        tree_(options.max_scopes),
        timeline_(options.skip_requests),
        window_(options.window),
        trace_(options.keep_trace, options.trace_cap, origin_ns_) {}
  ~aggregator() override {
    thread_registry& r = thread_registry::instance();
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
  std::uint32_t step_name_id() const noexcept { return names_.step_id(); }
  /// Name id of "(other)": what intern() gives for a range name past the cap.
  std::uint32_t other_name_id() const noexcept { return names_.other_id(); }
  /// Ranges of these categories carry the dump's own figures: never folded into "(other)".
  static bool never_folded(category c) noexcept { return detail::never_folded(c); }

  // ---- names ------------------------------------------------------------------------------

  /// Interns a name; ids are stable for the aggregator's life. A `capped` name (a range
  /// name that may be folded) past the cap is not stored: it gets other_name_id().
  std::uint32_t intern(std::string_view name, bool capped = true) {
    return names_.intern(name, capped);
  }
  /// Names stored (range names within the cap, kernel names, the fixed ones).
  std::size_t names_stored() const { return names_.stored(); }
  std::string name_of(std::uint32_t id) const { return names_.name_of(id); }

  // ---- ranges (called on the annotating thread) ------------------------------------------

  /// Sampled mode: whether ranges opened from now on have their operations traced (their
  /// calls count in traced_calls). The collector sets it as it switches CUPTI on and off.
  void set_tracing(bool on) noexcept { tracing_.store(on, std::memory_order_relaxed); }

  /// Opens a range. `name_id` from intern(); `step` set for denoise steps; requests
  /// (category request) carry their id and whether they are a warm-up. Returns false when
  /// the range has no scope of its own (opened inside a call folded into "(other)"): perf
  /// mode must not time it, its span is its folded ancestor's.
  bool push(range_domain dom, std::uint32_t name_id, category cat, std::optional<std::int64_t> step,
            std::uint64_t t_ns, std::string_view request_id = {}, bool warmup = false) {
    thread_state& ts = local();
    ++ranges_;
    const scope_frame* top = ts.stack.empty() ? nullptr : &ts.stack.back();
    scope_frame f;
    f.domain = dom;
    scope_node* n = nullptr;
    if (top != nullptr && top->fold != fold_none && !never_folded(cat)) {
      f.node = top->node;  // inside a folded call: counted there already
      f.fold = fold_absorbed;
    } else {
      f.node = tree_.child(ts.children, top ? top->node : no_node, name_id, cat, dom, names_);
      if (f.node != no_node) {
        n = &tree_.node_at(f.node);
        if (n->is_other) f.fold = fold_other;
      }
    }
    if (f.fold != fold_none) {  // past the cap: the uncommon case
      ranges_folded_.fetch_add(1, std::memory_order_relaxed);
      if (name_id != names_.other_id())
        names_.note_folded(name_table::key_of(name_id));  // else intern() did
    }
    f.start_ns = t_ns;
    f.step = step ? *step : (top ? top->step : -1);
    f.is_step = step.has_value();
    f.request = top ? top->request : -1;
    f.excluded = top ? top->excluded : false;
    f.traced = tracing_.load(std::memory_order_relaxed);
    if (cat == category::request) f.request = begin_request(request_id, warmup, t_ns, f.excluded);
    f.stage = cat == category::stage
                  ? static_cast<std::int32_t>(stage_index(f.node, t_ns, f.excluded))
                  : (top ? top->stage : -1);
    // A row of the window when entered in it (an absorbed frame's node is its ancestor's,
    // marked already).
    if (n != nullptr) note_entered(*n, window_.key_of(f.request, f.excluded), window_.current());
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
    scope_frame f;
    if (!ts.stack.empty() && ts.stack.back().domain == dom) {  // the usual, nested case
      f = ts.stack.back();
      ts.stack.pop_back();
    } else {  // ranges of two domains crossing: close the innermost one of this domain
      auto it = std::find_if(ts.stack.rbegin(), ts.stack.rend(),
                             [dom](const scope_frame& x) { return x.domain == dom; });
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
    ts.innermost.store(
        ts.stack.empty() ? innermost_of(scope_frame{}) : innermost_of(ts.stack.back()),
        std::memory_order_relaxed);
    popped p;
    p.ok = true;
    if (f.node == no_node) return p;
    const scope_node& n = tree_.node_at(f.node);
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
                       [dom](const scope_frame& f) { return f.domain == dom; });
  }

  // ---- activity_sink ----------------------------------------------------------------------

  void on_launch(std::uint32_t correlation_id, launch_kind kind) noexcept override {
    try {
      thread_state& ts = local();
      const std::uint64_t launch_ns = keep_trace_ ? now_ns() : 0;
      if (kind == launch_kind::timing) {  // perf mode's spans: one per timed scope, locked
        std::lock_guard<std::mutex> g(mutex_);
        pending_launch p;
        p.kind = kind;
        p.thread = ts.number;
        p.launch_ns = launch_ns;
        if (!ts.stack.empty()) ts.stack.back().timed = correlation_id;  // pop() ends the pair
        if (!ts.stack.empty() && ts.stack.back().node != no_node) {
          p.instance = ensure_instances(ts, instances_, tree_);
          scope_instance* in = instances_.find(p.instance);
          ++in->expected;  // the scope's own span: its instance alone
          p.request = in->request;
          p.excluded = in->excluded;
        }
        launches_.insert(correlation_id, p);
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
        if (ring == nullptr) ring = ts.ring = launches_.add_ring(ts.number);
        if (scoped && inst == 0) inst = ensure_instances(ts, instances_, tree_);
        if (ring->full()) {
          launches_.take(*ring, instances_);
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
      launches_.alias(nested_id, outer_id);
    } catch (...) {
      internal_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void on_graph_node_created(std::uint64_t node_id) noexcept override {
    try {
      thread_state& ts = local();
      std::vector<std::uint32_t> path;
      for (const scope_frame& f : ts.stack)
        if (f.node != no_node) path.push_back(f.node);
      std::lock_guard<std::mutex> g(mutex_);
      graphs_.captured(node_id, path.empty() ? no_node : path.back());
    } catch (...) {
      internal_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void on_graph_node_cloned(std::uint64_t original_id, std::uint64_t clone_id) noexcept override {
    try {
      std::lock_guard<std::mutex> g(mutex_);
      graphs_.cloned(original_id, clone_id);
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
      // Kernels are not scopes; CUPTI's symbol is demangled once per name, on this thread.
      const std::uint32_t op_name = names_.intern_kernel(op.name);
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
    launches_.take_all(instances_);
    instances_.for_each_live([this](scope_instance& in) { finalize(in.id); });
    launches_.clear();
  }

  /// Ranges of this aggregator still open (the "unclosed at stop" fault): on live threads,
  /// and on threads that exited with ranges open (the program's main thread among them when
  /// the collector stops at exit: its thread-locals are destroyed before atexit handlers
  /// run). Names the innermost open range of the first `max_named` such threads.
  unclosed_report unclosed_ranges(std::size_t max_named = 5) const {
    return unclosed_ranges_of(epoch_, tree_, max_named);
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
    const std::uint64_t window = window_.current();
    snapshot_scopes(r, tree_, names_, gpu_measured, window, options_.spans_apart);
    snapshot_timeline(r, timeline_, tree_, names_, origin_ns_, gpu_measured, window_,
                      options_.spans_apart);
    snapshot_kernels(r, kernels_window_ == window ? &kernels_ : nullptr, tree_, names_,
                     gpu_measured);
    snapshot_step_kernels(r, step_kernels_.of(window), names_);
    snapshot_outside(r, window_, gpu_measured);
    r.faults.dropped_records = dropped_.load();
    r.faults.zero_timestamps = zero_timestamps_.load();
    r.faults.inverted_timestamps = inverted_timestamps_.load();
    r.faults.unattributed_records = unattributed_;
    r.faults.unbalanced_pops = unbalanced_pops_.load();
    r.faults.late_records = late_records_;
    r.faults.trace_events_dropped = trace_.dropped();
    r.faults.ranges_folded = ranges_folded_.load(std::memory_order_relaxed);
    names_.count_folded(r.faults);
    r.status.max_scopes = options_.max_scopes;
    r.overhead.ranges = ranges_.load();
    r.overhead.callbacks = launches_.launches();
    r.overhead.records = records_.load();
    trace_.copy_to(r.trace, take_trace);
    return r;
  }

  std::uint64_t internal_errors() const noexcept { return internal_errors_.load(); }
  std::size_t instances_in_flight() const {
    std::lock_guard<std::mutex> g(mutex_);
    return instances_.live();
  }
  std::size_t pending_launches() {
    std::lock_guard<std::mutex> g(mutex_);
    launches_.take_all(instances_);
    return launches_.pending();
  }
  /// Allocates the pending-launch table now. The collector calls it at start when GPU
  /// timing is on: made at the first launch instead, its 4 MB (about 1.3 ms on the H200
  /// host) landed inside the first timed scope of a perf-mode run, while the GPU waited.
  void prepare_launches() {
    std::lock_guard<std::mutex> g(mutex_);
    launches_.prepare();
  }
  bool launch_table_ready() const {
    std::lock_guard<std::mutex> g(mutex_);
    return launches_.prepared();
  }

 private:
  static std::uint64_t next_epoch() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
  }

  // One thread_state per thread, reset when a different aggregator (a restarted collector,
  // another test) uses the thread: frames opened before are kept as anonymous frames so
  // their pops still balance.
  thread_state& local() {
    thread_local thread_state ts;
    if (ts.epoch != epoch_) {
      for (scope_frame& f : ts.stack) f = scope_frame{no_node, f.domain};
      track_top(ts);
      ts.stale.store(ts.stack.size(), std::memory_order_relaxed);
      ts.open.store(ts.stack.size(), std::memory_order_relaxed);
      ts.innermost.store(innermost_of(scope_frame{}), std::memory_order_relaxed);
      ts.children.clear();
      ts.ring = nullptr;
      thread_registry& r = thread_registry::instance();
      std::lock_guard<std::mutex> g(r.mutex);
      ts.number = thread_count_.fetch_add(1) + 1;  // unclosed_ranges() reads it, locked
      ts.epoch = epoch_;
      if (!ts.registered) r.threads.push_back(&ts);
      ts.registered = true;
    }
    return ts;
  }

  std::uint32_t stage_index(std::uint32_t node_id, std::uint64_t t_ns, bool excluded) {
    std::lock_guard<std::mutex> g(mutex_);
    return timeline_.stage_index(node_id, t_ns, excluded);
  }

  // A new request; `excluded` in: inside a warm-up already, out: this one is excluded. One
  // that counts opens the window.
  std::int32_t begin_request(std::string_view id, bool warmup, std::uint64_t t_ns, bool& excluded) {
    std::lock_guard<std::mutex> g(mutex_);
    const std::int32_t index = timeline_.begin_request(id, warmup, t_ns, excluded);
    if (!excluded) window_.request_counted(index);
    return index;
  }

  void close_frame(thread_state& ts, const scope_frame& f, std::uint64_t t_ns) {
    const std::uint64_t dur = t_ns > f.start_ns ? t_ns - f.start_ns : 0;
    scope_node& n = tree_.node_at(f.node);
    const bool absorbed = f.fold == fold_absorbed;  // its instance is its ancestor's
    const std::uint64_t key = window_.key_of(f.request, f.excluded);
    if (!absorbed && key == window_.current()) {
      std::lock_guard<spin_lock> g(n.host_lock);
      if (host_acc* h = window_host(n, key)) {
        ++h->calls;
        if (f.traced) ++h->traced;
        h->sum += dur;
        h->min = std::min(h->min, dur);
        h->max = std::max(h->max, dur);
        h->hist.add(dur);
      }
    }
    const bool is_stage = n.cat == category::stage;
    const bool is_request = n.cat == category::request;
    if (f.is_step || is_stage || is_request || (f.instance != 0 && !absorbed) || keep_trace_) {
      std::lock_guard<std::mutex> g(mutex_);
      timeline_.add_host(f, is_stage, is_request, dur);
      if (!absorbed) {
        if (ts.ring != nullptr)
          launches_.take(*ts.ring, instances_);  // the scope's own launches first
        if (scope_instance* in = instances_.find(f.instance)) {
          in->closed = true;
          maybe_finalize(f.instance);
        }
      }
      if (keep_trace_) trace_.add_range(n, f, ts.number, t_ns, names_);
    }
  }

  void ingest(const gpu_op& op, std::uint32_t op_name) {
    std::uint32_t id = op.correlation_id;
    pending_launch* pit = launches_.find(id, instances_);
    std::uint64_t inst = 0;
    std::uint64_t key = run_window;  // a launch not seen: outside every request range
    if (pit != nullptr) {
      inst = pit->instance;
      key = window_.key_of(pit->request, pit->excluded);
      if (keep_trace_ && op.kind != op_kind::timing)
        trace_.add_op(op, op_name, *pit, names_, tree_, instances_);
      if (pit->kind != launch_kind::graph) launches_.erase(id);  // one record per launch
    } else {
      ++unattributed_;
      if (keep_trace_) trace_.add_op(op, op_name, pending_launch{}, names_, tree_, instances_);
    }
    if (inst != 0 && instances_.find(inst) == nullptr) {
      ++late_records_;  // finalised already: counted in totals below, not in the scope
      inst = 0;
    }
    if (inst != 0 && op.graph_node_id != 0)
      inst = graphs_.grafted_instance(inst, op.graph_node_id, tree_, instances_, names_, window_);
    scope_instance* leaf = instances_.find(inst);

    const std::uint64_t dur = op.end_ns - op.start_ns;
    const bool timing = op.kind == op_kind::timing;  // not a kernel, and the leaf's alone
    const bool comm = op.kind == op_kind::kernel && kernels_.is_comm_name(op_name, op.name);
    if (!timing) {
      if (key == window_.current()) {
        if (kernels_window_ != key) {  // the first of a later window's
          kernels_.clear();
          kernels_window_ = key;
        }
        kernels_.add(op_name, leaf ? leaf->node : no_node, op.kind, dur);
      }
      window_.add_outside(key, op.kind, dur);
    }

    for (scope_instance* in = leaf; in != nullptr;
         in = timing ? nullptr : instances_.find(in->parent)) {
      if (timing && options_.spans_apart) {
        in->add_span(dur);
        continue;
      }
      in->add_op(op, dur, comm);
      // By interned name: categorised once per name at assembly, not per operation.
      if (in->is_step && !timing) add_name_busy(in->step_kernels, op_name, op.kind, dur);
    }
    // Finalise the chain bottom-up where complete.
    for (std::uint64_t cur = leaf ? leaf->id : 0; cur != 0;) {
      const scope_instance* in = instances_.find(cur);
      if (in == nullptr) break;
      const std::uint64_t parent = in->parent;
      maybe_finalize(cur);
      cur = parent;
    }
  }

  void maybe_finalize(std::uint64_t id) {
    const scope_instance* in = instances_.find(id);
    if (in != nullptr && in->closed && !in->open_ended && in->received >= in->expected &&
        in->grafted.empty())
      finalize(id);
  }

  void finalize(std::uint64_t id) {
    scope_instance* in = instances_.find(id);
    if (in == nullptr) return;
    // Grafted children first: they hold part of this instance's graph work.
    for (const auto& g : in->grafted) finalize(g.second);
    const gpu_acc acc = in->totals();
    const std::uint64_t key = window_.key_of(in->request, in->excluded);
    if (key == window_.current()) {
      add_window_gpu(tree_.node_at(in->node), key, acc, in->launches);
      if (in->is_step && !in->excluded) step_kernels_.add(key, in->step, in->step_kernels);
    }
    timeline_.add_gpu(*in, acc);
    instances_.release(*in);
  }

  // Read on every launch, written never: beside the vtable pointer, on the object's first line.
  const std::uint64_t epoch_;
  const bool keep_trace_;  // the one flag read inside; the trace buffer keeps its copy for output
  aggregator_options options_;
  const std::uint64_t origin_ns_;

  name_table names_;
  scope_tree tree_;

  std::atomic<std::uint64_t> thread_count_{0};

  mutable std::mutex mutex_;  // everything below
  instance_pool instances_;
  launch_table launches_;
  graph_scopes graphs_;
  kernel_table kernels_;
  std::uint64_t kernels_window_ = run_window;  // the window kernels_ holds
  window_step_kernels step_kernels_;
  timeline timeline_;
  window_state window_;
  trace_buffer trace_;
  std::uint64_t unattributed_ = 0;
  std::uint64_t late_records_ = 0;

  // ranges_ is written at every push: its line holds only it and dropped_ (rarely written).
  alignas(64) std::atomic<std::uint64_t> ranges_{0};
  std::atomic<std::uint64_t> dropped_{0};
  alignas(64) std::atomic<std::uint64_t> records_{0};  // CUPTI's thread: off the ranges' line
  std::atomic<std::uint64_t> zero_timestamps_{0}, inverted_timestamps_{0}, unbalanced_pops_{0};
  std::atomic<std::uint64_t> internal_errors_{0};
  std::atomic<std::uint64_t> ranges_folded_{0};
  std::atomic<bool> tracing_{true};  // sampled mode: set by the collector as it switches
};

}  // namespace diffscope::detail
