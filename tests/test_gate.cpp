// The native-backend gate (sglang/gate.hpp and the headers it includes): the streaming scanner
// on our own fixture logs and on generated text in every chunking, against a plain reference
// implementation; the generic pattern scanner and the report's UTF-8 sanitiser; the output
// watch and the collector's use of it in forked children (so the test runner's own output
// is never redirected).
#include <doctest/doctest.h>

#include <diffscope/collector.hpp>
#include <diffscope/sglang/gate.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef DIFFSCOPE_GATE_FIXTURES
#define DIFFSCOPE_GATE_FIXTURES "fixtures/gate"
#endif

namespace {

using diffscope::gate_options;
using diffscope::gate_scanner;
using diffscope::gate_signals;
using diffscope::gate_verdict;
using diffscope::verdict_kind;

/// Two patterns that are not SGLang's, for the generic scanner.
struct test_patterns {
  static constexpr diffscope::detail::pattern_tables<2> tables =
      diffscope::detail::make_pattern_tables<2>({"needle", "Haystack edge"});
};

constexpr std::size_t sig_falling = 0, sig_using = 1, sig_loaded = 2, sig_captured = 3;

gate_options bcg() {
  gate_options o;
  o.expect_bcg = true;
  return o;
}

/// Scans `text` fed in pieces of the given sizes (cycled), then finish().
gate_verdict scan(const std::string& text, std::vector<std::size_t> pieces = {},
                  gate_options o = {}) {
  gate_scanner s(o);
  if (pieces.empty()) pieces.push_back(text.size() + 1);
  std::size_t i = 0, k = 0;
  while (i < text.size()) {
    const std::size_t n = std::min(pieces[k++ % pieces.size()], text.size() - i);
    s.feed(text.data() + i, n);
    i += n;
  }
  s.finish();
  return s.verdict();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string fixture(const char* name) {
  const std::string text = read_text(std::string(DIFFSCOPE_GATE_FIXTURES) + "/" + name);
  REQUIRE_MESSAGE(!text.empty(), "fixture " << name << " missing");
  return text;
}

std::string with_case(std::string s, int how, std::mt19937& rng) {
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (how == 1) c = static_cast<char>(std::tolower(u));
    if (how == 2) c = static_cast<char>(std::toupper(u));
    if (how == 3) c = static_cast<char>((rng() & 1) ? std::toupper(u) : std::tolower(u));
  }
  return s;
}

// ---- Reference: whole text in memory, split into lines by LF and segments by CR, colour
// codes removed, lower-cased, std::string::find. Slow and obviously right.
struct reference_hit {
  std::size_t signal;
  std::uint64_t line;
  std::uint64_t column;
  bool operator==(const reference_hit& o) const {
    return signal == o.signal && line == o.line && column == o.column;
  }
};

std::string strip_ansi(const std::string& s) {
  std::string out;
  enum { none, esc, csi, nf } st = none;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (st == esc) {
      if (c == '[') {
        st = csi;
        continue;
      }
      if (c >= 0x20 && c <= 0x2f) {
        st = nf;
        continue;
      }
      st = none;
      if (c >= 0x30 && c <= 0x7e) continue;
    } else if (st == csi) {
      if (c >= 0x20 && c <= 0x3f) continue;
      st = none;
      if (c >= 0x40 && c <= 0x7e) continue;
    } else if (st == nf) {
      if (c >= 0x20 && c <= 0x2f) continue;
      st = none;
      if (c >= 0x30 && c <= 0x7e) continue;
    }
    if (c == 0x1b) {
      st = esc;
      continue;
    }
    out.push_back(ch);
  }
  return out;
}

