// Hotspots: ranking, SGLang's category rules (first match wins), rules files, and the
// fast-path family checks with and without the fused kernels; and the command's reader (one
// pass over plain or gzip input, the byte-order mark, depth and size rules shared with dumps).
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <diffscope/aggregate/aggregator.hpp>
#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/output/hotspots_report.hpp>
#include <diffscope/output/perf_dump.hpp>
#include <diffscope/output/summary.hpp>

#include "../tools/lib/dump_reader.hpp"
#include "../tools/lib/hotspot_input.hpp"
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

  TEST_CASE("rules and families match CUPTI's symbols once demangled, as torch traces name them") {
    // nvcc's symbols (anonymous namespaces named after their file) as CUPTI reports them.
    const std::string layer_norm =
        "_ZN2at6native53_GLOBAL__N__5e0fbd2a_23_layer_norm_kernel_cu_9c1e2b7728vectorized_layer_"
        "norm_kernelIN3c108BFloat16EfEEviT0_PKT_S8_S8_PS5_S9_PS6_";
    const std::string mul =
        "_ZN2at6native29vectorized_elementwise_kernelILi4ENS0_13BinaryFunctorIN3c108BFloat16ES4_"
        "S4_NS0_15binary_internal10MulFunctorIfEEEESt5arrayIPcLm3EEEEviT0_T1_";
    const std::string moments =
        "_ZN2at6native53_GLOBAL__N__133be68c_20_group_norm_kernel_cu_a3f2c1d024RowwiseMomentsCUDA"
        "KernelIfEEvlT_PKS3_PS3_S6_";
    const std::string fa2 =
        "_ZN13pytorch_flash16flash_fwd_kernelINS_23Flash_fwd_kernel_"
        "traitsIN3c108BFloat16EEELb1EEEvi";
    const std::string nccl = "_Z22ncclDevKernel_SendRecvi";
    const diffscope::kernel_classifier rules;
    using diffscope::detail::demangle;
    CHECK(rules.classify(demangle(layer_norm), "kernel") == "norm");
    CHECK(rules.classify(demangle(mul), "kernel") == "misc");
    // The file name in the symbol said "norm"; the kernel's own name does not (nor does
    // torch.profiler's text, which SGLang's rules are applied to).
    CHECK(rules.classify(moments, "kernel") == "norm");
    CHECK(rules.classify(demangle(moments), "kernel") == "misc");
    CHECK(rules.classify(demangle(fa2), "kernel") == "attention");
    CHECK(rules.classify(demangle(nccl), "kernel") == "nccl_comm");

    diffscope::results r;
    r.kernels = {k(demangle(layer_norm), 3, 10), k(demangle(mul), 2, 10), k(demangle(fa2), 8, 10)};
    const auto rep = diffscope::analyze_hotspots(r);
    REQUIRE(family(rep, "adaln"));
    CHECK(family(rep, "adaln")->status == "missed");
    // SDPA's FlashAttention-2 kernels are named "pytorch_flash::...": only the demangled text
    // says so.
    const auto backend = family(rep, "attention_backend");
    REQUIRE(backend);
    CHECK(backend->status == "missed");
    CHECK(backend->evidence.find("FlashAttention-2") != std::string::npos);
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

  TEST_CASE("hotspots text: scopes and kernels shortened in the middle, never two rows alike") {
    const diffscope::results r = sample::layerwise();
    const auto rep = diffscope::analyze_hotspots(r);
    REQUIRE(rep.scopes.size() >= 250);
    const std::string text = diffscope::hotspots_text(rep, 1000);
    // The "By scope" table: one row per scope, each label distinct and at most 60 columns.
    const auto at = text.find("\nBy scope");
    REQUIRE(at != std::string::npos);
    std::istringstream in(text.substr(at + 1));
    std::string line;
    std::getline(in, line);  // title
    std::getline(in, line);  // header
    const std::size_t top_kernel_col = line.find("top kernel");
    std::set<std::string> labels;
    std::size_t rows = 0;
    while (std::getline(in, line) && line.rfind("  ", 0) == 0) {
      ++rows;
      std::string label = line.substr(2, top_kernel_col - 2);
      label.erase(label.find_last_not_of(' ') + 1);
      CHECK(diffscope::detail::display_width(label) <= 60);
      CHECK_MESSAGE(labels.insert(label).second, "'", label, "' printed twice");
    }
    CHECK(rows == rep.scopes.size());
    // Names relative to the parent's, and the cut in the middle keeps the leaf.
    CHECK(text.find("/.to_q ") != std::string::npos);
    // Kernels by their short names; two that read alike at both ends stay apart.
    CHECK(text.find("\n  FlashAttnFwdSm90<cutlass::bfloat16_t, 128, 128, true> ") !=
          std::string::npos);
    const auto first = text.find("\n  vectorized_elementwise_kernel<4, at:...");
    REQUIRE(first != std::string::npos);
    const auto second = text.find("\n  vectorized_elementwise_kernel<4, at:...", first + 1);
    REQUIRE(second != std::string::npos);
    CHECK(text.substr(first, 80) != text.substr(second, 80));
    CHECK(text.find("void ") == std::string::npos);
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

  TEST_CASE("the summary and the dump render the report analyze_hotspots gives for their results") {
    const auto r = sample::profiled();
    const diffscope::hotspot_report rep = diffscope::analyze_hotspots(r);
    CHECK(diffscope::summary_text(r).find("\n" + diffscope::hotspots_text(rep, 0) + "\nfaults: ") !=
          std::string::npos);
    diffscope::detail::json_writer w(2);
    diffscope::write_hotspots_json(w, rep);
    // The dump holds it one level deeper: compared without the indentation.
    const auto bare = [](std::string t) {
      t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return c == ' ' || c == '\n'; }),
              t.end());
      return t;
    };
    diffscope::perf_dump_options o;
    o.timestamp = "t";
    o.request_id = "r";
    o.commit_hash = "c";
    CHECK(bare(diffscope::perf_dump_json(r, o)).find("\"hotspots\":" + bare(w.take())) !=
          std::string::npos);
  }
}

