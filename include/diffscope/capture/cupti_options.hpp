// diffscope: what the CUPTI source is asked to do (cupti_options), and how its settings and
// launch callbacks read in the dump's status and overhead sections.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace diffscope::detail {

/// Which launch APIs get a callback (what attributes a record to the scope that launched it).
/// `both` is right on every CUDA version: before CUDA 13 a runtime launch and the driver call
/// it makes could have different correlation ids, with records carrying the runtime's.
/// `automatic` (the default) starts with both and, once `runtime_verify_launches` runtime
/// launches in a row each made a driver launch with the same id (CUDA 13), turns the runtime
/// callbacks off: the driver's see every launch, with two callbacks a launch instead of four
/// (BENCHMARKS.md, experiment settings). `driver`, `runtime` and `none` (nothing attributed:
/// CUPTI's activity tracing alone) are for measuring.
enum class cupti_launch_apis : std::uint8_t { automatic, both, driver, runtime, none };
inline constexpr const char* cupti_launch_apis_names[] = {"auto", "both", "driver", "runtime",
                                                          "none"};

/// What start() is asked to do.
struct cupti_options {
  std::size_t buffer_bytes = std::size_t{8} << 20;  ///< one CUPTI activity buffer
  std::size_t max_free_buffers = 4;  ///< completed buffers kept for reuse (bounded memory)
  bool trace_memcpy = true;          ///< MEMCPY and MEMCPY2 (peer) records
  bool trace_memset = true;          ///< MEMSET records
  bool host_clock = true;            ///< device timestamps in detail::now_ns()'s time base
  /// Hand CUPTI buffers we zeroed ourselves, on CUPTI's thread after reading them (calloc'd
  /// when new), instead of letting CUPTI zero each one on the launching thread
  /// (CUPTI_ACTIVITY_ATTR_ZEROED_OUT_ACTIVITY_BUFFER).
  bool zero_buffers = false;
  cupti_launch_apis launch_apis = cupti_launch_apis::automatic;
  /// `automatic`: same-id runtime-then-driver launches needed before the runtime callbacks go.
  std::uint32_t runtime_verify_launches = 256;
  std::string subscriber_name = "diffscope";  ///< what other CUPTI tools are told holds CUPTI
};

/// The options that differ from the defaults, as "name=value" words ("" when none): for
/// the dump's status, so a figure taken with diagnostic settings says so.
inline std::string cupti_settings_text(const cupti_options& o) {
  const cupti_options d;
  std::string out;
  const auto add = [&out](const std::string& word) { out += (out.empty() ? "" : " ") + word; };
  if (o.launch_apis != d.launch_apis)
    add(std::string("launch_apis=") + cupti_launch_apis_names[static_cast<int>(o.launch_apis)]);
  if (o.zero_buffers != d.zero_buffers) add(o.zero_buffers ? "zero_buffers=1" : "zero_buffers=0");
  if (o.host_clock != d.host_clock) add(o.host_clock ? "host_clock=1" : "host_clock=0");
  if (o.buffer_bytes != d.buffer_bytes) add("buffer_kb=" + std::to_string(o.buffer_bytes >> 10));
  return out;
}

/// Which launch APIs had callbacks at the end of a run, for the dump's overhead section.
inline const char* launch_callbacks_text(cupti_launch_apis apis, bool runtime_dropped) noexcept {
  if (apis == cupti_launch_apis::automatic) return runtime_dropped ? "driver" : "runtime+driver";
  if (apis == cupti_launch_apis::both) return "runtime+driver";
  return cupti_launch_apis_names[static_cast<int>(apis)];
}

}  // namespace diffscope::detail
