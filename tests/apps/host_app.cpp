// A host program that uses the collector (the static injection of collector.hpp), for
// tests/tools/test_junk_settings.sh: it prints a fixed result on stdout, one line of its own
// on stderr and exits 3, so the test sees whether any DIFFSCOPE_* value changes them.
//   host_app             run (the collector starts from the environment)
//   host_app --settings  the settings table: "NAME TYPE" per line
#include <cstdio>
#include <cstring>

#include <diffscope/collector.hpp>
#include <diffscope/config.hpp>

namespace {

long work(int step) {
  DIFFSCOPE_SCOPE("work");
  long sum = 0;
  for (int i = 0; i < 1000; ++i) sum += (i * (step + 1)) % 7;
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--settings") == 0) {
    for (const auto& s : diffscope::config::settings)
      std::printf("%s %s\n", s.name, diffscope::config::setting_type_name(s.type));
    return 0;
  }
  long sum = 0;
  {
    DIFFSCOPE_REQUEST("r1");
    DIFFSCOPE_STAGE("DenoisingStage");
    for (int i = 0; i < 3; ++i) {
      DIFFSCOPE_DENOISE_STEP(i);
      sum += work(i);
    }
  }
  std::printf("sum %ld\n", sum);
  std::fprintf(stderr, "host_app: done\n");
  return 3;
}
