// diffscope: the lines SGLang prints that decide whether a run counts (docs/sglang.md,
// section 4): the signal strings and what each means. Data only; the gate (sglang/gate.hpp)
// scans for them.
#pragma once

#include <array>
#include <cstddef>

namespace diffscope {

/// What a signal means.
enum class gate_signal_kind {
  fallback,      ///< the diffusers backend ran instead of SGLang's: a hard stop
  bcg_captured,  ///< a breakable CUDA graph was captured
  bcg_failure,   ///< a BCG run failed or was disabled
};

struct gate_signal {
  const char* text;  ///< matched case-insensitively as a substring of one line
  gate_signal_kind kind;
};

/// The signals, as SGLang prints them (docs/sglang.md, section 4).
inline constexpr std::size_t gate_signal_count = 9;
inline constexpr std::array<gate_signal, gate_signal_count> gate_signals = {{
    {"Falling back to diffusers backend", gate_signal_kind::fallback},
    {"Using diffusers backend", gate_signal_kind::fallback},
    {"Loaded diffusers pipeline", gate_signal_kind::fallback},
    {"[Diffusion BCG] captured", gate_signal_kind::bcg_captured},
    {"[Diffusion BCG] capture failed", gate_signal_kind::bcg_failure},
    {"[Diffusion BCG] disabled", gate_signal_kind::bcg_failure},
    {"[Diffusion BCG] serving signature MISSED", gate_signal_kind::bcg_failure},
    {"no graph will be captured", gate_signal_kind::bcg_failure},
    {"cannot be used with breakable cuda graphs", gate_signal_kind::bcg_failure},
}};

}  // namespace diffscope
