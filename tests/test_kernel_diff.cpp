// The kernel diff (tools/lib/kernel_diff.hpp) and its Markdown (kernel_diff_markdown.hpp): rows
// added, removed and changed, ranked by absolute change; fast-path families; repeated runs by
// median; capped kernel lists; dumps without kernels; reading a dump's list. The CLI (dumps
// and torch.profiler traces) is tested end to end by tests/tools/test_compare_cli.py.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <diffscope/output/perf_dump.hpp>

#include "../tools/lib/kernel_diff.hpp"
#include "../tools/lib/kernel_diff_markdown.hpp"
#include "tools/reader_checks.hpp"
#include "tools/sample_results.hpp"

using namespace diffscope::cli;
using reader_checks::parse;

namespace {

const char* const ln =
    "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, "
    "float>(int, float, c10::BFloat16 const*, float*)";
const char* const mul =
    "void at::native::vectorized_elementwise_kernel<4, at::native::binary_internal::"
    "MulFunctor<float> >(int)";
const char* const fused = "void fuse_scale_shift_kernel<c10::BFloat16>(c10::BFloat16*, int)";
const char* const gemm = "nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT";
const char* const fmha = "fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::Params)";
const char* const flash = "void flash::FlashAttnFwdSm90<cutlass::bfloat16_t, 128>(flash::Params)";
const char* const rope = "apply_rotary_embedding_kernel";

struct k {
  const char* name;
  std::uint64_t count;
  double ms;
  const char* scope = "";
};

kernel_run run(const std::string& file, const std::vector<k>& ks, std::uint64_t total = 0) {
  kernel_run r;
  r.file = file;
  for (const k& x : ks) {
    diffscope::kernel_result e;
    e.name = x.name;
    e.kind = "kernel";
    e.scope_path = x.scope;
    e.count = x.count;
    e.total_ms = x.ms;
    r.res.kernels.push_back(e);
  }
  r.entries_total = total > 0 ? total : ks.size();
  return r;
}

const kernel_diff_row* row(const kernel_diff& d, const std::string& name) {
  for (const kernel_diff_row& r : d.rows)
    if (r.name == name) return &r;
  return nullptr;
}

const kernel_family_diff* family(const kernel_diff& d, const std::string& id) {
  for (const kernel_family_diff& f : d.families)
    if (f.id == id) return &f;
  return nullptr;
}

/// The names in the order the ranking prints them (a family's kernels after it).
std::vector<std::string> printed_order(const kernel_diff& d) {
  std::vector<std::string> out;
  for (const kernel_diff_unit& u : d.ranking) {
    if (u.family < 0) {
      out.push_back(d.rows[u.row].name);
      continue;
    }
    out.push_back("family " + d.families[static_cast<std::size_t>(u.family)].id);
    for (std::size_t i : d.families[static_cast<std::size_t>(u.family)].rows)
      out.push_back(d.rows[i].name);
  }
  return out;
}

}  // namespace