namespace {

std::string gzip_of(const std::string& text) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

const std::string small_trace =
    R"({"traceEvents": [{"cat": "kernel", "name": "gemm", "dur": 10, "ts": 0},
                        {"cat": "kernel", "name": "flash_fwd", "dur": 5, "ts": 10},
                        {"cat": "gpu_memcpy", "name": "Memcpy HtoD", "dur": 1, "ts": 20}]})";

/// What reading `bytes` as hotspots' input gives: its kernel count, or the failure's message.
std::string read_as_hotspots(const std::string& bytes, std::uint64_t max = ~0ull) {
  using namespace diffscope::cli;
  try {
    byte_source in(bytes, "in.json", max, "this input");
    const hotspot_source src = hotspots_from_input(in);
    return std::string(src.is_trace ? "trace" : "dump") + (src.gzip ? " gzip " : " ") +
           std::to_string(src.res.kernels.size());
  } catch (const failure& f) {
    CHECK(f.code == exit_usage);
    return f.what();
  }
}

std::string nested_trace(std::size_t levels) {
  // The top object, traceEvents and the event are 3 of the levels.
  const std::string open(levels - 3, '['), close(levels - 3, ']');
  return R"({"traceEvents": [{"cat": "kernel", "name": "k", "dur": 1, "args": )" + open + close +
         "}]}";
}

}  // namespace

