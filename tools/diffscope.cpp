// The `diffscope` command: one binary, one subcommand per task.
//   diffscope <command> [arguments]   (diffscope help: the list)
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <diffscope/version.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

int print_help(std::FILE* out) {
  std::fprintf(out, "usage: diffscope <command> [arguments]\n\ncommands:\n");
  for (const auto& c : diffscope::cli::commands())
    std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "  %-10s %s\n", "version", "print the version");
  std::fprintf(out, "\n'diffscope <command> --help' describes a command.\n");
  return out == stdout ? 0 : diffscope::cli::exit_usage;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return print_help(stderr);
  const std::string name = argv[1];
  if (name == "help" || name == "--help" || name == "-h") return print_help(stdout);
  if (name == "version" || name == "--version") {
    for (int i = 2; i < argc; ++i) {
      if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) continue;
      std::fprintf(stderr, "diffscope %s: unknown argument '%s' (it takes none)\n", name.c_str(),
                   argv[i]);
      return diffscope::cli::exit_usage;
    }
    if (argc > 2) {
      std::printf("usage: diffscope version\nPrints the version.\n");
      return 0;
    }
    std::printf("diffscope %s\n", DIFFSCOPE_VERSION_STRING);
    return 0;
  }
  for (const auto& c : diffscope::cli::commands()) {
    if (name != c.name) continue;
    try {
      return c.run(diffscope::cli::args(argv + 2, argv + argc));
    } catch (const diffscope::cli::failure& f) {
      std::fprintf(stderr, "diffscope %s: %s\n", c.name, f.what());
      return f.code;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "diffscope %s: %s\n", c.name, e.what());
      return diffscope::cli::exit_usage;
    }
  }
  std::fprintf(stderr, "diffscope: unknown command '%s' (diffscope help lists them)\n",
               name.c_str());
  return diffscope::cli::exit_usage;
}