std::vector<reference_hit> reference(const std::string& text) {
  std::vector<reference_hit> hits;
  std::set<std::size_t> seen;
  // Colour state carries across CR but not LF handling differences: strip per line with
  // the CRs still in place (a CR inside a sequence ends it, as in the scanner).
  std::uint64_t line = 1;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t nl = text.find('\n', start);
    const bool last = nl == std::string::npos;
    if (last) nl = text.size();
    const std::string stripped = strip_ansi(text.substr(start, nl - start));
    std::size_t seg = 0;
    while (seg <= stripped.size()) {
      std::size_t cr = stripped.find('\r', seg);
      if (cr == std::string::npos) cr = stripped.size();
      std::string lower = stripped.substr(seg, cr - seg);
      for (char& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      std::vector<std::pair<std::size_t, std::size_t>> found;  // position, signal
      for (std::size_t i = 0; i < gate_signals.size(); ++i) {
        std::string p = gate_signals[i].text;
        for (char& c : p)
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        const std::size_t at = lower.find(p);
        if (at != std::string::npos) found.emplace_back(at, i);
      }
      std::sort(found.begin(), found.end());
      for (auto [at, i] : found)
        if (seen.insert(i).second) hits.push_back({i, line, at + 1});
      seg = cr + 1;
    }
    if (last) break;
    ++line;
    start = nl + 1;
  }
  return hits;
}

std::vector<reference_hit> hits_of(const gate_verdict& v) {
  std::vector<reference_hit> out;
  auto add = [&](const diffscope::gate_hit& h) { out.push_back({h.signal, h.line, h.column}); };
  if (v.fallback) add(*v.fallback);
  if (v.bcg_captured) add(*v.bcg_captured);
  for (const auto& h : v.bcg_failures) add(h);
  return out;
}

