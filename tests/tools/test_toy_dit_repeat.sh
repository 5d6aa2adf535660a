#!/bin/sh
# toy_dit --repeat / --paired-timing: one request range per run, the median and the halves
# printed, the dump holding the last request; a bad combination exits 2 with a reason. And
# sampled mode from the environment (DIFFSCOPE_MODE, DIFFSCOPE_SAMPLE_STEPS) read without a warning.
# Usage: test_toy_dit_repeat.sh TOY_DIT PYTHON SOURCE_DIR WORK_DIR
set -eu
toy=$1 python=$2 src=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
small="--steps 2 --tokens 16 --dim 32 --heads 2 --blocks 1"

set +e
"$toy" --paired-timing >"$work/out.txt" 2>"$work/err.txt"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--paired-timing without --repeat: exit $rc, want 2"
grep -q "needs --repeat 2 or more" "$work/err.txt" || fail "no reason given: $(cat "$work/err.txt")"

# shellcheck disable=SC2086
DIFFSCOPE_MODE=perf DIFFSCOPE_DUMP="$work/perf.json" "$toy" $small --repeat 4 --paired-timing \
  >"$work/out.txt" || fail "paired run failed"
grep -Eq '^wall_ms_all:( [0-9.]+){4}$' "$work/out.txt" || fail "wall_ms_all: $(cat "$work/out.txt")"
grep -Eq '^wall_ms_timed: [0-9.]+$' "$work/out.txt" || fail "no wall_ms_timed line"
grep -Eq '^wall_ms_untimed: [0-9.]+$' "$work/out.txt" || fail "no wall_ms_untimed line"
"$python" "$src/tests/tools/check_perf_dump.py" "$work/perf.json" >/dev/null || fail "contract check"
"$python" - "$work/perf.json" <<'PY' || fail "dump"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["diffscope"]["requests"]["count"] == 4, d["diffscope"]["requests"]
assert [s["step"] for s in d["denoise_steps_ms"]] == [0, 1], d["denoise_steps_ms"]
PY
# shellcheck disable=SC2086
DIFFSCOPE_MODE=sampled DIFFSCOPE_SAMPLE_STEPS=every:3 DIFFSCOPE_DUMP="$work/sampled.json" \
  "$toy" $small --repeat 2 >"$work/out.txt" 2>"$work/err.txt" || fail "sampled run failed"
! grep -q "diffscope:" "$work/err.txt" || fail "sampled settings warned: $(cat "$work/err.txt")"
"$python" "$src/tests/tools/check_perf_dump.py" "$work/sampled.json" >/dev/null ||
  fail "sampled: contract check"
"$python" - "$work/sampled.json" <<'PY' || fail "sampled dump"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["diffscope"]["status"]["mode"] == "sampled", d["diffscope"]["status"]
PY
echo "test_toy_dit_repeat: ok"
