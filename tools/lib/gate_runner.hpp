// A command run under the native-backend gate (sglang/gate.hpp, docs/gate.md), for `diffscope
// gate -- CMD` and `diffscope run`: its output passed through byte for byte while scanned,
// signals passed on, the verdict one line on stderr.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <diffscope/sglang/gate.hpp>

#include "../cli.hpp"
#include "child.hpp"

namespace diffscope::cli {

inline constexpr int exit_gate_tripped = 3;

namespace gate_detail {

struct gate_args {
  bool help = false;
  bool expect_bcg = false;
  bool kill_on_fallback = false;
  double kill_grace_s = 5.0;
  bool has_log = false;
  std::string log;
  std::vector<std::string> command;
};

inline gate_options options_for(const gate_args& g) {
  gate_options o;
  o.expect_bcg = g.expect_bcg;
  return o;
}

/// Signals that arrive while the command runs, through a self-pipe (the handler only writes).
struct signal_relay {
  int pipe[2] = {-1, -1};
};

inline signal_relay& relay() {
  static signal_relay r;
  return r;
}

/// Set on a relayed byte when the kernel sent the signal (the terminal's Ctrl-C, hangup),
/// not a process: the command, in our process group, got it as well.
inline constexpr unsigned char relay_from_kernel = 0x80;

inline void relay_signal(int sig, siginfo_t* info, void*) {
  const int saved = errno;
  auto c = static_cast<unsigned char>(sig);
  if (info != nullptr && info->si_code == SI_KERNEL) c |= relay_from_kernel;
  (void)!::write(relay().pipe[1], &c, 1);
  errno = saved;
}

inline void set_handler(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(sig, &sa, nullptr);
}

inline void set_relay_handler(int sig) {
  struct sigaction sa {};
  sa.sa_sigaction = relay_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  ::sigaction(sig, &sa, nullptr);
}

/// The signals passed on to the command while it runs.
inline constexpr int forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/// How the command ended beyond its code, for callers that decide themselves (diffscope run).
struct command_outcome {
  int killed_by = 0;        ///< the signal that killed the command; 0 when it exited
  int received_signal = 0;  ///< the first forwarded signal that reached us; 0 when none did
};

/// Runs g.command with its output passed through and scanned. Returns the command's code, or
/// 3 when the gate trips; `verdict` and `command_code` (when given) receive the verdict and the
/// command's own code (127 not found, 126 not executable, 128+N killed), for callers that
/// decide themselves (diffscope run). SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to us are passed
/// on to the command (not those the terminal sent it as well), and we wait for it to end.
/// With `outcome` given, it receives how the command ended and the first such signal, and
/// these signals are left blocked on return: one that comes later waits until the caller has
/// cleaned up (and then unblocks them).
inline int run_command(const gate_args& g, gate_verdict* verdict = nullptr,
                       int* command_code = nullptr, command_outcome* outcome = nullptr) {
  gate_options o = options_for(g);
  o.stream_names = {"stdout", "stderr"};
  gate_scanner scanner(o);

  int out[2], err[2], exec_err[2];
  auto& sr = relay();
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(exec_err, O_CLOEXEC) != 0 || ::pipe2(sr.pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    throw failure(exit_usage, std::string("cannot create pipes (") + std::strerror(errno) + ")");

  // With --kill-on-fallback the command gets its own process group (so its helpers die with
  // it); the terminal's Ctrl-C then reaches only us, and we pass it on. Otherwise it shares
  // ours and gets the terminal's signals itself: we pass on only those a process sent us.
  const bool own_group = g.kill_on_fallback;
  const auto& forwarded = forwarded_signals;
  for (int sig : forwarded) set_relay_handler(sig);
  set_handler(SIGPIPE, SIG_IGN);  // our stdout closed: keep scanning, drop the output
  if (outcome != nullptr) *outcome = {};
  int first_signal = 0;

  std::vector<char*> argv;
  for (const std::string& s : g.command) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);

  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) throw failure(exit_usage, std::string("cannot fork (") + std::strerror(errno) + ")");
  if (pid == 0) {
    if (own_group) ::setpgid(0, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int sig : forwarded) set_handler(sig, SIG_DFL);
    set_handler(SIGPIPE, SIG_DFL);
    ::execvp(argv[0], argv.data());
    const int e = errno;
    (void)!::write(exec_err[1], &e, sizeof e);
    ::_exit(127);
  }
  if (own_group) ::setpgid(pid, pid);  // also here: no race with an early kill
  ::close(out[1]);
  ::close(err[1]);
  ::close(exec_err[1]);
  int exec_errno = 0;
  ssize_t got;
  do {
    got = ::read(exec_err[0], &exec_errno, sizeof exec_errno);
  } while (got < 0 && errno == EINTR);
  ::close(exec_err[0]);
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(out[0]);
    ::close(err[0]);
    const std::string name = g.command[0];
    if (exec_errno == ENOENT)
      std::fprintf(stderr, "diffscope gate: %s: command not found\n", name.c_str());
    else
      std::fprintf(stderr, "diffscope gate: %s: cannot execute (%s)\n", name.c_str(),
                   std::strerror(exec_errno));
    if (command_code != nullptr) *command_code = exec_errno == ENOENT ? 127 : 126;
    return exec_errno == ENOENT ? 127 : 126;
  }

