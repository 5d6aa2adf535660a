// Settings (config.hpp): the table, strict parsing with one warning per setting, the
// collector's options built from it, docs/configuration.md and BENCHMARKS.md's experiment
// settings against it, no experiment setting in the users' docs; output paths
// (output/output_path.hpp): every template field sanitised, request names kept distinct.
#include <doctest/doctest.h>

#include <diffscope/collector.hpp>
#include <diffscope/config.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace config = diffscope::config;
namespace fs = std::filesystem;

/// Captures the settings' warnings while alive; every setting may warn again afterwards.
class captured_warnings {
 public:
  captured_warnings() : file_(std::tmpfile()) {
    config::detail::reset_warnings();
    config::detail::warnings().out.store(file_);
  }
  ~captured_warnings() {
    config::detail::warnings().out.store(nullptr);
    config::detail::reset_warnings();
    std::fclose(file_);
  }
  captured_warnings(const captured_warnings&) = delete;
  captured_warnings& operator=(const captured_warnings&) = delete;

  std::vector<std::string> lines() const {
    std::fflush(file_);
    std::rewind(file_);
    std::vector<std::string> out;
    std::string line;
    for (int c = std::fgetc(file_); c != EOF; c = std::fgetc(file_)) {
      if (c == '\n') {
        out.push_back(line);
        line.clear();
      } else {
        line.push_back(static_cast<char>(c));
      }
    }
    if (!line.empty()) out.push_back(line);
    std::fseek(file_, 0, SEEK_END);
    return out;
  }

 private:
  std::FILE* file_;
};

/// Sets (or with nullptr unsets) a variable for one scope.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~scoped_env() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

