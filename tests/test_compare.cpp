// diffscope compare/merge internals: the dump reader's type checks and defaults, the
// compare_perf.py arithmetic, the repeated-run verdict rule and the merge rule. The CLI
// itself is tested end to end by tests/tools/test_compare_cli.py. The input rules (size, depth,
// byte-order mark, what is a perf dump) are checked here on texts, and end to end there.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <diffscope/output/perf_dump.hpp>

#include "../tools/lib/compare.hpp"
#include "../tools/lib/merge.hpp"
#include "../tools/lib/repeated_runs.hpp"
#include "tools/reader_checks.hpp"
#include "tools/sample_results.hpp"

using namespace diffscope::cli;
using reader_checks::error_of;
using reader_checks::parse;

namespace {

/// Checks that `seconds_for(4 n)` stays under ten times `seconds_for(n)` (the best of two runs
/// of the smaller): linear work grows four times, quadratic sixteen. Judged by growth, not by a
/// time limit, so a sanitizer build or a busy machine passes while a quadratic algorithm fails.
template <class SecondsFor>
void check_linear(SecondsFor seconds_for, int n) {
  const double small = std::min(seconds_for(n), seconds_for(n));
  const double large = seconds_for(4 * n);
  CAPTURE(small);
  CAPTURE(large);
  CHECK(large < 10 * small + 0.05);
}

/// A layerwise model's dump (tests/tools/sample_results.hpp), each scope's busy time scaled by
/// `scale(i)`, read back as compare reads it.
template <class Scale>
perf_dump_data layerwise_dump(const std::string& file, Scale scale) {
  diffscope::results r = sample::layerwise();
  for (std::size_t i = 0; i < r.scopes.size(); ++i) {
    r.scopes[i].gpu.busy_ms *= scale(i);
    r.scopes[i].gpu.envelope_ms *= scale(i);
  }
  return parse(diffscope::perf_dump_json(r, {}), file);
}

/// The label cells of a section 3 table, in order.
std::vector<std::string> scope_labels(const std::string& section) {
  std::vector<std::string> out;
  std::istringstream in(section);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("| ", 0) != 0 || l.rfind("| Scope |", 0) == 0 || l.rfind("| :---", 0) == 0)
      continue;
    out.push_back(l.substr(2, l.find(" | ") - 2));
  }
  return out;
}

}  // namespace

