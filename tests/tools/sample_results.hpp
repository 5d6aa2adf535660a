// Test helper: synthetic diffscope::results snapshots for the output tests (perf dump,
// trace, summary). Numbers are chosen so that every rule shows: a stage without GPU work,
// GPU envelopes longer than host times (asynchronous work), names that need escaping.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

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

/// The profiled run in sampled mode: events timed every stage, step and request (span_ms),
/// steps 1-2 of 0-3 were traced; the figures from operations inside steps are estimates.
inline diffscope::results sampled() {
  diffscope::results r = profiled();
  r.status.mode = "sampled";
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    auto& g = r.stages[i].gpu;
    g.timed_calls = 1;
    g.span_ms = 0.5 + 100.0 * static_cast<double>(i);
    g.traced_calls = 1;
  }
  r.stages[2].gpu.estimated = true;  // DenoisingStage: its steps half traced
  r.stages[2].gpu.error_ms = 12.5;
  r.stages[2].gpu.span_ms = 960.25;
  for (auto& s : r.steps) {
    s.traced = s.step == 1 || s.step == 2;
    s.gpu.timed_calls = 1;
    s.gpu.span_ms = 238.0 + static_cast<double>(s.step);
    s.gpu.traced_calls = s.traced ? 1 : 0;
    if (!s.traced) {
      const double span = s.gpu.span_ms;
      s.gpu = {};
      s.gpu.measured = true;
      s.gpu.timed_calls = 1;
      s.gpu.span_ms = span;
    } else {
      s.categories = {{"attention", 110}, {"gemm", 110}};
      s.categories_measured = true;
    }
  }
  for (auto& s : r.scopes) {
    s.gpu.traced_calls = s.host.calls / 2;
    s.gpu.estimated = s.path.rfind("DenoisingStage/denoise_step", 0) == 0;
    s.gpu.error_ms = s.gpu.estimated ? 4.25 : 0;
    if (!s.gpu.estimated) s.gpu.traced_calls = s.host.calls;
  }
  for (auto& k : r.kernels) {
    k.estimated = k.scope_path.rfind("DenoisingStage/denoise_step", 0) == 0;
    k.error_ms = k.estimated ? k.total_ms / 20 : 0;
  }
  r.sampling.active = true;
  r.sampling.rule = "steps 1-2";
  r.sampling.steps = 4;
  r.sampling.traced_steps = 2;
  r.sampling.traced_indices = {1, 2};
  r.sampling.switches = 2;
  r.sampling.switch_ms = 0.75;
  r.sampling.launches_traced = 500;
  r.sampling.launches_untraced_estimated = 200;
  r.sampling.saved_callback_ms_estimated = 0.08;
  r.faults.sample_switch_failures = 1;
  r.faults.sampled_steps_empty = 0;
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

/// Kernel names of a layerwise model that read alike at both ends: cut in the middle they
/// would print the same.
inline std::string elementwise_kernel(const char* functor) {
  return std::string(
             "void at::native::vectorized_elementwise_kernel<4, at::native::BinaryFunctor<"
             "c10::BFloat16, c10::BFloat16, c10::BFloat16, at::native::binary_internal::") +
         functor +
         "<float> >, std::array<char*, 3ul> >(int, at::native::BinaryFunctor<c10::BFloat16, "
         "c10::BFloat16, c10::BFloat16, at::native::binary_internal::" +
         functor + "<float> >, std::array<char*, 3ul>)";
}

