// Perf mode's event pairing (capture/event_timer.hpp) on synthetic events, and the NVTX tool's
// handlers against their range sink (capture/nvtx_tool.hpp, range_sink.hpp): no GPU needed.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/capture/event_timer.hpp>
#include <diffscope/capture/nvtx_tool.hpp>

using diffscope::category;
using diffscope::detail::aggregator;
using diffscope::detail::event_api;
using diffscope::detail::event_timer;
using diffscope::detail::gpu_op;
using diffscope::detail::launch_kind;
using diffscope::detail::op_kind;
using diffscope::detail::range_domain;

namespace {

/// Events are numbers; a test decides when each completes and at what device time (ms).
class fake_events final : public event_api {
 public:
  void* ctx = reinterpret_cast<void*>(0x10);
  bool fail_record = false;
  int created = 0, destroyed = 0, syncs = 0, queries = 0;
  std::map<void*, double> done_at;  // event -> device time (ms) once complete
  std::map<void*, void*> stream_of;
  std::vector<void*> recorded;  // in record order
  std::vector<char> calls;      // 'r' record, 'q' query, in call order

  context current_context() noexcept override { return ctx; }
  event create() noexcept override { return reinterpret_cast<void*>(++created * 16); }
  bool record(event e, void* stream) noexcept override {
    if (fail_record) return false;
    calls.push_back('r');
    done_at.erase(e);  // re-recording a pooled event makes it pending again
    stream_of[e] = stream;
    recorded.push_back(e);
    return true;
  }
  state query(event e) noexcept override {
    ++queries;
    calls.push_back('q');
    return done_at.count(e) ? state::done : state::pending;
  }
  bool synchronize(event) noexcept override {
    ++syncs;  // "the GPU finished": everything recorded so far is complete
    for (void* e : recorded)
      if (!done_at.count(e)) done_at[e] = 1000.0;
    return true;
  }
  std::optional<double> elapsed_ms(event a, event b) noexcept override {
    if (!done_at.count(a) || !done_at.count(b)) return std::nullopt;
    return done_at[b] - done_at[a];
  }
  void destroy(event) noexcept override { ++destroyed; }
  std::vector<std::pair<void*, void*>> waits;  // (stream, marker)
  int markers = 0, streams = 0;
  event create_marker() noexcept override { return reinterpret_cast<void*>(0x100000 + ++markers); }
  void* create_stream() noexcept override { return reinterpret_cast<void*>(0x200000 + ++streams); }
  bool wait(void* stream, event e) noexcept override {
    waits.emplace_back(stream, e);
    return true;
  }
  void destroy_stream(void*) noexcept override {}
  std::vector<void*> bound;  // contexts made current, in order
  void bind(context c) noexcept override { bound.push_back(c); }

  /// Completes the n-th recorded event (0-based) at `ms`.
  void complete(std::size_t n, double ms) { done_at[recorded.at(n)] = ms; }
};

/// Collects what the timer hands over.
struct op_log final : diffscope::detail::activity_sink {
  std::vector<gpu_op> ops;
  void on_launch(std::uint32_t, launch_kind) noexcept override {}
  void on_launch_alias(std::uint32_t, std::uint32_t) noexcept override {}
  void on_graph_node_created(std::uint64_t) noexcept override {}
  void on_graph_node_cloned(std::uint64_t, std::uint64_t) noexcept override {}
  void on_gpu_op(const gpu_op& op) noexcept override { ops.push_back(op); }
  void on_dropped(std::uint64_t) noexcept override {}
};

void* const legacy = reinterpret_cast<void*>(1);
// The pairing tests make calls back to back, which sharing would fold into one event; they
// turn it off. The sharing tests below choose their window.
constexpr std::uint64_t no_sharing = 0;
constexpr std::uint64_t always = std::numeric_limits<std::uint64_t>::max();  // no work between

// The NVTX tool attached to `agg` and `timer` (perf mode, every scope timed unless told
// otherwise) for one test; detached, and its switches reset, at the end.
struct attached_tool {
  diffscope::detail::nvtx_tool_state& st = diffscope::detail::nvtx_state();
  attached_tool(aggregator& agg, event_timer& timer, bool time_all = true) {
    st.sink.store(&agg);
    st.timer.store(&timer);
    st.time_all.store(time_all);
  }
  ~attached_tool() {
    st.sink.store(nullptr);
    st.timer.store(nullptr);
    st.time_all.store(false);
    st.timing_paused.store(false);
    st.sample_steps.store(1);
  }
  attached_tool(const attached_tool&) = delete;
  attached_tool& operator=(const attached_tool&) = delete;
};

}  // namespace

TEST_CASE("no context on the thread: the scope is not timed and no context is made") {
  fake_events api;
  api.ctx = nullptr;
  event_timer t(api, legacy, false, no_sharing);
  CHECK(t.begin(100) == 0);
  CHECK(api.created == 0);
  CHECK(t.counts().no_context == 1);
}

