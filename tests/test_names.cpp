// Kernel names as people read them (util/demangle.hpp) and short table labels that never merge
// two rows (util/short_names.hpp), including a property test over random scope trees.
#include <doctest/doctest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include <diffscope/aggregate/names.hpp>
#include <diffscope/util/demangle.hpp>
#include <diffscope/util/short_names.hpp>

using namespace diffscope::detail;

TEST_SUITE("names") {
  TEST_CASE("a CUDA kernel's mangled name demangles to the text torch.profiler shows") {
    // nvcc's symbol for at::native::(anonymous namespace)::foo_kernel<float>(int, float*)
    CHECK(demangle("_ZN2at6native12_GLOBAL__N_110foo_kernelIfEEviPT_") ==
          "void at::native::(anonymous namespace)::foo_kernel<float>(int, float*)");
    CHECK(demangle("_Z6kernelPfi") == "kernel(float*, int)");
  }

  TEST_CASE("names that are not mangled or do not demangle come back unchanged") {
    CHECK(demangle("ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_32x5_tn") ==
          "ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_32x5_tn");
    CHECK(demangle("void at::native::foo<float>(int)") == "void at::native::foo<float>(int)");
    CHECK(demangle("") == "");
    CHECK(demangle("_Z") == "_Z");
    CHECK(demangle("_ZN2at6nat") == "_ZN2at6nat");  // cut short
    CHECK(demangle("_Zzzzz!!") == "_Zzzzz!!");
    CHECK_FALSE(looks_mangled("Z_x"));
    CHECK(looks_mangled("_ZN1a1bEv"));
  }

  TEST_CASE("the name table interns a kernel under its demangled text, once per symbol") {
    name_table names(0);
    const std::uint32_t a = names.intern_kernel("_Z6kernelPfi");
    CHECK(names.name_of(a) == "kernel(float*, int)");
    CHECK(names.mangled_of(a) == "_Z6kernelPfi");
    CHECK(names.intern_kernel("_Z6kernelPfi") == a);
    const std::size_t stored = names.stored();
    // A symbol that does not demangle, and a plain name, are kept as they are.
    const std::uint32_t cut = names.intern_kernel("_ZN2at6nat");
    CHECK(names.name_of(cut) == "_ZN2at6nat");
    CHECK(names.mangled_of(cut).empty());
    const std::uint32_t plain = names.intern_kernel("nvjet_tst_128x256");
    CHECK(names.name_of(plain) == "nvjet_tst_128x256");
    CHECK(names.mangled_of(plain).empty());
    CHECK(names.stored() == stored + 2);
    // Range names and kernel names of one text share the id, as they always did.
    CHECK(names.intern("kernel(float*, int)", false) == a);
  }

  TEST_CASE("a kernel's display name drops return type, parameters and namespaces") {
    CHECK(kernel_display_name("void at::native::(anonymous namespace)::vectorized_layer_norm_"
                              "kernel<float, float>(int, float, float const*)") ==
          "vectorized_layer_norm_kernel<float, float>");
    CHECK(kernel_display_name("void at::native::elementwise_kernel<128, 2, "
                              "at::native::gpu_kernel_impl<at::native::Add>(at::TensorIteratorBase&"
                              ")::{lambda(int)#1}>(int, at::native::Add)") ==
          "elementwise_kernel<128, 2, at::native::gpu_kernel_impl<at::native::Add>(at::"
          "TensorIteratorBase&)::{lambda(int)#1}>");
    CHECK(kernel_display_name("kernel(float*, int)") == "kernel");
    CHECK(kernel_display_name("nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NNN") ==
          "nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NNN");
    CHECK(kernel_display_name("_ZN2at6nat") == "_ZN2at6nat");
    CHECK(kernel_display_name("Memcpy HtoD (Pageable -> Device)") == "Memcpy HtoD");
  }

  TEST_CASE("a child that repeats its parent's qualified name is shown relative to it") {
    CHECK(relative_name("transformer.time_text_embed.timestep_embedder.linear_1",
                        "transformer.time_text_embed.timestep_embedder") == ".linear_1");
    CHECK(relative_name("transformer.blocks", "transformer.block") == "transformer.blocks");
    CHECK(relative_name("attention", "block") == "attention");
    CHECK(relative_name("block", "") == "block");
    CHECK(relative_name("block.", "block") == "block.");
  }

  TEST_CASE("a path shows each name relative to the one before it") {
    CHECK(compact_path("request/DenoisingStage/predict_noise/transformer.blocks.0/"
                       "transformer.blocks.0.attn/transformer.blocks.0.attn.to_q") ==
          "request/DenoisingStage/predict_noise/transformer.blocks.0/.attn/.to_q");
    CHECK(compact_path("a") == "a");
    CHECK(compact_path("") == "");
    CHECK(compact_path("a//a.b") == "a//a.b");
    CHECK(compact_path("x/x.y/z") == "x/.y/z");
  }

  TEST_CASE("a kernel's short name: kernels shortened, copies and sets as they are") {
    CHECK(short_kernel_name("void at::native::foo<float>(int)", "kernel") == "foo<float>");
    CHECK(short_kernel_name("fused kernel (variant)", "kernel") == "fused kernel");
    CHECK(short_kernel_name("Memcpy HtoD (Pageable -> Device)", "memcpy") ==
          "Memcpy HtoD (Pageable -> Device)");
    CHECK(short_kernel_name("ctl\x01", "memset") == "ctl?");  // made printable
    CHECK(short_kernel_name("a\x01"
                            "b(int)",
                            "kernel") == "a?b");
  }

  TEST_CASE("scope tree labels: relative to the parent, distinct where relative names repeat") {
    const std::vector<std::string> names = {"transformer.blocks.0", "transformer.blocks.0.attn",
                                            "transformer.blocks.1", "transformer.blocks.1.attn",
                                            "transformer.embed",    "transformer.embed.linear_1"};
    const std::vector<std::string> parents = {
        "", "transformer.blocks.0", "", "transformer.blocks.1", "", "transformer.embed"};
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < names.size(); ++i)
      keys.push_back(parents[i].empty() ? names[i] : parents[i] + "/" + names[i]);
    const auto out = tree_labels(names, parents, keys, 60);
    REQUIRE(out.size() == 6);
    CHECK(out[0] == "transformer.blocks.0");
    CHECK(out[5] == ".linear_1");
    CHECK(out[1].rfind(".attn #", 0) == 0);
    CHECK(out[3].rfind(".attn #", 0) == 0);
    CHECK(out[1] != out[3]);
  }

  TEST_CASE("middle truncation keeps both ends and never splits a UTF-8 character") {
    CHECK(truncate_middle("short", 10) == "short");
    CHECK(truncate_middle("abcdefghijklmnopqrstuvwxyz", 11) == "abcd...wxyz");
    CHECK(display_width(truncate_middle("abcdefghijklmnopqrstuvwxyz", 11)) == 11);
    const std::string greek = "\xce\xb1\xce\xb2\xce\xb3\xce\xb4\xce\xb5\xce\xb6\xce\xb7\xce\xb8";
    const std::string cut = truncate_middle(greek, 7);
    CHECK(display_width(cut) == 7);
    CHECK(cut == "\xce\xb1\xce\xb2...\xce\xb7\xce\xb8");
  }

  TEST_CASE("labels that would print alike get a hash of their key, equal keys stay equal") {
    const std::vector<std::string> keys = {
        "request/DenoisingStage/denoising_loop/a/denoise_step/predict_noise/transformer.attn",
        "request/DenoisingStage/denoising_loop/b/denoise_step/predict_noise/transformer.attn",
        "request/DenoisingStage/denoising_loop/a/denoise_step/predict_noise/transformer.attn",
        "short"};
    const auto out = distinct_labels(keys, keys, 40);
    REQUIRE(out.size() == 4);
    CHECK(out[0] != out[1]);
    CHECK(out[0] == out[2]);
    CHECK(out[3] == "short");
    for (const auto& s : out) CHECK(display_width(s) <= 40);
    CHECK(out[0].find(" #") != std::string::npos);
  }

  TEST_CASE("tree labels of random qualified-name trees are distinct for distinct paths") {
    std::mt19937 rng(11);
    const std::vector<std::string> parts = {
        "attn", "to_q", "linear_1", "0", "1", "norm", "ff.net.0.proj", "a_rather_long_module_name",
        ""};
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<std::string> names, parents, paths;
      const int n = 1 + static_cast<int>(rng() % 80);
      for (int i = 0; i < n; ++i) {
        // A child of an earlier node (or a root), named by its parent's name and a part, as
        // SGLang's layerwise ranges are, or by a part alone.
        const int parent = i == 0 ? -1 : static_cast<int>(rng() % (i + 1)) - 1;
        const std::string pname = parent < 0 ? "" : names[static_cast<std::size_t>(parent)];
        const std::string part = parts[rng() % parts.size()];
        names.push_back(rng() % 4 != 0 && !pname.empty() ? pname + "." + part : part);
        parents.push_back(pname);
        paths.push_back(parent < 0 ? names.back()
                                   : paths[static_cast<std::size_t>(parent)] + "/" + names.back());
      }
      const std::size_t max = 5 + rng() % 50;
      const auto out = tree_labels(names, parents, paths, max);
      REQUIRE(out.size() == names.size());
      for (std::size_t i = 0; i < out.size(); ++i)
        for (std::size_t j = i + 1; j < out.size(); ++j) {
          if (paths[i] == paths[j])
            CHECK(out[i] == out[j]);
          else
            CHECK_MESSAGE(out[i] != out[j], "rows ", i, " and ", j, " print '", out[i], "'");
        }
    }
  }

  TEST_CASE("shortened labels of random scope trees are distinct for distinct paths") {
    std::mt19937 rng(7);
    const std::vector<std::string> parts = {"transformer",
                                            "blocks",
                                            "attn",
                                            "to_q",
                                            "linear_1",
                                            "norm",
                                            "x",
                                            "a_very_long_module_name_that_repeats",
                                            "",
                                            "."};
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<std::string> paths, labels;
      const int n = 1 + static_cast<int>(rng() % 60);
      for (int i = 0; i < n; ++i) {
        std::string p;
        const int depth = 1 + static_cast<int>(rng() % 8);
        for (int d = 0; d < depth; ++d) p += (d ? "/" : "") + parts[rng() % parts.size()];
        paths.push_back(p);
        // Labels are often less specific than keys (a leaf name, a relative name).
        labels.push_back(p.size() % 2 ? p.substr(p.rfind('/') + 1) : p);
      }
      const std::size_t max = 5 + rng() % 40;
      const auto out = distinct_labels(labels, paths, max);
      REQUIRE(out.size() == paths.size());
      for (std::size_t i = 0; i < out.size(); ++i)
        for (std::size_t j = i + 1; j < out.size(); ++j) {
          if (paths[i] == paths[j])
            CHECK(out[i] == out[j]);
          else
            CHECK_MESSAGE(out[i] != out[j], "rows ", i, " and ", j, " print '", out[i], "'");
        }
    }
  }
}
