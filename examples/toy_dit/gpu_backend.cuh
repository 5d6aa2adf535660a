// toy_dit: the GPU backend. Our own simple fp32 kernels, launched on a non-blocking stream
// (plus a second one for --streams 2). Nothing here synchronises the device except reading
// a result back to the host: diffscope measures the queued work from device timestamps.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "model.hpp"

#define TOY_DIT_CUDA(call) ::toy_dit::check_cuda((call), #call, __FILE__, __LINE__)

namespace toy_dit {

inline void check_cuda(cudaError_t err, const char* what, const char* file, int line) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                             cudaGetErrorString(err));
  }
}

// ---------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------

inline constexpr int gemm_tile_m = 64, gemm_tile_n = 64, gemm_tile_k = 16;
inline constexpr int gemm_threads = 256;  // 16 x 16 threads, 4 x 4 outputs each

/// out = act(a * b) + residual, a: m x k, b: k x n, row-major. Shared-memory tiles of
/// 64 x 16 (a, stored transposed) and 16 x 64 (b); each thread owns a 4 x 4 strided patch
/// of the 64 x 64 output tile, so both the tile loads and the stores are coalesced.
/// out may alias residual: every element is read and then written by the same thread.
__global__ void sgemm_kernel(float* out, const float* __restrict__ a, const float* __restrict__ b,
                             int m, int n, int k, activation act, const float* residual) {
  // +1 column: the transposing store below is 2-way instead of 16-way bank-conflicted.
  __shared__ float as[gemm_tile_k][gemm_tile_m + 1];
  __shared__ float bs[gemm_tile_k][gemm_tile_n];
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % 16, ty = tid / 16;
  const int row0 = static_cast<int>(blockIdx.y) * gemm_tile_m;
  const int col0 = static_cast<int>(blockIdx.x) * gemm_tile_n;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < k; k0 += gemm_tile_k) {
    for (int e = tid; e < gemm_tile_m * gemm_tile_k; e += gemm_threads) {
      const int r = e / gemm_tile_k, c = e % gemm_tile_k;
      const int gr = row0 + r, gc = k0 + c;
      as[c][r] = (gr < m && gc < k) ? a[static_cast<std::size_t>(gr) * k + gc] : 0.0f;
    }
    for (int e = tid; e < gemm_tile_k * gemm_tile_n; e += gemm_threads) {
      const int r = e / gemm_tile_n, c = e % gemm_tile_n;
      const int gr = k0 + r, gc = col0 + c;
      bs[r][c] = (gr < k && gc < n) ? b[static_cast<std::size_t>(gr) * n + gc] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < gemm_tile_k; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = as[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = row0 + ty + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = col0 + tx + 16 * j;
      if (r < m && c < n) {
        float v = acc[i][j];
        if (act == activation::gelu) v = gelu(v);
        if (act == activation::tanh) v = tanhf(v);
        const std::size_t idx = static_cast<std::size_t>(r) * n + c;
        out[idx] = residual ? v + residual[idx] : v;
      }
    }
  }
}

__device__ inline float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

/// One warp per row: out = x / rms(x) * gain (+ shift).
__global__ void rms_norm_kernel(float* __restrict__ out, const float* __restrict__ x,
                                const float* __restrict__ gain, const float* __restrict__ shift,
                                int rows, int cols) {
  const int warp = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (warp >= rows) return;  // whole warps exit together: the shuffles stay convergent
  const float* xr = x + static_cast<std::size_t>(warp) * cols;
  float* orow = out + static_cast<std::size_t>(warp) * cols;
  float ss = 0;
  for (int c = lane; c < cols; c += 32) ss += xr[c] * xr[c];
  const float inv = rsqrtf(warp_sum(ss) / static_cast<float>(cols) + norm_eps);
  for (int c = lane; c < cols; c += 32) orow[c] = xr[c] * inv * gain[c] + (shift ? shift[c] : 0.0f);
}