TEST_CASE("a pair resolves only once its end event completed; length from the device") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  op_log log;
  const std::uint32_t id = t.begin(5'000);
  REQUIRE(id != 0);
  t.end(id);
  t.drain(log, false, 1);
  CHECK(log.ops.empty());  // still running: never waits
  CHECK(t.counts().in_flight == 1);
  api.complete(0, 10.0);
  api.complete(1, 12.5);
  t.drain(log, false, 1);
  REQUIRE(log.ops.size() == 1);
  CHECK(log.ops[0].kind == op_kind::timing);
  CHECK(log.ops[0].correlation_id == id);
  CHECK(log.ops[0].start_ns == 5'000);
  CHECK(log.ops[0].end_ns == 5'000 + 2'500'000);
  CHECK(t.counts().timed == 1);
  CHECK(t.counts().in_flight == 0);
  CHECK(api.syncs == 0);
}

TEST_CASE("pairs resolve in the order they closed, nested pairs included") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  op_log log;
  const auto outer = t.begin(0);  // event 0
  const auto inner = t.begin(1);  // event 1
  t.end(inner);                   // event 2
  t.end(outer);                   // event 3
  api.complete(3, 9.0);           // outer's end done, inner's not (cannot happen on one
  api.complete(0, 1.0);           // stream, but other streams may): order is kept
  t.drain(log, false, 1);
  CHECK(log.ops.empty());
  api.complete(1, 2.0);
  api.complete(2, 4.0);
  t.drain(log, false, 1);
  REQUIRE(log.ops.size() == 2);
  CHECK(log.ops[0].correlation_id == inner);
  CHECK(log.ops[0].end_ns - log.ops[0].start_ns == 2'000'000);
  CHECK(log.ops[1].correlation_id == outer);
  CHECK(log.ops[1].end_ns - log.ops[1].start_ns == 8'000'000);
}

TEST_CASE("a lazy drain, pair by pair, queries only old pairs and backs off after a running one") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing, /*batch_drain=*/false);
  op_log log;
  auto scope = [&] { t.end(t.begin(1)); };
  for (int i = 0; i < 4; ++i) scope();
  t.drain(log, false, 4);  // 4 closed: the oldest is queried, still running
  CHECK(api.queries == 1);
  for (int i = 0; i < 3; ++i) {
    scope();
    t.drain(log, false, 4);  // backing off: no query until 4 more pairs closed
  }
  CHECK(api.queries == 1);
  for (std::size_t e = 0; e < api.recorded.size(); ++e) api.complete(e, static_cast<double>(e));
  scope();
  t.drain(log, false, 4);  // 8 closed: queried again; resolves down to the newest 3
  CHECK(api.queries == 6);
  CHECK(log.ops.size() == 5);
  CHECK(t.counts().in_flight == 3);
  const int before = api.queries;
  t.drain(log, false, 4);  // one pair left, fewer than `lag`: not even looked at
  CHECK(api.queries == before);
}

TEST_CASE("a batch drain settles the oldest lag pairs with one query of the newest") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing, /*batch_drain=*/true);
  op_log log;
  auto scope = [&] { t.end(t.begin(1)); };
  for (int i = 0; i < 7; ++i) {
    scope();
    t.drain(log, false, 4);  // fewer than 2 * lag closed: not looked at
  }
  CHECK(api.queries == 0);
  scope();  // 8 closed: pair 3's end (event 7) decides pairs 0-3
  t.drain(log, false, 4);
  CHECK(api.queries == 1);  // still running
  CHECK(log.ops.empty());
  for (int i = 0; i < 3; ++i) {
    scope();
    t.drain(log, false, 4);  // backing off until lag more pairs closed
  }
  CHECK(api.queries == 1);
  for (std::size_t e = 0; e < api.recorded.size(); ++e) api.complete(e, 2.0 * e);
  scope();  // 12 closed
  t.drain(log, false, 4);
  CHECK(api.queries == 2);  // one query for four pairs
  REQUIRE(log.ops.size() == 4);
  for (const gpu_op& op : log.ops) CHECK(op.end_ns - op.start_ns == 2000000);  // 2 ms each
  CHECK(t.counts().in_flight == 8);
  t.drain(log, false, 4);  // 8 left: the next four, one more query
  CHECK(api.queries == 3);
  CHECK(log.ops.size() == 8);
  t.drain(log, true);  // stop: every pair, each asked
  CHECK(log.ops.size() == 12);
  CHECK(t.counts().timed == 12);
}

TEST_CASE("a batch drain over several streams asks each pair") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing, /*batch_drain=*/true);
  op_log log;
  void* other = reinterpret_cast<void*>(0x77);
  for (int i = 0; i < 4; ++i) {
    if (i == 1) diffscope::detail::timing_stream_override() = other;
    t.end(t.begin(1));
    diffscope::detail::timing_stream_override() = nullptr;
  }
  for (std::size_t e = 0; e < api.recorded.size(); ++e) api.complete(e, static_cast<double>(e));
  t.drain(log, false, 2);  // pairs 0 and 1 went to two streams: neither speaks for the other
  CHECK(api.queries == 2);
  CHECK(log.ops.size() == 2);
  CHECK(t.counts().in_flight == 2);
}

TEST_CASE("a batch drain over pairs from two threads asks each pair") {
  // CU_STREAM_PER_THREAD is one handle for a different stream on each thread: the newest
  // pair's completion says nothing about another thread's.
  fake_events api;
  void* const per_thread = reinterpret_cast<void*>(2);
  event_timer t(api, per_thread, false, no_sharing, /*batch_drain=*/true);
  op_log log;
  t.end(t.begin(1));
  std::thread([&] { t.end(t.begin(2)); }).join();
  for (int i = 0; i < 2; ++i) t.end(t.begin(3));
  for (std::size_t e = 0; e < api.recorded.size(); ++e) api.complete(e, static_cast<double>(e));
  t.drain(log, false, 2);
  CHECK(api.queries == 2);
  CHECK(log.ops.size() == 2);
}

