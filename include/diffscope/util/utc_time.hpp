// diffscope: the current UTC time as text, in any strftime format plus "%f" (microseconds):
// the perf dump's timestamp and the file names and stamps the CLI writes.
#pragma once

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace diffscope::detail {

/// The current UTC time as strftime writes `fmt`, where "%f" also stands for the microseconds
/// (six digits, as in Python's datetime.strftime). "" when the text would not fit 255 bytes.
inline std::string utc_now(const char* fmt) {
  const auto now = std::chrono::system_clock::now();
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long frac = static_cast<long>(us % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::string format;  // `fmt` with each "%f" replaced (strftime has no such conversion)
  for (const char* p = fmt; *p != '\0'; ++p) {
    if (p[0] == '%' && p[1] == 'f') {
      char digits[16];
      std::snprintf(digits, sizeof digits, "%06ld", frac);
      format += digits;
      ++p;
    } else if (p[0] == '%' && p[1] != '\0') {
      format.append(p, 2);  // another conversion ("%%" included) stays whole
      ++p;
    } else {
      format += *p;
    }
  }
  char buf[256];
  const std::size_t n = std::strftime(buf, sizeof buf, format.c_str(), &tm);
  return std::string(buf, n);
}

/// "2025-12-18T09:54:57.458009+00:00": UTC, microseconds, like datetime.now(UTC).isoformat().
inline std::string utc_timestamp_now() {
  return utc_now("%Y-%m-%dT%H:%M:%S.%f+00:00");
}

}  // namespace diffscope::detail
