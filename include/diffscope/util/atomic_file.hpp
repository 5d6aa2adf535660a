// diffscope: writing the outputs. Benchmark drivers poll for the perf dump while the program
// runs, so a reader must see either the old file or the complete new one, never a truncated
// one, and a failed write must leave no temporary file behind. POSIX only (the collector
// targets Linux). What is at the path decides how it is written:
//   - nothing, or a regular file: a temp file in the same directory, fsync, rename(2) over it;
//   - a symlink: the same at the link's final target; the link stays (a dangling link's target
//     is created). A link that lives in /proc (/dev/stdout -> /proc/self/fd/1) stands for an
//     open file, which is written directly;
//   - a character device or a FIFO (/dev/null, /dev/stdout on a pipe): written directly, no
//     temp, no rename; a FIFO that no process reads is an error, never a wait;
//   - a directory, a block device or a socket: an error.
// Temp names are ".<name, cut short>.diffscope-tmp.<pid>.<n>", never longer than the file
// system allows, so any valid name can be written; each write removes the temp files of
// writers that are gone (killed mid-write) from its directory.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace diffscope::detail {

/// What names our temp files: ".<prefix>" + temp_file_marker + "<pid>.<n>".
inline constexpr std::string_view temp_file_marker = ".diffscope-tmp.";

/// Process-wide counter that makes temp names unique across threads of one process
/// (the pid makes them unique across processes).
inline std::uint64_t next_temp_file_number() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

inline std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

/// The temp file name for the file `name` written by process `pid`: the marker, pid and
/// counter after as much of the name as fits in `name_max` bytes (cut before a UTF-8
/// continuation byte, so the prefix stays readable).
inline std::string temp_file_name(const std::string& name, long pid, std::uint64_t n,
                                  std::size_t name_max = NAME_MAX) {
  const std::string tail =
      std::string(temp_file_marker) + std::to_string(pid) + "." + std::to_string(n);
  const std::size_t room = name_max > tail.size() + 1 ? name_max - tail.size() - 1 : 0;
  std::size_t keep = name.size();
  if (keep > room) {
    keep = room;
    while (keep > 0 && (static_cast<unsigned char>(name[keep]) & 0xC0) == 0x80) --keep;
  }
  return "." + name.substr(0, keep) + tail;
}

/// The writer's pid in one of our temp file names; -1 for any other name.
inline long temp_file_pid(std::string_view name) noexcept {
  if (name.empty() || name[0] != '.') return -1;
  const std::size_t at = name.rfind(temp_file_marker);
  if (at == std::string_view::npos) return -1;
  const std::string_view rest = name.substr(at + temp_file_marker.size());
  const std::size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 10 || dot + 1 == rest.size()) return -1;
  long pid = 0;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if (i == dot) continue;
    if (c < '0' || c > '9') return -1;
    if (i < dot) pid = pid * 10 + (c - '0');
  }
  return pid > 0 && pid <= INT_MAX ? pid : -1;
}

/// Whether the entry `name` of `dir_fd` is of `type` (S_IFREG, S_IFDIR; never a link), this
/// user's, and left by process `pid`, which no longer exists (kill(pid, 0) says ESRCH). What
/// the temp-file sweep here and `diffscope run`'s sweep of its private directories share.
inline bool left_by_gone_process(int dir_fd, const char* name, long pid, mode_t type) noexcept {
  if (pid <= 0 || pid == static_cast<long>(::getpid())) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) return false;
  struct stat st {};
  return ::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == type &&
         st.st_uid == ::geteuid();
}

/// Removes from `dir` the temp files of writers that are gone: our marker, owned by this
/// user, the pid no longer alive (kill(pid, 0) says ESRCH) and the writer's lock free (a
/// writer in another pid namespace holds it though its pid is unknown here). A live
/// process's temp file is never touched. Best effort, never throws.
inline void remove_stale_temp_files(const std::string& dir) noexcept {
  DIR* d = ::opendir(dir.empty() ? "." : dir.c_str());
  if (d == nullptr) return;
  const int dir_fd = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (!left_by_gone_process(dir_fd, e->d_name, temp_file_pid(e->d_name), S_IFREG)) continue;
    const int fd = ::openat(dir_fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      continue;
    }
    ::unlinkat(dir_fd, e->d_name, 0);
    if (fd >= 0) ::close(fd);
  }
  ::closedir(d);
}