void unset_all_settings() {
  for (const config::setting& s : config::settings) ::unsetenv(s.name);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// The row docs/configuration.md has for `s` (BENCHMARKS.md's row for an experiment setting
/// starts with it).
std::string doc_row(const config::setting& s) {
  std::string values;
  switch (s.type) {
    case config::setting_type::flag:
      values = "on/off";
      break;
    case config::setting_type::count:
      values = s.max == config::no_limit ? std::to_string(s.min) + " or more"
                                         : std::to_string(s.min) + " to " + std::to_string(s.max);
      if (*s.values != '\0') values += ", or `" + std::string(s.values) + "`";
      break;
    case config::setting_type::choice:
      for (const char* p = s.values; *p != '\0'; ++p) {
        if (p == s.values || p[-1] == '|') values += '`';
        if (*p != '|') values += *p;
        if (p[1] == '|' || p[1] == '\0') values += '`';
        if (*p == '|') values += ", ";
      }
      break;
    default:
      values = "any";
      break;
  }
  const std::string def =
      *s.default_value != '\0' ? "`" + std::string(s.default_value) + "`" : "unset";
  return "| `" + std::string(s.name) + "` | " + config::setting_type_name(s.type) + " | " + def +
         " | " + values + " | " + s.doc + " |";
}

/// The repository's root: two levels above docs/configuration.md.
fs::path repository_root() {
  return fs::path(DIFFSCOPE_TEST_CONFIG_DOC).parent_path().parent_path();
}

/// The rows of the settings tables (header "| Setting |") in `doc`, in order; with `section`
/// (a "## " heading), only those in that section.
std::vector<std::string> table_rows(const std::string& doc, const std::string& section = "") {
  std::vector<std::string> rows;
  std::istringstream in(doc);
  bool in_section = section.empty(), in_table = false;
  for (std::string line; std::getline(in, line);) {
    if (!section.empty() && line.rfind("## ", 0) == 0) in_section = line == section;
    if (in_section && line.rfind("| Setting |", 0) == 0) in_table = true;
    if (in_section && in_table && line.rfind("| `", 0) == 0) rows.push_back(line);
    if (line.empty()) in_table = false;
  }
  return rows;
}

/// Every DIFFSCOPE_* name in `text` ("DIFFSCOPE_PERF_*"-like patterns aside).
std::vector<std::string> setting_names_in(const std::string& text) {
  std::vector<std::string> names;
  for (std::size_t p = text.find("DIFFSCOPE_"); p != std::string::npos;
       p = text.find("DIFFSCOPE_", p + 1)) {
    std::size_t e = p;
    while (e < text.size() && (std::isupper(static_cast<unsigned char>(text[e])) ||
                               std::isdigit(static_cast<unsigned char>(text[e])) || text[e] == '_'))
      ++e;
    const std::string name = text.substr(p, e - p);
    if (name.back() != '_') names.push_back(name);
  }
  return names;
}

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("the table: one entry per name, defaults that parse as their own type") {
    std::set<std::string> names;
    for (const config::setting& s : config::settings) {
      CAPTURE(s.name);
      CHECK(names.insert(s.name).second);
      CHECK(config::find(s.name) == &s);
      CHECK(*s.doc != '\0');
      switch (s.type) {
        case config::setting_type::flag:
          CHECK(config::detail::parse_flag(s.default_value).has_value());
          break;
        case config::setting_type::count:
          if (*s.default_value != '\0')
            CHECK(config::detail::parse_count(s.default_value, s.min, s.max).has_value());
          CHECK(s.min <= s.max);
          break;
        case config::setting_type::choice:
          // choice() returns 0 for the default.
          CHECK(config::detail::parse_choice(s.default_value, s.values) == std::size_t{0});
          break;
        default:
          CHECK(*s.values == '\0');
          break;
      }
    }
    CHECK(config::find("DIFFSCOPE_NOT_A_SETTING") == nullptr);
    CHECK(config::find("DIFFSCOPE_MAX_SCOPES") != nullptr);
    CHECK(config::find("DIFFSCOPE_CREATE_DIRS") != nullptr);
  }

  TEST_CASE("flags accept 1/0, true/false, yes/no, on/off in any case") {
    captured_warnings w;
    for (const char* on : {"1", "true", "TRUE", "True", "yes", "YES", "on", "On", "ON"}) {
      scoped_env e("DIFFSCOPE_SUMMARY", on);
      CHECK_MESSAGE(config::flag("DIFFSCOPE_SUMMARY"), on);
    }
    for (const char* off : {"0", "false", "FALSE", "no", "No", "off", "OFF"}) {
      scoped_env e("DIFFSCOPE_CREATE_DIRS", off);
      CHECK_FALSE_MESSAGE(config::flag("DIFFSCOPE_CREATE_DIRS"), off);
    }
    {
      scoped_env e("DIFFSCOPE_SUMMARY", nullptr);
      CHECK_FALSE(config::flag("DIFFSCOPE_SUMMARY"));  // default off
    }
    {
      scoped_env e("DIFFSCOPE_CREATE_DIRS", "");     // empty reads as unset
      CHECK(config::flag("DIFFSCOPE_CREATE_DIRS"));  // default on
    }
    CHECK(w.lines().empty());
  }

  TEST_CASE("a junk value is warned about once, in one line, and the default kept") {
    captured_warnings w;
    SUBCASE("flag") {
      scoped_env e("DIFFSCOPE_SUMMARY", "maybe");
      CHECK_FALSE(config::flag("DIFFSCOPE_SUMMARY"));
      CHECK_FALSE(config::flag("DIFFSCOPE_SUMMARY"));
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0] ==
            "diffscope: DIFFSCOPE_SUMMARY='maybe' is not a flag (1/0, true/false, yes/no, on/off); "
            "using off");
    }
    SUBCASE("flag that looks like a number") {
      scoped_env e("DIFFSCOPE_NO_GPU", "2");
      CHECK_FALSE(config::flag("DIFFSCOPE_NO_GPU"));
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0].rfind("diffscope: DIFFSCOPE_NO_GPU='2' is not a flag", 0) == 0);
    }
    SUBCASE("choice") {
      scoped_env e("DIFFSCOPE_EXPERIMENT_CLOCK", "bogus");
      CHECK(config::choice("DIFFSCOPE_EXPERIMENT_CLOCK") == 0);
      CHECK(config::choice("DIFFSCOPE_EXPERIMENT_CLOCK") == 0);
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0] ==
            "diffscope: DIFFSCOPE_EXPERIMENT_CLOCK='bogus' is not one of auto, steady; using auto");
    }
    SUBCASE("choices are exact") {
      scoped_env e("DIFFSCOPE_MODE", "Perf");
      CHECK(config::choice("DIFFSCOPE_MODE") == 0);
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0] ==
            "diffscope: DIFFSCOPE_MODE='Perf' is not one of profile, perf, sampled; using profile");
    }
    SUBCASE("count") {
      for (const char* junk :
           {"-1", "1x", " 5", "5 ", "+5", "0x10", "1e3", "99999999999999999999"}) {
        scoped_env e("DIFFSCOPE_TRACE_CAP", junk);
        CHECK_MESSAGE(config::count("DIFFSCOPE_TRACE_CAP") == std::uint64_t{2000000}, junk);
      }
      REQUIRE(w.lines().size() == 1);  // once per setting, whatever the values
      CHECK(w.lines()[0] ==
            "diffscope: DIFFSCOPE_TRACE_CAP='-1' is not a whole number >= 0; using 2000000");
    }
    SUBCASE("a count with a word for no limit") {
      scoped_env e("DIFFSCOPE_SUMMARY_SCOPES", "All");
      CHECK(config::count("DIFFSCOPE_SUMMARY_SCOPES") == std::uint64_t{25});
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0] ==
            "diffscope: DIFFSCOPE_SUMMARY_SCOPES='All' is not a whole number >= 1 or all; "
            "using 25");
    }
    SUBCASE("only a count that says so takes a word") {
      scoped_env e("DIFFSCOPE_TRACE_CAP", "all");
      CHECK(config::count("DIFFSCOPE_TRACE_CAP") == std::uint64_t{2000000});
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0] ==
            "diffscope: DIFFSCOPE_TRACE_CAP='all' is not a whole number >= 0; using 2000000");
    }
    SUBCASE("count out of its range") {
      scoped_env e("DIFFSCOPE_PERF_SAMPLE", "0");
      CHECK(config::count("DIFFSCOPE_PERF_SAMPLE") == std::uint64_t{1});
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0] ==
            "diffscope: DIFFSCOPE_PERF_SAMPLE='0' is not a whole number from 1 to 1073741824; "
            "using 1");
    }
    SUBCASE("a value with a newline stays on one line") {
      scoped_env e("DIFFSCOPE_GATE", "1\nfake line");
      CHECK_FALSE(config::flag("DIFFSCOPE_GATE"));
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0].find("'1\\x0afake line'") != std::string::npos);
    }
    SUBCASE("a long value is cut") {
      const std::string long_value(5000, 'x');
      scoped_env e("DIFFSCOPE_GATE", long_value.c_str());
      CHECK_FALSE(config::flag("DIFFSCOPE_GATE"));
      REQUIRE(w.lines().size() == 1);
      CHECK(w.lines()[0].size() < 200);
    }
    SUBCASE("each setting warns for itself") {
      scoped_env a("DIFFSCOPE_SUMMARY", "maybe");
      scoped_env b("DIFFSCOPE_MODE", "fast");
      scoped_env c("DIFFSCOPE_SKIP_REQUESTS", "many");
      for (int i = 0; i < 3; ++i) config::check_all();
      const auto lines = w.lines();
      REQUIRE(lines.size() == 3);
      CHECK(lines[0].find("DIFFSCOPE_SUMMARY='maybe'") != std::string::npos);
      CHECK(lines[1].find("DIFFSCOPE_SKIP_REQUESTS='many'") != std::string::npos);
      CHECK(lines[2].find("DIFFSCOPE_MODE='fast'") != std::string::npos);
    }
  }

  TEST_CASE("valid counts, choices and texts are read as given") {
    captured_warnings w;
    {
      scoped_env e("DIFFSCOPE_TRACE_CAP", "0");
      CHECK(config::count("DIFFSCOPE_TRACE_CAP") == std::uint64_t{0});
    }
    {
      scoped_env e("DIFFSCOPE_TRACE_CAP", "18446744073709551615");
      CHECK(config::count("DIFFSCOPE_TRACE_CAP") == config::no_limit);
    }
    {
      scoped_env e("DIFFSCOPE_SUMMARY_SCOPES", "all");
      CHECK(config::count("DIFFSCOPE_SUMMARY_SCOPES") == config::no_limit);
    }
    {
      scoped_env e("DIFFSCOPE_SUMMARY_SCOPES", "40");
      CHECK(config::count("DIFFSCOPE_SUMMARY_SCOPES") == std::uint64_t{40});
    }
    {
      scoped_env e("DIFFSCOPE_EXPERIMENT_PERF_DRAIN", "each");
      CHECK(config::choice("DIFFSCOPE_EXPERIMENT_PERF_DRAIN") == 2);
    }
    {
      scoped_env e("DIFFSCOPE_LABEL", nullptr);
      CHECK(config::text("DIFFSCOPE_LABEL") == "run");
    }
    {
      scoped_env e("DIFFSCOPE_LABEL", "B");
      CHECK(config::text("DIFFSCOPE_LABEL") == "B");
    }
    CHECK(w.lines().empty());
  }

  TEST_CASE("RANK is read one way: a whole number, else LOCAL_RANK, else 0 for {rank}") {
    captured_warnings w;
    scoped_env local("LOCAL_RANK", nullptr);
    {
      scoped_env r("RANK", nullptr);
      CHECK_FALSE(config::rank().has_value());
      CHECK(config::output_rank() == 0);
    }
    {
      scoped_env r("RANK", "7");
      CHECK(config::rank() == std::uint64_t{7});
      CHECK(config::output_rank() == 7);
    }
    {
      scoped_env r("RANK", "../../../esc");
      scoped_env l("LOCAL_RANK", "2");
      CHECK_FALSE(config::rank().has_value());
      CHECK(config::output_rank() == 2);
    }
    REQUIRE(w.lines().size() == 1);
    CHECK(w.lines()[0] ==
          "diffscope: RANK='../../../esc' is not a whole number from 0 to 1073741823; ignored");
  }

  TEST_CASE("collector_options: the table's defaults are the options' defaults") {
    captured_warnings w;
    unset_all_settings();
    const diffscope::collector_options d;
    const diffscope::collector_options e = diffscope::collector_options::from_env();
    CHECK(e.dump_path == d.dump_path);
    CHECK(e.trace_path == d.trace_path);
    CHECK(e.summary == d.summary);
    CHECK(e.summary_scopes == d.summary_scopes);
    CHECK(e.create_dirs == d.create_dirs);
    CHECK(e.create_dirs);
    CHECK(e.gpu == d.gpu);
    CHECK(e.trace_cap == d.trace_cap);
    CHECK(e.skip_requests == d.skip_requests);
    CHECK(e.window == d.window);
    CHECK(e.window == diffscope::detail::window_mode::last);
    CHECK(e.dump.tag == d.dump.tag);
    CHECK(e.dump.legacy_step_entries == d.dump.legacy_step_entries);
    CHECK(e.watch_output == d.watch_output);
    CHECK(e.expect_bcg == d.expect_bcg);
    CHECK(e.keep_invalid == d.keep_invalid);
    CHECK(e.mode == d.mode);
    CHECK(e.perf_all_scopes == d.perf_all_scopes);
    CHECK(e.perf_sample_steps == d.perf_sample_steps);
    CHECK(e.perf_stream == d.perf_stream);
    CHECK(e.perf_side_stream == d.perf_side_stream);
    CHECK(e.perf_share_ns == d.perf_share_ns);
    CHECK(e.perf_drain == d.perf_drain);
    CHECK(e.perf_chain_steps == d.perf_chain_steps);
    CHECK(e.cupti.launch_apis == d.cupti.launch_apis);
    CHECK(e.cupti.zero_buffers == d.cupti.zero_buffers);
    CHECK(e.cupti.host_clock == d.cupti.host_clock);
    CHECK(e.cupti.buffer_bytes == d.cupti.buffer_bytes);
    CHECK(e.names.stage_prefix == d.names.stage_prefix);
    CHECK(e.names.step_prefix == d.names.step_prefix);
    CHECK(e.names.request_prefix == d.names.request_prefix);
    CHECK(e.names.strip_shapes == d.names.strip_shapes);
    CHECK(w.lines().empty());
  }

  TEST_CASE("collector_options: junk everywhere gives the defaults and one line per setting") {
    captured_warnings w;
    unset_all_settings();
    std::size_t junk = 0;
    for (const config::setting& s : config::settings) {
      const char* value = s.type == config::setting_type::flag     ? "maybe"
                          : s.type == config::setting_type::count  ? "lots"
                          : s.type == config::setting_type::choice ? "bogus"
                                                                   : nullptr;
      if (value == nullptr) continue;
      ::setenv(s.name, value, 1);
      ++junk;
    }
    const diffscope::collector_options d;
    const diffscope::collector_options e = diffscope::collector_options::from_env();
    (void)diffscope::collector_options::from_env();  // read twice: still one line each
    unset_all_settings();
    CHECK(e.summary == d.summary);
    CHECK(e.summary_scopes == d.summary_scopes);
    CHECK(e.create_dirs == d.create_dirs);
    CHECK(e.gpu == d.gpu);
    CHECK(e.trace_cap == d.trace_cap);
    CHECK(e.mode == d.mode);
    CHECK(e.window == d.window);
    CHECK(e.perf_chain_steps == d.perf_chain_steps);
    CHECK(e.perf_sample_steps == d.perf_sample_steps);
    CHECK(e.cupti.buffer_bytes == d.cupti.buffer_bytes);
    CHECK(e.names.strip_shapes == d.names.strip_shapes);
    const auto lines = w.lines();
    CHECK(lines.size() == junk);
    std::set<std::string> said;
    for (const std::string& l : lines) {
      CHECK(l.rfind("diffscope: ", 0) == 0);
      said.insert(l.substr(11, l.find('=') - 11));
    }
    CHECK(said.size() == junk);
  }

  TEST_CASE("collector_options: valid values are read as before") {
    captured_warnings w;
    unset_all_settings();
    ::setenv("DIFFSCOPE_SUMMARY", "yes", 1);
    ::setenv("DIFFSCOPE_CREATE_DIRS", "0", 1);
    ::setenv("DIFFSCOPE_NO_GPU", "1", 1);
    ::setenv("DIFFSCOPE_MODE", "perf", 1);
    ::setenv("DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS", "off", 1);
    ::setenv("DIFFSCOPE_PERF_SAMPLE", "4", 1);
    ::setenv("DIFFSCOPE_PERF_SCOPES", "all", 1);
    ::setenv("DIFFSCOPE_STAGE_PREFIX", "none", 1);
    ::setenv("DIFFSCOPE_STEP_PREFIX", "it_", 1);
    ::setenv("DIFFSCOPE_EXPECT_BCG", "1", 1);
    ::setenv("DIFFSCOPE_EXPERIMENT_CUPTI_BUFFER_KB", "1024", 1);
    ::setenv("DIFFSCOPE_TAG", "server_perf_dump", 1);
    ::setenv("DIFFSCOPE_SUMMARY_SCOPES", "all", 1);
    ::setenv("DIFFSCOPE_WINDOW", "requests", 1);
    const auto o = diffscope::collector_options::from_env();
    unset_all_settings();
    CHECK(o.summary);
    CHECK(o.summary_scopes == config::no_limit);
    CHECK(o.window == diffscope::detail::window_mode::requests);
    CHECK_FALSE(o.create_dirs);
    CHECK_FALSE(o.gpu);
    CHECK(o.mode == diffscope::timing_mode::perf);
    CHECK_FALSE(o.perf_chain_steps);
    CHECK(o.perf_sample_steps == 4);
    CHECK(o.perf_all_scopes);
    CHECK(o.names.stage_prefix.empty());
    CHECK(o.names.step_prefix == "it_");
    CHECK(o.expect_bcg);
    CHECK(o.watch_output);  // implied
    CHECK(o.cupti.buffer_bytes == std::size_t{1024} << 10);
    CHECK(o.dump.tag == "server_perf_dump");
    CHECK(w.lines().empty());
  }

  TEST_CASE("docs/configuration.md lists exactly the table, experiment settings aside") {
    const std::string doc = read_text(DIFFSCOPE_TEST_CONFIG_DOC);
    REQUIRE_FALSE(doc.empty());
    std::string expected;
    for (const config::setting& s : config::settings)
      if (!s.experiment) expected += doc_row(s) + "\n";
    std::string got;
    for (const std::string& r : table_rows(doc)) got += r + "\n";
    // On a mismatch the expected rows are printed: paste them into the doc.
    CHECK_MESSAGE(got == expected, "expected rows:\n" << expected);
    // No other DIFFSCOPE_* name in the doc's prose, and no experiment setting.
    for (const std::string& name : setting_names_in(doc)) {
      const config::setting* s = config::find(name);
      CHECK_MESSAGE(s != nullptr, name << " is in the doc, not in the table");
      CHECK_MESSAGE((s == nullptr || !s->experiment),
                    name << " is an experiment setting: BENCHMARKS.md documents it");
    }
  }

  TEST_CASE("BENCHMARKS.md lists every experiment setting; users' docs list none") {
    const fs::path root = repository_root();
    const std::string bench = read_text((root / "BENCHMARKS.md").string());
    REQUIRE_FALSE(bench.empty());
    const std::vector<std::string> rows = table_rows(bench, "## Experiment settings");
    std::size_t i = 0;
    for (const config::setting& s : config::settings) {
      if (!s.experiment) continue;
      CAPTURE(s.name);
      CHECK(std::string(s.name).rfind("DIFFSCOPE_EXPERIMENT_", 0) == 0);
      // Its row: the table's name, type, default, values and doc, then what was measured.
      REQUIRE(i < rows.size());
      CHECK_MESSAGE(rows[i].rfind(doc_row(s), 0) == 0, "expected a row starting\n" << doc_row(s));
      ++i;
    }
    CHECK(i == rows.size());
    // Every experiment setting named anywhere in BENCHMARKS.md is the table's.
    for (const std::string& name : setting_names_in(bench))
      if (name.rfind("DIFFSCOPE_EXPERIMENT_", 0) == 0)
        CHECK_MESSAGE(config::find(name) != nullptr,
                      name << " is in BENCHMARKS.md, not in the table");
    // Only the table's experiment settings are named DIFFSCOPE_EXPERIMENT_*.
    for (const config::setting& s : config::settings)
      if (std::string(s.name).rfind("DIFFSCOPE_EXPERIMENT_", 0) == 0) CHECK(s.experiment);
    // The users' docs name none of them (the prefix alone, DIFFSCOPE_EXPERIMENT_*, they may).
    std::vector<fs::path> docs{root / "README.md"};
    for (const auto& entry : fs::directory_iterator(root / "docs"))
      if (entry.path().extension() == ".md") docs.push_back(entry.path());
    for (const fs::path& doc : docs) {
      const std::string text = read_text(doc.string());
      for (const std::string& name : setting_names_in(text)) {
        const config::setting* s = config::find(name);
        CHECK_MESSAGE((s == nullptr || !s->experiment),
                      doc.string() << " names " << name << ": BENCHMARKS.md documents it");
      }
    }
  }
}

