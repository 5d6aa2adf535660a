// Test helper: synthetic diffscope::results snapshots for the output tests (perf dump,
// trace, summary). Numbers are chosen so that every rule shows: a stage without GPU work,
// GPU envelopes longer than host times (asynchronous work), names that need escaping.
#pragma once

#include <cstdint>
#include <string>

#include <diffscope/results.hpp>

namespace sample {

inline diffscope::gpu_stats gpu(double busy, double occupied, double envelope,
                                std::uint64_t kernels, std::uint64_t memcpys = 0,
                                std::uint64_t bytes = 0) {
  diffscope::gpu_stats g;
  g.measured = true;
  g.busy_ms = busy;
  g.occupied_ms = occupied;
  g.envelope_ms = envelope;
  g.kernels = kernels;
  g.memcpys = memcpys;
  g.bytes = bytes;
  return g;
}

inline diffscope::scope_result scope(std::string path, diffscope::category c, int depth,
                                     std::int64_t parent, std::uint64_t calls, double host_sum,
                                     diffscope::gpu_stats g, std::uint64_t launches) {
  diffscope::scope_result s;
  s.name = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  s.path = std::move(path);
  s.cat = c;
  s.domain = "diffscope";
  s.depth = depth;
  s.parent = parent;
  s.host.calls = calls;
  s.host.sum_ms = host_sum;
  s.host.mean_ms = calls ? host_sum / static_cast<double>(calls) : 0;
  s.host.min_ms = s.host.mean_ms * 0.9;
  s.host.max_ms = s.host.mean_ms * 1.2;
  s.host.p50_ms = s.host.mean_ms;
  s.host.p90_ms = s.host.max_ms;
  s.gpu = g;
  s.launches = launches;
  return s;
}

/// A profiled run: 4 stages, 4 denoise steps, nested scopes, kernels with awkward names.
inline diffscope::results profiled() {
  using diffscope::category;
  diffscope::results r;
  r.status.gpu_timing = true;
  r.status.mode = "profile";
  r.wall_ms = 1234.5678901;

  const auto stage = [&](const char* name, double host, diffscope::gpu_stats g, double start) {
    diffscope::stage_result s;
    s.name = name;
    s.calls = 1;
    s.host_ms = host;
    s.gpu = g;
    s.start_ms = start;
    r.stages.push_back(s);
  };
  diffscope::gpu_stats no_work;
  no_work.measured = true;  // measured, but the stage launched nothing
  stage("InputValidationStage", 0.25, no_work, 0.1);
  stage("TextEncodingStage", 30.5, gpu(20, 22, 25.5, 10, 2, 4096), 1);
  stage("DenoisingStage", 900.125, gpu(880, 900, 950.75, 400), 40);
  stage("DecodingStage", 100, gpu(190, 200, 210.5, 30), 990);

  for (int i = 0; i < 4; ++i) {
    diffscope::step_result s;
    s.step = i;
    s.calls = 1;
    s.host_ms = i == 0 ? 5.0 : 220.0 + i;  // step 0 looks fast on the host
    s.gpu = gpu(220, 225, 237.5 + i, 100);
    s.start_ms = 40 + 230.0 * i;
    r.steps.push_back(s);
  }

  r.scopes.push_back(
      scope("DenoisingStage", category::stage, 0, -1, 1, 900.125, gpu(880, 900, 950.75, 400), 400));
  r.scopes.push_back(scope("DenoisingStage/denoise_step", category::denoise_step, 1, 0, 4, 890,
                           gpu(880, 900, 950, 400), 400));
  r.scopes.push_back(scope("DenoisingStage/denoise_step/attention", category::attention, 2, 1, 96,
                           40, gpu(440, 440, 600, 96), 96));
  r.scopes.push_back(scope("DenoisingStage/denoise_step/norm \"q\\k\"", category::norm_rope, 2, 1,
                           96, 12, gpu(110, 110, 150, 96), 96));
  r.scopes.push_back(
      scope("DecodingStage", category::stage, 0, -1, 1, 100, gpu(190, 200, 210.5, 30), 30));

  const auto kernel = [&](std::string name, const char* kind, const char* path, std::uint64_t count,
                          double total) {
    diffscope::kernel_result k;
    k.name = std::move(name);
    k.kind = kind;
    k.scope_path = path;
    k.count = count;
    k.total_ms = total;
    k.min_ms = total / static_cast<double>(count) * 0.8;
    k.max_ms = total / static_cast<double>(count) * 1.5;
    r.kernels.push_back(k);
  };
  kernel(
      "flash_fwd_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4, false, false, cutlass::half_t>>",
      "kernel", "DenoisingStage/denoise_step/attention", 96, 440);
  kernel("nvjet_gemm \"quoted\" \\ back", "kernel", "DenoisingStage/denoise_step", 200, 330);
  kernel("r\xc3\xa9sum\xc3\xa9_\xe2\x9c\x93_kernel", "kernel", "DecodingStage", 30, 190);
  kernel(std::string("bad\xff\xfe utf8 \x01 ctl \xe2\x82 cut"), "kernel",
         "DenoisingStage/denoise_step/norm \"q\\k\"", 96, 110);
  kernel("memcpy HtoD", "memcpy", "TextEncodingStage", 2, 0.5);

  diffscope::memory_checkpoint m;
  m.name = "before_forward";
  m.used_mb = 1000.125;  // a binary tie: Python's round() gives 1000.12
  m.peak_used_mb = 1000.125;
  r.memory.push_back(m);
  m.name = "after_DenoisingStage";
  m.used_mb = 2.675;  // 2.67499999...: rounds to 2.67
  m.peak_used_mb = 60000.4567;
  r.memory.push_back(m);

  r.environment.gpu_name = "NVIDIA H200";
  r.environment.device_count = 1;
  r.environment.driver_version = 13000;
  r.environment.runtime_version = 13000;
  r.environment.cupti_version = 130001;
  r.environment.hostname = "node-1";
  r.environment.pid = 4242;

  r.overhead.ranges = 1000;
  r.overhead.callbacks = 600;
  r.overhead.records = 560;
  r.overhead.buffers = 3;
  r.overhead.per_launch_callback_ns = 410.5;
  r.overhead.per_range_ns = 95.25;
  return r;
}

/// The same run seen without a GPU: every gpu_stats unmeasured, status says why.
inline diffscope::results host_only() {
  diffscope::results r = profiled();
  r.status.gpu_timing = false;
  r.status.reason = "no CUDA driver";
  for (auto& s : r.stages) s.gpu = {};
  for (auto& s : r.steps) s.gpu = {};
  for (auto& s : r.scopes) s.gpu = {};
  r.kernels.clear();
  r.environment = {};
  r.environment.hostname = "node-1";
  return r;
}

/// A profiled run with raw trace events: two threads, two devices, two streams, one graph
/// launch (two ops with one correlation id), one copy, and a cap that was hit.
inline diffscope::results traced(bool capped) {
  diffscope::results r = profiled();
  r.trace.enabled = true;
  r.trace.cap = 8;
  r.trace.origin_ns = 1'000'000'000;
  const auto range = [&](const char* name, const char* path, diffscope::category c,
                         std::uint64_t thread, std::uint64_t s, std::uint64_t e,
                         std::int64_t step) {
    diffscope::trace_range x;
    x.name = name;
    x.path = path;
    x.domain = "diffscope";
    x.cat = c;
    x.thread = thread;
    x.start_ns = r.trace.origin_ns + s;
    x.end_ns = r.trace.origin_ns + e;
    x.step = step;
    r.trace.ranges.push_back(x);
  };
  range("DenoisingStage", "DenoisingStage", diffscope::category::stage, 1, 1000, 900000, -1);
  range("denoising_step_0", "DenoisingStage/denoise_step", diffscope::category::denoise_step, 1,
        2000, 400000, 0);
  range("attn \"x\"\xff", "DenoisingStage/denoise_step/attn", diffscope::category::attention, 2,
        3000, 5000, 0);
  const auto op = [&](const char* name, const char* kind, std::uint32_t device,
                      std::uint32_t stream, std::uint32_t corr, std::uint64_t s, std::uint64_t e,
                      std::uint64_t launch_thread, std::uint64_t launch_ns) {
    diffscope::trace_op o;
    o.name = name;
    o.kind = kind;
    o.scope_path = "DenoisingStage/denoise_step";
    o.device = device;
    o.stream = stream;
    o.correlation_id = corr;
    o.start_ns = r.trace.origin_ns + s;
    o.end_ns = r.trace.origin_ns + e;
    o.bytes = std::string(kind) == "kernel" ? 0 : 1 << 20;
    o.step = 0;
    o.launch_thread = launch_thread;
    o.launch_ns = launch_ns ? r.trace.origin_ns + launch_ns : 0;
    r.trace.ops.push_back(o);
  };
  op("gemm_kernel", "kernel", 0, 7, 11, 10000, 60000, 1, 2500);
  op("graph_kernel_a", "kernel", 0, 7, 12, 61000, 70000, 1, 2600);
  op("graph_kernel_b", "kernel", 0, 7, 12, 70500, 80000, 1, 2600);
  op("memcpy HtoD", "memcpy", 1, 3, 13, 4000, 4500, 2, 3500);
  op("orphan_kernel", "kernel", 1, 9, 0, 90000, 91000, 0, 0);  // launch not seen
  if (capped) r.faults.trace_events_dropped = 42;
  return r;
}

/// profiled() with ranges left open at stop: four on two threads, one of which had ended.
inline diffscope::results with_unclosed_ranges() {
  auto r = profiled();
  r.faults.unclosed_at_stop = 4;
  diffscope::unclosed_range u;
  u.thread = 1;
  u.open = 3;
  u.path = "request/DenoisingStage/denoise_step";
  u.step = 3;
  u.thread_exited = true;
  r.unclosed_ranges.push_back(u);
  u.thread = 2;
  u.open = 1;
  u.path = "worker";
  u.step = -1;
  u.thread_exited = false;
  r.unclosed_ranges.push_back(u);
  return r;
}

}  // namespace sample
