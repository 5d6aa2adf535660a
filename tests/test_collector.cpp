// The collector end to end through real NVTX calls (our macros and the plain NVTX C API, as
// PyTorch and SGLang use it), on whatever machine runs the tests: without a GPU it must give
// host timings and say why GPU timings are missing.
#include <doctest/doctest.h>

#include <diffscope/collector.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

namespace {

bool gpu_present() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

const diffscope::scope_result* find_scope(const diffscope::results& r, const std::string& path) {
  for (const auto& s : r.scopes)
    if (s.path == path) return &s;
  return nullptr;
}

diffscope::collector_options quiet() {
  diffscope::collector_options o;  // no outputs: the tests read the results
  return o;
}

void throwing_step(int i) {
  DIFFSCOPE_DENOISE_STEP(i);
  DIFFSCOPE_ATTENTION("attention");
  throw std::runtime_error("boom");
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_SUITE("collector") {
  TEST_CASE("the macros reach the collector as scopes, stages and steps") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    {
      DIFFSCOPE_STAGE("DenoisingStage");
      for (int i = 0; i < 4; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        DIFFSCOPE_NORM_ROPE("qk_norm_rope");
        DIFFSCOPE_ATTENTION("attention");
      }
    }
    auto r = c.stop();
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "DenoisingStage");
    REQUIRE(r.steps.size() == 4);
    CHECK(r.steps[3].step == 3);
    // Per-step categories only where operations were traced (none here without a GPU).
    CHECK(r.steps[3].categories_measured == r.window.gpu.measured);
    const auto* attn = find_scope(r, "DenoisingStage/denoise_step/qk_norm_rope/attention");
    REQUIRE(attn);
    CHECK(attn->host.calls == 4);
    CHECK(attn->cat == diffscope::category::attention);
    CHECK(attn->domain == "diffscope");
    CHECK(r.faults.unbalanced_pops == 0);
    CHECK(r.faults.unclosed_at_stop == 0);
  }

  TEST_CASE("without a GPU the collector keeps host timings and says why") {
    auto& c = diffscope::collector::instance();
    const bool gpu = c.start(quiet());
    { DIFFSCOPE_SCOPE("work"); }
    auto r = c.stop();
    CHECK(gpu == gpu_present());
    CHECK(r.status.gpu_timing == gpu);
    REQUIRE(find_scope(r, "work"));
    CHECK(find_scope(r, "work")->host.calls == 1);
    if (!gpu) {
      CHECK(r.status.reason.find("no CUDA driver or GPU") != std::string::npos);
      CHECK_FALSE(find_scope(r, "work")->gpu.measured);
    } else {
      CHECK(r.status.reason.empty());
    }
  }