/// One warp per (token, q|k, head): RMSNorm over the head dimension, then RoPE on pairs.
__global__ void qk_norm_rope_kernel(float* qkv, const float* __restrict__ q_gain,
                                    const float* __restrict__ k_gain,
                                    const float* __restrict__ cos_table,
                                    const float* __restrict__ sin_table, int tokens, int heads,
                                    int head_dim) {
  const int warp = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (warp >= tokens * 2 * heads) return;
  const int h = warp % heads, which = (warp / heads) % 2, t = warp / (2 * heads);
  const int dim = heads * head_dim, half = head_dim / 2;
  float* v = qkv + static_cast<std::size_t>(t) * 3 * dim + which * dim + h * head_dim;
  const float* gain = which == 0 ? q_gain : k_gain;
  float ss = 0;
  for (int i = lane; i < head_dim; i += 32) ss += v[i] * v[i];
  // Every lane has read its elements before the shuffle, so rewriting in place is safe.
  const float inv = rsqrtf(warp_sum(ss) / static_cast<float>(head_dim) + norm_eps);
  const float* c = cos_table + static_cast<std::size_t>(t) * half;
  const float* s = sin_table + static_cast<std::size_t>(t) * half;
  for (int i = lane; i < half; i += 32) {
    const float x0 = v[2 * i] * inv * gain[2 * i];
    const float x1 = v[2 * i + 1] * inv * gain[2 * i + 1];
    v[2 * i] = x0 * c[i] - x1 * s[i];
    v[2 * i + 1] = x0 * s[i] + x1 * c[i];
  }
}

inline constexpr int attn_queries = 64;  // queries per block, one per thread
inline constexpr int attn_keys = 32;     // keys per shared-memory tile

/// Flash-style attention, one thread per query row and head: K/V tiles of 32 keys are
/// staged in shared memory, and the softmax is accumulated online (running max and sum),
/// so memory stays O(tokens) for any length. MaxHd bounds head_dim at compile time so the
/// fully unrolled head-dimension loops keep q and the accumulator in registers; a tile's
/// scores go to shared memory, which keeps the key loops rolled (and compile times short).
template <int MaxHd>
__global__ void __launch_bounds__(attn_queries)
    attention_kernel(float* __restrict__ out, const float* __restrict__ qkv, int tokens, int heads,
                     int head_dim, float scale) {
  __shared__ float ks[attn_keys][MaxHd];
  __shared__ float vs[attn_keys][MaxHd];
  __shared__ float scores[attn_queries][attn_keys + 1];  // +1: no bank conflicts
  const int tid = static_cast<int>(threadIdx.x);
  const int h = static_cast<int>(blockIdx.y);
  const int qi = static_cast<int>(blockIdx.x) * attn_queries + tid;
  const int dim = heads * head_dim;
  const std::size_t ld = 3 * static_cast<std::size_t>(dim);
  const bool active = qi < tokens;

  float q[MaxHd], acc[MaxHd];
#pragma unroll
  for (int d = 0; d < MaxHd; ++d) {
    q[d] = (active && d < head_dim) ? qkv[qi * ld + h * head_dim + d] * scale : 0.0f;
    acc[d] = 0.0f;
  }
  float running_max = -INFINITY, running_sum = 0.0f;

  for (int k0 = 0; k0 < tokens; k0 += attn_keys) {
    const int nk = min(attn_keys, tokens - k0);
    for (int e = tid; e < nk * head_dim; e += attn_queries) {
      const int r = e / head_dim, d = e % head_dim;
      const std::size_t base = (k0 + r) * ld + h * head_dim + d;
      ks[r][d] = qkv[base + dim];
      vs[r][d] = qkv[base + 2 * static_cast<std::size_t>(dim)];
    }
    __syncthreads();
    if (active) {
      float tile_max = -INFINITY;
      for (int j = 0; j < nk; ++j) {
        float dot = 0.0f;
#pragma unroll
        for (int d = 0; d < MaxHd; ++d) {
          if (d < head_dim) dot += q[d] * ks[j][d];
        }
        scores[tid][j] = dot;
        tile_max = fmaxf(tile_max, dot);
      }
      const float new_max = fmaxf(running_max, tile_max);    // finite: nk >= 1
      const float correction = expf(running_max - new_max);  // 0 on the first tile
      running_sum *= correction;
#pragma unroll
      for (int d = 0; d < MaxHd; ++d) acc[d] *= correction;
      for (int j = 0; j < nk; ++j) {
        const float p = expf(scores[tid][j] - new_max);
        running_sum += p;
#pragma unroll
        for (int d = 0; d < MaxHd; ++d) {
          if (d < head_dim) acc[d] += p * vs[j][d];
        }
      }
      running_max = new_max;
    }
    __syncthreads();
  }
  if (active) {
    float* o = out + static_cast<std::size_t>(qi) * dim + h * head_dim;
#pragma unroll
    for (int d = 0; d < MaxHd; ++d) {
      if (d < head_dim) o[d] = acc[d] / running_sum;
    }
  }
}

