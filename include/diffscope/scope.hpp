// diffscope: annotation of diffusion inference code as NVTX ranges.
//
// Depends on NVTX3 (header-only, from the CUDA Toolkit) and nothing else: no CUDA runtime,
// no CUPTI. With no NVTX tool attached a scope costs one push and one pop that NVTX turns
// into no-ops; with Nsight Systems attached the ranges show up in the "diffscope" domain;
// with the diffscope collector attached they drive per-scope GPU attribution.
//
// Compile-out: define DIFFSCOPE_DISABLE (or NVTX_DISABLE) for the whole build. Every macro
// then expands to nothing and diffscope::scope is an empty type, so user code still compiles.
#pragma once

#include <cstdint>
#include <string>

#include <diffscope/version.hpp>

#if defined(NVTX_DISABLE) && !defined(DIFFSCOPE_DISABLE)
#define DIFFSCOPE_DISABLE
#endif

#ifndef DIFFSCOPE_DISABLE
#include <nvtx3/nvToolsExt.h>
#endif

namespace diffscope {

/// NVTX category of a range in the "diffscope" domain. The numeric values are the NVTX
/// category ids the collector and Nsight Systems see; 0 means "no category" in NVTX.
enum class category : std::uint32_t {
  stage = 1,         ///< pipeline stage (text encoding, denoising, decoding, ...)
  denoise_step = 2,  ///< one step of the denoise loop; carries the step index as payload
  attention = 3,     ///< attention block or kernel region
  norm_rope = 4,     ///< normalisation / rotary embedding region
  other = 5,         ///< everything else
  request = 6,       ///< one request (one generation); "warmup" marks a warm-up request
};

/// Name of the NVTX domain every diffscope range lives in.
inline constexpr char domain_name[] = "diffscope";

/// The name NVTX tools show for a category.
constexpr const char* category_name(category c) noexcept {
  switch (c) {
    case category::stage:
      return "stage";
    case category::denoise_step:
      return "denoise_step";
    case category::attention:
      return "attention";
    case category::norm_rope:
      return "norm_rope";
    case category::other:
      return "other";
    case category::request:
      return "request";
  }
  return "other";
}

/// The request name that marks a warm-up (DIFFSCOPE_WARMUP(), or a plain NVTX range
/// "warmup"): collected, but in no table; its GPU work is reported as outside the requests.
inline constexpr char warmup_request_name[] = "warmup";

/// Prefix of the name a denoise step carries ("denoising_step_<i>"), the name SGLang's own
/// markers use, so Nsight reports and SGLang tooling read our steps the same way.
inline constexpr char denoise_step_prefix[] = "denoising_step_";

#ifndef DIFFSCOPE_DISABLE

namespace detail {

/// The process's "diffscope" domain handle with its categories named. Created once per
/// shared object (NVTX state is per linkage unit by design); every tool maps equal domain
/// names to one domain, so copies in several shared objects still meet in one place.
inline nvtxDomainHandle_t domain() noexcept {
  static const nvtxDomainHandle_t handle = [] {
    nvtxDomainHandle_t d = nvtxDomainCreateA(domain_name);
    for (category c : {category::stage, category::denoise_step, category::attention,
                       category::norm_rope, category::other, category::request}) {
      nvtxDomainNameCategoryA(d, static_cast<std::uint32_t>(c), category_name(c));
    }
    return d;
  }();
  return handle;
}

inline nvtxEventAttributes_t make_attributes(category c) noexcept {
  nvtxEventAttributes_t a{};
  a.version = NVTX_VERSION;
  a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  a.category = static_cast<std::uint32_t>(c);
  return a;
}

/// One annotated call site: its name registered with NVTX once, its attributes prebuilt,
/// so entering the scope is a single nvtxDomainRangePushEx call.
class site {
 public:
  site(const char* name, category c) noexcept : attributes_(make_attributes(c)) {
    attributes_.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
    attributes_.message.registered = nvtxDomainRegisterStringA(domain(), name);
  }
  const nvtxEventAttributes_t* attributes() const noexcept { return &attributes_; }

