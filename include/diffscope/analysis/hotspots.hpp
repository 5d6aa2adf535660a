// diffscope: hotspot ranking, kernel categories and known fast-path families. Ranks GPU
// operations by busy time (overall, per scope, per step), classifies kernel names with
// ordered regex rules (SGLang's defaults, or a user's rules file) and says which of
// SGLang diffusion's existing fast paths are engaged or missed, with evidence, so a
// "new" hotspot is not one an existing fused kernel already covers. See docs/hotspots.md.
// No CUDA, CUPTI or JSON library.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <diffscope/results.hpp>
#include <diffscope/util/json_writer.hpp>
#include <diffscope/util/text.hpp>
#include <diffscope/util/text_table.hpp>

namespace diffscope {

/// One category rule: kernels whose name (or, with `on_kind`, operation kind) the regex
/// finds go to `category`. Rules are tried in order; the first match wins.
struct category_rule {
  std::string category;
  std::string pattern;   ///< as written (after the optional "(?i)" / "kind:" prefixes)
  bool on_kind = false;  ///< "kind:" prefix: match the kind ("kernel", "memcpy", ...)
  bool icase = false;    ///< "(?i)" prefix: case-insensitive
  std::regex re;
};

/// SGLang's category rules (docs/sglang.md, section 5), in order, in the rules-file format.
inline constexpr const char* default_category_rules_text =
    "# category  regex (ECMAScript; first match wins; no match: misc)\n"
    "gemm              gemm|nvjet|cutlass\n"
    "attention         flash|fmha|fwd_flash\n"
    "adaln_modulation  fuse_scale_shift|scale_shift_gate\n"
    "norm              _norm_|Norm|rmsnorm|fused_add_rmsnorm\n"
    "rope              rotary|rope\n"
    "activation        act_and_mul|silu|gelu\n"
    "nccl_comm         ncclDevKernel|all_gather|all_reduce\n"
    "triton_kernel     triton\n"
    "memops            kind:^(memcpy|memset|gpu_memcpy|gpu_memset)$\n";

/// Category of names no rule matches.
inline constexpr const char* fallback_category = "misc";

/// Longest prefix of a name the regexes see: libstdc++'s matcher recurses per character.
inline constexpr std::size_t max_matched_name = 4096;

namespace detail {

/// "void flash::FlashAttnFwdSm90<cutlass::half_t, ...>(Params)" -> "flash::FlashAttnFwdSm90":
/// the function's name without return type, template arguments or parameters, so that
/// a template argument ("cutlass::half_t") does not decide the category.
inline std::string_view kernel_base_name(std::string_view name) noexcept {
  constexpr std::string_view anon = "(anonymous namespace)";
  std::size_t end = 0, start = 0;
  while (end < name.size()) {
    const char c = name[end];
    if (c == '(' && name.substr(end, anon.size()) == anon) {
      end += anon.size();
      continue;
    }
    if (c == '<' || c == '(' || c == '[') break;
    if (c == ' ') start = end + 1;  // drop a return type ("void ")
    ++end;
  }
  if (start >= end) return name.substr(0, end);
  return name.substr(start, end - start);
}

inline bool regex_finds(const std::regex& re, std::string_view text) noexcept {
  try {
    if (text.size() > max_matched_name) text = text.substr(0, max_matched_name);
    return std::regex_search(text.begin(), text.end(), re);
  } catch (...) {
    return false;  // complexity/stack limits of the matcher: treat as no match
  }
}

}  // namespace detail

/// Parses a rules file: one rule per line, `category<spaces or tab>regex`, '#' comments and
/// blank lines ignored. The regex may start with "(?i)" (case-insensitive) and/or "kind:"
/// (matched against the operation kind instead of the name). Returns the error
/// "<origin>:<line>: <what>" for the first bad line, or nullopt.
inline std::optional<std::string> parse_category_rules(std::string_view text,
                                                       std::string_view origin,
                                                       std::vector<category_rule>& out) {
  out.clear();
  std::size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    const std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    line = detail::trim(line);
    if (line.empty() || line.front() == '#') continue;
    const auto where = [&](const std::string& what) {
      return std::string(origin) + ":" + std::to_string(line_no) + ": " + what;
    };
    std::size_t cut = 0;
    while (cut < line.size() && !std::isspace(static_cast<unsigned char>(line[cut]))) ++cut;
    category_rule r;
    r.category = std::string(line.substr(0, cut));
    for (char c : r.category) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
        return where("bad category name '" + r.category + "' (letters, digits, _ - . only)");
    }
    std::string_view pattern = detail::trim(line.substr(cut));
    if (pattern.empty()) return where("rule '" + r.category + "' has no regex");
    if (pattern.substr(0, 4) == "(?i)") {
      r.icase = true;
      pattern.remove_prefix(4);
    }
    if (pattern.substr(0, 5) == "kind:") {
      r.on_kind = true;
      pattern.remove_prefix(5);
    }
    if (pattern.empty()) return where("rule '" + r.category + "' has an empty regex");
    r.pattern = std::string(pattern);
    try {
      auto flags = std::regex::ECMAScript | std::regex::optimize;
      if (r.icase) flags |= std::regex::icase;
      r.re = std::regex(r.pattern, flags);
    } catch (const std::regex_error& e) {
      return where("bad regex '" + r.pattern + "': " + e.what());
    }
    out.push_back(std::move(r));
  }
  return std::nullopt;
}

