// diffscope: every setting read from the environment, in one table, and the only place the
// library reads the environment. docs/configuration.md lists the same table but for the
// experiment settings, which BENCHMARKS.md lists (a test keeps all three equal).
//
// Parsing is strict and never stops the program: a flag is 1/0, true/false, yes/no or on/off
// (any case), a count is a whole decimal number in its range, a choice is one of its values.
// Anything else is ignored with one line on stderr per setting per process
//   diffscope: DIFFSCOPE_SUMMARY='maybe' is not a flag (1/0, true/false, yes/no, on/off); using off
// and the default kept. An empty variable reads as unset.
#pragma once

#include <atomic>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace diffscope::config {

enum class setting_type { flag, count, choice, text, path };

inline const char* setting_type_name(setting_type t) noexcept {
  switch (t) {
    case setting_type::flag:
      return "flag";
    case setting_type::count:
      return "count";
    case setting_type::choice:
      return "choice";
    case setting_type::text:
      return "text";
    case setting_type::path:
      return "path";
  }
  return "?";
}

inline constexpr std::uint64_t no_limit = ~std::uint64_t{0};

struct setting {
  const char* name;
  setting_type type;
  /// As the documentation shows it: "on"/"off" for flags, a number for counts, one of the
  /// values for choices; "" when there is none (the setting is unset by default).
  const char* default_value;
  /// Choices: the values, separated by '|', the default first. Counts: a word that reads as
  /// no limit (config::no_limit), or "".
  const char* values;
  /// Counts: the accepted range.
  std::uint64_t min;
  std::uint64_t max;
  /// A knob for measuring diffscope itself, named DIFFSCOPE_EXPERIMENT_*: the default is right
  /// everywhere. Documented in BENCHMARKS.md ("Experiment settings"), not for users.
  bool experiment;
  const char* doc;
};