  using clock = std::chrono::steady_clock;
  const int fds[2] = {out[0], err[0]};
  for (int fd : fds) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  bool open[2] = {true, true};
  unsigned char last_err_byte = '\n';
  std::vector<char> buf(1 << 16);
  bool child_done = false, term_sent = false, kill_sent = false;
  int status = 0;
  clock::time_point term_at{}, last_activity = clock::now();
  const auto grace = std::chrono::duration<double>(g.kill_grace_s);

  auto drain = [&](int s) {
    for (;;) {
      const ssize_t r = ::read(fds[s], buf.data(), buf.size());
      if (r > 0) {
        ::diffscope::detail::gate_write_all(s == 0 ? 1 : 2, buf.data(),
                                            static_cast<std::size_t>(r));
        scanner.feed(s, buf.data(), static_cast<std::size_t>(r));
        if (s == 1)
          last_err_byte = static_cast<unsigned char>(buf[static_cast<std::size_t>(r) - 1]);
        last_activity = clock::now();
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r == 0 || errno != EAGAIN) open[s] = false;
      return;
    }
  };

  for (;;) {
    if (!child_done && ::waitpid(pid, &status, WNOHANG) == pid) {
      child_done = true;
      last_activity = clock::now();
    }
    if (child_done && !open[0] && !open[1]) break;
    // Asked to stop: once the command has ended, wait no longer for what it left running.
    if (child_done && first_signal != 0) break;
    // The command is gone but something it started still holds the pipes: stop waiting once
    // they have been quiet for a while.
    if (child_done && clock::now() - last_activity > std::chrono::seconds(2)) break;
    if (g.kill_on_fallback && scanner.fallback_seen() && !term_sent && !child_done) {
      ::kill(-pid, SIGTERM);
      term_sent = true;
      term_at = clock::now();
    }
    if (term_sent && !kill_sent && !child_done && clock::now() - term_at >= grace) {
      ::kill(-pid, SIGKILL);
      kill_sent = true;
    }
    pollfd pf[3] = {{open[0] ? fds[0] : -1, POLLIN, 0},
                    {open[1] ? fds[1] : -1, POLLIN, 0},
                    {sr.pipe[0], POLLIN, 0}};
    const int timeout_ms = child_done ? 100 : 20;
    if (::poll(pf, 3, timeout_ms) < 0 && errno != EINTR) break;
    for (int s = 0; s < 2; ++s)
      if (open[s] && pf[s].revents != 0) drain(s);
    unsigned char got_byte;
    while (::read(sr.pipe[0], &got_byte, 1) == 1) {
      const int sig = got_byte & ~relay_from_kernel;
      if (first_signal == 0) first_signal = sig;
      const bool command_got_it = (got_byte & relay_from_kernel) != 0 && !own_group;
      if (!child_done && !command_got_it) ::kill(own_group ? -pid : pid, sig);
    }
  }
  for (int s = 0; s < 2; ++s) {
    if (open[s]) drain(s);
    ::close(fds[s]);
  }
  if (!child_done) ::waitpid(pid, &status, 0);
  if (outcome != nullptr) {
    sigset_t block;
    sigemptyset(&block);
    for (int sig : forwarded) sigaddset(&block, sig);
    ::pthread_sigmask(SIG_BLOCK, &block, nullptr);
  }
  for (int sig : forwarded) set_handler(sig, SIG_DFL);
  // One that came after the last look, before the block.
  unsigned char late;
  while (first_signal == 0 && ::read(sr.pipe[0], &late, 1) == 1)
    first_signal = late & ~relay_from_kernel;
  if (outcome != nullptr) outcome->received_signal = first_signal;
  ::close(sr.pipe[0]);
  ::close(sr.pipe[1]);
  scanner.finish();

  const gate_verdict v = scanner.verdict();
  int code = 0;
  std::string how;
  if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
    if (code != 0) how = "; the command exited with " + std::to_string(code);
  } else if (WIFSIGNALED(status)) {
    code = 128 + WTERMSIG(status);
    if (outcome != nullptr) outcome->killed_by = WTERMSIG(status);
    how = "; the command was killed by " + signal_name(WTERMSIG(status));
    if (term_sent)
      how += kill_sent ? " (SIGKILL after the fallback signal)" : " (after the fallback signal)";
  }
  std::fflush(stdout);
  std::fprintf(stderr, "%sdiffscope gate: %s%s\n", last_err_byte == '\n' ? "" : "\n",
               verdict_text(v).c_str(), how.c_str());
  if (verdict != nullptr) *verdict = v;
  if (command_code != nullptr) *command_code = code;
  return v.ok() ? code : exit_gate_tripped;
}

/// Lets a signal that came while the outputs were written act now that we have cleaned up
/// (its default action: run_command left them blocked for this).
inline void deliver_pending_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : forwarded_signals) sigaddset(&set, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace gate_detail

}  // namespace diffscope::cli
