#!/usr/bin/env bash
# `diffscope run` on programs that know nothing of diffscope (a C program with plain NVTX
# calls and SGLang's names): dumps, merged dumps of spawned processes, traces, the gate,
# exit codes. Usage: test_run_cli.sh DIFFSCOPE APP PYTHON SOURCE_DIR WORK_DIR
set -uo pipefail
ds=$1 app=$2 python=$3 src=$4 work=$5
rm -rf "$work" && mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"  # run's private directories, apart from other tests'
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
check_dump() { "$python" "$src/tests/tools/check_perf_dump.py" --quiet "$1" || fail "contract: $1"; }

# One process: its dump, the mapping, its exit code and stdout untouched.
out=$("$ds" run --dump "$work/one.json" --trace "$work/one_trace.json" -- "$app" 4 7 2>"$work/one.err")
rc=$?
[ "$rc" -eq 7 ] || fail "exit code $rc, want 7"
[ "$out" = "plain_nvtx_app: 4 steps" ] || fail "stdout: $out"
check_dump "$work/one.json"
"$python" "$src/tests/tools/check_chrome_trace.py" "$work/one_trace.json" >/dev/null || fail "trace"
"$python" - "$work/one.json" <<'PY' || fail "one: mapping"
import json, sys
d = json.load(open(sys.argv[1]))
assert [s["name"] for s in d["steps"]] == ["TextEncodingStage", "DenoisingStage", "DecodingStage"]
assert [s["step"] for s in d["denoise_steps_ms"]] == [0, 1, 2, 3]
PY
grep -q "diffscope gate: valid" "$work/one.err" || fail "no gate verdict line"

# --mode sets the timing mode of every process; a mode it does not know is a usage error.
"$ds" run --mode perf --dump "$work/perf.json" -- "$app" 2 >/dev/null 2>&1
"$python" - "$work/perf.json" <<'PY' || fail "--mode perf: not labelled perf"
import json, sys
assert json.load(open(sys.argv[1]))["diffscope"]["status"]["mode"] == "perf"
PY
"$ds" run --mode fast -- "$app" 2 >/dev/null 2>"$work/mode.err"
[ $? -eq 2 ] || fail "--mode fast: want exit 2"
grep -q "is not profile, perf or sampled" "$work/mode.err" || fail "--mode fast: no reason given"

# --sample-steps reaches every process as DIFFSCOPE_SAMPLE_STEPS.
"$ds" run --mode sampled --sample-steps every:3 --no-gate -- \
  sh -c 'echo "$DIFFSCOPE_MODE $DIFFSCOPE_SAMPLE_STEPS"' >"$work/sample.out" 2>/dev/null
grep -qx "sampled every:3" "$work/sample.out" ||
  fail "--sample-steps: the command saw '$(cat "$work/sample.out")', want 'sampled every:3'"

# --perf-scopes and --perf-sample reach every process; bad values are usage errors.
"$ds" run --mode perf --perf-sample 4 --dump "$work/sampled.json" -- "$app" 2 >/dev/null 2>&1
"$python" - "$work/sampled.json" <<'PY' || fail "--perf-sample 4: not recorded in the dump"
import json, sys
st = json.load(open(sys.argv[1]))["diffscope"]["status"]
assert st["mode"] == "perf" and st["perf_scopes"] == "all" and st["perf_sample_steps"] == 4, st
PY
"$ds" run --mode perf --perf-scopes steps --dump "$work/steps.json" -- "$app" 2 >/dev/null 2>&1
"$python" - "$work/steps.json" <<'PY' || fail "--perf-scopes steps: not recorded in the dump"
import json, sys
st = json.load(open(sys.argv[1]))["diffscope"]["status"]
assert st["perf_scopes"] == "steps" and st["perf_sample_steps"] == 1, st
PY
for bad in "--perf-scopes some" "--perf-sample 0" "--perf-sample x" "--perf-sample 2.5" \
           "--perf-scopes steps --perf-sample 4"; do
  # shellcheck disable=SC2086
  "$ds" run --mode perf $bad -- "$app" 2 >/dev/null 2>"$work/perf.err"
  [ $? -eq 2 ] || fail "$bad: want exit 2"
  [ -s "$work/perf.err" ] || fail "$bad: no reason given"
done

