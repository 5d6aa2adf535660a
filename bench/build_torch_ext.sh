#!/bin/sh
# Builds examples/torch_extension against this Python's torch (the extension the Python
# benchmarks load): bench/build_torch_ext.sh [LOG_DIR]
# Builds in $EXT_BUILD (default build-ext) for $CUDA_ARCH (default 90) with $PYTHON (default
# python3). Exit 2 when the configure or the build fails (its log tail is printed).
set -eu
logs=${1:-${EXT_BUILD:-build-ext}}
ext_build=${EXT_BUILD:-build-ext}
python=${PYTHON:-python3}
mkdir -p "$logs"
prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
echo "build_torch_ext.sh: building $ext_build (logs in $logs)"
cmake -S examples/torch_extension -B "$ext_build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" >"$logs/ext-configure.log" 2>&1 ||
  { tail -n 30 "$logs/ext-configure.log"; exit 2; }
cmake --build "$ext_build" >"$logs/ext-build.log" 2>&1 || { tail -n 30 "$logs/ext-build.log"; exit 2; }