/// One thread per column: out = mean over rows.
__global__ void mean_rows_kernel(float* __restrict__ out, const float* __restrict__ x, int rows,
                                 int cols) {
  const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= cols) return;
  float s = 0;
  for (int r = 0; r < rows; ++r) s += x[static_cast<std::size_t>(r) * cols + c];
  out[c] = s / static_cast<float>(rows);
}

__global__ void add_row_vector_kernel(float* __restrict__ out, const float* __restrict__ x,
                                      const float* __restrict__ v, int rows, int cols) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  for (std::size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    out[i] = x[i] + v[i % cols];
  }
}

__global__ void euler_step_kernel(float* __restrict__ x, const float* __restrict__ v, float dt,
                                  std::size_t n) {
  for (std::size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    x[i] += dt * v[i];
  }
}

__global__ void probe_kernel(int* out) {
  *out = 42;
}

// ---------------------------------------------------------------------------------------
// Device selection
// ---------------------------------------------------------------------------------------

/// Checks that a CUDA device exists and runs our code. Returns "" and the device name, or
/// the reason the GPU path cannot be used. Called once, before any diffscope range.
inline std::string probe_gpu(std::string& device_name) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  if (count < 1) return "cudaGetDeviceCount found no device";
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  device_name = prop.name;
  int* d_out = nullptr;
  err = cudaMalloc(&d_out, sizeof(int));
  if (err != cudaSuccess) return std::string("cudaMalloc: ") + cudaGetErrorString(err);
  probe_kernel<<<1, 1>>>(d_out);
  err = cudaGetLastError();
  int value = 0;
  if (err == cudaSuccess) err = cudaMemcpy(&value, d_out, sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(d_out);
  if (err != cudaSuccess) {
    return "test kernel failed on " + device_name + " (sm_" + std::to_string(prop.major) +
           std::to_string(prop.minor) + "): " + cudaGetErrorString(err);
  }
  if (value != 42) return "test kernel on " + device_name + " returned a wrong value";
  return "";
}

// ---------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------