/// A transformer annotated as SGLang's layerwise markers do it: a stage, the loop, the step,
/// predict_noise, then one scope per module named by its qualified name, so that a child
/// repeats its parent's name (`transformer.transformer_blocks.3.attn.to_q` under
/// `transformer.transformer_blocks.3.attn`). 11 scopes per block and 19 more: 305 scopes
/// with 26 blocks. GPU busy is inclusive and differs per block; kernels are attributed to the
/// scopes, some with long names that read alike at both ends.
inline diffscope::results layerwise(int blocks = 26) {
  using diffscope::category;
  diffscope::results r;
  r.status.gpu_timing = true;
  r.status.mode = "profile";
  r.wall_ms = 5000;
  struct node {
    std::string name;
    std::int64_t parent;
    double own;  // busy of the kernels attributed to it
    std::string kernel;
  };
  std::vector<node> nodes;
  const auto add = [&](std::string name, std::int64_t parent, double own, std::string kernel = "") {
    nodes.push_back({std::move(name), parent, own, std::move(kernel)});
    return static_cast<std::int64_t>(nodes.size()) - 1;
  };
  const std::string gemm = "nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT";
  const std::string norm =
      "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, "
      "float>(int, float, c10::BFloat16 const*, c10::BFloat16 const*, c10::BFloat16 const*, "
      "float*, float*, c10::BFloat16*)";
  const std::string attn =
      "void flash::FlashAttnFwdSm90<cutlass::bfloat16_t, 128, 128, true>(flash::Params)";
  const auto stage = add("DenoisingStage", -1, 0);
  const auto loop = add("denoising_loop", stage, 0);
  const auto step = add("denoise_step", loop, 0);
  const auto predict = add("predict_noise", step, 0);
  const auto tte =
      add("transformer.time_text_embed", predict, 0.5, elementwise_kernel("AddFunctor"));
  for (const char* e : {"timestep_embedder", "text_embedder"}) {
    const std::string q = "transformer.time_text_embed." + std::string(e);
    const auto m = add(q, tte, 0);
    add(q + ".linear_1", m, 1.0, gemm);
    add(q + ".linear_2", m, 1.5, gemm);
  }
  add("transformer.x_embedder", predict, 2, gemm);
  add("transformer.context_embedder", predict, 3, gemm);
  for (int b = 0; b < blocks; ++b) {
    const std::string q = "transformer.transformer_blocks." + std::to_string(b);
    const double f = 1.0 + (b % 7) * 0.1 + b * 0.01;  // every block its own time
    const auto block = add(q, predict, 0.3 * f, elementwise_kernel("MulFunctor"));
    const auto norm1 = add(q + ".norm1", block, 0.5 * f, norm);
    add(q + ".norm1.linear", norm1, 2 * f, gemm);
    const auto a = add(q + ".attn", block, 3 * f, attn);
    for (const char* l : {"to_q", "to_k", "to_v", "to_out.0"})
      add(q + ".attn." + l, a, 1 * f, gemm);
    const auto ff = add(q + ".ff", block, 0);
    add(q + ".ff.net.0.proj", ff, 6 * f, gemm);
    add(q + ".ff.net.2", ff, 5 * f, gemm);
  }
  const auto norm_out = add("transformer.norm_out", predict, 0.5, norm);
  add("transformer.norm_out.linear", norm_out, 1, gemm);
  add("transformer.proj_out", predict, 2, gemm);
  add("scheduler_step", step, 0.2, elementwise_kernel("AddFunctor"));
  const auto decoding = add("DecodingStage", -1, 40, "void conv2d_kernel<float>(int)");
  add("vae.decoder", decoding, 0);

  std::vector<double> busy(nodes.size());
  for (std::size_t i = nodes.size(); i-- > 0;) {
    busy[i] += nodes[i].own;
    if (nodes[i].parent >= 0) busy[static_cast<std::size_t>(nodes[i].parent)] += busy[i];
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const node& n = nodes[i];
    const std::int64_t p = n.parent;
    const std::string path =
        p < 0 ? n.name : r.scopes[static_cast<std::size_t>(p)].path + "/" + n.name;
    const int depth = p < 0 ? 0 : r.scopes[static_cast<std::size_t>(p)].depth + 1;
    const category cat =
        i == static_cast<std::size_t>(stage) || n.name == "DecodingStage"  ? category::stage
        : i == static_cast<std::size_t>(step)                              ? category::denoise_step
        : n.name.size() > 5 && n.name.substr(n.name.size() - 5) == ".attn" ? category::attention
                                                                           : category::other;
    const std::uint64_t calls = depth >= 2 ? 28 : 1;
    diffscope::scope_result s = scope(path, cat, depth, p, calls, busy[i] * 1.2,
                                      gpu(busy[i], busy[i], busy[i] * 1.05, calls), calls);
    r.scopes.push_back(s);
    if (!n.kernel.empty()) {
      diffscope::kernel_result k;
      k.name = n.kernel;
      k.kind = "kernel";
      k.scope_path = path;
      k.count = calls;
      k.total_ms = n.own;
      k.min_ms = n.own / static_cast<double>(calls);
      k.max_ms = k.min_ms;
      r.kernels.push_back(k);
    }
  }
  std::stable_sort(r.kernels.begin(), r.kernels.end(),
                   [](const diffscope::kernel_result& a, const diffscope::kernel_result& b) {
                     return a.total_ms > b.total_ms;
                   });
  return r;
}

}  // namespace sample
