#!/usr/bin/env bash
# `diffscope ab` end to end around a real child (plain_nvtx_app under `diffscope run`, so real
# dumps exist), with --gpu none as CI must; NVML absent for --gpu auto/ID; the idle check
# through a fake libnvidia-ml; failed and gate-tripping runs; and `diffscope compare`
# refusing mixed timing modes.
# Usage: test_ab_cli.sh DIFFSCOPE APP WORK_DIR [FAKE_NVML_LIB]
#   FAKE_NVML_LIB: tests/apps/fake_nvml.c built as a shared library: the idle check end to end.
set -uo pipefail
ds=$1 app=$2 work=$3 fake=${4:-}
# Meson passes paths relative to the build directory; the test changes directories.
ds=$(realpath "$ds") app=$(realpath "$app") work=$(realpath -m "$work")
[ -z "$fake" ] || fake=$(realpath "$fake")
rm -rf "$work" && mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# NVML absent (forced, so this holds on a GPU machine too): exit 2, a message, nothing created.
mkdir -p "$work/nonvml" && cd "$work/nonvml" || exit 1
for g in auto 0; do
  DIFFSCOPE_NVML_LIB=/nonexistent/libnvidia-ml.so.1 "$ds" ab --gpu "$g" --a true --b true \
    >out.txt 2>err.txt
  rc=$?
  [ "$rc" -eq 2 ] || fail "--gpu $g without NVML: exit $rc, want 2"
  grep -q "cannot load /nonexistent/libnvidia-ml.so.1.*use --gpu none" err.txt ||
    fail "--gpu $g without NVML: message: $(cat err.txt)"
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "--gpu $g without NVML: one line on stderr"
  [ ! -s out.txt ] && [ -z "$(ls -d ab-* 2>/dev/null)" ] || fail "--gpu $g without NVML: left output"
done
ok "NVML absent: exit 2, one line naming --gpu none"

# The idle check through the fake NVML (two GPUs; GPU 0 busy as FAKE_NVML_BUSY says).
if [ -n "$fake" ]; then
  cd "$work" || exit 1
  export DIFFSCOPE_NVML_LIB=$fake
  show="echo CVD=\$CUDA_VISIBLE_DEVICES; '$app' 2"
  # auto skips the busy GPU 0 and takes GPU 1, named by its UUID.
  FAKE_NVML_BUSY=4242,20480,97 "$ds" ab --gpu auto --runs 2 --out "$work/nvml_auto" \
    --a "$show" --b "'$app' 2" >auto.out 2>auto.err
  rc=$?
  [ "$rc" -eq 0 ] && [ "$(grep -c '^CVD=GPU-fake-1$' auto.out)" -eq 2 ] ||
    fail "fake NVML auto: exit $rc, $(grep CVD auto.out | head -1) $(tail -1 auto.err)"
  grep -q "^- GPU: 1 Fake GPU 1 (CUDA_VISIBLE_DEVICES=GPU-fake-1), idle before every run" \
    nvml_auto/ab-report.md || fail "fake NVML auto: GPU line"
  # A busy GPU given by index: exit 5 naming the process, its memory and the utilisation.
  FAKE_NVML_BUSY=4242,20480,97 "$ds" ab --gpu 0 --idle-wait 1 --out "$work/nvml_busy" \
    --a true --b true >/dev/null 2>busy.err
  rc=$?
  [ "$rc" -eq 5 ] || fail "fake NVML busy: exit $rc, want 5"
  grep -q "GPU 0: 1 compute process (pid 4242: 20480 MiB), 20480 MiB used (> 32 MiB), 97% utilisation (> 5%)" \
    busy.err || fail "fake NVML busy: message: $(tail -1 busy.err)"
  FAKE_NVML_BUSY=1,1,1 FAKE_NVML_ALL_BUSY=1 "$ds" ab --gpu auto --idle-wait 0 --a true --b true \
    2>busy2.err >/dev/null
  [ "$?" -eq 5 ] && grep -q "GPU 0: .*; GPU 1: 1 compute process (pid 1: 1 MiB)" busy2.err ||
    fail "fake NVML all busy: $(tail -1 busy2.err)"
  # Busy for about a second, then idle: ab waits and goes on.
  FAKE_NVML_BUSY=4242,64,3 FAKE_NVML_BUSY_UNTIL=$(($(date +%s) + 2)) "$ds" ab --gpu 0 --runs 2 \
    --idle-wait 10 --out "$work/nvml_wait" --a "$show" --b "'$app' 2" >wait.out 2>wait.err
  rc=$?
  [ "$rc" -eq 0 ] && grep -q "waiting for an idle GPU to pick\|waiting for an idle GPU before run 1" wait.err &&
    grep -q "^CVD=GPU-fake-0$" wait.out || fail "fake NVML wait: exit $rc, $(head -3 wait.err)"
  "$ds" ab --gpu 2 --a true --b true 2>idx.err
  [ "$?" -eq 2 ] && grep -q "NVML sees 2 GPU(s), 0..1" idx.err || fail "fake NVML: --gpu 2"
  unset DIFFSCOPE_NVML_LIB
  ok "idle check (fake NVML): auto skips a busy GPU, exit 5 with pid/MiB/% when busy, waits"