// ---- Forked children ---------------------------------------------------------------------
struct child_result {
  std::string out, err;
  int status = -1;
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

/// Runs fn in a child whose fd 1 and 2 are pipes read here; the child exits with fn's value.
child_result run_child(const std::function<int()>& fn) {
  int out[2], err[2];
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::close(out[0]);
    ::close(err[0]);
    ::close(out[1]);
    ::close(err[1]);
    int code = 99;
    try {
      code = fn();
    } catch (...) {
      code = 98;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
  }
  ::close(out[1]);
  ::close(err[1]);
  child_result r;
  std::vector<char> buf(1 << 16);
  bool open[2] = {true, true};
  const int fds[2] = {out[0], err[0]};
  while (open[0] || open[1]) {
    pollfd pf[2] = {{open[0] ? fds[0] : -1, POLLIN, 0}, {open[1] ? fds[1] : -1, POLLIN, 0}};
    if (::poll(pf, 2, 10000) <= 0) break;  // a hung child fails the checks below
    for (int s = 0; s < 2; ++s) {
      if (!open[s] || pf[s].revents == 0) continue;
      const ssize_t n = ::read(fds[s], buf.data(), buf.size());
      if (n <= 0)
        open[s] = false;
      else
        (s == 0 ? r.out : r.err).append(buf.data(), static_cast<std::size_t>(n));
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

bool write_fd(int fd, const std::string& s, std::mt19937& rng) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 70000, s.size() - i);
    const ssize_t w = ::write(fd, s.data() + i, n);
    if (w <= 0) return false;
    i += static_cast<std::size_t>(w);
  }
  return true;
}

std::string all_bytes(std::size_t size, unsigned seed) {
  std::string s;
  s.reserve(size);
  for (int c = 0; c < 256; ++c) s.push_back(static_cast<char>(c));
  std::mt19937 rng(seed);
  while (s.size() < size) s.push_back(static_cast<char>(rng() & 0xff));
  return s;
}

std::string temp_dir() {
  char tmpl[] = "/tmp/diffscope_gate_XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  REQUIRE(d != nullptr);
  return d;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

TEST_SUITE("gate") {
  TEST_CASE("each fallback signal is found in any case and position, with its line and column") {
    std::mt19937 rng(7);
    for (std::size_t i : {sig_falling, sig_using, sig_loaded}) {
      for (int how = 0; how < 4; ++how) {
        const std::string sig = with_case(gate_signals[i].text, how, rng);
        const std::vector<std::pair<std::string, std::string>> around = {
            {"", ""}, {"WARNING registry.py:391: ", " for model x"}, {"x", ""}, {"", "!"}};
        for (const auto& [before, after] : around) {
          for (std::uint64_t line : {1, 2, 7}) {
            std::string text;
            for (std::uint64_t l = 1; l < line; ++l)
              text += "INFO clean line " + std::to_string(l) + "\n";
            text += before + sig + after + "\n" + "INFO after\n";
            CAPTURE(text);
            const gate_verdict v = scan(text);
            REQUIRE(v.kind == verdict_kind::fallback);
            CHECK(v.fallback->signal == i);
            CHECK(v.fallback->line == line);
            CHECK(v.fallback->column == before.size() + 1);
            CHECK(v.fallback->matched == sig);
            CHECK(v.fallback->text == before + sig + after);
            CHECK(std::string(v.code()) == "fallback");
          }
        }
      }
    }
  }

  TEST_CASE("clean output is valid, and near misses do not match") {
    const std::string text =
        "Using diffusers\nbackend\nUsing diffusers  backend\nLoaded diffuser pipeline\n"
        "Falling back to diffusers-backend\nUsing diff\x1b[0musers backendX\x01\n";
    // The last line is a match: the colour code is removed. Everything else must not be.
    const gate_verdict v = scan(text.substr(0, text.find("Using diff\x1b")));
    CHECK(v.kind == verdict_kind::valid);
    CHECK(!v.fallback);
    CHECK(v.lines == 5);
    CHECK(scan(text).kind == verdict_kind::fallback);
    CHECK(scan("Using diffusers\rbackend\n").kind == verdict_kind::valid);  // CR ends a segment
    CHECK(scan(std::string("Using diffusers\0backend\n", 24)).kind == verdict_kind::valid);
    CHECK(scan("").kind == verdict_kind::valid);
    CHECK(std::string(diffscope::verdict_code(verdict_kind::valid)) == "valid");
  }

  TEST_CASE("a signal split across reads at every offset is found") {
    for (std::size_t i = 0; i < gate_signals.size(); ++i) {
      const std::string sig = gate_signals[i].text;
      const std::string text = "first line\r\nsecond \x1b[1m" + sig + "\x1b[0m tail\r\nthird\n";
      for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        gate_scanner s;
        s.feed(text.data(), cut);
        s.feed(text.data() + cut, text.size() - cut);
        s.finish();
        const auto hits = hits_of(s.verdict());
        CAPTURE(i);
        CAPTURE(cut);
        REQUIRE(hits.size() == 1);
        CHECK(hits[0] == reference_hit{i, 2, 8});
      }
      // And one byte at a time.
      const auto v = scan(text, {1});
      REQUIRE(hits_of(v).size() == 1);
      CHECK(hits_of(v)[0] == reference_hit{i, 2, 8});
    }
  }

  TEST_CASE("colour codes inside a signal are removed, also when cut by a read") {
    const std::string text =
        "\x1b[32m[12:00:02]\x1b[0m \x1b[1;33mWARNING\x1b[0m Fall\x1b[1mi\x1b[0mng back to "
        "\x1b[38;5;196mdiffusers\x1b[m backend\x1b(B\n";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
      gate_scanner s;
      s.feed(text.data(), cut);
      s.feed(text.data() + cut, text.size() - cut);
      s.finish();
      const gate_verdict v = s.verdict();
      CAPTURE(cut);
      REQUIRE(v.kind == verdict_kind::fallback);
      CHECK(v.fallback->signal == sig_falling);
      CHECK(v.fallback->text == "[12:00:02] WARNING Falling back to diffusers backend");
      CHECK(v.fallback->column == 20);
    }
  }

