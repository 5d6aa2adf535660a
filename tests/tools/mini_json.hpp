// Test helper: a small strict JSON parser (RFC 8259, UTF-8 checked) that keeps object key
// order, so tests can check our writers' output without a JSON library in the test link.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mini_json {

enum class kind { null, boolean, number, string, array, object };

struct value {
  kind k = kind::null;
  bool b = false;
  double num = 0;
  std::string raw_number;  // the number's text, to tell 12 from 12.0
  std::string str;
  std::vector<value> items;
  std::vector<std::pair<std::string, value>> members;

  bool has(const std::string& key) const {
    for (const auto& m : members)
      if (m.first == key) return true;
    return false;
  }
  const value& operator[](const std::string& key) const {
    for (const auto& m : members)
      if (m.first == key) return m.second;
    throw std::runtime_error("no key " + key);
  }
  const value& operator[](std::size_t i) const { return items.at(i); }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& m : members) out.push_back(m.first);
    return out;
  }
  bool is_integer() const {
    return k == kind::number && raw_number.find_first_of(".eE") == std::string::npos;
  }
};

class parser {
 public:
  explicit parser(const std::string& text) : s_(text) {}
  value parse() {
    value v = parse_value();
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("JSON error at " + std::to_string(i_) + ": " + what);
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }
  bool eat(const char* lit) {
    std::size_t n = std::char_traits<char>::length(lit);
    if (s_.compare(i_, n, lit) == 0) {
      i_ += n;
      return true;
    }
    return false;
  }
  value parse_value() {
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    value v;
    const char c = s_[i_];
    if (c == '{') {
      v.k = kind::object;
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return v;
      }
      for (;;) {
        ws();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected key");
        std::string key = parse_string();
        for (const auto& m : v.members)
          if (m.first == key) fail("duplicate key " + key);
        ws();
        if (!eat(":")) fail("expected ':'");
        v.members.emplace_back(std::move(key), parse_value());
        ws();
        if (eat(",")) continue;
        if (eat("}")) return v;
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.k = kind::array;
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return v;
      }
      for (;;) {
        v.items.push_back(parse_value());
        ws();
        if (eat(",")) continue;
        if (eat("]")) return v;
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.k = kind::string;
      v.str = parse_string();
      return v;
    }
    if (eat("true")) {
      v.k = kind::boolean;
      v.b = true;
      return v;
    }
    if (eat("false")) {
      v.k = kind::boolean;
      return v;
    }
    if (eat("null")) return v;
    return parse_number();
  }
  value parse_number() {
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ >= s_.size() || !isdigit(s_[i_])) fail("bad number");
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (i_ >= s_.size() || !isdigit(s_[i_])) fail("bad fraction");
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= s_.size() || !isdigit(s_[i_])) fail("bad exponent");
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    value v;
    v.k = kind::number;
    v.raw_number = s_.substr(start, i_ - start);
    v.num = std::strtod(v.raw_number.c_str(), nullptr);
    return v;
  }
  // Independent of diffscope's own UTF-8 code on purpose: this checks it.
  static std::size_t utf8_length(unsigned char c) {
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 0;
  }
  static bool isdigit(char c) { return c >= '0' && c <= '9'; }
  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  std::uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else
        fail("bad hex digit");
    }
    return v;
  }
  std::string parse_string() {
    ++i_;  // opening quote
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c < 0x20) fail("raw control character in string");
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) fail("bad escape");
        const char e = s_[i_++];
        switch (e) {
          case '"':
            out.push_back('"');
            break;
          case '\\':
            out.push_back('\\');
            break;
          case '/':
            out.push_back('/');
            break;
          case 'b':
            out.push_back('\b');
            break;
          case 'f':
            out.push_back('\f');
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 'r':
            out.push_back('\r');
            break;
          case 't':
            out.push_back('\t');
            break;
          case 'u': {
            std::uint32_t cp = hex4();
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (!eat("\\u")) fail("lone high surrogate");
              const std::uint32_t lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              fail("lone low surrogate");
            }
            put_utf8(out, cp);
            break;
          }
          default:
            fail("bad escape");
        }
        continue;
      }
      if (c >= 0x80) {
        const std::size_t n = utf8_length(c);
        if (n == 0 || i_ + n > s_.size()) fail("invalid UTF-8");
        std::uint32_t cp = c & (0x7F >> n);
        for (std::size_t k = 1; k < n; ++k) {
          const auto cc = static_cast<unsigned char>(s_[i_ + k]);
          if ((cc & 0xC0) != 0x80) fail("invalid UTF-8");
          cp = (cp << 6) | (cc & 0x3F);
        }
        const std::uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          fail("invalid UTF-8");
        out.append(s_, i_, n);
        i_ += n;
        continue;
      }
      out.push_back(static_cast<char>(c));
      ++i_;
    }
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

inline value parse(const std::string& text) {
  return parser(text).parse();
}

}  // namespace mini_json
