// CPU tests of the CUPTI source: record conversion through ingest_activity_record (the same
// function CUPTI's buffer callback calls), the callback-id tables, the exit hook,
// start()/stop() on a machine without a driver or GPU, and the counters (counters.hpp).
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <diffscope/capture/cupti_source.hpp>

namespace ds = diffscope::detail;

namespace {

struct recorded_op {
  ds::op_kind kind;
  std::uint32_t correlation_id;
  std::uint64_t graph_node_id, start_ns, end_ns;
  std::uint32_t device_id, context_id, stream_id;
  std::uint64_t bytes;
  std::string name;
};

// Keeps everything it is told; the name is copied because it is valid during the call only.
class recording_sink : public ds::activity_sink {
 public:
  void on_launch(std::uint32_t id, ds::launch_kind kind) noexcept override {
    launches.push_back({id, kind});
  }
  void on_launch_alias(std::uint32_t nested, std::uint32_t outer) noexcept override {
    aliases.push_back({nested, outer});
  }
  void on_graph_node_created(std::uint64_t node) noexcept override { created.push_back(node); }
  void on_graph_node_cloned(std::uint64_t original, std::uint64_t clone) noexcept override {
    cloned.push_back({original, clone});
  }
  void on_gpu_op(const ds::gpu_op& op) noexcept override {
    ops.push_back({op.kind, op.correlation_id, op.graph_node_id, op.start_ns, op.end_ns,
                   op.device_id, op.context_id, op.stream_id, op.bytes, std::string(op.name)});
  }
  void on_dropped(std::uint64_t count) noexcept override { dropped += count; }

  std::vector<std::pair<std::uint32_t, ds::launch_kind>> launches;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> aliases;
  std::vector<std::uint64_t> created;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cloned;
  std::vector<recorded_op> ops;
  std::uint64_t dropped = 0;
};

const CUpti_Activity* as_record(const void* p) {
  return static_cast<const CUpti_Activity*>(p);
}

/// A counter cell that says whether for_each_counter reached it: 8 bytes, marked unvisited.
constexpr std::uint64_t unvisited = 0x5eed5eed5eed5eedull;
template <class T>
struct counter_probe {
  constexpr counter_probe(T) noexcept {}
  std::uint64_t mark = unvisited;
};

}  // namespace

