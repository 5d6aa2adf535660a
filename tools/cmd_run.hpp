// `diffscope run`: collect from an unmodified process (Python, SGLang) through
// libdiffscope_inject.so, gate its output, and write the requested outputs.
//   diffscope run [--dump FILE] [--trace FILE] [--summary] [--mode profile|perf]
//                 [--perf-scopes steps|all] [--perf-sample N]
//                 [--expect-bcg] [--no-gate] [--keep-invalid] -- CMD [ARGS...]
// Every process the command starts that uses NVTX (workers, torchrun ranks) writes its own
// dump into a private directory ($TMPDIR/diffscope-run-<pid>-XXXXXX: removed however the run
// ends, or by the next run when this one was killed with SIGKILL); at the end the requested
// dump is that dump (one process) or their merge (several: the critical path over ranks, as
// `diffscope merge`), and with several each process's own dump is kept beside it as
// FILE-rank<r>.json (FILE-pid<pid>.json when the process had no distinct RANK).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <diffscope/config.hpp>
#include <diffscope/util/atomic_file.hpp>

#include "cli.hpp"
#include "cmd_gate.hpp"
#include "cmd_merge.hpp"

namespace diffscope::cli {

namespace run_detail {

inline constexpr const char* usage =
    "usage: diffscope run [--dump FILE] [--trace FILE] [--summary] [--mode profile|perf]\n"
    "                     [--perf-scopes steps|all] [--perf-sample N]\n"
    "                     [--expect-bcg] [--no-gate] [--keep-invalid] -- CMD [ARGS...]\n"
    "Runs CMD with the diffscope collector injected into it and every process it starts\n"
    "(NVTX_INJECTION64_PATH=libdiffscope_inject.so), its output passed through and gated\n"
    "(diffscope gate). Writes the perf dump (one process: its dump; several: their merge,\n"
    "as diffscope merge, plus each process's own dump as FILE with -rank<r> before the\n"
    "extension, from its RANK, or -pid<pid> without one), the trace (one per process: FILE,\n"
    "or FILE with -<pid> before the extension), and the summary of each process on stderr\n"
    "(several: then the merged summary, as diffscope merge --summary).\n"
    "--mode: the timing mode (DIFFSCOPE_MODE; default: the environment's, else profile):\n"
    "profile traces every kernel through CUPTI, perf times stages and steps with device\n"
    "events and no per-launch cost (docs/modes.md).\n"
    "--perf-scopes: what perf mode times (DIFFSCOPE_PERF_SCOPES): steps (stages and denoise\n"
    "steps, the default) or all (every scope). --perf-sample N (DIFFSCOPE_PERF_SAMPLE, implies\n"
    "--perf-scopes all): the scopes inside denoise steps timed in one step of N, their totals\n"
    "estimated.\n"
    "Exit: the command's code (128+N when it was killed by signal N: it wrote no dump then);\n"
    "3 when the gate trips (no dump is kept, unless --keep-invalid writes it beside as\n"
    "FILE.invalid.json); 2 bad usage, no injection library, or a dump was asked for and no\n"
    "process wrote one; 127 command not found. When an output (dump or trace) cannot be\n"
    "written, a line says so and the exit is the command's code when that is not 0, else 2.\n"
    "Stopped by SIGINT, SIGTERM or SIGHUP (passed on to the command): waits for the command\n"
    "to end and writes nothing; exit: the command's code, or 128+N for signal N when it\n"
    "exited 0.\n"
    "DIFFSCOPE_INJECT_LIB overrides where libdiffscope_inject.so is looked for (next to this\n"
    "program, then ../lib).\n";

struct run_args {
  bool help = false;
  std::string dump, trace;
  bool summary = false, expect_bcg = false, no_gate = false, keep_invalid = false;
  std::string mode;         ///< "" = leave DIFFSCOPE_MODE as it is
  std::string perf_scopes;  ///< "" = leave DIFFSCOPE_PERF_SCOPES as it is
  int perf_sample = 0;      ///< 0 = leave DIFFSCOPE_PERF_SAMPLE as it is
  std::vector<std::string> command;
};

inline run_args parse(const args& a) {
  run_args r;
  once_options once{{"--dump"}, {"--trace"}, {"--mode"}, {"--perf-scopes"}, {"--perf-sample"}};
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string& s = a[i];
    once.check(s);
    auto value = [&](const char* what) -> std::string {
      if (i + 1 >= a.size() || a[i + 1] == "--") throw failure(exit_usage, s + " needs " + what);
      return a[++i];
    };
    if (s == "--") {
      r.command.assign(a.begin() + static_cast<std::ptrdiff_t>(i) + 1, a.end());
      if (r.command.empty()) throw failure(exit_usage, "no command after --");
      // Sampling needs every scope timed.
      if (r.perf_sample > 0 && r.perf_scopes == "steps")
        throw failure(exit_usage,
                      "--perf-sample samples the scopes inside steps: it needs "
                      "--perf-scopes all, not steps");
      return r;
    }
    if (s == "-h" || s == "--help") {
      r.help = true;
      return r;
    }
    if (s == "--dump") {
      r.dump = value("a file");
    } else if (s == "--trace") {
      r.trace = value("a file");
    } else if (s == "--summary") {
      r.summary = true;
    } else if (s == "--expect-bcg") {
      r.expect_bcg = true;
    } else if (s == "--no-gate") {
      r.no_gate = true;
    } else if (s == "--keep-invalid") {
      r.keep_invalid = true;
    } else if (s == "--mode") {
      r.mode = value("profile or perf");
      if (r.mode != "profile" && r.mode != "perf")
        throw failure(exit_usage, "--mode: '" + r.mode + "' is not profile or perf");
    } else if (s == "--perf-scopes") {
      r.perf_scopes = value("steps or all");
      if (r.perf_scopes != "steps" && r.perf_scopes != "all")
        throw failure(exit_usage, "--perf-scopes: '" + r.perf_scopes + "' is not steps or all");
    } else if (s == "--perf-sample") {
      r.perf_sample = whole_number(s, value("a step count"), 1, 1 << 20);
    } else {
      throw failure(exit_usage, "unknown argument '" + s + "' (diffscope run --help)");
    }
  }
  throw failure(exit_usage, "no command: give -- CMD [ARGS...] (diffscope run --help)");
}

inline bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// libdiffscope_inject.so: DIFFSCOPE_INJECT_LIB, next to this program (build tree), or in
/// ../lib (install tree).
inline std::string find_inject_library() {
  if (const char* env = config::raw("DIFFSCOPE_INJECT_LIB")) {
    if (!is_file(env))
      throw failure(exit_usage, std::string("DIFFSCOPE_INJECT_LIB=") + env + ": no such file");
    return std::filesystem::absolute(env).string();
  }
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const auto& dir : {self.parent_path(), self.parent_path().parent_path() / "lib"}) {
      const auto candidate = dir / "libdiffscope_inject.so";
      if (is_file(candidate.string())) return candidate.string();
    }
  }
  throw failure(exit_usage,
                "libdiffscope_inject.so not found next to diffscope or in ../lib; set "
                "DIFFSCOPE_INJECT_LIB");
}