TEST_CASE("drain(wait) at stop waits for each pair; events are pooled and reused") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  op_log log;
  for (int i = 0; i < 100; ++i) {
    const auto id = t.begin(static_cast<std::uint64_t>(i));
    t.end(id);
    t.drain(log, true);
  }
  CHECK(log.ops.size() == 100);
  // The context's pool was made at the first scope; the same pair serves every scope in turn.
  CHECK(api.created == static_cast<int>(event_timer::warm_events));
  CHECK(api.syncs == 100);
  t.release_all();
  CHECK(api.destroyed == static_cast<int>(event_timer::warm_events));
}

TEST_CASE("warm(): the context's events are made once, ahead of the first timed scope") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  api.ctx = nullptr;
  t.warm();  // no context yet: nothing to prepare, nothing created
  CHECK(api.created == 0);
  api.ctx = reinterpret_cast<void*>(0x10);
  t.warm();
  const int warm = static_cast<int>(event_timer::warm_events);
  CHECK(api.created == warm);
  t.warm();  // once per context
  CHECK(api.created == warm);
  // Scopes up to the pool's size create nothing more, even with every pair in flight.
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < warm / 2; ++i) ids.push_back(t.begin(0));
  for (auto id : ids) t.end(id);
  CHECK(api.created == warm);
  t.end(t.begin(0));  // one pair more than the pool holds: made on demand
  CHECK(api.created == warm + 2);
  // A second context gets its own pool at its first scope.
  api.ctx = reinterpret_cast<void*>(0x20);
  t.end(t.begin(0));
  CHECK(api.created == 2 * warm + 2);
}

TEST_CASE("a failed record leaves the scope untimed and counts a failure") {
  fake_events api;
  api.fail_record = true;
  event_timer t(api, legacy, false, no_sharing);
  CHECK(t.begin(0) == 0);
  CHECK(t.counts().failed == 1);
}

TEST_CASE("unclosed scopes and running pairs are dropped at stop, counted") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  const auto a = t.begin(0);
  const auto b = t.begin(0);
  t.end(b);
  (void)a;
  t.release_all();
  CHECK(t.counts().unresolved == 2);
  CHECK(api.destroyed == static_cast<int>(event_timer::warm_events));  // pool and pairs alike
}

TEST_CASE("the stream: the default, or the one the thread names") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  const auto a = t.begin(0);
  t.end(a);
  CHECK(api.stream_of[api.recorded[0]] == legacy);
  CHECK(api.stream_of[api.recorded[1]] == legacy);
  void* mine = reinterpret_cast<void*>(0x5000);
  diffscope::detail::timing_stream_override() = mine;
  const auto b = t.begin(0);
  diffscope::detail::timing_stream_override() = nullptr;  // the end follows the start
  t.end(b);
  CHECK(api.stream_of[api.recorded[2]] == mine);
  CHECK(api.stream_of[api.recorded[3]] == mine);
}