// clang-format off
/// Every setting. Flags and choices take their default from here; collector_options' own
/// member defaults agree with it (tests/test_config.cpp checks both).
inline constexpr setting settings[] = {
  // Outputs. DIFFSCOPE_DUMP, DIFFSCOPE_TRACE or DIFFSCOPE_SUMMARY starts the collector.
  {"DIFFSCOPE_DUMP", setting_type::path, "", "", 0, 0, false,
   "perf dump written at exit; may hold `{pid}`, `{rank}`, `{label}`, `{request}`"},
  {"DIFFSCOPE_TRACE", setting_type::path, "", "", 0, 0, false,
   "Chrome trace written at exit; may hold `{pid}`, `{rank}`, `{label}`"},
  {"DIFFSCOPE_SUMMARY", setting_type::flag, "off", "", 0, 0, false,
   "print the console summary on stderr at exit"},
  {"DIFFSCOPE_SUMMARY_SCOPES", setting_type::count, "25", "all", 1, no_limit, false,
   "scopes the console summary lists: the N with the most GPU time, to depth 6 (`all`: every scope, and every denoise step)"},
  {"DIFFSCOPE_CREATE_DIRS", setting_type::flag, "on", "", 0, 0, false,
   "outputs create missing parent directories (diffscope run sets it off)"},
  {"DIFFSCOPE_LABEL", setting_type::text, "run", "", 0, 0, false,
   "`{label}` in output paths"},
  {"DIFFSCOPE_TAG", setting_type::text, "cli_generate", "", 0, 0, false,
   "the perf dump's tag"},
  {"DIFFSCOPE_COMMIT", setting_type::text, "", "", 0, 0, false,
   "the perf dump's commit_hash (else SGLANG_GIT_COMMIT, else git rev-parse HEAD)"},
  {"SGLANG_GIT_COMMIT", setting_type::text, "", "", 0, 0, false,
   "SGLang's commit variable: the commit_hash when DIFFSCOPE_COMMIT is unset"},
  {"DIFFSCOPE_LEGACY_STEPS", setting_type::flag, "off", "", 0, 0, false,
   "also write `denoising_step_<i>` entries into the dump's steps"},
  {"DIFFSCOPE_TRACE_CAP", setting_type::count, "2000000", "", 0, no_limit, false,
   "raw events kept for the trace"},
  {"DIFFSCOPE_MAX_SCOPES", setting_type::count, "10000", "", 0, no_limit, false,
   "distinct scopes kept; the rest fold into one (other) scope per parent (0: no cap)"},
  {"DIFFSCOPE_SKIP_REQUESTS", setting_type::count, "0", "", 0, no_limit, false,
   "the first N requests are warm-ups: in no dump, table or summary"},
  {"DIFFSCOPE_WINDOW", setting_type::choice, "last", "last|requests", 0, 0, false,
   "with requests, every table covers the last counted request, or every counted one"},
  // What is measured.
  {"DIFFSCOPE_NO_GPU", setting_type::flag, "off", "", 0, 0, false,
   "host timings only; CUPTI and the GPU untouched"},
  {"DIFFSCOPE_MODE", setting_type::choice, "profile", "profile|perf|sampled", 0, 0, false,
   "timing mode: CUPTI traces every kernel; device events time stages and steps; or both, CUPTI in a sample of steps"},
  {"DIFFSCOPE_SAMPLE_STEPS", setting_type::text, "1-2", "", 0, 0, false,
   "sampled mode: the denoise steps CUPTI traces, `A-B` (step indices) or `every:N`"},
  {"DIFFSCOPE_PERF_SCOPES", setting_type::choice, "steps", "steps|all", 0, 0, false,
   "perf mode times stages and denoise steps, or every scope"},
  {"DIFFSCOPE_PERF_SAMPLE", setting_type::count, "1", "", 1, 1u << 30, false,
   "perf mode, every scope timed: scopes inside steps timed in one step of N"},
  // The native-backend gate.
  {"DIFFSCOPE_GATE", setting_type::flag, "off", "", 0, 0, false,
   "watch stdout and stderr; a tripped gate writes no dump or trace"},
  {"DIFFSCOPE_EXPECT_BCG", setting_type::flag, "off", "", 0, 0, false,
   "the gate also requires the breakable-CUDA-graph capture marker (implies DIFFSCOPE_GATE)"},
  {"DIFFSCOPE_KEEP_INVALID", setting_type::flag, "off", "", 0, 0, false,
   "a tripped gate writes the outputs beside as `<path>.invalid.json`"},
  // How plain NVTX names map to stages, steps and requests.
  {"DIFFSCOPE_STAGE_PREFIX", setting_type::text, "stage_", "", 0, 0, false,
   "names starting with it are stages (`none`: no rule)"},
  {"DIFFSCOPE_STEP_PREFIX", setting_type::text, "denoising_step_", "", 0, 0, false,
   "`<prefix><i>` is denoise step i (`none`: no rule)"},
  {"DIFFSCOPE_REQUEST_PREFIX", setting_type::text, "request_", "", 0, 0, false,
   "`<prefix><id>` is request `<id>` (`none`: no rule)"},
  {"DIFFSCOPE_STRIP_SHAPES", setting_type::flag, "on", "", 0, 0, false,
   "drop SGLang's `in=[...]` shape suffix (off: one scope per shape)"},
  // Experiments: how the measurement itself is taken (BENCHMARKS.md compares them).
  {"DIFFSCOPE_EXPERIMENT_PERF_STREAM", setting_type::choice, "legacy", "legacy|per-thread",
   0, 0, true, "perf mode's default timing stream"},
  {"DIFFSCOPE_EXPERIMENT_PERF_EVENTS", setting_type::choice, "inline", "inline|side",
   0, 0, true, "perf mode's timestamps in the work stream, or on a side stream"},
  {"DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS", setting_type::count, "1000", "",
   0, no_limit, true, "perf mode: stamps closer than this share one event (0: never)"},
  {"DIFFSCOPE_EXPERIMENT_PERF_DRAIN", setting_type::choice, "thread", "thread|batch|each",
   0, 0, true, "perf mode: who settles completed event pairs"},
  {"DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS", setting_type::flag, "on", "",
   0, 0, true, "perf mode: a denoise step starts at the previous step's end event"},
  {"DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS", setting_type::choice, "auto",
   "auto|both|driver|runtime|none", 0, 0, true,
   "profile mode: which launch APIs get a CUPTI callback"},
  {"DIFFSCOPE_EXPERIMENT_CUPTI_ZERO_BUFFERS", setting_type::flag, "off", "",
   0, 0, true, "profile mode: zero CUPTI buffers ourselves, off the launching thread"},
  {"DIFFSCOPE_EXPERIMENT_CUPTI_HOST_CLOCK", setting_type::flag, "on", "",
   0, 0, true, "profile mode: device timestamps in the host clock's time base (off: CUPTI's own)"},
  {"DIFFSCOPE_EXPERIMENT_CUPTI_BUFFER_KB", setting_type::count, "8192", "",
   1, 1u << 20, true, "profile mode: size of one CUPTI activity buffer"},
  {"DIFFSCOPE_EXPERIMENT_CLOCK", setting_type::choice, "auto", "auto|steady",
   0, 0, true, "host clock: the invariant TSC where there is one, or steady_clock"},
  // Set by launchers (torchrun, SGLang): read, never required.
  {"RANK", setting_type::count, "", "", 0, (1u << 30) - 1, false,
   "this process's rank: `{rank}` in output paths and the dump's environment.rank"},
  {"LOCAL_RANK", setting_type::count, "", "", 0, (1u << 30) - 1, false,
   "rank on this host: `{rank}` when RANK is unset, and environment.local_rank"},
  {"WORLD_SIZE", setting_type::count, "", "", 0, (1u << 30) - 1, false,
   "number of ranks: the dump's environment.world_size"},
  {"NVTX_INJECTION64_PATH", setting_type::path, "", "", 0, 0, false,
   "NVTX's tool library (diffscope run sets it); another tool there gets the ranges"},
  // The diffscope command.
  {"DIFFSCOPE_INJECT_LIB", setting_type::path, "", "", 0, 0, false,
   "diffscope run: libdiffscope_inject.so to use (else next to diffscope, or ../lib)"},
  {"DIFFSCOPE_NVML_LIB", setting_type::path, "", "", 0, 0, false,
   "diffscope ab: the NVML library for the idle check (else libnvidia-ml.so.1)"},
};
// clang-format on