/// FILE with -<suffix> before its extension ("trace.json" -> "trace-123.json").
inline std::string with_suffix(const std::string& path, const std::string& suffix) {
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "-" + suffix + p.extension().string())).string();
}

/// Files in `dir` named prefix*.json, sorted.
inline std::vector<std::string> outputs_in(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && e.path().extension() == ".json")
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

inline constexpr const char* run_dir_prefix = "diffscope-run-";

/// The owner's pid in a private directory name (diffscope-run-<pid>-XXXXXX); -1 for any
/// other name.
inline long run_dir_owner(const std::string& name) {
  const std::string prefix = run_dir_prefix;
  if (name.rfind(prefix, 0) != 0) return -1;
  const std::string rest = name.substr(prefix.size());
  const std::size_t dash = rest.find('-');
  if (dash == std::string::npos || dash == 0 || dash > 10 || rest.size() != dash + 7) return -1;
  long pid = 0;
  for (std::size_t i = 0; i < dash; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return -1;
    pid = pid * 10 + (rest[i] - '0');
  }
  for (std::size_t i = dash + 1; i < rest.size(); ++i) {
    const char c = rest[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return -1;
  }
  return pid > 0 && pid <= INT_MAX ? pid : -1;
}

/// Removes the private directories in `tmp` of runs that are gone (killed with SIGKILL): our
/// name, a directory of this user's (never a link), its owner's pid no longer alive and its
/// lock free (a run in another pid namespace holds it though its pid is unknown here).
inline void remove_stale_run_dirs(const std::string& tmp) {
  DIR* d = ::opendir(tmp.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    if (diffscope::detail::left_by_gone_process(::dirfd(d), e->d_name, run_dir_owner(e->d_name),
                                                S_IFDIR))
      stale.emplace_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& name : stale) {
    const std::string path = (std::filesystem::path(tmp) / name).string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
    ::close(fd);
  }
}

/// The private output directory, $TMPDIR/diffscope-run-<pid>-XXXXXX, locked while we live;
/// removed however the command ends (remove(), or the destructor when an error ends the run).
struct temp_dir {
  std::string path;
  int lock_fd = -1;
  temp_dir() {
    const std::string tmp = std::filesystem::temp_directory_path().string();
    remove_stale_run_dirs(tmp);
    std::string tmpl = (std::filesystem::path(tmp) /
                        (std::string(run_dir_prefix) + std::to_string(::getpid()) + "-XXXXXX"))
                           .string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw failure(exit_usage, "cannot create a temporary directory under " + tmp + " (" +
                                    std::strerror(errno) + ")");
    path = tmpl;
    lock_fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd >= 0) ::flock(lock_fd, LOCK_EX | LOCK_NB);
  }
  /// Removes the directory; tries again while a process the command left behind is still
  /// writing into it, so no dump of its stays.
  void remove() noexcept {
    if (path.empty()) return;
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) break;
      ::usleep(10000);
    }
    if (lock_fd >= 0) ::close(lock_fd);
    lock_fd = -1;
    path.clear();
  }
  ~temp_dir() { remove(); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

/// Lets a signal that came while the outputs were written act now that we have cleaned up
/// (its default action: run_command left them blocked for this).
inline void deliver_pending_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : gate_detail::forwarded_signals) sigaddset(&set, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

/// Where process `i`'s own dump goes beside the merged FILE: -rank<r> from its dump's
/// diffscope.environment.rank when that rank is unique among the processes, else -pid<pid>
/// from its private file name (dump-<pid>.json).
inline std::vector<std::string> per_process_names(const std::vector<std::string>& dumps,
                                                  const std::vector<perf_dump_data>& ranks,
                                                  const std::string& out) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < dumps.size(); ++i) {
    const std::int64_t r = ranks[i].rank;
    const auto same = std::count_if(ranks.begin(), ranks.end(),
                                    [&](const perf_dump_data& d) { return d.rank == r; });
    const std::string pid = std::filesystem::path(dumps[i]).stem().string().substr(5);
    names.push_back(
        with_suffix(out, r >= 0 && same == 1 ? "rank" + std::to_string(r) : "pid" + pid));
  }
  return names;
}

