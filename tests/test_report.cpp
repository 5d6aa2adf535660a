// Console summary: what it says, that columns line up, and that unmeasured GPU numbers
// show as "-" and never as zero.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <diffscope/output/summary.hpp>

#include "tools/sample_results.hpp"

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The lines of the table that follows the line starting with `title`, header included.
std::vector<std::string> table(const std::string& text, const std::string& title) {
  const auto all = lines(text);
  std::vector<std::string> out;
  bool in = false;
  for (const auto& l : all) {
    if (!in) {
      in = l.rfind(title, 0) == 0;
      continue;
    }
    if (l.empty() || l.rfind("  ", 0) != 0) break;
    out.push_back(l);
  }
  return out;
}

std::size_t columns_of(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Right-aligned columns: every row of the table ends at the same column.
void check_right_edges_align(const std::vector<std::string>& t) {
  REQUIRE(t.size() >= 2);
  for (const auto& l : t) CHECK(columns_of(l) == columns_of(t[0]));
}

const std::string* line_starting(const std::vector<std::string>& t, const std::string& prefix) {
  for (const auto& l : t)
    if (l.rfind(prefix, 0) == 0) return &l;
  return nullptr;
}

}  // namespace

TEST_SUITE("report") {
  TEST_CASE("the header names the mode and says that GPU timing was measured") {
    const std::string s = diffscope::summary_text(sample::profiled());
    const auto l = lines(s);
    REQUIRE(l.size() > 3);
    CHECK(l[0] == "diffscope " DIFFSCOPE_VERSION_STRING
                  " summary - mode: profile, wall 1234.57 ms");
    CHECK(l[1] == "GPU timing: measured (device timestamps, no added synchronisation)");
    CHECK(l[2] == "GPU: NVIDIA H200 (1 device(s))");
  }

  TEST_CASE("without GPU timing the header says why and every GPU number is a dash") {
    const std::string s = diffscope::summary_text(sample::host_only());
    CHECK(lines(s)[1] == "GPU timing: unavailable (no CUDA driver) - host timings only");
    const auto stages = table(s, "Stages");
    REQUIRE(stages.size() == 5);
    CHECK(stages[3] ==
          "  DenoisingStage            1   900.12                -        -  900.12 (host)");
    const auto steps = table(s, "Denoise steps");
    REQUIRE(steps.size() == 5);
    CHECK(steps[1] == "     0     5.00                -        -");
    CHECK(s.find("Top kernels") == std::string::npos);  // nothing measured, no table
    auto r = sample::host_only();
    r.status.reason.clear();
    CHECK(lines(diffscope::summary_text(r))[1] ==
          "GPU timing: unavailable (reason unknown) - host timings only");
    r.status.cupti_holder = "Nsight Systems";
    CHECK(lines(diffscope::summary_text(r))[2] == "CUPTI held by: Nsight Systems");
  }

  TEST_CASE("the stage table shows host, envelope, busy and what the dump reports, with units") {
    const std::string s = diffscope::summary_text(sample::profiled());
    const auto t = table(s, "Stages");
    REQUIRE(t.size() == 5);
    CHECK(t[0] == "  stage                 calls  host ms  GPU envelope ms  busy ms      dump ms");
    CHECK(t[1] == "  InputValidationStage      1     0.25             0.00     0.00  0.25 (host)");
    CHECK(t[3] == "  DenoisingStage            1   900.12           950.75   880.00       950.75");
    check_right_edges_align(t);
  }

  TEST_CASE("the step table lists every step with host, envelope and busy times") {
    const auto t = table(diffscope::summary_text(sample::profiled()), "Denoise steps");
    REQUIRE(t.size() == 5);
    CHECK(t[0] == "  step  host ms  GPU envelope ms  busy ms");
    CHECK(t[1] == "     0     5.00           237.50   220.00");
    CHECK(t[4] == "     3   223.00           240.50   220.00");
    check_right_edges_align(t);
    auto r = sample::profiled();
    r.steps[2].calls = 3;
    const auto t2 = table(diffscope::summary_text(r), "Denoise steps");
    CHECK(t2[3].find("2 (x3)") != std::string::npos);
  }

  TEST_CASE("a long loop lists its first two, last and four slowest steps, then their spread") {
    auto r = sample::profiled();
    const diffscope::step_result model = r.steps[0];
    r.steps.clear();
    for (int i = 0; i < 28; ++i) {
      diffscope::step_result s = model;
      s.step = i;
      s.gpu.envelope_ms = 10.0 + (i == 5 || i == 9 || i == 20 || i == 21 ? 5.0 + i : 0.0);
      r.steps.push_back(s);
    }
    const std::string text = diffscope::summary_text(r);
    const auto t = table(text, "Denoise steps (28; the first two, the last and the 4 slowest)");
    REQUIRE(t.size() == 9);  // header, steps 0 1 5 9 20 21 27, the spread
    const char* steps[] = {"0", "1", "5", "9", "20", "21", "27"};
    for (std::size_t i = 0; i < 7; ++i) {
      std::istringstream row(t[i + 1]);
      std::string step;
      row >> step;
      CHECK(step == steps[i]);
    }
    CHECK(t[8] ==
          "  every step, GPU envelope: median 10.00 ms, min 10.00, max 36.00; 21 more "
          "steps: see the dump (DIFFSCOPE_SUMMARY_SCOPES=all lists every step)");
    // Every step when all scopes are asked for; a loop of 12 steps is listed whole.
    CHECK(table(diffscope::summary_text(r, 10, diffscope::all_summary_scopes), "Denoise steps")
              .size() == 29);
    r.steps.resize(12);
    CHECK(table(diffscope::summary_text(r), "Denoise steps").size() == 13);
  }

  TEST_CASE("the scope table indents by depth and gives shares of the step or of the total") {
    const auto t = table(diffscope::summary_text(sample::profiled()), "Scopes");
    REQUIRE(t.size() == 6);
    CHECK(t[0] == "  scope           calls  host total ms  busy ms  envelope ms  share %     of");
    CHECK(t[1] == "  DenoisingStage      1         900.12   880.00       950.75     82.2  total");
    CHECK(t[2] == "    denoise_step      4         890.00   880.00       950.00     82.2  total");
    CHECK(t[3] == "      attention      96          40.00   440.00       600.00     50.0   step");
    CHECK(t[4] ==
          "      norm \"q\\k\"     96          12.00   110.00       150.00     12.5   step");
    check_right_edges_align(t);
    // Host-only: shares from host time, of the wall time at top level.
    const auto h = table(diffscope::summary_text(sample::host_only()), "Scopes");
    const auto* top = line_starting(h, "  DenoisingStage");
    REQUIRE(top != nullptr);
    CHECK(top->find("900.12        -            -     72.9  total") != std::string::npos);
  }

  TEST_CASE("a layerwise model's scopes print relative to their parent, no two rows alike") {
    const diffscope::results r = sample::layerwise();
    REQUIRE(r.scopes.size() >= 300);
    const auto t = table(diffscope::summary_text(r, 10, diffscope::all_summary_scopes), "Scopes");
    REQUIRE(t.size() == r.scopes.size() + 1);
    std::set<std::string> seen;
    for (std::size_t i = 1; i < t.size(); ++i) {
      const std::string name = t[i].substr(2, t[i].find("  ", t[i].find_first_not_of(' ')) - 2);
      const std::string trimmed = name.substr(name.find_first_not_of(' '));
      CHECK_MESSAGE(seen.insert(trimmed).second, "'", trimmed, "' printed twice");
      CHECK(columns_of(trimmed) <= diffscope::detail::summary_name_columns);
    }
    // Unique relative names print as they are; repeated ones get a hash of their path.
    CHECK(line_starting(t, std::string(12, ' ') + ".timestep_embedder ") != nullptr);
    CHECK(line_starting(t, std::string(10, ' ') + "transformer.transformer_blocks.3 ") != nullptr);
    CHECK(line_starting(t, std::string(12, ' ') + ".attn #") != nullptr);
    check_right_edges_align(t);
  }

  TEST_CASE("the scope table lists the scopes with the most time, to a depth, in tree order") {
    const diffscope::results r = sample::layerwise();
    const std::string s = diffscope::summary_text(r);
    CHECK(s.find("\nScopes (the 25 of 305 with the most time, to depth 6; share: ") !=
          std::string::npos);
    const auto t = table(s, "Scopes");
    REQUIRE(t.size() == 27);  // header, 25 rows, the line that says how many more
    CHECK(t[26] ==
          "  280 more scopes: see the dump (DIFFSCOPE_SUMMARY_SCOPES=all lists every scope)");
    CHECK(t[1].rfind("  DenoisingStage ", 0) == 0);
    CHECK(t[5].rfind("          transformer.transformer_blocks.2 ", 0) == 0);
    CHECK(t[25].rfind("  DecodingStage ", 0) == 0);  // tree order, not rank order
    // Every listed scope has at least the busy time of every scope left out.
    const std::size_t busy_col = t[0].find("busy ms") + 7;
    double least_listed = 1e300;
    std::set<std::string> listed_busy;
    for (std::size_t i = 1; i <= 25; ++i) {
      const std::string cell = t[i].substr(0, busy_col);
      least_listed = std::min(least_listed, std::stod(cell.substr(cell.rfind(' ') + 1)));
    }
    std::vector<double> all;
    for (const auto& sc : r.scopes) all.push_back(sc.gpu.busy_ms);
    std::sort(all.rbegin(), all.rend());
    CHECK(least_listed == doctest::Approx(all[24]).epsilon(0.001));
    // Fewer rows on request; every row when asked for all.
    const auto three = table(diffscope::summary_text(r, 10, 3), "Scopes");
    REQUIRE(three.size() == 5);
    CHECK(three[3].rfind("      denoise_step ", 0) == 0);
    CHECK(three[4] ==
          "  302 more scopes: see the dump (DIFFSCOPE_SUMMARY_SCOPES=all lists every scope)");
    CHECK(table(diffscope::summary_text(r, 10, diffscope::all_summary_scopes), "Scopes").size() ==
          306);
  }

  TEST_CASE("scopes deeper than the summary's depth are left to the dump, unless all are asked") {
    diffscope::results r;
    r.status.gpu_timing = true;
    r.wall_ms = 100;
    std::string path;
    for (int d = 0; d < 10; ++d) {
      const std::string name = "level" + std::to_string(d);
      path += (d ? "/" : "") + name;
      r.scopes.push_back(sample::scope(path, diffscope::category::other, d, d - 1, 1, 10,
                                       sample::gpu(50 - d, 50 - d, 50 - d, 1), 1));
    }
    const auto t = table(diffscope::summary_text(r), "Scopes");
    REQUIRE(t.size() == 9);  // header, depths 0 to 6, the line that says how many more
    CHECK(t[7].rfind("              level6 ", 0) == 0);
    CHECK(t[8] == "  3 more scopes: see the dump (DIFFSCOPE_SUMMARY_SCOPES=all lists every scope)");
    CHECK(table(diffscope::summary_text(r, 10, diffscope::all_summary_scopes), "Scopes").size() ==
          11);
  }

  TEST_CASE("top kernels are cut in the middle, counted, timed in ms and us, with their share") {
    const std::string s = diffscope::summary_text(sample::profiled(), 3);
    CHECK(s.find("Top kernels (3 of 5, by total GPU time)") != std::string::npos);
    const auto t = table(s, "Top kernels");
    REQUIRE(t.size() == 4);
    CHECK(t[0].rfind("  kernel ", 0) == 0);
    CHECK(t[0].find("count  total ms  mean us  share %") != std::string::npos);
    CHECK(t[1] ==
          "  flash_fwd_kernel<Flash_fwd_ke...se, false, cutlass::half_t>>     96    "
          "440.00   4583.3     41.1");
    CHECK(t[2].find("nvjet_gemm \"quoted\" \\ back") != std::string::npos);
    check_right_edges_align(t);
    // Invalid UTF-8 and control characters are made printable, columns still line up.
    const auto all = table(diffscope::summary_text(sample::profiled(), 10), "Top kernels");
    REQUIRE(all.size() == 6);
    CHECK(all[4].find("bad\xEF\xBF\xBD\xEF\xBF\xBD utf8 ? ctl \xEF\xBF\xBD\xEF\xBF\xBD cut") !=
          std::string::npos);
    check_right_edges_align(all);
    CHECK(diffscope::summary_text(sample::profiled(), 0).find("Top kernels") == std::string::npos);
  }

  TEST_CASE("faults say none when all are zero and list only the non-zero ones otherwise") {
    CHECK(diffscope::summary_text(sample::profiled()).find("\nfaults: none\n") !=
          std::string::npos);
    auto r = sample::profiled();
    r.faults.dropped_records = 12;
    r.faults.unbalanced_pops = 1;
    const std::string s = diffscope::summary_text(r);
    CHECK(s.find("\nfaults: dropped_records=12, unbalanced_pops=1\n") != std::string::npos);
  }

  TEST_CASE("ranges open at stop: never \"faults: none\", the innermost per thread named") {
    auto r = sample::with_unclosed_ranges();
    std::string s = diffscope::summary_text(r);
    CHECK(s.find("faults: none") == std::string::npos);
    CHECK(
        s.find("\nfaults: unclosed_at_stop=4\n"
               "  4 range(s) still open at stop; innermost open range per thread:\n"
               "    thread 1: request/DenoisingStage/denoise_step (step 3), 3 open, thread ended\n"
               "    thread 2: worker, 1 open\n") != std::string::npos);
    // Named but not counted (a snapshot put together by hand): still not "none".
    r.faults.unclosed_at_stop = 0;
    s = diffscope::summary_text(r);
    CHECK(s.find("faults: none") == std::string::npos);
    CHECK(s.find("thread 2: worker, 1 open") != std::string::npos);
  }

  TEST_CASE("scopes past the cap: a fault line names the cap and its setting") {
    auto r = sample::profiled();
    r.faults.ranges_folded = 1234;
    r.faults.names_folded = 100;
    r.status.max_scopes = 10'000;
    std::string s = diffscope::summary_text(r);
    CHECK(s.find("\nfaults: ranges_folded=1234, names_folded=100\n") != std::string::npos);
    CHECK(s.find("  1234 range call(s) without a scope of their own: past 10000 distinct scopes "
                 "(DIFFSCOPE_MAX_SCOPES), new ones went into their parent's \"(other)\" scope "
                 "(100 distinct names)") != std::string::npos);
    r.faults.names_folded_estimated = true;
    s = diffscope::summary_text(r);
    CHECK(s.find("(about 100 distinct names)") != std::string::npos);
  }

  TEST_CASE("the overhead line reports ranges, callbacks, records and per-event costs") {
    const std::string s = diffscope::summary_text(sample::profiled());
    CHECK(s.find("\noverhead: 1000 ranges, 600 callbacks, 560 records in 3 buffers; 410 ns per "
                 "launch callback, 95 ns per range\n") != std::string::npos);
  }

  TEST_CASE("print_summary writes the same text to a FILE") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    diffscope::print_summary(f, sample::profiled());
    std::rewind(f);
    std::string got;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) got.append(buf, n);
    std::fclose(f);
    CHECK(got == diffscope::summary_text(sample::profiled()));
  }

  TEST_CASE("an empty snapshot still prints a header, faults and overhead") {
    const std::string s = diffscope::summary_text(diffscope::results{});
    CHECK(s.find("GPU timing: unavailable (reason unknown)") != std::string::npos);
    CHECK(s.find("Stages") == std::string::npos);
    CHECK(s.find("faults: none") != std::string::npos);
  }
}
