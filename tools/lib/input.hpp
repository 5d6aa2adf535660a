// How the readers get their bytes (docs/outputs.md, "Reading inputs"): the limits, a path opened
// once ("-" = stdin, FIFOs work, a directory refused), gzip sniffed from the bytes already read
// and inflated on the fly, an optional size limit; the fuzz targets read memory the same way.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../cli.hpp"

namespace diffscope::cli {

/// The input rules every reader follows (docs/outputs.md, "Reading inputs"). A path is opened
/// once: "-" is stdin, FIFOs and /dev/stdin work, a directory is refused. A dump is read whole,
/// up to max_dump_bytes (uncompressed) and max_dump_values JSON values (what its parsed form
/// costs in memory grows with the values, not the bytes); traces are streamed. JSON nested
/// deeper than max_json_depth containers is refused before anything recursive touches it.
/// One UTF-8 byte-order mark at the start of the (uncompressed) content is skipped.
#ifndef DIFFSCOPE_MAX_DUMP_BYTES
#define DIFFSCOPE_MAX_DUMP_BYTES (64ull << 20)
#endif
inline constexpr std::uint64_t max_dump_bytes = DIFFSCOPE_MAX_DUMP_BYTES;
inline constexpr std::uint64_t max_dump_values = 4u << 20;
inline constexpr std::size_t max_json_depth = 256;
inline constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

/// How messages name an input: "stdin" for "-", else the path as given.
inline std::string input_name(const std::string& path) {
  return path == "-" ? "stdin" : path;
}

/// "64 MiB", "256 KiB" or "1000 bytes".
inline std::string size_text(std::uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

/// The message of an input above its size limit; `what` says what kind of input it is.
inline std::string too_large(const std::string& name, std::uint64_t limit, const char* what) {
  return name + ": larger than " + size_text(limit) + ", the limit for " + what;
}

/// An open input: fd 0 for "-" (not closed), else the path opened read-only.
class input_file {
 public:
  explicit input_file(const std::string& path) : name_(input_name(path)) {
    if (path.empty()) throw failure(exit_usage, "empty file name");
    if (path != "-") {
      do fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      while (fd_ < 0 && errno == EINTR);
      if (fd_ < 0)
        throw failure(exit_usage, name_ + ": cannot open (" + std::strerror(errno) + ")");
      owned_ = true;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int e = errno;
      close();
      throw failure(exit_usage, name_ + ": cannot open (" + std::strerror(e) + ")");
    }
    if (S_ISDIR(st.st_mode)) {
      close();
      throw failure(exit_usage, name_ + ": is a directory");
    }
    if (S_ISREG(st.st_mode)) size_ = static_cast<std::int64_t>(st.st_size);
  }
  input_file(const input_file&) = delete;
  input_file& operator=(const input_file&) = delete;
  ~input_file() { close(); }

  const std::string& name() const noexcept { return name_; }
  /// The size of a regular file, -1 for a pipe, FIFO or device (read until the end).
  std::int64_t size() const noexcept { return size_; }

  /// Up to `n` bytes into `dst`; 0 at the end. Throws failure(exit_usage) on a read error.
  std::size_t read(char* dst, std::size_t n) {
    for (;;) {
      const ssize_t r = ::read(fd_, dst, n);
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR)
        throw failure(exit_usage, name_ + ": read error (" + std::strerror(errno) + ")");
    }
  }

 private:
  void close() noexcept {
    if (owned_ && fd_ >= 0) ::close(fd_);
    owned_ = false;
    fd_ = -1;
  }

  std::string name_;
  int fd_ = 0;
  bool owned_ = false;
  std::int64_t size_ = -1;
};

/// The bytes of a file as they are (no gzip, no BOM handling), at most `max_bytes` of them
/// (`what` names the kind of input in the message). Throws failure(exit_usage) naming it.
inline std::string read_file(const std::string& path, std::uint64_t max_bytes = ~std::uint64_t{0},
                             const char* what = "this input") {
  input_file in(path);
  if (in.size() >= 0 && static_cast<std::uint64_t>(in.size()) > max_bytes)
    throw failure(exit_usage, too_large(in.name(), max_bytes, what));
  std::string out;
  if (in.size() > 0) out.reserve(static_cast<std::size_t>(in.size()));
  char buf[1 << 16];
  for (;;) {
    const std::size_t n = in.read(buf, sizeof buf);
    if (n == 0) return out;
    if (out.size() + n > max_bytes)
      throw failure(exit_usage, too_large(in.name(), max_bytes, what));
    out.append(buf, n);
  }
}

inline constexpr std::size_t input_read_buffer = 1u << 20;
inline constexpr std::uint64_t no_size_limit = ~std::uint64_t{0};

/// Uncompressed bytes of one input, in chunks. Throws failure(exit_usage, "<name>: ...") on
/// every problem: cannot open, a directory, a read error, corrupt or truncated gzip, more
/// than `max_bytes` (uncompressed; `what` names the kind of input in that message).
class byte_source {
 public:
  explicit byte_source(const std::string& path, std::uint64_t max_bytes = no_size_limit,
                       const char* what = "this input")
      : file_(std::make_unique<input_file>(path)),
        name_(file_->name()),
        max_bytes_(max_bytes),
        what_(what) {
    start();
  }
  /// Reads `data` (kept by the caller while this lives) as if it were a file named `name`.
  byte_source(std::string_view data, std::string name, std::uint64_t max_bytes = no_size_limit,
              const char* what = "this input")
      : memory_(data), name_(std::move(name)), max_bytes_(max_bytes), what_(what) {
    start();
  }
  byte_source(const byte_source&) = delete;
  byte_source& operator=(const byte_source&) = delete;
  ~byte_source() {
    if (inflating_) inflateEnd(&zs_);
  }