namespace atomic_file_detail {

inline constexpr long proc_super_magic = 0x9fa0;

/// Whether `dir` is on procfs: a link there (/proc/self/fd/1) names an open file, not a path.
inline bool on_procfs(const std::string& dir) noexcept {
  struct statfs fs {};
  return ::statfs(dir.empty() ? "." : dir.c_str(), &fs) == 0 &&
         static_cast<long>(fs.f_type) == proc_super_magic;
}

inline std::string type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/// Where and how a path is written.
struct target {
  std::string path;     ///< the path to open or rename over (symlinks followed)
  bool exists = false;  ///< something is at `path`
  mode_t mode = 0;      ///< its type when it exists
  bool direct = false;  ///< written in place: a device, a FIFO, a file open in /proc
  std::string error;    ///< why the path cannot be written ("" = it can)
};

/// Follows `path`'s symlinks to what is written: the last link's target, or the link itself
/// when it lives in /proc.
inline target resolve(const std::string& path) {
  namespace fs = std::filesystem;
  target t;
  t.path = path;
  for (int hops = 0;; ++hops) {
    struct stat st {};
    if (::lstat(t.path.c_str(), &st) != 0) {
      const int err = errno;
      // Nothing there, or a parent is missing or not a directory: the parent step says which.
      if (err != ENOENT && err != ENOTDIR) t.error = errno_text(err);
      return t;
    }
    if (!S_ISLNK(st.st_mode)) {
      t.exists = true;
      t.mode = st.st_mode;
      t.direct = S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode);
      return t;
    }
    if (hops >= 40) {
      t.error = errno_text(ELOOP);
      return t;
    }
    const fs::path link(t.path);
    if (on_procfs(link.parent_path().string())) {
      if (::stat(t.path.c_str(), &st) != 0) {
        t.error = errno_text(errno);
        return t;
      }
      t.exists = true;
      t.mode = st.st_mode;
      t.direct = S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode);
      return t;
    }
    std::string to(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : PATH_MAX) + 1, '\0');
    const ssize_t n = ::readlink(t.path.c_str(), to.data(), to.size());
    if (n < 0 || static_cast<std::size_t>(n) >= to.size()) {
      t.error = n < 0 ? errno_text(errno) : "the link changed while it was read";
      return t;
    }
    to.resize(static_cast<std::size_t>(n));
    const fs::path next(to);
    t.path = next.is_absolute() ? to : (link.parent_path() / next).string();
  }
}

/// Why `t` cannot be written at all; "" when it can be tried.
inline std::string refusal(const target& t) {
  if (!t.error.empty()) return t.error;
  if (t.exists && S_ISDIR(t.mode)) return "is a directory";
  if (t.exists && !t.direct && !S_ISREG(t.mode))
    return "is not a regular file (" + type_name(t.mode) + ")";
  return "";
}

/// Writes all of `content` to `fd`; 0 or the errno of the failed write. SIGPIPE is held back
/// meanwhile, so a FIFO whose reader left is an error (EPIPE), not the death of the process.
inline int write_all(int fd, std::string_view content) noexcept {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  const bool masked = ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old) == 0;
  int err = 0;
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (masked) {
    sigset_t pending;
    if (err == EPIPE && !sigismember(&old, SIGPIPE) && ::sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE)) {
      const timespec zero{};
      ::sigtimedwait(&pipe_set, nullptr, &zero);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  return err;
}

}  // namespace atomic_file_detail

