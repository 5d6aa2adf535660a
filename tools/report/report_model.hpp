// `diffscope report`'s view of perf dumps: each dump read by the one dump reader
// (tools/lib/dump_reader.hpp, the input rules of docs/outputs.md) into a plain model of what
// the page shows, and what the dump lacks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <diffscope/analysis/hotspots.hpp>
#include <diffscope/results.hpp>

#include "../lib/dump_reader.hpp"

namespace diffscope::cli::report {

/// GPU numbers of a stage, step or scope; absent (has false) when not measured.
struct gpu_numbers {
  bool has = false;
  double busy_ms = 0, envelope_ms = 0;
  bool estimated = false;
};

/// One stage or denoise step: host time when the dump has it, GPU numbers when measured,
/// and the value the SGLang part of the dump holds (duration_ms).
struct timed_row {
  std::string name;  ///< stage name, or the step index as text
  std::int64_t step = -1;
  std::optional<double> host_ms;
  gpu_numbers gpu;
  double duration_ms = 0;
  std::string duration_source;    ///< "gpu_span", "gpu_envelope", "host" or "" (unknown)
  std::optional<double> span_ms;  ///< sampled mode: the span between device events
  bool traced = true;  ///< sampled mode: false for a step whose operations were not traced
  /// A step's GPU busy by kernel category (diffscope.steps[].categories, in the dump's
  /// order); absent where the dump has none (perf mode, host only, an older dump).
  std::optional<std::vector<std::pair<std::string, double>>> categories;
};

struct comm_numbers {
  std::int64_t rank = -1;  ///< -1: the dump's own process
  double busy_ms = 0, overlapped_ms = 0, exposed_ms = 0;
  std::int64_t kernels = 0;
};

struct scope_row {
  std::string path, name, category;
  int depth = 0;             ///< from the path: number of '/' separators
  std::int64_t parent = -1;  ///< index of the enclosing path among the rows, -1 when none
  std::optional<std::int64_t> calls;
  std::optional<double> host_ms;
  gpu_numbers gpu;
  std::optional<comm_numbers> comm;
};

/// One kernel entry of diffscope.kernels (a name in one scope), with its category.
struct kernel_row {
  std::string name, kind, scope_path, category;
  std::uint64_t count = 0;
  double total_ms = 0;
  bool estimated = false;  ///< sampled mode: scaled from the traced steps
};

/// The console's ranking, categories and fast-path findings (analysis/hotspots.hpp), as the
/// page shows them.
using ranked_kernel_row = diffscope::ranked_kernel;
using category_row = diffscope::category_total;
using family_row = diffscope::family_finding;

/// A denoise step or stage over the ranks of a merged dump (diffscope.critical_path).
struct spread_row {
  std::string name;  ///< stage name, or the step index as text
  std::int64_t step = -1;
  double duration_ms = 0, min_ms = 0, spread_ms = 0;
  std::int64_t straggler = -1;
  std::vector<std::pair<std::int64_t, double>> ranks;  ///< (rank, ms) in rank order
};

struct comm_scope_row {
  std::string path, category;
  bool attention = false;
  std::vector<comm_numbers> ranks;
};

/// What `diffscope merge` wrote (docs/multi_gpu.md); present false for other dumps.
struct merge_view {
  bool present = false;
  std::string rank_source;
  std::vector<std::pair<std::int64_t, std::string>> ranks;  ///< (rank, file), in rank order
  std::vector<spread_row> steps, stages;
  std::vector<comm_scope_row> comm_scopes;
};

/// One dump as the page shows it.
struct run_view {
  perf_dump_data dump;  ///< as the reader gave it (compare's Markdown is made from these)
  std::string label;    ///< the column and series name (--labels, else the file's base name)

  // Header: what was measured.
  std::string mode;  ///< diffscope.status.mode as written ("" when absent)
  std::string gpu_name, driver_version, hostname;
  std::int64_t device_count = -1;
  std::optional<bool> gated;
  std::string gate_verdict;
  std::optional<std::int64_t> requests_counted, requests_warmups;
  /// The requests every table covers, in words (analysis/figures.hpp); "" for a dump that
  /// does not name its window (written before it had one: the whole run).
  std::string window;
  std::string outside;  ///< GPU work outside every counted request, in words; "" when none
  std::int64_t perf_sample_steps = 0;
  diffscope::sampling_info sampling;  ///< sampled mode: which steps were traced (active)
  std::vector<std::pair<std::string, std::uint64_t>> faults;  ///< the non-zero counters
  bool has_faults = false;                                    ///< a faults object was there
  std::int64_t unclosed_ranges = 0;
  std::string overhead;  ///< one line as the console writes it; "" when absent

  /// From diffscope.stages (host and GPU); else from the SGLang part's steps (duration only).
  std::vector<timed_row> stages;
  bool stages_detailed = false;
  /// From diffscope.steps (host and GPU); else from denoise_steps_ms (duration only).
  std::vector<timed_row> steps;
  bool steps_detailed = false;

  std::vector<scope_row> scopes;
  bool scopes_have_gpu = false;  ///< some scope carries GPU numbers
  std::vector<kernel_row> kernels;
  std::uint64_t kernels_total = 0;
  std::vector<ranked_kernel_row> ranked_kernels;
  std::vector<category_row> categories;
  bool categories_from_dump = false;  ///< diffscope.hotspots (every kernel) vs the listed ones
  std::vector<family_row> families;
  bool families_from_dump = false;

  merge_view merge;
};

/// The run_view of a dump read by load_dump / load_dumps (gzip, "-", size and depth limits).
/// Throws failure(exit_usage) naming the file and key at a key of the wrong type.
run_view view_of(perf_dump_data dump);

/// The last element of a scope path.
std::string last_element(const std::string& path);

}  // namespace diffscope::cli::report
