// diffscope version. The one source of the version is the VERSION file at the project root;
// CMake and Meson refuse to configure when this header disagrees with it.
#pragma once

#define DIFFSCOPE_VERSION_MAJOR 0
#define DIFFSCOPE_VERSION_MINOR 1
#define DIFFSCOPE_VERSION_PATCH 0
/// MAJOR * 10000 + MINOR * 100 + PATCH, for preprocessor comparisons.
#define DIFFSCOPE_VERSION \
  (DIFFSCOPE_VERSION_MAJOR * 10000 + DIFFSCOPE_VERSION_MINOR * 100 + DIFFSCOPE_VERSION_PATCH)
#define DIFFSCOPE_VERSION_STRING "0.1.0"
