// Child processes: one run to completion with its output passed through (`diffscope ab`'s
// runs), and a signal named in words for the messages that say how a command ended.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../cli.hpp"

namespace diffscope::cli {

/// Runs argv (argv[0] is the file) with `env` added, output passed through; returns its exit
/// code, or 128+N when killed by signal N. Ctrl-C reaches the child (same process group);
/// here it is ignored while the child runs, as system(3) does, so the report still gets
/// written.
inline int run_child(const std::string& file, const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<char*> p;
  for (const auto& s : argv) p.push_back(const_cast<char*>(s.c_str()));
  p.push_back(nullptr);
  struct sigaction ign {
  }, old_int{}, old_quit{};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ::sigaction(SIGINT, &ign, &old_int);
  ::sigaction(SIGQUIT, &ign, &old_quit);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    throw failure(exit_usage, "cannot fork");
  }
  if (pid == 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(file.c_str(), p.data());
    std::fprintf(stderr, "diffscope ab: cannot execute %s\n", file.c_str());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

/// "SIGKILL" for 9; "" for a signal without a well-known name.
inline const char* signal_abbrev(int sig) {
  static const std::pair<int, const char*> names[] = {
      {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
      {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
      {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
      {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGXCPU, "SIGXCPU"},
      {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
  for (const auto& [number, name] : names)
    if (number == sig) return name;
  return "";
}

/// "signal 9 (SIGKILL: Killed)".
inline std::string signal_name(int sig) {
  const std::string abbrev = signal_abbrev(sig);
  const char* d = ::strsignal(sig);
  std::string what = abbrev;
  if (d != nullptr) what += (what.empty() ? "" : ": ") + std::string(d);
  return "signal " + std::to_string(sig) + (what.empty() ? "" : " (" + what + ")");
}

}  // namespace diffscope::cli