inline constexpr std::size_t setting_count = std::size(settings);

/// The table entry of `name`, nullptr when there is none.
inline const setting* find(std::string_view name) noexcept {
  for (const setting& s : settings)
    if (name == s.name) return &s;
  return nullptr;
}

namespace detail {

/// Where warnings go (stderr; tests point it elsewhere) and which settings said theirs.
struct warning_state {
  std::atomic<std::FILE*> out{nullptr};
  std::atomic<bool> said[setting_count] = {};
};

inline warning_state& warnings() noexcept {
  static warning_state* s = new warning_state();  // never destroyed: read from atexit
  return *s;
}

/// Lets every setting warn again (tests).
inline void reset_warnings() noexcept {
  for (auto& w : warnings().said) w.store(false, std::memory_order_relaxed);
}

/// The value as it is shown in a warning: control bytes escaped, at most 80 bytes, so the
/// warning stays one line.
inline void print_value(std::FILE* f, const char* v) noexcept {
  std::size_t n = 0;
  for (; v[n] != '\0' && n < 80; ++n) {
    const unsigned char c = static_cast<unsigned char>(v[n]);
    if (c < 0x20 || c == 0x7f || c == '\\')
      std::fprintf(f, "\\x%02x", c);
    else
      std::fputc(c, f);
  }
  if (v[n] != '\0') std::fputs("...", f);
}

/// One line on the warning stream the first time `s` has a value it cannot use.
inline void warn_once(const setting& s, const char* value) noexcept {
  const auto i = static_cast<std::size_t>(&s - settings);
  if (warnings().said[i].exchange(true, std::memory_order_relaxed)) return;
  std::FILE* f = warnings().out.load(std::memory_order_relaxed);
  if (f == nullptr) f = stderr;
  std::fprintf(f, "diffscope: %s='", s.name);
  print_value(f, value);
  std::fputs("' is not ", f);
  switch (s.type) {
    case setting_type::flag:
      std::fputs("a flag (1/0, true/false, yes/no, on/off)", f);
      break;
    case setting_type::count:
      if (s.max == no_limit)
        std::fprintf(f, "a whole number >= %llu", static_cast<unsigned long long>(s.min));
      else
        std::fprintf(f, "a whole number from %llu to %llu", static_cast<unsigned long long>(s.min),
                     static_cast<unsigned long long>(s.max));
      if (*s.values != '\0') std::fprintf(f, " or %s", s.values);
      break;
    case setting_type::choice:
      std::fputs("one of ", f);
      for (const char* p = s.values; *p != '\0'; ++p) {
        if (*p == '|')
          std::fputs(", ", f);
        else
          std::fputc(*p, f);
      }
      break;
    default:
      std::fputs("usable", f);
      break;
  }
  if (*s.default_value != '\0')
    std::fprintf(f, "; using %s\n", s.default_value);
  else
    std::fputs("; ignored\n", f);
  std::fflush(f);
}

/// The table entry of a name the library reads; a name missing from the table is a bug.
inline const setting& entry(std::string_view name) noexcept {
  const setting* s = find(name);
  if (s == nullptr) {
    std::fprintf(stderr, "diffscope: internal error: setting %.*s is not in config.hpp\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  return *s;
}

inline bool equal_ignoring_case(const char* a, const char* b) noexcept {
  for (; *a != '\0' && *b != '\0'; ++a, ++b)
    if (std::tolower(static_cast<unsigned char>(*a)) !=
        std::tolower(static_cast<unsigned char>(*b)))
      return false;
  return *a == *b;
}

inline std::optional<bool> parse_flag(const char* v) noexcept {
  for (const char* t : {"1", "true", "yes", "on"})
    if (equal_ignoring_case(v, t)) return true;
  for (const char* f : {"0", "false", "no", "off"})
    if (equal_ignoring_case(v, f)) return false;
  return std::nullopt;
}

/// Digits only (no sign, no space), no overflow, within [min, max].
inline std::optional<std::uint64_t> parse_count(const char* v, std::uint64_t min,
                                                std::uint64_t max) noexcept {
  if (*v == '\0') return std::nullopt;
  std::uint64_t n = 0;
  for (const char* p = v; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(*p - '0');
    if (n > (no_limit - d) / 10) return std::nullopt;
    n = n * 10 + d;
  }
  if (n < min || n > max) return std::nullopt;
  return n;
}

/// Index of `v` among the '|'-separated `values`; nullopt when it is none of them.
inline std::optional<std::size_t> parse_choice(const char* v, const char* values) noexcept {
  const std::size_t len = std::strlen(v);
  std::size_t index = 0;
  for (const char* p = values;; ++index) {
    const char* end = std::strchr(p, '|');
    const std::size_t n = end != nullptr ? static_cast<std::size_t>(end - p) : std::strlen(p);
    if (n == len && std::strncmp(p, v, n) == 0) return index;
    if (end == nullptr) return std::nullopt;
    p = end + 1;
  }
}

}  // namespace detail

/// The variable's value; nullptr when it is unset or empty. The one getenv of the library.
inline const char* raw(std::string_view name) noexcept {
  const char* v = std::getenv(detail::entry(name).name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

/// Sets a setting in this process's environment for the processes it starts (`diffscope
/// run`); nullptr unsets it. Through the table, so the CLI cannot set a name the library
/// does not read.
inline void set_for_children(std::string_view name, const char* value) noexcept {
  const char* n = detail::entry(name).name;
  if (value != nullptr)
    ::setenv(n, value, 1);
  else
    ::unsetenv(n);
}

/// A flag's value, or its default when unset or not a flag (warned once).
inline bool flag(std::string_view name) noexcept {
  const setting& s = detail::entry(name);
  const bool fallback = *detail::parse_flag(s.default_value);
  const char* v = raw(name);
  if (v == nullptr) return fallback;
  if (const auto b = detail::parse_flag(v)) return *b;
  detail::warn_once(s, v);
  return fallback;
}

/// A count's value (no_limit for its no-limit word, e.g. `all`), or its default when unset or
/// not a count in range (warned once); nullopt when that default is "unset".
inline std::optional<std::uint64_t> count(std::string_view name) noexcept {
  const setting& s = detail::entry(name);
  const auto fallback = detail::parse_count(s.default_value, 0, no_limit);
  const char* v = raw(name);
  if (v == nullptr) return fallback;
  if (*s.values != '\0' && std::strcmp(v, s.values) == 0) return no_limit;
  if (const auto n = detail::parse_count(v, s.min, s.max)) return n;
  detail::warn_once(s, v);
  return fallback;
}

/// A choice's index among its values (0 is the default), the default's when unset or
/// not one of them (warned once).
inline std::size_t choice(std::string_view name) noexcept {
  const setting& s = detail::entry(name);
  const char* v = raw(name);
  if (v == nullptr) return 0;
  if (const auto i = detail::parse_choice(v, s.values)) return *i;
  detail::warn_once(s, v);
  return 0;
}

/// A text or path setting's value, else its default ("" when it has none).
inline std::string text(std::string_view name) {
  const char* v = raw(name);
  return v != nullptr ? std::string(v) : std::string(detail::entry(name).default_value);
}

/// Reads every flag, count and choice, so each unusable value is warned about now, also for
/// settings read later or by a part that is not running.
inline void check_all() noexcept {
  for (const setting& s : settings) {
    if (s.type == setting_type::flag) (void)flag(s.name);
    if (s.type == setting_type::count) (void)count(s.name);
    if (s.type == setting_type::choice) (void)choice(s.name);
  }
}

/// RANK, parsed the one way every part uses it (output paths, the dump's environment).
inline std::optional<std::uint64_t> rank() noexcept {
  return count("RANK");
}

/// {rank} in output paths: RANK, else LOCAL_RANK, else 0.
inline std::uint64_t output_rank() noexcept {
  if (const auto r = rank()) return *r;
  return count("LOCAL_RANK").value_or(0);
}

}  // namespace diffscope::config