 private:
  nvtxEventAttributes_t attributes_;
};

/// Writes "denoising_step_<i>" into buf (NUL-terminated). No locale, no allocation.
inline const char* format_step_name(char (&buf)[48], std::int64_t step) noexcept {
  char digits[24];
  int n = 0;
  std::uint64_t v =
      step < 0 ? 0 - static_cast<std::uint64_t>(step) : static_cast<std::uint64_t>(step);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  int out = 0;
  for (const char* p = denoise_step_prefix; *p != '\0'; ++p) buf[out++] = *p;
  if (step < 0) buf[out++] = '-';
  while (n > 0) buf[out++] = digits[--n];
  buf[out] = '\0';
  return buf;
}

}  // namespace detail

/// RAII range in the "diffscope" domain: pushed on construction, popped on destruction,
/// also when an exception unwinds through it. Prefer the DIFFSCOPE_* macros, which register
/// the name once per call site.
class scope {
 public:
  /// Fast path: a call site whose name is registered once (what the macros use).
  explicit scope(const detail::site& s) noexcept {
    nvtxDomainRangePushEx(detail::domain(), s.attributes());
  }

  /// Runtime name, for names known only at run time. The name is passed as a plain string
  /// on every push: an attached tool hashes (the diffscope collector) or copies (Nsight) it
  /// each time, so prefer the macros inside hot loops. The string need only live for the
  /// duration of this constructor.
  explicit scope(const char* name, category c = category::other) noexcept {
    nvtxEventAttributes_t a = detail::make_attributes(c);
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = name;
    nvtxDomainRangePushEx(detail::domain(), &a);
  }
  explicit scope(const std::string& name, category c = category::other) noexcept
      : scope(name.c_str(), c) {}

  /// A denoise step: named "denoising_step_<step>", category denoise_step, with the step
  /// index as an int64 payload. Costs a short integer format per step, never per kernel.
  static scope denoise_step(std::int64_t step) noexcept { return scope(step_tag{}, step); }

  /// One request (generation), named by its id; category request. Scopes, stages and steps
  /// opened inside it on this thread belong to it (per-request dumps, warm-up exclusion).
  static scope request(const char* id) noexcept { return scope(id, category::request); }
  static scope request(const std::string& id) noexcept { return scope(id, category::request); }
  static scope request(std::int64_t id) noexcept {
    return scope(std::to_string(id), category::request);
  }

  ~scope() { nvtxDomainRangePop(detail::domain()); }

  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;
  scope(scope&&) = delete;
  scope& operator=(scope&&) = delete;

 private:
  struct step_tag {};
  scope(step_tag, std::int64_t step) noexcept {
    char buf[48];
    const nvtxDomainHandle_t d = detail::domain();
    nvtxEventAttributes_t a = detail::make_attributes(category::denoise_step);
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    // NVTX hands out a null domain only when no tool is attached (or one without domain
    // support): then the name is never read, so skip formatting it (about 7 ns per step).
    a.message.ascii = d != nullptr ? detail::format_step_name(buf, step) : denoise_step_prefix;
    a.payloadType = NVTX_PAYLOAD_TYPE_INT64;
    a.payload.llValue = step;
    nvtxDomainRangePushEx(d, &a);
  }
};

/// An instantaneous marker in the "diffscope" domain (runtime name).
inline void mark(const char* name, category c = category::other) noexcept {
  nvtxEventAttributes_t a = detail::make_attributes(c);
  a.messageType = NVTX_MESSAGE_TYPE_ASCII;
  a.message.ascii = name;
  nvtxDomainMarkEx(detail::domain(), &a);
}

#else  // DIFFSCOPE_DISABLE: empty stubs so user code that names these types still compiles.

namespace detail {
class site {
 public:
  constexpr site(const char*, category) noexcept {}
};
}  // namespace detail

class scope {
 public:
  explicit constexpr scope(const detail::site&) noexcept {}
  explicit constexpr scope(const char*, category = category::other) noexcept {}
  explicit scope(const std::string&, category = category::other) noexcept {}
  static scope denoise_step(std::int64_t) noexcept { return scope(""); }
  static scope request(const char*) noexcept { return scope(""); }
  static scope request(const std::string&) noexcept { return scope(""); }
  static scope request(std::int64_t) noexcept { return scope(""); }
  // User-provided like the enabled one: a trivially destructible stub makes `scope s{"x"};`
  // an unused variable to gcc and clang (-Werror builds broke only when disabled).
  ~scope() {}
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;
};

inline void mark(const char*, category = category::other) noexcept {}

#endif  // DIFFSCOPE_DISABLE

}  // namespace diffscope