TEST_CASE("side mode: a marker in the work stream, the timestamp on our own waiting stream") {
  fake_events api;
  event_timer t(api, legacy, /*side=*/true, no_sharing);
  op_log log;
  const auto a = t.begin(5);
  t.end(a);
  const auto b = t.begin(9);
  t.end(b);
  CHECK(api.markers == 1);  // one marker and one stream per context serve every stamp
  CHECK(api.streams == 1);
  void* const side = reinterpret_cast<void*>(0x200001);
  void* const marker = reinterpret_cast<void*>(0x100001);
  REQUIRE(api.waits.size() == 4);
  for (const auto& w : api.waits) {
    CHECK(w.first == side);
    CHECK(w.second == marker);
  }
  // Records alternate: the marker on the work stream, then the timing event on ours.
  REQUIRE(api.recorded.size() == 8);
  for (std::size_t i = 0; i < 8; i += 2) {
    CHECK(api.recorded[i] == marker);
    CHECK(api.stream_of[api.recorded[i + 1]] == side);
  }
  api.complete(1, 1.0);
  api.complete(3, 3.5);
  api.complete(5, 4.0);
  api.complete(7, 4.25);
  t.drain(log, false, 1);
  REQUIRE(log.ops.size() == 2);
  CHECK(log.ops[0].end_ns - log.ops[0].start_ns == 2'500'000);
  CHECK(log.ops[1].end_ns - log.ops[1].start_ns == 250'000);
}

TEST_CASE("stamps back to back share one event; each pair still gets its own span") {
  fake_events api;
  // A wide window, so that a loaded test machine never splits the back-to-back calls.
  event_timer t(api, legacy, false, 50'000'000);  // 50 ms
  op_log log;
  // Host time long enough for work to enter the stream.
  const auto work = [] { std::this_thread::sleep_for(std::chrono::milliseconds(100)); };
  // DenoisingStage { step 0 { work } step 1 { work } }: 6 stamps, 3 places in the stream.
  const auto stage = t.begin(0);
  const auto s0 = t.begin(10);
  work();
  t.end(s0);
  const auto s1 = t.begin(20);
  work();
  t.end(s1);
  t.end(stage);
  REQUIRE(api.recorded.size() == 3);  // stage+step 0 start, step 0 end = step 1 start, ends
  CHECK(t.counts().shared == 3);
  api.complete(0, 1.0);
  api.complete(1, 3.0);
  api.complete(2, 4.5);
  t.drain(log, false, 1);
  REQUIRE(log.ops.size() == 3);  // in close order: step 0, step 1, the stage
  CHECK(log.ops[0].end_ns - log.ops[0].start_ns == 2'000'000);
  CHECK(log.ops[1].end_ns - log.ops[1].start_ns == 1'500'000);
  CHECK(log.ops[2].end_ns - log.ops[2].start_ns == 3'500'000);
  // Every event went back to the pool exactly once: the next pairs reuse them, no more made.
  const int made = api.created;
  for (int i = 0; i < 3; ++i) t.end(t.begin(0));
  CHECK(api.created == made);
  t.release_all();
  CHECK(api.destroyed == made);
}

TEST_CASE("no sharing across streams, threads, or after the window") {
  fake_events api;
  event_timer t(api, legacy, false, 50'000'000);  // 50 ms: see above
  const auto a = t.begin(0);
  void* mine = reinterpret_cast<void*>(0x5000);
  diffscope::detail::timing_stream_override() = mine;
  const auto b = t.begin(0);  // another stream: its own event
  diffscope::detail::timing_stream_override() = nullptr;
  CHECK(api.recorded.size() == 2);
  std::thread([&] { t.end(t.begin(0)); }).join();  // another thread: its own event...
  CHECK(api.recorded.size() == 3);                 // ...which its own end then shares
  const auto c = t.begin(0);  // the latest stamp is the other thread's: a new event
  CHECK(api.recorded.size() == 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  t.end(c);  // 100 ms later work may have entered the stream: a new event
  CHECK(api.recorded.size() == 5);
  t.end(a);  // right after c's end on the same stream: shares it
  CHECK(api.recorded.size() == 5);
  t.end(b);  // its own stream
  CHECK(api.recorded.size() == 6);
  CHECK(api.stream_of[api.recorded[5]] == mine);
  CHECK(t.counts().shared == 2);
}

TEST_CASE("our own handler's time does not count towards the sharing window") {
  fake_events api;
  event_timer t(api, legacy, false, 20'000'000);  // 20 ms
  const auto ms = [](int n) { std::this_thread::sleep_for(std::chrono::milliseconds(n)); };
  const auto now = [] { return diffscope::detail::now_ns(); };
  // A step ends; the same handler then resolves old pairs for 40 ms; the next step starts.
  std::uint64_t entered = now();
  const auto a = t.begin(0);
  t.end(a);
  ms(40);  // our own work after the stamp (drain, the sink)
  t.handler_returning(entered);
  const auto b = t.begin(0);  // program time since the handler returned: microseconds
  CHECK(api.recorded.size() == 1);
  CHECK(t.counts().shared == 2);
  // A handler entered while the window was still open (a short stretch of program code,
  // then our work) restarts it too.
  entered = now();
  ms(40);
  t.handler_returning(entered);
  t.end(b);
  CHECK(api.recorded.size() == 1);
  // Program code longer than the window before the handler: work may have entered the
  // stream, so the handler's return does not bridge it.
  const auto c = t.begin(0);
  CHECK(api.recorded.size() == 1);
  ms(40);
  entered = now();
  t.handler_returning(entered);
  t.end(c);
  CHECK(api.recorded.size() == 2);
  // Another thread's handler never restarts this thread's window.
  const auto d = t.begin(0);  // right after c's end: shares it
  CHECK(api.recorded.size() == 2);
  ms(40);
  std::thread([&] { t.handler_returning(now()); }).join();
  t.end(d);
  CHECK(api.recorded.size() == 3);
  // Sharing off: nothing to restart.
  event_timer off(api, legacy, false, no_sharing);
  const auto e = off.begin(0);
  off.handler_returning(now());
  off.end(e);
  CHECK(api.recorded.size() == 5);
}

TEST_CASE("a step that follows the previous one starts at its end: one record a step") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);  // chaining needs no window
  op_log log;
  const auto s0 = t.begin(0);
  t.end(s0, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // Python between the steps
  const auto s1 = t.begin(10, true);
  t.end(s1, true);
  const auto s2 = t.begin(20, true);
  t.end(s2, true);
  REQUIRE(api.recorded.size() == 4);  // step 0's start, then one end per step
  CHECK(t.counts().chained == 2);
  CHECK(t.counts().shared == 2);
  api.complete(0, 1.0);
  api.complete(1, 3.0);
  api.complete(2, 4.5);
  api.complete(3, 8.0);
  t.drain(log, false, 1);
  REQUIRE(log.ops.size() == 3);  // the spans meet: together they are the loop's
  CHECK(log.ops[0].end_ns - log.ops[0].start_ns == 2'000'000);
  CHECK(log.ops[1].end_ns - log.ops[1].start_ns == 1'500'000);
  CHECK(log.ops[2].end_ns - log.ops[2].start_ns == 3'500'000);
  // Every event went back to the pool once, shared ones included.
  const int made = api.created;
  for (int i = 0; i < 4; ++i) t.end(t.begin(0));
  CHECK(api.created == made);
}

TEST_CASE("a step starts at the previous step's end only if that is still the latest stamp") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  const auto records = [&] { return api.recorded.size(); };
  // The previous scope was not a step: a new start.
  t.end(t.begin(0), false);
  t.end(t.begin(0, true), true);
  CHECK(records() == 4);
  // Another stamp since the step's end (any scope, any thread): a new start.
  const auto other = t.begin(0);
  t.end(t.begin(0, true), true);
  CHECK(records() == 7);
  t.end(other);
  t.end(t.begin(0, true), true);
  CHECK(records() == 10);
  std::thread([&] { t.end(t.begin(0)); }).join();
  t.end(t.begin(0, true), true);
  CHECK(records() == 14);
  // Another thread's step: its own start.
  std::thread([&] { t.end(t.begin(0, true), true); }).join();
  CHECK(records() == 16);
  // Another stream: its own start.
  t.end(t.begin(0), true);
  diffscope::detail::timing_stream_override() = reinterpret_cast<void*>(0x5000);
  t.end(t.begin(0, true), true);
  diffscope::detail::timing_stream_override() = nullptr;
  CHECK(records() == 20);
  // An end serves one following step: a second begin that claims to follow records anew.
  t.end(t.begin(0), true);
  const auto first = t.begin(0, true);
  const auto second = t.begin(0, true);
  CHECK(records() == 23);
  t.end(second);
  t.end(first);
  CHECK(t.counts().chained == 1);
  // Chaining off: every step records its own start.
  fake_events api2;
  event_timer off(api2, legacy, false, no_sharing, true, false);
  off.end(off.begin(0), true);
  off.end(off.begin(0, true), true);
  CHECK(api2.recorded.size() == 4);
  CHECK(off.counts().chained == 0);
}

