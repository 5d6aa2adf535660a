// Aggregation on synthetic ranges and activity records, fed through the same entry points
// the NVTX tool and the CUPTI source use.
#include <doctest/doctest.h>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/analysis/hotspots.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using diffscope::category;
using namespace diffscope::detail;

namespace {

// Drives an aggregator with explicit timestamps: host times and GPU times in ns.
struct driver {
  aggregator agg;
  std::uint32_t next_corr = 1;
  explicit driver(aggregator_options o = {}) : agg(o) {}

  // Names interned as the NVTX tool does: stages, steps and requests never capped.
  std::uint32_t name(const char* n, category cat) {
    return agg.intern(n, !aggregator::never_folded(cat));
  }
  void push(const char* n, category cat = category::other) {
    agg.push(range_domain::diffscope, name(n, cat), cat, std::nullopt, 0);
  }
  void push_at(const char* n, std::uint64_t t, category cat = category::other) {
    agg.push(range_domain::diffscope, name(n, cat), cat, std::nullopt, t);
  }
  void step(std::int64_t i, std::uint64_t t) {
    agg.push(range_domain::diffscope, agg.intern("denoise_step"), category::denoise_step, i, t);
  }
  void pop(std::uint64_t t = 0) { agg.pop(range_domain::diffscope, t); }
  // A request range (a warm-up with `warmup`), as DIFFSCOPE_REQUEST / DIFFSCOPE_WARMUP open.
  void request(const char* id, std::uint64_t t, bool warmup = false) {
    agg.push(range_domain::diffscope, agg.intern(warmup ? "warmup" : "request", false),
             category::request, std::nullopt, t, id, warmup);
  }
  std::uint32_t launch(launch_kind k = launch_kind::kernel) {
    agg.on_launch(next_corr, k);
    return next_corr++;
  }
  void op(std::uint32_t corr, std::uint64_t start, std::uint64_t end, const char* name = "k",
          std::uint32_t stream = 7, op_kind kind = op_kind::kernel, std::uint64_t bytes = 0,
          std::uint64_t graph_node = 0) {
    gpu_op o;
    o.kind = kind;
    o.correlation_id = corr;
    o.start_ns = start;
    o.end_ns = end;
    o.stream_id = stream;
    o.bytes = bytes;
    o.name = name;
    o.graph_node_id = graph_node;
    agg.on_gpu_op(o);
  }
};

const diffscope::scope_result* find_scope(const diffscope::results& r, const std::string& path) {
  for (const auto& s : r.scopes)
    if (s.path == path) return &s;
  return nullptr;
}

}  // namespace

