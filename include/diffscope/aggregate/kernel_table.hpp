// diffscope: per-kernel figures: count and total, shortest and longest duration of each
// (kernel name, scope, operation kind), busy per kernel name inside a step, and which kernel
// names are communication.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <diffscope/aggregate/overlap.hpp>
#include <diffscope/capture/activity.hpp>

namespace diffscope::detail {

/// An operation kind as results.hpp and the trace spell it.
inline const char* kind_label(op_kind k) {
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

/// Busy time of one (kernel name, operation kind) inside a denoise step, ns.
struct name_busy {
  std::uint32_t name;
  op_kind kind;
  std::uint64_t busy;
};

/// Adds `dur` ns to (name, kind) in `list`, kept sorted by name then kind: a binary search
/// per operation, an insertion (and at most an amortised allocation) per new name only.
inline void add_name_busy(std::vector<name_busy>& list, std::uint32_t name, op_kind kind,
                          std::uint64_t dur) {
  const auto less = [](const name_busy& a, std::pair<std::uint32_t, op_kind> k) {
    return a.name != k.first ? a.name < k.first : a.kind < k.second;
  };
  auto it = std::lower_bound(list.begin(), list.end(), std::make_pair(name, kind), less);
  if (it != list.end() && it->name == name && it->kind == kind) {
    it->busy += dur;
  } else {
    list.insert(it, name_busy{name, kind, dur});
  }
}

/// Guarded by the aggregator's mutex.
class kernel_table {
 public:
  using map = std::unordered_map<kernel_key, kernel_acc, kernel_key_hash>;

  /// One operation named `name` (an interned id) in scope `node` that took `dur` ns.
  void add(std::uint32_t name, std::uint32_t node, op_kind kind, std::uint64_t dur) {
    kernel_acc& k = kernels_[kernel_key{name, node, kind}];
    ++k.count;
    k.total += dur;
    k.min = std::min(k.min, dur);
    k.max = std::max(k.max, dur);
  }

  // Whether a kernel name is communication, decided once per name.
  bool is_comm_name(std::uint32_t name_id, std::string_view name) {
    if (name_id >= comm_names_.size()) comm_names_.resize(name_id + 1, -1);
    std::int8_t& f = comm_names_[name_id];
    if (f < 0) f = is_communication_kernel(name) ? 1 : 0;
    return f == 1;
  }

  const map& entries() const noexcept { return kernels_; }
  /// Forgets every entry (a later window begins), keeping what is known of the names.
  void clear() { map().swap(kernels_); }

 private:
  map kernels_;
  std::vector<std::int8_t> comm_names_;  // by name id: -1 unknown, 0 no, 1 communication
};

}  // namespace diffscope::detail