TEST_CASE("through the NVTX tool consecutive steps chain; a pause, a range or a skip breaks it") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  aggregator agg;
  auto& st = diffscope::detail::nvtx_state();
  std::optional<attached_tool> tool(std::in_place, agg, t, false);  // stages and steps
  const auto push = [](const std::string& name) {
    diffscope::detail::nvtx_push(range_domain::default_domain, name, 0, std::nullopt, nullptr);
  };
  const auto pop = [] { diffscope::detail::nvtx_pop(range_domain::default_domain); };
  const auto step = [&](int i) {
    push("denoising_step_" + std::to_string(i));
    push("attention");  // untimed at this granularity: it does not break the chain
    pop();
    pop();
  };
  const auto records = [&] { return api.recorded.size(); };
  push("stage_DenoisingStage");  // 1 record
  step(0);                       // its own start (the stage's came before): 2 records
  step(1);                       // starts at step 0's end: 1
  CHECK(records() == 4);
  push("scheduler");  // a range of the program's between two steps: it may have launched
  pop();
  step(2);
  CHECK(records() == 6);
  step(3);
  CHECK(records() == 7);
  st.timing_paused.store(true);
  step(4);  // host timing only
  st.timing_paused.store(false);
  step(5);  // step 4 was not timed, so step 3's end is not step 5's start
  CHECK(records() == 9);
  step(7);  // not the next index (a new loop, a skipped step): its own start
  CHECK(records() == 11);
  step(8);
  CHECK(records() == 12);
  pop();  // the stage
  CHECK(records() == 13);
  CHECK(t.counts().chained == 3);
  tool.reset();
  // Host timings are untouched; each step still gets its own span.
  for (std::size_t i = 0; i < api.recorded.size(); ++i) api.complete(i, static_cast<double>(i));
  t.drain(agg, true);
  const auto r = agg.snapshot(true);
  REQUIRE(r.steps.size() == 8);
  for (const auto& s : r.steps) CHECK(s.gpu.timed_calls == (s.step == 4 ? 0u : 1u));
}

TEST_CASE("an event back in the pool is never shared: it may be recorded elsewhere") {
  fake_events api;
  event_timer t(api, legacy, false, always);
  op_log log;
  const auto a = t.begin(0);
  t.end(a);  // shares a's start: an empty scope, one event
  REQUIRE(api.recorded.size() == 1);
  api.complete(0, 2.0);
  t.drain(log, false, 1);  // resolves a: its event returns to the pool
  REQUIRE(log.ops.size() == 1);
  CHECK(log.ops[0].end_ns == log.ops[0].start_ns);  // nothing ran inside it
  const auto b = t.begin(0);  // recent, but the event was given back: recorded afresh
  CHECK(api.recorded.size() == 2);
  t.end(b);
  void* const destroyed = api.recorded.back();
  t.release_all();  // stop: the events are destroyed, so nothing may share them afterwards
  t.end(t.begin(0));
  REQUIRE(api.recorded.size() == 3);
  CHECK(api.recorded.back() != destroyed);
}