TEST_SUITE("compare") {
  TEST_CASE("section 3 labels: names relative to their parent, cut in the middle, distinct") {
    const auto base = layerwise_dump("base.json", [](std::size_t) { return 1.0; });
    const auto now = layerwise_dump("new.json", [](std::size_t i) { return 1.0 + i % 5 * 0.1; });
    REQUIRE(base.scopes.size() >= 300);
    const std::string section = compare_detail::scope_section(base, now, "New");
    const auto labels = scope_labels(section);
    CHECK(labels.size() == base.scopes.size() - 1);  // vae.decoder ran no GPU work
    std::set<std::string> seen;
    for (const auto& l : labels) {
      CHECK(diffscope::detail::display_width(l) <= compare_detail::scope_label_columns);
      CHECK_MESSAGE(seen.insert(l).second, "'", l, "' printed twice");
    }
    CHECK(section.find("| DenoisingStage/denoising_loop/denoise_step/predict_noise/transformer."
                       "transformer_blocks.3/.attn |") != std::string::npos);
  }

  TEST_CASE("the dump reader takes compare_perf.py's defaults for missing keys") {
    const auto d = parse(R"({"steps": [{"duration_ms": 3}, {"name": "A"}]})");
    CHECK(d.total_duration_ms == 0.0);
    CHECK(d.commit_hash == "N/A");
    REQUIRE(d.steps.size() == 2);
    CHECK(d.steps[0].name == "unknown");
    CHECK(d.steps[0].duration_ms == 3.0);
    CHECK(d.steps[1].duration_ms == 0.0);
    CHECK_FALSE(d.has_diffscope);
  }

  TEST_CASE("the dump reader names the file and the key of a wrong type") {
    CHECK(error_of("") == "x.json: empty file");
    CHECK(error_of("[]") ==
          "x.json: not a perf dump (the top level is an array, not a JSON object)");
    CHECK(error_of(R"({"total_duration_ms": "1"})") == "x.json: total_duration_ms is not a number");
    CHECK(error_of(R"({"total_duration_ms": false})") ==
          "x.json: total_duration_ms is not a number");
    CHECK(error_of(R"({"steps": [{"name": null}]})") == "x.json: steps[0].name is not a string");
    CHECK(error_of(R"({"denoise_steps_ms": [{"step": "0"}]})") ==
          "x.json: denoise_steps_ms[0].step is not an integer");
    CHECK(error_of(R"({"diffscope": {"status": {"gpu_timing": 1}}})") ==
          "x.json: diffscope.status.gpu_timing is not a boolean");
    CHECK(error_of(R"({"steps": [)").rfind("x.json: not valid JSON (", 0) == 0);
  }

  TEST_CASE("section 3 ranks the timed scopes by absolute change in busy time, the first N") {
    // New: scope 20 (block 0's to_out.0, 1 ms) three times as long, scope 9 (the text
    // embedder's linear_1, 1 ms) half as long; nothing else changes.
    const auto base = layerwise_dump("base.json", [](std::size_t) { return 1.0; });
    const auto now = layerwise_dump("new.json", [](std::size_t i) {
      return i == 9 ? 0.5 : i == 20 ? 3.0 : 1.0;
    });
    const std::string all = compare_detail::scope_section(base, now, "New", all_scope_rows);
    const std::string top = compare_detail::scope_section(base, now, "New", 4);
    const auto labels = scope_labels(top);
    REQUIRE(labels.size() == 4);
    CHECK(scope_labels(all).size() == 304);  // every timed scope; vae.decoder ran nothing
    const auto ends_with = [](const std::string& s, const std::string& tail) {
      return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
    };
    CHECK(ends_with(labels[0], "transformer_blocks.0/.attn/.to_out.0"));  // +2 ms
    CHECK(ends_with(labels[1], "/.text_embedder/.linear_1"));             // -0.5 ms
    CHECK(labels[2] == "DenoisingStage");  // unchanged: in the dumps' order
    CHECK(labels[3] == "DenoisingStage/denoising_loop");
    CHECK(top.find("| 1.00 | 3.00 | +200.0% |") < top.find("| 1.00 | 0.50 | -50.0% |"));
    CHECK(top.find("\n300 more scopes timed on either side changed less: `diffscope compare "
                   "--scopes all` lists them.\n") != std::string::npos);
    CHECK(all.find("more scopes") == std::string::npos);
  }

  TEST_CASE("section 3 of perf-mode dumps timing stages and steps lists those only") {
    const char* perf = R"({"diffscope": {"status": {"gpu_timing": true, "mode": "perf",
        "perf_scopes": "steps"},
        "scopes": [{"path": "S", "category": "stage", "gpu": {"busy_ms": 5, "envelope_ms": 6}},
                   {"path": "S/step", "category": "denoise_step",
                    "gpu": {"busy_ms": 4, "envelope_ms": 5}},
                   {"path": "S/step/block", "category": "other",
                    "gpu": {"busy_ms": 0, "envelope_ms": 0}},
                   {"path": "S/step/odd", "category": "other",
                    "gpu": {"busy_ms": 1, "envelope_ms": 1}}]}})";
    const auto a = parse(perf), b = parse(perf);
    CHECK(scope_labels(compare_detail::scope_section(a, b, "x")) ==
          std::vector<std::string>{"S", "S/step"});
    // Every scope timed (perf_scopes "all"): every scope with time is listed.
    std::string all_text = perf;
    all_text.replace(all_text.find("\"steps\""), 7, "\"all\"");
    const auto c = parse(all_text);
    CHECK(scope_labels(compare_detail::scope_section(c, c, "x")) ==
          std::vector<std::string>{"S", "S/step", "S/step/odd"});
  }

  TEST_CASE("per-scope rows mark sampled estimates with ~ and say what that means") {
    const char* sampled = R"({"diffscope": {"status": {"gpu_timing": true, "mode": "perf"},
        "scopes": [{"path": "step/block", "gpu": {"busy_ms": 4, "envelope_ms": 4,
                    "estimated": true}}]}})";
    const char* exact = R"({"diffscope": {"status": {"gpu_timing": true, "mode": "perf"},
        "scopes": [{"path": "step/block", "gpu": {"busy_ms": 5, "envelope_ms": 5}}]}})";
    const auto a = parse(sampled), b = parse(exact);
    REQUIRE(a.scopes.size() == 1);
    CHECK(a.scopes[0].estimated);
    CHECK_FALSE(b.scopes[0].estimated);
    const std::string mixed = compare_detail::scope_section(a, b, "x");
    CHECK(mixed.find("| step/block | ~4.00 | 5.00 |") != std::string::npos);
    CHECK(mixed.find("~: estimated from the steps perf mode sampled") != std::string::npos);
    const std::string plain = compare_detail::scope_section(b, b, "x");
    CHECK(plain.find('~') == std::string::npos);
    CHECK(error_of(R"({"diffscope": {"scopes": [{"path": "a", "gpu": {"busy_ms": 1,
        "envelope_ms": 1, "estimated": 1}}]}})") ==
          "x.json: diffscope.scopes[0].gpu.estimated is not a boolean");
  }

  TEST_CASE("numbers are formatted as Python's format() formats them") {
    using compare_detail::py_fixed;
    CHECK(py_fixed(1.125, 2) == "1.12");  // exact binary value, round half even
    CHECK(py_fixed(2.675, 2) == "2.67");  // 2.67499999...
    CHECK(py_fixed(0.0, 2, true) == "+0.00");
    CHECK(py_fixed(-0.0, 1, true) == "-0.0");
    CHECK(py_fixed(std::nan(""), 2, true) == "+nan");
    CHECK(py_fixed(-std::nan(""), 2) == "nan");
    CHECK(py_fixed(-HUGE_VAL, 1, true) == "-inf");
  }

  TEST_CASE("stage status uses max(10 %, 120 ms) and e2e status +-2 %") {
    using namespace compare_detail;
    CHECK(std::string(stage_status(1000, 1120)) == neutral);  // +12 % but not > 1120 ms
    CHECK(std::string(stage_status(1000, 1120.001)) == red);
    CHECK(std::string(stage_status(100, 219)) == neutral);  // +119 %, +119 ms
    CHECK(std::string(stage_status(200, 79.9)) == green);
    CHECK(std::string(e2e_status(-2.0)) == neutral);
    CHECK(std::string(e2e_status(-2.01)) == check);
    CHECK(std::string(e2e_status(2.01)) == cross);
    CHECK(diff_of(0, 5).second == 0.0);
  }

  TEST_CASE("legacy denoising_step_<digits> entries are summed into one row") {
    using namespace compare_detail;
    std::vector<dump_stage> s = {
        {"A", 1}, {"denoising_step_0", 2}, {"denoising_step_x", 4}, {"denoising_step_1", 3},
        {"A", 5}, {"denoising_step_", 6}};
    const auto c = consolidate(s);
    CHECK(c.order ==
          std::vector<std::string>{"A", "Denoising Loop", "denoising_step_x", "denoising_step_"});
    CHECK(c.durations.at("Denoising Loop") == 5.0);
    CHECK(c.counts.at("Denoising Loop") == 2);
    CHECK(c.durations.at("A") == 6.0);
  }

  TEST_CASE("the repeated-run verdict: docs/compare.md's worked example") {
    // base 100, 102, 98 (median 100, spread 2); new 106, 105, 109 (median 106, spread 2).
    auto v = judge({100, 102, 98}, {106, 105, 109});
    CHECK(v.base_median == 100);
    CHECK(v.new_median == 106);
    CHECK(v.threshold == doctest::Approx(2.0));
    CHECK(v.noise == 4);
    CHECK(std::string(v.verdict) == "slower");
    CHECK(std::string(judge({100, 102, 98}, {94, 95, 93}).verdict) == "faster");
    // +3 ms but the runs scatter by +-5 ms: unsure.
    CHECK(std::string(judge({100, 110, 90}, {103, 98, 108}).verdict) == "unsure");
    // +1 ms, within the threshold, runs tight: same.
    CHECK(std::string(judge({100, 100.5, 99.5}, {101, 101.5, 100.5}).verdict) == "same");
    // +1 ms within the threshold but runs too noisy to rule out a 2 ms change: unsure.
    CHECK(std::string(judge({100, 104, 96}, {101, 99, 103}).verdict) == "unsure");
    // Even counts take the mean of the middle two; one run per side has no spread.
    CHECK(median_of({4, 1, 3, 2}) == 2.5);
    CHECK(std::string(judge({100}, {103}).verdict) == "slower");
    CHECK(std::string(judge({100}, {101}, {5.0, 0.1}).verdict) == "same");
  }

  TEST_CASE("merge takes the maximum over ranks and keeps each rank") {
    std::vector<perf_dump_data> r = {
        parse(
            R"({"commit_hash": "a", "total_duration_ms": 10, "steps": [{"name": "S", "duration_ms": 4}],
                  "denoise_steps_ms": [{"step": 0, "duration_ms": 1}], "meta": {"z": "1", "a": "2"}})"),
        parse(
            R"({"commit_hash": "b", "total_duration_ms": 12, "steps": [{"name": "S", "duration_ms": 3},
                  {"name": "T", "duration_ms": 1}], "denoise_steps_ms": [{"step": 0, "duration_ms": 0.5},
                  {"step": 1, "duration_ms": 2}]})")};
    std::vector<std::string> warnings;
    const auto m = merge_dumps(r, warnings);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("commit_hash differs") == 0);
    CHECK(m["total_duration_ms"].get<double>() == 12.0);
    CHECK(m["steps"].size() == 2);
    CHECK(m["steps"][0]["duration_ms"].get<double>() == 4.0);
    CHECK(m["denoise_steps_ms"][1]["duration_ms"].get<double>() == 2.0);
    CHECK(m["meta"].dump() == R"({"z":"1","a":"2"})");
    CHECK(m["diffscope"]["ranks"].size() == 2);
    CHECK(dump_text(m).rfind("{\n  \"timestamp\": ", 0) == 0);
  }

  TEST_CASE("a perf dump is an object with a perf-dump key and no traceEvents") {
    CHECK(error_of("5") ==
          "x.json: not a perf dump (the top level is a number, not a JSON object)");
    CHECK(error_of(R"("text")") ==
          "x.json: not a perf dump (the top level is a string, not a JSON object)");
    CHECK(error_of(R"({"traceEvents": [], "displayTimeUnit": "ms"})") ==
          "x.json: a Chrome trace (it has traceEvents), not a perf dump (diffscope hotspots "
          "reads traces)");
    // Ours carry both: still a trace.
    CHECK(error_of(R"({"traceEvents": [], "diffscope": {}})").find("a Chrome trace") !=
          std::string::npos);
    CHECK(error_of(R"({"meta": {}, "tag": "x"})") ==
          "x.json: not a perf dump (it has none of total_duration_ms, steps, denoise_steps_ms, "
          "diffscope)");
    CHECK(error_of("{}").find("not a perf dump") != std::string::npos);
    // A key of the wrong type is named as such, before the perf-dump check.
    CHECK(error_of(R"({"meta": []})") == "x.json: meta is not an object");
    // SGLang's own dumps may lack keys: any one of them makes a dump.
    for (const char* ok : {R"({"steps": []})", R"({"total_duration_ms": 1})",
                           R"({"denoise_steps_ms": []})", R"({"diffscope": {}})"})
      CHECK(error_of(ok) == "");
  }

  TEST_CASE("JSON deeper than 256 levels is refused before the parser builds it") {
    auto nested = [](std::size_t levels) {
      std::string s = R"({"steps": [], "meta": )";
      for (std::size_t i = 1; i < levels; ++i) s += R"({"a": )";
      s += "1";
      for (std::size_t i = 1; i < levels; ++i) s += "}";
      return s + "}";
    };
    CHECK(error_of(nested(256)) == "");  // the top-level object and meta count
    CHECK(error_of(nested(257))
              .rfind("x.json: JSON nested too deeply: more than 256 levels (at byte ", 0) == 0);
    CHECK(error_of(nested(100000)).find("nested too deeply") != std::string::npos);
    CHECK(error_of(std::string(100000, '[')).find("nested too deeply") != std::string::npos);
    // Brackets inside strings are text, not nesting.
    CHECK(error_of(R"({"steps": [{"name": ")" + std::string(1000, '[') + R"(\""}]})") == "");
  }

  TEST_CASE("a dump above the size or value limit is refused, the limit named") {
    const std::string big(max_dump_bytes + 1, ' ');
    CHECK(error_of(big) == "x.json: larger than 64 MiB, the limit for a perf dump");
    std::string many = R"({"steps": [], "meta": {"a": [)";
    for (std::uint64_t i = 0; i <= max_dump_values; ++i) many += "0,";
    many += "0]}}";
    CHECK(error_of(many).rfind("x.json: more than 4194304 JSON values, the limit for a perf dump",
                               0) == 0);
  }

  TEST_CASE("one UTF-8 byte-order mark at the start is skipped; anything more is not JSON") {
    const std::string bom = "\xEF\xBB\xBF";
    const auto d = parse(bom + R"({"total_duration_ms": 5})");
    CHECK(d.total_duration_ms == 5.0);
    CHECK(error_of(bom + bom + "{}") == "x.json: not valid JSON (a second byte-order mark)");
    CHECK(error_of(bom) == "x.json: empty file");
    CHECK(error_of(bom + " \n") == "x.json: empty file");
    CHECK(error_of(" " + bom + "{}").rfind("x.json: not valid JSON (", 0) == 0);
  }

  TEST_CASE("host-timed and device-timed stage durations get a note, or an error with --strict") {
    const auto sglang = parse(R"({"total_duration_ms": 1, "steps": []})", "sg.json");
    const auto host =
        parse(R"({"steps": [], "diffscope": {"status": {"gpu_timing": false}}})", "dir/host.json");
    const auto device =
        parse(R"({"steps": [], "diffscope": {"status": {"gpu_timing": true}}})", "dir/dev.json");
    CHECK_FALSE(device_timed(sglang));
    CHECK_FALSE(device_timed(host));
    CHECK(device_timed(device));
    CHECK(timing_note({&sglang, &host}, true, true) == "");  // both host: nothing to say
    CHECK(timing_note({&device, &device}, true, true) == "");
    const std::string md = timing_note({&device, &sglang, &host}, false, true);
    CHECK(md.rfind("> **Note:** the stage durations are different quantities: host time without "
                   "synchronisation in sg.json, host.json",
                   0) == 0);
    CHECK(md.find("the GPU envelope in dev.json") != std::string::npos);
    CHECK(md.size() > 2);
    CHECK(md.substr(md.size() - 3) == ".\n\n");
    const std::string line = timing_note({&sglang, &device}, false, false);
    CHECK(line.rfind("diffscope compare: note: the stage durations", 0) == 0);
    CHECK(std::count(line.begin(), line.end(), '\n') == 1);
    try {
      timing_note({&sglang, &device}, true, true);
      FAIL("--strict must refuse the mix");
    } catch (const failure& f) {
      CHECK(f.code == exit_usage);
      CHECK(std::string(f.what()).find("inputs mix host-timed stage durations (sg.json) and "
                                       "device-timed ones (dev.json)") == 0);
    }
  }

  TEST_CASE("compare and merge stay linear in the number of stages and scopes") {
    const auto seconds_for = [](int n) {
      std::string text = R"({"steps": [)";
      std::string scopes;
      for (int i = 0; i < n; ++i) {
        text += (i ? "," : "") + std::string(R"({"name": "s)") + std::to_string(i) +
                R"(", "duration_ms": 1})";
        scopes += (i ? "," : "") + std::string(R"({"path": "p)") + std::to_string(i) +
                  R"(", "gpu": {"busy_ms": 1, "envelope_ms": 1}})";
      }
      text += R"(], "diffscope": {"status": {"gpu_timing": true}, "scopes": [)" + scopes + "]}}";
      const auto d = parse(text);
      const auto start = std::chrono::steady_clock::now();
      const std::string report = compare_report({d, d}, "now");
      std::vector<std::string> warnings;
      const auto merged = merge_dumps({d, d}, warnings);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      CHECK(report.find("| s" + std::to_string(n - 1) + " | 1.00 | 1.00 |") != std::string::npos);
      CHECK(merged.at("steps").size() == static_cast<std::size_t>(n));
      return s;
    };
    check_linear(seconds_for, 10000);
  }

  TEST_CASE("a dump's objects are built in linear time; a repeated key keeps its last value") {
    // 100,000 keys in one object: nlohmann's own ordered builder searches each key linearly.
    const auto seconds_for = [](int n) {
      std::string text = R"({"steps": [], "meta": {)";
      for (int i = 0; i < n; ++i)
        text += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\": \"v\"";
      text += "}}";
      const auto start = std::chrono::steady_clock::now();
      const auto d = parse(text);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      CHECK(d.meta.size() == static_cast<std::size_t>(n));
      CHECK(d.meta.begin().key() == "k0");
      return s;
    };
    check_linear(seconds_for, 25000);
    const auto r = parse(R"({"total_duration_ms": 1, "meta": {"a": "1", "b": "2", "a": "3"},
                             "total_duration_ms": 2})");
    CHECK(r.total_duration_ms == 2.0);
    CHECK(r.meta.dump() == R"({"a":"3","b":"2"})");
    CHECK(error_of(R"({"total_duration_ms": 1e999})").rfind("x.json: not valid JSON (", 0) == 0);
    CHECK(error_of(R"({"steps": []} x)").rfind("x.json: not valid JSON (", 0) == 0);
  }

  TEST_CASE("a list above max_dump_entries is refused, named") {
    auto list = [](const char* key, const char* entry, std::size_t n) {
      std::string t = std::string("{\"") + key + "\": [";
      for (std::size_t i = 0; i < n; ++i) t += (i ? "," : "") + std::string(entry);
      return t + "]}";
    };
    CHECK(error_of(list("steps", "{}", max_dump_entries)) == "");
    CHECK(error_of(list("steps", "{}", max_dump_entries + 1)) ==
          "x.json: steps has more than 100000 entries, the limit for a perf dump");
    CHECK(error_of(list("denoise_steps_ms", "{}", max_dump_entries + 1)) ==
          "x.json: denoise_steps_ms has more than 100000 entries, the limit for a perf dump");
    std::string scopes = R"({"diffscope": {"scopes": [)";
    for (std::size_t i = 0; i <= max_dump_entries; ++i)
      scopes += i ? R"(,{"path": "p"})" : R"({"path": "p"})";
    CHECK(error_of(scopes + "]}}") ==
          "x.json: diffscope.scopes has more than 100000 entries, the limit for a perf dump");
  }

  TEST_CASE("a sampled dump reads back: spans, traced steps, estimates and the sampling object") {
    const auto d = parse(diffscope::perf_dump_json(sample::sampled(), {}), "s.json");
    CHECK(dump_mode(d) == "sampled");
    CHECK(d.denoise_steps.at(0).duration_ms == 238.0);  // the span
    const dump_results back = results_of_dump(d);
    const diffscope::results& r = back.res;
    CHECK(r.status.mode == "sampled");
    REQUIRE(r.steps.size() == 4);
    CHECK_FALSE(r.steps[0].traced);
    CHECK(r.steps[1].traced);
    CHECK(r.steps[0].gpu.span_ms == 238.0);
    CHECK(r.steps[1].gpu.traced_calls == 1);
    CHECK(r.steps[1].categories_measured);
    CHECK_FALSE(r.steps[0].categories_measured);
    REQUIRE_FALSE(r.kernels.empty());
    CHECK(r.kernels[0].estimated);
    CHECK(r.kernels[0].error_ms == 22.0);
    CHECK(r.sampling.active);
    CHECK(r.sampling.rule == "steps 1-2");
    CHECK(r.sampling.traced_indices == std::vector<std::int64_t>{1, 2});
    CHECK(r.sampling.launches_untraced_estimated == 200);
    // A profile dump has none of it.
    const dump_results p =
        results_of_dump(parse(diffscope::perf_dump_json(sample::profiled(), {}), "p.json"));
    CHECK_FALSE(p.res.sampling.active);
    CHECK(p.res.steps[0].traced);
    CHECK_FALSE(p.res.kernels[0].estimated);
    std::string bad;
    try {
      results_of_dump(parse(R"({"diffscope": {"sampling": {"traced_indices": [1, "2"]}}})"));
    } catch (const failure& f) {
      CHECK(f.code == exit_usage);
      bad = f.what();
    }
    CHECK(bad == "x.json: diffscope.sampling.traced_indices[1] is not an integer");
  }

  TEST_CASE("sampled against profile or perf is mixed modes; two sampled dumps compare") {
    const auto s1 = parse(diffscope::perf_dump_json(sample::sampled(), {}), "s1.json");
    const auto s2 = parse(diffscope::perf_dump_json(sample::sampled(), {}), "s2.json");
    const auto p = parse(diffscope::perf_dump_json(sample::profiled(), {}), "p.json");
    std::string err;
    try {
      check_modes({&p, &s1}, false);
    } catch (const failure& f) {
      err = f.what();
    }
    CHECK(err.find("profile: p.json; sampled: s1.json") != std::string::npos);
    CHECK(err.find("a sampled dump's scope and kernel figures are estimates") != std::string::npos);
    CHECK(err.find("--allow-mixed-modes") != std::string::npos);
    CHECK(check_modes({&p, &s1}, true) == "mixed (profile: p.json; sampled: s1.json)");
    CHECK(check_modes({&s1, &s2}, false) == "sampled");
    // The report names the traced steps and marks the estimates.
    const std::string rep = compare_report({s1, s2}, "now", false, "sampled");
    CHECK(rep.find("- diffscope timing mode: sampled\n") != std::string::npos);
    CHECK(rep.find("- s1.json: sampled mode, steps 1-2, traced 2 of 4 steps (1, 2)") !=
          std::string::npos);
    CHECK(rep.find("~: an estimate, scaled from the denoise steps a sampled-mode dump traced") !=
          std::string::npos);
    // A profile pair's report says nothing of sampling.
    const std::string prof = compare_report({p, p}, "now", false, "profile");
    CHECK(prof.find("sampled") == std::string::npos);
  }
}