TEST_SUITE("output paths") {
  TEST_CASE("the sanitiser keeps [A-Za-z0-9._-], bounds the length, replaces '', '.', '..'") {
    using diffscope::detail::file_name_part;
    CHECK(file_name_part("a/b c:d") == "a_b_c_d");
    CHECK(file_name_part("ok-1.2_x") == "ok-1.2_x");
    CHECK(file_name_part("..") == "request");
    CHECK(file_name_part(".") == "request");
    CHECK(file_name_part("") == "request");
    CHECK(file_name_part("", "run") == "run");
    CHECK(file_name_part("../../../esc") == ".._.._.._esc");
    CHECK(file_name_part(std::string("a\0b", 3)) == "a_b");
    CHECK(file_name_part("\xc3\xa9") == "__");
    CHECK(file_name_part(std::string(100, 'x')).size() == 64);
  }

  TEST_CASE("a hostile RANK, label or request never leaves the directory") {
    captured_warnings w;
    using diffscope::detail::expand_output_path;
    scoped_env local("LOCAL_RANK", nullptr);
    const std::string tmpl = "dir/d-{rank}-{label}-{request}-{pid}.json";
    const std::string pid = std::to_string(static_cast<long long>(::getpid()));
    for (const char* hostile : {"../../../esc", "a/b", "/etc/passwd", "..", ".", "", "{pid}"}) {
      CAPTURE(hostile);
      scoped_env r("RANK", hostile);
      scoped_env l("DIFFSCOPE_LABEL", hostile);
      const std::string p = expand_output_path(tmpl, hostile);
      const fs::path path(p);
      CHECK(path.parent_path() == "dir");
      CHECK(p.find("/..") == std::string::npos);
      CHECK(std::count(p.begin(), p.end(), '/') == 1);
      CHECK(path.filename().string().rfind("d-0-", 0) == 0);  // a junk RANK is no rank
      CHECK(p.size() < 200);
    }
    {
      scoped_env r("RANK", "3");
      scoped_env l("DIFFSCOPE_LABEL", "../up");
      CHECK(expand_output_path(tmpl, "a/b") == "dir/d-3-.._up-a_b-" + pid + ".json");
    }
  }

  TEST_CASE("request ids that map to one file name get distinct names, in order") {
    using diffscope::detail::distinct_file_name_parts;
    const auto n = distinct_file_name_parts({"", "..", "a", "a", "a-2", "a/b", "a_b", "."});
    REQUIRE(n.size() == 8);
    CHECK(n[0] == "request");
    CHECK(n[1] == "request-2");
    CHECK(n[2] == "a");
    CHECK(n[3] == "a-2");
    CHECK(n[4] == "a-2-2");  // the id "a-2" itself, after a repeated "a" took that name
    CHECK(n[5] == "a_b");
    CHECK(n[6] == "a_b-2");
    CHECK(n[7] == "request-3");
    // Long ids cut to the same name stay distinct and bounded.
    const auto l = distinct_file_name_parts({std::string(100, 'x') + "1", std::string(100, 'x')});
    CHECK(l[0].size() == 64);
    CHECK(l[1].size() == 64);
    CHECK(l[0] != l[1]);
    // The names are fixed points of the sanitiser: expanding them again keeps them.
    for (const auto& s : n) CHECK(diffscope::detail::file_name_part(s) == s);
    for (const auto& s : l) CHECK(diffscope::detail::file_name_part(s) == s);
  }

  TEST_CASE("write_outputs: per-request dumps never overwrite each other") {
    captured_warnings w;
    unset_all_settings();
    const fs::path dir =
        fs::temp_directory_path() / ("diffscope_config_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    diffscope::results r;
    for (const char* id : {"", "..", "same", "same", "0"}) {
      diffscope::request_result q;
      q.id = id;
      q.index = r.requests.size();
      q.host_ms = 10.0 + static_cast<double>(q.index);
      r.requests.push_back(q);
    }
    diffscope::collector_options o;
    o.dump_path = (dir / "d-{request}.json").string();
    o.dump.timestamp = "2025-01-01T00:00:00Z";
    diffscope::detail::write_outputs(o, r);
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
    // "" is named by its index, 0; the id "0" comes later and gets "0-2".
    CHECK(files == std::set<std::string>{"d-0.json", "d-request.json", "d-same.json",
                                         "d-same-2.json", "d-0-2.json"});
    // Each file holds its own request: end-to-end times 10, 11, ... ms in request order.
    const char* order[] = {"d-0.json", "d-request.json", "d-same.json", "d-same-2.json",
                           "d-0-2.json"};
    for (int i = 0; i < 5; ++i) {
      const std::string text = read_text((dir / order[i]).string());
      CAPTURE(order[i]);
      CHECK(text.find("\"total_duration_ms\": " + std::to_string(10 + i)) != std::string::npos);
    }
    fs::remove_all(dir);
  }

  TEST_CASE("write_outputs: a hostile RANK writes inside the directory") {
    captured_warnings w;
    unset_all_settings();
    const fs::path base =
        fs::temp_directory_path() / ("diffscope_rank_" + std::to_string(::getpid()));
    fs::remove_all(base);
    const fs::path dir = base / "a" / "b" / "c";
    fs::create_directories(dir);
    diffscope::results r;
    diffscope::collector_options o;
    o.dump_path = (dir / "d-{rank}.json").string();
    o.dump.timestamp = "2025-01-01T00:00:00Z";
    for (const char* hostile : {"../../../esc", "a/b"}) {
      scoped_env rank("RANK", hostile);
      diffscope::detail::write_outputs(o, r);
    }
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(base))
      if (e.is_regular_file()) found.push_back(fs::relative(e.path(), base).string());
    CHECK(found == std::vector<std::string>{"a/b/c/d-0.json"});
    CHECK_FALSE(fs::exists(dir / "a"));
    fs::remove_all(base);
  }

  TEST_CASE("DIFFSCOPE_CREATE_DIRS off: a missing directory is an error, never created") {
    captured_warnings w;
    const fs::path base =
        fs::temp_directory_path() / ("diffscope_dirs_" + std::to_string(::getpid()));
    fs::remove_all(base);
    fs::create_directories(base);
    diffscope::results r;
    diffscope::perf_dump_options po;
    po.timestamp = "2025-01-01T00:00:00Z";
    const std::string missing = (base / "gone" / "d.json").string();
    const auto err = diffscope::write_perf_dump(missing, r, po, /*create_parents=*/false);
    REQUIRE(err.has_value());
    CHECK(err->find("does not exist") != std::string::npos);
    CHECK(err->find(missing) != std::string::npos);
    CHECK_FALSE(fs::exists(base / "gone"));
    const auto terr = diffscope::write_chrome_trace((base / "gone" / "t.json").string(), r, false);
    REQUIRE(terr.has_value());
    CHECK_FALSE(fs::exists(base / "gone"));
    // An existing directory is written as always; the default still creates.
    CHECK_FALSE(diffscope::write_perf_dump((base / "d.json").string(), r, po, false).has_value());
    CHECK(fs::exists(base / "d.json"));
    CHECK_FALSE(diffscope::write_perf_dump(missing, r, po).has_value());
    CHECK(fs::exists(missing));
    // Through the collector's options, from the environment.
    fs::remove_all(base / "gone");
    {
      scoped_env e("DIFFSCOPE_CREATE_DIRS", "0");
      diffscope::collector_options o = diffscope::collector_options::from_env();
      o.dump_path = missing;
      diffscope::detail::write_outputs(o, r);
    }
    CHECK_FALSE(fs::exists(base / "gone"));
    fs::remove_all(base);
  }
}