TEST_CASE("perf mode through the aggregator: each timed scope gets its own span") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  aggregator agg;
  const auto stage = agg.intern("DenoisingStage");
  const auto block = agg.intern("block");
  // A timed stage, two timed steps inside, an untimed block inside each step.
  auto open_timed = [&](std::uint32_t name, category c, std::optional<std::int64_t> step,
                        std::uint64_t ns) {
    agg.push(range_domain::diffscope, name, c, step, ns);
    const auto id = t.begin(ns);
    agg.on_launch(id, launch_kind::timing);
  };
  auto close = [&](std::uint64_t ns) {
    const auto p = agg.pop(range_domain::diffscope, ns);
    if (p.timed) t.end(p.timed);
    t.drain(agg, false, 1);
  };
  open_timed(stage, category::stage, std::nullopt, 1);  // events 0 / 5 (0 ns = no time)
  for (int s = 0; s < 2; ++s) {
    open_timed(agg.step_name_id(), category::denoise_step, s, 100 + s * 100);  // 1+3s / 3+3s
    agg.push(range_domain::diffscope, block, category::other, std::nullopt, 110 + s * 100);
    close(120 + s * 100);  // the block: untimed
    close(150 + s * 100);
  }
  close(400);
  CHECK(agg.instances_in_flight() == 3);  // closed on the host, still on the GPU
  // Device times: stage 0..10 ms, step 0 1..4 ms, step 1 4..9 ms.
  api.complete(0, 0.0);
  api.complete(1, 1.0);
  api.complete(2, 4.0);
  api.complete(3, 4.0);
  api.complete(4, 9.0);
  api.complete(5, 10.0);
  t.drain(agg, false, 1);
  CHECK(agg.instances_in_flight() == 0);
  const auto r = agg.snapshot(true);
  REQUIRE(r.steps.size() == 2);
  CHECK(r.steps[0].gpu.envelope_ms == doctest::Approx(3.0));
  CHECK(r.steps[1].gpu.envelope_ms == doctest::Approx(5.0));
  CHECK(r.steps[0].gpu.timed_calls == 1);
  CHECK(r.steps[0].gpu.kernels == 0);
  REQUIRE(r.stages.size() == 1);
  // The stage's own span, not the union of its steps' spans.
  CHECK(r.stages[0].gpu.envelope_ms == doctest::Approx(10.0));
  CHECK(r.stages[0].gpu.occupied_ms == doctest::Approx(10.0));
  for (const auto& sc : r.scopes) {
    if (sc.name == "block") {
      CHECK(sc.gpu.timed_calls == 0);  // not timed at the default granularity
      CHECK(sc.gpu.envelope_ms == 0);
    }
    CHECK(sc.launches == 0);  // timing events are not launches
  }
  CHECK(r.kernels.empty());  // and not kernels
  CHECK(r.overhead.callbacks == 0);
}

TEST_CASE("timing paused: ranges opened meanwhile are not timed; one already timed closes") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  aggregator agg;
  auto& st = diffscope::detail::nvtx_state();
  std::optional<attached_tool> tool(std::in_place, agg, t);
  const auto scope = [](const char* name) {
    diffscope::detail::nvtx_push(range_domain::diffscope, name, 0, std::nullopt, nullptr);
  };
  const auto close = [] { diffscope::detail::nvtx_pop(range_domain::diffscope); };
  scope("timed");
  close();
  CHECK(api.recorded.size() == 2);
  st.timing_paused.store(true);
  scope("paused");
  close();
  CHECK(api.recorded.size() == 2);  // host timing only
  st.timing_paused.store(false);
  scope("opened before the pause");
  st.timing_paused.store(true);
  close();
  CHECK(api.recorded.size() == 4);  // its pair still closes
  tool.reset();
  const auto r = agg.snapshot(false);
  CHECK(r.scopes.size() == 3);  // every scope kept its host timing
}

TEST_CASE("through the NVTX tool a timed pop's end stamp is its last CUDA call") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  aggregator agg;
  const attached_tool tool(agg, t);
  // Enough scopes that the lazy drain starts querying old pairs from inside the pops.
  int pops_that_queried = 0;
  for (int i = 0; i < 3 * static_cast<int>(event_timer::default_lag); ++i) {
    diffscope::detail::nvtx_push(range_domain::diffscope, "step", 0, std::nullopt, nullptr);
    api.calls.clear();
    diffscope::detail::nvtx_pop(range_domain::diffscope);
    REQUIRE(!api.calls.empty());
    CHECK(api.calls.back() == 'r');  // queries (if any) came before the end stamp
    if (api.calls.front() == 'q') ++pops_that_queried;
  }
  CHECK(pops_that_queried > 0);
}

TEST_CASE("sampled steps: one per window of n, at a place that moves between windows") {
  using diffscope::detail::step_sampled;
  for (std::uint64_t k = 0; k < 10; ++k) CHECK(step_sampled(k, 1));
  for (std::uint32_t n : {2u, 4u, 8u, 16u}) {
    std::set<std::uint64_t> places;
    for (std::uint64_t w = 0; w < 64; ++w) {
      int in_window = 0;
      for (std::uint64_t k = w * n; k < (w + 1) * n; ++k) {
        if (step_sampled(k, n)) {
          ++in_window;
          places.insert(k % n);
        }
      }
      CHECK(in_window == 1);
    }
    // Not always the same place (an alternating loop would then see one kind of step only).
    CHECK(places.size() > 1);
    if (n == 2) CHECK(places.size() == 2);
  }
}

