// Atomic file replacement: readers never see a partial file, failures leave no temp file.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <diffscope/util/atomic_file.hpp>

namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("diffscope_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::string> write(const std::string& path, std::string_view content,
                                 bool create_parents = true) {
  return diffscope::detail::write_file_atomically(path, content, create_parents);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

mode_t type_of(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? (st.st_mode & S_IFMT) : 0;
}

bool contains(const std::optional<std::string>& message, const std::string& part) {
  return message.has_value() && message->find(part) != std::string::npos;
}

/// Runs `fn` in a forked child whose exit code is fn's return value; -1 when it has not ended
/// after `timeout_s` (it is killed then), so a writer that hangs fails the test instead of
/// stopping it.
template <class F>
int in_child(F fn, int timeout_s = 10) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 100;
    try {
      code = fn();
    } catch (...) {
    }
    ::_exit(code);
  }
  for (int i = 0; i < timeout_s * 100; ++i) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    ::usleep(10000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

/// A pid that no process has: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

/// A character device node to write to: the system's own, which only root could replace;
/// as root a private one made with mknod, so a writer that wrongly replaced it cannot break
/// the machine ("" when root cannot make one: the test is not run then).
std::string device_node(const fs::path& dir, const char* system_path, unsigned major,
                        unsigned minor) {
  if (::geteuid() != 0) return system_path;
  const fs::path p = dir / fs::path(system_path).filename();
  if (::mknod(p.c_str(), S_IFCHR | 0666, makedev(major, minor)) == 0) {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);  // fails on a nodev mount
    if (fd >= 0) {
      ::close(fd);
      return p.string();
    }
    ::unlink(p.c_str());
  }
  return "";
}

// Version n: a header with the version and total length, a body of varying size, a trailer.
// A reader can tell a complete version from a torn or truncated one.
std::string version_text(int n) {
  const std::size_t body = 1000 + static_cast<std::size_t>(n % 7) * 40000;
  std::string b(body, static_cast<char>('a' + n % 26));
  std::string tail = "\nEND " + std::to_string(n) + "\n";
  std::string head = "BEGIN " + std::to_string(n) + " ";
  const std::size_t total_guess = head.size() + 12 + 1 + b.size() + tail.size();
  char len[16];
  std::snprintf(len, sizeof len, "%012zu", total_guess);
  return head + len + "\n" + b + tail;
}

bool is_complete_version(const std::string& s) {
  int n = 0;
  std::size_t len = 0;
  if (std::sscanf(s.c_str(), "BEGIN %d %zu", &n, &len) != 2) return false;
  return s.size() == len && s == version_text(n);
}

}  // namespace