/// Writes the requested dump from the per-process dumps (several: their merge, and each one
/// beside it; `tail` is appended to every name, ".invalid.json" for a tripped gate). Prints
/// the merged summary on stderr when asked. Returns an error message, empty on success.
inline std::string write_dump(const std::vector<std::string>& dumps, const std::string& out,
                              const std::string& tail, bool summary) {
  if (dumps.size() == 1)
    return diffscope::detail::write_file_atomically(out + tail, read_file(dumps[0])).value_or("");
  std::vector<perf_dump_data> ranks;
  for (const auto& f : dumps) ranks.push_back(load_dump(f));
  // The merge names each rank by the file kept for it, not the private one.
  const auto names = per_process_names(dumps, ranks, out);
  for (std::size_t i = 0; i < dumps.size(); ++i) ranks[i].file = names[i] + tail;
  std::vector<std::string> warnings;
  const ordered_json merged = merge_dumps(ranks, warnings);
  for (const auto& w : warnings) std::fprintf(stderr, "diffscope run: warning: %s\n", w.c_str());
  for (std::size_t i = 0; i < dumps.size(); ++i)
    if (auto err = diffscope::detail::write_file_atomically(names[i] + tail, read_file(dumps[i])))
      return *err;
  if (summary) std::fputs(merge_summary_text(merged).c_str(), stderr);
  return diffscope::detail::write_file_atomically(out + tail, dump_text(merged)).value_or("");
}

}  // namespace run_detail

