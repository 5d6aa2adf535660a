// diffscope: what the collector reads from the device and the host for the results: device
// memory checkpoints and the environment (host, ranks, GPU, driver, runtime, CUPTI).
// Part of collector.hpp's implementation (collector/state.hpp says why it includes it first).
#include <diffscope/collector.hpp>

#ifndef DIFFSCOPE_COLLECTOR_ENVIRONMENT_HPP
#define DIFFSCOPE_COLLECTOR_ENVIRONMENT_HPP

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <cuda_runtime_api.h>
#include <cupti.h>

#include <diffscope/capture/cupti_source.hpp>
#include <diffscope/collector/state.hpp>
#include <diffscope/config.hpp>
#include <diffscope/results.hpp>

namespace diffscope::detail {

/// Device memory in use now on the current device, when its context exists (never creates
/// one: the collector must not change what the program does).
inline void take_memory_checkpoint(collector_state& st, const std::string& name) {
  if (!st.gpu_ok) return;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  if (!primary_context_active(device).value_or(st.cupti.counters().contexts_created.load() > 0))
    return;
  std::size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  std::lock_guard<std::mutex> g(st.memory_mutex);
  memory_checkpoint m;
  m.name = name;
  m.device = static_cast<std::uint32_t>(device);
  m.used_mb = static_cast<double>(total_b - free_b) / (1024.0 * 1024.0);
  st.peak_used_mb = std::max(st.peak_used_mb, m.used_mb);
  m.peak_used_mb = st.peak_used_mb;
  st.memory.push_back(m);
}

inline environment_info read_environment(const collector_state& st) {
  environment_info e;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) e.hostname = host;
  e.pid = static_cast<std::int64_t>(getpid());
  // -1: unset (or not a number, reported once); counts below 2^30 by the table.
  auto int_env = [](std::optional<std::uint64_t> v) { return v ? static_cast<int>(*v) : -1; };
  e.rank = int_env(config::rank());
  e.world_size = int_env(config::count("WORLD_SIZE"));
  e.local_rank = int_env(config::count("LOCAL_RANK"));
  if (st.gpu_ok) {
    int n = 0;
    if (cudaGetDeviceCount(&n) == cudaSuccess) e.device_count = n;
    cudaDeviceProp prop{};
    if (n > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) e.gpu_name = prop.name;
    cudaDriverGetVersion(&e.driver_version);
    cudaGetLastError();
  }
  cudaRuntimeGetVersion(&e.runtime_version);
  std::uint32_t v = 0;
  if (st.cupti_status.ok && cuptiGetVersion(&v) == CUPTI_SUCCESS) e.cupti_version = v;
  return e;
}

}  // namespace diffscope::detail

#endif  // DIFFSCOPE_COLLECTOR_ENVIRONMENT_HPP
