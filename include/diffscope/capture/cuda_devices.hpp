// diffscope: the CUDA devices as the CUPTI source and the collector see them: whether a
// device's primary context is active (never creating one), and waiting for the active ones.
#pragma once

#include <optional>

#include <cuda.h>
#include <cuda_runtime_api.h>

namespace diffscope::detail {

/// Whether device `device`'s primary context is active, asked of the driver through the
/// runtime's entry-point query (no libcuda link needed, never creates a context). Empty when
/// the driver cannot be asked.
inline std::optional<bool> primary_context_active(int device) {
  using get_state_fn = CUresult(CUDAAPI*)(CUdevice, unsigned int*, int*);
  using device_get_fn = CUresult(CUDAAPI*)(CUdevice*, int);
  struct entry_points {
    get_state_fn get_state = nullptr;
    device_get_fn device_get = nullptr;
  };
  static const entry_points fns = [] {
    entry_points e;
    void* get_state = nullptr;
    void* device_get = nullptr;
    cudaDriverEntryPointQueryResult q1{}, q2{};
    const cudaError_t before = cudaPeekAtLastError();
    if (cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &get_state, 12000,
                                         cudaEnableDefault, &q1) == cudaSuccess &&
        q1 == cudaDriverEntryPointSuccess &&
        cudaGetDriverEntryPointByVersion("cuDeviceGet", &device_get, 12000, cudaEnableDefault,
                                         &q2) == cudaSuccess &&
        q2 == cudaDriverEntryPointSuccess) {
      e.get_state = reinterpret_cast<get_state_fn>(get_state);
      e.device_get = reinterpret_cast<device_get_fn>(device_get);
    } else if (before == cudaSuccess) {
      cudaGetLastError();
    }
    return e;
  }();
  if (fns.get_state == nullptr) return std::nullopt;
  CUdevice dev{};
  unsigned int flags = 0;
  int is_active = 0;
  if (fns.device_get(&dev, device) != CUDA_SUCCESS ||
      fns.get_state(dev, &flags, &is_active) != CUDA_SUCCESS)
    return std::nullopt;
  return is_active != 0;
}

/// Waits for every device with an active primary context. Queried through the driver's
/// cuDevicePrimaryCtxGetState (via the runtime's entry-point lookup, so no -lcuda) so that
/// a device the program never used is not given a context here. The calling thread's
/// current device and the runtime's last error are restored.
inline void synchronize_devices() {
  const cudaError_t before = cudaPeekAtLastError();
  int count = 0, current = -1;
  bool any_error = cudaGetDeviceCount(&count) != cudaSuccess;
  any_error |= cudaGetDevice(&current) != cudaSuccess;
  for (int d = 0; d < count; ++d) {
    if (!primary_context_active(d).value_or(d == current)) continue;
    any_error |= cudaSetDevice(d) != cudaSuccess;
    any_error |= cudaDeviceSynchronize() != cudaSuccess;
  }
  if (current >= 0) any_error |= cudaSetDevice(current) != cudaSuccess;
  if (any_error && before == cudaSuccess) cudaGetLastError();
}

}  // namespace diffscope::detail