else
  echo "skip: no fake NVML library given: idle check not exercised"
fi

# A full comparison: 2 vs 300 denoise steps (about 0.2 vs 20 ms: a margin that a busy CI
# machine's preemptions cannot close), 3 runs each, on a real child.
cd "$work" || exit 1
"$ds" ab --gpu none --runs 3 --labels few,many --out "$work/full" \
  --a "echo MODE=\$DIFFSCOPE_MODE CVD=\${CUDA_VISIBLE_DEVICES-unset}; '$app' 2" \
  --b "'$app' 300" >full.out 2>full.err
rc=$?
[ "$rc" -eq 0 ] || fail "full: exit $rc: $(tail -3 full.err)"
for f in few-1 few-2 few-3 many-1 many-2 many-3; do
  [ -s "full/$f.json" ] || fail "full: no dump $f.json"
done
[ -s full/ab-report.md ] || fail "full: no ab-report.md"
[ -z "$(ls -a full | grep -v -E '^(\.|\.\.|ab-report\.md|(few|many)-[123]\.json)$')" ] ||
  fail "full: stray files: $(ls -a full)"
order=$(sed -n 's/^diffscope ab: run [0-9]*\/6: \([AB]\) .*/\1/p' full.err | tr -d '\n')
[ "$order" = "ABBAAB" ] || fail "full: order $order, want ABBAAB"
grep -q "no idle check" full.err || fail "full: --gpu none not said on stderr"
grep -q "^MODE=perf CVD=unset$" full.out || fail "full: DIFFSCOPE_MODE/CUDA_VISIBLE_DEVICES in the child"
[ "$(grep -c '^plain_nvtx_app: ' full.out)" -eq 6 ] || fail "full: child output not passed through"
# stdout ends with the report, byte for byte the file.
n=$(wc -c <full/ab-report.md)
tail -c "$n" full.out | cmp -s - full/ab-report.md || fail "full: stdout does not end with ab-report.md"
grep -q "^| DenoisingStage | .* | slower |$" full/ab-report.md || fail "full: DenoisingStage row not slower"
grep -q "^| \*\*E2E Latency\*\* |" full/ab-report.md || fail "full: no E2E row"
grep -q "^| Denoise step 299 |" full/ab-report.md || fail "full: no per-step rows"
grep -q "^- Figure: denoise time" full/ab-report.md || fail "full: figure"
grep -q "^- Verdict: slower$" full/ab-report.md || fail "full: verdict: $(grep Verdict full/ab-report.md)"
case $(tail -n 1 full/ab-report.md) in
  "Decision: B (many) does not beat A (few) by 1.50% on the denoise time (B is slower, +"*"%).") ;;
  *) fail "full: last line: $(tail -n 1 full/ab-report.md)" ;;
esac
ok "full comparison: 6 dumps, A B B A A B, report on stdout and in ab-report.md, B slower"

# --mode profile reaches the child; the default OUT is a fresh ab-<time>/ in the cwd.
mkdir -p "$work/default" && cd "$work/default" || exit 1
"$ds" ab --gpu none --runs 2 --mode profile --a "echo MODE=\$DIFFSCOPE_MODE; '$app' 2" \
  --b "'$app' 2" >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] || fail "default out: exit $rc"
grep -q "^MODE=profile$" out.txt || fail "--mode profile not in the child's environment"
dirs=$(ls -d ab-* 2>/dev/null)
[ "$(echo "$dirs" | wc -w)" -eq 1 ] && [ -s "$dirs/ab-report.md" ] && [ -s "$dirs/A-2.json" ] ||
  fail "default out: $dirs"
echo "$dirs" | grep -q -E '^ab-[0-9]{8}-[0-9]{6}$' || fail "default out name: $dirs"
ok "--mode profile in the child; default OUT $dirs"
cd "$work" || exit 1

# --warmup-runs: A and B once first, kept as <label>-warmup1.json, not compared; a failing
# warm-up invalidates the comparison like any run.
"$ds" ab --gpu none --runs 2 --warmup-runs 1 --out "$work/warm" --a "'$app' 2" --b "'$app' 2" \
  >warm.out 2>warm.err
rc=$?
[ "$rc" -eq 0 ] || fail "warm-up: exit $rc"
for f in A-warmup1 B-warmup1 A-1 A-2 B-1 B-2; do
  [ -s "$work/warm/$f.json" ] || fail "warm-up: no $f.json"
done
grep -q "A(warm-up) B(warm-up) A B B A" "$work/warm/ab-report.md" || fail "warm-up: order"
grep -q "run 1/6: A A-warmup1" warm.err || fail "warm-up: progress line"
"$ds" ab --gpu none --runs 2 --warmup-runs 1 --out "$work/warmfail" --a "'$app' 2 1" \
  --b "'$app' 2" >/dev/null 2>&1