  bool gzip() const noexcept { return gzip_; }
  /// Uncompressed bytes consumed so far.
  std::uint64_t offset() const noexcept { return consumed_ + pos_; }
  const std::string& path() const noexcept { return name_; }

  /// Next byte, or -1 at the end of the data.
  int get() {
    if (pos_ == end_ && !refill()) return -1;
    return static_cast<unsigned char>(buf_[pos_++]);
  }
  int peek() {
    if (pos_ == end_ && !refill()) return -1;
    return static_cast<unsigned char>(buf_[pos_]);
  }
  /// The unread part of the buffer (refilled when empty); empty at the end of the data.
  std::string_view window() {
    if (pos_ == end_ && !refill()) return {};
    return std::string_view(buf_.data() + pos_, end_ - pos_);
  }
  void advance(std::size_t n) noexcept { pos_ += n; }

  /// From now on, also appends every uncompressed byte read (the current buffer included) to
  /// `*dst` until it would pass `max` bytes: then `*dst` is emptied and capture_overflowed()
  /// says so. stop_capture() ends it early (its memory is freed).
  void capture(std::string* dst, std::uint64_t max) {
    capture_ = dst;
    capture_max_ = max;
    capture_overflow_ = false;
    captured(std::string_view(buf_.data(), end_));
  }
  void stop_capture() {
    if (capture_ != nullptr) std::string().swap(*capture_);
    capture_ = nullptr;
  }
  bool capture_overflowed() const noexcept { return capture_overflow_; }

 private:
  // Raw bytes from the file or the memory block.
  std::size_t read_raw(char* dst, std::size_t n) {
    if (file_) return file_->read(dst, n);
    const std::size_t k = std::min(n, memory_.size() - memory_pos_);
    std::memcpy(dst, memory_.data() + memory_pos_, k);
    memory_pos_ += k;
    return k;
  }

  // Makes at least `k` raw bytes available at in_[in_pos_] unless the input ends first.
  void need_raw(std::size_t k) {
    if (in_end_ - in_pos_ >= k || raw_eof_) return;
    std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
    in_end_ -= in_pos_;
    in_pos_ = 0;
    while (in_end_ < k && !raw_eof_) {
      const std::size_t n = read_raw(in_.data() + in_end_, in_.size() - in_end_);
      if (n == 0) raw_eof_ = true;
      in_end_ += n;
    }
  }

