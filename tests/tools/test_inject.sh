#!/usr/bin/env bash
# libdiffscope_inject.so collects from a program that has no diffscope code: a C program
# with plain NVTX calls and SGLang's range names, run with NVTX_INJECTION64_PATH set.
# Usage: test_inject.sh INJECT_LIB APP PYTHON SOURCE_DIR WORK_DIR
set -euo pipefail
lib=$1 app=$2 python=$3 src=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. The dump follows SGLang's mapping; the program's own exit code and output are untouched.
set +e
out=$(NVTX_INJECTION64_PATH="$lib" DIFFSCOPE_DUMP="$work/perf.json" DIFFSCOPE_SUMMARY=1 \
  "$app" 5 7 2>"$work/stderr.txt")
rc=$?
set -e
[ "$rc" -eq 7 ] || fail "exit code $rc, want the program's own 7"
[ "$out" = "plain_nvtx_app: 5 steps" ] || fail "stdout changed: $out"
grep -q "host timings only\|GPU timing: measured" "$work/stderr.txt" || fail "no summary on stderr"
"$python" "$src/tests/tools/check_perf_dump.py" "$work/perf.json" >/dev/null || fail "contract check"
"$python" - "$work/perf.json" <<'PY' || fail "mapping"
import json, sys
d = json.load(open(sys.argv[1]))
names = [s["name"] for s in d["steps"]]
assert names == ["TextEncodingStage", "DenoisingStage", "DecodingStage"], names
steps = [s["step"] for s in d["denoise_steps_ms"]]
assert steps == [0, 1, 2, 3, 4], steps
paths = {s["path"] for s in d["diffscope"]["scopes"]}
want = "DenoisingStage/denoising_loop/denoise_step/transformer.blocks.0.attn"
assert want in paths, sorted(paths)
assert all(s["duration_ms"] > 0 for s in d["denoise_steps_ms"])
PY

# 2. Without DIFFSCOPE_* output variables the library stays idle and writes nothing.
NVTX_INJECTION64_PATH="$lib" "$app" 2 >/dev/null
[ -z "$(ls -A "$work" | grep -v -e perf.json -e stderr.txt)" ] || fail "idle run wrote files"
# 3. The entry points other shared objects and Python (ctypes) call are exported and safe to
#    call before anything is collected.
"$python" - "$lib" <<'PY' || fail "exported entry points"
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.diffscope_set_timing_paused.argtypes = [ctypes.c_int]
lib.diffscope_set_timing_paused(1)
lib.diffscope_set_timing_paused(0)
lib.diffscope_set_timing_stream.argtypes = [ctypes.c_void_p]
lib.diffscope_set_timing_stream(None)
PY
echo "test_inject: ok"
