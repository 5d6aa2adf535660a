// diffscope ab internals: the A-B-B-A order, the denoise figure, the decision against the
// threshold on synthetic dumps, the idle rule, the timing-mode check shared with compare, and
// argument errors. The command end to end is tests/tools/test_ab_cli.sh.
#include <doctest/doctest.h>

#include <cstdlib>

#include "../tools/lib/ab.hpp"
#include "../tools/lib/compare.hpp"
#include "../tools/lib/nvml.hpp"

using namespace diffscope::cli;
using namespace diffscope::cli::ab_detail;

namespace {

perf_dump_data dump(double e2e, double denoise, const std::string& file = "x.json",
                    const std::string& mode = "") {
  std::string ds;
  if (!mode.empty())
    ds = R"(, "diffscope": {"status": {"gpu_timing": false, "mode": ")" + mode + R"("}})";
  const std::string text = R"({"total_duration_ms": )" + std::to_string(e2e) +
                           R"(, "steps": [{"name": "TextEncodingStage", "duration_ms": 5},
      {"name": "DenoisingStage", "duration_ms": )" +
                           std::to_string(denoise) + "}]" + ds + "}";
  return parse_dump(text, file);
}

std::vector<perf_dump_data> runs(std::initializer_list<double> denoise) {
  std::vector<perf_dump_data> v;
  for (double d : denoise) v.push_back(dump(d + 50, d));
  return v;
}

ab_args options(double threshold = 1.5) {
  ab_args o;
  o.threshold_pct = threshold;
  return o;
}

std::string usage_error(std::vector<std::string> a) {
  try {
    parse(a);
  } catch (const failure& f) {
    CHECK(f.code == exit_usage);
    return f.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("ab") {
  TEST_CASE("runs alternate A B B A A B B A and every pair holds one of each") {
    CHECK(order_text(abba_order(4)) == "A B B A A B B A");
    CHECK(order_text(abba_order(2)) == "A B B A");
    CHECK(order_text(abba_order(3)) == "A B B A A B");
    for (int n = 2; n <= 9; ++n) {
      const auto order = abba_order(n);
      REQUIRE(order.size() == static_cast<std::size_t>(2 * n));
      int seen[2] = {0, 0};
      for (std::size_t k = 0; k < order.size(); ++k) {
        CHECK(order[k].index == ++seen[order[k].side]);  // numbered 1.. on each side
        if (k % 2 == 1) CHECK(seen[0] == seen[1]);
      }
    }
    // Warm-up rounds come first, A then B, marked, numbered on their own.
    const auto w = with_warmup(2, abba_order(2));
    CHECK(order_text(w) == "A(warm-up) B(warm-up) A(warm-up) B(warm-up) A B B A");
    CHECK(w[2].index == 2);
    CHECK(w[2].warmup);
    CHECK_FALSE(w[4].warmup);
    CHECK(w[4].index == 1);
    CHECK(order_text(with_warmup(0, abba_order(2))) == "A B B A");
    // A B B A cancels a linear drift: positions 0+3 and 1+2 have the same sum.
    const auto o = abba_order(2);
    double sum[2] = {0, 0};
    for (std::size_t k = 0; k < o.size(); ++k) sum[o[k].side] += static_cast<double>(k);
    CHECK(sum[0] == sum[1]);
  }

  TEST_CASE("the denoise figure follows the SGLang benchmark helper") {
    auto d = parse_dump(R"({"steps": [{"name": "BeforeDenoisingStage", "duration_ms": 7},
        {"name": "WanDenoisingStage", "duration_ms": 100}, {"name": "RefinementStage",
        "duration_ms": 20}, {"name": "DecodingStage", "duration_ms": 9}],
        "denoise_steps_ms": [{"step": 0, "duration_ms": 1}]})",
                        "x.json");
    REQUIRE(denoise_ms(d).has_value());
    CHECK(*denoise_ms(d) == 120.0);  // stages win over denoise_steps_ms
    d = parse_dump(R"({"steps": [{"name": "DecodingStage", "duration_ms": 9}],
        "denoise_steps_ms": [{"step": 0, "duration_ms": 1.5}, {"step": 1, "duration_ms": 2}]})",
                   "x.json");
    CHECK(*denoise_ms(d) == 3.5);
    CHECK_FALSE(denoise_ms(parse_dump(R"({"total_duration_ms": 3})", "x.json")).has_value());
  }

  TEST_CASE("B beats A only beyond both the threshold and the run-to-run spread") {
    // A 100, 102, 98 (median 100, spread 2); B 95, 96, 94 (median 95, spread 1):
    // |diff| 5 > 1.5 and > 3.
    decision d = decide(runs({100, 102, 98}), runs({95, 96, 94}), options());
    CHECK(d.figure.name == "denoise time");
    CHECK(std::string(d.verdict.verdict) == "faster");
    CHECK(d.b_wins);
    CHECK(d.text.find("Decision: B beats A by 1.50% on the denoise time (5.00% faster).") !=
          std::string::npos);

    // 1.8 % faster, tight runs: beats 1.5 %, not 2 %.
    d = decide(runs({100, 100.1, 99.9}), runs({98.2, 98.25, 98.15}), options(1.5));
    CHECK(d.b_wins);
    d = decide(runs({100, 100.1, 99.9}), runs({98.2, 98.25, 98.15}), options(2.0));
    CHECK_FALSE(d.b_wins);
    CHECK(std::string(d.verdict.verdict) == "same");
    CHECK(d.text.find("no difference beyond the threshold") != std::string::npos);

    // 3 % faster but runs scattered by +-5: unsure, no win.
    d = decide(runs({100, 105, 95}), runs({97, 102, 92}), options());
    CHECK(std::string(d.verdict.verdict) == "unsure");
    CHECK_FALSE(d.b_wins);

    // B slower.
    d = decide(runs({100, 100, 100}), runs({110, 111, 109}), options());
    CHECK(std::string(d.verdict.verdict) == "slower");
    CHECK(d.text.find("does not beat A by 1.50% on the denoise time (B is slower, +10.00%)") !=
          std::string::npos);
    CHECK(d.text.find("- Verdict: slower\n") != std::string::npos);
  }

  TEST_CASE("without denoise stages or steps the decision uses E2E latency") {
    std::vector<perf_dump_data> a, b;
    for (double e : {200.0, 201.0})
      a.push_back(parse_dump(R"({"total_duration_ms": )" + std::to_string(e) + "}", "a.json"));
    for (double e : {150.0, 151.0})
      b.push_back(parse_dump(R"({"total_duration_ms": )" + std::to_string(e) + "}", "b.json"));
    const decision d = decide(a, b, options());
    CHECK(d.figure.name == "E2E latency");
    CHECK(d.b_wins);
    ab_args o = options();
    o.figure = "denoise";
    CHECK_THROWS_AS(decide(a, b, o), failure);
    o.figure = "e2e";
    CHECK(decide(runs({100, 101}), runs({100, 101}), o).figure.name == "E2E latency");
  }

  TEST_CASE("a GPU is idle with no compute process, <= 32 MiB used and <= 5% utilisation") {
    nvml::gpu_reading r;
    r.processes_known = r.used_known = r.util_known = true;
    r.used_mib = 32;
    r.util_pct = 5;
    CHECK(nvml::idle_problems(r).empty());
    r.used_mib = 33;
    r.util_pct = 6;
    r.processes = {{1234, 20480, true}, {99, 0, false}};
    const auto why = nvml::idle_problems(r);
    REQUIRE(why.size() == 3);
    CHECK(why[0] == "2 compute processes (pid 1234: 20480 MiB, pid 99: ? MiB)");
    CHECK(why[1] == "33 MiB used (> 32 MiB)");
    CHECK(why[2] == "6% utilisation (> 5%)");
    nvml::gpu_reading unknown;  // nothing could be read: not idle
    CHECK(nvml::idle_problems(unknown).size() == 3);
  }

  TEST_CASE("NVML that cannot be loaded is a message, not a crash") {
    ::setenv("DIFFSCOPE_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
    nvml::library lib;
    const std::string why = lib.open();
    ::unsetenv("DIFFSCOPE_NVML_LIB");
    CHECK(why.find("cannot load /nonexistent/libnvidia-ml.so.1") == 0);
  }

  TEST_CASE("compare refuses inputs that mix perf and profile timing") {
    const auto p1 = dump(10, 5, "p1.json", "perf"), p2 = dump(10, 5, "p2.json", "perf");
    const auto f1 = dump(10, 5, "f1.json", "profile"), sg = dump(10, 5, "sg.json");
    CHECK(check_modes({&p1, &p2}, false) == "perf");
    CHECK(check_modes({&p1, &sg}, false) == "perf");  // no mode: compatible with any
    CHECK(check_modes({&sg}, false).empty());
    const auto old = dump(10, 5, "old.json", "linked");  // older dumps: how it was attached
    CHECK(dump_mode(old).empty());
    CHECK(check_modes({&old, &p1}, false) == "perf");
    try {
      check_modes({&p1, &f1, &p2}, false);
      FAIL("mixed modes were accepted");
    } catch (const failure& f) {
      CHECK(f.code == exit_usage);
      CHECK(std::string(f.what()).find("inputs mix timing modes (perf: p1.json, p2.json; profile: "
                                       "f1.json)") == 0);
    }
    CHECK(check_modes({&p1, &f1}, true) == "mixed (perf: p1.json; profile: f1.json)");
    CHECK_THROWS_AS(dump_mode(parse_dump(R"({"diffscope": {"status": {"mode": 1}}})", "m.json")),
                    failure);
  }

  TEST_CASE("bad arguments are usage errors naming the argument") {
    CHECK(usage_error({"--a", "x"}) == "--a and --b are both required");
    CHECK(usage_error({"--a", "x", "--b", "y", "--runs", "1"}).rfind("--runs: '1'", 0) == 0);
    CHECK(usage_error({"--a", "x", "--b", "y", "--runs", "2.5"}).rfind("--runs: '2.5'", 0) == 0);
    CHECK(usage_error({"--a", "x", "--b", "y", "--labels", "a"}).rfind("--labels", 0) == 0);
    CHECK(usage_error({"--a", "x", "--b", "y", "--labels", "a,a"}).rfind("--labels", 0) == 0);
    CHECK(usage_error({"--a", "x", "--b", "y", "--labels", "a,../b"}).rfind("--labels", 0) == 0);
    CHECK(usage_error({"--a", "x", "--b", "y", "--gpu", "first"}).rfind("--gpu", 0) == 0);
    CHECK(usage_error({"--a", "x", "--b", "y", "--mode", "fast"}).rfind("--mode", 0) == 0);
    CHECK(usage_error({"--a", "x", "--b", "y", "--threshold", "-1"}).rfind("--threshold", 0) == 0);
    CHECK(usage_error({"--a", " ", "--b", "y"}) == "--a: empty command");
    CHECK(usage_error({"--a", "x", "--b", "y", "--bogus"}).rfind("unknown argument", 0) == 0);
    const ab_args o = parse({"--a", "x", "--b", "y", "--labels", "base,tuned", "--gpu", "1"});
    CHECK(o.runs == 4);
    CHECK(o.gpu == "1");
    CHECK(o.mode == "perf");
    CHECK(side_name(o, 1) == "B (tuned)");
  }
}
