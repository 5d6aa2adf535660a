// diffscope: communication/compute overlap on one device, from interval lists.
//
// For a scope call, the aggregator splits the GPU operations of one device into communication
// kernels (is_communication_kernel) and the rest, and asks how much of the communication time
// was hidden behind other work:
//   busy       = |union(comm)|                       time some comm kernel was running
//   overlapped = |union(comm) ∩ union(compute)|      ... while other work was running too
//   exposed    = busy - overlapped                   ... while nothing else was running
// Intervals are half-open [start, end) in ns; empty or inverted ones count as nothing.
// Pure functions, no allocation beyond what the caller's vectors already hold.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace diffscope::detail {

/// [start, end) in ns.
using ns_interval = std::pair<std::uint64_t, std::uint64_t>;

/// Sorts `v` and merges it in place into disjoint intervals in increasing order; empty and
/// inverted intervals are dropped, touching ones ([0,5) and [5,9)) are joined.
inline void merge_intervals(std::vector<ns_interval>& v) {
  v.erase(
      std::remove_if(v.begin(), v.end(), [](const ns_interval& i) { return i.second <= i.first; }),
      v.end());
  if (v.size() < 2) return;
  std::sort(v.begin(), v.end());
  std::size_t out = 0;
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i].first <= v[out].second)
      v[out].second = std::max(v[out].second, v[i].second);
    else
      v[++out] = v[i];
  }
  v.resize(out + 1);
}

/// Total length of intervals that merge_intervals produced (disjoint).
inline std::uint64_t merged_length(const std::vector<ns_interval>& merged) {
  std::uint64_t total = 0;
  for (const auto& i : merged) total += i.second - i.first;
  return total;
}

/// Length of the intersection of two merged lists (both from merge_intervals): one sweep.
inline std::uint64_t intersection_length(const std::vector<ns_interval>& a,
                                         const std::vector<ns_interval>& b) {
  std::uint64_t total = 0;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const std::uint64_t lo = std::max(a[i].first, b[j].first);
    const std::uint64_t hi = std::min(a[i].second, b[j].second);
    if (lo < hi) total += hi - lo;
    // Drop whichever ends first: it cannot meet anything later in the other list.
    if (a[i].second < b[j].second)
      ++i;
    else
      ++j;
  }
  return total;
}

/// Communication time of one scope call on one device (or a sum of calls), in ns.
struct comm_overlap {
  std::uint64_t busy = 0;        ///< length of the union of comm kernel intervals
  std::uint64_t overlapped = 0;  ///< of which other work ran at the same time
  std::uint64_t exposed = 0;     ///< busy - overlapped: comm with nothing else running
  std::uint64_t kernels = 0;     ///< comm kernels counted (empty ones included)

  comm_overlap& operator+=(const comm_overlap& o) {
    busy += o.busy;
    overlapped += o.overlapped;
    exposed += o.exposed;
    kernels += o.kernels;
    return *this;
  }
};

/// Overlap of `comm` kernels with `compute` operations (any order; both are sorted and merged
/// in place, so pass copies if the caller needs them as they were).
inline comm_overlap compute_comm_overlap(std::vector<ns_interval>& comm,
                                         std::vector<ns_interval>& compute) {
  comm_overlap r;
  r.kernels = comm.size();
  merge_intervals(comm);
  merge_intervals(compute);
  r.busy = merged_length(comm);
  r.overlapped = intersection_length(comm, compute);
  r.exposed = r.busy - r.overlapped;
  return r;
}

namespace overlap_detail {

inline bool iequal(char a, char b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return lower(a) == lower(b);
}

/// Case-insensitive substring test (needle lower case).
inline bool icontains(std::string_view hay, std::string_view needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), iequal) != hay.end();
}

/// The name without an Itanium mangling prefix: "_Z", then "N" or "L" and CV qualifiers, then
/// the length of the first identifier ("_Z38ncclDevKernel_..." -> "ncclDevKernel_...").
inline std::string_view unmangled_head(std::string_view name) {
  if (name.substr(0, 2) != "_Z") return name;
  std::size_t i = 2;
  while (i < name.size() && (name[i] == 'N' || name[i] == 'L' || name[i] == 'K' || name[i] == 'V'))
    ++i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  return name.substr(i);
}

}  // namespace overlap_detail

/// Substrings (case-insensitive) that name a communication kernel anywhere in its name:
/// collectives as custom kernels spell them (SGLang/vLLM custom all-reduce
/// `cross_device_reduce_{1,2}stage`, torch symmetric memory `one_shot_all_reduce`,
/// `multimem_all_gather`, TensorRT-LLM/FlashInfer `allreduce_fusion`, Ulysses `all_to_all`),
/// plus NVSHMEM and MSCCL++ kernels.
inline constexpr std::string_view comm_kernel_substrings[] = {
    "all_reduce",          "allreduce",     "all_gather", "allgather",
    "reduce_scatter",      "reducescatter", "all_to_all", "alltoall",
    "cross_device_reduce", "nvshmem",       "mscclpp"};

/// True for a GPU kernel that moves data between devices: a name that starts with "nccl"
/// (NCCL's `ncclDevKernel_*`, `ncclKernel_*`, also when Itanium-mangled), or that contains
/// one of comm_kernel_substrings. This extends the `nccl_comm` hotspot category
/// (`ncclDevKernel|all_gather|all_reduce`) with the collectives SGLang's sequence parallelism
/// uses (all-to-all, reduce-scatter) and the custom all-reduce families.
inline bool is_communication_kernel(std::string_view name) {
  if (overlap_detail::unmangled_head(name).substr(0, 4) == "nccl") return true;
  for (const auto s : comm_kernel_substrings)
    if (overlap_detail::icontains(name, s)) return true;
  return false;
}

}  // namespace diffscope::detail