namespace detail {

/// What a fast-path family check looks for (see family_table).
enum class family_check {
  pieces,             ///< engaged names, or all `pieces` as separate kernels = a miss
  attention_backend,  ///< flash/fmha vs SDPA fallbacks (attention_fallbacks)
  overlap,            ///< all-to-all (pieces[0]) overlapping attention (pieces[1]) in time
};

/// One known fast path of SGLang diffusion (docs/sglang.md, section 5). Regexes are ECMAScript
/// over kernel names. A miss needs, for every non-null piece, a kernel that matches it and
/// not `engaged` (kernels matching every piece count as fused), and no engaged kernel.
struct family_spec {
  const char* id;
  const char* title;
  const char* engaged;
  std::array<const char*, 2> pieces;
  bool scoped;  ///< pieces count only in attention / norm_rope scopes when data has scopes
  family_check check;
  const char* hint;
};

// The one table of families; docs/hotspots.md describes each row.
inline constexpr family_spec family_table[] = {
    {"qknorm_rope",
     "fused QK norm + RoPE",
     "fused_inplace_qknorm_rope",
     {"rms_?norm|RMSNorm|RmsNorm|_norm_|layer_?norm|LayerNorm|fused_inplace_qknorm",
      "rotary|rope|Rotary|RoPE"},
     true,
     family_check::pieces,
     "separate norm and rotary kernels: fused_inplace_qknorm_rope does QK RMSNorm + RoPE in one"},
    {"qknorm",
     "fused QK norm (without RoPE)",
     "fused_inplace_qknorm(?!_rope)",
     {nullptr, nullptr},
     false,
     family_check::pieces,
     ""},
    {"rope",
     "RoPE",
     "apply_rotary_embedding|apply_rope_with_cos_sin_cache_inplace|apply_ltx2_split_rotary_emb|"
     "fused_inplace_helios_qk_rope|fused_inplace_qknorm_rope",
     {"rotary|rope|Rotary|RoPE", nullptr},
     false,
     family_check::pieces,
     "rotary kernels that are not SGLang's fused RoPE kernels (apply_rotary_embedding, "
     "apply_rope_with_cos_sin_cache_inplace, ...)"},
    {"adaln",
     "AdaLN scale/shift/gate",
     "fuse_scale_shift_kernel|fuse_layernorm_scale_shift_gate_select01_kernel|"
     "fuse_residual_layernorm_scale_shift_gate_select01_kernel|fused_norm_scale_shift|"
     "modulate_scale_shift|fused_layernorm_modulate",
     {"layer_?norm|LayerNorm|layernorm", "MulFunctor|AddFunctor|CUDAFunctor_add"},
     false,
     family_check::pieces,
     "separate LayerNorm and elementwise scale/shift kernels: fuse_scale_shift_kernel / "
     "fuse_layernorm_scale_shift_gate_select01_kernel fuse them"},
    {"rmsnorm_modulation",
     "RMSNorm modulation (Z-Image)",
     "fused_norm_tanh_mul_add|rmsnorm_scale|rmsnorm_tanh_residual",
     {"rms_?norm|RMSNorm|MeanOps", "tanh"},
     false,
     family_check::pieces,
     "separate RMSNorm and tanh/mul/add kernels: fused_norm_tanh_mul_add / rmsnorm_tanh_residual "
     "fuse them"},
    {"rmsnorm",
     "RMSNorm",
     "rmsnorm|fused_add_rmsnorm|rms_norm_fn|layer_norm_fn",
     {"MeanOps", "rsqrt"},
     false,
     family_check::pieces,
     "eager RMSNorm (mean, rsqrt, mul kernels): sgl-kernel rmsnorm / fused_add_rmsnorm do it in "
     "one"},
    {"groupnorm_silu",
     "GroupNorm+SiLU (VAE)",
     "triton_group_norm_silu",
     {"group_norm|GroupNorm|RowwiseMoments", "silu|SiLU"},
     false,
     family_check::pieces,
     "separate GroupNorm and SiLU kernels: triton_group_norm_silu fuses them"},
    {"residual_gate",
     "residual-gate add",
     "residual_gate_add",
     {nullptr, nullptr},
     false,
     family_check::pieces,
     ""},
    {"wan_vae",
     "Wan VAE data movement",
     "cat_pad_channels_last_3d|dup_up3d_add|nearest_upsample_nhwc",
     {"upsample_nearest", "CatArrayBatchedCopy"},
     false,
     family_check::pieces,
     "eager nearest-upsample and cat kernels: in a Wan VAE, cat_pad_channels_last_3d / "
     "dup_up3d_add / nearest_upsample_nhwc replace them"},
    {"usp_pack",
     "varlen USP pack/scatter",
     "fused_pack_qkv|fused_scatter_to_padded",
     {nullptr, nullptr},
     false,
     family_check::pieces,
     ""},
    {"usp_overlap",
     "Ulysses / USP overlap",
     "ring_?(flash_)?attn|RingAttn|ring_attention",
     {"all_to_all|alltoall|AllToAll|ncclDevKernel_SendRecv", "flash|fmha|attention|Attention|sdpa"},
     false,
     family_check::overlap,
     "all-to-all kernels do not overlap attention kernels: communication is exposed"},
    {"attention_backend",
     "attention backend",
     "flash|fmha|fwd_flash",
     {nullptr, nullptr},
     false,
     family_check::attention_backend,
     "SDPA fallback attention kernels: FlashAttention 3/4 (flash, fmha) is the fast path"},
};

/// SDPA fallbacks the attention_backend family looks for; `scoped`: only evidence inside an
/// attention scope (or, without scopes, when no flash/fmha kernel ran at all).
struct fallback_spec {
  const char* label;
  const char* regex;
  bool scoped;
};
inline constexpr fallback_spec attention_fallbacks[] = {
    {"SDPA memory-efficient backend",
     "PyTorchMemEffAttention|efficient_attention|mem_efficient|fmha_cutlass", false},
    {"SDPA FlashAttention-2 backend", "pytorch_flash::", false},
    {"SDPA math backend (softmax)", "softmax_warp_forward|SoftMaxForward|cunn_SoftMax", true},
};

/// Scope paths that count as attention / norm+RoPE regions when the scope table does not
/// say (default-domain ranges, SGLang's module names).
inline constexpr const char* attention_scope_regex = "attn|attention|norm_rope|rope|qk_?norm";

struct compiled_family {
  const family_spec* spec;
  std::regex engaged;
  std::array<std::optional<std::regex>, 2> pieces;
};

/// Every regex of this header, compiled once per process.
struct hotspot_statics {
  std::vector<category_rule> default_rules;
  std::vector<compiled_family> families;
  std::vector<std::regex> fallbacks;
  std::regex attention_scope;
};

inline const hotspot_statics& statics() {
  static const hotspot_statics s = [] {
    hotspot_statics h;
    parse_category_rules(default_category_rules_text, "default rules", h.default_rules);
    const auto flags = std::regex::ECMAScript | std::regex::optimize;
    for (const family_spec& f : family_table) {
      compiled_family c{&f, std::regex(f.engaged, flags), {}};
      for (std::size_t i = 0; i < f.pieces.size(); ++i)
        if (f.pieces[i] != nullptr) c.pieces[i] = std::regex(f.pieces[i], flags);
      h.families.push_back(std::move(c));
    }
    for (const fallback_spec& fb : attention_fallbacks) h.fallbacks.emplace_back(fb.regex, flags);
    h.attention_scope = std::regex(attention_scope_regex, flags | std::regex::icase);
    return h;
  }();
  return s;
}

}  // namespace detail