TEST_CASE("every scope, sampled: nested scopes timed in one step of n, steps in all") {
  fake_events api;
  event_timer t(api, legacy, false, no_sharing, true, false);  // each step its own start
  aggregator agg;
  std::optional<attached_tool> tool(std::in_place, agg, t);
  tool->st.sample_steps.store(4);
  tool->st.steps_seen.store(0);
  const auto open = [](const char* name, std::uint32_t cat, std::optional<std::int64_t> step) {
    diffscope::detail::nvtx_push(range_domain::diffscope, name, cat, step, nullptr);
  };
  const auto close = [] { diffscope::detail::nvtx_pop(range_domain::diffscope); };
  const auto step_cat = static_cast<std::uint32_t>(category::denoise_step);
  open("prepare", 0, std::nullopt);  // outside any step: always timed
  close();
  std::size_t stamps_before = api.recorded.size();
  CHECK(stamps_before == 2);
  int nested_timed_steps = 0;
  for (int i = 0; i < 8; ++i) {
    const std::size_t before = api.recorded.size();
    open("denoise_step", step_cat, i);
    open("block", 0, std::nullopt);
    open("attention", 0, std::nullopt);
    close();
    close();
    close();
    const std::size_t stamps = api.recorded.size() - before;
    CHECK((stamps == 2 || stamps == 6));  // the step alone, or the step and its two scopes
    if (stamps == 6) ++nested_timed_steps;
  }
  CHECK(nested_timed_steps == 2);  // one in each window of four
  open("after", 0, std::nullopt);  // after the loop: timed again
  close();
  CHECK(api.recorded.size() == stamps_before + 8 * 2 + 2 * 4 + 2);
  tool.reset();
  const auto r = agg.snapshot(true);
  for (const auto& sc : r.scopes) {
    if (sc.name == "block" || sc.name == "attention") CHECK(sc.host.calls == 8);
  }
}

namespace {

/// fake_events made safe for two threads (the program's and the resolver's), noting which
/// thread asked for each query and bind.
class shared_events final : public event_api {
 public:
  fake_events inner;
  std::mutex m;
  std::vector<std::thread::id> query_threads, bind_threads;

  // Reads a constant: no lock needed.
  context current_context() noexcept override { return inner.current_context(); }
  event create() noexcept override {
    std::lock_guard<std::mutex> g(m);
    return inner.create();
  }
  bool record(event e, void* s) noexcept override {
    std::lock_guard<std::mutex> g(m);
    const bool ok = inner.record(e, s);
    // Complete at once: a resolver that looked at a still-running batch would wait for
    // `lag` more pairs, which a test that stops stamping never brings.
    if (ok)
      inner.complete(inner.recorded.size() - 1, 1.5 * static_cast<double>(inner.recorded.size()));
    return ok;
  }
  state query(event e) noexcept override {
    std::lock_guard<std::mutex> g(m);
    query_threads.push_back(std::this_thread::get_id());
    return inner.query(e);
  }
  bool synchronize(event e) noexcept override {
    std::lock_guard<std::mutex> g(m);
    return inner.synchronize(e);
  }
  std::optional<double> elapsed_ms(event a, event b) noexcept override {
    std::lock_guard<std::mutex> g(m);
    return inner.elapsed_ms(a, b);
  }
  void destroy(event e) noexcept override {
    std::lock_guard<std::mutex> g(m);
    inner.destroy(e);
  }
  event create_marker() noexcept override { return nullptr; }
  void* create_stream() noexcept override { return nullptr; }
  bool wait(void*, event) noexcept override { return false; }
  void destroy_stream(void*) noexcept override {}
  void bind(context c) noexcept override {
    std::lock_guard<std::mutex> g(m);
    bind_threads.push_back(std::this_thread::get_id());
    inner.bind(c);
  }
};

/// op_log for two threads.
struct shared_log final : diffscope::detail::activity_sink {
  std::mutex m;
  std::vector<gpu_op> ops;
  void on_launch(std::uint32_t, launch_kind) noexcept override {}
  void on_launch_alias(std::uint32_t, std::uint32_t) noexcept override {}
  void on_graph_node_created(std::uint64_t) noexcept override {}
  void on_graph_node_cloned(std::uint64_t, std::uint64_t) noexcept override {}
  void on_gpu_op(const gpu_op& op) noexcept override {
    std::lock_guard<std::mutex> g(m);
    ops.push_back(op);
  }
  void on_dropped(std::uint64_t) noexcept override {}
  std::size_t size() {
    std::lock_guard<std::mutex> g(m);
    return ops.size();
  }
};

}  // namespace

TEST_CASE("the resolver thread settles pairs: the program's thread only records") {
  shared_events api;
  event_timer t(api, legacy, false, no_sharing);
  shared_log log;
  CHECK_FALSE(t.resolves_in_background());
  t.start_resolver(log, std::chrono::milliseconds(1));
  CHECK(t.resolves_in_background());
  const std::size_t lag = event_timer::default_lag;
  {
    aggregator agg;
    const attached_tool tool(agg, t);
    // Three batches' worth of timed scopes through the NVTX tool: no pop drains now.
    for (std::size_t i = 0; i < 3 * lag; ++i) {
      diffscope::detail::nvtx_push(range_domain::diffscope, "step", 0, std::nullopt, nullptr);
      diffscope::detail::nvtx_pop(range_domain::diffscope);
    }
  }
  // The resolver settles batches of `lag` while 2 * lag are closed: two of the three.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (log.size() < 2 * lag && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(log.size() == 2 * lag);
  t.stop_resolver();
  CHECK_FALSE(t.resolves_in_background());
  t.stop_resolver();  // twice: a no-op
  {
    std::lock_guard<std::mutex> g(api.m);
    REQUIRE_FALSE(api.query_threads.empty());
    const auto self = std::this_thread::get_id();
    bool all_elsewhere = true;
    for (const auto& id : api.query_threads) all_elsewhere = all_elsewhere && id != self;
    CHECK(all_elsewhere);
    // The resolver made the pairs' context current on its own thread before asking.
    REQUIRE_FALSE(api.bind_threads.empty());
    const bool bound_elsewhere = api.bind_threads.front() != self;
    CHECK(bound_elsewhere);
    CHECK(api.inner.bound.front() == api.inner.ctx);
  }
  t.drain(log, true);  // stop: the rest, on this thread
  REQUIRE(log.size() == 3 * lag);
  for (std::size_t i = 1; i < log.ops.size(); ++i)  // in close order
    CHECK(log.ops[i].correlation_id > log.ops[i - 1].correlation_id);
  CHECK(t.counts().timed == 3 * lag);
  CHECK(t.counts().in_flight == 0);
}

