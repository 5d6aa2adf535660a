// Around the command of `diffscope run`: the injection library, the private directory its
// processes write their dumps into (removed however the run ends, or by the next run after a
// SIGKILL), and the requested dump made from them (one process's, or their merge).
#pragma once

#include <dirent.h>
#include <fcntl.h>
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

#include "../cli.hpp"
#include "dump_reader.hpp"
#include "input.hpp"
#include "merge.hpp"
#include "merge_summary.hpp"

namespace diffscope::cli {

namespace run_detail {

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

}  // namespace diffscope::cli
