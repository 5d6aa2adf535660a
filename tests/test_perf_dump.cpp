// Perf dump: SGLang's keys, order and types; the envelope-else-host rule; rounding;
// escaping; the diffscope section. Also what it is built on: the JSON writer, trim and the
// UTC time text.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/output/perf_dump.hpp>
#include <diffscope/output/summary.hpp>
#include <diffscope/util/json_writer.hpp>
#include <diffscope/util/text.hpp>
#include <diffscope/util/utc_time.hpp>

#include "tools/mini_json.hpp"
#include "tools/sample_results.hpp"

namespace {

namespace fs = std::filesystem;

diffscope::perf_dump_options fixed_options() {
  diffscope::perf_dump_options o;
  o.request_id = "req-1";
  o.commit_hash = "0123456789abcdef0123456789abcdef01234567";
  o.timestamp = "2025-12-18T09:54:57.458009+00:00";
  return o;
}

mini_json::value dump(const diffscope::results& r,
                      const diffscope::perf_dump_options& o = fixed_options()) {
  return mini_json::parse(diffscope::perf_dump_json(r, o));
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sets an environment variable for the lifetime of the object.
struct env_guard {
  std::string name;
  bool had = false;
  std::string old;
  env_guard(const char* n, const char* v) : name(n) {
    if (const char* p = std::getenv(n)) {
      had = true;
      old = p;
    }
    if (v) {
      setenv(n, v, 1);
    } else {
      unsetenv(n);
    }
  }
  ~env_guard() {
    if (had) {
      setenv(name.c_str(), old.c_str(), 1);
    } else {
      unsetenv(name.c_str());
    }
  }
};

struct cwd_guard {
  fs::path old = fs::current_path();
  explicit cwd_guard(const fs::path& p) { fs::current_path(p); }
  ~cwd_guard() { fs::current_path(old); }
};

fs::path fresh_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("diffscope_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace

TEST_SUITE("json_writer") {
  TEST_CASE("the layout is what Python's json.dump(indent=2) writes") {
    diffscope::detail::json_writer w;
    w.begin_object();
    w.field("a", 1);
    w.key("b").begin_array().end_array();
    w.key("c").begin_object().end_object();
    w.key("d").begin_array().value(1.5).value("x").end_array();
    w.key("e").begin_object().key("f").null().end_object();
    w.end_object();
    CHECK(w.complete());
    CHECK(w.str() ==
          "{\n  \"a\": 1,\n  \"b\": [],\n  \"c\": {},\n  \"d\": [\n    1.5,\n    \"x\"\n  ],\n"
          "  \"e\": {\n    \"f\": null\n  }\n}");
  }

  TEST_CASE("indent 0 writes compact JSON") {
    diffscope::detail::json_writer w(0);
    w.begin_object().field("a", true).key("b").begin_array().value(false).end_array().end_object();
    CHECK(w.str() == "{\"a\":true,\"b\":[false]}");
  }

  TEST_CASE("numbers round-trip, integral doubles keep a .0, and non-finite values become null") {
    const auto num = [](double v) {
      std::string s;
      diffscope::detail::append_json_number(s, v);
      return s;
    };
    CHECK(num(12.0) == "12.0");
    CHECK(num(0.1) == "0.1");
    CHECK(num(-0.0) == "0.0");
    CHECK(num(1234.5678901) == "1234.5678901");
    CHECK(num(1e300) == "1e+300");
    CHECK(num(std::nan("")) == "null");
    CHECK(num(std::numeric_limits<double>::infinity()) == "null");
    CHECK(num(-std::numeric_limits<double>::infinity()) == "null");
    const double third = 1.0 / 3.0;
    CHECK(std::strtod(num(third).c_str(), nullptr) == third);
    std::string i;
    diffscope::detail::append_json_number(i, std::uint64_t{18446744073709551615ull});
    CHECK(i == "18446744073709551615");
  }

  TEST_CASE("strings escape quotes, backslashes and control characters") {
    std::string s;
    diffscope::detail::append_json_string(s, std::string("a\"b\\c\n\t\r\b\f\x01\x1f\x7f", 13));
    CHECK(s == "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f\"");  // DEL as is, like Python
    std::string nul;
    diffscope::detail::append_json_string(nul, std::string("x\0y", 3));
    CHECK(nul == "\"x\\u0000y\"");
  }

  TEST_CASE("valid UTF-8 passes through and every invalid byte becomes U+FFFD") {
    const auto esc = [](std::string in) {
      std::string s;
      diffscope::detail::append_json_string(s, in);
      return s;
    };
    const std::string fffd = "\xEF\xBF\xBD";
    CHECK(esc("r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80") ==
          "\"r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\"");
    CHECK(esc("\xff") == "\"" + fffd + "\"");
    CHECK(esc("a\xe2\x82") == "\"a" + fffd + fffd + "\"");                      // truncated
    CHECK(esc("\xc0\xaf") == "\"" + fffd + fffd + "\"");                        // overlong '/'
    CHECK(esc("\xed\xa0\x80") == "\"" + fffd + fffd + fffd + "\"");             // surrogate
    CHECK(esc("\xf4\x90\x80\x80") == "\"" + fffd + fffd + fffd + fffd + "\"");  // > U+10FFFF
    CHECK(esc("\x80x") == "\"" + fffd + "x\"");  // stray continuation
  }
}

TEST_SUITE("perf_dump") {
  TEST_CASE("the top-level keys are SGLang's, in SGLang's order, followed by diffscope") {
    const auto d = dump(sample::profiled());
    CHECK(d.keys() == std::vector<std::string>{"timestamp", "request_id", "commit_hash", "tag",
                                               "total_duration_ms", "steps", "denoise_steps_ms",
                                               "memory_checkpoints", "meta", "diffscope"});
  }

  TEST_CASE("every SGLang field has the type the contract names") {
    const auto d = dump(sample::profiled());
    using mini_json::kind;
    CHECK(d["timestamp"].k == kind::string);
    CHECK(d["request_id"].str == "req-1");
    CHECK(d["commit_hash"].str == "0123456789abcdef0123456789abcdef01234567");
    CHECK(d["tag"].str == "cli_generate");
    CHECK(d["total_duration_ms"].k == kind::number);
    CHECK(d["total_duration_ms"].num == 1234.5678901);  // not rounded
    REQUIRE(d["steps"].k == kind::array);
    for (const auto& s : d["steps"].items) {
      CHECK(s.keys() == std::vector<std::string>{"name", "duration_ms"});
      CHECK(s["name"].k == kind::string);
      CHECK(s["duration_ms"].k == kind::number);
      CHECK_FALSE(s["duration_ms"].is_integer());  // a float, as Python writes it
    }
    REQUIRE(d["denoise_steps_ms"].items.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
      const auto& s = d["denoise_steps_ms"][i];
      CHECK(s.keys() == std::vector<std::string>{"step", "duration_ms"});
      CHECK(s["step"].is_integer());
      CHECK(s["step"].num == static_cast<double>(i));
      CHECK_FALSE(s["duration_ms"].is_integer());
    }
    REQUIRE(d["memory_checkpoints"].k == kind::object);
    for (const auto& [name, m] : d["memory_checkpoints"].members) {
      CHECK(m.keys() == std::vector<std::string>{"allocated_mb", "reserved_mb", "peak_allocated_mb",
                                                 "peak_reserved_mb"});
    }
    CHECK(d["meta"].k == kind::object);
    CHECK(d["meta"].members.empty());
  }

  TEST_CASE("the dump is written with indent 2 and ends with a newline") {
    const std::string text = diffscope::perf_dump_json(sample::profiled(), fixed_options());
    CHECK(text.rfind("{\n  \"timestamp\": \"2025-12-18T09:54:57.458009+00:00\",\n", 0) == 0);
    CHECK(text.back() == '\n');
    CHECK(text.find("\n    {\n      \"name\": \"InputValidationStage\",\n") != std::string::npos);
  }

  TEST_CASE("a stage's duration is its GPU envelope when measured with GPU work, else host time") {
    const auto d = dump(sample::profiled());
    const auto& steps = d["steps"];
    REQUIRE(steps.items.size() == 4);
    CHECK(steps[0]["name"].str == "InputValidationStage");
    CHECK(steps[0]["duration_ms"].num == 0.25);  // measured but no GPU work: host
    CHECK(steps[1]["name"].str == "TextEncodingStage");
    CHECK(steps[1]["duration_ms"].num == 25.5);
    CHECK(steps[2]["name"].str == "DenoisingStage");
    CHECK(steps[2]["duration_ms"].num == 950.75);
    CHECK(steps[3]["name"].str == "DecodingStage");
    CHECK(steps[3]["duration_ms"].num == 210.5);
    const auto& stages = d["diffscope"]["stages"];
    CHECK(stages[0]["duration_source"].str == "host");
    CHECK(stages[2]["duration_source"].str == "gpu_envelope");
    CHECK(stages[2]["host_ms"].num == 900.125);
  }

  TEST_CASE("denoise steps follow the same rule: envelope, not the fast-looking host time") {
    const auto d = dump(sample::profiled());
    CHECK(d["denoise_steps_ms"][0]["duration_ms"].num == 237.5);  // host said 5 ms
    CHECK(d["denoise_steps_ms"][3]["duration_ms"].num == 240.5);
    CHECK(d["diffscope"]["steps"][0]["host_ms"].num == 5.0);
    CHECK(d["diffscope"]["steps"][0]["duration_source"].str == "gpu_envelope");
  }

  TEST_CASE("legacy step entries are appended after the stages as denoising_step_<i>") {
    auto o = fixed_options();
    o.legacy_step_entries = true;
    const auto d = dump(sample::profiled(), o);
    const auto& steps = d["steps"];
    REQUIRE(steps.items.size() == 8);
    CHECK(steps[3]["name"].str == "DecodingStage");
    for (int i = 0; i < 4; ++i) {
      CHECK(steps[4 + i]["name"].str == "denoising_step_" + std::to_string(i));
      CHECK(steps[4 + i]["duration_ms"].num == 237.5 + i);
    }
    CHECK(d["denoise_steps_ms"].items.size() == 4);
  }

  TEST_CASE("memory checkpoints are device-wide MiB rounded to 2 places like Python's round()") {
    const auto d = dump(sample::profiled());
    const auto& m = d["memory_checkpoints"];
    CHECK(m.keys() == std::vector<std::string>{"before_forward", "after_DenoisingStage"});
    CHECK(m["before_forward"]["allocated_mb"].raw_number == "1000.12");  // tie to even
    CHECK(m["before_forward"]["reserved_mb"].raw_number == "1000.12");
    CHECK(m["after_DenoisingStage"]["allocated_mb"].raw_number == "2.67");
    CHECK(m["after_DenoisingStage"]["peak_allocated_mb"].raw_number == "60000.46");
    CHECK(m["after_DenoisingStage"]["peak_reserved_mb"].raw_number == "60000.46");
    CHECK(diffscope::detail::round2(1.005) == 1.0);
    CHECK(diffscope::detail::round2(-2.345) == -2.35);  // -2.34500000000000019984
    CHECK(diffscope::detail::round2(12.0) == 12.0);
  }

  TEST_CASE(
      "a checkpoint name repeated on another device gets a device suffix, never a "
      "duplicate key") {
    auto r = sample::profiled();
    diffscope::memory_checkpoint m;
    m.name = "before_forward";
    m.device = 1;
    m.used_mb = 5;
    m.peak_used_mb = 6;
    r.memory.push_back(m);
    m.device = 0;  // the same checkpoint again on device 0: last value wins, first position
    m.used_mb = 7;
    r.memory.push_back(m);
    const auto d = dump(r);  // mini_json rejects duplicate keys
    const auto& mc = d["memory_checkpoints"];
    CHECK(mc.keys() == std::vector<std::string>{"before_forward", "after_DenoisingStage",
                                                "before_forward@gpu1"});
    CHECK(mc["before_forward"]["allocated_mb"].num == 7.0);
    CHECK(mc["before_forward@gpu1"]["peak_reserved_mb"].num == 6.0);
  }

  TEST_CASE("meta is {} when empty and keeps a repeated key's first position and last value") {
    auto o = fixed_options();
    o.meta = {{"model", "Wan-AI/Wan2.1"}, {"prompt", "a \"cat\"\n"}, {"model", "Qwen/Qwen-Image"}};
    const auto d = dump(sample::profiled(), o);
    CHECK(d["meta"].keys() == std::vector<std::string>{"model", "prompt"});
    CHECK(d["meta"]["model"].str == "Qwen/Qwen-Image");
    CHECK(d["meta"]["prompt"].str == "a \"cat\"\n");
  }

  TEST_CASE("the tag, request id and timestamp options are written as given") {
    auto o = fixed_options();
    o.tag = "benchmark_dump";
    const auto d = dump(sample::profiled(), o);
    CHECK(d["tag"].str == "benchmark_dump");
    CHECK(d["timestamp"].str == "2025-12-18T09:54:57.458009+00:00");
  }

  TEST_CASE("without options the timestamp is UTC with microseconds and the id a UUIDv4") {
    diffscope::perf_dump_options o;
    o.commit_hash = "N/A";
    const auto a = dump(sample::profiled(), o);
    const auto b = dump(sample::profiled(), o);
    CHECK(std::regex_match(a["timestamp"].str,
                           std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00)")));
    const std::regex uuid4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
    CHECK(std::regex_match(a["request_id"].str, uuid4));
    CHECK(std::regex_match(b["request_id"].str, uuid4));
    CHECK(a["request_id"].str != b["request_id"].str);
  }

  TEST_CASE("utc_now formats the UTC time with strftime, %f giving the microseconds") {
    const std::string t = diffscope::detail::utc_now("%Y-%m-%dT%H:%M:%S.%f+00:00");
    CHECK(std::regex_match(t, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00)")));
    CHECK(std::regex_match(diffscope::detail::utc_timestamp_now(),
                           std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00)")));
    CHECK(std::regex_match(diffscope::detail::utc_now("%Y%m%d-%H%M%S"),
                           std::regex(R"(\d{8}-\d{6})")));
    CHECK(std::regex_match(diffscope::detail::utc_now("%f|%%f|%%"), std::regex(R"(\d{6}\|%f\|%)")));
  }

  TEST_CASE("trim drops white space at both ends only") {
    using diffscope::detail::trim;
    CHECK(trim(" \t abc123 \r\n") == "abc123");
    CHECK(trim("\v\fa b\f") == "a b");
    CHECK(trim(" \n ").empty());
    CHECK(trim("").empty());
  }

  TEST_CASE("the commit hash comes from DIFFSCOPE_COMMIT, SGLANG_GIT_COMMIT, git, else N/A") {
    const fs::path repo = fresh_dir("commit_repo");
    const fs::path plain = fresh_dir("commit_plain");
    // Stop git from finding a repository above the temp directories.
    env_guard ceiling("GIT_CEILING_DIRECTORIES", fs::temp_directory_path().c_str());
    SUBCASE("DIFFSCOPE_COMMIT wins over SGLANG_GIT_COMMIT") {
      env_guard a("DIFFSCOPE_COMMIT", " abc123 \n");
      env_guard b("SGLANG_GIT_COMMIT", "def456");
      CHECK(diffscope::detail::resolve_commit_hash() == "abc123");
    }
    SUBCASE("SGLANG_GIT_COMMIT is used when DIFFSCOPE_COMMIT is unset or empty") {
      env_guard a("DIFFSCOPE_COMMIT", "");
      env_guard b("SGLANG_GIT_COMMIT", "def456");
      CHECK(diffscope::detail::resolve_commit_hash() == "def456");
    }
    SUBCASE("git rev-parse HEAD in the current directory, else N/A") {
      env_guard a("DIFFSCOPE_COMMIT", nullptr);
      env_guard b("SGLANG_GIT_COMMIT", nullptr);
      const std::string init = "cd '" + repo.string() +
                               "' && git init -q . && git -c user.name=t -c user.email=t@t "
                               "commit -q --allow-empty -m t && git rev-parse HEAD > head.txt";
      if (std::system(init.c_str()) != 0) {
        MESSAGE("git not usable here: only the N/A path is checked");
      } else {
        std::string expected = read_file(repo / "head.txt");
        expected.erase(expected.find_last_not_of("\n") + 1);
        cwd_guard in_repo(repo);
        CHECK(diffscope::detail::resolve_commit_hash() == expected);
        CHECK(expected.size() == 40);
      }
      {
        cwd_guard in_plain(plain);
        CHECK(diffscope::detail::resolve_commit_hash() == "N/A");
      }
      {
        env_guard no_path("PATH", "/nonexistent");  // git not found: still N/A, no noise
        cwd_guard in_repo(repo);
        CHECK(diffscope::detail::resolve_commit_hash() == "N/A");
      }
    }
    fs::remove_all(repo);
    fs::remove_all(plain);
  }

  TEST_CASE("host-only results report host numbers and diffscope.status says why") {
    const auto d = dump(sample::host_only());
    CHECK(d["steps"][2]["duration_ms"].num == 900.125);
    CHECK(d["steps"][1]["duration_ms"].num == 30.5);
    CHECK(d["denoise_steps_ms"][0]["duration_ms"].num == 5.0);
    const auto& ds = d["diffscope"];
    CHECK(ds["status"]["gpu_timing"].b == false);
    CHECK(ds["status"]["reason"].str == "no CUDA driver");
    CHECK(ds["stages"][2]["duration_source"].str == "host");
    CHECK(ds["stages"][2]["gpu"].k == mini_json::kind::null);  // absent, not zero
    CHECK(ds["scopes"][0]["gpu"].k == mini_json::kind::null);
    CHECK(ds["kernels"].items.empty());
  }

  TEST_CASE("perf mode: a timed step without kernels takes its span; the mode is labelled") {
    auto r = sample::host_only();
    r.status.mode = "perf";
    r.status.gpu_timing = true;
    r.status.reason.clear();
    diffscope::gpu_stats span;
    span.measured = true;
    span.busy_ms = span.occupied_ms = span.envelope_ms = 7.25;
    span.timed_calls = 1;
    r.steps[0].gpu = span;
    const auto d = dump(r);
    CHECK(d["denoise_steps_ms"][0]["duration_ms"].num == 7.25);
    const auto& ds = d["diffscope"];
    CHECK(ds["status"]["mode"].str == "perf");
    CHECK(ds["steps"][0]["duration_source"].str == "gpu_envelope");
    CHECK(ds["steps"][0]["gpu"]["timed_calls"].num == 1);
    CHECK(ds["steps"][0]["gpu"]["kernels"].num == 0);
    CHECK(ds["timing"]["summary"].str.find("perf mode") == 0);
    // Profile-mode GPU objects carry no timed_calls key (their layout is unchanged).
    CHECK_FALSE(dump(sample::profiled())["diffscope"]["steps"][0]["gpu"].has("timed_calls"));
  }

  TEST_CASE("sampled mode: durations are spans, traced steps and estimates are marked") {
    const auto r = sample::sampled();
    const auto d = dump(r);
    // Stages and steps take their span (exact), traced or not.
    CHECK(d["steps"][2]["duration_ms"].num == 960.25);
    CHECK(d["denoise_steps_ms"][0]["duration_ms"].num == 238.0);
    CHECK(d["denoise_steps_ms"][3]["duration_ms"].num == 241.0);
    const auto& ds = d["diffscope"];
    CHECK(ds["status"]["mode"].str == "sampled");
    CHECK(ds["timing"]["summary"].str.find("sampled mode") == 0);
    CHECK(ds["timing"].has("span_ms"));
    CHECK(ds["steps"][0]["duration_source"].str == "gpu_span");
    CHECK_FALSE(ds["steps"][0]["traced"].b);
    CHECK(ds["steps"][1]["traced"].b);
    CHECK(ds["steps"][0]["gpu"]["span_ms"].num == 238.0);
    CHECK(ds["steps"][0]["gpu"]["traced_calls"].num == 0);
    CHECK(ds["steps"][0]["gpu"]["busy_ms"].num == 0);
    CHECK_FALSE(ds["steps"][0].has("categories"));
    CHECK(ds["steps"][1]["categories"]["attention"].num == 110);
    CHECK(ds["stages"][2]["gpu"]["estimated"].b);
    CHECK(ds["stages"][2]["gpu"]["error_ms"].num == 12.5);
    CHECK(ds["scopes"][1]["gpu"]["estimated"].b);
    CHECK(ds["scopes"][1]["gpu"]["error_ms"].num == 4.25);
    CHECK_FALSE(ds["scopes"][0]["gpu"].has("error_ms"));
    CHECK(ds["kernels"][0]["estimated"].b);
    CHECK(ds["kernels"][0]["error_ms"].num == 22);
    const auto& sm = ds["sampling"];
    CHECK(sm.keys() == std::vector<std::string>{"rule", "steps", "traced_steps", "traced_indices",
                                                "switches", "switch_ms", "launches_traced",
                                                "launches_untraced_estimated",
                                                "saved_callback_ms_estimated"});
    CHECK(sm["rule"].str == "steps 1-2");
    CHECK(sm["traced_steps"].num == 2);
    REQUIRE(sm["traced_indices"].items.size() == 2);
    CHECK(sm["traced_indices"][1].num == 2);
    CHECK(ds["faults"]["sample_switch_failures"].num == 1);
    CHECK(ds["faults"]["sampled_steps_empty"].num == 0);
    // None of these keys in a profile dump (its layout is unchanged).
    const auto p = dump(sample::profiled())["diffscope"];
    CHECK_FALSE(p.has("sampling"));
    CHECK_FALSE(p["steps"][0].has("traced"));
    CHECK_FALSE(p["steps"][0]["gpu"].has("traced_calls"));
    CHECK_FALSE(p["kernels"][0].has("estimated"));
    CHECK_FALSE(p["faults"].has("sample_switch_failures"));
  }

  TEST_CASE("sampled mode in the summary: the rule, traced steps, spans and ~ estimates") {
    const std::string text = diffscope::summary_text(sample::sampled());
    CHECK(text.find("mode: sampled") != std::string::npos);
    CHECK(text.find("sampled mode: steps 1-2, traced 2 of 4 steps (1, 2)") != std::string::npos);
    // The DenoisingStage's dump ms is its span; its busy an estimate.
    CHECK(text.find("960.25") != std::string::npos);
    CHECK(text.find("~880.00") != std::string::npos);
    // Untraced steps show their span and no operations; traced ones their busy.
    CHECK(text.find("GPU span ms") != std::string::npos);
    CHECK(std::regex_search(text, std::regex(R"(\n +0 +[0-9.]+ +238\.00 +not traced\n)")));
    CHECK(std::regex_search(text, std::regex(R"(\n +1 +[0-9.]+ +239\.00 +220\.00\n)")));
    CHECK(text.find("~440.00") != std::string::npos);  // an estimated kernel's total
    CHECK(text.find("sample_switch_failures=1") != std::string::npos);
    CHECK(text.find("sampling: 2 tracing switches") != std::string::npos);
    // A profile run's summary says none of it.
    const std::string prof = diffscope::summary_text(sample::profiled());
    CHECK(prof.find("sampled") == std::string::npos);
    CHECK(prof.find("not traced") == std::string::npos);
    CHECK(prof.find('~') == std::string::npos);
  }

  TEST_CASE("each step's busy by kernel category, where operations were traced") {
    using namespace diffscope::detail;
    aggregator agg;
    std::uint32_t corr = 1;
    const auto run = [&](const char* name, std::uint64_t start, std::uint64_t dur) {
      agg.on_launch(corr, launch_kind::kernel);
      gpu_op o;
      o.correlation_id = corr++;
      o.start_ns = start;
      o.end_ns = start + dur;
      o.name = name;
      agg.on_gpu_op(o);
    };
    for (std::int64_t s = 0; s < 3; ++s) {
      const std::uint64_t t = 1'000'000 * static_cast<std::uint64_t>(s + 1);
      agg.push(range_domain::diffscope, agg.intern("denoise_step"),
               diffscope::category::denoise_step, s, t);
      run("flash_fwd_kernel", t, 250'000);
      run("nvjet_tst_64x", t + 300'000, 500'000 + 1000 * static_cast<std::uint64_t>(s));
      run("rotary_kernel", t + 900'000, 1234);
      agg.pop(range_domain::diffscope, t + 10);
    }
    agg.finalize_all();
    auto r = agg.snapshot(true);
    diffscope::categorise_steps(r.steps, diffscope::kernel_classifier());  // as assembly does
    const auto d = dump(r);
    const auto& steps = d["diffscope"]["steps"];
    REQUIRE(steps.items.size() == 3);
    for (std::size_t s = 0; s < 3; ++s) {
      const auto& c = steps[s]["categories"];
      CHECK(c.keys() == std::vector<std::string>{"gemm", "attention", "rope"});  // rules' order
      CHECK(c["gemm"].num == doctest::Approx(0.5 + 0.001 * static_cast<double>(s)));
      CHECK(c["attention"].num == doctest::Approx(0.25));
      CHECK(c["rope"].num == doctest::Approx(0.001234));
      CHECK(c["gemm"].num + c["attention"].num + c["rope"].num ==
            doctest::Approx(steps[s]["gpu"]["busy_ms"].num).epsilon(1e-12));
    }
    // Not traced (host only, perf mode) or not categorised: no key, not zeros.
    CHECK_FALSE(dump(sample::host_only())["diffscope"]["steps"][0].has("categories"));
    CHECK_FALSE(dump(sample::profiled())["diffscope"]["steps"][0].has("categories"));
  }

  TEST_CASE("perf mode, every scope sampled: the granularity is labelled, estimates marked") {
    auto r = sample::host_only();
    r.status.mode = "perf";
    r.status.gpu_timing = true;
    r.status.reason.clear();
    r.status.perf_scopes = "all";
    r.status.perf_sample_steps = 4;
    diffscope::gpu_stats span;
    span.measured = true;
    span.busy_ms = span.occupied_ms = span.envelope_ms = 2.0;
    span.timed_calls = 2;
    span.estimated = true;
    r.scopes[0].gpu = span;
    const auto d = dump(r);
    const auto& ds = d["diffscope"];
    CHECK(ds["status"]["perf_scopes"].str == "all");
    CHECK(ds["status"]["perf_sample_steps"].num == 4);
    CHECK(ds["timing"].has("sampling"));
    CHECK(ds["scopes"][0]["gpu"]["estimated"].b == true);
    const std::string text = diffscope::summary_text(r);
    CHECK(text.find("in one step of 4") != std::string::npos);
    CHECK(text.find("~2.00") != std::string::npos);
    // Not sampled: no sampling note, no estimate marks; profile mode: no perf keys.
    r.status.perf_sample_steps = 1;
    r.scopes[0].gpu.estimated = false;
    const auto e = dump(r);
    CHECK_FALSE(e["diffscope"]["timing"].has("sampling"));
    CHECK_FALSE(e["diffscope"]["scopes"][0]["gpu"].has("estimated"));
    CHECK(diffscope::summary_text(r).find('~') == std::string::npos);
    CHECK_FALSE(dump(sample::profiled())["diffscope"]["status"].has("perf_scopes"));
  }

  TEST_CASE("a run with GPU timing paused says so in the dump's status") {
    auto r = sample::profiled();
    CHECK_FALSE(dump(r)["diffscope"]["status"].has("timing_pauses"));
    r.status.timing_pauses = 3;
    CHECK(dump(r)["diffscope"]["status"]["timing_pauses"].num == 3);
  }

  TEST_CASE(
      "CUPTI settings other than the defaults are named in the status and the summary; the "
      "launch callbacks in use in the overhead section") {
    auto r = sample::profiled();
    CHECK_FALSE(dump(r)["diffscope"]["status"].has("cupti_settings"));
    CHECK(diffscope::summary_text(r).find("CUPTI settings") == std::string::npos);
    CHECK_FALSE(dump(r)["diffscope"]["overhead"].has("launch_callbacks"));
    r.overhead.launch_callbacks = "driver";
    CHECK(dump(r)["diffscope"]["overhead"]["launch_callbacks"].str == "driver");
    r.status.cupti_settings = "launch_apis=none";
    CHECK(dump(r)["diffscope"]["status"]["cupti_settings"].str == "launch_apis=none");
    CHECK(diffscope::summary_text(r).find("CUPTI settings (not the defaults): launch_apis=none") !=
          std::string::npos);
  }

  TEST_CASE("perf-mode settings other than the defaults are named in the status and the summary") {
    auto r = sample::profiled();
    CHECK_FALSE(dump(r)["diffscope"]["status"].has("perf_settings"));
    CHECK(diffscope::summary_text(r).find("Perf-mode settings") == std::string::npos);
    r.status.perf_settings = "events=side drain=each";
    CHECK(dump(r)["diffscope"]["status"]["perf_settings"].str == "events=side drain=each");
    CHECK(diffscope::summary_text(r).find(
              "Perf-mode settings (not the defaults): events=side drain=each") !=
          std::string::npos);
  }

  TEST_CASE(
      "names with quotes, backslashes, control characters and invalid UTF-8 stay valid "
      "JSON") {
    auto r = sample::profiled();
    r.stages[0].name = std::string("St\"age\\\x02\xff", 9);
    const std::string text = diffscope::perf_dump_json(r, fixed_options());
    const auto d = mini_json::parse(text);  // throws on invalid JSON or invalid UTF-8
    CHECK(d["steps"][0]["name"].str == "St\"age\\\x02\xEF\xBF\xBD");
    const auto& kernels = d["diffscope"]["kernels"];
    CHECK(kernels[1]["name"].str == "nvjet_gemm \"quoted\" \\ back");
    CHECK(kernels[3]["name"].str ==
          "bad\xEF\xBF\xBD\xEF\xBF\xBD utf8 \x01 ctl \xEF\xBF\xBD\xEF\xBF\xBD cut");
    CHECK(kernels[2]["name"].str == "r\xc3\xa9sum\xc3\xa9_\xe2\x9c\x93_kernel");
    CHECK(d["diffscope"]["scopes"][3]["path"].str == "DenoisingStage/denoise_step/norm \"q\\k\"");
  }

  TEST_CASE("a kernel's entry keeps CUPTI's symbol beside its demangled name, where they differ") {
    auto r = sample::profiled();
    r.kernels[0].name = "kernel(float*, int)";
    r.kernels[0].mangled = "_Z6kernelPfi";
    const auto ds = dump(r, fixed_options())["diffscope"];
    CHECK(ds["kernels"][0].keys() == std::vector<std::string>{"name", "mangled", "kind",
                                                              "scope_path", "count", "total_ms",
                                                              "mean_ms", "min_ms", "max_ms"});
    CHECK(ds["kernels"][0]["name"].str == "kernel(float*, int)");
    CHECK(ds["kernels"][0]["mangled"].str == "_Z6kernelPfi");
    CHECK_FALSE(ds["kernels"][1].has("mangled"));
  }

  TEST_CASE("the diffscope section carries status, tables, every fault counter and the gate") {
    auto r = sample::profiled();
    r.faults.dropped_records = 1;
    r.faults.late_records = 7;
    r.status.cupti_holder = "Nsight Systems";
    auto o = fixed_options();
    o.gate_verdict = "invalid: diffusers fallback";
    o.max_kernels = 2;
    const auto ds = dump(r, o)["diffscope"];
    CHECK(ds.keys() == std::vector<std::string>{"schema_version", "version", "timing", "status",
                                                "gate", "environment", "window", "stages", "steps",
                                                "requests", "scopes", "kernels_total", "kernels",
                                                "hotspots", "memory", "faults", "unclosed_ranges",
                                                "overhead", "trace"});
    CHECK(ds["schema_version"].num == 1);
    CHECK(ds["timing"].has("total_duration_ms"));
    CHECK(ds["timing"].has("steps.duration_ms"));
    CHECK(ds["status"]["cupti_holder"].str == "Nsight Systems");
    CHECK(ds["gate"]["gated"].b);
    CHECK(ds["gate"]["verdict"].str == "invalid: diffusers fallback");
    CHECK(ds["faults"].keys() ==
          std::vector<std::string>{"dropped_records", "zero_timestamps", "inverted_timestamps",
                                   "unattributed_records", "unbalanced_pops", "unclosed_at_stop",
                                   "late_records", "trace_events_dropped", "untimed_no_context",
                                   "timing_failures", "timing_unresolved", "ranges_folded",
                                   "names_folded"});
    CHECK(ds["faults"]["dropped_records"].num == 1);
    CHECK(ds["faults"]["late_records"].num == 7);
    CHECK(ds["kernels_total"].num == 5);
    CHECK(ds["kernels"].items.size() == 2);
    CHECK(ds["kernels"][0]["mean_ms"].num == doctest::Approx(440.0 / 96));
    const auto& scope = ds["scopes"][2];
    CHECK(scope["path"].str == "DenoisingStage/denoise_step/attention");
    CHECK(scope["category"].str == "attention");
    CHECK(scope["depth"].num == 2);
    CHECK(scope["parent"].num == 1);
    CHECK(scope["calls"].num == 96);
    CHECK(scope["gpu"]["busy_ms"].num == 440);
    CHECK(scope["gpu"]["occupied_ms"].num == 440);
    CHECK(scope["gpu"]["envelope_ms"].num == 600);
    CHECK(scope["launches"].num == 96);
    CHECK(ds["environment"]["gpu_name"].str == "NVIDIA H200");
    CHECK(ds["overhead"]["per_range_ns"].num == 95.25);
    CHECK(ds["trace"]["enabled"].b == false);
    const auto ungated = dump(sample::profiled())["diffscope"]["gate"];
    CHECK(ungated["gated"].b == false);
  }

  TEST_CASE("one window: every section of the dump covers the last request, outside work apart") {
    using namespace diffscope::detail;
    // Built by the aggregator: a warm-up, unannotated work, then two requests of which the
    // first one's records arrive last.
    aggregator agg;
    std::uint32_t corr = 1;
    const auto request = [&](const char* id, std::uint64_t t, bool warmup) {
      agg.push(range_domain::diffscope, agg.intern(warmup ? "warmup" : "request", false),
               diffscope::category::request, std::nullopt, t, id, warmup);
    };
    const auto scope = [&](const char* name, std::uint64_t t, diffscope::category c) {
      agg.push(range_domain::diffscope, agg.intern(name, !aggregator::never_folded(c)), c,
               std::nullopt, t);
    };
    const auto op = [&](std::uint32_t id, std::uint64_t start, std::uint64_t dur,
                        const char* name) {
      gpu_op o;
      o.correlation_id = id;
      o.start_ns = start;
      o.end_ns = start + dur;
      o.name = name;
      agg.on_gpu_op(o);
    };
    request("warmup", 1, true);
    agg.on_launch(corr, launch_kind::kernel);
    const std::uint32_t warm = corr++;
    agg.pop(range_domain::diffscope, 2);
    agg.on_launch(corr, launch_kind::kernel);
    const std::uint32_t loose = corr++;
    std::vector<std::uint32_t> first, last;
    for (int i = 0; i < 2; ++i) {
      request(i == 0 ? "a" : "b", 10 + 10 * i, false);
      scope("DenoisingStage", 11 + 10 * i, diffscope::category::stage);
      scope("attention", 12 + 10 * i, diffscope::category::attention);
      for (int k = 0; k < 3; ++k) {
        agg.on_launch(corr, launch_kind::kernel);
        (i == 0 ? first : last).push_back(corr++);
      }
      for (int p = 0; p < 3; ++p) agg.pop(range_domain::diffscope, 13 + 10 * i + p);
    }
    op(warm, 100, 4000, "flash_fwd_kernel");
    op(loose, 5000, 300, "elementwise_kernel");
    for (std::size_t k = 0; k < last.size(); ++k)
      op(last[k], 6000 + 100 * k, 20 + k, "gemm_kernel");
    for (std::size_t k = 0; k < first.size(); ++k)
      op(first[k], 7000 + 100 * k, 50, "flash_fwd_kernel");
    agg.finalize_all();
    diffscope::results r = agg.snapshot(true);
    const auto d = dump(r);
    const auto& ds = d["diffscope"];
    const auto& w = ds["window"];
    CHECK(w["covers"].str == "last");
    REQUIRE(w["requests"].items.size() == 1);
    CHECK(w["requests"][0]["index"].num == 2);
    CHECK(w["requests"][0]["id"].str == "b");
    CHECK(w["kernel_names"].num == 1);
    // The window's kernels, its hotspots, its stage and its GPU total are the same 63 ns.
    double kernels = 0;
    for (const auto& k : ds["kernels"].items) kernels += k["total_ms"].num;
    const double busy = r.requests[2].gpu.busy_ms;
    CHECK(busy == doctest::Approx(63e-6));
    CHECK(kernels == doctest::Approx(busy));
    CHECK(w["gpu"]["busy_ms"].num == doctest::Approx(busy));
    CHECK(w["gpu"]["operations"].num == 3);
    CHECK(ds["hotspots"]["total_ms"].num == doctest::Approx(busy));
    CHECK(ds["kernels_total"].num == 1);
    REQUIRE(ds["stages"].items.size() == 1);
    CHECK(ds["stages"][0]["calls"].num == 1);
    CHECK(ds["stages"][0]["gpu"]["busy_ms"].num == doctest::Approx(busy));
    for (const auto& s : ds["scopes"].items)
      if (s["path"].str == "request/DenoisingStage/attention")
        CHECK(s["gpu"]["busy_ms"].num == doctest::Approx(busy));
    // No flash kernel ran in the window: the warm-up's and request a's are not its findings.
    for (const auto& f : ds["hotspots"]["families"].items) CHECK(f["status"].str != "engaged");
    // Outside: the warm-up and the unannotated kernel, 4.3 us in 2 operations.
    CHECK(w["outside"]["busy_ms"].num == doctest::Approx(4300e-6));
    CHECK(w["outside"]["operations"].num == 2);
    CHECK(w["warmups"]["operations"].num == 1);
    const std::string text = diffscope::summary_text(r);
    CHECK(text.find("Window: the last of 2 counted requests (id b), in every table below "
                    "(DIFFSCOPE_WINDOW=requests: all of them)\n") != std::string::npos);
    CHECK(text.find("Outside requests: 0.00 ms of GPU work in 2 operations (warm-ups: 0.00 ms in "
                    "1), in no table\n") != std::string::npos);
    CHECK(text.find("Top kernels (1 of 1") != std::string::npos);

    // Host-only results: the window is named, its GPU figures are absent, not zero.
    const auto h = dump(sample::host_only())["diffscope"]["window"];
    CHECK(h["covers"].str == "run");
    CHECK(h["requests"].items.empty());
    CHECK(h["gpu"].k == mini_json::kind::null);
    CHECK(h["outside"].k == mini_json::kind::null);
  }

  TEST_CASE("ranges open at stop and scopes past the cap are in the dump") {
    CHECK(dump(sample::profiled())["diffscope"]["unclosed_ranges"].items.empty());  // always there
    auto r = sample::with_unclosed_ranges();
    r.faults.ranges_folded = 1234;
    r.faults.names_folded = 100;
    r.status.max_scopes = 10'000;
    const auto ds = dump(r)["diffscope"];
    CHECK(ds["faults"]["unclosed_at_stop"].num == 4);
    CHECK(ds["faults"]["ranges_folded"].num == 1234);
    CHECK(ds["faults"]["names_folded"].num == 100);
    CHECK(ds["status"]["max_scopes"].num == 10'000);
    const auto& list = ds["unclosed_ranges"];
    REQUIRE(list.items.size() == 2);
    CHECK(list[0].keys() ==
          std::vector<std::string>{"thread", "open", "path", "step", "thread_exited"});
    CHECK(list[0]["thread"].num == 1);
    CHECK(list[0]["open"].num == 3);
    CHECK(list[0]["path"].str == "request/DenoisingStage/denoise_step");
    CHECK(list[0]["step"].num == 3);
    CHECK(list[0]["thread_exited"].b);
    CHECK(list[1]["path"].str == "worker");
    CHECK(list[1]["step"].num == -1);
    CHECK_FALSE(list[1]["thread_exited"].b);
  }

  TEST_CASE("write_perf_dump writes the file and reports a failure as a message") {
    const fs::path dir = fresh_dir("write_dump");
    const fs::path path = dir / "sub" / "dir" / "model_baseline.json";
    const auto err = diffscope::write_perf_dump(path.string(), sample::profiled(), fixed_options());
    CHECK_FALSE(err.has_value());
    CHECK(read_file(path) == diffscope::perf_dump_json(sample::profiled(), fixed_options()));
    std::ofstream(dir / "file") << "x";
    const auto bad = diffscope::write_perf_dump((dir / "file" / "d.json").string(),
                                                sample::profiled(), fixed_options());
    REQUIRE(bad.has_value());
    CHECK(bad->find("file/d.json") != std::string::npos);
    fs::remove_all(dir);
  }

  TEST_CASE("sample dumps are written for the Python checker and compare_perf tests") {
    // The CTest entries check_perf_dump and compare_perf_sglang read these files.
    const fs::path dir = fs::current_path() / "perf_dump_samples";
    auto o = fixed_options();
    o.meta = {{"model", "toy"}, {"prompt", "caf\xc3\xa9 \"quoted\""}};
    CHECK_FALSE(
        diffscope::write_perf_dump((dir / "profiled.json").string(), sample::profiled(), o));
    CHECK_FALSE(
        diffscope::write_perf_dump((dir / "host_only.json").string(), sample::host_only(), o));
    CHECK_FALSE(diffscope::write_perf_dump((dir / "sampled.json").string(), sample::sampled(), o));
    o.legacy_step_entries = true;
    CHECK_FALSE(
        diffscope::write_perf_dump((dir / "toy_baseline.json").string(), sample::profiled(), o));
    auto slower = sample::profiled();
    slower.wall_ms *= 1.5;
    slower.stages[3].gpu.envelope_ms += 500;
    for (auto& s : slower.steps) s.gpu.envelope_ms *= 1.2;
    CHECK_FALSE(diffscope::write_perf_dump((dir / "toy_tuned.json").string(), slower, o));
  }
}
