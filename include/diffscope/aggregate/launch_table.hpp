// diffscope: launches between their callback and their activity records: each launching
// thread's lock-free ring, the pending table (correlation id -> scope instance) they are
// taken into, and the aliases of launches nested in others.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <diffscope/aggregate/instances.hpp>
#include <diffscope/capture/activity.hpp>

namespace diffscope::detail {

// Launches that never produced a record would pile up: past this many, older entries of
// the overflow map (and all aliases) are dropped.
inline constexpr std::size_t launch_prune_threshold = 1u << 20;

// One launching thread's launches not yet in the tables: appended by that thread without a
// lock, taken by whoever holds the aggregator's mutex (launch_table::take). One writer,
// readers serialised.
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

/// A launch waiting for its records.
struct pending_launch {
  std::uint64_t instance = 0;  // 0: launched outside any scope
  launch_kind kind = launch_kind::kernel;
  // The launch's request and whether it was a warm-up's, copied from its instance when taken
  // from the ring: a record arriving after the instance was finalised still knows them.
  bool excluded = false;
  std::int32_t request = -1;
  std::uint64_t thread = 0, launch_ns = 0;
};

// Launches waiting for their records, by correlation id: a direct-mapped table (no
// allocation per launch) with an overflow map for the rare collision.
class pending_table {
 public:
  struct entry {
    std::uint32_t correlation_id = 0;
    bool used = false;
    pending_launch p;
  };
  // The table is allocated by prepare() (at start, when GPU timing is on) or else at the
  // first launch; host-only runs never pay for it. clear() gives it back.
  void prepare() {
    if (table_.empty()) table_.resize(size);
  }
  bool prepared() const { return !table_.empty(); }
  void insert(std::uint32_t id, const pending_launch& p) {
    prepare();
    entry& e = table_[id & (size - 1)];
    if (e.used && e.correlation_id != id) {
      overflow_[e.correlation_id] = e.p;  // an older launch still waiting
      if (overflow_.size() > launch_prune_threshold) prune(id);
    }
    if (!e.used) ++used_;
    e = entry{id, true, p};
  }
  pending_launch* find(std::uint32_t id) {
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
  // Only ids of the same space age against each other: CUPTI's correlation ids below 2^31,
  // the event timer's pairs above (event_timer::pair_id_base).
  void prune(std::uint32_t newest) {
    for (auto it = overflow_.begin(); it != overflow_.end();) {
      if (((newest ^ it->first) >> 31) == 0 && newest - it->first > launch_prune_threshold / 2)
        it = overflow_.erase(it);
      else
        ++it;
    }
  }
  std::vector<entry> table_;
  std::size_t used_ = 0;
  std::unordered_map<std::uint32_t, pending_launch> overflow_;
};

/// Every launch not matched with its records yet: the rings, the pending table and the
/// aliases. Guarded by the aggregator's mutex, but for each ring's writer.
class launch_table {
 public:
  /// A ring for the launching thread numbered `thread`; owned here.
  launch_ring* add_ring(std::uint64_t thread) {
    rings_.push_back(std::make_unique<launch_ring>());
    launch_ring* ring = rings_.back().get();
    ring->thread = thread;
    return ring;
  }

  // Moves a ring's launches into the pending table, counting them on their instances and
  // those instances' ancestors. Whether there were any.
  bool take(launch_ring& ring, instance_pool& instances) {
    const std::uint64_t tail = ring.tail.load(std::memory_order_acquire);
    std::uint64_t head = ring.head.load(std::memory_order_relaxed);
    if (head == tail) return false;
    for (; head != tail; ++head) {
      const launch_ring::entry& e = ring.slots[head & (launch_ring::capacity - 1)];
      pending_launch p;
      p.instance = e.instance;
      p.kind = e.kind;
      p.thread = ring.thread;
      p.launch_ns = e.launch_ns;
      scope_instance* own = instances.find(e.instance);
      if (own != nullptr) {
        p.request = own->request;
        p.excluded = own->excluded;
      }
      for (scope_instance* in = own; in != nullptr; in = instances.find(in->parent)) {
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
  // Every thread's. Whether any launch was taken.
  bool take_all(instance_pool& instances) {
    bool any = false;
    for (auto& ring : rings_) any |= take(*ring, instances);
    return any;
  }

  /// A launch that bypasses the rings (perf mode's timing pairs).
  void insert(std::uint32_t correlation_id, const pending_launch& p) {
    pending_.insert(correlation_id, p);
  }

  void alias(std::uint32_t nested_id, std::uint32_t outer_id) {
    aliases_[nested_id] = outer_id;
    if (aliases_.size() > launch_prune_threshold) aliases_.clear();  // only ever a fallback
  }

  /// The launch of a record with correlation id `id`: in the table, else taken from the
  /// rings, else under the id it aliases (then `id` becomes that one). Null: not seen.
  pending_launch* find(std::uint32_t& id, instance_pool& instances) {
    pending_launch* pit = pending_.find(id);
    if (pit == nullptr && take_all(instances)) pit = pending_.find(id);
    if (pit == nullptr) {
      auto ait = aliases_.find(id);
      if (ait != aliases_.end()) {
        id = ait->second;
        pit = pending_.find(id);
      }
    }
    return pit;
  }
  void erase(std::uint32_t id) { pending_.erase(id); }

  /// Forgets every launch still waiting (at stop), giving the table's memory back.
  void clear() {
    pending_.clear();
    aliases_.clear();
  }
  std::size_t pending() const { return pending_.count(); }
  void prepare() { pending_.prepare(); }
  bool prepared() const { return pending_.prepared(); }

  /// Launches appended to the rings so far.
  std::uint64_t launches() const {
    std::uint64_t launches = 0;
    for (const auto& ring : rings_) launches += ring->tail.load(std::memory_order_acquire);
    return launches;
  }

 private:
  pending_table pending_;
  std::vector<std::unique_ptr<launch_ring>> rings_;  // one per launching thread
  std::unordered_map<std::uint32_t, std::uint32_t> aliases_;
};

}  // namespace diffscope::detail
