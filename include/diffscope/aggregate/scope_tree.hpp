// diffscope: the tree of scopes: one node per distinct path of range names, made once and
// never moved (chunks read without a lock), and the scope cap, past which a parent's new
// children fold into its one "(other)" node.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>

#include <diffscope/aggregate/accumulators.hpp>
#include <diffscope/aggregate/names.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

inline constexpr std::uint32_t no_node = 0xffffffffu;

/// Domains the aggregator distinguishes. Ranges of any other domain are ignored.
enum class range_domain : std::uint8_t { default_domain = 0, diffscope = 1 };

inline const char* domain_label(range_domain d) noexcept {
  return d == range_domain::diffscope ? "diffscope" : "";
}

/// Ranges of these categories carry the dump's own figures: never folded into "(other)".
inline bool never_folded(category c) noexcept {
  return c == category::stage || c == category::denoise_step || c == category::request;
}

struct scope_node {
  std::uint32_t parent = no_node;
  std::uint32_t name_id = 0;
  category cat = category::other;
  range_domain domain = range_domain::default_domain;
  int depth = 0;
  std::string path;
  // The figures of one window (aggregate/window.hpp), each tagged with its window's key.
  mutable spin_lock host_lock;
  host_acc host;                  // guarded by host_lock
  std::uint64_t host_window = 0;  // guarded by host_lock
  gpu_acc gpu;                    // guarded by the aggregator's mutex, as the next two
  std::uint64_t launches = 0;
  std::uint64_t gpu_window = 0;
  std::atomic<std::uint64_t> entered{0};  // the latest window it was entered in (0: none)
  bool is_other = false;                  // "(other)": holds its parent's folded children
};

/// A thread's own map of (parent, name, category, domain) to node, so that entering a
/// known scope takes no lock.
using child_cache = std::unordered_map<std::uint64_t, std::uint32_t>;

class scope_tree {
 public:
  /// `max_scopes`: nodes other than stages, steps, requests and "(other)" made before
  /// folding; 0: no cap.
  explicit scope_tree(std::uint64_t max_scopes) : max_scopes_(max_scopes) {}
  ~scope_tree() {
    for (auto& chunk : chunks_) delete[] chunk.load(std::memory_order_relaxed);
  }
  scope_tree(const scope_tree&) = delete;
  scope_tree& operator=(const scope_tree&) = delete;

  scope_node& node_at(std::uint32_t i) const {
    return chunks_[i / chunk_size].load(std::memory_order_acquire)[i % chunk_size];
  }
  /// Nodes made so far; parents are always made before children, so creation order is a
  /// valid order.
  std::uint32_t node_count() const noexcept { return node_count_.load(std::memory_order_acquire); }

  /// `parent`'s child of that name, category and domain, made if new (or its "(other)"
  /// past the cap); through the calling thread's `cache`.
  std::uint32_t child(child_cache& cache, std::uint32_t parent, std::uint32_t name_id, category cat,
                      range_domain dom, const name_table& names) {
    // name ids stay far below 2^27; category needs 3 bits, domain 1.
    const std::uint64_t key =
        (static_cast<std::uint64_t>(parent) << 32) | (static_cast<std::uint64_t>(name_id) << 4) |
        (static_cast<std::uint64_t>(cat) << 1) | static_cast<std::uint64_t>(dom);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    const std::uint32_t n = find_or_create_node(parent, name_id, cat, dom, names);
    // Bounded like the tree: past the cap, pairs that fold ask the tree each time.
    if (max_scopes_ == 0 || cache.size() < 4 * max_scopes_ + 64) cache.emplace(key, n);
    return n;
  }

  std::uint32_t find_or_create_node(std::uint32_t parent, std::uint32_t name_id, category cat,
                                    range_domain dom, const name_table& names) {
    std::lock_guard<std::mutex> g(nodes_mutex_);
    return find_or_create_node_locked(parent, name_id, cat, dom, names);
  }

 private:
  static constexpr std::size_t chunk_size = 1024;
  static constexpr std::size_t max_chunks = 4096;  // 4M scope nodes

  // A scope past the cap is its parent's "(other)", made once (it is not counted).
  std::uint32_t find_or_create_node_locked(std::uint32_t parent, std::uint32_t name_id,
                                           category cat, range_domain dom,
                                           const name_table& names) {
    const bool other = name_id == names.other_id();
    if (other) cat = category::other;  // one "(other)" per parent and domain
    const auto key = std::make_tuple(parent, name_id, cat, dom);
    auto it = node_index_.find(key);
    if (it != node_index_.end()) return it->second;
    const bool counted = !other && !never_folded(cat);
    if (counted && max_scopes_ != 0 && scoped_nodes_ >= max_scopes_)
      return find_or_create_node_locked(parent, names.other_id(), cat, dom, names);
    const std::uint32_t id = node_count_.load(std::memory_order_relaxed);
    if (id / chunk_size >= max_chunks) return parent;  // absurdly many scopes: fold into parent
    if (chunks_[id / chunk_size].load(std::memory_order_relaxed) == nullptr)
      chunks_[id / chunk_size].store(new scope_node[chunk_size], std::memory_order_release);
    scope_node& n = node_at(id);
    n.parent = parent;
    n.name_id = name_id;
    n.cat = cat;
    n.domain = dom;
    n.depth = parent == no_node ? 0 : node_at(parent).depth + 1;
    n.path = parent == no_node ? names.name_of(name_id)
                               : node_at(parent).path + "/" + names.name_of(name_id);
    n.is_other = other;
    node_index_.emplace(key, id);
    if (counted) ++scoped_nodes_;
    node_count_.store(id + 1, std::memory_order_release);
    return id;
  }

  std::mutex nodes_mutex_;
  std::map<std::tuple<std::uint32_t, std::uint32_t, category, range_domain>, std::uint32_t>
      node_index_;
  mutable std::array<std::atomic<scope_node*>, max_chunks> chunks_{};
  std::atomic<std::uint32_t> node_count_{0};
  std::uint64_t scoped_nodes_ = 0;  // nodes that count against the cap (nodes_mutex_)
  const std::uint64_t max_scopes_;
};

}  // namespace diffscope::detail