#define DIFFSCOPE_DETAIL_CONCAT2(a, b) a##b
#define DIFFSCOPE_DETAIL_CONCAT(a, b) DIFFSCOPE_DETAIL_CONCAT2(a, b)

#ifndef DIFFSCOPE_DISABLE

// One function-local static per call site: the name is registered on first use only.
// __COUNTER__ (gcc, clang, nvcc, msvc) keeps several macros on one line apart.
#define DIFFSCOPE_DETAIL_SCOPE_N(name, cat, n)                                                   \
  static const ::diffscope::detail::site DIFFSCOPE_DETAIL_CONCAT(diffscope_site_, n){name, cat}; \
  const ::diffscope::scope DIFFSCOPE_DETAIL_CONCAT(diffscope_scope_, n) {                        \
    DIFFSCOPE_DETAIL_CONCAT(diffscope_site_, n)                                                  \
  }
#define DIFFSCOPE_DETAIL_SCOPE(name, cat) DIFFSCOPE_DETAIL_SCOPE_N(name, cat, __COUNTER__)

/// A scope named `name` (a string literal or other string that outlives the program).
#define DIFFSCOPE_SCOPE(name) DIFFSCOPE_DETAIL_SCOPE(name, ::diffscope::category::other)
/// A scope named after the enclosing function.
#define DIFFSCOPE_FUNC() DIFFSCOPE_DETAIL_SCOPE(__func__, ::diffscope::category::other)
/// A pipeline stage, e.g. DIFFSCOPE_STAGE("DenoisingStage"): becomes a perf-dump `steps` entry.
#define DIFFSCOPE_STAGE(name) DIFFSCOPE_DETAIL_SCOPE(name, ::diffscope::category::stage)
/// An attention region.
#define DIFFSCOPE_ATTENTION(name) DIFFSCOPE_DETAIL_SCOPE(name, ::diffscope::category::attention)
/// A normalisation / rotary-embedding region.
#define DIFFSCOPE_NORM_ROPE(name) DIFFSCOPE_DETAIL_SCOPE(name, ::diffscope::category::norm_rope)
/// Denoise step `i` (an integer expression): "denoising_step_<i>" with `i` as payload.
#define DIFFSCOPE_DENOISE_STEP(i)                                                  \
  const ::diffscope::scope DIFFSCOPE_DETAIL_CONCAT(diffscope_step_, __COUNTER__) = \
      ::diffscope::scope::denoise_step(static_cast<std::int64_t>(i))
/// One request (a generation) with id `id` (a string or an integer): per-request dumps
/// ({request} in DIFFSCOPE_DUMP), multi-request summaries, DIFFSCOPE_SKIP_REQUESTS.
#define DIFFSCOPE_REQUEST(id)                                                         \
  const ::diffscope::scope DIFFSCOPE_DETAIL_CONCAT(diffscope_request_, __COUNTER__) = \
      ::diffscope::scope::request(id)
/// A warm-up region: collected like any other, left out of every table (its GPU work is
/// reported apart, as outside the requests).
#define DIFFSCOPE_WARMUP() \
  DIFFSCOPE_DETAIL_SCOPE(::diffscope::warmup_request_name, ::diffscope::category::request)
/// An instantaneous marker.
#define DIFFSCOPE_MARK(name) ::diffscope::mark(name)

#else

#define DIFFSCOPE_SCOPE(name) static_cast<void>(0)
#define DIFFSCOPE_FUNC() static_cast<void>(0)
#define DIFFSCOPE_STAGE(name) static_cast<void>(0)
#define DIFFSCOPE_ATTENTION(name) static_cast<void>(0)
#define DIFFSCOPE_NORM_ROPE(name) static_cast<void>(0)
#define DIFFSCOPE_DENOISE_STEP(i) static_cast<void>(sizeof(i))
#define DIFFSCOPE_MARK(name) static_cast<void>(0)
#define DIFFSCOPE_REQUEST(id) static_cast<void>(sizeof(id))
#define DIFFSCOPE_WARMUP() static_cast<void>(0)

#endif