TEST_SUITE("aggregator") {
  TEST_CASE("the launch table: made by prepare_launches() or the first launches taken") {
    driver d;
    CHECK_FALSE(d.agg.launch_table_ready());  // host-only runs never allocate it
    d.push("a");
    d.pop();
    CHECK_FALSE(d.agg.launch_table_ready());
    d.agg.prepare_launches();  // the collector's start() with GPU timing on
    CHECK(d.agg.launch_table_ready());
    d.push("b");
    const auto k = d.launch();
    d.op(k, 10, 20);
    d.pop(30);
    CHECK(d.agg.pending_launches() == 0);
    d.agg.finalize_all();  // gives the table back
    CHECK_FALSE(d.agg.launch_table_ready());

    driver lazy;
    lazy.push("c");
    lazy.launch();  // into the thread's ring, no lock and no table yet
    CHECK_FALSE(lazy.agg.launch_table_ready());
    lazy.pop();  // the scope's launches are taken into the table when it closes
    CHECK(lazy.agg.launch_table_ready());
  }

  TEST_CASE("a thread's launches still count after the thread exits") {
    driver d;
    std::uint32_t inside = 0, outside = 0;
    std::thread t([&] {
      d.push_at("worker", 0);
      inside = d.launch();
      d.pop(1);
      outside = d.launch();  // outside any scope: stays in the thread's ring
    });
    t.join();
    d.op(outside, 300, 400, "k_out");
    d.op(inside, 100, 200, "k_in");
    d.agg.finalize_all();
    auto r = d.agg.snapshot(true);
    const auto* w = find_scope(r, "worker");
    REQUIRE(w);
    CHECK(w->gpu.kernels == 1);
    CHECK(r.overhead.callbacks == 2);
    CHECK(r.faults.unattributed_records == 0);
  }

  TEST_CASE("launches past a ring's capacity, records first or last, all count in their scope") {
    driver d;
    d.agg.prepare_launches();
    constexpr std::uint32_t n = 10'000;  // many times what a ring holds
    d.push_at("s", 0);
    std::vector<std::uint32_t> ids;
    for (std::uint32_t i = 0; i < n; ++i) ids.push_back(d.launch());
    // Half the records arrive while the scope is open (each finds its launch in the ring or
    // the table), half after it closed.
    for (std::uint32_t i = 0; i < n / 2; ++i) d.op(ids[i], 100 + i * 10, 105 + i * 10);
    d.pop(1);
    CHECK(d.agg.instances_in_flight() == 1);
    for (std::uint32_t i = n / 2; i < n; ++i) d.op(ids[i], 100 + i * 10, 105 + i * 10);
    CHECK(d.agg.instances_in_flight() == 0);
    CHECK(d.agg.pending_launches() == 0);
    auto r = d.agg.snapshot(true);
    const auto* s = find_scope(r, "s");
    REQUIRE(s);
    CHECK(s->gpu.kernels == n);
    CHECK(s->launches == n);
    CHECK(r.overhead.callbacks == n);
    CHECK(r.faults.unattributed_records == 0);
    CHECK(r.faults.late_records == 0);
  }

  TEST_CASE("nested ranges build scope paths with host statistics") {
    driver d;
    for (int i = 0; i < 3; ++i) {
      d.push_at("outer", 1000);
      d.push_at("inner", 1100);
      d.pop(1100 + 100 * (i + 1));
      d.pop(2000);
    }
    auto r = d.agg.snapshot(false);
    REQUIRE(r.scopes.size() == 2);
    CHECK(r.scopes[0].path == "outer");
    CHECK(r.scopes[0].depth == 0);
    CHECK(r.scopes[1].path == "outer/inner");
    CHECK(r.scopes[1].parent == 0);
    CHECK(r.scopes[1].host.calls == 3);
    CHECK(r.scopes[1].host.sum_ms == doctest::Approx(600e-6));
    CHECK(r.scopes[1].host.min_ms == doctest::Approx(100e-6));
    CHECK(r.scopes[1].host.max_ms == doctest::Approx(300e-6));
    CHECK(r.scopes[1].host.p50_ms == doctest::Approx(200e-6));
    CHECK_FALSE(r.scopes[1].gpu.measured);
  }

  TEST_CASE("a kernel counts in its scope and every enclosing scope") {
    driver d;
    d.push("stage", category::stage);
    d.push("attn", category::attention);
    auto c = d.launch();
    d.pop();
    auto c2 = d.launch();
    d.pop();
    d.op(c, 100, 300);
    d.op(c2, 400, 500);
    auto r = d.agg.snapshot(true);
    const auto* attn = find_scope(r, "stage/attn");
    const auto* stage = find_scope(r, "stage");
    REQUIRE(attn);
    REQUIRE(stage);
    CHECK(attn->gpu.measured);
    CHECK(attn->gpu.kernels == 1);
    CHECK(attn->gpu.busy_ms == doctest::Approx(200e-6));
    CHECK(attn->launches == 1);
    CHECK(stage->gpu.kernels == 2);
    CHECK(stage->gpu.busy_ms == doctest::Approx(300e-6));
    CHECK(stage->gpu.envelope_ms == doctest::Approx(400e-6));
    CHECK(stage->gpu.occupied_ms == doctest::Approx(300e-6));
    CHECK(stage->launches == 2);
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "stage");
    CHECK(r.stages[0].gpu.envelope_ms == doctest::Approx(400e-6));
    CHECK(d.agg.instances_in_flight() == 0);
  }

  TEST_CASE("overlapping streams give occupied below busy and envelope above occupied") {
    driver d;
    d.push("s");
    auto a = d.launch();
    auto b = d.launch();
    auto c = d.launch();
    d.pop();
    d.op(a, 0 + 1000, 1000 + 1000, "a", 1);
    d.op(b, 500 + 1000, 1500 + 1000, "b", 2);
    d.op(c, 3000 + 1000, 3500 + 1000, "c", 1);
    auto r = d.agg.snapshot(true);
    const auto* s = find_scope(r, "s");
    REQUIRE(s);
    CHECK(s->gpu.busy_ms == doctest::Approx(2500e-6));
    CHECK(s->gpu.occupied_ms == doctest::Approx(2000e-6));
    CHECK(s->gpu.envelope_ms == doctest::Approx(3500e-6));
  }

  TEST_CASE("records may arrive in any order and before the scope closes") {
    driver d;
    d.push("s");
    auto a = d.launch();
    auto b = d.launch();
    d.op(b, 3000, 4000);
    d.op(a, 1000, 2000);
    CHECK(d.agg.instances_in_flight() == 1);  // still open on the host
    d.pop();
    CHECK(d.agg.instances_in_flight() == 0);
    auto r = d.agg.snapshot(true);
    CHECK(find_scope(r, "s")->gpu.envelope_ms == doctest::Approx(3000e-6));
    CHECK(find_scope(r, "s")->gpu.occupied_ms == doctest::Approx(2000e-6));
  }

  TEST_CASE("steps take GPU envelopes from device time while host time runs ahead") {
    driver d;
    // The CPU enqueues three steps in 30 us; the GPU runs each step's 1 ms kernel later.
    std::vector<std::uint32_t> corr;
    for (int i = 0; i < 3; ++i) {
      d.step(i, 10'000 * i);
      corr.push_back(d.launch());
      d.pop(10'000 * i + 10'000);
    }
    for (int i = 0; i < 3; ++i) d.op(corr[i], 1'000'000 * (i + 1), 1'000'000 * (i + 2));
    auto r = d.agg.snapshot(true);
    REQUIRE(r.steps.size() == 3);
    for (int i = 0; i < 3; ++i) {
      CHECK(r.steps[i].step == i);
      CHECK(r.steps[i].host_ms == doctest::Approx(0.01));
      CHECK(r.steps[i].gpu.envelope_ms == doctest::Approx(1.0));
    }
    const auto* s = find_scope(r, "denoise_step");
    REQUIRE(s);
    CHECK(s->host.calls == 3);
    CHECK(s->cat == category::denoise_step);
  }

  TEST_CASE("default-domain names follow SGLang's stage and step conventions") {
    driver d;
    auto push_default = [&](const char* n) {
      auto c = classify_default_domain(n);
      d.agg.push(range_domain::default_domain, d.agg.intern(c.name), c.cat, c.step, 0);
    };
    push_default("stage_DenoisingStage");
    push_default("denoising_step_4_t981");
    push_default("transformer.blocks.0.attn in=[[1, 4096, 3072]]");
    auto c = d.launch();
    d.agg.pop(range_domain::default_domain, 0);
    d.agg.pop(range_domain::default_domain, 0);
    d.agg.pop(range_domain::default_domain, 0);
    d.op(c, 10, 20);
    auto r = d.agg.snapshot(true);
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "DenoisingStage");
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].step == 4);
    CHECK(r.steps[0].gpu.kernels == 1);
    CHECK(find_scope(r, "DenoisingStage/denoise_step/transformer.blocks.0.attn"));
  }

  TEST_CASE("the name mapping rules are configurable; an empty prefix turns a rule off") {
    diffscope::detail::name_rules rules;
    rules.stage_prefix = "Stage::";
    rules.step_prefix = "step ";
    rules.request_prefix = "";
    rules.strip_shapes = false;
    const auto stage = classify_default_domain("Stage::Denoise", rules);
    CHECK(stage.cat == category::stage);
    CHECK(stage.name == "Denoise");
    const auto step = classify_default_domain("step 4", rules);
    CHECK(step.cat == category::denoise_step);
    CHECK(step.step == 4);
    CHECK(classify_default_domain("denoising_step_4", rules).cat == category::other);
    CHECK(classify_default_domain("stage_Denoise", rules).cat == category::other);
    CHECK(classify_default_domain("request_x", rules).cat == category::other);
    CHECK(classify_default_domain("blk in=[[1]]", rules).name == "blk in=[[1]]");
    CHECK(classify_default_domain("request_x").cat == category::request);  // the defaults
    CHECK(classify_default_domain("blk in=[[1]]").name == "blk");
  }

  TEST_CASE("step names parse with and without timestep suffix") {
    CHECK(parse_step_name("denoising_step_0") == 0);
    CHECK(parse_step_name("denoising_step_12_t999") == 12);
    CHECK(parse_step_name("denoising_step_-3") == -3);
    CHECK_FALSE(parse_step_name("denoising_step_"));
    CHECK_FALSE(parse_step_name("denoising_step_3x"));
    CHECK_FALSE(parse_step_name("denoising_loop"));
  }

  TEST_CASE("a graph captured in scopes A and B and replayed in C attributes to C/A and C/B") {
    driver d;
    d.push("A");
    d.agg.on_graph_node_created(101);
    d.pop();
    d.push("B");
    d.agg.on_graph_node_created(102);
    d.pop();
    // Instantiation clones the nodes; replayed records carry the clones' ids.
    d.agg.on_graph_node_cloned(101, 201);
    d.agg.on_graph_node_cloned(102, 202);
    d.push("C");
    auto g1 = d.launch(launch_kind::graph);
    auto g2 = d.launch(launch_kind::graph);
    d.pop();
    d.op(g1, 1000, 2000, "ka", 1, op_kind::kernel, 0, 201);
    d.op(g1, 2000, 2500, "kb", 1, op_kind::kernel, 0, 202);
    d.op(g2, 3000, 4000, "ka", 1, op_kind::kernel, 0, 201);
    d.op(g2, 4000, 4500, "kb", 1, op_kind::kernel, 0, 202);
    d.agg.finalize_all();
    auto r = d.agg.snapshot(true);
    const auto* ca = find_scope(r, "C/A");
    const auto* cb = find_scope(r, "C/B");
    const auto* c = find_scope(r, "C");
    REQUIRE(ca);
    REQUIRE(cb);
    REQUIRE(c);
    CHECK(ca->gpu.kernels == 2);
    CHECK(ca->gpu.busy_ms == doctest::Approx(2000e-6));
    CHECK(cb->gpu.kernels == 2);
    CHECK(cb->gpu.busy_ms == doctest::Approx(1000e-6));
    CHECK(c->gpu.kernels == 4);
    CHECK(c->gpu.envelope_ms == doctest::Approx(3500e-6));
    CHECK(c->launches == 2);
    CHECK(r.faults.unattributed_records == 0);
  }

  TEST_CASE("a nested driver launch aliases the runtime launch and counts once") {
    driver d;
    d.push("s");
    auto outer = d.launch();
    d.agg.on_launch_alias(9999, outer);
    d.pop();
    d.op(9999, 10, 20);  // the record carries the nested id
    auto r = d.agg.snapshot(true);
    CHECK(find_scope(r, "s")->gpu.kernels == 1);
    CHECK(r.faults.unattributed_records == 0);
    CHECK(d.agg.instances_in_flight() == 0);
  }

  TEST_CASE("faulty records are counted and survived") {
    driver d;
    d.push("s");
    auto a = d.launch();
    auto b = d.launch();
    auto c = d.launch();
    d.pop();
    SUBCASE("zero timestamps") {
      d.op(a, 0, 10);
      CHECK(d.agg.snapshot(true).faults.zero_timestamps == 1);
    }
    SUBCASE("inverted timestamps") {
      d.op(b, 20, 10);
      CHECK(d.agg.snapshot(true).faults.inverted_timestamps == 1);
    }
    SUBCASE("records whose launch was never seen") {
      d.op(4242, 10, 20);
      auto r = d.agg.snapshot(true);
      CHECK(r.faults.unattributed_records == 1);
      REQUIRE(r.kernels.size() == 1);
      CHECK(r.kernels[0].scope_path.empty());
    }
    SUBCASE("dropped records") {
      d.agg.on_dropped(17);
      CHECK(d.agg.snapshot(true).faults.dropped_records == 17);
    }
    (void)c;
  }

  TEST_CASE("pops without a matching push are counted, not fatal") {
    driver d;
    d.pop();
    d.push("a");
    d.pop();
    d.pop();
    auto r = d.agg.snapshot(false);
    CHECK(r.faults.unbalanced_pops == 2);
    CHECK(find_scope(r, "a")->host.calls == 1);
  }

  TEST_CASE("launches follow the innermost scope through pushes, pops and crossing pops") {
    // The launch path reads a copy of the innermost frame's scope kept in the thread's state:
    // every change of the stack must reach it.
    driver d;
    const auto outside = d.launch();  // no scope open
    d.agg.push(range_domain::diffscope, d.agg.intern("x"), category::other, std::nullopt, 0);
    const auto in_x = d.launch();  // x's instance made by this launch
    d.agg.push(range_domain::default_domain, d.agg.intern("y"), category::other, std::nullopt, 0);
    d.push("z");
    const auto in_z = d.launch();  // x/y/z: instances for y and z made here
    d.pop();
    const auto in_y = d.launch();                     // back in y: its instance already exists
    CHECK(d.agg.pop(range_domain::diffscope, 0).ok);  // closes x under y: y stays innermost
    const auto in_y_after_x = d.launch();
    CHECK(d.agg.pop(range_domain::default_domain, 0).ok);
    const auto outside_again = d.launch();
    std::uint64_t t = 100;
    for (auto c : {outside, in_x, in_z, in_y, in_y_after_x, outside_again}) {
      d.op(c, t, t + 10);
      t += 100;
    }
    auto r = d.agg.snapshot(true);
    REQUIRE(find_scope(r, "x"));
    REQUIRE(find_scope(r, "x/y"));
    REQUIRE(find_scope(r, "x/y/z"));
    CHECK(find_scope(r, "x/y/z")->launches == 1);
    CHECK(find_scope(r, "x/y")->launches == 3);  // z's, and two in y itself
    CHECK(find_scope(r, "x")->launches == 4);
    CHECK(r.faults.unattributed_records == 0);
    CHECK(r.overhead.records == 6);
    CHECK(r.overhead.callbacks == 6);
    CHECK(d.agg.instances_in_flight() == 0);
  }

  TEST_CASE("ranges crossing between domains close the right frame") {
    driver d;
    d.agg.push(range_domain::diffscope, d.agg.intern("x"), category::other, std::nullopt, 0);
    d.agg.push(range_domain::default_domain, d.agg.intern("y"), category::other, std::nullopt, 10);
    CHECK(d.agg.pop(range_domain::diffscope, 20).ok);
    CHECK(d.agg.pop(range_domain::default_domain, 40).ok);
    auto r = d.agg.snapshot(false);
    CHECK(find_scope(r, "x")->host.sum_ms == doctest::Approx(20e-6));
    CHECK(find_scope(r, "x/y")->host.sum_ms == doctest::Approx(30e-6));
    CHECK(d.agg.open_ranges() == 0);
  }

  TEST_CASE("ranges left open are reported") {
    driver d;
    d.push("a");
    d.push("b");
    CHECK(d.agg.open_ranges() == 2);
    d.pop();
    d.pop();
    CHECK(d.agg.open_ranges() == 0);
  }

  TEST_CASE("ranges open at stop are counted and named, on live threads and on ended ones") {
    driver d;
    // A thread that ends with ranges open (as the main thread has at exit: its state is
    // destroyed before the collector's exit hook counts).
    std::thread([&] {
      d.agg.push(range_domain::default_domain, d.agg.intern("request", false), category::request,
                 std::nullopt, 0, "r1");
      d.push("DenoisingStage", category::stage);
      d.step(3, 0);
    }).join();
    d.push("outer");
    d.push("inner");
    CHECK(d.agg.open_ranges() == 5);
    const unclosed_report u = d.agg.unclosed_ranges();
    CHECK(u.count == 5);
    REQUIRE(u.innermost.size() == 2);
    CHECK(u.innermost[0].path == "request/DenoisingStage/denoise_step");
    CHECK(u.innermost[0].step == 3);
    CHECK(u.innermost[0].open == 3);
    CHECK(u.innermost[0].thread_exited);
    CHECK(u.innermost[1].path == "outer/inner");
    CHECK(u.innermost[1].step == -1);
    CHECK(u.innermost[1].open == 2);
    CHECK_FALSE(u.innermost[1].thread_exited);
    CHECK(d.agg.unclosed_ranges(1).innermost.size() == 1);  // named: a few; counted: all
    CHECK(d.agg.unclosed_ranges(1).count == 5);
    d.pop();
    CHECK(d.agg.unclosed_ranges().innermost[1].path == "outer");
    d.pop();
    CHECK(d.agg.open_ranges() == 3);  // the ended thread's stay open
  }

  TEST_CASE("ranges opened under an earlier aggregator are not this one's unclosed ranges") {
    {
      driver first;
      first.push("from_the_first_run");
    }
    driver d;
    d.push("a");
    CHECK(d.agg.open_ranges() == 1);  // "from_the_first_run" is still on this thread's stack
    d.pop();
    CHECK(d.agg.open_ranges() == 0);
    CHECK(d.agg.pop(range_domain::diffscope, 0).ok);  // closes the old one: balanced
    CHECK(d.agg.open_ranges() == 0);
  }

  TEST_CASE("scope cap: past it new names go into one counted (other) scope per parent") {
    constexpr std::uint64_t cap = 50, extra = 100;
    aggregator_options o;
    o.max_scopes = cap;
    driver d(o);
    const std::uint32_t stage = d.agg.intern("DenoisingStage", false);
    d.agg.push(range_domain::diffscope, stage, category::stage, std::nullopt, 0);
    std::uint64_t t = 0;
    for (std::uint64_t i = 0; i < cap + extra; ++i) {
      d.push_at(("block_" + std::to_string(i)).c_str(), t);
      d.op(d.launch(), 1000 + t, 1000 + t + 10);  // 10 ns each
      d.pop(t + 5);
      t += 100;
    }
    d.pop(t);
    const auto r = d.agg.snapshot(true);
    std::uint64_t children = 0, calls = 0;
    for (const auto& s : r.scopes) {
      if (s.depth != 1) continue;
      ++children;
      calls += s.host.calls;
    }
    CHECK(children == cap + 1);   // cap children and "(other)"
    CHECK(calls == cap + extra);  // every push counted once
    const auto* other = find_scope(r, "DenoisingStage/(other)");
    REQUIRE(other);
    CHECK(other->name == "(other)");
    CHECK(other->host.calls == extra);
    CHECK(other->host.sum_ms == doctest::Approx(extra * 5e-6));
    CHECK(other->gpu.kernels == extra);
    CHECK(other->gpu.busy_ms == doctest::Approx(extra * 10e-6));
    CHECK(other->launches == extra);
    CHECK(find_scope(r, "DenoisingStage/block_49"));
    CHECK_FALSE(find_scope(r, "DenoisingStage/block_50"));
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].gpu.kernels == cap + extra);  // totals conserved
    CHECK(r.faults.ranges_folded == extra);
    CHECK(r.faults.names_folded == extra);
    CHECK_FALSE(r.faults.names_folded_estimated);
    CHECK(r.status.max_scopes == cap);
    // Names past the cap are not stored: they all get the "(other)" id.
    CHECK(d.agg.intern("never_seen_before") == d.agg.other_name_id());
    CHECK(d.agg.name_of(d.agg.other_name_id()) == "(other)");
    // and denoise_step, (other), DenoisingStage and the kernel "k"
    CHECK(d.agg.names_stored() == cap + 4);
    // Kernel names are not range names: never capped.
    d.op(d.launch(), 1, 2, "a_new_kernel");
    CHECK(d.agg.names_stored() == cap + 5);
  }

  TEST_CASE("scope cap: a known name under a new parent folds too, counted once by name") {
    aggregator_options o;
    o.max_scopes = 4;
    driver d(o);
    for (const char* stage : {"A", "B"}) {
      d.agg.push(range_domain::diffscope, d.agg.intern(stage, false), category::stage, std::nullopt,
                 0);
      for (int rep = 0; rep < 2; ++rep) {
        for (const char* name : {"w", "x", "y", "z"}) {
          d.push(name);
          d.pop();
        }
      }
      d.pop();
    }
    const auto r = d.agg.snapshot(false);
    CHECK(find_scope(r, "A/z"));
    CHECK_FALSE(find_scope(r, "A/(other)"));
    REQUIRE(find_scope(r, "B/(other)"));
    CHECK(find_scope(r, "B/(other)")->host.calls == 8);
    CHECK(r.faults.ranges_folded == 8);
    CHECK(r.faults.names_folded == 4);
  }

  TEST_CASE("scope cap: ranges inside a folded call have no scope; steps and stages always do") {
    aggregator_options o;
    o.max_scopes = 1;
    driver d(o);
    d.push_at("kept", 0);  // the one scope the cap allows
    d.pop(1);
    for (int i = 0; i < 3; ++i) {
      const std::uint64_t t = 100 * (i + 1);
      d.push_at(("id_" + std::to_string(i)).c_str(), t);  // folded
      CHECK_FALSE(d.agg.push(range_domain::diffscope, d.agg.intern("nested"), category::other,
                             std::nullopt, t + 1));  // no scope of its own: never timed
      const auto k = d.launch();
      d.push_at("StageX", t + 2, category::stage);  // never folded, nor absorbed
      d.step(i, t + 3);
      const auto ks = d.launch();
      d.pop(t + 10);
      d.pop(t + 11);
      d.pop(t + 20);  // nested
      d.pop(t + 30);  // id_i
      d.op(k, 1000 * (i + 1), 1000 * (i + 1) + 40);
      d.op(ks, 1000 * (i + 1) + 50, 1000 * (i + 1) + 60);
    }
    const auto r = d.agg.snapshot(true);
    const auto* other = find_scope(r, "(other)");
    REQUIRE(other);
    CHECK(other->host.calls == 3);                            // the folded calls alone
    CHECK(other->host.sum_ms == doctest::Approx(3 * 30e-6));  // nested time inside, not added
    CHECK(other->gpu.kernels == 6);                           // all launched inside, once
    CHECK(other->gpu.busy_ms == doctest::Approx(3 * 50e-6));
    CHECK_FALSE(find_scope(r, "(other)/nested"));
    CHECK_FALSE(find_scope(r, "(other)/(other)"));
    const auto* step = find_scope(r, "(other)/StageX/denoise_step");
    REQUIRE(step);
    CHECK(step->host.calls == 3);
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].name == "StageX");
    CHECK(r.stages[0].calls == 3);
    REQUIRE(r.steps.size() == 3);
    CHECK(r.steps[2].gpu.kernels == 1);
    CHECK(r.faults.ranges_folded == 6);  // id_0..2 and the three nested
    CHECK(r.faults.names_folded == 4);   // id_0..2 and nested: no scope of their own
  }

  TEST_CASE("scope cap: a million distinct names keep memory and results bounded") {
    aggregator_options o;
    o.max_scopes = 100;
    driver d(o);
    constexpr std::uint64_t n = 200'000;
    d.push("root");
    for (std::uint64_t i = 0; i < n; ++i) {
      d.push(("op_" + std::to_string(i)).c_str());
      d.pop();
    }
    d.pop();
    const auto r = d.agg.snapshot(false);
    CHECK(r.scopes.size() <= 102);
    CHECK(d.agg.names_stored() <= 103);
    CHECK(r.faults.ranges_folded == n - 99);
    CHECK(r.faults.names_folded_estimated);
    CHECK(static_cast<double>(r.faults.names_folded) == doctest::Approx(n - 99).epsilon(0.06));
  }

  TEST_CASE("distinct_counter is exact up to its limit, then estimates within a few percent") {
    distinct_counter c;
    for (std::uint64_t i = 0; i < 3000; ++i) c.add(i % 1000);
    CHECK(c.count() == 1000);
    CHECK_FALSE(c.estimated());
    for (std::uint64_t i = 0; i < 100'000; ++i) c.add(i);
    CHECK(c.estimated());
    CHECK(static_cast<double>(c.count()) == doctest::Approx(100'000).epsilon(0.06));
  }

  TEST_CASE("scope cap 0: no cap") {
    aggregator_options o;
    o.max_scopes = 0;
    driver d(o);
    for (int i = 0; i < 20'000; ++i) {
      d.push(("n" + std::to_string(i)).c_str());
      d.pop();
    }
    const auto r = d.agg.snapshot(false);
    CHECK(r.scopes.size() == 20'000);
    CHECK(r.faults.ranges_folded == 0);
  }

  TEST_CASE("per-kernel totals keep count, total, min and max per scope") {
    driver d;
    d.push("s");
    std::vector<std::uint32_t> c;
    for (int i = 0; i < 3; ++i) c.push_back(d.launch());
    auto m = d.launch(launch_kind::memcpy);
    d.pop();
    d.op(c[0], 100, 200, "gemm");
    d.op(c[1], 300, 600, "gemm");
    d.op(c[2], 700, 720, "rmsnorm");
    d.op(m, 800, 900, "memcpy HtoD", 3, op_kind::memcpy, 4096);
    auto r = d.agg.snapshot(true);
    REQUIRE(r.kernels.size() == 3);
    CHECK(r.kernels[0].name == "gemm");
    CHECK(r.kernels[0].count == 2);
    CHECK(r.kernels[0].total_ms == doctest::Approx(400e-6));
    CHECK(r.kernels[0].min_ms == doctest::Approx(100e-6));
    CHECK(r.kernels[0].max_ms == doctest::Approx(300e-6));
    CHECK(r.kernels[0].scope_path == "s");
    CHECK(r.kernels[1].kind == "memcpy");
    const auto* s = find_scope(r, "s");
    CHECK(s->gpu.memcpys == 1);
    CHECK(s->gpu.bytes == 4096);
  }

  TEST_CASE("kernel names are demangled once, with CUPTI's symbol kept beside them") {
    // Two symbols of one kernel text (anonymous namespaces of two files, as nvcc names them)
    // are one kernel, as they are in a torch.profiler trace.
    const char* a =
        "_ZN2at6native53_GLOBAL__N__133be68c_20_group_norm_kernel_cu_a3f2c1d024RowwiseMomentsCUDA"
        "KernelIfEEvlT_PKS3_PS3_S6_";
    const char* b =
        "_ZN2at6native53_GLOBAL__N__0d1e2f3a_20_group_norm_kernel_cu_77aa55cc24RowwiseMomentsCUDA"
        "KernelIfEEvlT_PKS3_PS3_S6_";
    driver d;
    d.push("s");
    std::vector<std::uint32_t> c;
    for (int i = 0; i < 4; ++i) c.push_back(d.launch());
    d.pop();
    d.op(c[0], 100, 200, a);
    d.op(c[1], 300, 400, b);
    d.op(c[2], 500, 600, a);
    d.op(c[3], 700, 750, "triton_poi_fused_0");
    const auto r = d.agg.snapshot(true);
    REQUIRE(r.kernels.size() == 2);
    CHECK(r.kernels[0].name ==
          "void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<float>(long, float, "
          "float const*, float*, float*)");
    CHECK(r.kernels[0].count == 3);
    CHECK(r.kernels[0].mangled == a);  // the first symbol seen
    CHECK(r.kernels[1].name == "triton_poi_fused_0");
    CHECK(r.kernels[1].mangled.empty());
  }

  TEST_CASE("memory stays bounded over a million operations without a trace") {
    driver d;
    for (int step = 0; step < 1000; ++step) {
      d.step(step, step * 100);
      std::vector<std::uint32_t> c;
      for (int k = 0; k < 1000; ++k) c.push_back(d.launch());
      d.pop(step * 100 + 50);
      std::uint64_t t = 1'000'000ull * (step + 1);
      for (auto id : c) {
        d.op(id, t, t + 500, "k");
        t += 600;
      }
    }
    CHECK(d.agg.instances_in_flight() == 0);
    CHECK(d.agg.pending_launches() == 0);
    auto r = d.agg.snapshot(true);
    CHECK(r.steps.size() == 1000);
    CHECK(r.steps[999].gpu.kernels == 1000);
    CHECK(r.steps[999].gpu.occupied_ms == doctest::Approx(1000 * 500e-6));
    CHECK(r.trace.ops.empty());
  }

  TEST_CASE("the trace keeps raw events up to its cap and counts the rest") {
    aggregator_options o;
    o.keep_trace = true;
    o.trace_cap = 3;
    driver d(o);
    d.push("s");
    auto a = d.launch();
    auto b = d.launch();
    d.pop(100);
    d.op(a, 10, 20);
    d.op(b, 30, 40);
    d.push("t");
    d.pop(200);
    auto r = d.agg.snapshot(true);
    CHECK(r.trace.enabled);
    CHECK(r.trace.ranges.size() + r.trace.ops.size() == 3);
    CHECK(r.faults.trace_events_dropped == 1);
    REQUIRE_FALSE(r.trace.ops.empty());
    CHECK(r.trace.ops[0].scope_path == "s");
    CHECK(r.trace.ops[0].launch_thread != 0);
  }

  TEST_CASE("a final snapshot moves the trace out so nothing keeps a second copy") {
    aggregator_options o;
    o.keep_trace = true;
    driver d(o);
    d.push("s");
    auto a = d.launch();
    d.pop(100);
    d.op(a, 10, 20);
    auto copy = d.agg.snapshot(true);
    CHECK(copy.trace.ops.size() == 1);
    auto final_results = d.agg.snapshot(true, /*take_trace=*/true);
    CHECK(final_results.trace.ops.size() == 1);
    CHECK(final_results.trace.ranges.size() == 1);
    CHECK(d.agg.snapshot(true).trace.ops.empty());
  }

  TEST_CASE("eight threads launching at once are never misattributed") {
    driver d;
    constexpr int threads = 8, launches = 2000;
    std::vector<std::vector<std::uint32_t>> ids(threads);
    std::atomic<std::uint32_t> corr{1};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const std::string name = "thread" + std::to_string(t);
        d.agg.push(range_domain::diffscope, d.agg.intern(name), category::other, std::nullopt, 0);
        for (int i = 0; i < launches; ++i) {
          auto id = corr.fetch_add(1);
          d.agg.on_launch(id, launch_kind::kernel);
          ids[t].push_back(id);
        }
        d.agg.pop(range_domain::diffscope, 1);
      });
    }
    for (auto& th : pool) th.join();
    // Each thread's kernels last (t + 1) ns, so any misattribution shows in busy time.
    for (int t = 0; t < threads; ++t)
      for (auto id : ids[t]) d.op(id, 1000, 1000 + t + 1, "k");
    auto r = d.agg.snapshot(true);
    for (int t = 0; t < threads; ++t) {
      const auto* s = find_scope(r, "thread" + std::to_string(t));
      REQUIRE(s);
      CHECK(s->gpu.kernels == launches);
      CHECK(s->gpu.busy_ms == doctest::Approx(launches * (t + 1) / 1e6));
    }
    CHECK(r.faults.unattributed_records == 0);
  }

  TEST_CASE("records read while their thread is still launching find their launches") {
    // As with CUPTI: one thread launches (into its ring) and opens and closes scopes while
    // another reads records, each right after its launch returned.
    driver d;
    d.agg.prepare_launches();
    constexpr std::uint32_t n = 20'000, per_scope = 10;
    std::atomic<std::uint32_t> launched{0};
    std::thread launcher([&] {
      for (std::uint32_t i = 0; i < n; ++i) {
        if (i % per_scope == 0) d.push_at("s", i);
        d.agg.on_launch(i + 1, launch_kind::kernel);
        launched.store(i + 1, std::memory_order_release);
        if (i % per_scope == per_scope - 1) d.pop(i + 1);
      }
    });
    std::thread reader([&] {
      for (std::uint32_t next = 1; next <= n;) {
        if (launched.load(std::memory_order_acquire) < next) continue;
        d.op(next, 1000 + next * 10, 1005 + next * 10);
        ++next;
      }
    });
    launcher.join();
    reader.join();
    d.agg.finalize_all();
    auto r = d.agg.snapshot(true);
    const auto* s = find_scope(r, "s");
    REQUIRE(s);
    CHECK(s->host.calls == n / per_scope);
    CHECK(s->gpu.kernels == n);
    CHECK(s->launches == n);
    CHECK(r.faults.unattributed_records == 0);
    CHECK(r.faults.late_records == 0);
  }

  TEST_CASE("communication kernels: busy, overlapped by other work, exposed, per call") {
    driver d;
    d.step(0, 1);
    d.push("attn", category::attention);
    // Compute 0-100 and 150-200; all-to-all 50-175 (overlapped 50-100 and 150-175 = 75,
    // exposed 100-150 = 50); a second comm kernel 300-320 with nothing beside it.
    const auto k1 = d.launch();
    const auto a2a = d.launch();
    const auto k2 = d.launch();
    const auto ar = d.launch();
    d.pop();
    d.pop();
    d.op(k1, 1000, 1100, "gemm");
    d.op(a2a, 1050, 1175, "ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)");
    d.op(k2, 1150, 1200, "flash_attn");
    d.op(ar, 1300, 1320, "_Z25cross_device_reduce_1stageIfLi8EEvv");
    auto r = d.agg.snapshot(true);
    const auto* attn = find_scope(r, "denoise_step/attn");
    REQUIRE(attn);
    CHECK(attn->gpu.comm_kernels == 2);
    CHECK(attn->gpu.comm_busy_ms == doctest::Approx(145e-6));
    CHECK(attn->gpu.comm_overlapped_ms == doctest::Approx(75e-6));
    CHECK(attn->gpu.comm_exposed_ms == doctest::Approx(70e-6));
    CHECK(attn->gpu.occupied_ms == doctest::Approx(220e-6));  // 1000-1200 and 1300-1320
    CHECK(attn->gpu.kernels == 4);
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].gpu.comm_exposed_ms == doctest::Approx(70e-6));
  }

  TEST_CASE("requests: warm-up work stays out of nodes, stages, steps and kernels") {
    driver d;
    d.agg.push(range_domain::diffscope, d.agg.intern("warmup"), category::request, std::nullopt, 1,
               "warmup", true);
    d.push_at("DenoisingStage", 2, category::stage);
    d.step(0, 3);
    const auto w = d.launch();
    d.pop(10);
    d.pop(11);
    d.pop(12);
    d.agg.push(range_domain::diffscope, d.agg.intern("request"), category::request, std::nullopt,
               20, "r1", false);
    d.push_at("DenoisingStage", 21, category::stage);
    d.step(0, 22);
    const auto k = d.launch();
    d.pop(30);
    d.pop(31);
    d.pop(40);
    d.op(w, 100, 900, "warm_kernel");
    d.op(k, 1000, 1100, "real_kernel");
    auto r = d.agg.snapshot(true);
    REQUIRE(r.requests.size() == 2);
    CHECK(r.requests[0].warmup);
    CHECK(r.requests[1].id == "r1");
    CHECK(r.requests[1].gpu.kernels == 1);
    CHECK(r.requests[1].host_ms == doctest::Approx(20e-6));
    REQUIRE(r.requests[1].steps.size() == 1);
    CHECK(r.requests[1].steps[0].gpu.envelope_ms == doctest::Approx(100e-6));
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].calls == 1);
    CHECK(r.steps[0].gpu.envelope_ms == doctest::Approx(100e-6));
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].calls == 1);
    REQUIRE(r.kernels.size() == 1);
    CHECK(r.kernels[0].name == "real_kernel");
    CHECK_FALSE(find_scope(r, "warmup"));
    CHECK(find_scope(r, "request/DenoisingStage/denoise_step"));
  }

  // A warm-up, work launched outside any range, two counted requests, and the records of the
  // first request arriving after the second one ended.
  struct two_requests {
    driver d;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> late;  // (correlation, start) of r1's
    explicit two_requests(window_mode m) : d(options(m)) {
      d.request("warmup", 1, true);
      d.push_at("DenoisingStage", 2, category::stage);
      d.step(0, 3);
      const auto warm = d.launch();
      d.pop(4);
      d.pop(5);
      d.pop(6);
      const auto loose = d.launch();  // no range open: unannotated work
      for (int i = 0; i < 2; ++i) {
        d.request(i == 0 ? "r1" : "r2", 10 + 100 * i);
        d.push_at("DenoisingStage", 11 + 100 * i, category::stage);
        for (int s = 0; s < 2; ++s) {
          d.step(s, 12 + 100 * i + 10 * s);
          d.push_at("block", 13 + 100 * i + 10 * s);
          const auto a = d.launch();
          const auto b = d.launch();
          d.pop(14 + 100 * i + 10 * s);
          d.pop(15 + 100 * i + 10 * s);
          if (i == 0) {
            late.emplace_back(a, 1000 + 100 * s);
            late.emplace_back(b, 1050 + 100 * s);
          } else {
            d.op(a, 5000 + 100 * s, 5030 + 100 * s, "gemm");
            d.op(b, 5050 + 100 * s, 5070 + 100 * s, "norm");
          }
        }
        d.pop(90 + 100 * i);
        d.pop(95 + 100 * i);
      }
      const auto between = d.launch();  // after the last request: outside again
      d.op(warm, 100, 900, "warm_kernel");
      d.op(loose, 950, 960, "loose_kernel");
      d.op(between, 6000, 6005, "loose_kernel", 7, op_kind::memcpy);
      // The first request's records, after the second request ended: still the first's.
      for (const auto& [corr, start] : late) d.op(corr, start, start + 40, "gemm");
      d.agg.finalize_all();
    }
    static aggregator_options options(window_mode m) {
      aggregator_options o;
      o.window = m;
      return o;
    }
  };

  double kernels_ms(const diffscope::results& r) {
    double sum = 0;
    for (const auto& k : r.kernels) sum += k.total_ms;
    return sum;
  }

  double step_kernels_ms(const diffscope::step_result& s) {
    double sum = 0;
    for (const auto& k : s.kernels) sum += k.busy_ms;
    return sum;
  }

  TEST_CASE("one window: the last counted request's work in every table, the rest outside") {
    two_requests t(window_mode::last);
    const auto r = t.d.agg.snapshot(true);
    REQUIRE(r.requests.size() == 3);
    CHECK(r.window.covers == "last");
    REQUIRE(r.window.requests.size() == 1);
    CHECK(r.window.requests[0] == 2);
    // Kernels: r2's alone; they add up to r2's busy time, and so does the window's total.
    const double r2_busy = r.requests[2].gpu.busy_ms;
    CHECK(r2_busy == doctest::Approx(100e-6));
    CHECK(kernels_ms(r) == doctest::Approx(r2_busy));
    CHECK(r.window.gpu.measured);
    CHECK(r.window.gpu.busy_ms == doctest::Approx(r2_busy));
    CHECK(r.window.gpu.operations() == 4);
    CHECK(r.window.kernel_names == 2);
    for (const auto& k : r.kernels)
      CHECK(k.scope_path == "request/DenoisingStage/denoise_step/block");
    // Scopes, stages and steps: one request's calls.
    const auto* block = find_scope(r, "request/DenoisingStage/denoise_step/block");
    REQUIRE(block);
    CHECK(block->host.calls == 2);
    CHECK(block->gpu.busy_ms == doctest::Approx(r2_busy));
    CHECK_FALSE(find_scope(r, "warmup"));
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].calls == 1);
    CHECK(r.stages[0].gpu.busy_ms == doctest::Approx(r2_busy));
    REQUIRE(r.steps.size() == 2);
    CHECK(r.steps[0].calls == 1);
    CHECK(r.steps[0].gpu.busy_ms + r.steps[1].gpu.busy_ms == doctest::Approx(r2_busy));
    // Each step's busy by kernel name: r2's alone, as its busy time.
    for (const auto& st : r.steps) {
      REQUIRE(st.kernels.size() == 2);
      CHECK(st.kernels[0].name == "gemm");
      CHECK(st.kernels[0].busy_ms == doctest::Approx(30e-6));
      CHECK(st.kernels[1].name == "norm");
      CHECK(step_kernels_ms(st) == doctest::Approx(st.gpu.busy_ms));
    }
    // Outside: the warm-up and the two unannotated operations; r1's work is neither.
    CHECK(r.window.outside.operations() == 3);
    CHECK(r.window.outside.kernels == 2);
    CHECK(r.window.outside.memcpys == 1);
    CHECK(r.window.outside.busy_ms == doctest::Approx(815e-6));
    CHECK(r.window.warmups.operations() == 1);
    CHECK(r.window.warmups.busy_ms == doctest::Approx(800e-6));
    // The first request kept its own late records.
    CHECK(r.requests[1].gpu.kernels == 4);
    CHECK(r.requests[1].gpu.busy_ms == doctest::Approx(160e-6));
    CHECK(r.faults.unattributed_records == 0);
  }

  TEST_CASE("one window: DIFFSCOPE_WINDOW=requests holds every counted request, late records too") {
    two_requests t(window_mode::requests);
    const auto r = t.d.agg.snapshot(true);
    CHECK(r.window.covers == "requests");
    REQUIRE(r.window.requests.size() == 2);
    CHECK(r.window.requests[0] == 1);
    CHECK(r.window.requests[1] == 2);
    const double busy = r.requests[1].gpu.busy_ms + r.requests[2].gpu.busy_ms;
    CHECK(busy == doctest::Approx(260e-6));
    CHECK(kernels_ms(r) == doctest::Approx(busy));
    CHECK(r.window.gpu.busy_ms == doctest::Approx(busy));
    CHECK(r.window.gpu.operations() == 8);
    const auto* block = find_scope(r, "request/DenoisingStage/denoise_step/block");
    REQUIRE(block);
    CHECK(block->host.calls == 4);
    CHECK(block->gpu.kernels == 8);
    REQUIRE(r.stages.size() == 1);
    CHECK(r.stages[0].calls == 2);
    REQUIRE(r.steps.size() == 2);
    CHECK(r.steps[1].calls == 2);
    // Both requests' steps by kernel name, r1's late records included.
    for (const auto& st : r.steps) {
      REQUIRE(st.kernels.size() == 2);
      CHECK(st.kernels[0].busy_ms == doctest::Approx(110e-6));
      CHECK(step_kernels_ms(st) == doctest::Approx(st.gpu.busy_ms));
    }
    CHECK(r.window.outside.operations() == 3);
    CHECK(r.window.outside.busy_ms == doctest::Approx(815e-6));
    for (const auto& k : r.kernels) CHECK(k.name != "warm_kernel");
    for (const auto& k : r.kernels) CHECK(k.name != "loose_kernel");
  }

  TEST_CASE("each step's busy by kernel name and by category sums to the step's busy") {
    driver d;
    d.push_at("DenoisingStage", 0, category::stage);
    const auto before = d.launch();  // in the stage, in no step
    std::vector<std::uint32_t> corr;
    for (int s = 0; s < 2; ++s) {
      d.step(s, 10 + 100 * s);
      corr.push_back(d.launch());  // the step's own, outside any block
      d.push_at("block", 11 + 100 * s);
      d.push_at("attn", 12 + 100 * s);
      corr.push_back(d.launch());
      d.pop(13 + 100 * s);
      corr.push_back(d.launch());
      corr.push_back(d.launch());
      corr.push_back(d.launch(launch_kind::memcpy));
      d.pop(14 + 100 * s);
      d.pop(15 + 100 * s);
    }
    d.pop(300);
    d.op(before, 1, 5, "nvjet_tst_128x");
    for (int s = 0; s < 2; ++s) {
      const std::uint64_t t = 1000 * (s + 1);
      const std::uint32_t* c = &corr[5 * static_cast<std::size_t>(s)];
      d.op(c[0], t, t + 7, "elementwise_kernel");
      d.op(c[1], t + 10, t + 50 + s, "flash_fwd_kernel<128>");
      d.op(c[2], t + 60, t + 80, "nvjet_tst_128x");
      d.op(c[3], t + 80, t + 85, "rmsnorm_kernel");
      d.op(c[4], t + 90, t + 93, "Memcpy HtoD", 7, op_kind::memcpy);
    }
    d.agg.finalize_all();
    auto r = d.agg.snapshot(true);
    REQUIRE(r.steps.size() == 2);
    for (const auto& st : r.steps) {
      CHECK(st.kernels.size() == 5);
      CHECK(st.gpu.busy_ms > 0);
      CHECK(step_kernels_ms(st) == doctest::Approx(st.gpu.busy_ms).epsilon(1e-12));
      CHECK_FALSE(st.categories_measured);  // categorised at assembly
    }
    diffscope::categorise_steps(r.steps, diffscope::kernel_classifier());
    for (std::size_t s = 0; s < 2; ++s) {
      const auto& st = r.steps[s];
      CHECK(st.categories_measured);
      std::vector<std::string> names;
      double sum = 0;
      for (const auto& c : st.categories) {
        names.push_back(c.category);
        sum += c.busy_ms;
      }
      // The rules' order, "misc" last; only categories that ran.
      CHECK(names == std::vector<std::string>{"gemm", "attention", "norm", "memops", "misc"});
      CHECK(sum == doctest::Approx(st.gpu.busy_ms).epsilon(1e-12));
      CHECK(st.categories[0].busy_ms == doctest::Approx(20e-6));  // not the stage's own gemm
      CHECK(st.categories[1].busy_ms == doctest::Approx((40.0 + s) * 1e-6));
      CHECK(st.categories[3].busy_ms == doctest::Approx(3e-6));
      CHECK(st.categories[4].busy_ms == doctest::Approx(7e-6));
    }
  }

  TEST_CASE("one window: without request markers the whole run, warm-ups outside") {
    driver d;
    d.request("warmup", 1, true);
    const auto warm = d.launch();
    d.pop(2);
    const auto loose = d.launch();
    d.push_at("s", 3);
    const auto in = d.launch();
    d.pop(4);
    d.op(warm, 10, 20, "warm_kernel");
    d.op(loose, 30, 35, "loose_kernel");
    d.op(in, 40, 50, "k");
    d.agg.finalize_all();
    const auto r = d.agg.snapshot(true);
    CHECK(r.window.covers == "run");
    CHECK(r.window.requests.empty());
    REQUIRE(r.kernels.size() == 2);  // unannotated work is the run's
    CHECK(kernels_ms(r) == doctest::Approx(15e-6));
    CHECK(r.window.gpu.operations() == 2);
    CHECK(r.window.outside.operations() == 1);
    CHECK(r.window.outside.busy_ms == doctest::Approx(10e-6));
    CHECK(find_scope(r, "s"));
  }

  TEST_CASE("one window: a graph replay counts in the request it was launched in") {
    driver d;
    d.push("capture");  // captured before any request
    d.agg.on_graph_node_created(101);
    d.pop();
    d.agg.on_graph_node_cloned(101, 201);
    d.request("warmup", 1, true);
    d.push("C");
    const auto g_warm = d.launch(launch_kind::graph);
    d.pop();
    d.pop();
    d.request("r1", 10);
    d.push("C");
    const auto g = d.launch(launch_kind::graph);
    d.pop();
    d.pop();
    d.request("r2", 20);  // the records arrive once r2 began: they stay r1's
    d.op(g_warm, 100, 200, "ka", 1, op_kind::kernel, 0, 201);
    d.op(g, 300, 350, "ka", 1, op_kind::kernel, 0, 201);
    d.pop();
    d.agg.finalize_all();
    const auto r = d.agg.snapshot(true);
    // The window is r2 (last): r1's replay is not in it, and not outside either.
    CHECK(r.window.requests == std::vector<std::uint64_t>{2});
    CHECK(r.kernels.empty());
    CHECK(r.window.outside.operations() == 1);  // the warm-up's replay
    CHECK(r.window.outside.busy_ms == doctest::Approx(100e-6));
    CHECK(r.requests[1].gpu.kernels == 1);
    CHECK_FALSE(find_scope(r, "request/C/capture"));

    driver all(two_requests::options(window_mode::requests));
    all.push("capture");
    all.agg.on_graph_node_created(101);
    all.pop();
    all.agg.on_graph_node_cloned(101, 201);
    all.request("r1", 10);
    all.push("C");
    const auto g1 = all.launch(launch_kind::graph);
    all.pop();
    all.pop();
    all.request("r2", 20);
    all.op(g1, 300, 350, "ka", 1, op_kind::kernel, 0, 201);
    all.pop();
    all.agg.finalize_all();
    const auto ra = all.agg.snapshot(true);
    REQUIRE(ra.kernels.size() == 1);
    CHECK(ra.kernels[0].scope_path == "request/C/capture");
    const auto* grafted = find_scope(ra, "request/C/capture");
    REQUIRE(grafted);
    CHECK(grafted->gpu.busy_ms == doctest::Approx(50e-6));
    CHECK(ra.window.outside.operations() == 0);
  }

  TEST_CASE("one window: a range open around the requests is a row without calls of its own") {
    driver d;
    d.push_at("serve", 0);
    d.request("r1", 1);
    d.push_at("work", 2);
    const auto k = d.launch();
    d.pop(3);
    d.pop(4);
    d.pop(5);
    d.op(k, 10, 20, "k");
    d.agg.finalize_all();
    const auto r = d.agg.snapshot(true);
    const auto* serve = find_scope(r, "serve");
    const auto* work = find_scope(r, "serve/request/work");
    REQUIRE(serve);
    REQUIRE(work);
    CHECK(serve->host.calls == 0);  // its call began before the window
    CHECK(serve->gpu.kernels == 0);
    CHECK(work->host.calls == 1);
    CHECK(work->gpu.kernels == 1);
    CHECK(r.scopes[static_cast<std::size_t>(work->parent)].path == "serve/request");
  }

  TEST_CASE("histogram quantiles are exact for few samples and within 1% for many") {
    duration_histogram h;
    for (std::uint64_t i = 1; i <= 100; ++i) h.add(i * 1000);
    CHECK(h.quantile_ns(0.5) == doctest::Approx(50'000).epsilon(0.011));
    CHECK(h.quantile_ns(0.9) == doctest::Approx(90'000).epsilon(0.011));
    duration_histogram big;
    for (std::uint64_t i = 1; i <= 100'000; ++i) big.add(i * 10);
    CHECK(big.quantile_ns(0.5) == doctest::Approx(500'000).epsilon(0.011));
    CHECK(big.quantile_ns(0.9) == doctest::Approx(900'000).epsilon(0.011));
  }

  TEST_CASE("union length merges touching and nested intervals") {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> v{{0, 10}, {10, 20}, {5, 8}, {30, 40}};
    CHECK(union_length(v) == 30);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> empty;
    CHECK(union_length(empty) == 0);
  }
}
