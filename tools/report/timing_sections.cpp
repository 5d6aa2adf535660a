// `diffscope report` for one dump: the stages and denoise steps, GPU and host time side by side
// (in sampled mode each one's span between device events).
#include <algorithm>
#include <optional>
#include <string>

#include <diffscope/analysis/figures.hpp>

#include "page_parts.hpp"

namespace diffscope::cli::report {

void stages_section(page_builder& b, const run_view& r) {
  b.section("stages", "Stages");
  if (r.stages.empty()) {
    b.missing("stages",
              "the dump has no stages (neither diffscope.stages nor entries in the SGLang part's "
              "steps).");
    b.end_section();
    return;
  }
  bar_chart c;
  c.id = "stages";
  c.title = "Time per stage";
  const std::size_t n = std::min(r.stages.size(), max_bar_groups);
  if (r.stages_detailed) {
    c.series = {"GPU envelope", "host"};
    c.description =
        "Per stage: the GPU envelope (first GPU operation start to last end) and the host wall "
        "time, side by side. The perf dump's duration_ms is the envelope where the stage launched "
        "GPU work, else the host time.";
    if (r.mode == "sampled") {
      c.series = {"GPU span", "host"};
      c.description =
          "Per stage: its span between two device events (sampled mode: every call timed, what "
          "the perf dump's duration_ms holds; a stage without one shows its GPU envelope, an "
          "estimate where not every call was traced) and the host wall time, side by side.";
    }
    for (std::size_t i = 0; i < n; ++i) {
      const timed_row& s = r.stages[i];
      std::optional<double> env;
      if (s.gpu.has) env = s.gpu.envelope_ms;
      if (s.span_ms && *s.span_ms > 0) env = s.span_ms;
      c.groups.push_back(
          {s.name, {env, s.host_ms}, s.duration_source == "host" ? "dump: host time" : ""});
    }
    if (!r.dump.gpu_timing)
      b.missing("stages-gpu",
                "GPU timing was not measured" +
                    (r.dump.gpu_reason.empty() ? std::string() : " (" + r.dump.gpu_reason + ")") +
                    ": host times only, no GPU envelope.");
  } else {
    c.series = {"duration_ms (dump)"};
    c.description = "Per stage: the duration_ms of the SGLang part of the dump.";
    for (std::size_t i = 0; i < n; ++i)
      c.groups.push_back({r.stages[i].name, {r.stages[i].duration_ms}, ""});
    b.missing("stages-detail",
              r.merge.present
                  ? "a merged dump has no diffscope.stages: each bar is the slowest rank's "
                    "duration_ms (the critical path); host and GPU time per stage are in each "
                    "rank's own dump."
                  : "no diffscope.stages in this dump: one number per stage, the SGLang part's "
                    "duration_ms (host time without synchronising in an SGLang dump); GPU "
                    "envelope and host time side by side need a diffscope dump.");
  }
  b.chart(c.id, render_bars(c),
          n < r.stages.size() ? "The first " + std::to_string(n) + " of " +
                                    std::to_string(r.stages.size()) + " stages."
                              : "");
  b.end_section();
}

void steps_section(page_builder& b, const run_view& r) {
  b.section("steps", "Denoise steps");
  if (r.steps.empty()) {
    b.missing("steps",
              "the dump has no denoise steps (no diffscope.steps and an empty or absent "
              "denoise_steps_ms).");
    b.end_section();
    return;
  }
  line_chart c;
  c.id = "steps";
  c.title = "Time per denoise step";
  const std::size_t n = std::min(r.steps.size(), max_line_points);
  for (std::size_t i = 0; i < n; ++i) c.x.push_back(r.steps[i].step);
  if (r.steps_detailed) {
    const bool sampled = r.mode == "sampled";
    line_series env{sampled ? "GPU span" : "GPU envelope", {}}, host{"host", {}},
        busy{"GPU busy", {}};
    bool any_gpu = false;
    for (std::size_t i = 0; i < n; ++i) {
      const timed_row& s = r.steps[i];
      any_gpu |= s.gpu.has;
      if (sampled)  // every step has its span; only the traced ones their own busy
        env.y.push_back(s.span_ms);
      else
        env.y.push_back(s.gpu.has ? std::optional<double>(s.gpu.envelope_ms) : std::nullopt);
      busy.y.push_back(s.gpu.has && s.traced ? std::optional<double>(s.gpu.busy_ms) : std::nullopt);
      host.y.push_back(s.host_ms);
    }
    c.description =
        sampled ? "Per denoise step: its span between two device events (every step timed), "
                  "host wall time, and GPU busy (sum of operation durations) of the steps whose "
                  "operations were traced (sampled mode: " +
                      diffscope::detail::traced_steps_text(r.sampling) +
                      "); the others have no busy of their own."
                : "Per denoise step: GPU envelope, host wall time and GPU busy (sum of operation "
                  "durations). Host time below the envelope means the host ran ahead of the GPU: "
                  "unsynchronised host timing misreads such steps.";
    if (any_gpu)
      c.series = {env, host, busy};
    else
      c.series = {host};
    if (!any_gpu)
      b.missing("steps-gpu", "GPU timing was not measured: the steps have host times only.");
  } else {
    line_series d{"duration_ms (dump)", {}};
    for (std::size_t i = 0; i < n; ++i) d.y.push_back(r.steps[i].duration_ms);
    c.series = {d};
    c.description = "Per denoise step: denoise_steps_ms of the SGLang part of the dump.";
    b.missing("steps-detail",
              "no diffscope.steps in this dump: one number per step (denoise_steps_ms); the GPU "
              "envelope, host and busy lines need a diffscope dump's own step table.");
  }
  b.chart(c.id, render_lines(c),
          n < r.steps.size() ? "The first " + std::to_string(n) + " of " +
                                   std::to_string(r.steps.size()) + " steps."
                             : "");
  b.end_section();
}

}  // namespace diffscope::cli::report