TEST_SUITE("hotspots reader") {
  TEST_CASE("one pass reads plain and gzip input alike, the gzip sniffed from the bytes read") {
    CHECK(read_as_hotspots(small_trace) == "trace 3");
    CHECK(read_as_hotspots(gzip_of(small_trace)) == "trace gzip 3");
    // Concatenated members (gzip a b > c) are one stream; bytes after the last are ignored.
    const std::string half1 = small_trace.substr(0, 40), half2 = small_trace.substr(40);
    CHECK(read_as_hotspots(gzip_of(half1) + gzip_of(half2)) == "trace gzip 3");
    CHECK(read_as_hotspots(gzip_of(small_trace) + "trailing") == "trace gzip 3");
    const std::string gz = gzip_of(small_trace);
    CHECK(read_as_hotspots(gz.substr(0, gz.size() / 2)) == "in.json: gzip data is truncated");
    CHECK(read_as_hotspots(gz.substr(0, 10) + std::string(40, 'x'))
              .rfind("in.json: corrupt gzip data (", 0) == 0);
    CHECK(read_as_hotspots("") == "in.json: empty file");
    CHECK(read_as_hotspots(gzip_of("")) == "in.json: empty file");
  }

  TEST_CASE("a dump given to hotspots is read from the same pass") {
    const std::string dump =
        R"({"total_duration_ms": 1, "diffscope": {"kernels": [{"name": "gemm", "count": 2,
            "total_ms": 3}]}})";
    CHECK(read_as_hotspots(dump) == "dump 1");
    CHECK(read_as_hotspots(gzip_of(dump)) == "dump gzip 1");
    CHECK(read_as_hotspots(R"({"meta": {}})").find("neither a Chrome trace") != std::string::npos);
  }

  TEST_CASE("a dump or trace with mangled kernel names reads them demangled") {
    using namespace diffscope::cli;
    const std::string fa2 =
        "_ZN13pytorch_flash16flash_fwd_kernelINS_23Flash_fwd_kernel_"
        "traitsIN3c108BFloat16EEELb1EEEvi";
    const std::string text =
        "void pytorch_flash::flash_fwd_kernel<pytorch_flash::Flash_fwd_kernel_traits<c10::"
        "BFloat16>, true>(int)";
    // A dump written before names were demangled: its baseline still ranks by the same name
    // as a new dump's (and a demangled entry of the same kernel merges with it).
    const std::string dump = R"({"diffscope": {"kernels": [{"name": ")" + fa2 +
                             R"(", "count": 2, "total_ms": 3}, {"name": ")" + text +
                             R"(", "count": 1, "total_ms": 1}, {"name": "_ZN2at6nat",
                             "count": 1, "total_ms": 0.5}]}})";
    byte_source in(dump, "old.json", ~0ull, "this input");
    const hotspot_source src = hotspots_from_input(in);
    REQUIRE(src.res.kernels.size() == 3);
    CHECK(src.res.kernels[0].name == text);
    CHECK(src.res.kernels[2].name == "_ZN2at6nat");  // does not demangle: kept
    const auto rep = diffscope::analyze_hotspots(src.res);
    REQUIRE(rep.kernels.size() == 2);
    CHECK(rep.kernels[0].name == text);
    CHECK(rep.kernels[0].count == 3);
    CHECK(rep.kernels[0].category == "attention");

    const std::string trace =
        R"({"traceEvents": [{"cat": "kernel", "name": ")" + fa2 + R"(", "dur": 10, "ts": 0}]})";
    byte_source tin(trace, "t.json", ~0ull, "this input");
    const hotspot_source tsrc = hotspots_from_input(tin);
    REQUIRE(tsrc.res.kernels.size() == 1);
    CHECK(tsrc.res.kernels[0].name == text);
  }

  TEST_CASE("a dump's hotspots are its window's own totals, not the sum of the kernels it lists") {
    using namespace diffscope::cli;
    using namespace diffscope::detail;
    // A warm-up, then one request running five kernels, of which the dump lists two.
    aggregator agg;
    std::uint32_t corr = 1;
    const auto run = [&](const char* name, std::uint64_t start, std::uint64_t dur) {
      agg.on_launch(corr, launch_kind::kernel);
      gpu_op o;
      o.correlation_id = corr++;
      o.start_ns = start;
      o.end_ns = start + dur;
      o.name = name;
      agg.on_gpu_op(o);
    };
    agg.push(range_domain::diffscope, agg.intern("warmup", false), diffscope::category::request,
             std::nullopt, 1, "warmup", true);
    run("warm_kernel", 10, 900'000);
    agg.pop(range_domain::diffscope, 2);
    agg.push(range_domain::diffscope, agg.intern("request", false), diffscope::category::request,
             std::nullopt, 3, "r1", false);
    const char* names[] = {"gemm_a", "gemm_b", "layer_norm_c", "softmax_d", "copy_e"};
    for (int i = 0; i < 5; ++i)
      for (int n = 0; n <= i; ++n) run(names[i], 1'000'000 + 10'000 * (5 * i + n), 1000 * (5 - i));
    agg.pop(range_domain::diffscope, 4);
    agg.finalize_all();
    const diffscope::results res = agg.snapshot(true);
    const double busy = res.requests[1].gpu.busy_ms;  // 5+8+9+8+5 us
    CHECK(busy == doctest::Approx(0.035));
    diffscope::perf_dump_options o;
    o.max_kernels = 2;
    o.request_id = o.commit_hash = o.timestamp = "x";
    byte_source in(diffscope::perf_dump_json(res, o), "new.json", ~0ull, "this input");
    const hotspot_source src = hotspots_from_input(in);
    CHECK(src.has_window);
    CHECK(src.kernels_total == 5);
    REQUIRE(src.res.kernels.size() == 2);
    const auto rep = diffscope::analyze_hotspots(src.res);
    CHECK(rep.total_ms == doctest::Approx(busy));
    CHECK(rep.operations == 15);
    CHECK(rep.kernel_names == 5);
    CHECK(rep.kernels[0].share == doctest::Approx(100.0 * 9 / 35));
    const std::string text = diffscope::hotspots_text(rep, 30);
    CHECK(text.find("Top 2 of 5 kernels by total GPU time (0.04 ms in 15 operations)") !=
          std::string::npos);
    REQUIRE(rep.categories.back().category == diffscope::unlisted_category);
    CHECK(rep.categories.back().count == 15 - 5);  // layer_norm_c x3 and gemm_b x2 listed
    CHECK(rep.categories.back().total_ms == doctest::Approx(0.035 - 0.017));
    CHECK(diffscope::detail::window_text(src.res) == "the one counted request (id r1)");
    CHECK(diffscope::detail::outside_text(src.res.window) ==
          "0.90 ms of GPU work in 1 operations, all in warm-ups");

    // A dump written before windows (no "window"): ranked from what it lists, as before.
    const std::string old =
        R"({"diffscope": {"kernels_total": 9, "kernels": [{"name": "gemm", "count": 2,
            "total_ms": 3}, {"name": "norm", "count": 1, "total_ms": 1}]}})";
    byte_source oin(old, "old.json", ~0ull, "this input");
    const hotspot_source osrc = hotspots_from_input(oin);
    CHECK_FALSE(osrc.has_window);
    CHECK(osrc.kernels_total == 9);
    const auto orep = diffscope::analyze_hotspots(osrc.res);
    CHECK(orep.total_ms == doctest::Approx(4));
    CHECK(orep.operations == 3);
    CHECK(diffscope::hotspots_text(orep, 30).find("Top 2 of 2 kernels by total GPU time (4.00 ms "
                                                  "in 3 operations)") != std::string::npos);
    for (const auto& c : orep.categories) CHECK(c.category != diffscope::unlisted_category);
  }

  TEST_CASE("a dump's per-step categories read back; older dumps' steps have none") {
    using namespace diffscope::cli;
    const std::string with = R"({"diffscope": {"steps": [
        {"step": 0, "gpu": {"busy_ms": 1.5}, "categories": {"gemm": 1.0, "misc": 0.5}},
        {"step": 1, "gpu": {"busy_ms": 2.0}, "categories": {}}]}})";
    byte_source in(with, "new.json", ~0ull, "this input");
    const hotspot_source src = hotspots_from_input(in);
    REQUIRE(src.res.steps.size() == 2);
    const auto& s0 = src.res.steps[0];
    CHECK(s0.categories_measured);
    REQUIRE(s0.categories.size() == 2);
    CHECK(s0.categories[0].category == "gemm");
    CHECK(s0.categories[0].busy_ms == 1.0);
    CHECK(s0.categories[1].category == "misc");
    CHECK(src.res.steps[1].categories_measured);  // traced, nothing ran: measured, empty
    CHECK(src.res.steps[1].categories.empty());

    const std::string old = R"({"diffscope": {"steps": [{"step": 0, "gpu": {"busy_ms": 1.5}}]}})";
    byte_source oin(old, "old.json", ~0ull, "this input");
    const hotspot_source osrc = hotspots_from_input(oin);
    REQUIRE(osrc.res.steps.size() == 1);
    CHECK_FALSE(osrc.res.steps[0].categories_measured);

    const std::string bad =
        R"({"diffscope": {"steps": [{"step": 0, "categories": {"gemm": "x"}}]}})";
    byte_source bin(bad, "bad.json", ~0ull, "this input");
    CHECK_THROWS_WITH(hotspots_from_input(bin),
                      doctest::Contains("bad.json: diffscope.steps[0].categories.gemm"));
  }

  TEST_CASE("a byte-order mark is skipped once, as in dumps") {
    const std::string bom = "\xEF\xBB\xBF";
    CHECK(read_as_hotspots(bom + small_trace) == "trace 3");
    CHECK(read_as_hotspots(gzip_of(bom + small_trace)) == "trace gzip 3");
    CHECK(read_as_hotspots(bom + bom + small_trace).rfind("in.json: not JSON (", 0) == 0);
    CHECK(read_as_hotspots("\xEF\xBB" + small_trace) ==
          "in.json: not JSON (a broken byte-order mark)");
    CHECK(read_as_hotspots(bom + "  ") == "in.json: empty file");
  }

  TEST_CASE("traces and dumps share one depth limit, counted from the top of the document") {
    using diffscope::cli::max_json_depth;
    REQUIRE(max_json_depth == 256);
    CHECK(read_as_hotspots(nested_trace(256)) == "trace 1");
    const std::string too_deep = nested_trace(257);
    // The offset is the bracket that opens level 257, as the dump reader says it.
    CHECK(read_as_hotspots(too_deep) ==
          "in.json: JSON nested too deeply: more than 256 levels (at byte " +
              std::to_string(too_deep.rfind('[')) + ")");
    const std::string deep_key = R"({"meta": )" + std::string(100000, '[');
    CHECK(read_as_hotspots(deep_key).find("nested too deeply") != std::string::npos);
    // The dump reader says the same at the same depth.
    std::string dump =
        R"({"steps": [], "other": )" + std::string(255, '[') + std::string(255, ']') + "}";
    CHECK_NOTHROW(diffscope::cli::parse_dump(dump, "d.json"));
    dump = R"({"steps": [], "other": )" + std::string(256, '[') + std::string(256, ']') + "}";
    CHECK_THROWS_WITH(diffscope::cli::parse_dump(dump, "d.json"),
                      ("d.json: JSON nested too deeply: more than 256 levels (at byte " +
                       std::to_string(dump.rfind('[')) + ")")
                          .c_str());
  }

  TEST_CASE("a dump is kept only up to the dump limit; a trace of any size streams") {
    using diffscope::cli::max_dump_bytes;
    const std::string pad(max_dump_bytes, 'x');
    CHECK(read_as_hotspots(R"({"diffscope": {"kernels": []}, "pad": ")" + pad + "\"}") ==
          "in.json: larger than 64 MiB, the limit for a perf dump");
    // A trace with as much before its events is read: the kept text is dropped at traceEvents.
    CHECK(read_as_hotspots(R"({"pad": ")" + pad + R"(", "traceEvents": [{"cat": "kernel",
        "name": "k", "dur": 1}]})") == "trace 1");
  }

  TEST_CASE("a size limit counts uncompressed bytes") {
    const std::string spaces(5000, ' ');
    CHECK(read_as_hotspots(spaces + small_trace, 1000) ==
          "in.json: larger than 1000 bytes, the limit for this input");
    CHECK(read_as_hotspots(gzip_of(spaces + small_trace), 1024) ==
          "in.json: larger than 1 KiB, the limit for this input");
  }
}