# Spawned processes: each writes its own dump, the result is their merge.
"$ds" run --dump "$work/two.json" -- sh -c "'$app' 3 >/dev/null & '$app' 5 >/dev/null; wait" 2>/dev/null
rc=$?
[ "$rc" -eq 0 ] || fail "two: exit $rc"
check_dump "$work/two.json"
"$python" - "$work/two.json" <<'PY' || fail "two: merge"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["diffscope"]["ranks"]) == 2, d["diffscope"].keys()
assert [s["step"] for s in d["denoise_steps_ms"]] == [0, 1, 2, 3, 4]
PY
# ... and each process's own dump beside the merge, named by its rank (RANK) when the dump
# records one (diffscope.environment.rank), else by its pid; --summary adds the merged summary.
"$ds" run --summary --dump "$work/ranks.json" -- \
  sh -c "RANK=0 '$app' 3 >/dev/null & RANK=1 '$app' 5 >/dev/null; wait" 2>"$work/ranks.err"
[ "$?" -eq 0 ] || fail "ranks: exit"
grep -q "denoise steps (critical path = slowest rank)" "$work/ranks.err" || fail "ranks: no merged summary"
"$python" - "$work" <<'PY' || fail "ranks: per-process dumps"
import glob, json, os, sys
work = sys.argv[1]
files = sorted(glob.glob(os.path.join(work, "ranks-*.json")))
assert len(files) == 2, files
for f in files:
    env = json.load(open(f))["diffscope"]["environment"]
    r = env.get("rank", -1)
    want = f"ranks-rank{r}.json" if r is not None and r >= 0 else f"ranks-pid{env['pid']}.json"
    assert os.path.basename(f) == want, (f, want)
merged = json.load(open(os.path.join(work, "ranks.json")))
assert len(merged["diffscope"]["ranks"]) == 2
assert len(merged["diffscope"]["critical_path"]["denoise_steps"]) == 5
PY
for f in "$work"/ranks-*.json; do check_dump "$f"; done

# The gate: a fallback signal keeps no dump (exit 3); --keep-invalid writes it beside.
fallback="echo 'INFO Falling back to diffusers backend'; '$app' 2"
"$ds" run --dump "$work/bad.json" -- sh -c "$fallback" >/dev/null 2>"$work/bad.err"
rc=$?
[ "$rc" -eq 3 ] || fail "gate: exit $rc, want 3"
[ ! -e "$work/bad.json" ] || fail "gate: a dump was written"
grep -q "gate tripped (fallback)" "$work/bad.err" || fail "gate: no reason on stderr"
"$ds" run --keep-invalid --dump "$work/bad.json" -- sh -c "$fallback" >/dev/null 2>&1
[ "$?" -eq 3 ] || fail "keep-invalid: exit"
[ -e "$work/bad.json.invalid.json" ] && [ ! -e "$work/bad.json" ] || fail "keep-invalid: files"
"$ds" run --no-gate --dump "$work/nogate.json" -- sh -c "$fallback" >/dev/null 2>&1
[ "$?" -eq 0 ] && [ -e "$work/nogate.json" ] || fail "--no-gate"

# Exit codes and errors.
"$ds" run --dump "$work/x.json" -- diffscope_no_such_command_xyz >/dev/null 2>"$work/nf.err"
[ "$?" -eq 127 ] || fail "not found: exit"
grep -q "command not found" "$work/nf.err" || fail "not found: message"
"$ds" run --dump "$work/none.json" -- true 2>"$work/none.err"
[ "$?" -eq 2 ] && [ ! -e "$work/none.json" ] || fail "no ranges: exit/file"
grep -q "no process wrote a dump" "$work/none.err" || fail "no ranges: message"
"$ds" run --dump 2>/dev/null
[ "$?" -eq 2 ] || fail "usage: --dump without a file"
"$ds" run --dump "$work/y.json" 2>/dev/null
[ "$?" -eq 2 ] || fail "usage: no command"
DIFFSCOPE_INJECT_LIB=/nonexistent.so "$ds" run -- true 2>/dev/null
[ "$?" -eq 2 ] || fail "missing injection library"
[ -z "$(ls -A "$TMPDIR")" ] || fail "private directories left: $(ls -A "$TMPDIR")"

if [ "$failures" -ne 0 ]; then
  echo "test_run_cli: $failures failure(s)" >&2
  exit 1
fi
echo "test_run_cli: ok"
