// Chrome trace: structure Perfetto needs (metadata, complete events, matched flows), the
// torch.profiler categories SGLang's ranking reads, and the cap made visible.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <diffscope/output/chrome_trace.hpp>

#include "tools/mini_json.hpp"
#include "tools/sample_results.hpp"

namespace {

namespace fs = std::filesystem;

mini_json::value trace(const diffscope::results& r) {
  return mini_json::parse(diffscope::chrome_trace_json(r));
}

std::vector<const mini_json::value*> events(const mini_json::value& t, const std::string& ph) {
  std::vector<const mini_json::value*> out;
  for (const auto& e : t["traceEvents"].items)
    if (e["ph"].str == ph) out.push_back(&e);
  return out;
}

const mini_json::value* find_named(const mini_json::value& t, const std::string& ph,
                                   const std::string& name) {
  for (const auto* e : events(t, ph))
    if ((*e)["name"].str == name) return e;
  return nullptr;
}

}  // namespace

TEST_SUITE("trace") {
  TEST_CASE(
      "the trace is a JSON object with traceEvents, displayTimeUnit ms and a diffscope "
      "summary") {
    const auto t = trace(sample::traced(false));
    CHECK(t.keys() == std::vector<std::string>{"displayTimeUnit", "traceEvents", "diffscope"});
    CHECK(t["displayTimeUnit"].str == "ms");
    CHECK(t["diffscope"]["trace_capped"].b == false);
    CHECK(t["diffscope"]["ranges"].num == 3);
    CHECK(t["diffscope"]["ops"].num == 5);
  }

  TEST_CASE(
      "metadata names the host process, its threads, one process per GPU and its "
      "streams") {
    const auto t = trace(sample::traced(false));
    std::map<std::int64_t, std::string> processes;
    std::set<std::pair<std::int64_t, std::string>> threads;
    for (const auto* e : events(t, "M")) {
      if ((*e)["name"].str == "process_name")
        processes[static_cast<std::int64_t>((*e)["pid"].num)] = (*e)["args"]["name"].str;
      if ((*e)["name"].str == "thread_name")
        threads.insert({static_cast<std::int64_t>((*e)["pid"].num), (*e)["args"]["name"].str});
    }
    CHECK(processes ==
          std::map<std::int64_t, std::string>{{0, "host"}, {1, "GPU 0"}, {2, "GPU 1"}});
    CHECK(threads ==
          std::set<std::pair<std::int64_t, std::string>>{
              {0, "thread 1"}, {0, "thread 2"}, {1, "stream 7"}, {2, "stream 3"}, {2, "stream 9"}});
  }

  TEST_CASE("ranges are complete events on their thread in microseconds from the origin") {
    const auto t = trace(sample::traced(false));
    const auto* stage = find_named(t, "X", "DenoisingStage");
    REQUIRE(stage != nullptr);
    CHECK((*stage)["cat"].str == "stage");
    CHECK((*stage)["pid"].num == 0);
    CHECK((*stage)["tid"].num == 1);
    CHECK((*stage)["ts"].num == 1.0);
    CHECK((*stage)["dur"].num == 899.0);
    CHECK((*stage)["args"]["path"].str == "DenoisingStage");
    CHECK((*stage)["args"]["step"].num == -1);
    const auto* step = find_named(t, "X", "denoising_step_0");
    REQUIRE(step != nullptr);
    CHECK((*step)["cat"].str == "denoise_step");
    CHECK((*step)["args"]["step"].num == 0);
    // An invalid byte in a range name still gives valid JSON (mini_json checks UTF-8).
    CHECK(find_named(t, "X", "attn \"x\"\xEF\xBF\xBD") != nullptr);
  }

  TEST_CASE(
      "GPU operations carry torch.profiler categories, scope, step, correlation and "
      "bytes") {
    const auto t = trace(sample::traced(false));
    const auto* gemm = find_named(t, "X", "gemm_kernel");
    REQUIRE(gemm != nullptr);
    CHECK((*gemm)["cat"].str == "kernel");
    CHECK((*gemm)["pid"].num == 1);
    CHECK((*gemm)["tid"].num == 7);
    CHECK((*gemm)["ts"].num == 10.0);
    CHECK((*gemm)["dur"].num == 50.0);
    CHECK((*gemm)["args"]["scope"].str == "DenoisingStage/denoise_step");
    CHECK((*gemm)["args"]["step"].num == 0);
    CHECK((*gemm)["args"]["correlation"].num == 11);
    const auto* copy = find_named(t, "X", "memcpy HtoD");
    REQUIRE(copy != nullptr);
    CHECK((*copy)["cat"].str == "gpu_memcpy");
    CHECK((*copy)["pid"].num == 2);
    CHECK((*copy)["args"]["bytes"].num == 1 << 20);

    // SGLang's quick ranking: cat kernel or gpu_memcpy, dur summed by name.
    std::map<std::string, double> by_name;
    for (const auto* e : events(t, "X")) {
      const std::string cat = (*e)["cat"].str;
      if (cat == "kernel" || cat == "gpu_memcpy") by_name[(*e)["name"].str] += (*e)["dur"].num;
    }
    CHECK(by_name.size() == 5);
    CHECK(by_name["gemm_kernel"] == 50.0);
    CHECK(by_name["memcpy HtoD"] == 0.5);
  }

  TEST_CASE("every launch with a known thread has one flow start and one matching flow end") {
    const auto t = trace(sample::traced(false));
    std::map<std::uint64_t, const mini_json::value*> starts, ends;
    for (const auto* e : events(t, "s")) {
      CHECK(starts.emplace(static_cast<std::uint64_t>((*e)["id"].num), e).second);
    }
    for (const auto* e : events(t, "f")) {
      CHECK((*e)["bp"].str == "e");
      CHECK(ends.emplace(static_cast<std::uint64_t>((*e)["id"].num), e).second);
    }
    CHECK(starts.size() == 3);  // 11, 12 (a graph launch: two ops, one flow), 13
    REQUIRE(ends.size() == 3);
    for (const auto& [id, s] : starts) {
      REQUIRE(ends.count(id) == 1);
      CHECK((*s)["pid"].num == 0);
      CHECK((*s)["cat"].str == (*ends[id])["cat"].str);
      CHECK((*s)["name"].str == (*ends[id])["name"].str);
    }
    CHECK((*starts[11])["ts"].num == 2.5);
    CHECK((*starts[11])["tid"].num == 1);
    CHECK((*ends[11])["ts"].num == 10.0);
    CHECK((*ends[12])["ts"].num == 61.0);  // the graph launch points at its first kernel
    CHECK((*starts[13])["tid"].num == 2);
    CHECK((*ends[13])["pid"].num == 2);
  }

  TEST_CASE("every event has the fields its phase requires") {
    for (bool capped : {false, true}) {
      const auto t = trace(sample::traced(capped));
      for (const auto& e : t["traceEvents"].items) {
        const std::string ph = e["ph"].str;
        CHECK(e.has("name"));
        CHECK(e["pid"].is_integer());
        CHECK(e["tid"].is_integer());
        if (ph == "X") {
          CHECK(e["ts"].k == mini_json::kind::number);
          CHECK(e["dur"].num >= 0);
          CHECK(e.has("cat"));
        } else if (ph == "s" || ph == "f") {
          CHECK(e.has("id"));
          CHECK(e.has("ts"));
          CHECK(e.has("cat"));
        } else if (ph == "i") {
          CHECK(e["s"].str == "g");
          CHECK(e.has("ts"));
        } else {
          CHECK(ph == "M");
          CHECK(e["args"].k == mini_json::kind::object);
        }
      }
    }
  }

  TEST_CASE("a capped trace says so in the timeline and at the top level") {
    const auto t = trace(sample::traced(true));
    CHECK(t["diffscope"]["trace_capped"].b);
    CHECK(t["diffscope"]["events_dropped"].num == 42);
    CHECK(t["diffscope"]["cap"].num == 8);
    const auto instants = events(t, "i");
    REQUIRE(instants.size() == 1);
    CHECK((*instants[0])["name"].str == "diffscope: trace capped at 8 events, 42 dropped");
    CHECK((*instants[0])["ts"].num == 900.0);  // at the end of the last event
  }

  TEST_CASE("a trace that was not collected is still valid and says it was not enabled") {
    const auto t = trace(sample::profiled());
    CHECK(t["diffscope"]["trace_enabled"].b == false);
    CHECK(events(t, "X").empty());
    const auto instants = events(t, "i");
    REQUIRE(instants.size() == 1);
    CHECK((*instants[0])["name"].str == "diffscope: trace collection was not enabled");
  }

  TEST_CASE(
      "write_chrome_trace writes the file, and sample traces are kept for the Python "
      "checker") {
    const fs::path dir = fs::current_path() / "trace_samples";
    CHECK_FALSE(
        diffscope::write_chrome_trace((dir / "traced.json").string(), sample::traced(false)));
    CHECK_FALSE(
        diffscope::write_chrome_trace((dir / "capped.json").string(), sample::traced(true)));
    CHECK(fs::file_size(dir / "traced.json") ==
          diffscope::chrome_trace_json(sample::traced(false)).size());
    CHECK(
        diffscope::write_chrome_trace("/proc/diffscope/t.json", sample::traced(false)).has_value());
  }
}