  TEST_CASE("a signal inside a 50 MB line is found in bounded memory") {
    const std::size_t size = 50u * 1000 * 1000;
    std::string line(size, 'x');
    for (std::size_t i = 0; i < size; i += 97) line[i] = ' ';
    const std::string sig = "LOADED Diffusers Pipeline";
    for (std::size_t at : {std::size_t{0}, size / 2 - 3, size - sig.size()}) {
      std::string text = line;
      text.replace(at, sig.size(), sig);
      text = "before\n" + text;  // no final newline: the line ends at EOF
      gate_scanner s;
      const std::size_t heap_before = ::mallinfo2().uordblks;
      std::size_t heap_peak = 0;
      for (std::size_t i = 0; i < text.size(); i += 65536) {
        s.feed(text.data() + i, std::min<std::size_t>(65536, text.size() - i));
        heap_peak = std::max(heap_peak, ::mallinfo2().uordblks);
      }
      const gate_verdict before_finish = s.verdict();  // seen before the line ends
      s.finish();
      const gate_verdict v = s.verdict();
      CAPTURE(at);
      REQUIRE(before_finish.kind == verdict_kind::fallback);
      REQUIRE(v.kind == verdict_kind::fallback);
      CHECK(v.fallback->line == 2);
      CHECK(v.fallback->column == at + 1);
      CHECK(v.fallback->matched == sig);
      CHECK(v.fallback->text.size() <= 512);
      CHECK(v.lines == 2);
      CHECK(heap_peak - heap_before < 256 * 1024);  // not the line: a few KiB per stream
      CHECK(diffscope::verdict_text(v).find("Loaded diffusers pipeline") != std::string::npos);
    }
  }

  TEST_CASE("a signal at EOF without a newline is found, before and after finish()") {
    for (std::size_t i : {sig_falling, sig_using, sig_loaded}) {
      const std::string text = std::string("line one\nline two\n") + gate_signals[i].text;
      gate_scanner s;
      s.feed(text.data(), text.size());
      CHECK(s.fallback_seen());
      s.finish();
      const gate_verdict v = s.verdict();
      REQUIRE(v.kind == verdict_kind::fallback);
      CHECK(v.fallback->line == 3);
      CHECK(v.fallback->text == gate_signals[i].text);
      CHECK(v.lines == 3);
    }
  }

  TEST_CASE("CR, LF and CRLF: lines are counted by LF, CR ends a segment") {
    const std::string text = "a\r\nb\r\nprogress 10%\rprogress 20%\rUsing diffusers backend\r\nc\n";
    const gate_verdict v = scan(text);
    REQUIRE(v.kind == verdict_kind::fallback);
    CHECK(v.fallback->line == 3);
    CHECK(v.fallback->column == 1);
    CHECK(v.fallback->text == "Using diffusers backend");
    CHECK(v.lines == 4);
  }

  TEST_CASE("NUL bytes and invalid UTF-8 pass as bytes; the reported line is sanitised") {
    // ESC ] is a two-byte sequence here; the rest of the title sequence stays text.
    const std::string text =
        std::string("\0", 1) +
        "\xff\xfe caf\xc3\xa9 Falling back to diffusers backend \x80\x1b]0;t\x07\n";
    const gate_verdict v = scan(text);
    REQUIRE(v.kind == verdict_kind::fallback);
    CHECK(v.fallback->column == 11);
    CHECK(v.fallback->text ==
          "\\x00\\xff\\xfe caf\xc3\xa9 Falling back to diffusers backend \\x800;t\\x07");
  }

