// Hotspots: ranking, SGLang's category rules (first match wins), rules files, and the
// fast-path family checks with and without the fused kernels.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include <diffscope/hotspots.hpp>
#include <diffscope/perf_dump.hpp>
#include <diffscope/report.hpp>

#include "tools/sample_results.hpp"

namespace {

diffscope::kernel_result k(std::string name, double total, std::uint64_t count = 1,
                           std::string scope = "", std::string kind = "kernel") {
  diffscope::kernel_result r;
  r.name = std::move(name);
  r.kind = std::move(kind);
  r.scope_path = std::move(scope);
  r.count = count;
  r.total_ms = total;
  return r;
}

// A copy, not a pointer: the report is often a temporary of the calling expression.
std::optional<diffscope::family_finding> family(const diffscope::hotspot_report& rep,
                                                const char* id) {
  for (const auto& f : rep.families)
    if (f.family == id) return f;
  return std::nullopt;
}

}  // namespace

TEST_SUITE("hotspots") {
  TEST_CASE("the default rules are SGLang's, in order, and the first match wins") {
    const diffscope::kernel_classifier c;
    CHECK(c.classify("nvjet_tst_128x256", "kernel") == "gemm");
    CHECK(c.classify("sm90_xmma_gemm_bf16", "kernel") == "gemm");
    CHECK(c.classify("flash_fwd_splitkv_kernel", "kernel") == "attention");
    CHECK(c.classify("fuse_scale_shift_kernel", "kernel") == "adaln_modulation");
    CHECK(c.classify("fused_add_rmsnorm_kernel", "kernel") == "norm");
    CHECK(c.classify("apply_rotary_embedding", "kernel") == "rope");
    CHECK(c.classify("silu_and_mul_kernel", "kernel") == "activation");
    CHECK(c.classify("ncclDevKernel_AllReduce_Sum_bf16_RING_LL", "kernel") == "nccl_comm");
    CHECK(c.classify("triton_poi_fused_add_0", "kernel") == "triton_kernel");
    CHECK(c.classify("Memcpy HtoD (Pageable -> Device)", "memcpy") == "memops");
    CHECK(c.classify("Memset (Device)", "memset") == "memops");
    CHECK(c.classify("elementwise_kernel", "kernel") == "misc");
    // Matches gemm, activation and triton: gemm is first.
    CHECK(c.classify("triton_poi_fused_gemm_silu_0", "kernel") == "gemm");
    // rope before activation: "rotary_gelu" is rope.
    CHECK(c.classify("rotary_gelu_kernel", "kernel") == "rope");
    // The base name decides before template arguments do: not gemm for cutlass::half_t.
    CHECK(c.classify("flash_fwd_kernel<Flash_fwd_kernel_traits<128, cutlass::half_t>>", "kernel") ==
          "attention");
    CHECK(c.classify(
              "void at::native::vectorized_elementwise_kernel<4, at::native::silu_kernel>(int)",
              "kernel") == "activation");
    CHECK(c.is_default());
  }

  TEST_CASE("a rules file: comments, tabs, (?i), kind:, and a bad regex named by line") {
    std::vector<diffscope::category_rule> rules;
    CHECK_FALSE(diffscope::parse_category_rules(
        "# mine\n\nattn\t(?i)ATTENTION|flash\n  gemm   gemm\ncopies kind:memcpy\n", "r.txt",
        rules));
    REQUIRE(rules.size() == 3);
    const diffscope::kernel_classifier c(rules);
    CHECK(c.classify("my_Attention_kernel", "kernel") == "attn");
    CHECK(c.classify("flash_gemm", "kernel") == "attn");  // first match wins
    CHECK(c.classify("gemm_x", "kernel") == "gemm");
    CHECK(c.classify("Memcpy DtoD", "memcpy") == "copies");
    CHECK(c.classify("rmsnorm", "kernel") == "misc");
    CHECK_FALSE(c.is_default());

    const auto err =
        diffscope::parse_category_rules("gemm gemm\n\nbad (unclosed\n", "r.txt", rules);
    REQUIRE(err);
    CHECK(err->rfind("r.txt:3: bad regex '(unclosed'", 0) == 0);
    const auto no_regex = diffscope::parse_category_rules("lonely\n", "r.txt", rules);
    REQUIRE(no_regex);
    CHECK(no_regex->find("r.txt:1:") == 0);
  }

  TEST_CASE("kernels are merged by name across scopes and ranked by total, with shares") {
    diffscope::results r;
    r.kernels = {k("gemm_a", 30, 3, "a"), k("flash_fwd", 50, 5, "b"), k("gemm_a", 20, 2, "c"),
                 k("memcpy HtoD", 0, 1, "", "memcpy")};
    const auto rep = diffscope::analyze_hotspots(r);
    REQUIRE(rep.kernels.size() == 3);
    CHECK(rep.kernels[0].name == "flash_fwd");  // 50 == 50: tie broken by name
    CHECK(rep.kernels[1].name == "gemm_a");
    CHECK(rep.kernels[1].total_ms == 50);
    CHECK(rep.kernels[1].count == 5);
    CHECK(rep.kernels[1].mean_ms == 10);
    CHECK(rep.kernels[1].share == doctest::Approx(50.0));
    CHECK(rep.total_ms == 100);
    CHECK(rep.operations == 11);
    REQUIRE(rep.categories.size() == 3);
    CHECK(rep.categories[2].category == "memops");
    REQUIRE(rep.scopes.size() == 3);
    CHECK(rep.scopes[0].path == "b");
  }

  TEST_CASE("separate norm and rotary kernels in an attention scope are a missed QK norm+RoPE") {
    diffscope::results r;
    r.scopes.push_back(sample::scope("blk", diffscope::category::other, 0, -1, 1, 1, {}, 0));
    r.scopes.push_back(sample::scope("blk/qk", diffscope::category::norm_rope, 1, 0, 1, 1, {}, 0));
    r.kernels = {k("rmsnorm_kernel", 4, 10, "blk/qk"), k("apply_rotary_embedding", 3, 10, "blk/qk"),
                 k("flash_fwd_kernel", 40, 10, "blk")};
    auto rep = diffscope::analyze_hotspots(r);
    const auto f = family(rep, "qknorm_rope");
    REQUIRE(f);
    CHECK(f->status == "missed");
    CHECK(f->time_ms == 7);
    CHECK(f->count == 20);
    CHECK(f->hint.find("fused_inplace_qknorm_rope") != std::string::npos);
    CHECK(diffscope::hotspots_text(rep, 0).find("missed    fused QK norm + RoPE") !=
          std::string::npos);

    SUBCASE("the same kernels outside attention/norm_rope scopes are no evidence") {
      for (auto& kr : r.kernels) kr.scope_path = "blk";
      CHECK(!family(diffscope::analyze_hotspots(r), "qknorm_rope"));
    }
    SUBCASE("the fused kernel present: engaged, no hint") {
      r.kernels.push_back(k("fused_inplace_qknorm_rope", 2, 10, "blk/qk"));
      const auto fr = diffscope::analyze_hotspots(r);
      const auto e = family(fr, "qknorm_rope");
      REQUIRE(e);
      CHECK(e->status == "engaged");
      CHECK(e->hint.empty());
    }
    SUBCASE("a path that says attention counts when the scope table does not") {
      r.scopes.clear();
      for (auto& kr : r.kernels) kr.scope_path = "Denoising/transformer_blocks.0.attn1";
      CHECK(family(diffscope::analyze_hotspots(r), "qknorm_rope")->status == "missed");
    }
  }

  TEST_CASE("AdaLN: LayerNorm + elementwise scale/shift missed; fused scale/shift engaged") {
    diffscope::results r;
    r.kernels = {k("void at::native::vectorized_layer_norm_kernel<float>(int)", 3, 10),
                 k("vectorized_elementwise_kernel<4, MulFunctor<float>>", 2, 10)};
    const auto f = family(diffscope::analyze_hotspots(r), "adaln");
    REQUIRE(f);
    CHECK(f->status == "missed");
    CHECK(f->time_ms == 5);
    r.kernels.push_back(k("fuse_scale_shift_kernel<bf16>", 1, 10));
    const auto rep = diffscope::analyze_hotspots(r);
    CHECK(family(rep, "adaln")->status == "engaged");
    CHECK(family(rep, "adaln")->hint.empty());
  }

  TEST_CASE("the other piece families: RMSNorm, Z-Image modulation, GroupNorm+SiLU, Wan VAE") {
    struct one {
      const char* id;
      std::vector<const char*> separate;
      const char* fused;
    };
    const one cases[] = {
        {"rmsnorm", {"reduce_kernel<MeanOps<float>>", "rsqrt_kernel_cuda"}, "fused_add_rmsnorm"},
        {"rmsnorm_modulation",
         {"rms_norm_kernel", "tanh_kernel_cuda"},
         "fused_norm_tanh_mul_add_k"},
        {"groupnorm_silu", {"GroupNormKernel", "silu_kernel"}, "triton_group_norm_silu"},
        {"wan_vae", {"upsample_nearest3d_out_frame", "CatArrayBatchedCopy"}, "dup_up3d_add"},
    };
    for (const one& c : cases) {
      CAPTURE(c.id);
      diffscope::results r;
      for (const char* n : c.separate) r.kernels.push_back(k(n, 1));
      const auto f = family(diffscope::analyze_hotspots(r), c.id);
      REQUIRE(f);
      CHECK(f->status == "missed");
      r.kernels.push_back(k(c.fused, 1));
      const auto e = family(diffscope::analyze_hotspots(r), c.id);
      REQUIRE(e);
      CHECK(e->status == "engaged");
      // Only one of the pieces: no evidence of a miss.
      diffscope::results one_piece;
      one_piece.kernels.push_back(k(c.separate[0], 1));
      const auto none = family(diffscope::analyze_hotspots(one_piece), c.id);
      CHECK((!none || none->status != "missed"));
    }
  }

  TEST_CASE("attention backend: SDPA fallbacks are a miss, flash/fmha alone is engaged") {
    diffscope::results r;
    r.kernels = {k("fmha_cutlassF_f16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::Params)", 8)};
    auto f = *family(diffscope::analyze_hotspots(r), "attention_backend");
    CHECK(f.status == "missed");
    CHECK(f.evidence.find("SDPA memory-efficient backend") == 0);
    r.kernels = {k("void flash::FlashAttnFwdSm90<cutlass::bfloat16_t>(Params)", 8)};
    f = *family(diffscope::analyze_hotspots(r), "attention_backend");
    CHECK(f.status == "engaged");
    // Math fallback: softmax in an attention scope.
    r.kernels = {k("softmax_warp_forward<float>", 2, 1, "blk/attention"),
                 k("gemm_bmm", 4, 1, "blk/attention")};
    f = *family(diffscope::analyze_hotspots(r), "attention_backend");
    CHECK(f.status == "missed");
    CHECK(f.evidence.find("math") != std::string::npos);
  }

  TEST_CASE("all-to-all overlap with attention needs intervals and says whether it overlaps") {
    diffscope::results r;
    r.kernels = {k("ncclDevKernel_SendRecv", 4, 4), k("flash_fwd_kernel", 8, 4)};
    CHECK(family(diffscope::analyze_hotspots(r), "usp_overlap")->status == "unchecked");
    diffscope::overlap_input ov;
    ov.available = true;
    ov.all_to_all = {{0, 10}, {20, 30}};
    ov.attention = {{40, 50}};
    const diffscope::kernel_classifier c;
    CHECK(family(diffscope::analyze_hotspots(r, c, &ov), "usp_overlap")->status == "missed");
    ov.attention = {{0, 25}, {5, 8}, {26, 40}};  // covers 10 + 9 of 20
    const auto rep = diffscope::analyze_hotspots(r, c, &ov);
    CHECK(family(rep, "usp_overlap")->status == "engaged");
    CHECK(family(rep, "usp_overlap")->evidence.find("95.0%") == 0);
    // From the results' own trace.
    r.trace.enabled = true;
    diffscope::trace_op a2a, attn;
    a2a.name = "ncclDevKernel_SendRecv";
    a2a.start_ns = 0;
    a2a.end_ns = 100;
    attn.name = "flash_fwd_kernel";
    attn.start_ns = 200;
    attn.end_ns = 300;
    r.trace.ops = {a2a, attn};
    CHECK(family(diffscope::analyze_hotspots(r), "usp_overlap")->status == "missed");
  }

  TEST_CASE("per step from recorded operations") {
    diffscope::results r;
    r.kernels = {k("gemm", 1, 2)};
    diffscope::trace_op op;
    op.name = "gemm";
    op.step = 1;
    op.start_ns = 0;
    op.end_ns = 2000000;
    r.trace.ops = {op, op};
    const auto rep = diffscope::analyze_hotspots(r);
    REQUIRE(rep.steps.size() == 1);
    CHECK(rep.steps[0].step == 1);
    CHECK(rep.steps[0].count == 2);
    CHECK(rep.steps[0].busy_ms == 4);
    CHECK(rep.steps[0].top_kernel == "gemm");
  }

  TEST_CASE("the summary and the dump carry categories and families") {
    const auto r = sample::profiled();
    const std::string s = diffscope::summary_text(r);
    CHECK(s.find("Kernel categories (SGLang's rules") != std::string::npos);
    CHECK(s.find("engaged   attention backend") != std::string::npos);
    diffscope::perf_dump_options o;
    o.timestamp = "t";
    o.request_id = "r";
    o.commit_hash = "c";
    const std::string d = diffscope::perf_dump_json(r, o);
    CHECK(
        d.find(
            "\"hotspots\": {\n      \"total_ms\": 1070.5,\n      \"rules\": \"sglang_default\"") !=
        std::string::npos);
    CHECK(d.find("\"family\": \"attention_backend\"") != std::string::npos);
  }
}
