#!/usr/bin/env bash
# `diffscope compare` against SGLang's own compare_perf.py, byte for byte, on every case of
# tests/fixtures/compare/cases.txt (only the Timestamp line, the time of the run, is masked).
# With --sglang-only our output must equal compare_perf.py's exactly; without it, it must
# start with it, after our note when host-timed and device-timed dumps are mixed (our
# per-scope section follows where both dumps carry a diffscope object).
# Usage: test_compare_sglang.sh DIFFSCOPE_BINARY FIXTURE_DIR WORK_DIR [CACHE_DIR]
# Exit 77 (skipped) when compare_perf.py cannot be obtained (see get_compare_perf.sh).
set -uo pipefail
bin=${1:?usage: test_compare_sglang.sh DIFFSCOPE_BINARY FIXTURE_DIR WORK_DIR [CACHE_DIR]}
fixtures=${2:?usage}
work=${3:?usage}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$work" && work=$(cd "$work" && pwd)
bash "$here/get_compare_perf.sh" "$work" ${4:+"$4"}
rc=$?
[ $rc -eq 0 ] || exit $rc

mask() { sed 's/^- Timestamp: .*/- Timestamp: <now>/'; }
# Our note on mixed stage timings: "> **Note:** ..." and a blank line, above the report.
note_removed() { awk 'NR == 1 && /^> \*\*Note:\*\*/ { skip = 1; next } skip && /^$/ { skip = 0; next } !skip'; }
fail=0 n=0
cd "$fixtures" || exit 1
while read -r name files; do
  case $name in '' | '#'*) continue ;; esac
  n=$((n + 1))
  # shellcheck disable=SC2086  # the file list is meant to split
  python3 "$work/compare_perf.py" $files | mask >"$work/$name.sglang.md"
  # shellcheck disable=SC2086
  "$bin" compare --sglang-only $files | mask >"$work/$name.plain.md"
  # shellcheck disable=SC2086
  "$bin" compare $files | mask | note_removed >"$work/$name.full.md"
  if ! cmp -s "$work/$name.sglang.md" "$work/$name.plain.md"; then
    echo "FAIL: $name: --sglang-only differs from compare_perf.py"
    diff "$work/$name.sglang.md" "$work/$name.plain.md" | head -20
    fail=1
    continue
  fi
  lines=$(wc -l <"$work/$name.sglang.md")
  if ! head -n "$lines" "$work/$name.full.md" | cmp -s - "$work/$name.sglang.md"; then
    echo "FAIL: $name: full report does not start with compare_perf.py's"
    fail=1
    continue
  fi
  echo "ok: $name ($files): identical to compare_perf.py ($lines lines)"
done <cases.txt
# The Timestamp line itself: datetime.now().isoformat() format on both sides.
ts='^- Timestamp: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?$'
# (Whole outputs first: grep -q stops reading early, which would break the writer's pipe.)
theirs=$(python3 "$work/compare_perf.py" sg_base.json sg_new.json)
ours=$("$bin" compare sg_base.json sg_new.json)
grep -Eq "$ts" <<<"$theirs" || { echo "FAIL: compare_perf.py timestamp format"; fail=1; }
grep -Eq "$ts" <<<"$ours" || { echo "FAIL: our timestamp format"; fail=1; }
[ $n -ge 10 ] || { echo "FAIL: only $n cases in cases.txt"; fail=1; }
exit $fail