/// Classifies operations with ordered rules. A rule is tried on the kernel's base name
/// (no return type, template arguments or parameters) first, then on the full name; the
/// first rule that matches wins, else "misc". Results are cached per (kind, name): regexes
/// run once per distinct kernel. Not thread-safe (the cache); use one per thread.
class kernel_classifier {
 public:
  /// SGLang's default rules.
  kernel_classifier() : rules_(detail::statics().default_rules), is_default_(true) {}
  explicit kernel_classifier(std::vector<category_rule> rules) : rules_(std::move(rules)) {}

  const std::string& classify(std::string_view name, std::string_view kind) const {
    std::string key;
    key.reserve(kind.size() + 1 + name.size());
    key.append(kind).push_back('\x1f');
    key.append(name);
    if (auto it = cache_.find(key); it != cache_.end()) return category_at(it->second);
    if (cache_.size() >= (1u << 16)) cache_.clear();  // bounded: pathological name counts
    const std::uint32_t idx = match(name, kind);
    cache_.emplace(std::move(key), idx);
    return category_at(idx);
  }

  const std::vector<category_rule>& rules() const noexcept { return rules_; }
  bool is_default() const noexcept { return is_default_; }

  /// Every category the rules can give, in rule order, then "misc".
  std::vector<std::string> categories() const {
    std::vector<std::string> out;
    for (const auto& r : rules_)
      if (std::find(out.begin(), out.end(), r.category) == out.end()) out.push_back(r.category);
    if (std::find(out.begin(), out.end(), fallback_category) == out.end())
      out.emplace_back(fallback_category);
    return out;
  }

