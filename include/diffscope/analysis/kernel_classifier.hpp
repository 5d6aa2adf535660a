// diffscope: the kernel classifier. Ordered regex rules (SGLang's defaults from
// sglang/kernel_categories.hpp, or a user's rules file) give each kernel name a category.
// See docs/hotspots.md. No CUDA, CUPTI or JSON library.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <diffscope/sglang/kernel_categories.hpp>
#include <diffscope/util/text.hpp>

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

/// SGLang's default rules, parsed once per process.
inline const std::vector<category_rule>& default_category_rules() {
  static const std::vector<category_rule> rules = [] {
    std::vector<category_rule> out;
    parse_category_rules(default_category_rules_text, "default rules", out);
    return out;
  }();
  return rules;
}

}  // namespace detail

/// Classifies operations with ordered rules. A rule is tried on the kernel's base name
/// (no return type, template arguments or parameters) first, then on the full name; the
/// first rule that matches wins, else "misc". Results are cached per (kind, name): regexes
/// run once per distinct kernel. Not thread-safe (the cache); use one per thread.
class kernel_classifier {
 public:
  /// SGLang's default rules.
  kernel_classifier() : rules_(detail::default_category_rules()), is_default_(true) {}
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

}  // namespace diffscope
