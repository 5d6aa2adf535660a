// diffscope: the watch over this process's own stdout and stderr: fd 1 and 2 redirected into
// pipes, a reader thread that passes every byte through and feeds a gate_scanner, and the
// process-wide active watch the collector consults. POSIX only.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <diffscope/sglang/gate_scanner.hpp>

namespace diffscope {

class output_watch;

namespace detail {

/// Process-wide: the watch the collector consults. Never destroyed (used from atexit).
struct gate_registry {
  std::mutex mutex;
  output_watch* active = nullptr;
  bool exit_hook = false;
};

inline gate_registry& gate_globals() {
  static gate_registry* r = new gate_registry();
  return *r;
}

inline void gate_exit_hook();

/// Writes all of [p, p + n) to fd; false when the fd is gone (the bytes are dropped).
inline bool gate_write_all(int fd, const char* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd pf{fd, POLLOUT, 0};
        ::poll(&pf, 1, -1);
        continue;
      }
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace detail

/// Watches this process's own stdout and stderr while it lives: fd 1 and 2 are redirected
/// into pipes; a reader thread writes every byte, unchanged and in order per stream, to the
/// original descriptors and feeds a gate_scanner. Child processes that inherit fd 1 and 2 are
/// watched too. stop() (and the destructor, and exit() while a watch is active) flushes C
/// stdio, restores the descriptors and drains the pipes, so nothing written before is lost.
/// When the pipes cannot be set up the program goes on unwatched: active() is false and
/// error() says why.
class output_watch {
 public:
  explicit output_watch(gate_options options = {}) : scanner_(prepare(std::move(options))) {
    start();
  }
  ~output_watch() {
    stop();
    auto& g = detail::gate_globals();
    std::lock_guard<std::mutex> lock(g.mutex);
    if (g.active == this) g.active = previous_;
  }
  output_watch(const output_watch&) = delete;
  output_watch& operator=(const output_watch&) = delete;

  /// The verdict so far (any time, from any thread; after stop(), the final one).
  gate_verdict verdict() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return scanner_.verdict();
  }

  bool fallback_seen() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return scanner_.fallback_seen();
  }