 private:
  std::uint32_t match(std::string_view name, std::string_view kind) const {
    const std::string_view base = detail::kernel_base_name(name);
    for (const std::string_view text : {base, name}) {
      for (std::size_t i = 0; i < rules_.size(); ++i) {
        const category_rule& r = rules_[i];
        if (detail::regex_finds(r.re, r.on_kind ? kind : text))
          return static_cast<std::uint32_t>(i);
      }
      if (base.size() == name.size()) break;
    }
    return static_cast<std::uint32_t>(rules_.size());
  }
  const std::string& category_at(std::uint32_t i) const {
    return i < rules_.size() ? rules_[i].category : misc_;
  }

  std::vector<category_rule> rules_;
  bool is_default_ = false;
  std::string misc_ = fallback_category;
  mutable std::unordered_map<std::string, std::uint32_t> cache_;
};

/// Start and end (any unit, the same for all) of one GPU operation, for overlap checks.
struct op_interval {
  double start = 0, end = 0;
};

/// Intervals of the all-to-all and attention kernels of a run (from a trace), for the
/// Ulysses/USP overlap check. `available` false: no timestamps, the check is not made.
struct overlap_input {
  bool available = false;
  bool truncated = false;  ///< the intervals cover only the first events (memory cap)
  std::vector<op_interval> all_to_all, attention;
};

/// One ranked kernel name (entries of the same name in several scopes merged).
struct ranked_kernel {
  std::string name, kind, category;
  std::uint64_t count = 0;
  double total_ms = 0, mean_ms = 0, share = 0;  ///< share: % of all operation time
};

struct category_total {
  std::string category;
  std::uint64_t count = 0;
  double total_ms = 0, share = 0;
};

struct scope_hotspot {
  std::string path;
  std::uint64_t count = 0;
  double total_ms = 0, share = 0;
  std::string top_kernel;
  double top_kernel_ms = 0;
};

struct step_hotspot {
  std::int64_t step = 0;
  std::uint64_t count = 0;  ///< operations (0 when only the step's busy time is known)
  double busy_ms = 0;
  std::string top_kernel;  ///< "" when per-step kernels are unknown
  double top_kernel_ms = 0;
};

/// A fast-path family seen in the data. status: "engaged" (its kernels ran), "missed" (the
/// separate kernels it replaces ran instead; `hint` says what to try) or "unchecked" (the
/// data cannot tell, `evidence` says why).
struct family_finding {
  std::string family, title, status;
  std::vector<std::string> kernels;  ///< evidence kernels, by time, at most 4
  std::uint64_t count = 0;           ///< operations of the evidence kernels
  double time_ms = 0;                ///< their combined time
  std::string evidence;              ///< one line: what was seen, where
  std::string hint;                  ///< for "missed": what would be faster
};

struct hotspot_report {
  double total_ms = 0;  ///< all operation time (kernels, copies, sets)
  std::uint64_t operations = 0;
  bool default_rules = true;
  std::vector<ranked_kernel> kernels;  ///< by total, descending (SGLang's order)
  std::vector<category_total> categories;
  std::vector<scope_hotspot> scopes;
  std::vector<step_hotspot> steps;
  std::vector<family_finding> families;
};

