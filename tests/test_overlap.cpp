// Communication/compute overlap (aggregate/overlap.hpp): interval unions, intersections, the
// comm_overlap numbers against a brute-force count on a grid, and the kernel-name rule.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include <diffscope/aggregate/overlap.hpp>

using diffscope::detail::comm_overlap;
using diffscope::detail::compute_comm_overlap;
using diffscope::detail::intersection_length;
using diffscope::detail::is_communication_kernel;
using diffscope::detail::merge_intervals;
using diffscope::detail::merged_length;
using diffscope::detail::ns_interval;
using list = std::vector<ns_interval>;

namespace {

comm_overlap overlap_of(list comm, list compute) {
  return compute_comm_overlap(comm, compute);
}

}  // namespace

TEST_SUITE("overlap") {
  TEST_CASE("merging intervals keeps their union") {
    SUBCASE("empty") {
      list v;
      merge_intervals(v);
      CHECK(v.empty());
      CHECK(merged_length(v) == 0);
    }
    SUBCASE("empty and inverted intervals count as nothing") {
      list v{{5, 5}, {9, 3}, {0, 0}};
      merge_intervals(v);
      CHECK(v.empty());
    }
    SUBCASE("touching intervals join") {
      list v{{5, 9}, {0, 5}};
      merge_intervals(v);
      CHECK(v == list{{0, 9}});
    }
    SUBCASE("nested and overlapping, unsorted") {
      list v{{20, 30}, {0, 10}, {2, 4}, {8, 12}, {25, 26}, {40, 41}};
      merge_intervals(v);
      CHECK(v == list{{0, 12}, {20, 30}, {40, 41}});
      CHECK(merged_length(v) == 12 + 10 + 1);
    }
    SUBCASE("duplicates") {
      list v{{1, 3}, {1, 3}, {1, 3}};
      merge_intervals(v);
      CHECK(v == list{{1, 3}});
    }
  }

  TEST_CASE("intersection length of two unions") {
    list a{{0, 10}, {20, 30}}, b{{5, 25}};
    CHECK(intersection_length(a, b) == 5 + 5);
    CHECK(intersection_length(b, a) == 10);
    CHECK(intersection_length(a, list{}) == 0);
    CHECK(intersection_length(list{}, a) == 0);
    CHECK(intersection_length(a, a) == 20);
    CHECK(intersection_length(a, list{{10, 20}}) == 0);  // touching is not overlapping
    CHECK(intersection_length(list{{0, 100}}, list{{1, 2}, {3, 4}, {50, 60}}) == 12);
    CHECK(intersection_length(list{{0, 10}}, list{{0, 10}}) == 10);  // equal ends
  }

  TEST_CASE("comm overlap: the cases that matter") {
    SUBCASE("no communication") {
      const auto r = overlap_of({}, {{0, 100}});
      CHECK(r.busy == 0);
      CHECK(r.overlapped == 0);
      CHECK(r.exposed == 0);
      CHECK(r.kernels == 0);
    }
    SUBCASE("no compute: all exposed") {
      const auto r = overlap_of({{0, 10}, {5, 20}}, {});
      CHECK(r.busy == 20);
      CHECK(r.exposed == 20);
      CHECK(r.overlapped == 0);
      CHECK(r.kernels == 2);
    }
    SUBCASE("fully hidden behind compute") {
      const auto r = overlap_of({{10, 20}, {30, 40}}, {{0, 50}});
      CHECK(r.busy == 20);
      CHECK(r.overlapped == 20);
      CHECK(r.exposed == 0);
    }
    SUBCASE("disjoint: comm after compute") {
      const auto r = overlap_of({{50, 60}}, {{0, 50}});
      CHECK(r.overlapped == 0);
      CHECK(r.exposed == 10);
    }
    SUBCASE("partly overlapped, compute split over streams") {
      // comm [10, 40); compute on two streams [0, 15) and [12, 25): union [0, 25).
      const auto r = overlap_of({{10, 40}}, {{12, 25}, {0, 15}});
      CHECK(r.busy == 30);
      CHECK(r.overlapped == 15);
      CHECK(r.exposed == 15);
    }
    SUBCASE("two comm kernels at once count once") {
      const auto r = overlap_of({{0, 10}, {0, 10}}, {{5, 6}});
      CHECK(r.busy == 10);
      CHECK(r.overlapped == 1);
      CHECK(r.kernels == 2);
    }
    SUBCASE("calls add up") {
      comm_overlap sum;
      sum += overlap_of({{0, 10}}, {{0, 4}});
      sum += overlap_of({{100, 110}}, {});
      CHECK(sum.busy == 20);
      CHECK(sum.overlapped == 4);
      CHECK(sum.exposed == 16);
      CHECK(sum.kernels == 2);
    }
  }

  TEST_CASE("comm overlap matches a brute-force count on a grid") {
    std::mt19937_64 rng(12345);
    constexpr std::uint64_t grid = 200;
    for (int trial = 0; trial < 2000; ++trial) {
      std::uniform_int_distribution<int> count(0, 8);
      std::uniform_int_distribution<std::uint64_t> pos(0, grid);
      auto make = [&] {
        list v;
        const int n = count(rng);
        for (int i = 0; i < n; ++i) v.emplace_back(pos(rng), pos(rng));  // some inverted
        return v;
      };
      const list comm = make(), compute = make();
      std::uint64_t busy = 0, both = 0;
      for (std::uint64_t t = 0; t < grid; ++t) {
        auto covers = [t](const list& v) {
          for (const auto& i : v)
            if (i.first <= t && t < i.second) return true;
          return false;
        };
        const bool c = covers(comm);
        busy += c;
        both += c && covers(compute);
      }
      const auto r = overlap_of(comm, compute);
      REQUIRE(r.busy == busy);
      REQUIRE(r.overlapped == both);
      REQUIRE(r.exposed == busy - both);
      REQUIRE(r.kernels == comm.size());
    }
  }

  TEST_CASE("communication kernels are told by name") {
    // NCCL, demangled and mangled.
    CHECK(is_communication_kernel(
        "ncclDevKernel_AllToAll_RING_LL(ncclDevKernelArgsStorage<4096ul>)"));
    CHECK(is_communication_kernel("ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)"));
    CHECK(is_communication_kernel("ncclKernel_AllReduce_RING_LL_Sum_float"));
    CHECK(is_communication_kernel(
        "_Z29ncclDevKernel_AllGather_RING_LL24ncclDevKernelArgsStorageILm4096EE"));
    // Custom all-reduce and symmetric-memory families.
    CHECK(is_communication_kernel(
        "void sglang::cross_device_reduce_1stage<__nv_bfloat16, 2>(sglang::RankData*, ...)"));
    CHECK(is_communication_kernel(
        "_ZN4vllm26cross_device_reduce_2stageI6__halfLi8EEEvPNS_8RankDataE"));
    CHECK(is_communication_kernel("c10d::symmetric_memory::one_shot_all_reduce_kernel<float, 16>"));
    CHECK(is_communication_kernel("multimem_all_gather_kernel"));
    CHECK(is_communication_kernel("allreduce_fusion_kernel_oneshot_lamport"));
    CHECK(is_communication_kernel("twoShotAllReduceKernel"));
    CHECK(is_communication_kernel("ulysses_all_to_all_pack"));
    CHECK(is_communication_kernel("nvshmemi_transfer_kernel"));
    // Compute kernels, including ones whose names come close.
    CHECK_FALSE(is_communication_kernel(""));
    CHECK_FALSE(is_communication_kernel("flash_fwd_kernel"));
    CHECK_FALSE(is_communication_kernel("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT"));
    CHECK_FALSE(is_communication_kernel(
        "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float>>"));
    CHECK_FALSE(is_communication_kernel("triton_red_fused_all_0"));
    CHECK_FALSE(is_communication_kernel("fused_inplace_qknorm_rope"));
    CHECK_FALSE(is_communication_kernel("NCCL"));  // prefix is lower-case nccl
    CHECK_FALSE(is_communication_kernel("memcpy DtoD"));
  }
}
