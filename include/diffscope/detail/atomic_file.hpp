// diffscope: atomic file replacement for the outputs. Benchmark drivers poll for the perf
// dump while the program runs, so a reader must see either the old file or the complete
// new one, never a truncated one, and a failed write must leave no temporary file behind.
// POSIX only (the collector targets Linux): write a temp file in the target's directory,
// fsync it, rename(2) it over the target.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
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

/// Process-wide counter that makes temp names unique across threads of one process
/// (the pid makes them unique across processes).
inline std::uint64_t next_temp_file_number() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

inline std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

/// Writes `content` to `path` atomically: parent directories are created, the bytes go to
/// "<dir>/.<name>.tmp.<pid>.<n>", are flushed to disk, and the temp file is renamed over
/// `path`. Returns std::nullopt on success, else a message naming the path and the cause;
/// on failure no temp file is left and an existing `path` is untouched. Never throws
/// (an empty message means even the message could not be allocated). The file gets mode
/// 0666 less the umask, like any newly created file.
inline std::optional<std::string> write_file_atomically(const std::string& path,
                                                        std::string_view content) noexcept {
  namespace fs = std::filesystem;
  std::string temp;
  int fd = -1;
  const auto fail = [&](const std::string& what, int err) -> std::optional<std::string> {
    if (fd >= 0) ::close(fd);
    if (!temp.empty()) ::unlink(temp.c_str());
    std::string message = "cannot write '" + path + "': " + what;
    if (err != 0) message += ": " + errno_text(err);
    return message;
  };
  try {
    if (path.empty()) return std::string("cannot write '': empty path");
    const fs::path target(path);
    if (!target.has_filename()) return fail("path names a directory", 0);
    fs::path dir = target.parent_path();
    if (!dir.empty()) {
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) return fail("cannot create directory '" + dir.string() + "': " + ec.message(), 0);
    }
    temp = (dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                   std::to_string(next_temp_file_number())))
               .string();
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int err = errno;
      temp.clear();  // not created: nothing to remove, and never remove someone else's file
      return fail("cannot create temporary file", err);
    }
    const char* p = content.data();
    std::size_t left = content.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("write failed", errno);
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    // EINVAL: the file system cannot sync (some pseudo and network file systems); the
    // rename below is still atomic for readers.
    if (::fsync(fd) != 0 && errno != EINVAL) return fail("fsync failed", errno);
    const int fd_to_close = fd;
    fd = -1;
    if (::close(fd_to_close) != 0) return fail("close failed", errno);
    if (::rename(temp.c_str(), path.c_str()) != 0) return fail("rename failed", errno);
    temp.clear();
    // Make the rename itself durable; best effort, the file is already in place.
    const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

/// Builds a file's content with `make()` and writes it atomically. Never throws: a failure
/// while building (out of memory) or writing comes back as the error message, like
/// write_file_atomically's own errors; std::nullopt on success.
template <class Make>
std::optional<std::string> write_generated_file(const std::string& path, Make&& make) noexcept {
  try {
    return write_file_atomically(path, make());
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