namespace detail {

struct scoped_entry {
  const kernel_result* k;
  bool in_attention_scope;
};

inline std::string ms_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

/// Fills evidence kernels, count and time from entries (merged by name, by time).
inline void set_evidence(family_finding& f, const std::vector<const kernel_result*>& ks) {
  std::vector<std::pair<std::string, double>> by_name;
  for (const kernel_result* k : ks) {
    f.count += k->count;
    f.time_ms += k->total_ms;
    auto it = std::find_if(by_name.begin(), by_name.end(),
                           [&](const auto& p) { return p.first == k->name; });
    if (it == by_name.end()) {
      by_name.emplace_back(k->name, k->total_ms);
    } else {
      it->second += k->total_ms;
    }
  }
  std::stable_sort(by_name.begin(), by_name.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (std::size_t i = 0; i < by_name.size() && i < 4; ++i) f.kernels.push_back(by_name[i].first);
}

/// Sum of the parts of `a` intervals covered by the union of `b` intervals.
inline double overlapped_time(const std::vector<op_interval>& a, std::vector<op_interval> b) {
  std::sort(b.begin(), b.end(),
            [](const op_interval& x, const op_interval& y) { return x.start < y.start; });
  std::vector<op_interval> u;  // union of b, sorted, disjoint
  for (const op_interval& i : b) {
    if (!u.empty() && i.start <= u.back().end) {
      u.back().end = std::max(u.back().end, i.end);
    } else {
      u.push_back(i);
    }
  }
  double covered = 0;
  for (const op_interval& x : a) {
    auto it = std::upper_bound(u.begin(), u.end(), x.start,
                               [](double s, const op_interval& i) { return s < i.end; });
    for (; it != u.end() && it->start < x.end; ++it)
      covered += std::min(x.end, it->end) - std::max(x.start, it->start);
  }
  return covered;
}

inline void check_families(const std::vector<scoped_entry>& entries, bool has_scopes,
                           const overlap_input& ov, hotspot_report& out) {
  const hotspot_statics& st = statics();
  for (const compiled_family& cf : st.families) {
    const family_spec& f = *cf.spec;
    family_finding fnd;
    fnd.family = f.id;
    fnd.title = f.title;
    if (f.check == family_check::attention_backend) {
      std::vector<const kernel_result*> engaged;
      std::vector<std::vector<const kernel_result*>> fallback(st.fallbacks.size());
      for (const scoped_entry& e : entries) {
        bool is_fallback = false;
        for (std::size_t i = 0; i < st.fallbacks.size(); ++i) {
          if (!regex_finds(st.fallbacks[i], e.k->name)) continue;
          is_fallback = true;
          if (!attention_fallbacks[i].scoped || !has_scopes || e.in_attention_scope)
            fallback[i].push_back(e.k);
          break;
        }
        if (!is_fallback && regex_finds(cf.engaged, e.k->name)) engaged.push_back(e.k);
      }
      std::vector<const kernel_result*> seen;
      std::string labels;
      for (std::size_t i = 0; i < fallback.size(); ++i) {
        // Softmax outside any scope is evidence only when no flash kernel ran at all.
        if (fallback[i].empty() ||
            (attention_fallbacks[i].scoped && !has_scopes && !engaged.empty()))
          continue;
        seen.insert(seen.end(), fallback[i].begin(), fallback[i].end());
        labels += (labels.empty() ? "" : ", ") + std::string(attention_fallbacks[i].label);
      }
      if (!seen.empty()) {
        fnd.status = "missed";
        set_evidence(fnd, seen);
        fnd.evidence = labels + ": " + std::to_string(fnd.count) + " kernels, " +
                       ms_text(fnd.time_ms) + " ms" +
                       (engaged.empty() ? "" : " (flash/fmha kernels ran too)");
        fnd.hint = f.hint;
      } else if (!engaged.empty()) {
        fnd.status = "engaged";
        set_evidence(fnd, engaged);
        fnd.evidence = "flash/fmha attention kernels: " + std::to_string(fnd.count) + " kernels, " +
                       ms_text(fnd.time_ms) + " ms";
      } else {
        continue;
      }
      out.families.push_back(std::move(fnd));
      continue;
    }

    std::vector<const kernel_result*> engaged;
    std::array<std::vector<const kernel_result*>, 2> parts;
    for (const scoped_entry& e : entries) {
      if (regex_finds(cf.engaged, e.k->name)) {
        engaged.push_back(e.k);
        continue;
      }
      if (f.scoped && has_scopes && !e.in_attention_scope) continue;
      std::array<bool, 2> hit{false, false};
      std::size_t wanted = 0, hits = 0;
      for (std::size_t i = 0; i < 2; ++i) {
        if (!cf.pieces[i]) continue;
        ++wanted;
        hit[i] = regex_finds(*cf.pieces[i], e.k->name);
        hits += hit[i];
      }
      if (wanted > 1 && hits == wanted) continue;  // one kernel doing every part: fused
      for (std::size_t i = 0; i < 2; ++i)
        if (hit[i]) parts[i].push_back(e.k);
    }

    if (f.check == family_check::overlap) {
      if (parts[0].empty()) {
        if (engaged.empty()) continue;
        fnd.status = "engaged";
        set_evidence(fnd, engaged);
        fnd.evidence = "ring attention kernels: " + std::to_string(fnd.count) + " kernels";
        out.families.push_back(std::move(fnd));
        continue;
      }
      set_evidence(fnd, parts[0]);
      if (!ov.available) {
        fnd.status = "unchecked";
        fnd.evidence = "all-to-all kernels (" + ms_text(fnd.time_ms) +
                       " ms); overlap with attention needs timestamps (a trace)";
      } else if (ov.all_to_all.empty()) {
        fnd.status = "unchecked";
        fnd.evidence = "all-to-all kernels seen but none had timestamps";
      } else {
        double a2a = 0;
        for (const op_interval& i : ov.all_to_all) a2a += i.end - i.start;
        const double covered = overlapped_time(ov.all_to_all, ov.attention);
        const double frac = a2a > 0 ? covered / a2a : 0;
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "%.1f%% of %zu all-to-all intervals' time overlaps attention", 100.0 * frac,
                      ov.all_to_all.size());
        fnd.evidence = buf;
        if (ov.truncated) fnd.evidence += " (first events only: interval cap reached)";
        if (frac < 0.1) {
          fnd.status = "missed";
          fnd.hint = f.hint;
        } else {
          fnd.status = "engaged";
        }
      }
      out.families.push_back(std::move(fnd));
      continue;
    }

    if (!engaged.empty()) {
      fnd.status = "engaged";
      set_evidence(fnd, engaged);
      fnd.evidence = std::to_string(fnd.count) + " kernels, " + ms_text(fnd.time_ms) + " ms";
      out.families.push_back(std::move(fnd));
      continue;
    }
    const bool has_pieces = f.pieces[0] != nullptr;
    bool all = has_pieces;
    for (std::size_t i = 0; i < 2; ++i)
      if (f.pieces[i] != nullptr && parts[i].empty()) all = false;
    if (!all) continue;
    std::vector<const kernel_result*> ev = parts[0];
    for (const kernel_result* k : parts[1])
      if (std::find(ev.begin(), ev.end(), k) == ev.end()) ev.push_back(k);
    fnd.status = "missed";
    set_evidence(fnd, ev);
    fnd.evidence =
        std::to_string(fnd.count) + " separate kernels, " + ms_text(fnd.time_ms) + " ms combined" +
        (f.scoped ? (has_scopes ? " in attention/norm_rope scopes" : " (no scopes: whole run)")
                  : "");
    fnd.hint = f.hint;
    out.families.push_back(std::move(fnd));
  }
}

}  // namespace detail

