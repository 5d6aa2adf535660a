// GPU tests of the CUPTI source against real CUPTI: launches announced on the launching
// thread, one record per operation, copies and sets with bytes, CUDA graphs (node creation,
// cloning, replay), host-clock timestamps, a spin kernel of known length, another CUPTI
// subscriber, repeated start/stop, in-flight work at flush and at process exit.
// Exits 77 (skipped) without a GPU (tests/main.cpp) or when another tool holds CUPTI.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <cuda_runtime_api.h>

#include <diffscope/capture/cupti_source.hpp>

namespace ds = diffscope::detail;

namespace {

__global__ void empty_kernel() {}

__global__ void add_kernel(float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.0f;
}

__device__ unsigned long long global_timer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Runs for `ns` nanoseconds of the GPU's global timer.
__global__ void spin_kernel(unsigned long long ns) {
  const unsigned long long t0 = global_timer_ns();
  while (global_timer_ns() - t0 < ns) {
  }
}

#define CUDA_OK(call) REQUIRE_MESSAGE((call) == cudaSuccess, #call)

struct launch_event {
  std::uint32_t id;
  ds::launch_kind kind;
  std::thread::id thread;
};

struct op_event {
  ds::gpu_op op;
  std::string name;
};

// Thread-safe: launches arrive on launching threads, ops on CUPTI's buffer thread.
class recording_sink : public ds::activity_sink {
 public:
  void on_launch(std::uint32_t id, ds::launch_kind kind) noexcept override {
    std::lock_guard<std::mutex> g(m);
    launches.push_back({id, kind, std::this_thread::get_id()});
  }
  void on_launch_alias(std::uint32_t nested, std::uint32_t outer) noexcept override {
    std::lock_guard<std::mutex> g(m);
    aliases[nested] = outer;
  }
  void on_graph_node_created(std::uint64_t node) noexcept override {
    std::lock_guard<std::mutex> g(m);
    created[node] = std::this_thread::get_id();
  }
  void on_graph_node_cloned(std::uint64_t original, std::uint64_t clone) noexcept override {
    std::lock_guard<std::mutex> g(m);
    clone_of[clone] = original;
  }
  void on_gpu_op(const ds::gpu_op& op) noexcept override {
    std::lock_guard<std::mutex> g(m);
    ops.push_back({op, std::string(op.name)});
    ops.back().op.name = {};
  }
  void on_dropped(std::uint64_t count) noexcept override {
    std::lock_guard<std::mutex> g(m);
    dropped += count;
  }

  // The launch an id belongs to (through an alias if it is a nested call's id), or null.
  const launch_event* launch_of(std::uint32_t id) const {
    auto a = aliases.find(id);
    if (a != aliases.end()) id = a->second;
    for (const auto& l : launches) {
      if (l.id == id) return &l;
    }
    return nullptr;
  }
  std::vector<op_event> ops_named(const std::string& part) const {
    std::vector<op_event> out;
    for (const auto& o : ops) {
      if (o.name.find(part) != std::string::npos) out.push_back(o);
    }
    return out;
  }

  std::mutex m;
  std::vector<launch_event> launches;
  std::map<std::uint32_t, std::uint32_t> aliases;
  std::map<std::uint64_t, std::thread::id> created;
  std::map<std::uint64_t, std::uint64_t> clone_of;
  std::vector<op_event> ops;
  std::uint64_t dropped = 0;
};

// Starts a source or skips the whole binary when CUPTI is not ours to use here.
void start_or_skip(ds::cupti_source& source, recording_sink& sink,
                   const ds::cupti_options& options = {}) {
  const auto r = source.start(sink, options);
  if (!r.ok && !r.holder.empty()) {
    std::fprintf(stderr, "SKIP: %s\n", r.reason.c_str());
    std::exit(77);
  }
  REQUIRE_MESSAGE(r.ok, r.reason);
}

// Launches n empty kernels on the legacy default stream and waits for them.
void launch_empty(int n) {
  for (int i = 0; i < n; ++i) empty_kernel<<<1, 1>>>();
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
}

void finish(ds::cupti_source& source) {
  source.flush(true);
  source.stop();
}

}  // namespace