[ $? -eq 4 ] || fail "failing warm-up: want exit 4"
"$ds" ab --gpu none --warmup-runs -1 --a true --b true >/dev/null 2>&1
[ $? -eq 2 ] || fail "--warmup-runs -1: want exit 2"
ok "--warmup-runs: warm-up dumps kept apart, order says so, a failing one invalidates"

# A failing run invalidates the comparison and ends it.
"$ds" ab --gpu none --runs 2 --out "$work/failing" --a "'$app' 2" --b "'$app' 2 1" \
  >/dev/null 2>failing.err
rc=$?
[ "$rc" -eq 4 ] || fail "failing: exit $rc, want 4"
grep -q "INVALID: run 2 (B-1) failed (exit 1)" failing.err || fail "failing: message"
grep -q "^\*\*INVALID\*\*: run 2 (B-1) failed" failing/ab-report.md || fail "failing: report"
[ ! -e failing/B-2.json ] && [ ! -e failing/A-2.json ] || fail "failing: runs went on"
ok "failing run: exit 4, INVALID in the report, no further runs"

# A gate-tripping run (the diffusers-fallback signal) likewise.
"$ds" ab --gpu none --runs 2 --out "$work/gate" --a "'$app' 2" \
  --b "echo 'WARNING Falling back to diffusers backend for model x'; '$app' 2" >/dev/null 2>gate.err
rc=$?
[ "$rc" -eq 4 ] || fail "gate: exit $rc, want 4"
grep -q "INVALID: run 2 (B-1) tripped the gate" gate.err || fail "gate: message"
[ ! -e gate/B-1.json ] || fail "gate: a dump was kept"
ok "gate-tripping run: exit 4"

# Usage errors: exit 2, nothing created.
"$ds" ab --gpu none --out "$work/full" --a true --b true >/dev/null 2>busy.err
[ "$?" -eq 2 ] && grep -q "not empty" busy.err || fail "--out non-empty"
"$ds" ab --gpu none --a true 2>/dev/null
[ "$?" -eq 2 ] || fail "missing --b"
"$ds" ab --gpu none --runs 1 --a true --b true 2>/dev/null
[ "$?" -eq 2 ] || fail "--runs 1"
ok "usage errors"

# compare: mixed timing modes refused unless --allow-mixed-modes; the mode in the report.
mk() {  # file mode(or "") total
  local ds_obj=""
  [ -n "$2" ] && ds_obj=", \"diffscope\": {\"status\": {\"gpu_timing\": false, \"mode\": \"$2\"}}"
  printf '{"total_duration_ms": %s, "steps": [{"name": "DenoisingStage", "duration_ms": %s}]%s}\n' \
    "$3" "$3" "$ds_obj" >"$1"
}
mk perf1.json perf 100
mk perf2.json perf 101
mk prof.json profile 130
mk sglang.json "" 99
"$ds" compare perf1.json prof.json >mix.out 2>mix.err
rc=$?
[ "$rc" -eq 2 ] && [ ! -s mix.out ] || fail "compare mixed: exit $rc / stdout not empty"
grep -q "inputs mix timing modes (perf: perf1.json; profile: prof.json)" mix.err || fail "compare mixed: message"
"$ds" compare --base perf1.json perf2.json --new prof.json >mix.out 2>mix.err
[ "$?" -eq 2 ] && [ ! -s mix.out ] || fail "compare --base/--new mixed: not refused"
"$ds" compare --allow-mixed-modes perf1.json prof.json >mix.out 2>mix.err
[ "$?" -eq 0 ] && grep -q "warning: inputs mix timing modes" mix.err &&
  grep -q "^- diffscope timing mode: mixed (perf: perf1.json; profile: prof.json)$" mix.out ||
  fail "compare --allow-mixed-modes"
"$ds" compare --allow-mixed-modes --base perf1.json --new prof.json >mix.out 2>/dev/null
[ "$?" -eq 0 ] && grep -q "^- Timing mode: mixed" mix.out || fail "repeated --allow-mixed-modes"
"$ds" compare perf1.json sglang.json >ok.out 2>ok.err
[ "$?" -eq 0 ] && [ ! -s ok.err ] && grep -q "^- diffscope timing mode: perf$" ok.out ||
  fail "compare perf + SGLang dump (no mode): compatible, mode said"
"$ds" compare --sglang-only perf1.json perf2.json >ok.out
grep -q "timing mode" ok.out && fail "--sglang-only printed the mode"
"$ds" compare --base perf1.json --new perf2.json >ok.out 2>/dev/null
grep -q "^- Timing mode: perf$" ok.out || fail "repeated: mode line"
ok "compare: mixed modes refused (exit 2) / allowed with a warning; mode in the report"

if [ "$failures" -ne 0 ]; then
  echo "test_ab_cli: $failures failure(s)" >&2
  exit 1
fi
echo "test_ab_cli: ok"
