// diffscope_ext: the operator library (TORCH_LIBRARY, no pybind, no Python headers) and its
// CPU kernels. Load with torch.ops.load_library(path); the ops are then
//   torch.ops.diffscope_ext.rms_norm_rope(x, weight, cos, sin, eps=1e-6) -> Tensor
//   torch.ops.diffscope_ext.nvtx_range_push(name) -> int   (default NVTX domain)
//   torch.ops.diffscope_ext.nvtx_range_pop() -> int
//   torch.ops.diffscope_ext.has_cuda_kernel() -> bool
// The NVTX pair is a real NVTX client for builds of torch without torch.cuda.nvtx (CPU
// wheels): dit_loop.py falls back to it so its stage and step ranges still reach the tool.
#include <cmath>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <diffscope/scope.hpp>

#include "norm_rope.hpp"

namespace diffscope_ext {

namespace {

template <typename scalar_t>
void norm_rope_rows(const scalar_t* x, scalar_t* out, const float* weight, const float* cos,
                    const float* sin, std::int64_t tokens, std::int64_t heads, std::int64_t sb,
                    std::int64_t st, std::int64_t sh, std::int64_t half, float eps,
                    std::int64_t begin, std::int64_t end) {
  for (std::int64_t row = begin; row < end; ++row) {
    const std::int64_t h = row % heads, t = (row / heads) % tokens, b = row / (heads * tokens);
    const scalar_t* xr = x + b * sb + t * st + h * sh;
    scalar_t* o = out + row * 2 * half;
    float ss = 0.f;
    for (std::int64_t i = 0; i < 2 * half; ++i) {
      const float v = static_cast<float>(xr[i]);
      ss += v * v;
    }
    const float r = 1.f / std::sqrt(ss / static_cast<float>(2 * half) + eps);
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (std::int64_t i = 0; i < half; ++i) {
      const float lo = static_cast<float>(xr[i]) * r * weight[i];
      const float hi = static_cast<float>(xr[i + half]) * r * weight[i + half];
      o[i] = static_cast<scalar_t>(lo * c[i] - hi * s[i]);
      o[i + half] = static_cast<scalar_t>(hi * c[i] + lo * s[i]);
    }
  }
}

at::Tensor rms_norm_rope_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                             const at::Tensor& sin, double eps) {
  DIFFSCOPE_NORM_ROPE(norm_rope_scope_name);
  check_norm_rope_inputs(x, weight, cos, sin);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  const std::int64_t tokens = x.size(1), heads = x.size(2), half = x.size(3) / 2;
  const std::int64_t rows = x.size(0) * tokens * heads;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kBFloat16, at::kHalf, x.scalar_type(), "rms_norm_rope_cpu", [&] {
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        scalar_t* op = out.mutable_data_ptr<scalar_t>();
        const float* wp = weight.const_data_ptr<float>();
        const float* cp = cos.const_data_ptr<float>();
        const float* sp = sin.const_data_ptr<float>();
        const std::int64_t sb = x.stride(0), st = x.stride(1), sh = x.stride(2);
        at::parallel_for(0, rows, 64, [&](std::int64_t b, std::int64_t e) {
          norm_rope_rows(xp, op, wp, cp, sp, tokens, heads, sb, st, sh, half,
                         static_cast<float>(eps), b, e);
        });
      });
  return out;
}

std::int64_t nvtx_range_push(std::string name) {
#ifndef DIFFSCOPE_DISABLE
  return nvtxRangePushA(name.c_str());
#else
  (void)name;
  return -1;
#endif
}

std::int64_t nvtx_range_pop() {
#ifndef DIFFSCOPE_DISABLE
  return nvtxRangePop();
#else
  return -1;
#endif
}

bool has_cuda_kernel() {
#ifdef DIFFSCOPE_EXT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

}  // namespace diffscope_ext

TORCH_LIBRARY(diffscope_ext, m) {
  m.def("rms_norm_rope(Tensor x, Tensor weight, Tensor cos, Tensor sin, float eps=1e-6) -> Tensor");
  m.def("nvtx_range_push(str name) -> int", &diffscope_ext::nvtx_range_push);
  m.def("nvtx_range_pop() -> int", &diffscope_ext::nvtx_range_pop);
  m.def("has_cuda_kernel() -> bool", &diffscope_ext::has_cuda_kernel);
}

TORCH_LIBRARY_IMPL(diffscope_ext, CPU, m) {
  m.impl("rms_norm_rope", &diffscope_ext::rms_norm_rope_cpu);
}
