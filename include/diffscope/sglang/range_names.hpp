// diffscope: how range names from any source map onto scopes, stages and steps.
//
// diffscope's own ranges carry their category. Ranges in the default NVTX domain (PyTorch's
// torch.cuda.nvtx, SGLang's --enable-layerwise-nvtx-marker) carry only a name, so SGLang's
// naming convention (docs/sglang.md, section 6) is mapped here, in one place:
//   stage_<Stage>                     -> stage "<Stage>"
//   denoising_step_<i>[_t<timestep>]  -> denoise step i
//   <qualified.module> in=[[shape]]   -> scope "<qualified.module>" (shapes dropped, so one
//                                        module is one scope whatever its input shapes)
//   request_<id>                      -> request <id> (ours: SGLang has no request ranges)
//   warmup                            -> a warm-up request (excluded from every output)
// Requests share one scope name ("request", or "warmup"), as steps share "denoise_step".
// The prefixes and the shape stripping are configurable (name_rules; DIFFSCOPE_STAGE_PREFIX,
// DIFFSCOPE_STEP_PREFIX, DIFFSCOPE_REQUEST_PREFIX, DIFFSCOPE_STRIP_SHAPES) for frameworks
// with other conventions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <diffscope/scope.hpp>

namespace diffscope::detail {

/// The canonical scope name of every denoise step: steps share one scope path, and the
/// per-step breakdown lives in the step table.
inline constexpr std::string_view step_scope_name = "denoise_step";
inline constexpr std::string_view request_scope_name = "request";

/// How default-domain names map. An empty prefix turns its rule off.
struct name_rules {
  std::string stage_prefix = "stage_";
  std::string step_prefix = denoise_step_prefix;
  std::string request_prefix = "request_";
  bool strip_shapes = true;  ///< "<module> in=[...]" -> "<module>"
};

/// The rules every classification uses unless given others.
inline const name_rules& default_name_rules() {
  static const name_rules rules;
  return rules;
}

/// Parses "<prefix><i>" (default "denoising_step_<i>") optionally followed by "_t<anything>".
inline std::optional<std::int64_t> parse_step_name(
    std::string_view name, std::string_view prefix = denoise_step_prefix) noexcept {
  if (prefix.empty()) return std::nullopt;
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::size_t i = prefix.size();
  bool negative = false;
  if (i < name.size() && name[i] == '-') {
    negative = true;
    ++i;
  }
  const std::size_t digits_start = i;
  std::int64_t value = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i - digits_start < 18) {
    value = value * 10 + (name[i] - '0');
    ++i;
  }
  if (i == digits_start) return std::nullopt;
  if (i != name.size() && name.substr(i, 2) != "_t") return std::nullopt;
  return negative ? -value : value;
}

/// How one range maps onto the scope tree.
struct classified_range {
  std::string_view name;  ///< scope name (a view into the input)
  category cat = category::other;
  std::optional<std::int64_t> step;  ///< set for denoise steps
  std::string_view request_id;       ///< requests: the id (a view into the input)
  bool warmup = false;               ///< a warm-up request
};

/// Makes `r` (a range named `name`) a request: a warm-up when named "warmup".
inline void as_request(classified_range& r, std::string_view name, std::string_view id) noexcept {
  r.cat = category::request;
  r.request_id = id;
  r.warmup = name == warmup_request_name;
  r.name = r.warmup ? std::string_view(warmup_request_name) : request_scope_name;
}

/// Classifies a default-domain range by its name alone (SGLang / PyTorch conventions).
inline classified_range classify_default_domain(
    std::string_view name, const name_rules& rules = default_name_rules()) noexcept {
  classified_range r;
  r.name = name;
  if (auto step = parse_step_name(name, rules.step_prefix)) {
    r.name = step_scope_name;
    r.cat = category::denoise_step;
    r.step = step;
    return r;
  }
  if (name == warmup_request_name) {
    as_request(r, name, name);
    return r;
  }
  const auto has_prefix = [name](const std::string& p) {
    return !p.empty() && name.size() > p.size() && name.substr(0, p.size()) == p;
  };
  if (has_prefix(rules.request_prefix)) {
    as_request(r, name, name.substr(rules.request_prefix.size()));
    return r;
  }
  if (has_prefix(rules.stage_prefix)) {
    r.name = name.substr(rules.stage_prefix.size());
    r.cat = category::stage;
    return r;
  }
  if (auto pos = name.find(" in=");
      rules.strip_shapes && pos != std::string_view::npos && pos > 0) {
    r.name = name.substr(0, pos);
  }
  return r;
}

/// Classifies a "diffscope"-domain range: the category is authoritative; steps take their
/// index from the payload when there is one, else from the name.
inline classified_range classify_diffscope_domain(std::string_view name, std::uint32_t cat_id,
                                                  std::optional<std::int64_t> payload) noexcept {
  classified_range r;
  r.name = name;
  if (cat_id >= 1 && cat_id <= 6) r.cat = static_cast<category>(cat_id);
  if (r.cat == category::request) as_request(r, name, name);
  if (r.cat == category::denoise_step) {
    r.step = payload ? payload : parse_step_name(name);
    if (!r.step) r.step = -1;
    r.name = step_scope_name;
  }
  return r;
}

}  // namespace diffscope::detail