  void start() {
    // A small input gets small buffers (the fuzz targets read many); a pipe gets the most.
    const std::int64_t known = file_ ? file_->size() : static_cast<std::int64_t>(memory_.size());
    const std::size_t raw = known < 0 ? input_read_buffer
                                      : std::clamp<std::size_t>(static_cast<std::size_t>(known) + 1,
                                                                4096, input_read_buffer);
    in_.allocate(raw);
    need_raw(2);  // a pipe may hand over one byte at a time
    gzip_ = in_end_ >= 2 && static_cast<unsigned char>(in_[0]) == 0x1f &&
            static_cast<unsigned char>(in_[1]) == 0x8b;
    // A plain regular file above the limit is refused unread; a gzip file's uncompressed
    // size is known only by inflating it.
    if (file_ && !gzip_ && file_->size() >= 0 &&
        static_cast<std::uint64_t>(file_->size()) > max_bytes_)
      throw failure(exit_usage, too_large(name_, max_bytes_, what_));
    if (!gzip_) {
      buf_.allocate(raw);
      return;
    }
    buf_.allocate(input_read_buffer);
    zs_ = z_stream{};
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK)
      throw failure(exit_usage, name_ + ": cannot inflate (out of memory)");
    inflating_ = true;
  }

  bool refill() {
    if (eof_) return false;
    consumed_ += end_;
    pos_ = end_ = 0;
    if (gzip_) {
      inflate_some();
    } else if (in_pos_ < in_end_) {  // the bytes read for the sniff
      std::memcpy(buf_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
      end_ = in_end_ - in_pos_;
      in_pos_ = in_end_ = 0;
    } else if (!raw_eof_) {
      end_ = read_raw(buf_.data(), buf_.size());
      if (end_ == 0) raw_eof_ = true;
    }
    if (end_ == 0) {
      eof_ = true;
      return false;
    }
    if (consumed_ + end_ > max_bytes_)
      throw failure(exit_usage, too_large(name_, max_bytes_, what_));
    captured(std::string_view(buf_.data(), end_));
    return true;
  }

  // Inflates into buf_ until it holds something or the input ends. Concatenated gzip members
  // are read one after another (as gzip -d does); bytes after the last member that do not
  // start another member are ignored, as zlib's gzread ignores them.
  void inflate_some() {
    while (end_ == 0) {
      if (member_done_) {
        need_raw(2);
        if (in_end_ - in_pos_ < 2 || static_cast<unsigned char>(in_[in_pos_]) != 0x1f ||
            static_cast<unsigned char>(in_[in_pos_ + 1]) != 0x8b)
          return;
        inflateReset(&zs_);
        member_done_ = false;
      }
      need_raw(1);
      if (in_pos_ == in_end_) throw failure(exit_usage, name_ + ": gzip data is truncated");
      zs_.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      zs_.avail_in = static_cast<uInt>(in_end_ - in_pos_);
      zs_.next_out = reinterpret_cast<Bytef*>(buf_.data());
      zs_.avail_out = static_cast<uInt>(buf_.size());
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      in_pos_ = in_end_ - zs_.avail_in;
      end_ = buf_.size() - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        throw failure(exit_usage, name_ + ": corrupt gzip data (" +
                                      (zs_.msg != nullptr ? zs_.msg : "inflate failed") + ")");
      }
    }
  }

  void captured(std::string_view bytes) {
    if (capture_ == nullptr || bytes.empty()) return;
    if (capture_->size() + bytes.size() > capture_max_) {
      stop_capture();
      capture_overflow_ = true;
      return;
    }
    capture_->append(bytes);
  }

  std::unique_ptr<input_file> file_;
  std::string_view memory_;
  std::size_t memory_pos_ = 0;
  std::string name_;
  std::uint64_t max_bytes_;
  const char* what_;
  // Uninitialised bytes (a vector would clear them for every input).
  struct buffer {
    std::unique_ptr<char[]> bytes;
    std::size_t n = 0;
    void allocate(std::size_t size) {
      bytes.reset(new char[size]);
      n = size;
    }
    char* data() const noexcept { return bytes.get(); }
    std::size_t size() const noexcept { return n; }
    char operator[](std::size_t i) const noexcept { return bytes[i]; }
  };

  buffer in_, buf_;  // raw bytes; uncompressed bytes
  std::size_t in_pos_ = 0, in_end_ = 0;
  std::size_t pos_ = 0, end_ = 0;  // the unread part of buf_
  std::uint64_t consumed_ = 0;     // uncompressed bytes before buf_
  bool gzip_ = false, inflating_ = false, member_done_ = false;
  bool raw_eof_ = false, eof_ = false;
  z_stream zs_{};
  std::string* capture_ = nullptr;
  std::uint64_t capture_max_ = 0;
  bool capture_overflow_ = false;
};

}  // namespace diffscope::cli
