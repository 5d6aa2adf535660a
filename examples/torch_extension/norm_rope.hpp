// Fused RMSNorm + rotary embedding on [batch, tokens, heads, head_dim] tensors: the shared
// argument checks and the scope name both kernels (CPU, CUDA) report under.
//
//   y = x * rsqrt(mean(x^2 over head_dim) + eps) * weight
//   out[..., i]        = y[i] * cos[t, i] - y[i + D/2] * sin[t, i]      (i < D/2,
//   out[..., i + D/2]  = y[i + D/2] * cos[t, i] + y[i] * sin[t, i]       "rotate half")
//
// x: bf16, fp16 or fp32, any strides over batch/tokens/heads but contiguous head_dim (q and
// k straight out of a fused QKV projection are such views); weight: fp32 [head_dim];
// cos, sin: fp32 [tokens, head_dim / 2], contiguous. Math in fp32; the result is a new
// contiguous tensor of x's dtype. Nothing is converted implicitly: a conversion would be a
// hidden kernel launch inside the measured scope, so wrong dtypes are an error.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace diffscope_ext {

/// The name both kernels open with DIFFSCOPE_NORM_ROPE: what the perf dump's scope paths end in.
inline constexpr char norm_rope_scope_name[] = "fused_rms_norm_rope";

/// Largest head_dim the CUDA kernel keeps in registers (4 pairs per lane of a warp).
inline constexpr std::int64_t max_head_dim = 256;

inline void check_norm_rope_inputs(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4, "rms_norm_rope: x must be [batch, tokens, heads, head_dim], got ",
              x.sizes());
  const std::int64_t tokens = x.size(1), head_dim = x.size(3);
  TORCH_CHECK(head_dim % 2 == 0 && head_dim > 0 && head_dim <= max_head_dim,
              "rms_norm_rope: head_dim must be even and at most ", max_head_dim, ", got ",
              head_dim);
  TORCH_CHECK(x.stride(3) == 1, "rms_norm_rope: x's head_dim must be contiguous");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf ||
                  x.scalar_type() == at::kFloat,
              "rms_norm_rope: x must be bf16, fp16 or fp32, got ", x.scalar_type());
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == head_dim && weight.is_contiguous() &&
                  weight.scalar_type() == at::kFloat,
              "rms_norm_rope: weight must be a contiguous fp32 [", head_dim, "] tensor");
  for (const at::Tensor* t : {&cos, &sin}) {
    TORCH_CHECK(t->dim() == 2 && t->size(0) == tokens && t->size(1) == head_dim / 2 &&
                    t->is_contiguous() && t->scalar_type() == at::kFloat,
                "rms_norm_rope: cos and sin must be contiguous fp32 [", tokens, ", ", head_dim / 2,
                "] tensors, got ", t->sizes(), " ", t->scalar_type());
  }
  for (const at::Tensor* t : {&weight, &cos, &sin}) {
    TORCH_CHECK(t->device() == x.device(), "rms_norm_rope: all tensors must be on ", x.device());
  }
}

}  // namespace diffscope_ext