TEST_SUITE("cupti_source") {
  TEST_CASE("a kernel record becomes a kernel op with its name, ids and times") {
    recording_sink sink;
    ds::cupti_counters counters;
    CUpti_ActivityKernel10 k;
    std::memset(&k, 0, sizeof k);
    k.kind = CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL;
    k.name = "_Z6kernelPf";
    k.correlationId = 41;
    k.graphNodeId = 0x1234567890ull;
    k.start = 1'000'000;
    k.end = 1'250'000;
    k.deviceId = 1;
    k.contextId = 2;
    k.streamId = 7;
    ds::ingest_activity_record(as_record(&k), sink, counters);

    REQUIRE(sink.ops.size() == 1);
    const auto& op = sink.ops[0];
    CHECK(op.kind == ds::op_kind::kernel);
    CHECK(op.name == "_Z6kernelPf");
    CHECK(op.correlation_id == 41);
    CHECK(op.graph_node_id == 0x1234567890ull);
    CHECK(op.start_ns == 1'000'000);
    CHECK(op.end_ns == 1'250'000);
    CHECK(op.device_id == 1);
    CHECK(op.context_id == 2);
    CHECK(op.stream_id == 7);
    CHECK(op.bytes == 0);
    const auto v = ds::snapshot(counters);
    CHECK(v.records == 1);
    CHECK(v.kernels == 1);
    CHECK(v.bad_timestamps == 0);

    SUBCASE("the serialising KERNEL kind and a missing name are handled too") {
      k.kind = CUPTI_ACTIVITY_KIND_KERNEL;
      k.name = nullptr;
      ds::ingest_activity_record(as_record(&k), sink, counters);
      REQUIRE(sink.ops.size() == 2);
      CHECK(sink.ops[1].kind == ds::op_kind::kernel);
      CHECK(sink.ops[1].name == "<unnamed kernel>");
    }
  }

  TEST_CASE("memcpy records are named by direction and carry bytes and graph node") {
    const std::pair<std::uint8_t, const char*> kinds[] = {
        {CUPTI_ACTIVITY_MEMCPY_KIND_HTOD, "memcpy HtoD"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_DTOH, "memcpy DtoH"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_DTOD, "memcpy DtoD"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_HTOH, "memcpy HtoH"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_PTOP, "memcpy PtoP"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_HTOA, "memcpy HtoA"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_ATOH, "memcpy AtoH"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_ATOA, "memcpy AtoA"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_ATOD, "memcpy AtoD"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_DTOA, "memcpy DtoA"},
        {CUPTI_ACTIVITY_MEMCPY_KIND_UNKNOWN, "memcpy"},
    };
    recording_sink sink;
    ds::cupti_counters counters;
    std::uint32_t id = 100;
    for (const auto& [copy_kind, name] : kinds) {
      CAPTURE(name);
      CUpti_ActivityMemcpy6 m;
      std::memset(&m, 0, sizeof m);
      m.kind = CUPTI_ACTIVITY_KIND_MEMCPY;
      m.copyKind = copy_kind;
      m.bytes = 1u << 20;
      m.start = 5'000;
      m.end = 9'000;
      m.deviceId = 0;
      m.contextId = 1;
      m.streamId = 13;
      m.correlationId = ++id;
      m.runtimeCorrelationId = 999;  // not what we report: records match on correlationId
      m.graphNodeId = 77;
      ds::ingest_activity_record(as_record(&m), sink, counters);
      REQUIRE(!sink.ops.empty());
      const auto& op = sink.ops.back();
      CHECK(op.kind == ds::op_kind::memcpy);
      CHECK(op.name == name);
      CHECK(op.bytes == (1u << 20));
      CHECK(op.correlation_id == id);
      CHECK(op.graph_node_id == 77);
      CHECK(op.stream_id == 13);
      CHECK(op.context_id == 1);
      CHECK(op.start_ns == 5'000);
      CHECK(op.end_ns == 9'000);
    }
    CHECK(sink.ops.size() == std::size(kinds));
    CHECK(ds::snapshot(counters).memcpys == std::size(kinds));
  }

  TEST_CASE("a peer-to-peer copy record (MEMCPY2) becomes a memcpy PtoP op") {
    recording_sink sink;
    ds::cupti_counters counters;
    CUpti_ActivityMemcpyPtoP4 m;
    std::memset(&m, 0, sizeof m);
    m.kind = CUPTI_ACTIVITY_KIND_MEMCPY2;
    m.copyKind = CUPTI_ACTIVITY_MEMCPY_KIND_PTOP;
    m.bytes = 4096;
    m.start = 10;
    m.end = 20;
    m.deviceId = 3;
    m.srcDeviceId = 3;
    m.dstDeviceId = 4;
    m.correlationId = 8;
    m.graphNodeId = 5;
    ds::ingest_activity_record(as_record(&m), sink, counters);
    REQUIRE(sink.ops.size() == 1);
    CHECK(sink.ops[0].kind == ds::op_kind::memcpy);
    CHECK(sink.ops[0].name == "memcpy PtoP");
    CHECK(sink.ops[0].bytes == 4096);
    CHECK(sink.ops[0].device_id == 3);
    CHECK(sink.ops[0].correlation_id == 8);
    CHECK(sink.ops[0].graph_node_id == 5);
  }

  TEST_CASE("a memset record becomes a memset op with bytes and graph node") {
    recording_sink sink;
    ds::cupti_counters counters;
    CUpti_ActivityMemset4 m;
    std::memset(&m, 0, sizeof m);
    m.kind = CUPTI_ACTIVITY_KIND_MEMSET;
    m.value = 0;
    m.bytes = 65536;
    m.start = 300;
    m.end = 400;
    m.deviceId = 0;
    m.contextId = 1;
    m.streamId = 21;
    m.correlationId = 55;
    m.graphNodeId = 9;
    ds::ingest_activity_record(as_record(&m), sink, counters);
    REQUIRE(sink.ops.size() == 1);
    const auto& op = sink.ops[0];
    CHECK(op.kind == ds::op_kind::memset);
    CHECK(op.name == "memset");
    CHECK(op.bytes == 65536);
    CHECK(op.correlation_id == 55);
    CHECK(op.graph_node_id == 9);
    CHECK(op.stream_id == 21);
    CHECK(op.start_ns == 300);
    CHECK(op.end_ns == 400);
    CHECK(ds::snapshot(counters).memsets == 1);
  }

  TEST_CASE(
      "records with zero or inverted timestamps are counted and passed on for the sink to report") {
    recording_sink sink;
    ds::cupti_counters counters;
    CUpti_ActivityKernel10 k;
    std::memset(&k, 0, sizeof k);
    k.kind = CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL;
    k.name = "k";
    SUBCASE("zero start") {
      k.start = 0;
      k.end = 10;
    }
    SUBCASE("zero end (unfinished work out of a forced flush)") {
      k.start = 10;
      k.end = 0;
    }
    SUBCASE("inverted") {
      k.start = 20;
      k.end = 10;
    }
    ds::ingest_activity_record(as_record(&k), sink, counters);
    // The aggregator counts zero and inverted timestamps apart and keeps them out of timings.
    CHECK(sink.ops.size() == 1);
    const auto v = ds::snapshot(counters);
    CHECK(v.records == 1);
    CHECK(v.bad_timestamps == 1);
  }

  TEST_CASE("a zero-length operation is kept") {
    recording_sink sink;
    ds::cupti_counters counters;
    CUpti_ActivityMemset4 m;
    std::memset(&m, 0, sizeof m);
    m.kind = CUPTI_ACTIVITY_KIND_MEMSET;
    m.start = m.end = 500;
    ds::ingest_activity_record(as_record(&m), sink, counters);
    CHECK(sink.ops.size() == 1);
    CHECK(ds::snapshot(counters).bad_timestamps == 0);
  }

  TEST_CASE("record kinds we do not convert are counted and ignored") {
    recording_sink sink;
    ds::cupti_counters counters;
    CUpti_ActivityAPI api;
    std::memset(&api, 0, sizeof api);
    api.kind = CUPTI_ACTIVITY_KIND_RUNTIME;
    api.start = 1;
    api.end = 2;
    ds::ingest_activity_record(as_record(&api), sink, counters);
    CHECK(sink.ops.empty());
    const auto v = ds::snapshot(counters);
    CHECK(v.records == 1);
    CHECK(v.other_records == 1);
  }

  TEST_CASE("the launch callback tables list each callback id once, within range") {
    std::set<CUpti_CallbackId> runtime, driver;
    for (const auto& e : ds::cupti_runtime_launch_cbids) {
      CHECK(e.cbid < CUPTI_RUNTIME_TRACE_CBID_SIZE);
      CHECK(runtime.insert(e.cbid).second);
    }
    for (const auto& e : ds::cupti_driver_launch_cbids) {
      CHECK(e.cbid < CUPTI_DRIVER_TRACE_CBID_SIZE);
      CHECK(driver.insert(e.cbid).second);
    }
    // The entry points Triton, PyTorch and nvcc-compiled code launch through.
    for (CUpti_CallbackId id : {CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000,
                                CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_v11060,
                                CUPTI_RUNTIME_TRACE_CBID_cudaGraphLaunch_v10000,
                                CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyAsync_v3020,
                                CUPTI_RUNTIME_TRACE_CBID_cudaMemsetAsync_v3020}) {
      CHECK(runtime.count(id) == 1);
    }
    for (CUpti_CallbackId id :
         {CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx,
          CUPTI_DRIVER_TRACE_CBID_cuGraphLaunch, CUPTI_DRIVER_TRACE_CBID_cuMemcpyAsync,
          CUPTI_DRIVER_TRACE_CBID_cuMemsetD8Async}) {
      CHECK(driver.count(id) == 1);
    }
    // Names that look like sets but are not.
    CHECK(driver.count(CUPTI_DRIVER_TRACE_CBID_cuMemSetAccess) == 0);
    CHECK(driver.count(CUPTI_DRIVER_TRACE_CBID_cuMemSetMemPool) == 0);
  }

  TEST_CASE("automatic launch APIs: runtime callbacks are redundant after N same-id launches") {
    using ds::runtime_launch_verdict;
    ds::cupti_counters c;
    CHECK(ds::judge_runtime_launch(true, c, 3) == runtime_launch_verdict::undecided);
    CHECK(ds::judge_runtime_launch(true, c, 3) == runtime_launch_verdict::undecided);
    CHECK(ds::judge_runtime_launch(true, c, 3) == runtime_launch_verdict::redundant);
    CHECK(c.runtime_verified.load() == 3);
    CHECK(c.runtime_unmatched.load() == 0);
  }

  TEST_CASE(
      "automatic launch APIs: one runtime launch without a same-id driver launch keeps "
      "them") {
    using ds::runtime_launch_verdict;
    ds::cupti_counters c;
    CHECK(ds::judge_runtime_launch(true, c, 2) == runtime_launch_verdict::undecided);
    CHECK(ds::judge_runtime_launch(false, c, 2) == runtime_launch_verdict::needed);
    CHECK(c.runtime_unmatched.load() == 1);
    // Later verified launches cannot outvote it.
    CHECK(ds::judge_runtime_launch(true, c, 2) == runtime_launch_verdict::needed);
    // Nor can launches once any nested call had an id of its own (CUDA before 13).
    ds::cupti_counters d;
    d.launch_aliases.store(1);
    CHECK(ds::judge_runtime_launch(true, d, 1) == runtime_launch_verdict::needed);
    CHECK(d.runtime_verified.load() == 0);
  }

  TEST_CASE("launching threads are counted once per start; the first one is remembered") {
    ds::cupti_counters c;
    ds::cupti_outer_launch a, b;
    const std::uintptr_t ta = 0x1000, tb = 0x2000;
    ds::count_launch_thread(a, 7, c, ta);
    ds::count_launch_thread(a, 7, c, ta);  // the same thread again: once
    CHECK(c.launch_threads.load() == 1);
    CHECK(c.first_launch_thread.load() == ta);
    ds::count_launch_thread(b, 7, c, tb);
    CHECK(c.launch_threads.load() == 2);
    CHECK(c.first_launch_thread.load() == ta);
    // A new start counts every thread afresh.
    ds::cupti_counters d;
    ds::count_launch_thread(b, 8, d, tb);
    CHECK(d.launch_threads.load() == 1);
    CHECK(d.first_launch_thread.load() == tb);
    // A new generation (resume, drop) keeps the thread counted.
    CHECK(ds::track_launch_callback(b, 9, false, true, 5, [] { return false; }) ==
          ds::launch_callback_role::announce);
    ds::count_launch_thread(b, 8, d, tb);
    CHECK(d.launch_threads.load() == 1);
  }

  TEST_CASE("automatic launch APIs: dropped only from the one launching thread") {
    using verdict = ds::runtime_drop_verdict;
    ds::cupti_counters c;
    const std::uintptr_t me = 0x1000, other = 0x2000;
    ds::cupti_outer_launch mine, theirs;
    CHECK(ds::judge_runtime_drop(c, me) == verdict::never);  // nobody launched yet
    ds::count_launch_thread(mine, 1, c, me);
    CHECK(ds::judge_runtime_drop(c, me) == verdict::now);
    // Another thread's push waits for the launching thread's.
    CHECK(ds::judge_runtime_drop(c, other) == verdict::not_from_here);
    ds::count_launch_thread(theirs, 1, c, other);
    CHECK(ds::judge_runtime_drop(c, me) == verdict::never);  // two launching threads
    ds::cupti_counters d;
    ds::count_launch_thread(mine, 2, d, me);
    d.runtime_unmatched.store(1);
    CHECK(ds::judge_runtime_drop(d, me) == verdict::never);  // not proved
    d.runtime_unmatched.store(0);
    d.launch_aliases.store(1);
    CHECK(ds::judge_runtime_drop(d, me) == verdict::never);
  }

  TEST_CASE("launch nesting: a runtime launch and its same-id driver call are one launch") {
    using role = ds::launch_callback_role;
    ds::cupti_outer_launch t;
    int asked = 0;
    const auto dropped = [&asked] { return ++asked, false; };
    CHECK(ds::track_launch_callback(t, 1, true, true, 10, dropped) == role::announce);
    CHECK(ds::track_launch_callback(t, 1, false, true, 10, dropped) == role::nested_same);
    CHECK(t.nested_same);
    CHECK(ds::track_launch_callback(t, 1, false, false, 10, dropped) == role::exit);
    CHECK(ds::track_launch_callback(t, 1, true, false, 10, dropped) ==
          role::exit_outermost_runtime);
    CHECK(t.depth == 0);
    // A driver launch of its own: announced; its exit ends no runtime call.
    CHECK(ds::track_launch_callback(t, 1, false, true, 11, dropped) == role::announce);
    CHECK_FALSE(t.runtime);
    CHECK(ds::track_launch_callback(t, 1, false, false, 11, dropped) == role::exit);
    // The drop flag is read only for a nested call with an id of its own.
    CHECK(asked == 0);
  }

  TEST_CASE("launch nesting: a nested call with an id of its own is an alias") {
    using role = ds::launch_callback_role;
    ds::cupti_outer_launch t;
    const auto on = [] { return false; };
    CHECK(ds::track_launch_callback(t, 1, true, true, 20, on) == role::announce);
    CHECK(ds::track_launch_callback(t, 1, false, true, 21, on) == role::alias);
    CHECK(t.id == 20);  // the alias's outer
    CHECK_FALSE(t.nested_same);
  }

  TEST_CASE(
      "launch nesting: after the runtime callbacks are dropped, a runtime call that lost its "
      "exit does not swallow the next driver launch") {
    // The race the eight-thread GPU test met: launch 30's runtime exit never came (the
    // callbacks went off while it ran) and the thread's next launch came before the new
    // generation. Taken for an alias of 30, it was lost once 30's record had gone by.
    using role = ds::launch_callback_role;
    ds::cupti_outer_launch t;
    bool dropped = false;
    const auto flag = [&dropped] { return dropped; };
    CHECK(ds::track_launch_callback(t, 1, true, true, 30, flag) == role::announce);
    dropped = true;  // the drop begins: no runtime exit for 30
    CHECK(ds::track_launch_callback(t, 1, false, true, 30, flag) == role::nested_same);
    CHECK(ds::track_launch_callback(t, 1, false, false, 30, flag) == role::exit);
    CHECK(t.depth == 1);  // stale: the runtime call's level
    CHECK(ds::track_launch_callback(t, 1, false, true, 31, flag) == role::announce);
    CHECK(t.id == 31);
    CHECK(ds::track_launch_callback(t, 1, false, false, 31, flag) == role::exit);
    CHECK(t.depth == 0);
  }

  TEST_CASE("launch nesting: a new generation forgets the depth and keeps the last id") {
    using role = ds::launch_callback_role;
    ds::cupti_outer_launch t;
    const auto on = [] { return false; };
    CHECK(ds::track_launch_callback(t, 1, true, true, 40, on) == role::announce);
    // A resume (or the drop) in the middle of launch 40: its driver call is not announced
    // again, and it is not taken as nested either.
    CHECK(ds::track_launch_callback(t, 2, false, true, 40, on) == role::nested_same);
    CHECK(t.depth == 1);
    CHECK_FALSE(t.nested_same);
    CHECK(ds::track_launch_callback(t, 2, false, false, 40, on) == role::exit);
    CHECK(t.depth == 0);
    // An exit whose enter came before a pause: nothing to end.
    CHECK(ds::track_launch_callback(t, 3, true, false, 41, on) == role::exit);
    CHECK(t.depth == 0);
    CHECK(ds::track_launch_callback(t, 3, true, true, 42, on) == role::announce);
    CHECK(t.depth == 1);
  }

  TEST_CASE("for_each_counter visits every counter of the set exactly once") {
    // The set laid out in probes over zeroed memory: every 8-byte word is a probe or padding.
    using probe_set = ds::cupti_counter_set<counter_probe>;
    static_assert(sizeof(probe_set) % sizeof(std::uint64_t) == 0);
    alignas(probe_set) unsigned char storage[sizeof(probe_set)] = {};
    auto* set = new (storage) probe_set;
    std::size_t visits = 0;
    ds::for_each_counter(
        [&visits](auto& cell) {
          cell.mark = 1;
          ++visits;
        },
        *set);
    std::size_t left = 0, marked = 0;
    for (std::size_t at = 0; at < sizeof(probe_set); at += sizeof(std::uint64_t)) {
      std::uint64_t word = 0;
      std::memcpy(&word, storage + at, sizeof word);
      left += word == unvisited;
      marked += word == 1;
    }
    set->~probe_set();
    CHECK(left == 0);         // no counter forgotten
    CHECK(marked == visits);  // none visited twice
    CHECK(visits == 26);
  }

  TEST_CASE("snapshot copies every counter; reset_counters clears them all") {
    ds::cupti_counters live;
    std::uint64_t n = 0;
    ds::for_each_counter(
        [&n](auto& cell) {
          using value = decltype(cell.load());
          cell.store(static_cast<value>(++n));
        },
        live);
    const ds::cupti_counter_values v = ds::snapshot(live);
    std::uint64_t m = 0;
    ds::for_each_counter(
        [&m](const auto& value) {
          CAPTURE(m);
          CHECK(value == static_cast<std::decay_t<decltype(value)>>(++m));
        },
        v);
    CHECK(m == n);
    CHECK(v.launch_callbacks == 1);
    CHECK(v.first_launch_thread == 9);
    CHECK(v.callbacks_unavailable == 25);
    CHECK(v.runtime_callbacks_dropped);
    ds::reset_counters(live);
    const ds::cupti_counter_values z = ds::snapshot(live);
    ds::for_each_counter([](const auto& value) { CHECK(value == decltype(value){}); }, z);
    CHECK(live.first_launch_thread.load() == 0);
    CHECK_FALSE(live.runtime_callbacks_dropped.load());
  }

  TEST_CASE("report_counters fills the results' overhead and faults") {
    ds::cupti_counter_values c;
    c.launch_samples = 4;
    c.launch_sampled_ns = 600;
    c.buffers_completed = 5;
    c.dropped = 7;
    c.runtime_callbacks_dropped = true;
    diffscope::overhead_stats o;
    diffscope::fault_counts f;
    // The calibration's figure (99) is used only when no launch was measured.
    ds::report_counters(c, ds::cupti_launch_apis::automatic, 99, o, f);
    CHECK(o.per_launch_callback_ns == doctest::Approx(150));
    CHECK(o.buffers == 5);
    CHECK(o.launch_callbacks == "driver");
    CHECK(f.dropped_records == 7);
    f.dropped_records = 9;  // the sink's own count, when higher, stays
    ds::report_counters(c, ds::cupti_launch_apis::both, 99, o, f);
    CHECK(f.dropped_records == 9);
    CHECK(o.launch_callbacks == "runtime+driver");
    // No sample: the calibration's figure; no callback at all: none.
    c.launch_samples = 0;
    ds::report_counters(c, ds::cupti_launch_apis::driver, 99, o, f);
    CHECK(o.per_launch_callback_ns == 99);
    ds::report_counters(c, ds::cupti_launch_apis::none, 99, o, f);
    CHECK(o.per_launch_callback_ns == 0);
    CHECK(o.launch_callbacks == "none");
  }

  TEST_CASE("without a driver or GPU, start() fails with a reason and changes nothing") {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) {
      MESSAGE("a GPU is present: tests/gpu/test_cupti_source_gpu.cu covers start() here");
      return;
    }
    cudaGetLastError();
    recording_sink sink;
    ds::cupti_source source;
    for (int attempt = 0; attempt < 2; ++attempt) {
      CAPTURE(attempt);
      const auto r = source.start(sink);
      CHECK_FALSE(r.ok);
      CHECK(r.reason.find("no CUDA driver or GPU") != std::string::npos);
      CHECK(r.holder.empty());
      CHECK_FALSE(source.running());
      MESSAGE("start(): " << r.reason);
    }
    source.stop();
    source.flush(true);
    CHECK(sink.launches.empty());
    CHECK(sink.ops.empty());
    // Another source can try too: the first released the process-wide slot.
    ds::cupti_source other;
    CHECK(other.start(sink).reason.find("no CUDA driver or GPU") != std::string::npos);
  }

  TEST_CASE("stop() and flush() without start() are harmless") {
    ds::cupti_source source;
    source.stop();
    source.flush(false);
    source.flush(true);
    source.stop();
    CHECK_FALSE(source.running());
    CHECK(ds::snapshot(source.counters()).records == 0);
  }

  TEST_CASE("the exit hook runs once however often the handler is called") {
    int calls = 0;
    ds::cupti_source::set_exit_hook([&calls] { ++calls; });
    ds::cupti_run_exit_hook();
    ds::cupti_run_exit_hook();
    CHECK(calls == 1);
  }
}