class gpu_backend {
 public:
  explicit gpu_backend(int streams, bool step_events = false) : step_events_(step_events) {
    TOY_DIT_CUDA(cudaStreamCreateWithFlags(&main_, cudaStreamNonBlocking));
#ifdef DIFFSCOPE_TOY_DIT_WITH_COLLECTOR
    // Perf mode times scopes with events on one stream: ours, not the default stream.
    diffscope::set_timing_stream(main_);
#endif
    if (streams > 1) {
      TOY_DIT_CUDA(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
      TOY_DIT_CUDA(cudaEventCreateWithFlags(&fork_event_, cudaEventDisableTiming));
      TOY_DIT_CUDA(cudaEventCreateWithFlags(&join_event_, cudaEventDisableTiming));
    }
    current_ = main_;
  }
  ~gpu_backend() {
    // Best effort: errors here cannot be reported better than the run already did.
#ifdef DIFFSCOPE_TOY_DIT_WITH_COLLECTOR
    diffscope::set_timing_stream(nullptr);
#endif
    for (cudaEvent_t e : step_marks_) cudaEventDestroy(e);
    for (float* p : buffers_) cudaFree(p);
    if (join_event_) cudaEventDestroy(join_event_);
    if (fork_event_) cudaEventDestroy(fork_event_);
    if (side_) cudaStreamDestroy(side_);
    if (main_) cudaStreamDestroy(main_);
  }
  gpu_backend(const gpu_backend&) = delete;
  gpu_backend& operator=(const gpu_backend&) = delete;

  float* alloc(std::size_t n) {
    float* p = nullptr;
    TOY_DIT_CUDA(cudaMalloc(&p, n * sizeof(float)));
    buffers_.push_back(p);
    return p;
  }
  float* upload(const std::vector<float>& v) {
    float* p = alloc(v.size());
    copy_from_host(p, v);
    return p;
  }
  /// Pageable source: the copy has left `src` when the call returns, so `src` may be a
  /// temporary; the device side stays ordered on the stream.
  void copy_from_host(float* dst, const std::vector<float>& src) {
    TOY_DIT_CUDA(cudaMemcpyAsync(dst, src.data(), src.size() * sizeof(float),
                                 cudaMemcpyHostToDevice, current_));
  }
  /// The one place that waits for the GPU: results must be on the host to be used.
  void copy_to_host(std::vector<float>& dst, const float* src, std::size_t n) {
    dst.resize(n);
    TOY_DIT_CUDA(
        cudaMemcpyAsync(dst.data(), src, n * sizeof(float), cudaMemcpyDeviceToHost, current_));
    TOY_DIT_CUDA(cudaStreamSynchronize(current_));
  }
  void copy(float* dst, const float* src, std::size_t n) {
    TOY_DIT_CUDA(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, current_));
  }

  /// --step-events: CUDA events around each step's work on the main stream, read after the
  /// run (the ground truth the collector's per-step times are checked against).
  void step_begin() {
    mark_step();
  }
  void step_end() {
    mark_step();
  }
  std::vector<double> step_times_ms() {
    std::vector<double> ms;
    for (std::size_t i = 0; i + 1 < step_marks_.size(); i += 2) {
      float t = 0;
      TOY_DIT_CUDA(cudaEventSynchronize(step_marks_[i + 1]));
      TOY_DIT_CUDA(cudaEventElapsedTime(&t, step_marks_[i], step_marks_[i + 1]));
      ms.push_back(t);
    }
    return ms;
  }

  /// Continue on the side stream after everything queued so far on the main stream.
  void fork() {
    if (!side_) return;
    TOY_DIT_CUDA(cudaEventRecord(fork_event_, main_));
    TOY_DIT_CUDA(cudaStreamWaitEvent(side_, fork_event_, 0));
    current_ = side_;
  }
  /// Back to the main stream, after everything queued on the side stream.
  void join() {
    if (!side_) return;
    TOY_DIT_CUDA(cudaEventRecord(join_event_, side_));
    TOY_DIT_CUDA(cudaStreamWaitEvent(main_, join_event_, 0));
    current_ = main_;
  }