  /// Flushes C stdio and waits (at most timeout_ms) until everything written to fd 1 and 2
  /// so far has been scanned, so that verdict() covers it.
  void settle(int timeout_ms = 2000) {
    std::fflush(stdout);
    std::fflush(stderr);
    std::lock_guard<std::mutex> stop_lock(stop_mutex_);
    if (!running_ || owner_pid_ != ::getpid()) return;
    for (int waited = 0; waited < timeout_ms; ++waited) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        int a = 0, b = 0;
        if (::ioctl(read_[0], FIONREAD, &a) != 0 || ::ioctl(read_[1], FIONREAD, &b) != 0) return;
        if (a == 0 && b == 0) return;
      }
      ::usleep(1000);
    }
  }

  /// True while the output is being watched.
  bool active() const noexcept { return running_.load(); }
  /// Why watching could not start ("" when it did).
  const std::string& error() const noexcept { return error_; }

  /// Flushes stdio, restores fd 1 and 2, passes through what is still in the pipes, ends
  /// the reader. Idempotent.
  void stop() {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    if (!running_) return;
    running_ = false;
    std::fflush(stdout);
    std::fflush(stderr);
    if (owner_pid_ != ::getpid()) {  // a forked child: the reader thread is the parent's
      ::dup2(saved_[0], 1);
      ::dup2(saved_[1], 2);
      close_all();
      return;
    }
    ::dup2(saved_[0], 1);  // closes our write ends: the reader sees EOF
    ::dup2(saved_[1], 2);
    const char x = 'x';
    (void)!::write(control_[1], &x, 1);  // in case a child process still holds a write end
    ::pthread_join(thread_, nullptr);
    close_all();
  }

 private:
  friend void detail::gate_exit_hook();

  static gate_options prepare(gate_options o) {
    if (o.stream_names[0].empty()) o.stream_names[0] = "stdout";
    if (o.stream_names[1].empty()) o.stream_names[1] = "stderr";
    return o;
  }

  void start() {
    std::fflush(stdout);
    std::fflush(stderr);
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    auto fail = [&](const char* what) {
      error_ = std::string(what) + ": " + std::strerror(errno);
      for (int fd :
           {out[0], out[1], err[0], err[1], control_[0], control_[1], saved_[0], saved_[1]})
        if (fd >= 0) ::close(fd);
      control_[0] = control_[1] = saved_[0] = saved_[1] = -1;
    };
    if (::fcntl(1, F_GETFD) < 0 || ::fcntl(2, F_GETFD) < 0) {
      error_ = "stdout or stderr is closed";  // a pipe would take its number
      return;
    }
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
        ::pipe2(control_, O_CLOEXEC) != 0)
      return fail("pipe");
    saved_[0] = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
    saved_[1] = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (saved_[0] < 0 || saved_[1] < 0) return fail("duplicating stdout/stderr");
    read_[0] = out[0];
    read_[1] = err[0];
    for (int fd : read_) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    owner_pid_ = ::getpid();
    if (::pthread_create(&thread_, nullptr, &output_watch::reader_main, this) != 0) {
      read_[0] = read_[1] = -1;
      return fail("starting the reader thread");
    }
    ::dup2(out[1], 1);  // the copies on 1 and 2 are inherited by child processes
    ::dup2(err[1], 2);
    ::close(out[1]);
    ::close(err[1]);
    running_ = true;
    auto& g = detail::gate_globals();
    std::lock_guard<std::mutex> lock(g.mutex);
    previous_ = g.active;
    g.active = this;
    if (!g.exit_hook) {
      g.exit_hook = true;
      std::atexit(&detail::gate_exit_hook);
    }
  }

  void close_all() {
    for (int* fd : {&read_[0], &read_[1], &control_[0], &control_[1], &saved_[0], &saved_[1]}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }

  static void* reader_main(void* self) {
    static_cast<output_watch*>(self)->reader();
    return nullptr;
  }

  /// Reads what one pipe has (non-blocking) and scans it under the lock, so settle() knows
  /// that an empty pipe means everything was scanned; then passes it through. Returns
  /// read(2)'s result.
  ssize_t pass_some(int s, std::vector<char>& buf) {
    ssize_t r;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      r = ::read(read_[s], buf.data(), buf.size());
      if (r > 0) scanner_.feed(s, buf.data(), static_cast<std::size_t>(r));
    }
    if (r > 0) detail::gate_write_all(saved_[s], buf.data(), static_cast<std::size_t>(r));
    return r;
  }

  void reader() {
    std::vector<char> buf(1 << 16);
    bool open[2] = {true, true};
    bool stopping = false;
    while ((open[0] || open[1]) && !stopping) {
      pollfd pf[3] = {{open[0] ? read_[0] : -1, POLLIN, 0},
                      {open[1] ? read_[1] : -1, POLLIN, 0},
                      {control_[0], POLLIN, 0}};
      if (::poll(pf, 3, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int s = 0; s < 2; ++s) {
        if (!open[s] || pf[s].revents == 0) continue;
        const ssize_t r = pass_some(s, buf);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) open[s] = false;
      }
      if (pf[2].revents != 0) stopping = true;
    }
    // Stopping: what is in the pipes now goes through; a child process still holding a
    // write end does not keep us waiting.
    for (int s = 0; s < 2; ++s) {
      while (open[s]) {
        const ssize_t r = pass_some(s, buf);
        if (r <= 0 && !(r < 0 && errno == EINTR)) open[s] = false;
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    scanner_.finish();
  }

  mutable std::mutex mutex_;  // the scanner
  std::mutex stop_mutex_;
  gate_scanner scanner_;
  pthread_t thread_{};
  pid_t owner_pid_ = 0;
  int read_[2] = {-1, -1};
  int saved_[2] = {-1, -1};
  int control_[2] = {-1, -1};
  std::atomic<bool> running_{false};
  std::string error_;
  output_watch* previous_ = nullptr;
};

/// The verdict of the active output watch (the most recently started one still alive), once
/// it has scanned everything written so far (C stdio flushed first); nothing when no watch
/// is active.
inline std::optional<gate_verdict> current_gate_verdict() {
  auto& g = detail::gate_globals();
  std::lock_guard<std::mutex> lock(g.mutex);
  if (g.active == nullptr) return std::nullopt;
  g.active->settle();
  return g.active->verdict();
}

namespace detail {

inline void gate_exit_hook() {
  auto& g = gate_globals();
  std::lock_guard<std::mutex> lock(g.mutex);
  for (output_watch* w = g.active; w != nullptr; w = w->previous_) w->stop();
}

}  // namespace detail
}  // namespace diffscope
