// diffscope: perf mode's timing events, kept per context for reuse (an event belongs to the
// context it was created in), so a timed scope seldom pays a cuEventCreate.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include <diffscope/capture/event_api.hpp>

namespace diffscope::detail {

/// Free timing events per context. Not thread-safe: event_timer's lock guards it.
class event_pool {
 public:
  explicit event_pool(event_api& api) : api_(api) {}
  event_pool(const event_pool&) = delete;
  event_pool& operator=(const event_pool&) = delete;

  /// First use of `ctx`: its pool with `count` events, and true. The pool exists afterwards
  /// even if creation failed, so this runs once per context; false when it ran before.
  bool warm(void* ctx, std::size_t count) {
    for (const auto& pool : pools_)
      if (pool.first == ctx) return false;
    std::vector<void*> events;
    events.reserve(count);
    for (std::size_t i = 0; i < count; ++i)
      if (void* e = api_.create()) events.push_back(e);
    pools_.emplace_back(ctx, std::move(events));
    return true;
  }

  /// A free event of `ctx`, else a new one (nullptr when creation failed).
  void* take(void* ctx) {
    for (auto& pool : pools_) {
      if (pool.first != ctx) continue;
      if (pool.second.empty()) break;
      void* e = pool.second.back();
      pool.second.pop_back();
      return e;
    }
    return api_.create();
  }
  void give(void* ctx, void* e) {
    for (auto& pool : pools_) {
      if (pool.first == ctx) {
        pool.second.push_back(e);
        return;
      }
    }
    pools_.emplace_back(ctx, std::vector<void*>{e});
  }

  /// Destroys every free event (the timer has released the ones pairs held).
  void destroy_all() noexcept {
    for (auto& pool : pools_)
      for (void* e : pool.second) api_.destroy(e);
    pools_.clear();
  }

 private:
  event_api& api_;
  std::vector<std::pair<void*, std::vector<void*>>> pools_;
};

}  // namespace diffscope::detail
