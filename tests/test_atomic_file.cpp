// Atomic file replacement: readers never see a partial file, failures leave no temp file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <diffscope/detail/atomic_file.hpp>

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
  return out;
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

  TEST_CASE(
      "a failed rename (the target is a directory) gives an error and removes the temp "
      "file") {
    const fs::path dir = fresh_dir("atomic_rename_fail");
    fs::create_directories(dir / "target.json" / "inner");
    const auto err = diffscope::detail::write_file_atomically((dir / "target.json").string(), "x");
    REQUIRE(err.has_value());
    CHECK(err->find("target.json") != std::string::npos);
    CHECK(err->find("rename failed") != std::string::npos);
    CHECK(entries(dir) == std::vector<std::string>{"target.json"});
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
    SUBCASE("directory without write permission") {
      const fs::path ro = dir / "ro";
      fs::create_directories(ro);
      fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
      if (::access(ro.c_str(), W_OK) == 0) {
        MESSAGE("running as root: permission bits do not stop writes, subcase not applicable");
      } else {
        const auto err = diffscope::detail::write_file_atomically((ro / "d.json").string(), "x");
        REQUIRE(err.has_value());
        CHECK(err->find("cannot create temporary file") != std::string::npos);
        CHECK(entries(ro).empty());
      }
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
}