  TEST_CASE("the reported line keeps valid UTF-8 and writes every other byte as \\xNN") {
    using diffscope::detail::printable_utf8;
    const std::string good =
        "r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf";
    CHECK(printable_utf8(good) == good);
    CHECK(printable_utf8("a\tb\x7f~") == "a\\x09b\\x7f~");                // control bytes
    CHECK(printable_utf8("a\xe2\x82") == "a\\xe2\\x82");                  // cut by the cap
    CHECK(printable_utf8("\xc0\xaf") == "\\xc0\\xaf");                    // overlong '/'
    CHECK(printable_utf8("\xe0\x9f\xbf") == "\\xe0\\x9f\\xbf");           // overlong
    CHECK(printable_utf8("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // surrogate
    CHECK(printable_utf8("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
    CHECK(printable_utf8("\x80x\xf5") == "\\x80x\\xf5");                  // stray bytes
  }

  TEST_CASE("the pattern scanner finds any fixed strings, the first occurrence of each") {
    diffscope::pattern_scanner<test_patterns> s(8);  // line starts capped at 8 bytes
    const std::string out = "x\nfoo NEEDLE bar needle\n";
    const std::string err = "\x1b[1mhaystack\x1b[0m EDGE";
    s.feed(0, out.data(), 7);  // "NEEDLE" split across feeds
    s.feed(0, out.data() + 7, out.size() - 7);
    s.feed(1, err.data(), err.size());
    s.finish();
    const auto check_hit = [](const diffscope::pattern_hit& h, std::size_t pattern, int stream,
                              std::uint64_t line, std::uint64_t column, const char* matched,
                              const char* text) {
      CHECK(h.pattern == pattern);
      CHECK(h.stream == stream);
      CHECK(h.line == line);
      CHECK(h.column == column);
      CHECK(h.matched == matched);
      CHECK(h.text == text);
    };
    REQUIRE(s.hits().size() == 2);
    check_hit(s.hits()[0], 0, 0, 2, 5, "NEEDLE", "foo NEED");
    check_hit(s.hits()[1], 1, 1, 1, 1, "haystack EDGE", "haystack");
    CHECK(s.seen() == 3u);
    CHECK(s.bytes() == out.size() + err.size());
    CHECK(s.lines() == 3);  // two in stdout, stderr's unterminated one
  }

  TEST_CASE("BCG: captured is valid, each failure marker is invalid, no capture is unverified") {
    const std::string captured = "[Diffusion BCG] captured 4 graphs\n";
    CHECK(scan("x\n" + captured, {}, bcg()).kind == verdict_kind::valid);
    CHECK(scan("x\n[diffusion bcg] CAPTURED\n", {}, bcg()).kind == verdict_kind::valid);
    const gate_verdict unverified = scan("x\n[Diffusion BCG] capturing 4 graphs\n", {}, bcg());
    CHECK(unverified.kind == verdict_kind::bcg_unverified);
    CHECK(std::string(unverified.code()) == "bcg_unverified");
    CHECK(diffscope::verdict_text(unverified).find("not found in 2 lines") != std::string::npos);
    for (std::size_t i = 4; i < gate_signals.size(); ++i) {
      CAPTURE(gate_signals[i].text);
      const gate_verdict v =
          scan(captured + "w: " + gate_signals[i].text + " because\n", {3}, bcg());
      REQUIRE(v.kind == verdict_kind::bcg_invalid);
      REQUIRE(v.bcg_failures.size() == 1);
      CHECK(v.bcg_failures[0].signal == i);
      CHECK(v.bcg_failures[0].line == 2);
      CHECK(v.bcg_captured);
      // Without expect_bcg the markers are reported but do not invalidate.
      const gate_verdict off = scan(captured + gate_signals[i].text + "\n");
      CHECK(off.kind == verdict_kind::valid);
      CHECK(off.bcg_failures.size() == 1);
    }
    // All markers seen are reasons; a fallback outranks them.
    std::string all;
    for (std::size_t i = 4; i < gate_signals.size(); ++i)
      all += std::string(gate_signals[i].text) + "\n";
    const gate_verdict v = scan(all, {}, bcg());
    CHECK(v.kind == verdict_kind::bcg_invalid);
    CHECK(v.bcg_failures.size() == 5);
    const std::string text = diffscope::verdict_text(v);
    for (std::size_t i = 4; i < gate_signals.size(); ++i)
      CHECK(text.find(gate_signals[i].text) != std::string::npos);
    CHECK(scan(all + "Using diffusers backend\n", {}, bcg()).kind == verdict_kind::fallback);
  }

  TEST_CASE("fixture logs") {
    const gate_verdict clean = scan(fixture("clean.log"), {17});
    CHECK(clean.kind == verdict_kind::valid);
    CHECK(clean.lines == 10);
    CHECK(scan(fixture("clean.log"), {}, bcg()).kind == verdict_kind::bcg_unverified);

    const gate_verdict fb = scan(fixture("fallback.log"), {5});
    REQUIRE(fb.kind == verdict_kind::fallback);
    CHECK(fb.fallback->signal == sig_falling);
    CHECK(fb.fallback->line == 3);

    CHECK(scan(fixture("bcg_valid.log"), {}, bcg()).kind == verdict_kind::valid);
    const gate_verdict failed = scan(fixture("bcg_failed.log"), {}, bcg());
    REQUIRE(failed.kind == verdict_kind::bcg_invalid);
    REQUIRE(failed.bcg_failures.size() == 3);
    CHECK(failed.bcg_failures[0].line == 3);
    CHECK(failed.bcg_failures[1].line == 4);  // "cannot be used with breakable CUDA graphs"
    CHECK(failed.bcg_failures[2].line == 4);  // "no graph will be captured"
    const gate_verdict missed = scan(fixture("bcg_missed.log"), {}, bcg());
    REQUIRE(missed.kind == verdict_kind::bcg_invalid);
    CHECK(missed.bcg_failures[0].line == 3);

    const std::string coloured = fixture("coloured_crlf.log");
    for (std::size_t piece : {1, 2, 3, 5, 64, 4096}) {
      const gate_verdict v = scan(coloured, {piece});
      REQUIRE(v.kind == verdict_kind::fallback);
      CHECK(v.fallback->signal == sig_using);
      CHECK(v.fallback->line == 3);
      CHECK(v.fallback->matched == "USING Diffusers backend");
      CHECK(v.lines == 4);
    }
  }

  TEST_CASE("random text in random chunks agrees with the reference") {
    std::mt19937 rng(12345);
    const std::vector<std::string> parts = {"INFO ",
                                            "step 3/50 ",
                                            "\n",
                                            "\r",
                                            "\r\n",
                                            "\x1b[31m",
                                            "\x1b[0m",
                                            "\x1b(B",
                                            "\x1b",
                                            "[",
                                            "diffusers ",
                                            "backend ",
                                            "Using ",
                                            "using diffusers backend",
                                            "Falling back to ",
                                            "[Diffusion BCG] ",
                                            "captured",
                                            "capture failed",
                                            "disabled",
                                            "no graph will be captured",
                                            "cannot be used with breakable cuda graphs",
                                            "serving signature MISSED",
                                            "Loaded ",
                                            "pipeline",
                                            std::string("\0", 1),
                                            "\xff\xc3",
                                            "x"};
    std::size_t total = 0;
    for (int round = 0; round < 1000; ++round) {
      std::string text;
      const int n = 1 + static_cast<int>(rng() % 120);
      for (int k = 0; k < n; ++k) text += parts[rng() % parts.size()];
      if (round % 7 == 0)
        text += std::string(3000 + rng() % 20000, 'y') + "Using diffusers backend";
      std::vector<std::size_t> pieces;
      for (int k = 0; k < 5; ++k) pieces.push_back(1 + rng() % (round % 2 ? 7 : 3000));
      CAPTURE(round);
      gate_scanner sc(bcg());
      std::size_t i = 0, k = 0;
      while (i < text.size()) {
        const std::size_t n = std::min(pieces[k++ % pieces.size()], text.size() - i);
        sc.feed(text.data() + i, n);
        i += n;
      }
      sc.finish();
      std::vector<reference_hit> got;
      for (const auto& h : sc.hits()) got.push_back({h.signal, h.line, h.column});
      const auto want = reference(text);
      CHECK(got == want);
      CHECK(hits_of(sc.verdict()).size() <= want.size());
      total += want.size();
    }
    CHECK(total > 2000);  // the texts do contain signals, split in every way
  }

  TEST_CASE("the output watch passes binary output through byte for byte") {
    const std::string out = all_bytes(3u << 20, 1), err = all_bytes(1u << 20, 2);
    const std::string tail = "stdio without a newline, flushed by stop()";
    const child_result r = run_child([&] {
      diffscope::output_watch w;
      if (!w.active()) return 10;
      std::mt19937 rng(3);
      if (!write_fd(1, out.substr(0, out.size() / 2), rng)) return 11;
      if (!write_fd(2, err, rng)) return 12;
      std::fwrite(out.data() + out.size() / 2, 1, out.size() - out.size() / 2, stdout);
      std::fputs(tail.c_str(), stderr);
      w.stop();
      const gate_verdict v = w.verdict();
      return v.kind == verdict_kind::valid && v.bytes == out.size() + err.size() + tail.size() ? 0
                                                                                               : 13;
    });
    CHECK(r.exit_code() == 0);
    CHECK(r.out.size() == out.size());
    CHECK(r.out == out);
    CHECK(r.err == err + tail);
  }

  TEST_CASE("the output watch sees a signal printed after a second of clean output") {
    const child_result r = run_child([] {
      diffscope::output_watch w;
      if (!w.active()) return 10;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 1; i <= 20; ++i) {
        std::printf("INFO denoising step %d/20\n", i);
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (w.verdict().kind != verdict_kind::valid) return 11;
        if (!diffscope::current_gate_verdict() || !diffscope::current_gate_verdict()->ok())
          return 12;
      }
      if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900)) return 13;
      std::fprintf(stderr,
                   "WARNING registry.py: \x1b[33mFalling back to diffusers backend\x1b[0m\n");
      // current_gate_verdict() flushes stdio and waits for the reader: no sleep needed.
      const auto now = diffscope::current_gate_verdict();
      if (!now || now->kind != verdict_kind::fallback) return 14;
      if (now->fallback->stream != "stderr" || now->fallback->line != 1) return 15;
      std::printf("after the signal\n");
      w.stop();
      const gate_verdict v = w.verdict();
      return v.kind == verdict_kind::fallback && v.lines == 22 ? 0 : 16;
    });
    CHECK(r.exit_code() == 0);
    CHECK(r.out.find("INFO denoising step 20/20\nafter the signal\n") != std::string::npos);
    CHECK(r.err == "WARNING registry.py: \x1b[33mFalling back to diffusers backend\x1b[0m\n");
  }

  TEST_CASE("output buffered at exit() is not lost while a watch is active") {
    const child_result r = run_child([] {
      auto* w = new diffscope::output_watch();  // never destroyed: exit() must still drain it
      if (!w->active()) return 10;
      std::printf("buffered, no newline");
      std::fprintf(stderr, "Loaded diffusers pipeline\n");
      std::exit(7);
    });
    CHECK(r.exit_code() == 7);
    CHECK(r.out == "buffered, no newline");
    CHECK(r.err == "Loaded diffusers pipeline\n");
    CHECK(!diffscope::current_gate_verdict());  // no watch in this process
  }

  TEST_CASE("a watch that cannot start leaves the program as it was") {
    const child_result r = run_child([] {
      ::close(1);  // a pipe would take fd 1: the watch must refuse, not redirect into itself
      diffscope::output_watch w;
      if (w.active() || w.error().empty()) return 10;
      if (diffscope::current_gate_verdict()) return 11;
      std::fprintf(stderr, "still here: %s\n", w.error().c_str());
      return 0;
    });
    CHECK(r.exit_code() == 0);
    CHECK(r.err == "still here: stdout or stderr is closed\n");
  }

  TEST_CASE("the collector writes no dump when the gate trips, and keeps it beside on request") {
    const std::string dir = temp_dir();
    auto run = [&](const std::string& name, const char* line, bool keep, bool expect_bcg) {
      return run_child([=] {
        diffscope::collector_options o;
        o.gpu = false;
        o.dump_path = dir + "/" + name + ".json";
        o.dump.timestamp = "2026-11-30T00:00:00.000000+00:00";
        o.watch_output = true;
        o.expect_bcg = expect_bcg;
        o.keep_invalid = keep;
        auto& c = diffscope::collector::instance();
        c.start(o);
        {
          DIFFSCOPE_STAGE("DenoisingStage");
          std::printf("%s\n", line);
        }
        c.stop();
        return diffscope::current_gate_verdict() ? 20 : 0;  // the watch is gone after stop()
      });
    };
    SUBCASE("tripped: no dump, a message naming the signal") {
      const child_result r = run("tripped", "Falling back to diffusers backend", false, false);
      CHECK(r.exit_code() == 0);
      CHECK(r.out == "Falling back to diffusers backend\n");
      CHECK(!exists(dir + "/tripped.json"));
      CHECK(!exists(dir + "/tripped.json.invalid.json"));
      CHECK(r.err.find("gate tripped") != std::string::npos);
      CHECK(r.err.find("not written to " + dir + "/tripped.json") != std::string::npos);
      CHECK(r.err.find("\"Falling back to diffusers backend\"") != std::string::npos);
    }
    SUBCASE("tripped with keep_invalid: <path>.invalid.json, marked") {
      const child_result r = run("kept", "[Diffusion BCG] disabled", true, true);
      CHECK(r.exit_code() == 0);
      CHECK(!exists(dir + "/kept.json"));
      const std::string dump = read_text(dir + "/kept.json.invalid.json");
      CHECK(dump.find("\"verdict\": \"bcg_invalid\"") != std::string::npos);
      CHECK(dump.find("\"gated\": true") != std::string::npos);
      CHECK(r.err.find("kept as " + dir + "/kept.json.invalid.json") != std::string::npos);
      CHECK(r.err.find("[Diffusion BCG] disabled") != std::string::npos);
    }
    SUBCASE("valid: the dump at its path, verdict valid") {
      const child_result r = run("valid", "[Diffusion BCG] captured 1 graph", true, true);
      CHECK(r.exit_code() == 0);
      CHECK(r.err.find("gate tripped") == std::string::npos);
      const std::string dump = read_text(dir + "/valid.json");
      CHECK(dump.find("\"verdict\": \"valid\"") != std::string::npos);
      CHECK(!exists(dir + "/valid.json.invalid.json"));
    }
    SUBCASE("the environment turns it on") {
      ::setenv("DIFFSCOPE_EXPECT_BCG", "1", 1);
      ::setenv("DIFFSCOPE_KEEP_INVALID", "yes", 1);
      const auto o = diffscope::collector_options::from_env();
      ::unsetenv("DIFFSCOPE_EXPECT_BCG");
      ::unsetenv("DIFFSCOPE_KEEP_INVALID");
      CHECK(o.watch_output);
      CHECK(o.expect_bcg);
      CHECK(o.keep_invalid);
      ::setenv("DIFFSCOPE_GATE", "1", 1);
      const auto g = diffscope::collector_options::from_env();
      ::unsetenv("DIFFSCOPE_GATE");
      CHECK(g.watch_output);
      CHECK(!g.expect_bcg);
      CHECK(!diffscope::collector_options::from_env().watch_output);
    }
  }
}
