#!/bin/sh
# One command on the GPU machine: build the PyTorch extension example against this Python's
# torch, check its kernel against a PyTorch reference, then run bench/torch_overhead.py
# (overhead, step accuracy, nesting, coexistence; report printed last).
#   bench/torch_overhead.sh [OUT_DIR] [extra torch_overhead.py arguments...]
# Run from the repository root. Needs the diffscope build in $DIFFSCOPE_BUILD (default
# build-gpu, targets diffscope_cli and diffscope_inject); builds the extension in $EXT_BUILD
# (default build-ext) for $CUDA_ARCH (default 90). DEVICE=cpu runs everything on the CPU.
# Exit status: 2 when the build or the kernel check fails, else the driver's (0 all targets
# passed or skipped, 1 a target failed).
set -eu
build=${DIFFSCOPE_BUILD:-build-gpu}
out=${1:-$build/torch_overhead}
[ $# -gt 0 ] && shift
ext_build=${EXT_BUILD:-build-ext}
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
mkdir -p "$out"
EXT_BUILD="$ext_build" PYTHON="$python" sh bench/build_torch_ext.sh "$out" || exit 2
"$python" examples/torch_extension/dit_loop.py --ext "$ext_build/libdiffscope_torch_ext.so" \
  --device "$device" --check || exit 2
exec "$python" bench/torch_overhead.py --diffscope "$build/tools/diffscope" \
  --ext "$ext_build/libdiffscope_torch_ext.so" --out "$out" --python "$python" --device "$device" "$@"