/// What a kernel is for the Ulysses/USP overlap check.
enum class overlap_role { none, all_to_all, attention };

inline overlap_role classify_overlap_role(std::string_view name) {
  for (const detail::compiled_family& cf : detail::statics().families) {
    if (cf.spec->check != detail::family_check::overlap) continue;
    if (detail::regex_finds(*cf.pieces[0], name)) return overlap_role::all_to_all;
    if (detail::regex_finds(*cf.pieces[1], name)) return overlap_role::attention;
  }
  return overlap_role::none;
}

/// Ranks and classifies the operations of `r` (results.kernels; per-step detail from
/// results.trace when it was recorded) and checks the fast-path families. `ov`: operation
/// intervals for the overlap check; when absent they come from results.trace, if any.
inline hotspot_report analyze_hotspots(const results& r, const kernel_classifier& rules,
                                       const overlap_input* ov = nullptr) {
  hotspot_report rep;
  rep.default_rules = rules.is_default();
  const detail::hotspot_statics& st = detail::statics();

  std::map<std::string, category> scope_cat;
  for (const scope_result& s : r.scopes) scope_cat.emplace(s.path, s.cat);
  const auto in_attention_scope = [&](const std::string& path) {
    if (path.empty()) return false;
    for (std::size_t end = path.size();;) {  // the path and each of its parents
      const auto it = scope_cat.find(path.substr(0, end));
      if (it != scope_cat.end() &&
          (it->second == category::attention || it->second == category::norm_rope))
        return true;
      const std::size_t slash = path.rfind('/', end - 1);
      if (slash == std::string::npos || slash == 0) break;
      end = slash;
    }
    return detail::regex_finds(st.attention_scope, path);
  };

  std::vector<detail::scoped_entry> entries;
  std::unordered_map<std::string, std::size_t> by_name;
  std::map<std::string, scope_hotspot> scopes;
  std::map<std::string, std::map<std::string, double>> scope_kernels;
  bool has_scopes = false;
  for (const kernel_result& k : r.kernels) {
    entries.push_back({&k, in_attention_scope(k.scope_path)});
    rep.total_ms += k.total_ms;
    rep.operations += k.count;
    auto [it, fresh] = by_name.emplace(k.name, rep.kernels.size());
    if (fresh) {
      ranked_kernel rk;
      rk.name = k.name;
      rk.kind = k.kind;
      rk.category = rules.classify(k.name, k.kind);
      rep.kernels.push_back(std::move(rk));
    }
    ranked_kernel& rk = rep.kernels[it->second];
    rk.count += k.count;
    rk.total_ms += k.total_ms;
    if (!k.scope_path.empty()) {
      has_scopes = true;
      scope_hotspot& s = scopes[k.scope_path];
      s.path = k.scope_path;
      s.count += k.count;
      s.total_ms += k.total_ms;
      scope_kernels[k.scope_path][k.name] += k.total_ms;
    }
  }
  // SGLang's order: total descending (ties: name, so output is stable).
  std::sort(rep.kernels.begin(), rep.kernels.end(),
            [](const ranked_kernel& a, const ranked_kernel& b) {
              return a.total_ms != b.total_ms ? a.total_ms > b.total_ms : a.name < b.name;
            });
  const auto share = [&](double v) { return rep.total_ms > 0 ? 100.0 * v / rep.total_ms : 0.0; };
  std::vector<std::string> order = rules.categories();
  std::map<std::string, category_total> cats;
  for (ranked_kernel& k : rep.kernels) {
    k.mean_ms = k.count > 0 ? k.total_ms / static_cast<double>(k.count) : 0;
    k.share = share(k.total_ms);
    category_total& c = cats[k.category];
    c.category = k.category;
    c.count += k.count;
    c.total_ms += k.total_ms;
  }
  for (auto& [name, c] : cats) {
    c.share = share(c.total_ms);
    rep.categories.push_back(c);
  }
  std::stable_sort(
      rep.categories.begin(), rep.categories.end(),
      [](const category_total& a, const category_total& b) { return a.total_ms > b.total_ms; });

  for (auto& [path, s] : scopes) {
    s.share = share(s.total_ms);
    for (const auto& [name, ms] : scope_kernels[path]) {
      if (ms > s.top_kernel_ms) {
        s.top_kernel = name;
        s.top_kernel_ms = ms;
      }
    }
    rep.scopes.push_back(s);
  }
  std::stable_sort(
      rep.scopes.begin(), rep.scopes.end(),
      [](const scope_hotspot& a, const scope_hotspot& b) { return a.total_ms > b.total_ms; });

  // Per step: from recorded operations when there are any, else the steps' busy time.
  std::map<std::int64_t, step_hotspot> steps;
  std::map<std::int64_t, std::map<std::string, double>> step_kernels;
  for (const trace_op& op : r.trace.ops) {
    if (op.step < 0 || op.end_ns < op.start_ns) continue;
    step_hotspot& s = steps[op.step];
    s.step = op.step;
    s.count += 1;
    const double ms = static_cast<double>(op.end_ns - op.start_ns) / 1e6;
    s.busy_ms += ms;
    step_kernels[op.step][op.name] += ms;
  }
  if (steps.empty()) {
    for (const step_result& s : r.steps) {
      if (!s.gpu.measured) continue;
      steps[s.step] = {s.step, 0, s.gpu.busy_ms, {}, 0};
    }
  }
  for (auto& [step, s] : steps) {
    for (const auto& [name, ms] : step_kernels[step]) {
      if (ms > s.top_kernel_ms) {
        s.top_kernel = name;
        s.top_kernel_ms = ms;
      }
    }
    rep.steps.push_back(s);
  }

  overlap_input from_trace;
  if (ov == nullptr && r.trace.enabled && !r.trace.ops.empty()) {
    from_trace.available = true;
    from_trace.truncated = r.faults.trace_events_dropped > 0;
    for (const trace_op& op : r.trace.ops) {
      const op_interval i{static_cast<double>(op.start_ns), static_cast<double>(op.end_ns)};
      const overlap_role role = classify_overlap_role(op.name);
      if (role == overlap_role::all_to_all) from_trace.all_to_all.push_back(i);
      if (role == overlap_role::attention) from_trace.attention.push_back(i);
    }
  }
  detail::check_families(entries, has_scopes, ov != nullptr ? *ov : from_trace, rep);
  return rep;
}