/// `diffscope run`.
inline int run_run(const args& a) {
  const run_detail::run_args r = run_detail::parse(a);
  if (r.help) {
    std::fputs(run_detail::usage, stdout);
    return exit_ok;
  }
  const std::string library = run_detail::find_inject_library();
  run_detail::temp_dir dir;

  // The command and everything it starts inherit this environment. The collector in each
  // process expands {pid} when it writes. A process's own gate is off: this one gates.
  ::setenv("NVTX_INJECTION64_PATH", library.c_str(), 1);
  ::setenv("DIFFSCOPE_DUMP", (dir.path + "/dump-{pid}.json").c_str(), 1);
  if (!r.trace.empty())
    ::setenv("DIFFSCOPE_TRACE", (dir.path + "/trace-{pid}.json").c_str(), 1);
  else
    ::unsetenv("DIFFSCOPE_TRACE");
  // A process that outlives the run must not recreate the directory once it is removed.
  ::setenv("DIFFSCOPE_CREATE_DIRS", "0", 1);
  if (r.summary) ::setenv("DIFFSCOPE_SUMMARY", "1", 1);
  if (!r.mode.empty()) ::setenv("DIFFSCOPE_MODE", r.mode.c_str(), 1);
  if (r.perf_sample > 0) {
    ::setenv("DIFFSCOPE_PERF_SAMPLE", std::to_string(r.perf_sample).c_str(), 1);
    ::setenv("DIFFSCOPE_PERF_SCOPES", "all", 1);
  }
  if (!r.perf_scopes.empty()) ::setenv("DIFFSCOPE_PERF_SCOPES", r.perf_scopes.c_str(), 1);
  for (const char* v : {"DIFFSCOPE_GATE", "DIFFSCOPE_EXPECT_BCG", "DIFFSCOPE_KEEP_INVALID"})
    ::unsetenv(v);

  gate_detail::gate_args g;
  g.expect_bcg = r.expect_bcg;
  g.command = r.command;
  gate_verdict verdict;
  int command_code = 0;
  gate_detail::command_outcome outcome;
  gate_detail::run_command(g, &verdict, &command_code, &outcome);
  if (command_code == 126 || command_code == 127) return command_code;  // said why already
  const std::string killed =
      outcome.killed_by != 0 ? gate_detail::signal_name(outcome.killed_by) : "";

  if (outcome.received_signal != 0) {
    // Asked to stop: the command has ended; write nothing, leave nothing behind.
    dir.remove();
    std::fprintf(stderr, "diffscope run: stopped by %s: no output written\n",
                 gate_detail::signal_name(outcome.received_signal).c_str());
    return command_code != 0 ? command_code : 128 + outcome.received_signal;
  }
  const bool tripped = !r.no_gate && !verdict.ok();

  const auto dumps = run_detail::outputs_in(dir.path, "dump-");
  const auto traces = run_detail::outputs_in(dir.path, "trace-");
  std::vector<std::string> output_errors;
  if (!r.dump.empty()) {
    if (dumps.empty()) {
      if (!killed.empty())
        std::fprintf(stderr,
                     "diffscope run: the command was killed by %s and so wrote no dump; "
                     "nothing written to %s\n",
                     killed.c_str(), r.dump.c_str());
      else
        std::fprintf(stderr,
                     "diffscope run: no process wrote a dump (no NVTX range was seen, or the "
                     "command ended before its first range); nothing written to %s\n",
                     r.dump.c_str());
      dir.remove();
      return command_code != 0 ? command_code : exit_usage;
    }
    if (tripped && !r.keep_invalid) {
      std::fprintf(stderr, "diffscope run: gate tripped (%s): no dump written to %s\n",
                   verdict.code(), r.dump.c_str());
    } else {
      const std::string tail = tripped ? ".invalid.json" : "";
      const std::string out = r.dump + tail;
      std::string err;
      try {
        err = run_detail::write_dump(dumps, r.dump, tail, r.summary);
      } catch (const failure& f) {
        err = f.what();
      }
      if (!err.empty())
        output_errors.push_back(err);
      else if (tripped)
        std::fprintf(stderr, "diffscope run: invalid dump kept as %s\n", out.c_str());
    }
  }
  if (!r.trace.empty() && !(tripped && !r.keep_invalid)) {
    for (const auto& t : traces) {
      std::string out = traces.size() == 1
                            ? r.trace
                            : run_detail::with_suffix(
                                  r.trace, std::filesystem::path(t).stem().string().substr(6));
      if (tripped) out += ".invalid.json";
      try {
        if (auto err = diffscope::detail::write_file_atomically(out, read_file(t)))
          output_errors.push_back(*err);
      } catch (const failure& f) {
        output_errors.push_back(f.what());
      }
    }
  }
  dir.remove();

  int code = tripped ? exit_gate_tripped : command_code;
  if (!output_errors.empty()) {
    // The command's own result still counts: its code is relayed, and only a clean exit
    // becomes our 2.
    for (const auto& e : output_errors)
      std::fprintf(stderr, "diffscope run: output failed: %s\n", e.c_str());
    if (tripped)
      std::fprintf(stderr, "diffscope run: exit 3 (the gate tripped)\n");
    else if (command_code == 0)
      std::fprintf(stderr, "diffscope run: the command exited 0; exit 2 (an output failed)\n");
    else
      std::fprintf(stderr, "diffscope run: the command %s; its exit code %d is relayed\n",
                   killed.empty() ? ("exited with " + std::to_string(command_code)).c_str()
                                  : ("was killed by " + killed).c_str(),
                   command_code);
    if (!tripped && command_code == 0) code = exit_usage;
  }
  run_detail::deliver_pending_signals();
  return code;
}

}  // namespace diffscope::cli
