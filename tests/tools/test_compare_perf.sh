#!/usr/bin/env bash
# Runs SGLang's own compare_perf.py on diffscope dumps and checks its Markdown report.
# Usage: test_compare_perf.sh SAMPLE_DIR WORK_DIR [CACHE_DIR]
#   SAMPLE_DIR holds toy_baseline.json, toy_tuned.json (written by test_perf_dump, with
#   legacy denoising_step_<i> entries) and profiled.json (without them).
# Exit 77 (skipped) when compare_perf.py cannot be obtained (see get_compare_perf.sh).
set -uo pipefail
samples=${1:?usage: test_compare_perf.sh SAMPLE_DIR WORK_DIR [CACHE_DIR]}
work=${2:?usage: test_compare_perf.sh SAMPLE_DIR WORK_DIR [CACHE_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/get_compare_perf.sh" "$work" ${3:+"$3"}
rc=$?
[ $rc -eq 0 ] || exit $rc

fail=0
expect() {  # expect FILE FIXED-STRING DESCRIPTION
  if grep -qF -- "$2" "$1"; then echo "ok: $3"; else echo "FAIL: $3: no line with: $2"; fail=1; fi
}

# Two files: baseline vs new, with legacy per-step entries.
python3 "$work/compare_perf.py" "$samples/toy_baseline.json" "$samples/toy_tuned.json" \
  > "$work/two.md" 2>&1 || { echo "FAIL: compare_perf.py exited $?"; cat "$work/two.md"; exit 1; }
cat "$work/two.md"
expect "$work/two.md" "| **E2E Latency** | 1234.57 ms | 1851.85 ms | **+617.28 ms (+50.0%)** | ❌ |" "e2e row, slower by 50%"
expect "$work/two.md" "| **Throughput** | 0.81 req/s | 0.54 req/s | - | - |" "throughput row"
expect "$work/two.md" "| InputValidationStage | 0.25 | 0.25 | +0.00 | +0.0% | ⚪️ |" "host-timed stage row"
expect "$work/two.md" "| TextEncodingStage | 25.50 | 25.50 |" "stage row"
expect "$work/two.md" "| DenoisingStage | 950.75 | 950.75 |" "denoising stage row (GPU envelope)"
expect "$work/two.md" "| DecodingStage | 210.50 | 710.50 | +500.00 | +237.5% | 🔴 |" "slower stage flagged"
expect "$work/two.md" "| Denoising Loop (4 steps) | 956.00 | 1147.20 | +191.20 | +20.0% | 🔴 |" "legacy steps summed into Denoising Loop"
expect "$work/two.md" "- Baseline Commit: \`0123456789abcdef0123456789abcdef01234567\`" "commit hash"
if grep -q "denoising_step_" "$work/two.md"; then echo "FAIL: per-step rows not grouped"; fail=1; fi

# Three files: columns labelled by file name; a file without legacy entries has no loop row.
python3 "$work/compare_perf.py" "$samples/toy_baseline.json" "$samples/toy_tuned.json" \
  "$samples/profiled.json" > "$work/three.md" 2>&1 || { echo "FAIL: 3-file run"; exit 1; }
cat "$work/three.md"
expect "$work/three.md" "| Metric | Baseline | toy_tuned.json | profiled.json |" "file names label columns"
expect "$work/three.md" "| Denoising Loop | 956.00 | 1147.20 (+20.0%) 🔴 | 0.00 (-100.0%) 🟢 |" "missing stage counts as 0"

exit $fail
