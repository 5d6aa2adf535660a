// `diffscope merge` for multi-GPU runs, on synthetic per-rank dumps as the collector writes
// them: ranks from diffscope.environment, the spread and straggler of each step and stage,
// communication overlap per scope/step/stage and rank, the reader's checks of the new keys,
// and the text summary. The older merge rules are in test_compare.cpp and compare_cli.
#include <doctest/doctest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <diffscope/output/perf_dump.hpp>

#include "../tools/lib/merge.hpp"
#include "../tools/lib/merge_summary.hpp"
#include "tools/reader_checks.hpp"
#include "tools/sample_results.hpp"

using namespace diffscope::cli;

namespace {

std::string comm(double busy, double overlapped, int kernels) {
  return R"({"busy_ms": )" + std::to_string(busy) + R"(, "overlapped_ms": )" +
         std::to_string(overlapped) + R"(, "exposed_ms": )" + std::to_string(busy - overlapped) +
         R"(, "kernels": )" + std::to_string(kernels) + "}";
}

/// A rank's dump: two denoise steps, three stages, an attention scope with comm.
std::string rank_dump(int rank, double step0, double step1, double denoise, double attn_busy,
                      double attn_overlapped) {
  const std::string r = std::to_string(rank);
  return R"({"total_duration_ms": )" + std::to_string(denoise + 10) +
         R"(, "steps": [{"name": "TextEncodingStage", "duration_ms": 5},
           {"name": "DenoisingStage", "duration_ms": )" +
         std::to_string(denoise) + R"(}, {"name": "DecodingStage", "duration_ms": 3}],
         "denoise_steps_ms": [{"step": 0, "duration_ms": )" +
         std::to_string(step0) + R"(}, {"step": 1, "duration_ms": )" + std::to_string(step1) +
         R"(}],
         "diffscope": {"status": {"gpu_timing": true, "reason": ""},
           "environment": {"pid": 10)" +
         r + R"(, "rank": )" + r + R"(, "world_size": 2, "local_rank": )" + r + R"(},
           "stages": [{"name": "TextEncodingStage"}, {"name": "DenoisingStage", "comm": )" +
         comm(attn_busy, attn_overlapped, 4) + R"(}, {"name": "DecodingStage"}],
           "steps": [{"step": 0, "comm": )" +
         comm(attn_busy / 2, attn_overlapped / 2, 2) + R"(}, {"step": 1, "comm": )" +
         comm(attn_busy / 2, attn_overlapped / 2, 2) + R"(}],
           "scopes": [
             {"path": "DenoisingStage", "category": "stage", "gpu": {"busy_ms": 1, "envelope_ms": 2},
              "comm": )" +
         comm(attn_busy, attn_overlapped, 4) + R"(},
             {"path": "DenoisingStage/denoise_step/transformer.blocks.0.attn", "category": "other",
              "gpu": {"busy_ms": 1, "envelope_ms": 2}, "comm": )" +
         comm(attn_busy, attn_overlapped, 4) + R"(},
             {"path": "DenoisingStage/denoise_step/transformer.blocks.0.mlp", "category": "other",
              "gpu": {"busy_ms": 1, "envelope_ms": 2}}]}})";
}

}  // namespace

using reader_checks::error_of;
using reader_checks::parse;

TEST_SUITE("merge") {
  TEST_CASE("the reader takes rank and comm objects and checks their types") {
    const auto d = parse(rank_dump(1, 10, 11, 21, 4, 3));
    CHECK(d.rank == 1);
    CHECK(d.world_size == 2);
    CHECK(d.local_rank == 1);
    REQUIRE(d.scopes.size() == 3);
    CHECK(d.scopes[1].comm.present);
    CHECK(d.scopes[1].comm.busy_ms == doctest::Approx(4));
    CHECK(d.scopes[1].comm.overlapped_ms == doctest::Approx(3));
    CHECK(d.scopes[1].comm.exposed_ms == doctest::Approx(1));
    CHECK(d.scopes[1].comm.kernels == 4);
    CHECK_FALSE(d.scopes[2].comm.present);
    CHECK(d.scopes[0].category == "stage");
    REQUIRE(d.step_comm.size() == 2);
    CHECK(d.step_comm[1].step == 1);
    REQUIRE(d.stage_comm.size() == 3);
    CHECK(d.stage_comm[1].comm.present);
    CHECK_FALSE(d.stage_comm[0].comm.present);

    const auto none = parse(R"({"diffscope": {"environment": {"pid": 1}}})");
    CHECK(none.rank == -1);
    CHECK(none.world_size == -1);
    CHECK(parse(R"({"diffscope": {"environment": {"rank": null}}})").rank == -1);

    CHECK(error_of(R"({"diffscope": {"environment": {"rank": "0"}}})") ==
          "x.json: diffscope.environment.rank is not an integer");
    CHECK(error_of(R"({"diffscope": {"environment": 3}})") ==
          "x.json: diffscope.environment is not an object");
    CHECK(error_of(R"({"diffscope": {"scopes": [{"path": "a", "comm": []}]}})") ==
          "x.json: diffscope.scopes[0].comm is not an object");
    CHECK(error_of(R"({"diffscope": {"scopes": [{"path": "a", "comm": {"busy_ms": 1}}]}})") ==
          "x.json: diffscope.scopes[0].comm has no overlapped_ms");
    CHECK(error_of(R"({"diffscope": {"steps": [{"comm": {"busy_ms": 1, "overlapped_ms": true,
          "exposed_ms": 0}}]}})") ==
          "x.json: diffscope.steps[0].comm.overlapped_ms is not a number");
    CHECK(error_of(R"({"diffscope": {"stages": [{"name": "S", "comm": {"busy_ms": 1,
          "overlapped_ms": 0, "exposed_ms": 1, "kernels": -1}}]}})") ==
          "x.json: diffscope.stages[0].comm.kernels is not a non-negative integer");
    CHECK(error_of(R"({"diffscope": {"steps": {}}})") == "x.json: diffscope.steps is not an array");
    CHECK(error_of(R"({"diffscope": {"stages": [{"name": 1}]}})") ==
          "x.json: diffscope.stages[0].name is not a string");
  }

  TEST_CASE("each step and stage gets its critical path, spread and straggler") {
    // Inputs in reverse rank order: rank 1 first. Rank 1 is slow in step 0, rank 0 in step 1.
    std::vector<perf_dump_data> in = {parse(rank_dump(1, 12, 10, 23, 6, 2), "r1.json"),
                                      parse(rank_dump(0, 10, 11, 21, 4, 3), "r0.json")};
    std::vector<std::string> warnings;
    const auto m = merge_dumps(in, warnings);
    CHECK(warnings.empty());
    // The existing rules hold.
    CHECK(m["denoise_steps_ms"][0]["duration_ms"].get<double>() == 12.0);
    CHECK(m["denoise_steps_ms"][1]["duration_ms"].get<double>() == 11.0);
    CHECK(m["steps"][1]["duration_ms"].get<double>() == 23.0);
    const auto& ds = m["diffscope"];
    CHECK(ds["ranks"][0]["file"] == "r1.json");
    CHECK(ds["ranks"][0]["rank"] == 1);
    CHECK(ds["ranks"][1]["rank"] == 0);
    CHECK(ds["ranks"][0]["world_size"] == 2);
    const auto& cp = ds["critical_path"];
    CHECK(cp["rank_source"] == "diffscope.environment.rank");
    REQUIRE(cp["denoise_steps"].size() == 2);
    const auto& s0 = cp["denoise_steps"][0];
    CHECK(s0["step"] == 0);
    CHECK(s0["duration_ms"].get<double>() == 12.0);
    CHECK(s0["min_ms"].get<double>() == 10.0);
    CHECK(s0["spread_ms"].get<double>() == 2.0);
    CHECK(s0["straggler_rank"] == 1);
    // Per-rank values in rank order, whatever the input order.
    CHECK(s0["ranks"][0]["rank"] == 0);
    CHECK(s0["ranks"][0]["duration_ms"].get<double>() == 10.0);
    CHECK(s0["ranks"][1]["duration_ms"].get<double>() == 12.0);
    CHECK(cp["denoise_steps"][1]["straggler_rank"] == 0);
    CHECK(cp["denoise_steps"][1]["spread_ms"].get<double>() == 1.0);
    REQUIRE(cp["stages"].size() == 3);
    CHECK(cp["stages"][1]["name"] == "DenoisingStage");
    CHECK(cp["stages"][1]["occurrence"] == 0);
    CHECK(cp["stages"][1]["straggler_rank"] == 1);
    CHECK(cp["stages"][1]["spread_ms"].get<double>() == 2.0);
    // A tie goes to the lowest rank.
    CHECK(cp["stages"][0]["straggler_rank"] == 0);
    CHECK(cp["stages"][0]["spread_ms"].get<double>() == 0.0);
  }

  TEST_CASE("communication overlap is kept per scope, step, stage and rank") {
    std::vector<perf_dump_data> in = {parse(rank_dump(1, 12, 10, 23, 6, 2), "r1.json"),
                                      parse(rank_dump(0, 10, 11, 21, 4, 3), "r0.json")};
    std::vector<std::string> warnings;
    const auto m = merge_dumps(in, warnings);
    const auto& c = m["diffscope"]["comm"];
    REQUIRE(c["scopes"].size() == 2);  // the mlp scope ran no comm kernel
    const auto& attn = c["scopes"][1];
    CHECK(attn["path"] == "DenoisingStage/denoise_step/transformer.blocks.0.attn");
    CHECK(attn["attention"] == true);
    CHECK(c["scopes"][0]["attention"] == false);
    REQUIRE(attn["ranks"].size() == 2);
    CHECK(attn["ranks"][0]["rank"] == 0);
    CHECK(attn["ranks"][0]["busy_ms"].get<double>() == doctest::Approx(4));
    CHECK(attn["ranks"][0]["overlapped_ms"].get<double>() == doctest::Approx(3));
    CHECK(attn["ranks"][0]["exposed_ms"].get<double>() == doctest::Approx(1));
    CHECK(attn["ranks"][0]["overlapped_pct"].get<double>() == doctest::Approx(75));
    CHECK(attn["ranks"][1]["exposed_ms"].get<double>() == doctest::Approx(4));
    CHECK(attn["ranks"][1]["kernels"] == 4);
    REQUIRE(c["denoise_steps"].size() == 2);
    CHECK(c["denoise_steps"][1]["step"] == 1);
    CHECK(c["denoise_steps"][1]["ranks"][1]["busy_ms"].get<double>() == doctest::Approx(3));
    REQUIRE(c["stages"].size() == 1);
    CHECK(c["stages"][0]["name"] == "DenoisingStage");
    CHECK(c["stages"][0]["ranks"].size() == 2);

    // Without comm objects (a single-GPU or older dump) the lists are empty, not missing.
    std::vector<perf_dump_data> plain = {
        parse(R"({"denoise_steps_ms": [{"step": 0, "duration_ms": 1}]})")};
    const auto p = merge_dumps(plain, warnings);
    CHECK(p["diffscope"]["comm"]["scopes"].empty());
    CHECK(p["diffscope"]["critical_path"]["denoise_steps"][0]["straggler_rank"] == 0);
  }

  TEST_CASE("ranks fall back to the input order when the environment does not name them") {
    std::vector<std::string> warnings;
    SUBCASE("no ranks at all: no warning") {
      std::vector<perf_dump_data> in = {
          parse(R"({"denoise_steps_ms": [{"step": 0, "duration_ms": 1}]})"),
          parse(R"({"denoise_steps_ms": [{"step": 0, "duration_ms": 3}]})")};
      const auto m = merge_dumps(in, warnings);
      CHECK(warnings.empty());
      CHECK(m["diffscope"]["critical_path"]["rank_source"] == "input order");
      CHECK(m["diffscope"]["critical_path"]["denoise_steps"][0]["straggler_rank"] == 1);
    }
    SUBCASE("a repeated rank: input order and a warning") {
      std::vector<perf_dump_data> in = {parse(rank_dump(1, 1, 1, 1, 1, 1)),
                                        parse(rank_dump(1, 2, 2, 2, 1, 1))};
      const auto m = merge_dumps(in, warnings);
      REQUIRE(warnings.size() == 1);
      CHECK(warnings[0].find("input order") != std::string::npos);
      CHECK(m["diffscope"]["ranks"][0]["rank"] == 0);
      CHECK(m["diffscope"]["ranks"][1]["rank"] == 1);
    }
  }

  TEST_CASE("a step only some ranks ran is judged over those ranks") {
    std::vector<perf_dump_data> in = {
        parse(
            R"({"denoise_steps_ms": [{"step": 0, "duration_ms": 5}, {"step": 1, "duration_ms": 7}],
                  "diffscope": {"environment": {"rank": 0}}})"),
        parse(R"({"denoise_steps_ms": [{"step": 0, "duration_ms": 6}],
                  "diffscope": {"environment": {"rank": 1}}})")};
    std::vector<std::string> warnings;
    const auto m = merge_dumps(in, warnings);
    const auto& s1 = m["diffscope"]["critical_path"]["denoise_steps"][1];
    CHECK(s1["ranks"].size() == 1);
    CHECK(s1["spread_ms"].get<double>() == 0.0);
    CHECK(s1["straggler_rank"] == 0);
  }

  TEST_CASE("the summary's comm scopes: relative names, cut in the middle, never two alike") {
    std::vector<perf_dump_data> in;
    for (int rank = 0; rank < 2; ++rank) {
      diffscope::results r = sample::layerwise();
      r.environment.rank = rank;
      r.environment.world_size = 2;
      for (auto& sc : r.scopes) {  // communication in every attention module and below
        if (sc.path.find(".attn") == std::string::npos) continue;
        sc.gpu.comm_kernels = 2;
        sc.gpu.comm_busy_ms = 1 + rank;
        sc.gpu.comm_overlapped_ms = 0.5;
        sc.gpu.comm_exposed_ms = 0.5 + rank;
      }
      in.push_back(parse(diffscope::perf_dump_json(r, {}), "r" + std::to_string(rank) + ".json"));
    }
    std::vector<std::string> warnings;
    const std::string t = merge_summary_text(merge_dumps(in, warnings));
    std::istringstream lines(t.substr(t.find("communication per scope")));
    std::string l;
    std::getline(lines, l);  // title
    std::getline(lines, l);  // header
    const std::size_t rank_col = l.find("  rank") + 2;
    std::set<std::string> seen;
    std::size_t rows = 0;
    while (std::getline(lines, l) && l.rfind("  ", 0) == 0) {
      std::string label = l.substr(2, rank_col - 2);
      label.erase(label.find_last_not_of(' ') + 1);
      if (label.empty()) continue;  // the scope's next rank
      ++rows;
      const std::string name = label.substr(0, label.rfind(" [attention]"));
      CHECK(diffscope::detail::display_width(name) <= 60);
      CHECK_MESSAGE(seen.insert(name).second, "'", name, "' printed twice");
    }
    CHECK(rows == 26 * 5);  // each block's attn and its four projections
    CHECK(t.find("/.attn/.to_q") != std::string::npos);
  }

  TEST_CASE("the summary shows critical path, spread, straggler and comm per rank") {
    std::vector<perf_dump_data> in = {parse(rank_dump(1, 12, 10, 23, 6, 2), "r1.json"),
                                      parse(rank_dump(0, 10, 11, 21, 4, 3), "r0.json")};
    std::vector<std::string> warnings;
    const std::string t = merge_summary_text(merge_dumps(in, warnings));
    CHECK(t.find("2 ranks (rank from diffscope.environment.rank), GPU timing: measured") !=
          std::string::npos);
    CHECK(t.find("rank 0: r0.json") != std::string::npos);
    CHECK(
        t.find("step  critical ms  min ms  spread ms  spread %  straggler  rank 0 ms  rank 1 ms") !=
        std::string::npos);
    // Step 0: 12 critical, 10 min, spread 2 (16.7 %), straggler rank 1.
    CHECK(
        t.find(
            "  0          12.000  10.000      2.000      16.7          1     10.000     12.000") !=
        std::string::npos);
    CHECK(t.find("sum of critical paths: 23.000 ms") != std::string::npos);
    // The attention scope comes first in the comm table, one line per rank.
    const auto attn = t.find("DenoisingStage/denoise_step/transformer.blocks.0.attn [attention]");
    const auto stage = t.find("\n  DenoisingStage ", t.find("communication per scope"));
    REQUIRE(attn != std::string::npos);
    REQUIRE(stage != std::string::npos);
    CHECK(attn < stage);
    CHECK(t.find("overlapped %") != std::string::npos);
    CHECK(t.find("4.000          3.000       1.000          75.0") != std::string::npos);
    CHECK(t.find("communication per denoise step:") != std::string::npos);
  }

  TEST_CASE("sampled rank dumps merge; ranks that traced different steps are said so") {
    auto r0 = sample::sampled(), r1 = sample::sampled();
    r0.environment.rank = 0;
    r1.environment.rank = 1;
    r0.environment.world_size = r1.environment.world_size = 2;
    std::vector<perf_dump_data> in = {parse(diffscope::perf_dump_json(r0, {}), "r0.json"),
                                      parse(diffscope::perf_dump_json(r1, {}), "r1.json")};
    std::vector<std::string> warnings;
    const auto m = merge_dumps(in, warnings);
    CHECK(warnings.empty());
    const auto& ds = m["diffscope"];
    CHECK(ds["status"]["mode"] == "sampled");
    CHECK(ds["sampling"]["rule"] == "steps 1-2");
    CHECK(ds["sampling"]["same_traced_steps"] == true);
    CHECK(ds["sampling"]["traced_indices"] == ordered_json::array({1, 2}));
    CHECK(ds["sampling"]["ranks"].size() == 2);
    CHECK_FALSE(ds["sampling"].contains("note"));
    CHECK(m["denoise_steps_ms"][0]["duration_ms"].get<double>() == 238.0);  // spans
    // Rank 1 traced steps 2-3: merged all the same, and the difference is said.
    r1.sampling.traced_indices = {2, 3};
    in[1] = parse(diffscope::perf_dump_json(r1, {}), "r1.json");
    const auto d = merge_dumps(in, warnings);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("traced different denoise steps") != std::string::npos);
    CHECK(d["diffscope"]["sampling"]["same_traced_steps"] == false);
    CHECK(d["diffscope"]["sampling"]["note"].get<std::string>().find("unlike steps") !=
          std::string::npos);
    CHECK(d["diffscope"]["sampling"]["ranks"][1]["traced_indices"] == ordered_json::array({2, 3}));
    // Profile ranks: no sampling object, no mode (the merged layout is unchanged).
    std::vector<perf_dump_data> prof = {
        parse(diffscope::perf_dump_json(sample::profiled(), {}), "p0.json"),
        parse(diffscope::perf_dump_json(sample::profiled(), {}), "p1.json")};
    const auto p = merge_dumps(prof, warnings);
    CHECK_FALSE(p["diffscope"].contains("sampling"));
    CHECK_FALSE(p["diffscope"]["status"].contains("mode"));
  }
}