  void sgemm(float* out, const float* a, const float* b, int m, int n, int k, activation act,
             const float* residual) {
    const dim3 grid(static_cast<unsigned>((n + gemm_tile_n - 1) / gemm_tile_n),
                    static_cast<unsigned>((m + gemm_tile_m - 1) / gemm_tile_m));
    sgemm_kernel<<<grid, gemm_threads, 0, current_>>>(out, a, b, m, n, k, act, residual);
    TOY_DIT_CUDA(cudaGetLastError());
  }
  void rms_norm(float* out, const float* x, const float* gain, const float* shift, int rows,
                int cols) {
    constexpr int threads = 128;  // 4 rows per block
    rms_norm_kernel<<<blocks_for(static_cast<std::size_t>(rows) * 32, threads), threads, 0,
                      current_>>>(out, x, gain, shift, rows, cols);
    TOY_DIT_CUDA(cudaGetLastError());
  }
  void qk_norm_rope(float* qkv, const float* q_gain, const float* k_gain, const float* cos_table,
                    const float* sin_table, int tokens, int heads, int head_dim) {
    constexpr int threads = 128;
    const std::size_t warps = static_cast<std::size_t>(tokens) * 2 * heads;
    qk_norm_rope_kernel<<<blocks_for(warps * 32, threads), threads, 0, current_>>>(
        qkv, q_gain, k_gain, cos_table, sin_table, tokens, heads, head_dim);
    TOY_DIT_CUDA(cudaGetLastError());
  }
  void attention(float* out, const float* qkv, int tokens, int heads, int head_dim) {
    const dim3 grid(static_cast<unsigned>((tokens + attn_queries - 1) / attn_queries),
                    static_cast<unsigned>(heads));
    const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
    if (head_dim <= 32) {
      attention_kernel<32>
          <<<grid, attn_queries, 0, current_>>>(out, qkv, tokens, heads, head_dim, scale);
    } else if (head_dim <= 64) {
      attention_kernel<64>
          <<<grid, attn_queries, 0, current_>>>(out, qkv, tokens, heads, head_dim, scale);
    } else {
      attention_kernel<max_head_dim>
          <<<grid, attn_queries, 0, current_>>>(out, qkv, tokens, heads, head_dim, scale);
    }
    TOY_DIT_CUDA(cudaGetLastError());
  }
  void mean_rows(float* out, const float* x, int rows, int cols) {
    constexpr int threads = 128;
    mean_rows_kernel<<<blocks_for(static_cast<std::size_t>(cols), threads), threads, 0, current_>>>(
        out, x, rows, cols);
    TOY_DIT_CUDA(cudaGetLastError());
  }
  void add_row_vector(float* out, const float* x, const float* v, int rows, int cols) {
    constexpr int threads = 256;
    add_row_vector_kernel<<<blocks_for(static_cast<std::size_t>(rows) * cols, threads), threads, 0,
                            current_>>>(out, x, v, rows, cols);
    TOY_DIT_CUDA(cudaGetLastError());
  }
  void euler_step(float* x, const float* v, float dt, std::size_t n) {
    constexpr int threads = 256;
    euler_step_kernel<<<blocks_for(n, threads), threads, 0, current_>>>(x, v, dt, n);
    TOY_DIT_CUDA(cudaGetLastError());
  }

 private:
  /// Enough blocks to cover n threads (the command line bounds sizes so this fits gridDim.x).
  static unsigned blocks_for(std::size_t n, int threads) {
    const std::size_t blocks = (n + static_cast<std::size_t>(threads) - 1) / threads;
    return static_cast<unsigned>(blocks == 0 ? 1 : blocks);
  }

  void mark_step() {
    if (!step_events_) return;
    cudaEvent_t e = nullptr;
    TOY_DIT_CUDA(cudaEventCreate(&e));
    step_marks_.push_back(e);
    TOY_DIT_CUDA(cudaEventRecord(e, main_));
  }

  bool step_events_ = false;
  std::vector<cudaEvent_t> step_marks_;
  cudaStream_t main_ = nullptr, side_ = nullptr, current_ = nullptr;
  cudaEvent_t fork_event_ = nullptr, join_event_ = nullptr;
  std::vector<float*> buffers_;
};

}  // namespace toy_dit
