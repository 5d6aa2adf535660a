// diffscope_ext: the CUDA kernel of rms_norm_rope (see norm_rope.hpp for the math).
// One warp per (batch, token, head) row: each lane holds up to 4 rotary pairs (i, i + D/2)
// in registers, the sum of squares is a warp shuffle reduction, and the row is written once.
// Launched on PyTorch's current stream, inside a DIFFSCOPE_NORM_ROPE scope, so the diffscope
// collector attributes the kernel to "fused_rms_norm_rope" under whatever range is open
// (a denoise step pushed from Python with torch.cuda.nvtx).
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <diffscope/scope.hpp>

#include "norm_rope.hpp"

namespace diffscope_ext {

namespace {

constexpr int warps_per_block = 8;
constexpr int pairs_per_lane = static_cast<int>(max_head_dim / 2 / 32);

template <typename scalar_t>
__global__ void __launch_bounds__(warps_per_block * 32)
    rms_norm_rope_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                         const float* __restrict__ weight, const float* __restrict__ cos,
                         const float* __restrict__ sin, std::int64_t rows, std::int64_t tokens,
                         std::int64_t heads, std::int64_t sb, std::int64_t st, std::int64_t sh,
                         int half, float eps) {
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const std::int64_t row =
      static_cast<std::int64_t>(blockIdx.x) * warps_per_block + (threadIdx.x >> 5);
  if (row >= rows) return;  // the whole warp leaves together: row is per warp
  const std::int64_t h = row % heads, t = (row / heads) % tokens, b = row / (heads * tokens);
  const scalar_t* xr = x + b * sb + t * st + h * sh;

  float lo[pairs_per_lane], hi[pairs_per_lane];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < pairs_per_lane; ++j) {
    const int p = lane + 32 * j;
    lo[j] = p < half ? static_cast<float>(xr[p]) : 0.f;
    hi[j] = p < half ? static_cast<float>(xr[p + half]) : 0.f;
    ss += lo[j] * lo[j] + hi[j] * hi[j];
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, offset);
  const float r = rsqrtf(ss / static_cast<float>(2 * half) + eps);

  scalar_t* o = out + row * 2 * half;
  const float* c = cos + t * half;
  const float* s = sin + t * half;
#pragma unroll
  for (int j = 0; j < pairs_per_lane; ++j) {
    const int p = lane + 32 * j;
    if (p < half) {
      const float a = lo[j] * r * weight[p];
      const float bb = hi[j] * r * weight[p + half];
      o[p] = static_cast<scalar_t>(a * c[p] - bb * s[p]);
      o[p + half] = static_cast<scalar_t>(bb * c[p] + a * s[p]);
    }
  }
}

at::Tensor rms_norm_rope_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                              const at::Tensor& sin, double eps) {
  DIFFSCOPE_NORM_ROPE(norm_rope_scope_name);
  check_norm_rope_inputs(x, weight, cos, sin);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  const std::int64_t tokens = x.size(1), heads = x.size(2);
  const std::int64_t rows = x.size(0) * tokens * heads;
  if (rows == 0) return out;
  const int half = static_cast<int>(x.size(3) / 2);
  const unsigned blocks = static_cast<unsigned>((rows + warps_per_block - 1) / warps_per_block);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kBFloat16, at::kHalf, x.scalar_type(), "rms_norm_rope_cuda", [&] {
        rms_norm_rope_kernel<scalar_t><<<blocks, warps_per_block * 32, 0, stream>>>(
            x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
            weight.const_data_ptr<float>(), cos.const_data_ptr<float>(),
            sin.const_data_ptr<float>(), rows, tokens, heads, x.stride(0), x.stride(1), x.stride(2),
            half, static_cast<float>(eps));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return out;
}

}  // namespace

}  // namespace diffscope_ext

TORCH_LIBRARY_IMPL(diffscope_ext, CUDA, m) {
  m.impl("rms_norm_rope", &diffscope_ext::rms_norm_rope_cuda);
}
