// diffscope: output paths. The fields of a path template ({pid}, {rank}, {label},
// {request}) all go through one sanitiser, so no value (RANK=../../x, a request id "..")
// can leave the directory the template names or create a subdirectory; and whether an
// output may create its missing parent directories (DIFFSCOPE_CREATE_DIRS).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <diffscope/config.hpp>

namespace diffscope::detail {

/// Longest part a field puts into a file name.
inline constexpr std::size_t file_name_part_max = 64;

/// A template field's value as a file-name part: [A-Za-z0-9._-] kept, any other byte '_',
/// at most file_name_part_max bytes; "", "." and ".." become `fallback`.
inline std::string file_name_part(const std::string& value, const char* fallback = "request") {
  std::string out;
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
    if (out.size() == file_name_part_max) break;
  }
  if (out.empty() || out == "." || out == "..") out = fallback;
  return out;
}

/// The file-name parts of `ids` (file_name_part), made distinct in order: the first keeps
/// its name, a later one that would reuse a name gets "-2", "-3", ... (still a valid part
/// of at most file_name_part_max bytes), so no output overwrites another.
inline std::vector<std::string> distinct_file_name_parts(const std::vector<std::string>& ids) {
  std::vector<std::string> out;
  std::set<std::string> used;
  for (const std::string& id : ids) {
    const std::string base = file_name_part(id);
    std::string name = base;
    for (std::size_t k = 2; used.count(name) != 0; ++k) {
      const std::string suffix = "-" + std::to_string(k);
      name = base.substr(0, file_name_part_max - suffix.size()) + suffix;
    }
    used.insert(name);
    out.push_back(name);
  }
  return out;
}

/// An output path with its fields filled in when it is written: {pid} (this process),
/// {rank} (RANK, else LOCAL_RANK, else 0), {label} (DIFFSCOPE_LABEL, else "run"), {request}
/// (`request`: a request's id for per-request dumps, "all" for whole-run outputs). Each
/// process of a multi-process run (workers, torchrun ranks) thus writes its own file;
/// `diffscope run` sets DIFFSCOPE_DUMP this way. Every value goes through file_name_part.
inline std::string expand_output_path(std::string path, const std::string& request = "all") {
  auto replace_all = [&path](const std::string& key, const std::string& value) {
    for (std::size_t pos = path.find(key); pos != std::string::npos;
         pos = path.find(key, pos + value.size()))
      path.replace(pos, key.size(), value);
  };
  if (path.find('{') == std::string::npos) return path;
  replace_all("{pid}", file_name_part(std::to_string(static_cast<long long>(::getpid())), "0"));
  replace_all("{rank}", file_name_part(std::to_string(config::output_rank()), "0"));
  replace_all("{label}", file_name_part(config::text("DIFFSCOPE_LABEL"), "run"));
  replace_all("{request}", file_name_part(request));
  return path;
}

}  // namespace diffscope::detail