TEST_CASE("release_all stops the resolver; a forked child lets the parent's go") {
  shared_events api;
  shared_log log;
  {
    event_timer t(api, legacy, false, no_sharing);
    t.start_resolver(log, std::chrono::milliseconds(1));
    t.end(t.begin(1));
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::alarm(10);        // a join of the parent's thread would hang: fail by signal instead
      t.stop_resolver();  // no thread here to join
      ::_exit(t.resolves_in_background() ? 3 : 0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    t.release_all();
    CHECK_FALSE(t.resolves_in_background());
  }  // the destructor finds nothing left to stop
  CHECK(api.inner.destroyed == static_cast<int>(event_timer::warm_events));
}

namespace {

/// A range sink with nothing beyond range_sink.hpp's interface, logging what it is told.
struct minimal_range_sink final : diffscope::detail::activity_sink {
  struct popped {
    std::uint32_t timed = 0;
    bool step = false, stage = false;
    std::uint32_t name_id = 0;
  };
  std::vector<std::string> names{"denoise_step", "(other)"};
  std::vector<popped> open;
  std::vector<std::string> log;
  std::size_t timings = 0;

  static bool never_folded(category c) noexcept {
    return c == category::stage || c == category::denoise_step;
  }
  std::uint32_t step_name_id() const noexcept { return 0; }
  std::uint32_t other_name_id() const noexcept { return 1; }
  std::uint32_t intern(std::string_view name, bool) {
    names.emplace_back(name);
    return static_cast<std::uint32_t>(names.size() - 1);
  }
  bool push(range_domain, std::uint32_t name_id, category cat, std::optional<std::int64_t> step,
            std::uint64_t, std::string_view, bool) {
    log.push_back("push " + names.at(name_id));
    open.push_back({0, step.has_value(), cat == category::stage, name_id});
    return true;
  }
  bool has_open(range_domain) const { return !open.empty(); }
  popped pop(range_domain, std::uint64_t) {
    const popped p = open.back();
    open.pop_back();
    log.push_back("pop " + names.at(p.name_id));
    return p;
  }
  std::string name_of(std::uint32_t id) const { return names.at(id); }

  void on_launch(std::uint32_t id, launch_kind kind) noexcept override {
    if (kind == launch_kind::timing && !open.empty()) open.back().timed = id;
  }
  void on_launch_alias(std::uint32_t, std::uint32_t) noexcept override {}
  void on_graph_node_created(std::uint64_t) noexcept override {}
  void on_graph_node_cloned(std::uint64_t, std::uint64_t) noexcept override {}
  void on_gpu_op(const gpu_op& op) noexcept override { timings += op.kind == op_kind::timing; }
  void on_dropped(std::uint64_t) noexcept override {}
};

}  // namespace

TEST_CASE("the NVTX tool's handlers need nothing of their sink beyond range_sink.hpp") {
  static_assert(diffscope::detail::is_range_sink_v<minimal_range_sink>);
  static_assert(diffscope::detail::is_range_sink_v<aggregator>);
  static_assert(!diffscope::detail::is_range_sink_v<op_log>);  // an activity sink alone
  fake_events api;
  event_timer t(api, legacy, false, no_sharing);
  minimal_range_sink sink;
  auto& st = diffscope::detail::nvtx_state();
  st.timer.store(&t);  // perf mode, stages and steps timed
  const auto push = [&](std::string_view name) {
    diffscope::detail::push_range(sink, st, range_domain::default_domain, name, 0, std::nullopt,
                                  nullptr);
  };
  std::uint32_t ghosts = 0;
  const auto pop = [&] {
    diffscope::detail::pop_range(sink, st, range_domain::default_domain, ghosts);
  };
  push("stage_denoise");
  push("denoising_step_0");
  push("attention");
  pop();
  pop();
  pop();
  ghosts = 1;  // a range pushed before the sink was attached: its pop reaches no sink
  pop();
  st.timer.store(nullptr);
  CHECK(ghosts == 0);
  CHECK(sink.log == std::vector<std::string>{"push denoise", "push denoise_step", "push attention",
                                             "pop attention", "pop denoise_step", "pop denoise"});
  CHECK(api.recorded.size() == 4);  // the stage's and the step's pairs
  t.drain(sink, true);
  CHECK(sink.timings == 2);
}