/// analyze_hotspots with SGLang's default category rules.
inline hotspot_report analyze_hotspots(const results& r) {
  return analyze_hotspots(r, kernel_classifier());
}

namespace detail {

/// Rows as a text table: the first row holds the headers, the first `left` columns are
/// left-aligned.
inline void render_rows(std::string& out, const std::vector<std::vector<std::string>>& rows,
                        std::size_t left = 1) {
  if (rows.empty()) return;
  text_table t(rows[0], left);
  for (std::size_t i = 1; i < rows.size(); ++i) t.add(rows[i]);
  t.render(out);
}

}  // namespace detail

/// The report as text. `top` > 0: first the top kernels (SGLang's ranking, with
/// category); then categories, scopes and steps (top > 0 only), and the family notes.
inline std::string hotspots_text(const hotspot_report& rep, std::size_t top) {
  using detail::ms_text;
  std::string out;
  const auto pct = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return std::string(buf);
  };
  if (top > 0 && !rep.kernels.empty()) {
    const std::size_t n = std::min(top, rep.kernels.size());
    out += "Top " + std::to_string(n) + " of " + std::to_string(rep.kernels.size()) +
           " kernels by total GPU time (" + ms_text(rep.total_ms) + " ms in " +
           std::to_string(rep.operations) + " operations)\n";
    std::vector<std::vector<std::string>> rows{
        {"kernel", "category", "total ms", "count", "mean us", "share %"}};
    for (std::size_t i = 0; i < n; ++i) {
      const ranked_kernel& k = rep.kernels[i];
      rows.push_back({detail::display_name(k.name, 80), k.category, ms_text(k.total_ms),
                      std::to_string(k.count), ms_text(1000.0 * k.mean_ms), pct(k.share)});
    }
    detail::render_rows(out, rows, 2);
    out += "\n";
  }
  if (!rep.categories.empty()) {
    out += std::string("Kernel categories (") +
           (rep.default_rules ? "SGLang's rules" : "custom rules") +
           ", share of all GPU operation time)\n";
    std::vector<std::vector<std::string>> rows{{"category", "count", "total ms", "share %"}};
    for (const category_total& c : rep.categories)
      rows.push_back({c.category, std::to_string(c.count), ms_text(c.total_ms), pct(c.share)});
    detail::render_rows(out, rows);
  }
  if (top > 0 && !rep.scopes.empty()) {
    out += "\nBy scope (innermost scope the operations were attributed to)\n";
    std::vector<std::vector<std::string>> rows{
        {"scope", "top kernel", "count", "total ms", "share %"}};
    for (std::size_t i = 0; i < rep.scopes.size() && i < top; ++i) {
      const scope_hotspot& s = rep.scopes[i];
      rows.push_back({detail::display_name(s.path, 60), detail::display_name(s.top_kernel, 50),
                      std::to_string(s.count), ms_text(s.total_ms), pct(s.share)});
    }
    detail::render_rows(out, rows, 2);
  }
  if (top > 0 && !rep.steps.empty()) {
    out += "\nBy denoise step\n";
    std::vector<std::vector<std::string>> rows{
        {"step", "top kernel", "ops", "busy ms", "top kernel ms"}};
    for (const step_hotspot& s : rep.steps) {
      rows.push_back({std::to_string(s.step),
                      s.top_kernel.empty() ? "-" : detail::display_name(s.top_kernel, 50),
                      s.count > 0 ? std::to_string(s.count) : "-", ms_text(s.busy_ms),
                      s.top_kernel.empty() ? "-" : ms_text(s.top_kernel_ms)});
    }
    detail::render_rows(out, rows, 2);
  }
  if (!rep.families.empty()) {
    out += "\nFast-path families (SGLang diffusion; rule these out before calling a hotspot new)\n";
    for (const family_finding& f : rep.families) {
      std::string l = "  " + f.status +
                      std::string(f.status.size() < 9 ? 9 - f.status.size() : 0, ' ') + " " +
                      f.title + ": " + f.evidence;
      if (!f.kernels.empty()) {
        l += " [";
        for (std::size_t i = 0; i < f.kernels.size(); ++i)
          l += (i ? ", " : "") + detail::display_name(detail::kernel_base_name(f.kernels[i]), 48);
        l += "]";
      }
      out += l + "\n";
      if (!f.hint.empty()) out += "            hint: " + f.hint + "\n";
    }
  }
  return out;
}