TEST_SUITE("atomic_file") {
  TEST_CASE(
      "a reader polling the path never sees a partial file while it is rewritten 200 "
      "times") {
    const fs::path dir = fresh_dir("atomic_poll");
    const std::string path = (dir / "dump.json").string();
    REQUIRE_FALSE(diffscope::detail::write_file_atomically(path, version_text(0)));

    std::atomic<bool> done{false};
    std::atomic<int> reads{0}, bad{0}, missing{0};
    std::thread reader([&] {
      while (!done.load()) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
          ++missing;  // after the first write the path must always exist
          continue;
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        ++reads;
        if (!is_complete_version(ss.str())) ++bad;
      }
    });
    int failures = 0;
    for (int i = 1; i <= 200; ++i) {
      if (diffscope::detail::write_file_atomically(path, version_text(i))) ++failures;
    }
    done = true;
    reader.join();
    CHECK(failures == 0);
    CHECK(bad.load() == 0);
    CHECK(missing.load() == 0);
    CHECK(reads.load() > 0);
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == version_text(200));
    CHECK(entries(dir) == std::vector<std::string>{"dump.json"});  // no temp file left
    MESSAGE("reader saw " << reads.load() << " complete files");
    fs::remove_all(dir);
  }

  TEST_CASE("concurrent writers from several threads leave one complete file and no temp files") {
    const fs::path dir = fresh_dir("atomic_writers");
    const std::string path = (dir / "out.json").string();
    std::vector<std::thread> writers;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          if (diffscope::detail::write_file_atomically(path, version_text(t * 100 + i))) ++failures;
        }
      });
    }
    for (auto& w : writers) w.join();
    CHECK(failures.load() == 0);
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    CHECK(is_complete_version(ss.str()));
    CHECK(entries(dir) == std::vector<std::string>{"out.json"});
    fs::remove_all(dir);
  }

  TEST_CASE("missing parent directories are created") {
    const fs::path dir = fresh_dir("atomic_parents");
    const fs::path path = dir / "a" / "b" / "c.json";
    CHECK_FALSE(diffscope::detail::write_file_atomically(path.string(), "{}\n"));
    CHECK(fs::file_size(path) == 3);
    fs::remove_all(dir);
  }

  TEST_CASE("a relative path in the current directory works") {
    const fs::path dir = fresh_dir("atomic_relative");
    const fs::path old = fs::current_path();
    fs::current_path(dir);
    CHECK_FALSE(diffscope::detail::write_file_atomically("rel.json", "[]"));
    fs::current_path(old);
    CHECK(fs::file_size(dir / "rel.json") == 2);
    CHECK(entries(dir) == std::vector<std::string>{"rel.json"});
    fs::remove_all(dir);
  }

  TEST_CASE("a directory at the path is an error naming it, and nothing is written") {
    const fs::path dir = fresh_dir("atomic_dir_target");
    fs::create_directories(dir / "target.json" / "inner");
    SUBCASE("non-empty directory") {
      const auto err = write((dir / "target.json").string(), "x");
      REQUIRE(err.has_value());
      CHECK(err->find("target.json") != std::string::npos);
      CHECK(err->find("is a directory") != std::string::npos);
    }
    SUBCASE("empty directory (rename(2) would replace it)") {
      const auto err = write((dir / "target.json" / "inner").string(), "x");
      REQUIRE(err.has_value());
      CHECK(err->find("is a directory") != std::string::npos);
    }
    CHECK(entries(dir) == std::vector<std::string>{"target.json"});
    CHECK(entries(dir / "target.json") == std::vector<std::string>{"inner"});
    CHECK(fs::is_directory(dir / "target.json" / "inner"));  // untouched
    fs::remove_all(dir);
  }

  TEST_CASE("an unwritable directory gives an error and leaves no temp file") {
    const fs::path dir = fresh_dir("atomic_unwritable");
    SUBCASE("parent path runs through a regular file") {
      std::ofstream(dir / "plain") << "x";
      const auto err = diffscope::detail::write_file_atomically(
          (dir / "plain" / "sub" / "d.json").string(), "x");
      REQUIRE(err.has_value());
      CHECK(err->find("cannot create directory") != std::string::npos);
      CHECK(entries(dir) == std::vector<std::string>{"plain"});
    }
    SUBCASE("read-only directory") {
      const fs::path ro = dir / "ro";
      fs::create_directories(ro);
      fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                              fs::perms::group_exec | fs::perms::others_read |
                              fs::perms::others_exec);
      // Root ignores permission bits: the write runs as nobody then.
      const int code = in_child([&] {
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 9;
        const auto err = write((ro / "d.json").string(), "x");
        if (!err) return 3;
        if (err->find("d.json") == std::string::npos) return 4;
        return err->find("cannot create temporary file") != std::string::npos ? 0 : 5;
      });
      CHECK(code == 0);
      CHECK(entries(ro).empty());
      fs::permissions(ro, fs::perms::owner_all);
    }
    SUBCASE("read-only file system") {
      // /proc is writable by nobody for new files, root included.
      const auto err = diffscope::detail::write_file_atomically("/proc/diffscope_test.json", "x");
      REQUIRE(err.has_value());
      CHECK(err->find("/proc/diffscope_test.json") != std::string::npos);
    }
    SUBCASE("empty path") {
      CHECK(diffscope::detail::write_file_atomically("", "x").has_value());
    }
    fs::remove_all(dir);
  }

  TEST_CASE("an existing file is replaced only when the write succeeds") {
    const fs::path dir = fresh_dir("atomic_replace");
    const std::string path = (dir / "f.json").string();
    CHECK_FALSE(diffscope::detail::write_file_atomically(path, "old"));
    CHECK_FALSE(diffscope::detail::write_file_atomically(path, "new content"));
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    CHECK(s == "new content");
    fs::remove_all(dir);
  }
  TEST_CASE("a regular file is replaced by a rename (a new inode), no temp file left") {
    const fs::path dir = fresh_dir("atomic_regular");
    const std::string path = (dir / "f.json").string();
    REQUIRE_FALSE(write(path, "old"));
    struct stat before {};
    REQUIRE(::stat(path.c_str(), &before) == 0);
    REQUIRE_FALSE(write(path, "new"));
    struct stat after {};
    REQUIRE(::stat(path.c_str(), &after) == 0);
    CHECK(before.st_ino != after.st_ino);
    CHECK(S_ISREG(after.st_mode));
    CHECK(slurp(path) == "new");
    CHECK(entries(dir) == std::vector<std::string>{"f.json"});
    fs::remove_all(dir);
  }

  TEST_CASE("a symlink chain is written through: the links stay, the final target is replaced") {
    const fs::path dir = fresh_dir("atomic_symlink");
    fs::create_directories(dir / "sub");
    std::ofstream(dir / "sub" / "real.json") << "old";
    fs::create_symlink("link2", dir / "link1");          // relative to the link's directory
    fs::create_symlink("sub/real.json", dir / "link2");  // and again
    const auto err = write((dir / "link1").string(), "new");
    CHECK_FALSE(err);
    CHECK(fs::is_symlink(dir / "link1"));
    CHECK(fs::is_symlink(dir / "link2"));
    CHECK(fs::read_symlink(dir / "link1") == "link2");
    CHECK(slurp(dir / "sub" / "real.json") == "new");
    CHECK(entries(dir) == std::vector<std::string>{"link1", "link2", "sub"});
    CHECK(entries(dir / "sub") == std::vector<std::string>{"real.json"});  // temp was there
    fs::remove_all(dir);
  }

  TEST_CASE("a dangling symlink: its target is created and the link stays") {
    const fs::path dir = fresh_dir("atomic_dangling");
    fs::create_symlink("out/created.json", dir / "link.json");
    CHECK_FALSE(write((dir / "link.json").string(), "x"));
    CHECK(fs::is_symlink(dir / "link.json"));
    CHECK(slurp(dir / "out" / "created.json") == "x");
    CHECK(slurp(dir / "link.json") == "x");
    // A symlink loop is an error, not a hang.
    fs::create_symlink("loop_b", dir / "loop_a");
    fs::create_symlink("loop_a", dir / "loop_b");
    CHECK(write((dir / "loop_a").string(), "x").has_value());
    CHECK(fs::is_symlink(dir / "loop_a"));
    fs::remove_all(dir);
  }

  TEST_CASE("a character device (/dev/null) is written in place and stays a device") {
    const fs::path dir = fresh_dir("atomic_null");
    const std::string null = device_node(dir, "/dev/null", 1, 3);
    if (null.empty()) {
      MESSAGE("root without mknod: not run (it would risk the system's /dev/null)");
      fs::remove_all(dir);
      return;
    }
    CHECK_FALSE(write(null, std::string(1 << 20, 'x')));
    CHECK(type_of(null) == S_IFCHR);
    // Through a symlink too: the link stays, the device stays.
    fs::create_symlink(null, dir / "to_null");
    CHECK_FALSE(write((dir / "to_null").string(), "x"));
    CHECK(fs::is_symlink(dir / "to_null"));
    CHECK(type_of(null) == S_IFCHR);
    CHECK(type_of("/dev/null") == S_IFCHR);
    fs::remove_all(dir);
  }

  TEST_CASE("/dev/full: the write error names the path and the node stays a device") {
    if (!fs::exists("/dev/full")) {
      MESSAGE("no /dev/full here: not applicable");
      return;
    }
    const fs::path dir = fresh_dir("atomic_full");
    const std::string full = device_node(dir, "/dev/full", 1, 7);
    if (full.empty()) {
      MESSAGE("root without mknod: not run (it would risk the system's /dev/full)");
      fs::remove_all(dir);
      return;
    }
    const auto err = write(full, "some bytes");
    CHECK(contains(err, full));
    CHECK(contains(err, std::strerror(ENOSPC)));
    CHECK(type_of(full) == S_IFCHR);
    CHECK(type_of("/dev/full") == S_IFCHR);
    fs::remove_all(dir);
  }

  TEST_CASE("a FIFO without a reader is an error, never a hang, and stays a FIFO") {
    const fs::path dir = fresh_dir("atomic_fifo_noreader");
    const std::string fifo = (dir / "fifo").string();
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const int code = in_child([&] {
      const auto err = write(fifo, "x");
      if (!err) return 3;
      if (err->find(fifo) == std::string::npos) return 4;
      return err->find("no process is reading") != std::string::npos ? 0 : 5;
    });
    CHECK(code == 0);  // -1: it hung
    CHECK(type_of(fifo) == S_IFIFO);
    CHECK(entries(dir) == std::vector<std::string>{"fifo"});
    fs::remove_all(dir);
  }

  TEST_CASE("a FIFO with a reader gets all the data, more than a pipe holds") {
    const fs::path dir = fresh_dir("atomic_fifo_reader");
    const std::string fifo = (dir / "fifo").string();
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const int rfd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(rfd >= 0);
    const std::string content = version_text(5);  // ~200 KB
    std::atomic<bool> written{false};
    std::string got;
    std::thread reader([&] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(rfd, buf, sizeof buf);
        if (n > 0) {
          got.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 && written.load()) {
          break;  // the writer has closed its end
        } else {
          ::usleep(1000);  // EAGAIN, or no writer yet
        }
      }
    });
    const auto err = write(fifo, content);
    written = true;
    reader.join();
    ::close(rfd);
    CHECK_FALSE(err);
    CHECK(got == content);
    CHECK(type_of(fifo) == S_IFIFO);
    CHECK(entries(dir) == std::vector<std::string>{"fifo"});
    fs::remove_all(dir);
  }

  TEST_CASE("a link in /proc (what /dev/stdout is) writes into the open file itself") {
    const fs::path dir = fresh_dir("atomic_proc");
    SUBCASE("a pipe") {
      int p[2];
      REQUIRE(::pipe(p) == 0);
      const auto err = write("/proc/self/fd/" + std::to_string(p[1]), "through the pipe\n");
      ::close(p[1]);
      CHECK_FALSE(err);
      char buf[64] = {};
      const ssize_t n = ::read(p[0], buf, sizeof buf - 1);
      ::close(p[0]);
      CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "through the pipe\n");
    }
    SUBCASE("a file opened for appending (>>): appended, the same file") {
      const fs::path log = dir / "log";
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      REQUIRE(fd >= 0);
      REQUIRE(::write(fd, "before\n", 7) == 7);
      CHECK_FALSE(write("/proc/self/fd/" + std::to_string(fd), "dump\n"));
      REQUIRE(::write(fd, "after\n", 6) == 6);
      ::close(fd);
      CHECK(slurp(log) == "before\ndump\nafter\n");
      CHECK(entries(dir) == std::vector<std::string>{"log"});
    }
    fs::remove_all(dir);
  }

  TEST_CASE("a socket at the path is an error and stays a socket") {
    const fs::path dir = fresh_dir("atomic_sock");
    const std::string path = (dir / "sock").string();
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(s >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    const auto err = write(path, "x");
    ::close(s);
    CHECK(contains(err, path));
    CHECK(contains(err, "is not a regular file"));
    CHECK(type_of(path) == S_IFSOCK);
    CHECK(entries(dir) == std::vector<std::string>{"sock"});
    fs::remove_all(dir);
  }

  TEST_CASE("the longest valid file names work and leave no temp file") {
    const fs::path dir = fresh_dir("atomic_long");
    std::string utf8;  // 2-byte characters: the temp name must not cut one in half
    for (int i = 0; i < 125; ++i) utf8 += "\xc3\xa9";
    for (const std::string& name :
         {std::string(240, 'n') + ".json", std::string(245, 'n') + ".json",
          std::string(250, 'n') + ".json", std::string(NAME_MAX, 'n'), utf8}) {
      CAPTURE(name.size());
      CHECK_FALSE(write((dir / name).string(), "{}"));
      CHECK(slurp(dir / name) == "{}");
      CHECK(entries(dir) == std::vector<std::string>{name});
      fs::remove(dir / name);
    }
    // One byte more than a name may have: the error names the cause, nothing is left.
    const auto err = write((dir / std::string(NAME_MAX + 1, 'n')).string(), "{}");
    CHECK(contains(err, std::strerror(ENAMETOOLONG)));
    CHECK(entries(dir).empty());
    // The temp name's bound holds for the largest pid and counter.
    const std::string longest =
        diffscope::detail::temp_file_name(std::string(NAME_MAX, 'n'), INT_MAX, UINT64_MAX);
    CHECK(longest.size() <= NAME_MAX);
    CHECK(longest[0] == '.');
    CHECK(diffscope::detail::temp_file_pid(longest) == INT_MAX);
    fs::remove_all(dir);
  }

  TEST_CASE("temp files of dead writers are removed by the next write; live writers' are kept") {
    const fs::path dir = fresh_dir("atomic_stale");
    namespace d = diffscope::detail;
    const pid_t dead = dead_pid();
    const pid_t live = ::fork();
    if (live == 0) {
      ::pause();
      ::_exit(0);
    }
    const std::string dead_temp = d::temp_file_name("d.json", dead, 0);
    const std::string dead_other = d::temp_file_name("other.json", dead, 3);
    const std::string own_temp = d::temp_file_name("d.json", ::getpid(), 7);
    const std::string live_temp = d::temp_file_name("d.json", live, 1);
    const std::string not_ours = ".d.json.tmp." + std::to_string(dead) + ".0";
    for (const auto& n : {dead_temp, dead_other, own_temp, live_temp, not_ours})
      std::ofstream(dir / n) << "partial";
    const auto err = write((dir / "d.json").string(), "x");
    ::kill(live, SIGKILL);
    ::waitpid(live, nullptr, 0);
    CHECK_FALSE(err);
    std::vector<std::string> want = {"d.json", own_temp, live_temp, not_ours};
    std::sort(want.begin(), want.end());
    CHECK(entries(dir) == want);
    CHECK(d::temp_file_pid(dead_temp) == dead);
    CHECK(d::temp_file_pid("d.json") == -1);
    CHECK(d::temp_file_pid(not_ours) == -1);
    fs::remove_all(dir);
  }

  TEST_CASE("create_parents=false: a missing directory is an error and is never created") {
    const fs::path dir = fresh_dir("atomic_no_parents");
    const auto err = write((dir / "gone" / "d.json").string(), "x", false);
    CHECK(contains(err, "gone"));
    CHECK(contains(err, "does not exist"));
    CHECK_FALSE(fs::exists(dir / "gone"));
    const auto generated = diffscope::detail::write_generated_file(
        (dir / "a" / "b" / "d.json").string(), [] { return std::string("x"); }, false);
    CHECK(generated.has_value());
    CHECK_FALSE(fs::exists(dir / "a"));
    // A dangling link into a missing directory: not created either.
    fs::create_symlink("missing/t.json", dir / "link.json");
    CHECK(write((dir / "link.json").string(), "x", false).has_value());
    CHECK_FALSE(fs::exists(dir / "missing"));
    // An existing directory is fine.
    CHECK_FALSE(write((dir / "d.json").string(), "x", false));
    CHECK(slurp(dir / "d.json") == "x");
    fs::remove_all(dir);
  }
  TEST_CASE("check_output_path refuses what the writer would refuse, and writes nothing") {
    const fs::path dir = fresh_dir("atomic_check");
    namespace d = diffscope::detail;
    fs::create_directories(dir / "adir");
    CHECK(contains(d::check_output_path((dir / "adir").string()), "is a directory"));
    fs::create_symlink("adir", dir / "to_dir");
    CHECK(contains(d::check_output_path((dir / "to_dir").string()), "is a directory"));
    CHECK(contains(d::check_output_path((dir / std::string(NAME_MAX + 1, 'n')).string()),
                   std::strerror(ENAMETOOLONG)));
    CHECK(d::check_output_path("").has_value());
    CHECK_FALSE(d::check_output_path((dir / "new" / "d.json").string()));
    CHECK_FALSE(d::check_output_path((dir / std::string(NAME_MAX, 'n')).string()));
    CHECK(entries(dir) == std::vector<std::string>{"adir", "to_dir"});
    fs::remove_all(dir);
  }
}