TEST_SUITE("cupti_source_gpu") {
  TEST_CASE("every runtime kernel launch yields one record announced on its thread") {
    recording_sink sink;
    ds::cupti_source source;
    CUDA_OK(cudaFree(nullptr));  // context first, so launches below are the only ones
    start_or_skip(source, sink);
    constexpr int n = 64;
    launch_empty(n);
    finish(source);

    const auto kernels = sink.ops_named("empty_kernel");
    CHECK(kernels.size() == n);
    std::set<std::uint32_t> ids;
    int via_alias = 0;
    for (const auto& k : kernels) {
      CHECK(k.op.kind == ds::op_kind::kernel);
      CHECK(ids.insert(k.op.correlation_id).second);
      const launch_event* l = sink.launch_of(k.op.correlation_id);
      REQUIRE_MESSAGE(l != nullptr, "kernel correlation id " << k.op.correlation_id);
      CHECK_MESSAGE((l->thread == std::this_thread::get_id()),
                    "launch announced on another thread");
      CHECK(l->kind == ds::launch_kind::kernel);
      if (sink.aliases.count(k.op.correlation_id)) ++via_alias;
    }
    const auto c = ds::snapshot(source.counters());
    MESSAGE("runtime launches: " << sink.launches.size() << " announced, " << c.launch_nested
                                 << " nested calls with the same id, " << sink.aliases.size()
                                 << " with their own id (" << via_alias
                                 << " records carry one); launch callback "
                                 << c.launch_callback_mean_ns() << " ns mean over "
                                 << c.launch_samples << " samples");
    CHECK(sink.launches.size() == n);  // one announced launch per <<<>>>, nested calls aliased
    CHECK(c.dropped == 0);
    CHECK(c.bad_timestamps == 0);
  }

  TEST_CASE("each launch-API choice: driver announces every launch once, none only records") {
    CUDA_OK(cudaFree(nullptr));
    constexpr int n = 64;
    for (auto apis : {ds::cupti_launch_apis::driver, ds::cupti_launch_apis::none}) {
      CAPTURE(static_cast<int>(apis));
      recording_sink sink;
      ds::cupti_source source;
      ds::cupti_options o;
      o.launch_apis = apis;
      start_or_skip(source, sink, o);
      launch_empty(n);
      finish(source);
      const auto kernels = sink.ops_named("empty_kernel");
      CHECK(kernels.size() == n);
      if (apis == ds::cupti_launch_apis::none) {
        CHECK(sink.launches.empty());
        continue;
      }
      CHECK(sink.launches.size() == n);
      CHECK(ds::snapshot(source.counters()).launch_nested == 0);  // one callback a launch
      int matched = 0;
      for (const auto& k : kernels) matched += sink.launch_of(k.op.correlation_id) != nullptr;
      MESSAGE("driver callbacks only: " << matched << " of " << n
                                        << " records carry a driver launch's id");
      if (CUDART_VERSION >= 13000) CHECK(matched == n);  // CUDA 13: runtime and driver share ids
    }
  }

  TEST_CASE("automatic launch APIs: the runtime callbacks go once proved redundant") {
    CUDA_OK(cudaFree(nullptr));
    recording_sink sink;
    ds::cupti_source source;
    ds::cupti_options o;  // automatic by default
    o.runtime_verify_launches = 64;
    start_or_skip(source, sink, o);
    CHECK_FALSE(source.drop_redundant_runtime_callbacks());  // nothing proved yet
    launch_empty(100);
    const auto before = ds::snapshot(source.counters());
    MESSAGE("runtime launches verified " << before.runtime_verified << ", unmatched "
                                         << before.runtime_unmatched);
    if (CUDART_VERSION < 13000 && before.runtime_unmatched > 0) {
      CHECK_FALSE(source.drop_redundant_runtime_callbacks());  // not proved: both stay on
      finish(source);
      return;
    }
    CHECK(before.runtime_unmatched == 0);
    CHECK(before.runtime_verified >= 64);
    CHECK(before.launch_threads == 1);  // this thread alone: the drop may happen, from here
    bool from_other = true;             // another thread's upkeep waits for the launching thread's
    std::thread([&] { from_other = source.drop_redundant_runtime_callbacks(); }).join();
    CHECK_FALSE(from_other);
    CHECK_FALSE(source.upkeep_done());  // still to drop, from this thread
    CHECK(source.drop_redundant_runtime_callbacks());
    CHECK(source.upkeep_done());
    CHECK_FALSE(source.drop_redundant_runtime_callbacks());  // once
    for (int i = 0; i < 100; ++i) empty_kernel<<<1, 1>>>();
    CHECK(source.set_paused(true));
    CHECK(source.set_paused(false));  // resuming does not bring them back
    launch_empty(20);
    finish(source);
    const auto after = ds::snapshot(source.counters());
    CHECK(after.runtime_callbacks_dropped);
    CHECK(after.launch_nested == before.launch_nested);  // no runtime callback since
    const auto kernels = sink.ops_named("empty_kernel");
    CHECK(kernels.size() == 220);
    CHECK(sink.launches.size() == 220);  // each launch announced once, before and after
    int matched = 0;
    for (const auto& k : kernels) matched += sink.launch_of(k.op.correlation_id) != nullptr;
    CHECK(matched == 220);
  }

  TEST_CASE("buffers we zero ourselves are reused and lose no record") {
    CUDA_OK(cudaFree(nullptr));
    recording_sink sink;
    ds::cupti_source source;
    ds::cupti_options o;
    o.zero_buffers = true;
    o.buffer_bytes = 64 << 10;  // the smallest: thousands of launches fill many
    start_or_skip(source, sink, o);
    constexpr int batches = 6, per_batch = 1000, n = batches * per_batch;
    for (int b = 0; b < batches; ++b) {
      for (int i = 0; i < per_batch; ++i) empty_kernel<<<1, 1>>>();
      CUDA_OK(cudaDeviceSynchronize());
      source.flush(false);  // completed buffers come back (zeroed) before the next batch
    }
    CUDA_OK(cudaGetLastError());
    finish(source);
    const auto c = ds::snapshot(source.counters());
    MESSAGE(c.buffers_requested << " buffers requested, " << c.buffers_allocated << " allocated, "
                                << c.buffers_completed << " completed");
    CHECK(sink.ops_named("empty_kernel").size() == n);
    CHECK(c.buffers_completed > c.buffers_allocated);  // some were reused after zeroing
    CHECK(c.dropped == 0);
    CHECK(c.bad_timestamps == 0);
    CHECK(sink.launches.size() == n);
  }

  TEST_CASE("launches from several threads are announced on the thread that made them") {
    constexpr int threads = 4, per_thread = 50;
    CUDA_OK(cudaFree(nullptr));
    recording_sink sink;
    ds::cupti_source source;
    start_or_skip(source, sink);
    std::vector<std::thread> pool;
    std::vector<std::thread::id> ids(threads);
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([t, &ids] {
        ids[t] = std::this_thread::get_id();
        cudaStream_t s = nullptr;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        for (int i = 0; i < per_thread; ++i) empty_kernel<<<1, 1, 0, s>>>();
        cudaStreamSynchronize(s);
        cudaStreamDestroy(s);
      });
    }
    for (auto& th : pool) th.join();
    finish(source);
    const auto kernels = sink.ops_named("empty_kernel");
    CHECK(kernels.size() == threads * per_thread);
    std::map<std::thread::id, int> per;
    for (const auto& k : kernels) {
      const launch_event* l = sink.launch_of(k.op.correlation_id);
      REQUIRE(l != nullptr);
      ++per[l->thread];
    }
    for (int t = 0; t < threads; ++t) {
      CAPTURE(t);
      CHECK(per[ids[t]] == per_thread);
    }
  }

  TEST_CASE("a driver API launch (cuLaunchKernel) is announced and recorded") {
    using launch_fn = CUresult(CUDAAPI*)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                                         unsigned, unsigned, unsigned, CUstream, void**, void**);
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    CUDA_OK(cudaGetDriverEntryPointByVersion("cuLaunchKernel", &fn, 12000, cudaEnableDefault, &q));
    REQUIRE(q == cudaDriverEntryPointSuccess);
    cudaFunction_t func = nullptr;
    CUDA_OK(cudaGetFuncBySymbol(&func, reinterpret_cast<const void*>(&empty_kernel)));

    recording_sink sink;
    ds::cupti_source source;
    start_or_skip(source, sink);
    constexpr int n = 8;
    for (int i = 0; i < n; ++i) {
      REQUIRE(reinterpret_cast<launch_fn>(fn)(reinterpret_cast<CUfunction>(func), 1, 1, 1, 1, 1, 1,
                                              0, nullptr, nullptr, nullptr) == CUDA_SUCCESS);
    }
    CUDA_OK(cudaDeviceSynchronize());
    finish(source);

    const auto kernels = sink.ops_named("empty_kernel");
    CHECK(kernels.size() == n);
    for (const auto& k : kernels) {
      const launch_event* l = sink.launch_of(k.op.correlation_id);
      REQUIRE(l != nullptr);
      CHECK_MESSAGE((l->thread == std::this_thread::get_id()),
                    "launch announced on another thread");
      CHECK(l->kind == ds::launch_kind::kernel);
      CHECK(sink.aliases.count(k.op.correlation_id) == 0);  // nothing around a driver call
    }
  }

  TEST_CASE("copies and sets are recorded with direction, bytes and their launch") {
    constexpr std::size_t big = std::size_t{1} << 20, small = 64 << 10, set_bytes = 4096;
    void* host_pinned = nullptr;
    void *dev_a = nullptr, *dev_b = nullptr;
    std::vector<char> pageable(small, 1);
    CUDA_OK(cudaMallocHost(&host_pinned, big));
    CUDA_OK(cudaMalloc(&dev_a, big));
    CUDA_OK(cudaMalloc(&dev_b, big));
    cudaStream_t stream = nullptr;
    CUDA_OK(cudaStreamCreate(&stream));

    recording_sink sink;
    ds::cupti_source source;
    start_or_skip(source, sink);
    CUDA_OK(cudaMemcpyAsync(dev_a, host_pinned, big, cudaMemcpyHostToDevice, stream));
    CUDA_OK(cudaMemcpyAsync(dev_b, dev_a, big, cudaMemcpyDeviceToDevice, stream));
    CUDA_OK(cudaMemcpyAsync(host_pinned, dev_b, big, cudaMemcpyDeviceToHost, stream));
    CUDA_OK(cudaMemsetAsync(dev_a, 0, set_bytes, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaMemcpy(dev_a, pageable.data(), small, cudaMemcpyHostToDevice));
    CUDA_OK(cudaDeviceSynchronize());
    finish(source);

    auto one = [&](const char* name, std::size_t bytes, ds::op_kind kind, ds::launch_kind launch) {
      CAPTURE(name);
      std::vector<op_event> found;
      for (const auto& o : sink.ops) {
        if (o.name == name && o.op.bytes == bytes) found.push_back(o);
      }
      REQUIRE(found.size() == 1);
      CHECK(found[0].op.kind == kind);
      CHECK(found[0].op.end_ns >= found[0].op.start_ns);
      const launch_event* l = sink.launch_of(found[0].op.correlation_id);
      REQUIRE(l != nullptr);
      CHECK(l->kind == launch);
      CHECK_MESSAGE((l->thread == std::this_thread::get_id()),
                    "launch announced on another thread");
    };
    one("memcpy HtoD", big, ds::op_kind::memcpy, ds::launch_kind::memcpy);
    one("memcpy DtoD", big, ds::op_kind::memcpy, ds::launch_kind::memcpy);
    one("memcpy DtoH", big, ds::op_kind::memcpy, ds::launch_kind::memcpy);
    one("memset", set_bytes, ds::op_kind::memset, ds::launch_kind::memset);
    one("memcpy HtoD", small, ds::op_kind::memcpy, ds::launch_kind::memcpy);

    CUDA_OK(cudaStreamDestroy(stream));
    CUDA_OK(cudaFree(dev_a));
    CUDA_OK(cudaFree(dev_b));
    CUDA_OK(cudaFreeHost(host_pinned));
  }

  TEST_CASE("graph replays map back to the nodes created while capturing") {
    constexpr int n = 1024, replays = 3;
    float *x = nullptr, *y = nullptr;
    CUDA_OK(cudaMalloc(&x, n * sizeof(float)));
    CUDA_OK(cudaMalloc(&y, n * sizeof(float)));
    cudaStream_t stream = nullptr;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

    recording_sink sink;
    ds::cupti_source source;
    start_or_skip(source, sink);
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    add_kernel<<<n / 256, 256, 0, stream>>>(x, n);
    add_kernel<<<n / 256, 256, 0, stream>>>(x, n);
    CUDA_OK(cudaMemsetAsync(y, 0, n * sizeof(float), stream));
    CUDA_OK(cudaMemcpyAsync(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    std::set<std::uint64_t> captured;
    for (const auto& [node, thread] : sink.created) {
      captured.insert(node);
      CHECK_MESSAGE((thread == std::this_thread::get_id()), "node created on another thread");
    }
    CHECK(captured.size() == 4);  // two kernels, a set, a copy
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int i = 0; i < replays; ++i) CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    finish(source);

    CHECK(!sink.clone_of.empty());
    int created_for_clones = 0;
    for (const auto& [clone, original] : sink.clone_of) {
      if (sink.created.count(clone) && !captured.count(clone)) ++created_for_clones;
    }
    std::map<std::string, int> per_name;
    for (const auto& o : sink.ops) {
      if (o.op.graph_node_id == 0) continue;
      CAPTURE(o.name);
      ++per_name[o.op.kind == ds::op_kind::kernel ? std::string("kernel") : o.name];
      // Replayed ops carry the executable graph's node id; the clone map leads back to a
      // node created (and attributed) during capture.
      std::uint64_t node = o.op.graph_node_id;
      auto it = sink.clone_of.find(node);
      if (it != sink.clone_of.end()) node = it->second;
      CHECK(captured.count(node) == 1);
      // The graph launch is the launch-time parent of every replayed op.
      const launch_event* l = sink.launch_of(o.op.correlation_id);
      REQUIRE(l != nullptr);
      CHECK(l->kind == ds::launch_kind::graph);
    }
    CHECK(per_name["kernel"] == 2 * replays);
    CHECK(per_name["memset"] == replays);
    CHECK(per_name["memcpy DtoD"] == replays);
    MESSAGE("graph: " << sink.created.size() << " created (" << captured.size()
                      << " during capture), " << sink.clone_of.size() << " cloned, "
                      << created_for_clones << " clones also reported as created");

    CUDA_OK(cudaGraphExecDestroy(exec));
    CUDA_OK(cudaGraphDestroy(graph));
    CUDA_OK(cudaStreamDestroy(stream));
    CUDA_OK(cudaFree(x));
    CUDA_OK(cudaFree(y));
  }

  TEST_CASE("record timestamps are in the host clock") {
    recording_sink sink;
    ds::cupti_source source;
    start_or_skip(source, sink);
    const std::uint64_t before = ds::now_ns();
    spin_kernel<<<1, 1>>>(50'000);
    CUDA_OK(cudaDeviceSynchronize());
    const std::uint64_t after = ds::now_ns();
    finish(source);
    const auto spins = sink.ops_named("spin_kernel");
    REQUIRE(spins.size() == 1);
    CHECK(spins[0].op.start_ns >= before);
    CHECK(spins[0].op.end_ns <= after);
    MESSAGE("host before -> kernel start " << (spins[0].op.start_ns - before)
                                           << " ns; kernel end -> host after "
                                           << (after - spins[0].op.end_ns) << " ns");
  }

  TEST_CASE("a 200 us spin kernel is measured within 2%") {
    recording_sink sink;
    ds::cupti_source source;
    start_or_skip(source, sink);
    constexpr unsigned long long spin_ns = 200'000;
    constexpr int runs = 5;
    for (int i = 0; i < runs; ++i) spin_kernel<<<1, 1>>>(spin_ns);
    CUDA_OK(cudaDeviceSynchronize());
    finish(source);
    const auto spins = sink.ops_named("spin_kernel");
    REQUIRE(spins.size() == runs);
    for (const auto& s : spins) {
      const double d = double(s.op.end_ns - s.op.start_ns);
      CAPTURE(d);
      CHECK(d >= spin_ns * 0.98);
      CHECK(d <= spin_ns * 1.02);
    }
  }

  TEST_CASE("another CUPTI subscriber is named, in either order") {
    auto dummy_callback = [](void*, CUpti_CallbackDomain, CUpti_CallbackId, const void*) {};
    char old_name[256] = {};
    CUpti_SubscriberParams params{};
    params.structSize = CUpti_SubscriberParams_STRUCT_SIZE;
    params.subscriberName = "diffscope-test-dummy";
    params.oldSubscriberName = old_name;
    params.oldSubscriberSize = sizeof old_name;
    CUpti_SubscriberHandle dummy = nullptr;

    SUBCASE("the other tool first: start() fails and names it") {
      REQUIRE(cuptiSubscribe_v2(&dummy, dummy_callback, nullptr, &params) == CUPTI_SUCCESS);
      recording_sink sink;
      ds::cupti_source source;
      const auto r = source.start(sink);
      CHECK_FALSE(r.ok);
      CHECK(r.holder.find("diffscope-test-dummy") != std::string::npos);
      CHECK(r.reason.find("CUPTI held by") != std::string::npos);
      CHECK_FALSE(source.running());
      MESSAGE("start() with another subscriber: " << r.reason);
      REQUIRE(cuptiUnsubscribe(dummy) == CUPTI_SUCCESS);
      // Once the other tool is gone we can start.
      const auto again = source.start(sink);
      CHECK(again.ok);
      finish(source);
    }
    SUBCASE("diffscope first: the other tool is refused and told who holds CUPTI") {
      recording_sink sink;
      ds::cupti_source source;
      start_or_skip(source, sink);
      CHECK(cuptiSubscribe_v2(&dummy, dummy_callback, nullptr, &params) ==
            CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED);
      CHECK(std::string(old_name).find("diffscope") != std::string::npos);
      MESSAGE("the other tool was told: " << old_name);
      empty_kernel<<<1, 1>>>();
      CUDA_OK(cudaDeviceSynchronize());
      finish(source);
      CHECK(sink.ops_named("empty_kernel").size() == 1);  // ours kept working
    }
  }

  TEST_CASE("the source starts and stops repeatedly") {
    ds::cupti_source source;
    for (int cycle = 0; cycle < 3; ++cycle) {
      CAPTURE(cycle);
      recording_sink sink;
      start_or_skip(source, sink);
      for (int i = 0; i < 10; ++i) empty_kernel<<<1, 1>>>();
      CUDA_OK(cudaDeviceSynchronize());
      finish(source);
      CHECK(sink.ops_named("empty_kernel").size() == 10);
      // Stopped: launches are not announced to anyone.
      empty_kernel<<<1, 1>>>();
      CUDA_OK(cudaDeviceSynchronize());
      CHECK(sink.launches.size() == 10);
    }
  }

  TEST_CASE("flush(true) delivers work still running on the GPU") {
    recording_sink sink;
    ds::cupti_source source;
    start_or_skip(source, sink);
    spin_kernel<<<1, 1>>>(20'000'000);  // 20 ms, not waited for
    finish(source);
    const auto spins = sink.ops_named("spin_kernel");
    REQUIRE(spins.size() == 1);
    CHECK(spins[0].op.end_ns - spins[0].op.start_ns >= 19'000'000);
    CHECK(ds::snapshot(source.counters()).bad_timestamps == 0);
  }

  // Run by the next test in a child process: exits with work in flight, and the exit hook
  // (registered through CUPTI's first context callback) must still see all of it.
  TEST_CASE("exit hook child" * doctest::skip()) {
    auto* sink = new recording_sink;  // leaked on purpose: used until the very end
    auto* source = new ds::cupti_source;
    start_or_skip(*source, *sink);
    ds::cupti_source::set_exit_hook([sink, source] {
      source->flush(true);
      source->stop();
      const auto c = ds::snapshot(source->counters());
      std::printf("exit-hook kernels=%zu spin=%zu bad_timestamps=%llu\n",
                  sink->ops_named("empty_kernel").size(), sink->ops_named("spin_kernel").size(),
                  static_cast<unsigned long long>(c.bad_timestamps));
      std::fflush(stdout);
    });
    for (int i = 0; i < 10; ++i) empty_kernel<<<1, 1>>>();
    spin_kernel<<<1, 1>>>(20'000'000);
    std::exit(0);
  }

  TEST_CASE("at process exit the hook runs before CUDA tears down and sees in-flight work") {
    char self[4096] = {};
    const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(len > 0);
    const std::string cmd = std::string("'") + self + "' --no-skip -tc='exit hook child' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    const int status = pclose(p);
    CAPTURE(out);
    CHECK(status == 0);
    CHECK(out.find("exit-hook kernels=10 spin=1 bad_timestamps=0") != std::string::npos);
  }
}
