// diffscope: SGLang diffusion's known fast-path kernel families (docs/sglang.md, section 5):
// what each looks like engaged and missed, the SDPA fallbacks of the attention backend, and
// the scope names of attention regions. The checks are analysis/hotspots.hpp's.
#pragma once

#include <array>

namespace diffscope::detail {

/// What a fast-path family check looks for (see family_table).
enum class family_check {
  pieces,             ///< engaged names, or all `pieces` as separate kernels = a miss
  attention_backend,  ///< flash/fmha vs SDPA fallbacks (attention_fallbacks)
  overlap,            ///< all-to-all (pieces[0]) overlapping attention (pieces[1]) in time
};

/// One known fast path of SGLang diffusion (docs/sglang.md, section 5). Regexes are ECMAScript
/// over kernel names. A miss needs, for every non-null piece, a kernel that matches it and
/// not `engaged` (kernels matching every piece count as fused), and no engaged kernel.
struct family_spec {
  const char* id;
  const char* title;
  const char* engaged;
  std::array<const char*, 2> pieces;
  bool scoped;  ///< pieces count only in attention / norm_rope scopes when data has scopes
  family_check check;
  const char* hint;
};

// The one table of families; docs/hotspots.md describes each row.
inline constexpr family_spec family_table[] = {
    {"qknorm_rope",
     "fused QK norm + RoPE",
     "fused_inplace_qknorm_rope",
     {"rms_?norm|RMSNorm|RmsNorm|_norm_|layer_?norm|LayerNorm|fused_inplace_qknorm",
      "rotary|rope|Rotary|RoPE"},
     true,
     family_check::pieces,
     "separate norm and rotary kernels: fused_inplace_qknorm_rope does QK RMSNorm + RoPE in one"},
    {"qknorm",
     "fused QK norm (without RoPE)",
     "fused_inplace_qknorm(?!_rope)",
     {nullptr, nullptr},
     false,
     family_check::pieces,
     ""},
    {"rope",
     "RoPE",
     "apply_rotary_embedding|apply_rope_with_cos_sin_cache_inplace|apply_ltx2_split_rotary_emb|"
     "fused_inplace_helios_qk_rope|fused_inplace_qknorm_rope",
     {"rotary|rope|Rotary|RoPE", nullptr},
     false,
     family_check::pieces,
     "rotary kernels that are not SGLang's fused RoPE kernels (apply_rotary_embedding, "
     "apply_rope_with_cos_sin_cache_inplace, ...)"},
    {"adaln",
     "AdaLN scale/shift/gate",
     "fuse_scale_shift_kernel|fuse_layernorm_scale_shift_gate_select01_kernel|"
     "fuse_residual_layernorm_scale_shift_gate_select01_kernel|fused_norm_scale_shift|"
     "modulate_scale_shift|fused_layernorm_modulate",
     {"layer_?norm|LayerNorm|layernorm", "MulFunctor|AddFunctor|CUDAFunctor_add"},
     false,
     family_check::pieces,
     "separate LayerNorm and elementwise scale/shift kernels: fuse_scale_shift_kernel / "
     "fuse_layernorm_scale_shift_gate_select01_kernel fuse them"},
    {"rmsnorm_modulation",
     "RMSNorm modulation (Z-Image)",
     "fused_norm_tanh_mul_add|rmsnorm_scale|rmsnorm_tanh_residual",
     {"rms_?norm|RMSNorm|MeanOps", "tanh"},
     false,
     family_check::pieces,
     "separate RMSNorm and tanh/mul/add kernels: fused_norm_tanh_mul_add / rmsnorm_tanh_residual "
     "fuse them"},
    {"rmsnorm",
     "RMSNorm",
     "rmsnorm|fused_add_rmsnorm|rms_norm_fn|layer_norm_fn",
     {"MeanOps", "rsqrt"},
     false,
     family_check::pieces,
     "eager RMSNorm (mean, rsqrt, mul kernels): sgl-kernel rmsnorm / fused_add_rmsnorm do it in "
     "one"},
    {"groupnorm_silu",
     "GroupNorm+SiLU (VAE)",
     "triton_group_norm_silu",
     {"group_norm|GroupNorm|RowwiseMoments", "silu|SiLU"},
     false,
     family_check::pieces,
     "separate GroupNorm and SiLU kernels: triton_group_norm_silu fuses them"},
    {"residual_gate",
     "residual-gate add",
     "residual_gate_add",
     {nullptr, nullptr},
     false,
     family_check::pieces,
     ""},
    {"wan_vae",
     "Wan VAE data movement",
     "cat_pad_channels_last_3d|dup_up3d_add|nearest_upsample_nhwc",
     {"upsample_nearest", "CatArrayBatchedCopy"},
     false,
     family_check::pieces,
     "eager nearest-upsample and cat kernels: in a Wan VAE, cat_pad_channels_last_3d / "
     "dup_up3d_add / nearest_upsample_nhwc replace them"},
    {"usp_pack",
     "varlen USP pack/scatter",
     "fused_pack_qkv|fused_scatter_to_padded",
     {nullptr, nullptr},
     false,
     family_check::pieces,
     ""},
    {"usp_overlap",
     "Ulysses / USP overlap",
     "ring_?(flash_)?attn|RingAttn|ring_attention",
     {"all_to_all|alltoall|AllToAll|ncclDevKernel_SendRecv", "flash|fmha|attention|Attention|sdpa"},
     false,
     family_check::overlap,
     "all-to-all kernels do not overlap attention kernels: communication is exposed"},
    {"attention_backend",
     "attention backend",
     "flash|fmha|fwd_flash",
     {nullptr, nullptr},
     false,
     family_check::attention_backend,
     "SDPA fallback attention kernels: FlashAttention 3/4 (flash, fmha) is the fast path"},
};

/// SDPA fallbacks the attention_backend family looks for; `scoped`: only evidence inside an
/// attention scope (or, without scopes, when no flash/fmha kernel ran at all).
struct fallback_spec {
  const char* label;
  const char* regex;
  bool scoped;
};
inline constexpr fallback_spec attention_fallbacks[] = {
    {"SDPA memory-efficient backend",
     "PyTorchMemEffAttention|efficient_attention|mem_efficient|fmha_cutlass", false},
    {"SDPA FlashAttention-2 backend", "pytorch_flash::", false},
    {"SDPA math backend (softmax)", "softmax_warp_forward|SoftMaxForward|cunn_SoftMax", true},
};

/// Scope paths that count as attention / norm+RoPE regions when the scope table does not
/// say (default-domain ranges, SGLang's module names).
inline constexpr const char* attention_scope_regex = "attn|attention|norm_rope|rope|qk_?norm";

}  // namespace diffscope::detail
