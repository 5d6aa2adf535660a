// diffscope: perf mode's resolver thread: a thread of ours that settles completed event pairs
// every few milliseconds (event_timer::start_resolver), so the program's threads only record
// events.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace diffscope::detail {

/// Runs `work` every `period` on a thread of its own until stopped.
class resolver_thread {
 public:
  resolver_thread() = default;
  resolver_thread(const resolver_thread&) = delete;
  resolver_thread& operator=(const resolver_thread&) = delete;
  ~resolver_thread() { stop(); }

  /// Starts the thread (stop() first when one runs).
  void start(std::function<void()> work, std::chrono::microseconds period) {
    stop();
    std::lock_guard<std::mutex> g(resolver_mutex_);
    resolver_stop_ = false;
    resolver_pid_ = ::getpid();
    background_.store(true, std::memory_order_relaxed);
    resolver_ = std::make_unique<std::thread>([this, work = std::move(work), period] {
      std::unique_lock<std::mutex> lk(resolver_mutex_);
      while (!resolver_cv_.wait_for(lk, period, [this] { return resolver_stop_; })) {
        lk.unlock();
        work();
        lk.lock();
      }
    });
  }

  /// Stops the thread (a no-op when none runs). In a forked child the thread is the
  /// parent's: it is let go, not joined.
  void stop() noexcept {
    std::unique_ptr<std::thread> t;
    bool ours = false;
    {
      std::lock_guard<std::mutex> g(resolver_mutex_);
      if (!resolver_) return;
      resolver_stop_ = true;
      background_.store(false, std::memory_order_relaxed);
      t = std::move(resolver_);
      ours = resolver_pid_ == ::getpid();
    }
    resolver_cv_.notify_all();
    if (ours) {
      t->join();
    } else {
      (void)t.release();  // the parent's thread: no thread to join here
    }
  }

  /// Whether the thread runs.
  bool running() const noexcept { return background_.load(std::memory_order_relaxed); }

 private:
  std::mutex resolver_mutex_;
  std::condition_variable resolver_cv_;
  bool resolver_stop_ = false;
  pid_t resolver_pid_ = 0;
  std::unique_ptr<std::thread> resolver_;
  std::atomic<bool> background_{false};
};

}  // namespace diffscope::detail