TEST_SUITE("kernel_diff") {
  TEST_CASE("added, removed and changed kernels, ranked by absolute change in total time") {
    const kernel_run b =
        run("b.json", {{gemm, 100, 50.0}, {"old_kernel", 10, 3.0}, {"same", 5, 1.0}});
    const kernel_run n =
        run("n.json", {{gemm, 100, 40.0}, {"new_kernel", 20, 8.0}, {"same", 5, 1.0}});
    const kernel_diff d = diff_kernels({&b}, {&n});
    REQUIRE(d.absent.empty());
    CHECK(printed_order(d) == std::vector<std::string>{gemm, "new_kernel", "old_kernel", "same"});
    const kernel_diff_row* g = row(d, gemm);
    REQUIRE(g != nullptr);
    CHECK(g->diff_ms() == doctest::Approx(-10.0));
    CHECK(std::string(g->change()).empty());
    CHECK(g->base.mean_ms() == doctest::Approx(0.5));
    CHECK(std::string(row(d, "new_kernel")->change()) == "added");
    CHECK(std::string(row(d, "old_kernel")->change()) == "removed");
    CHECK(d.base.total_ms == doctest::Approx(54.0));
    CHECK(d.now.count == doctest::Approx(125.0));

    const std::string md = kernel_section(d, "#### k");
    CHECK(md.find("| **All kernels** | 115 | 125 | 54.00 | 49.00 | -5.00 | | | -9.3% |") !=
          std::string::npos);
    CHECK(md.find("| `new_kernel` | - | 20 | - | 8.00 | +8.00 | - | 400.0 | added |") !=
          std::string::npos);
    CHECK(md.find("| `old_kernel` | 10 | - | 3.00 | - | -3.00 | 300.0 | - | removed |") !=
          std::string::npos);
    CHECK(md.find("more kernels") == std::string::npos);
  }

  TEST_CASE("the first N kernel rows, and a line for the rest; --kernels all lists every one") {
    std::vector<k> bk, nk;
    std::vector<std::string> names;
    for (int i = 0; i < 30; ++i) names.push_back("kernel_" + std::to_string(i));
    for (int i = 0; i < 30; ++i) {
      bk.push_back({names[static_cast<std::size_t>(i)].c_str(), 10, 10.0});
      nk.push_back({names[static_cast<std::size_t>(i)].c_str(), 10, 10.0 + i});
    }
    const kernel_run b = run("b", bk), n = run("n", nk);
    const kernel_diff d = diff_kernels({&b}, {&n});
    const std::string top = kernel_section(d, "#### k", 5);
    CHECK(top.find("`kernel_29`") < top.find("`kernel_25`"));
    CHECK(top.find("`kernel_24`") == std::string::npos);
    CHECK(top.find("\n25 more kernels changed less: `diffscope compare --kernels all` lists "
                   "them.\n") != std::string::npos);
    const std::string all = kernel_section(d, "#### k", all_kernel_rows);
    CHECK(all.find("`kernel_0`") != std::string::npos);
    CHECK(all.find("more kernels") == std::string::npos);
  }

  TEST_CASE("fast-path families: separate kernels replaced by a fused one are one group") {
    const char* norm = "DenoisingStage/block0/norm1";
    const kernel_run b = run("b", {{gemm, 840, 1200.0, "DenoisingStage/block0/ff"},
                                   {ln, 10000, 200.0, norm},
                                   {mul, 10831, 112.0, norm},
                                   {fmha, 280, 300.0, "DenoisingStage/block0/attn"}});
    const kernel_run n = run("n", {{gemm, 840, 1185.0, "DenoisingStage/block0/ff"},
                                   {fused, 560, 100.0, norm},
                                   {flash, 280, 150.0, "DenoisingStage/block0/attn"}});
    const kernel_diff d = diff_kernels({&b}, {&n});
    const kernel_family_diff* adaln = family(d, "adaln");
    REQUIRE(adaln != nullptr);
    CHECK(adaln->base_status == "missed");
    CHECK(adaln->new_status == "engaged");
    CHECK(adaln->base_separate == doctest::Approx(20831));
    CHECK(adaln->new_fused == doctest::Approx(560));
    CHECK(adaln->diff_ms() == doctest::Approx(-212.0));
    CHECK(row(d, fused)->fused);
    CHECK_FALSE(row(d, ln)->fused);
    const kernel_family_diff* attn = family(d, "attention_backend");
    REQUIRE(attn != nullptr);
    CHECK(attn->rows.size() == 2);
    CHECK(row(d, gemm)->family == -1);
    // The families rank with the lone kernels by their whole change.
    CHECK(printed_order(d) == std::vector<std::string>{"family adaln", ln, mul, fused,
                                                       "family attention_backend", fmha, flash,
                                                       gemm});
    const std::string md = kernel_section(d, "#### k");
    CHECK(md.find("- **AdaLN scale/shift/gate** (missed -> engaged): 20,831 separate kernel "
                  "launches -> 560 fused kernel launches, -212.00 ms\n") != std::string::npos);
    CHECK(md.find("- **attention backend** (missed -> engaged): 280 SDPA fallback kernel launches "
                  "-> 280 flash/fmha kernel launches, -150.00 ms\n") != std::string::npos);
    CHECK(md.find("| **AdaLN scale/shift/gate** | 20,831 | 560 | 312.00 | 100.00 | -212.00 | | | "
                  "fast path missed -> engaged |\n| \xE2\x86\xB3 `vectorized_layer_norm_kernel") !=
          std::string::npos);
  }

  TEST_CASE("a kernel that is evidence of several families goes where the status changed") {
    // Without scopes (a trace), LayerNorm is evidence of both QK norm + RoPE (a scoped family:
    // a weak claim here) and AdaLN; both fused paths engage in the new run.
    const kernel_run b = run("b", {{ln, 10, 3.0}, {mul, 10, 2.0}, {rope, 10, 1.5}});
    const kernel_run n =
        run("n", {{fused, 10, 0.8}, {"fused_inplace_qknorm_rope_kernel<128>", 10, 1.0}});
    const kernel_diff d = diff_kernels({&b}, {&n});
    REQUIRE(family(d, "adaln") != nullptr);
    REQUIRE(family(d, "qknorm_rope") != nullptr);
    CHECK(d.families[static_cast<std::size_t>(row(d, ln)->family)].id == "adaln");
    CHECK(d.families[static_cast<std::size_t>(row(d, rope)->family)].id == "qknorm_rope");
    // A kernel in no finding stays alone.
    const kernel_run c = run("c", {{gemm, 1, 1.0}}), e = run("e", {{gemm, 1, 2.0}});
    const kernel_diff plain = diff_kernels({&c}, {&e});
    CHECK(plain.families.empty());
    CHECK(plain.ranking.size() == 1);
  }

  TEST_CASE("repeated runs: each side's medians, a run without a kernel counts 0") {
    const kernel_run b1 = run("b1", {{gemm, 10, 10.0}, {"flaky", 4, 2.0}});
    const kernel_run b2 = run("b2", {{gemm, 10, 12.0}});
    const kernel_run b3 = run("b3", {{gemm, 10, 30.0}, {"flaky", 4, 2.0}});
    const kernel_run n1 = run("n1", {{gemm, 10, 9.0}}), n2 = run("n2", {{gemm, 12, 11.0}});
    const kernel_diff d = diff_kernels({&b1, &b2, &b3}, {&n1, &n2});
    const kernel_diff_row* g = row(d, gemm);
    CHECK(g->base.total_ms == doctest::Approx(12.0));  // median of 10, 12, 30
    CHECK(g->now.total_ms == doctest::Approx(10.0));   // mean of the middle two
    CHECK(g->now.count == doctest::Approx(11.0));
    CHECK(g->base.totals == std::vector<double>{10.0, 12.0, 30.0});
    const kernel_diff_row* f = row(d, "flaky");
    CHECK(f->base.total_ms == doctest::Approx(2.0));  // median of 2, 0, 2
    CHECK(f->base.totals == std::vector<double>{2.0, 0.0, 2.0});
    CHECK(std::string(f->change()) == "removed");
    const std::string md = kernel_section(d, "#### k");
    CHECK(md.find("Base: median of 3 runs (b1, b2, b3); New: median of 2 runs (n1, n2).") !=
          std::string::npos);
    CHECK(md.find("| `nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT` | 10 | 11 | 12.00 | 10.00 | "
                  "-2.00 | 1200.0 | 909.1 |  |") != std::string::npos);
  }

  TEST_CASE("a capped list: a kernel it leaves out is not listed, not removed; its times bound") {
    const kernel_run b =
        run("base.json", {{gemm, 10, 100.0}, {"short_a", 10, 3.0}, {"short_b", 10, 2.0}});
    // The new dump had 9 entries and lists its 2 longest.
    const kernel_run n = run("new.json", {{gemm, 10, 90.0}, {"added_kernel", 5, 7.0}}, 9);
    REQUIRE(n.capped());
    const kernel_diff d = diff_kernels({&b}, {&n});
    const kernel_diff_row* l = row(d, "short_a");
    CHECK_FALSE(l->now.known);
    CHECK(std::string(l->change()) == "not listed in new");
    CHECK(std::string(row(d, "added_kernel")->change()) == "added");  // the base lists all
    CHECK(row(d, gemm)->now.at_least);
    // Known changes first, then the rows whose change is unknown.
    CHECK(printed_order(d) == std::vector<std::string>{gemm, "added_kernel", "short_a", "short_b"});
    REQUIRE(d.now.caps.size() == 1);
    CHECK(d.now.caps[0].floor_ms == doctest::Approx(7.0));
    const std::string md = kernel_section(d, "#### k");
    CHECK(md.find("| `short_a` | 10 | not listed | 3.00 | not listed | ? | 300.0 | - | not listed "
                  "in new |") != std::string::npos);
    CHECK(md.find("| `nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT` | 10 | \xE2\x89\xA5"
                  "10 | 100.00 | \xE2\x89\xA5"
                  "90.00 | \xE2\x89\xA5-10.00 |") != std::string::npos);
    CHECK(md.find("new.json lists its 2 longest kernel entries of 9") != std::string::npos);
    CHECK(md.find("| removed |") == std::string::npos);
  }

  TEST_CASE("dumps without kernels: the section says why, with no rows of zeros") {
    diffscope::results perf = sample::profiled();
    perf.status.mode = "perf";
    perf.kernels.clear();
    diffscope::results cpu = sample::profiled();
    cpu.status.gpu_timing = false;
    cpu.status.reason = "no CUDA driver";
    const perf_dump_data p = parse(diffscope::perf_dump_json(perf), "perf.json");
    const perf_dump_data c = parse(diffscope::perf_dump_json(cpu), "cpu.json");
    const perf_dump_data old = parse(
        R"({"total_duration_ms": 5, "diffscope": {"status": {"gpu_timing": true}}})", "old.json");
    CHECK(kernel_run_of(p).absent.find("perf mode times scopes, not kernels") != std::string::npos);
    CHECK(kernel_run_of(c).absent == "GPU timing was not measured (no CUDA driver)");
    CHECK(kernel_run_of(old).absent.find("no kernel list") != std::string::npos);
    const kernel_run rp = kernel_run_of(p), rc = kernel_run_of(c), rp2 = kernel_run_of(p);
    const kernel_diff d = diff_kernels({&rp}, {&rc});
    CHECK(d.rows.empty());
    const std::string md = kernel_section(d, "#### 4. k");
    CHECK(md ==
          "\n#### 4. k\nNo kernel rows:\n- perf.json: a perf-mode dump: perf mode times "
          "scopes, not kernels (profile mode lists them).\n- cpu.json: GPU timing was not "
          "measured (no CUDA driver).\n");
    const kernel_run none = run("none", {});
    CHECK(kernel_section(diff_kernels({&none}, {&none}), "#### k") ==
          "\n#### k\nNo kernel rows: no run lists a kernel (no GPU work was recorded).\n");
    // The same dump on both sides is named once.
    const std::string same = kernel_section(diff_kernels({&rp}, {&rp2}), "#### k");
    CHECK(same.find("- perf.json") == same.rfind("- perf.json"));
  }

  TEST_CASE("a dump's list: names demangled, entries per scope summed, wrong types refused") {
    diffscope::results r = sample::profiled();
    const perf_dump_data d = parse(diffscope::perf_dump_json(r), "a.json");
    const kernel_run kr = kernel_run_of(d);
    CHECK(kr.absent.empty());
    CHECK(kr.res.kernels.size() == r.kernels.size());
    CHECK_FALSE(kr.capped());
    const perf_dump_data mangled = parse(
        R"({"diffscope": {"status": {"gpu_timing": true, "mode": "profile"}, "kernels_total": 3,
            "kernels": [{"name": "_ZN5flash16FlashAttnFwdSm90IN7cutlass10bfloat16_tELi128ELi128ELb1EEEvNS_6ParamsE", "count": 2, "total_ms": 1.5}]}})",
        "m.json");
    const kernel_run m = kernel_run_of(mangled);
    REQUIRE(m.res.kernels.size() == 1);
    CHECK(m.res.kernels[0].name ==
          "void flash::FlashAttnFwdSm90<cutlass::bfloat16_t, 128, 128, true>(flash::Params)");
    CHECK(m.capped());
    const auto error_of = [](const char* text) {
      try {
        (void)kernel_run_of(parse(text, "bad.json"));
      } catch (const failure& f) {
        CHECK(f.code == exit_usage);
        return std::string(f.what());
      }
      return std::string();
    };
    const std::string head = R"({"diffscope": {"status": {"gpu_timing": true}, )";
    CHECK(error_of((head + R"("kernels": {}}})").c_str()) ==
          "bad.json: diffscope.kernels is not an array");
    CHECK(error_of((head + R"("kernels": [{"name": "a", "count": 1}]}})").c_str()) ==
          "bad.json: diffscope.kernels[0] lacks name/total_ms");
    CHECK(error_of((head + R"("kernels": [{"name": 5, "count": 1, "total_ms": 1}]}})").c_str()) ==
          "bad.json: diffscope.kernels[0].name is not a string");
    CHECK(error_of((head + R"("kernels": [], "kernels_total": -1}})").c_str()) ==
          "bad.json: diffscope.kernels_total is negative");
  }

  TEST_CASE("a dump lists every kernel entry of a real model: nothing is left off the diff") {
    diffscope::results r = sample::profiled();
    r.kernels.clear();
    for (int i = 0; i < 600; ++i) {
      diffscope::kernel_result e;
      e.name = std::string(mul) + " #" + std::to_string(i);
      e.mangled = "_ZN2at6native29vectorized_elementwise_kernelILi4EE" + std::to_string(i);
      e.kind = "kernel";
      e.scope_path = "DenoisingStage/denoising_loop/denoising_step_0/transformer.blocks." +
                     std::to_string(i / 20) + ".attn";
      e.count = 28;
      e.total_ms = 1000.0 / (i + 1);
      r.kernels.push_back(e);
    }
    const std::string text = diffscope::perf_dump_json(r);
    const kernel_run kr = kernel_run_of(parse(text, "big.json"));
    CHECK(kr.res.kernels.size() == 600);
    CHECK_FALSE(kr.capped());
    CHECK(text.size() < (1u << 20));
  }

  TEST_CASE("compare's kernel sections: one per NEW dump that carries a diffscope object") {
    diffscope::results r = sample::profiled();
    const perf_dump_data a = parse(diffscope::perf_dump_json(r), "a.json");
    const perf_dump_data b = parse(diffscope::perf_dump_json(r), "b.json");
    const perf_dump_data sg = parse(R"({"total_duration_ms": 5})", "sg.json");
    CHECK(dump_kernel_sections({a, b}).find("#### 4. diffscope: GPU time per kernel (New)\n| "
                                            "Kernel |") != std::string::npos);
    const std::string three = dump_kernel_sections({a, sg, b});
    CHECK(three.find("(sg.json)") == std::string::npos);
    CHECK(three.find("#### 4. diffscope: GPU time per kernel (b.json)") != std::string::npos);
    CHECK(dump_kernel_sections({sg, a}).empty());
    CHECK(repeated_kernel_section({a}, {b, sg}).empty());
    CHECK(repeated_kernel_section({a}, {b}).rfind("\n#### diffscope: GPU time per kernel\n", 0) ==
          0);
  }

  TEST_CASE("a sampled dump's kernels are compared, marked as estimates") {
    const auto s = parse(diffscope::perf_dump_json(sample::sampled(), {}), "s.json");
    const auto p = parse(diffscope::perf_dump_json(sample::profiled(), {}), "p.json");
    const kernel_run rs = kernel_run_of(s), rp = kernel_run_of(p);
    CHECK(rs.absent.empty());
    const kernel_diff d = diff_kernels({&rp}, {&rs});
    CHECK(d.absent.empty());
    CHECK(d.now.estimated);
    CHECK_FALSE(d.base.estimated);
    const kernel_diff_row* nvjet = row(d, "nvjet_gemm \"quoted\" \\ back");
    REQUIRE(nvjet != nullptr);
    CHECK(nvjet->now.estimated);
    CHECK_FALSE(nvjet->base.estimated);
    const std::string md = kernel_section(d, "#### k");
    CHECK(md.find("| **All kernels** | 424 | ~424 | 1070.50 | ~1070.50 |") != std::string::npos);
    CHECK(md.find(" | 200 | ~200 | 330.00 | ~330.00 | ") != std::string::npos);
    CHECK(md.find("| **attention backend** | 96 | ~96 | 440.00 | ~440.00 |") != std::string::npos);
    CHECK(md.find("~ before a count or total: an estimate") != std::string::npos);
    // Two profile dumps: no such marks.
    const std::string plain = kernel_section(diff_kernels({&rp}, {&rp}), "#### k");
    CHECK(plain.find("an estimate") == std::string::npos);
    CHECK(plain.find("| ~") == std::string::npos);
  }
}
