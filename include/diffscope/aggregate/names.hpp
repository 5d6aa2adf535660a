// diffscope: name interning for the aggregator: range and kernel names to ids stable for its
// life (kernel names demangled once, when first seen), the cap on distinct range names, and
// the count of distinct names folded into "(other)" past it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <diffscope/aggregate/distinct_counter.hpp>
#include <diffscope/results.hpp>
#include <diffscope/sglang/range_names.hpp>
#include <diffscope/util/demangle.hpp>

namespace diffscope::detail {

class name_table {
 public:
  /// `max_scopes`: distinct capped names stored before folding; 0: no cap. The fixed names
  /// (the step scope's, "(other)") are interned first, in that order.
  explicit name_table(std::uint64_t max_scopes) : max_scopes_(max_scopes) {
    step_id_ = intern(step_scope_name, false);
    other_id_ = intern(folded_scope_name, false);
  }
  name_table(const name_table&) = delete;
  name_table& operator=(const name_table&) = delete;

  /// Id of the canonical step scope name.
  std::uint32_t step_id() const noexcept { return step_id_; }
  /// Id of "(other)": what intern() gives for a capped name past the cap.
  std::uint32_t other_id() const noexcept { return other_id_; }

  /// Interns a name; ids are stable for the aggregator's life. A `capped` name (a range
  /// name that may be folded) past the cap is not stored: it gets other_id().
  std::uint32_t intern(std::string_view name, bool capped = true) {
    std::lock_guard<std::mutex> g(names_mutex_);
    return intern_locked(name, capped);
  }
  /// Interns a kernel name as reported (CUPTI's mangled symbol) under its demangled text, the
  /// name torch.profiler shows: symbols that demangle alike share one id. Demangling happens
  /// once per distinct symbol, outside the lock that range names take on the launching threads.
  std::uint32_t intern_kernel(std::string_view symbol) {
    std::string key(symbol);
    {
      std::lock_guard<std::mutex> g(names_mutex_);
      const auto it = kernel_ids_.find(key);
      if (it != kernel_ids_.end()) return it->second;
    }
    const std::string text = demangle(symbol);
    std::lock_guard<std::mutex> g(names_mutex_);
    const auto it = kernel_ids_.find(key);  // another thread may have come first
    if (it != kernel_ids_.end()) return it->second;
    const std::uint32_t id = intern_locked(text, false);
    if (text != key) mangled_.emplace(id, key);  // the first symbol of that text is kept
    kernel_ids_.emplace(std::move(key), id);
    return id;
  }
  /// The symbol a kernel name was reported as when it was demangled ("" otherwise).
  std::string mangled_of(std::uint32_t id) const {
    std::lock_guard<std::mutex> g(names_mutex_);
    const auto it = mangled_.find(id);
    return it != mangled_.end() ? it->second : std::string();
  }
  /// Names stored (range names within the cap, kernel names, the fixed ones).
  std::size_t stored() const {
    std::lock_guard<std::mutex> g(names_mutex_);
    return names_.size();
  }
  std::string name_of(std::uint32_t id) const {
    std::lock_guard<std::mutex> g(names_mutex_);
    return id < names_.size() ? *names_[id] : std::string();
  }

  // Distinct folded names are counted by key: a stored name by its id, one past the name
  // cap by the hash of its text (never stored). The two key sets are disjoint but for
  // hash collisions (the counter's estimate is coarser than that anyway).
  static std::uint64_t key_of(std::uint32_t id) noexcept { return (1ull << 63) | id; }
  void note_folded(std::uint64_t key) {
    std::lock_guard<std::mutex> g(fold_mutex_);
    folded_names_.add(key);
  }
  /// Distinct folded names so far, and whether that count is an estimate.
  void count_folded(fault_counts& f) const {
    std::lock_guard<std::mutex> fg(fold_mutex_);
    f.names_folded = folded_names_.count();
    f.names_folded_estimated = folded_names_.estimated();
  }

 private:
  std::uint32_t intern_locked(std::string_view name, bool capped) {
    auto it = name_ids_.find(std::string(name));
    if (it != name_ids_.end()) return it->second;
    if (capped && max_scopes_ != 0) {
      if (capped_names_ >= max_scopes_) {
        note_folded(std::hash<std::string_view>()(name));
        return other_id_;
      }
      ++capped_names_;
    }
    const auto id = static_cast<std::uint32_t>(names_.size());
    names_.emplace_back(new std::string(name));
    name_ids_.emplace(*names_.back(), id);
    return id;
  }

  const std::uint64_t max_scopes_;
  std::uint32_t step_id_ = 0;
  std::uint32_t other_id_ = 0;

  mutable std::mutex names_mutex_;
  std::vector<std::unique_ptr<std::string>> names_;
  std::unordered_map<std::string, std::uint32_t> name_ids_;
  std::unordered_map<std::string, std::uint32_t> kernel_ids_;  // by the symbol as reported
  std::unordered_map<std::uint32_t, std::string> mangled_;     // id -> symbol, where demangled
  std::uint64_t capped_names_ = 0;  // names stored that count against the cap

  mutable std::mutex fold_mutex_;  // taken after names_mutex_ when both are
  distinct_counter folded_names_;
};

}  // namespace diffscope::detail