/// Writes `content` to `path` as the file comment above says: atomically over a regular file
/// or nothing (temp file in the same directory, flushed to disk, renamed over the target),
/// directly into a character device or FIFO, through symlinks to their target; a directory,
/// block device or socket is refused. Missing parent directories are created unless
/// `create_parents` is false: then the directory must exist, and a removed one is never
/// recreated. Returns std::nullopt on success, else a message naming the path and the cause;
/// on failure no temp file is left and an existing regular `path` is untouched. Never
/// throws (an empty message means even the message could not be allocated). A new file gets
/// mode 0666 less the umask.
inline std::optional<std::string> write_file_atomically(const std::string& path,
                                                        std::string_view content,
                                                        bool create_parents = true) noexcept {
  namespace fs = std::filesystem;
  namespace afd = atomic_file_detail;
  std::string temp, shown;
  int fd = -1;
  const auto fail = [&](const std::string& what, int err) -> std::optional<std::string> {
    if (fd >= 0) ::close(fd);
    if (!temp.empty()) ::unlink(temp.c_str());
    std::string message =
        "cannot write " + (shown.empty() ? "'" + path + "'" : shown) + ": " + what;
    if (err != 0) message += ": " + errno_text(err);
    return message;
  };
  try {
    if (path.empty()) return std::string("cannot write '': empty path");
    if (!fs::path(path).has_filename()) return fail("path names a directory", 0);
    const afd::target t = afd::resolve(path);
    shown = "'" + path + "'" + (t.path != path ? " (a link to '" + t.path + "')" : "");
    if (const std::string why = afd::refusal(t); !why.empty()) return fail(why, 0);

    if (t.direct) {
      // No temp and no rename: the node stays what it is. Opened without waiting, so a FIFO
      // without a reader fails (ENXIO) instead of hanging; writes then block as usual.
      const bool fifo = S_ISFIFO(t.mode);
      fd = ::open(t.path.c_str(),
                  O_WRONLY | O_NOCTTY | O_CLOEXEC | (S_ISREG(t.mode) ? O_APPEND : O_NONBLOCK));
      if (fd < 0) {
        const int err = errno;
        if (fifo && err == ENXIO) return fail("is a FIFO that no process is reading", 0);
        return fail("cannot open", err);
      }
      const int flags = ::fcntl(fd, F_GETFL);
      if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      if (const int err = afd::write_all(fd, content)) return fail("write failed", err);
      const int fd_to_close = fd;
      fd = -1;
      if (::close(fd_to_close) != 0 && errno != EINTR) return fail("close failed", errno);
      return std::nullopt;
    }

    const fs::path target(t.path);
    const fs::path dir = target.parent_path();
    if (!dir.empty()) {
      if (create_parents) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) return fail("cannot create directory '" + dir.string() + "': " + ec.message(), 0);
      } else {
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
          return fail("directory '" + dir.string() + "' does not exist (not created)", 0);
      }
    }
    const std::string dir_name = dir.empty() ? std::string(".") : dir.string();
    remove_stale_temp_files(dir_name);
    const long name_max = ::pathconf(dir_name.c_str(), _PC_NAME_MAX);
    const std::size_t limit =
        name_max > 0 && name_max < NAME_MAX ? static_cast<std::size_t>(name_max) : NAME_MAX;
    temp = (dir / temp_file_name(target.filename().string(), static_cast<long>(::getpid()),
                                 next_temp_file_number(), limit))
               .string();
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int err = errno;
      temp.clear();  // not created: nothing to remove, and never remove someone else's file
      return fail("cannot create temporary file", err);
    }
    // Held until the close: tells a sweeper in another pid namespace that we are alive.
    ::flock(fd, LOCK_EX | LOCK_NB);
    if (const int err = afd::write_all(fd, content)) return fail("write failed", err);
    // EINVAL: the file system cannot sync (some pseudo and network file systems); the
    // rename below is still atomic for readers.
    if (::fsync(fd) != 0 && errno != EINVAL) return fail("fsync failed", errno);
    const int fd_to_close = fd;
    fd = -1;
    if (::close(fd_to_close) != 0) return fail("close failed", errno);
    if (::rename(temp.c_str(), t.path.c_str()) != 0) return fail("rename failed", errno);
    temp.clear();
    // Make the rename itself durable; best effort, the file is already in place.
    const int dir_fd = ::open(dir_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
    return std::nullopt;
  } catch (const std::exception& e) {
    try {
      return fail(e.what(), 0);
    } catch (...) {
    }
  } catch (...) {
  }
  // Only reached when even the message could not be allocated: report failure with an
  // empty message rather than throw from here.
  if (fd >= 0) ::close(fd);
  if (!temp.empty()) ::unlink(temp.c_str());
  return std::optional<std::string>(std::in_place);
}

/// What write_file_atomically would refuse at `path` before writing anything: a directory,
/// block device or socket there, a name too long, a symlink loop. For a program that writes
/// its output much later (at exit), to say so at once. std::nullopt when nothing is wrong
/// yet: the write itself can still fail (a full disk, a FIFO that nobody reads).
inline std::optional<std::string> check_output_path(const std::string& path) noexcept {
  try {
    if (path.empty()) return std::string("'': empty path");
    if (!std::filesystem::path(path).has_filename()) return "'" + path + "': names a directory";
    const atomic_file_detail::target t = atomic_file_detail::resolve(path);
    const std::string why = atomic_file_detail::refusal(t);
    if (why.empty()) return std::nullopt;
    return "'" + path + "'" + (t.path != path ? " (a link to '" + t.path + "')" : "") + ": " + why;
  } catch (...) {
  }
  return std::nullopt;  // out of memory: the write will say what is wrong
}

/// Builds a file's content with `make()` and writes it with write_file_atomically (same
/// `create_parents`). Never throws: a failure while building (out of memory) or writing comes
/// back as the error message, like write_file_atomically's own errors; std::nullopt on
/// success.
template <class Make>
std::optional<std::string> write_generated_file(const std::string& path, Make&& make,
                                                bool create_parents = true) noexcept {
  try {
    return write_file_atomically(path, make(), create_parents);
  } catch (const std::exception& e) {
    try {
      return "cannot write '" + path + "': " + e.what();
    } catch (...) {
    }
  } catch (...) {
  }
  return std::optional<std::string>(std::in_place);  // no memory left even for a message
}

}  // namespace diffscope::detail
