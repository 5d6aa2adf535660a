// diffscope: SGLang's kernel categories (docs/sglang.md, section 5): the default rules of the
// kernel classifier (analysis/kernel_classifier.hpp), in its rules-file format.
#pragma once

namespace diffscope {

/// SGLang's category rules (docs/sglang.md, section 5), in order, in the rules-file format.
inline constexpr const char* default_category_rules_text =
    "# category  regex (ECMAScript; first match wins; no match: misc)\n"
    "gemm              gemm|nvjet|cutlass\n"
    "attention         flash|fmha|fwd_flash\n"
    "adaln_modulation  fuse_scale_shift|scale_shift_gate\n"
    "norm              _norm_|Norm|rmsnorm|fused_add_rmsnorm\n"
    "rope              rotary|rope\n"
    "activation        act_and_mul|silu|gelu\n"
    "nccl_comm         ncclDevKernel|all_gather|all_reduce\n"
    "triton_kernel     triton\n"
    "memops            kind:^(memcpy|memset|gpu_memcpy|gpu_memset)$\n";

/// Category of names no rule matches.
inline constexpr const char* fallback_category = "misc";

}  // namespace diffscope