  TEST_CASE("plain NVTX ranges with SGLang names map to stages and steps") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    nvtxRangePushA("stage_DenoisingStage");
    for (int i = 0; i < 3; ++i) {
      const std::string step =
          "denoising_step_" + std::to_string(i) + "_t" + std::to_string(999 - i);
      nvtxRangePushA(step.c_str());
      nvtxRangePushA("transformer.blocks.0.attn in=[[1, 4096, 3072]]");
      nvtxRangePop();
      nvtxRangePop();
    }
    nvtxRangePop();
    auto r = c.stop();
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "DenoisingStage");
    REQUIRE(r.steps.size() == 3);
    CHECK(r.steps[2].step == 2);
    const auto* m = find_scope(r, "DenoisingStage/denoise_step/transformer.blocks.0.attn");
    REQUIRE(m);
    CHECK(m->host.calls == 3);
    CHECK(m->domain.empty());
  }

  TEST_CASE("an exception unwinding through scopes closes them all") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    for (int i = 0; i < 3; ++i) {
      try {
        throwing_step(i);
      } catch (const std::runtime_error&) {
      }
    }
    auto r = c.stop();
    CHECK(r.steps.size() == 3);
    REQUIRE(find_scope(r, "denoise_step/attention"));
    CHECK(find_scope(r, "denoise_step/attention")->host.calls == 3);
    CHECK(r.faults.unclosed_at_stop == 0);
    CHECK(r.faults.unbalanced_pops == 0);
  }

  TEST_CASE("unbalanced manual ranges are counted and reported") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    nvtxRangePop();  // nothing open
    nvtxRangePushA("left_open");
    auto r = c.stop();
    CHECK(r.faults.unbalanced_pops == 1);
    CHECK(r.faults.unclosed_at_stop == 1);
    nvtxRangePop();  // closes "left_open" after stop: not a fault of the next run
    c.start(quiet());
    { DIFFSCOPE_SCOPE("next"); }
    auto r2 = c.stop();
    CHECK(r2.faults.unbalanced_pops == 0);
    CHECK(find_scope(r2, "next"));
  }

  TEST_CASE("ranges open at stop are counted and named: a live thread's and an ended one's") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    std::thread([] { nvtxRangePushA("ended_with_this_open"); }).join();
    std::mutex m;
    std::condition_variable cv;
    int phase = 0;  // 1: the live thread's ranges are open; 2: the collector stopped
    std::thread live([&] {
      nvtxRangePushA("request_r1");
      nvtxRangePushA("stage_DenoisingStage");
      nvtxRangePushA("denoising_step_3_t900");
      std::unique_lock<std::mutex> lock(m);
      phase = 1;
      cv.notify_all();
      cv.wait(lock, [&] { return phase == 2; });
    });
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return phase == 1; });
    }
    auto r = c.stop();
    {
      std::lock_guard<std::mutex> lock(m);
      phase = 2;
    }
    cv.notify_all();
    live.join();
    CHECK(r.faults.unclosed_at_stop == 4);
    REQUIRE(r.unclosed_ranges.size() == 2);
    CHECK(r.unclosed_ranges[0].path == "ended_with_this_open");
    CHECK(r.unclosed_ranges[0].thread_exited);
    CHECK(r.unclosed_ranges[1].path == "request/DenoisingStage/denoise_step");
    CHECK(r.unclosed_ranges[1].step == 3);
    CHECK(r.unclosed_ranges[1].open == 3);
    CHECK_FALSE(r.unclosed_ranges[1].thread_exited);
    const std::string text = diffscope::summary_text(r);
    CHECK(text.find("faults: none") == std::string::npos);
    CHECK(text.find("faults: unclosed_at_stop=4") != std::string::npos);
    CHECK(text.find(": request/DenoisingStage/denoise_step (step 3), 3 open\n") !=
          std::string::npos);
    const std::string dump = diffscope::perf_dump_json(r);
    CHECK(dump.find("\"unclosed_at_stop\": 4") != std::string::npos);
    CHECK(dump.find("\"path\": \"request/DenoisingStage/denoise_step\"") != std::string::npos);
    c.start(quiet());  // the next run starts clean
    CHECK(c.stop().faults.unclosed_at_stop == 0);
  }

  TEST_CASE("a program that exits with ranges open gets them counted and named at exit") {
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("diffscope_test_unclosed_" + std::to_string(getpid())))
                                .string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string cmd = "DIFFSCOPE_DUMP=" + dir + "/d.json DIFFSCOPE_SUMMARY=1 " +
                            "DIFFSCOPE_NO_GPU=1 " + DIFFSCOPE_UNCLOSED_APP + " 3 2>" + dir +
                            "/stderr.txt";
    const int status = std::system(cmd.c_str());
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 3);  // the program's own exit code
    const std::string dump = read_file(dir + "/d.json");
    const std::string err = read_file(dir + "/stderr.txt");
    CHECK(dump.find("\"unclosed_at_stop\": 4") != std::string::npos);
    CHECK(dump.find("\"path\": \"request/DenoisingStage/denoise_step\"") != std::string::npos);
    CHECK(dump.find("\"path\": \"worker_left_open\"") != std::string::npos);
    CHECK(err.find("faults: none") == std::string::npos);
    CHECK(err.find("faults: unclosed_at_stop=4") != std::string::npos);
    CHECK(err.find("request/DenoisingStage/denoise_step (step 3), 3 open, thread ended") !=
          std::string::npos);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("DIFFSCOPE_MAX_SCOPES caps distinct scopes; the rest is counted in (other)") {
    unsetenv("DIFFSCOPE_MAX_SCOPES");
    CHECK(diffscope::collector_options::from_env().max_scopes == 10'000);
    setenv("DIFFSCOPE_MAX_SCOPES", "20", 1);
    auto o = diffscope::collector_options::from_env();
    unsetenv("DIFFSCOPE_MAX_SCOPES");
    CHECK(o.max_scopes == 20);
    auto& c = diffscope::collector::instance();
    c.start(o);
    nvtxRangePushA("stage_DenoisingStage");
    for (int i = 0; i < 120; ++i) {
      nvtxRangePushA(("block_" + std::to_string(i)).c_str());
      nvtxRangePop();
    }
    for (int i = 0; i < 3; ++i) {
      DIFFSCOPE_DENOISE_STEP(i);  // steps are never folded
      DIFFSCOPE_SCOPE("a_macro_scope_past_the_cap");
    }
    nvtxRangePop();
    auto r = c.stop();
    const auto* other = find_scope(r, "DenoisingStage/(other)");
    REQUIRE(other);
    CHECK(other->host.calls == 100);
    REQUIRE(find_scope(r, "DenoisingStage/denoise_step/(other)"));
    CHECK(find_scope(r, "DenoisingStage/denoise_step/(other)")->host.calls == 3);  // the macro's
    CHECK(find_scope(r, "DenoisingStage/block_19"));
    CHECK_FALSE(find_scope(r, "DenoisingStage/block_20"));
    REQUIRE(r.steps.size() == 3);
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "DenoisingStage");
    CHECK(find_scope(r, "DenoisingStage/denoise_step"));
    CHECK(r.faults.ranges_folded == 103);
    CHECK(r.faults.names_folded == 101);
    CHECK(r.status.max_scopes == 20);
    const std::string text = diffscope::summary_text(r);
    CHECK(text.find("ranges_folded=103, names_folded=101") != std::string::npos);
    CHECK(text.find("past 20 distinct scopes (DIFFSCOPE_MAX_SCOPES)") != std::string::npos);
    const std::string dump = diffscope::perf_dump_json(r);
    CHECK(dump.find("\"ranges_folded\": 103") != std::string::npos);
    CHECK(dump.find("\"max_scopes\": 20") != std::string::npos);
  }

  TEST_CASE("a range opened before start and closed after is not a fault") {
    auto& c = diffscope::collector::instance();
    nvtxRangePushA("before_start");
    c.start(quiet());
    { DIFFSCOPE_SCOPE("inside"); }
    nvtxRangePop();
    auto r = c.stop();
    CHECK(r.faults.unbalanced_pops == 0);
    CHECK(find_scope(r, "inside"));
    CHECK_FALSE(find_scope(r, "before_start"));
  }

  TEST_CASE("the collector starts and stops repeatedly, each run on its own") {
    auto& c = diffscope::collector::instance();
    for (int run = 0; run < 5; ++run) {
      CHECK_FALSE(c.active());
      c.start(quiet());
      CHECK(c.active());
      for (int i = 0; i <= run; ++i) {
        DIFFSCOPE_SCOPE("repeated");
      }
      auto r = c.stop();
      REQUIRE(find_scope(r, "repeated"));
      CHECK(find_scope(r, "repeated")->host.calls == static_cast<std::uint64_t>(run + 1));
    }
    auto again = c.stop();  // stop when stopped: the last results, no crash
    CHECK(find_scope(again, "repeated"));
  }

  TEST_CASE("a session writes the dump, trace and summary it was asked for") {
    // A private temporary directory: the test may run from any working directory.
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("diffscope_test_collector_" + std::to_string(getpid())))
                                .string();
    std::remove((dir + "/perf.json").c_str());
    std::remove((dir + "/trace.json").c_str());
    diffscope::collector_options o;
    o.dump_path = dir + "/perf.json";
    o.trace_path = dir + "/trace.json";
    {
      diffscope::collector_session session(o);
      DIFFSCOPE_STAGE("DenoisingStage");
      DIFFSCOPE_DENOISE_STEP(0);
    }
    const std::string dump = read_file(dir + "/perf.json");
    CHECK(dump.find("\"DenoisingStage\"") != std::string::npos);
    CHECK(dump.find("\"denoise_steps_ms\"") != std::string::npos);
    const std::string trace = read_file(dir + "/trace.json");
    CHECK(trace.find("\"traceEvents\"") != std::string::npos);
    CHECK(trace.find("denoising_step_0") != std::string::npos);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("outputs that could not be written are reported after stop") {
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("diffscope_test_output_errors_" + std::to_string(getpid())))
                                .string();
    std::filesystem::create_directories(dir + "/a-directory.json");
    diffscope::collector_options o;
    o.dump_path = dir + "/a-directory.json";  // a directory: never replaced, an error
    o.trace_path = dir + "/trace.json";
    {
      diffscope::collector_session session(o);
      DIFFSCOPE_STAGE("DenoisingStage");
    }
    const std::vector<std::string> errors = diffscope::collector::instance().output_errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find(dir + "/a-directory.json") != std::string::npos);
    CHECK(std::filesystem::is_directory(dir + "/a-directory.json"));
    CHECK(std::filesystem::is_regular_file(dir + "/trace.json"));
    // The next start forgets them.
    o.dump_path = dir + "/perf.json";
    {
      diffscope::collector_session session(o);
      DIFFSCOPE_STAGE("DenoisingStage");
    }
    CHECK(diffscope::collector::instance().output_errors().empty());
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("output paths expand {pid} and {rank} when written") {
    const std::string pid = std::to_string(static_cast<long long>(getpid()));
    unsetenv("RANK");
    unsetenv("LOCAL_RANK");
    CHECK(diffscope::detail::expand_output_path("d/dump-{pid}.json") == "d/dump-" + pid + ".json");
    CHECK(diffscope::detail::expand_output_path("r{rank}-{rank}.json") == "r0-0.json");
    setenv("LOCAL_RANK", "3", 1);
    CHECK(diffscope::detail::expand_output_path("r{rank}.json") == "r3.json");
    setenv("RANK", "5", 1);
    CHECK(diffscope::detail::expand_output_path("r{rank}.json") == "r5.json");
    unsetenv("RANK");
    unsetenv("LOCAL_RANK");
    CHECK(diffscope::detail::expand_output_path("plain.json") == "plain.json");
  }

  TEST_CASE("{label} and {request} expand; request ids become safe file-name parts") {
    unsetenv("DIFFSCOPE_LABEL");
    CHECK(diffscope::detail::expand_output_path("o/{label}-{request}.json") == "o/run-all.json");
    setenv("DIFFSCOPE_LABEL", "B", 1);
    CHECK(diffscope::detail::expand_output_path("o/{label}-{request}.json", "r7") == "o/B-r7.json");
    unsetenv("DIFFSCOPE_LABEL");
    CHECK(diffscope::detail::file_name_part("a/b c:d") == "a_b_c_d");
    CHECK(diffscope::detail::file_name_part("..") == "request");
    CHECK(diffscope::detail::file_name_part(std::string(100, 'x')).size() == 64);
  }

  // A warm-up of 3 steps, then requests req-1 .. req-3 of 2 steps, step i of req-r sleeping r ms.
  diffscope::results warmup_and_three_requests(const diffscope::collector_options& o) {
    auto& c = diffscope::collector::instance();
    c.start(o);
    auto generate = [](int steps, int ms) {
      DIFFSCOPE_STAGE("DenoisingStage");
      for (int i = 0; i < steps; ++i) {
        DIFFSCOPE_DENOISE_STEP(i);
        DIFFSCOPE_SCOPE("block");
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      }
    };
    {
      DIFFSCOPE_WARMUP();
      generate(3, 1);
      DIFFSCOPE_SCOPE("compile_only_in_warmup");
    }
    for (int r = 1; r <= 3; ++r) {
      DIFFSCOPE_REQUEST("req-" + std::to_string(r));
      generate(2, r);
    }
    return c.stop();
  }

  TEST_CASE("requests: warm-ups are left out of every table; the dump holds the last request") {
    auto res = warmup_and_three_requests(quiet());
    REQUIRE(res.requests.size() == 4);
    CHECK(res.requests[0].warmup);
    CHECK(res.requests[0].id == "warmup");
    CHECK(res.requests[3].id == "req-3");
    CHECK_FALSE(res.requests[3].warmup);
    REQUIRE(res.requests[3].steps.size() == 2);
    CHECK(res.requests[3].steps[1].host_ms >= 3.0);
    REQUIRE(res.requests[3].stages.size() == 1);
    CHECK(res.requests[3].stages[0].calls == 1);
    CHECK(res.requests[3].host_ms >= res.requests[3].stages[0].host_ms);
    // The window's tables: the last request, the warm-up nowhere.
    CHECK(res.window.covers == "last");
    CHECK(res.window.requests == std::vector<std::uint64_t>{3});
    REQUIRE(res.stages.size() == 1);
    CHECK(res.stages[0].calls == 1);
    REQUIRE(res.steps.size() == 2);  // step 2 ran only in the warm-up
    CHECK(res.steps[0].calls == 1);
    CHECK_FALSE(find_scope(res, "warmup"));
    CHECK_FALSE(find_scope(res, "warmup/DenoisingStage"));
    const auto* block = find_scope(res, "request/DenoisingStage/denoise_step/block");
    REQUIRE(block);
    CHECK(block->host.calls == 2);

    const std::string dump = diffscope::perf_dump_json(res);
    CHECK(dump.find("\"request_id\": \"req-3\"") != std::string::npos);
    CHECK(dump.find("\"count\": 3,\n      \"warmups\": 1") != std::string::npos);
    CHECK(dump.find("\"total_duration_ms\": ") != std::string::npos);
    diffscope::perf_dump_options first;
    first.request = 1;
    CHECK(diffscope::perf_dump_json(res, first).find("\"request_id\": \"req-1\"") !=
          std::string::npos);
    const std::string text = diffscope::summary_text(res);
    CHECK(text.find("Requests: 3 counted, 1 warm-up") != std::string::npos);
    CHECK(text.find("Window: the last of 3 counted requests (id req-3), in every table below "
                    "(DIFFSCOPE_WINDOW=requests: all of them)\n") != std::string::npos);
    CHECK(dump.find("\"covers\": \"last\"") != std::string::npos);
  }

  TEST_CASE("DIFFSCOPE_WINDOW=requests: every table covers every counted request") {
    auto o = quiet();
    o.window = diffscope::detail::window_mode::requests;
    const auto res = warmup_and_three_requests(o);
    CHECK(res.window.covers == "requests");
    CHECK(res.window.requests == std::vector<std::uint64_t>{1, 2, 3});
    REQUIRE(res.stages.size() == 1);
    CHECK(res.stages[0].calls == 3);
    REQUIRE(res.steps.size() == 2);
    CHECK(res.steps[0].calls == 3);
    CHECK(res.steps[1].host_ms >= 6.0);  // 1 + 2 + 3 ms
    CHECK_FALSE(find_scope(res, "warmup"));
    const auto* block = find_scope(res, "request/DenoisingStage/denoise_step/block");
    REQUIRE(block);
    CHECK(block->host.calls == 6);
    CHECK(diffscope::summary_text(res).find("Window: all 3 counted requests, in every table "
                                            "below\n") != std::string::npos);
    // The SGLang part still holds one request, the last.
    CHECK(diffscope::perf_dump_json(res).find("\"request_id\": \"req-3\"") != std::string::npos);
  }

  TEST_CASE("DIFFSCOPE_SKIP_REQUESTS=N makes the first N requests warm-ups") {
    auto& c = diffscope::collector::instance();
    auto o = quiet();
    o.skip_requests = 1;
    c.start(o);
    for (int r = 0; r < 3; ++r) {
      DIFFSCOPE_REQUEST(r);
      DIFFSCOPE_STAGE("DenoisingStage");
    }
    auto res = c.stop();
    REQUIRE(res.requests.size() == 3);
    CHECK(res.requests[0].warmup);
    CHECK(res.requests[0].id == "0");
    CHECK_FALSE(res.requests[1].warmup);
    REQUIRE(res.stages.size() == 1);
    CHECK(res.stages[0].calls == 1);  // the last request's
    CHECK(res.window.requests == std::vector<std::uint64_t>{2});
    setenv("DIFFSCOPE_SKIP_REQUESTS", "2", 1);
    CHECK(diffscope::collector_options::from_env().skip_requests == 2);
    setenv("DIFFSCOPE_SKIP_REQUESTS", "-1", 1);  // not a count: reported, ignored
    CHECK(diffscope::collector_options::from_env().skip_requests == 0);
    unsetenv("DIFFSCOPE_SKIP_REQUESTS");
  }

  TEST_CASE("plain NVTX names: request_<id> and warmup map to requests") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    nvtxRangePushA("warmup");
    nvtxRangePushA("stage_DenoisingStage");
    nvtxRangePop();
    nvtxRangePop();
    nvtxRangePushA("request_abc");
    nvtxRangePushA("stage_DenoisingStage");
    nvtxRangePop();
    nvtxRangePop();
    auto res = c.stop();
    REQUIRE(res.requests.size() == 2);
    CHECK(res.requests[0].warmup);
    CHECK(res.requests[1].id == "abc");
    REQUIRE(res.stages.size() == 1);
    CHECK(res.stages[0].calls == 1);
  }

  TEST_CASE("{request} in the dump path writes one dump per counted request") {
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("diffscope_test_requests_" + std::to_string(getpid())))
                                .string();
    std::filesystem::remove_all(dir);
    diffscope::collector_options o;
    o.dump_path = dir + "/perf-{request}.json";
    {
      diffscope::collector_session session(o);
      {
        DIFFSCOPE_WARMUP();
        DIFFSCOPE_STAGE("DenoisingStage");
      }
      for (const char* id : {"a", "b/c"}) {
        DIFFSCOPE_REQUEST(id);
        DIFFSCOPE_STAGE("DenoisingStage");
      }
    }
    CHECK(std::filesystem::exists(dir + "/perf-a.json"));
    CHECK(std::filesystem::exists(dir + "/perf-b_c.json"));
    CHECK_FALSE(std::filesystem::exists(dir + "/perf-warmup.json"));
    CHECK(read_file(dir + "/perf-b_c.json").find("\"request_id\": \"b/c\"") != std::string::npos);
    // Every file holds the same window: every counted request.
    CHECK(read_file(dir + "/perf-a.json").find("\"covers\": \"requests\"") != std::string::npos);
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
    CHECK(files == 2);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("snapshot while running returns what was collected so far") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    { DIFFSCOPE_SCOPE("first"); }
    auto mid = c.snapshot();
    CHECK(find_scope(mid, "first"));
    { DIFFSCOPE_SCOPE("second"); }
    auto r = c.stop();
    CHECK(find_scope(r, "second"));
  }

  TEST_CASE("sampled scopes: spans scaled by calls / timed calls, marked estimated") {
    diffscope::results r;
    diffscope::scope_result sampled, whole, untimed, host_only;
    sampled.host.calls = 8;
    sampled.gpu.measured = true;
    sampled.gpu.timed_calls = 2;
    sampled.gpu.busy_ms = sampled.gpu.occupied_ms = sampled.gpu.envelope_ms = 1.5;
    whole = sampled;  // timed in every call (a step, or a scope outside the steps)
    whole.host.calls = 2;
    untimed = sampled;  // never timed: nothing to scale from
    untimed.gpu.timed_calls = 0;
    untimed.gpu.busy_ms = untimed.gpu.occupied_ms = untimed.gpu.envelope_ms = 0;
    host_only = sampled;
    host_only.gpu.measured = false;
    r.scopes = {sampled, whole, untimed, host_only};
    diffscope::detail::scale_sampled_scopes(r);
    CHECK(r.scopes[0].gpu.envelope_ms == doctest::Approx(6.0));
    CHECK(r.scopes[0].gpu.busy_ms == doctest::Approx(6.0));
    CHECK(r.scopes[0].gpu.occupied_ms == doctest::Approx(6.0));
    CHECK(r.scopes[0].gpu.estimated);
    CHECK(r.scopes[1].gpu.envelope_ms == doctest::Approx(1.5));
    CHECK_FALSE(r.scopes[1].gpu.estimated);
    CHECK_FALSE(r.scopes[2].gpu.estimated);
    CHECK_FALSE(r.scopes[3].gpu.estimated);
  }

  TEST_CASE(
      "CUPTI settings come from DIFFSCOPE_EXPERIMENT_CUPTI_*; unknown values keep the defaults") {
    using diffscope::detail::cupti_launch_apis;
    const char* vars[] = {
        "DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS", "DIFFSCOPE_EXPERIMENT_CUPTI_ZERO_BUFFERS",
        "DIFFSCOPE_EXPERIMENT_CUPTI_HOST_CLOCK", "DIFFSCOPE_EXPERIMENT_CUPTI_BUFFER_KB"};
    for (const char* v : vars) unsetenv(v);
    auto o = diffscope::collector_options::from_env();
    CHECK(o.cupti.launch_apis == cupti_launch_apis::automatic);
    CHECK_FALSE(o.cupti.zero_buffers);
    CHECK(o.cupti.host_clock);
    CHECK(o.cupti.buffer_bytes == diffscope::detail::cupti_options{}.buffer_bytes);
    CHECK(diffscope::detail::cupti_settings_text(o.cupti).empty());
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS", "driver", 1);
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_ZERO_BUFFERS", "1", 1);
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_HOST_CLOCK", "0", 1);
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_BUFFER_KB", "1024", 1);
    o = diffscope::collector_options::from_env();
    CHECK(o.cupti.launch_apis == cupti_launch_apis::driver);
    CHECK(o.cupti.zero_buffers);
    CHECK_FALSE(o.cupti.host_clock);
    CHECK(o.cupti.buffer_bytes == std::size_t{1} << 20);
    CHECK(diffscope::detail::cupti_settings_text(o.cupti) ==
          "launch_apis=driver zero_buffers=1 host_clock=0 buffer_kb=1024");
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS", "none", 1);
    CHECK(diffscope::collector_options::from_env().cupti.launch_apis == cupti_launch_apis::none);
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS", "runtime", 1);
    CHECK(diffscope::collector_options::from_env().cupti.launch_apis == cupti_launch_apis::runtime);
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS", "both", 1);
    CHECK(diffscope::collector_options::from_env().cupti.launch_apis == cupti_launch_apis::both);
    CHECK(diffscope::detail::cupti_settings_text(diffscope::collector_options::from_env().cupti)
              .rfind("launch_apis=both ", 0) == 0);
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS", "kernel", 1);  // reported on stderr, auto kept
    setenv("DIFFSCOPE_EXPERIMENT_CUPTI_BUFFER_KB", "lots",
           1);  // not a count: reported, default kept
    o = diffscope::collector_options::from_env();
    CHECK(o.cupti.launch_apis == cupti_launch_apis::automatic);
    CHECK(o.cupti.buffer_bytes == diffscope::detail::cupti_options{}.buffer_bytes);
    for (const char* v : vars) unsetenv(v);
  }

  TEST_CASE("the timing mode comes from DIFFSCOPE_MODE; unknown values keep the default") {
    for (const char* v :
         {"DIFFSCOPE_MODE", "DIFFSCOPE_PERF_SCOPES", "DIFFSCOPE_EXPERIMENT_PERF_STREAM"})
      unsetenv(v);
    auto o = diffscope::collector_options::from_env();
    CHECK(o.mode == diffscope::timing_mode::profile);
    CHECK_FALSE(o.perf_all_scopes);
    CHECK(o.perf_stream == reinterpret_cast<void*>(1));  // CU_STREAM_LEGACY
    CHECK_FALSE(o.perf_side_stream);
    CHECK(o.perf_share_ns == diffscope::detail::event_timer::default_share_ns);
    CHECK(o.perf_drain == diffscope::perf_drain_policy::thread);
    CHECK(diffscope::detail::perf_settings_text(o).empty());
    setenv("DIFFSCOPE_EXPERIMENT_PERF_DRAIN", "each", 1);
    CHECK(diffscope::detail::perf_settings_text(diffscope::collector_options::from_env()) ==
          "drain=each");
    CHECK(diffscope::collector_options::from_env().perf_drain ==
          diffscope::perf_drain_policy::each);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_DRAIN", "batch", 1);
    CHECK(diffscope::collector_options::from_env().perf_drain ==
          diffscope::perf_drain_policy::batch);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_DRAIN", "sometimes", 1);  // reported on stderr, default kept
    CHECK(diffscope::collector_options::from_env().perf_drain ==
          diffscope::perf_drain_policy::thread);
    unsetenv("DIFFSCOPE_EXPERIMENT_PERF_DRAIN");
    CHECK(o.perf_chain_steps);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS", "0", 1);
    CHECK_FALSE(diffscope::collector_options::from_env().perf_chain_steps);
    CHECK(diffscope::detail::perf_settings_text(diffscope::collector_options::from_env()) ==
          "chain_steps=off");
    setenv("DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS", "off", 1);
    CHECK_FALSE(diffscope::collector_options::from_env().perf_chain_steps);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS", "on", 1);
    CHECK(diffscope::collector_options::from_env().perf_chain_steps);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS", "maybe",
           1);  // reported on stderr, default (on) kept
    CHECK(diffscope::collector_options::from_env().perf_chain_steps);
    unsetenv("DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS");
    setenv("DIFFSCOPE_MODE", "perf", 1);
    setenv("DIFFSCOPE_PERF_SCOPES", "all", 1);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_STREAM", "per-thread", 1);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_EVENTS", "side", 1);
    setenv("DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS", "0", 1);
    o = diffscope::collector_options::from_env();
    CHECK(o.perf_side_stream);
    CHECK(o.perf_share_ns == 0);
    CHECK(diffscope::detail::perf_settings_text(o) == "stream=per-thread events=side share_ns=0");
    setenv("DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS", "-5", 1);  // not a count: reported, default kept
    CHECK(diffscope::collector_options::from_env().perf_share_ns ==
          diffscope::detail::event_timer::default_share_ns);
    CHECK(o.perf_sample_steps == 1);
    setenv("DIFFSCOPE_PERF_SAMPLE", "8", 1);
    CHECK(diffscope::collector_options::from_env().perf_sample_steps == 8);
    setenv("DIFFSCOPE_PERF_SAMPLE", "0", 1);  // not a step count: reported, 1 kept
    CHECK(diffscope::collector_options::from_env().perf_sample_steps == 1);
    setenv("DIFFSCOPE_PERF_SAMPLE", "x", 1);
    CHECK(diffscope::collector_options::from_env().perf_sample_steps == 1);
    unsetenv("DIFFSCOPE_PERF_SAMPLE");
    unsetenv("DIFFSCOPE_EXPERIMENT_PERF_EVENTS");
    unsetenv("DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS");
    CHECK(o.mode == diffscope::timing_mode::perf);
    CHECK(o.perf_all_scopes);
    CHECK(o.perf_stream == reinterpret_cast<void*>(2));  // CU_STREAM_PER_THREAD
    setenv("DIFFSCOPE_MODE", "fast", 1);                 // reported on stderr, default kept
    setenv("DIFFSCOPE_PERF_SCOPES", "some", 1);
    o = diffscope::collector_options::from_env();
    CHECK(o.mode == diffscope::timing_mode::profile);
    CHECK_FALSE(o.perf_all_scopes);
    for (const char* v :
         {"DIFFSCOPE_MODE", "DIFFSCOPE_PERF_SCOPES", "DIFFSCOPE_EXPERIMENT_PERF_STREAM"})
      unsetenv(v);
    CHECK(std::string(diffscope::timing_mode_name(diffscope::timing_mode::perf)) == "perf");
  }

  TEST_CASE("set_timing_paused switches perf-mode timing of new scopes, process-wide") {
    auto& nv = diffscope::detail::nvtx_state();
    CHECK_FALSE(nv.timing_paused.load());
    diffscope::set_timing_paused(true);
    CHECK(nv.timing_paused.load());
    std::thread([] { CHECK(diffscope::detail::nvtx_state().timing_paused.load()); }).join();
    diffscope::set_timing_paused(false);
    CHECK_FALSE(nv.timing_paused.load());
  }

  TEST_CASE("pauses are counted in the results' status, one already on at start included") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());  // with or without a GPU: pauses are counted either way
    diffscope::set_timing_paused(true);
    diffscope::set_timing_paused(true);  // already paused: not another pause
    diffscope::set_timing_paused(false);
    diffscope::set_timing_paused(true);
    diffscope::set_timing_paused(false);
    auto r = c.stop();
    CHECK(r.status.timing_pauses == 2);
    CHECK(diffscope::summary_text(r).find("GPU timing was paused 2 time(s)") != std::string::npos);
    diffscope::set_timing_paused(true);  // before the next start: that run starts paused
    c.start(quiet());
    diffscope::set_timing_paused(false);
    r = c.stop();
    CHECK(r.status.timing_pauses == 1);
    c.start(quiet());
    r = c.stop();
    CHECK(r.status.timing_pauses == 0);  // counted per run
    CHECK(diffscope::summary_text(r).find("paused") == std::string::npos);
  }

  TEST_CASE("plain NVTX name rules come from the environment") {
    setenv("DIFFSCOPE_STAGE_PREFIX", "Stage::", 1);
    setenv("DIFFSCOPE_STEP_PREFIX", "none", 1);
    setenv("DIFFSCOPE_STRIP_SHAPES", "0", 1);
    const auto o = diffscope::collector_options::from_env();
    CHECK(o.names.stage_prefix == "Stage::");
    CHECK(o.names.step_prefix.empty());
    CHECK(o.names.request_prefix == "request_");
    CHECK_FALSE(o.names.strip_shapes);
    for (const char* v :
         {"DIFFSCOPE_STAGE_PREFIX", "DIFFSCOPE_STEP_PREFIX", "DIFFSCOPE_STRIP_SHAPES"})
      unsetenv(v);
    auto& c = diffscope::collector::instance();
    auto opts = quiet();
    opts.names.stage_prefix = "Stage::";
    c.start(opts);
    nvtxRangePushA("Stage::Denoise");
    nvtxRangePop();
    nvtxRangePushA("stage_Other");
    nvtxRangePop();
    auto r = c.stop();
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "Denoise");
    CHECK(find_scope(r, "stage_Other"));
  }

  TEST_CASE("perf mode is labelled everywhere and, without a driver, keeps host timings") {
    auto& c = diffscope::collector::instance();
    auto o = quiet();
    o.mode = diffscope::timing_mode::perf;
    const bool gpu = c.start(o);
    {
      DIFFSCOPE_STAGE("DenoisingStage");
      DIFFSCOPE_DENOISE_STEP(0);
      DIFFSCOPE_SCOPE("work");
    }
    auto r = c.stop();
    CHECK(r.status.mode == "perf");
    CHECK(r.status.gpu_timing == gpu);
    CHECK(r.overhead.per_launch_callback_ns == 0);  // perf mode has no launch callback
    CHECK(r.overhead.callbacks == 0);
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].host_ms > 0);
    CHECK_FALSE(r.steps[0].categories_measured);  // perf mode traces no operation
    if (!gpu) {
      CHECK(r.status.reason.find("no CUDA driver") == 0);
      CHECK_FALSE(r.steps[0].gpu.measured);
    }
    CHECK(diffscope::summary_text(r).find("mode: perf") != std::string::npos);
    CHECK(diffscope::perf_dump_json(r).find("\"mode\": \"perf\"") != std::string::npos);
    CHECK(r.status.perf_settings.empty());  // the defaults
    CHECK(r.status.cupti_settings.empty());
  }

  TEST_CASE("perf mode names the event settings it ran with when they are not the defaults") {
    auto& c = diffscope::collector::instance();
    auto o = quiet();
    o.mode = diffscope::timing_mode::perf;
    o.perf_drain = diffscope::perf_drain_policy::each;
    o.perf_side_stream = true;
    c.start(o);
    { DIFFSCOPE_DENOISE_STEP(0); }
    const auto r = c.stop();
    CHECK(r.status.perf_settings == "events=side drain=each");
    o.mode = diffscope::timing_mode::profile;  // perf settings mean nothing there
    c.start(o);
    CHECK(c.stop().status.perf_settings.empty());
  }

  TEST_CASE("results assembly: the status reason and each mode's overhead, set in one place") {
    auto st = std::make_unique<diffscope::detail::collector_state>();
    CHECK(diffscope::detail::status_reason(*st).empty());
    st->gpu_reason = "no GPU";
    CHECK(diffscope::detail::status_reason(*st) == "no GPU");
    st->nvtx_note = "ranges go elsewhere";
    CHECK(diffscope::detail::status_reason(*st) == "no GPU; ranges go elsewhere");
    st->gpu_ok = true;  // a reason left from a failed start says nothing then
    CHECK(diffscope::detail::status_reason(*st) == "ranges go elsewhere");

    st->calib.per_launch_ns = 123;
    diffscope::results profile;
    diffscope::detail::copy_cupti_counts(profile, *st);  // CUPTI not started: calibration's figure
    CHECK(profile.overhead.per_launch_callback_ns == 123);
    CHECK(profile.status.perf_scopes.empty());

    st->options.perf_all_scopes = true;
    st->options.perf_sample_steps = 4;
    st->timer_counts.timed = 7;
    st->timer_counts.failed = 2;
    diffscope::results perf;
    perf.overhead.per_launch_callback_ns = 99;
    diffscope::scope_result sampled;
    sampled.host.calls = 8;
    sampled.gpu.measured = true;
    sampled.gpu.timed_calls = 2;
    sampled.gpu.busy_ms = 1;
    perf.scopes.push_back(sampled);
    diffscope::detail::copy_event_timer_counts(perf, *st);
    CHECK(perf.overhead.per_launch_callback_ns == 0);  // perf mode has no launch callback
    CHECK(perf.overhead.timed_scopes == 7);
    CHECK(perf.faults.timing_failures == 2);
    CHECK(perf.status.perf_scopes == "all");
    CHECK(perf.status.perf_sample_steps == 4);
    CHECK(perf.scopes[0].gpu.busy_ms == 4);  // scaled to its calls
    CHECK(perf.scopes[0].gpu.estimated);
  }

  TEST_CASE("the collector reports its own overhead") {
    auto& c = diffscope::collector::instance();
    c.start(quiet());
    for (int i = 0; i < 100; ++i) {
      DIFFSCOPE_SCOPE("x");
    }
    auto r = c.stop();
    CHECK(r.overhead.ranges == 100);
    CHECK(r.overhead.per_range_ns > 0);
    CHECK(r.overhead.per_launch_callback_ns > 0);
  }
}