/// The hotspot sections for results `r` with the default rules (see above).
inline std::string hotspots_text(const results& r, std::size_t top) {
  return hotspots_text(analyze_hotspots(r), top);
}

/// Writes the report as one JSON object value (the dump's diffscope.hotspots):
/// {total_ms, rules, categories[{category, count, total_ms, share}],
///  families[{family, title, status, kernels[], count, time_ms, evidence, hint}]}.
inline void write_hotspots_json(detail::json_writer& w, const hotspot_report& rep) {
  w.begin_object();
  w.field("total_ms", rep.total_ms);
  w.field("rules", rep.default_rules ? "sglang_default" : "custom");
  w.key("categories").begin_array();
  for (const category_total& c : rep.categories) {
    w.begin_object()
        .field("category", c.category)
        .field("count", c.count)
        .field("total_ms", c.total_ms)
        .field("share", c.share)
        .end_object();
  }
  w.end_array();
  w.key("families").begin_array();
  for (const family_finding& f : rep.families) {
    w.begin_object();
    w.field("family", f.family);
    w.field("title", f.title);
    w.field("status", f.status);
    w.key("kernels").begin_array();
    for (const std::string& k : f.kernels) w.value(k);
    w.end_array();
    w.field("count", f.count);
    w.field("time_ms", f.time_ms);
    w.field("evidence", f.evidence);
    w.field("hint", f.hint);
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

inline void write_hotspots_json(detail::json_writer& w, const results& r) {
  write_hotspots_json(w, analyze_hotspots(r));
}

}  // namespace diffscope
