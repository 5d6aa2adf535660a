#!/usr/bin/env bash
# `diffscope ab` on the toy DiT example, on a real GPU (--gpu auto: NVML picks the first idle
# one and checks it before every run). Two expectations:
#   (a) A = the GPU-bound setting, B = the same with 6 blocks instead of 4 (about 1.5x the
#       denoise work): B must be "slower" on the decision figure and must not beat A;
#   (b) A against itself: the verdict must be "same" (no difference beyond 1.5% and a spread
#       small enough to have shown one).
# Prints both reports, then one PASS/FAIL line per expectation last. About a minute on the H200.
# Usage: bench/ab_toy_dit.sh DIFFSCOPE TOY_DIT [RUNS] [extra diffscope ab arguments...]
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DIFFSCOPE TOY_DIT [RUNS] [diffscope ab arguments...]" >&2
  exit 2
fi
ds=$1 toy=$2 runs=${3:-4}
shift $(($# >= 3 ? 3 : 2))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base="--tokens 4096 --dim 1024 --heads 16 --blocks 4 --steps 10 --quiet"
slow="--tokens 4096 --dim 1024 --heads 16 --blocks 6 --steps 10 --quiet"

"$ds" ab --gpu auto --runs "$runs" --labels blocks4,blocks6 --out "$work/slower" "$@" \
  --a "'$toy' $base" --b "'$toy' $slow" >"$work/slower.out" 2>"$work/slower.err"
rc_a=$?
"$ds" ab --gpu auto --runs "$runs" --labels first,second --out "$work/same" "$@" \
  --a "'$toy' $base" --b "'$toy' $base" >"$work/same.out" 2>"$work/same.err"
rc_b=$?

for t in slower same; do
  echo "==== ($t) diffscope ab: stderr tail ===="
  tail -n 4 "$work/$t.err"
  echo "==== ($t) report ===="
  if [ -f "$work/$t/ab-report.md" ]; then cat "$work/$t/ab-report.md"; else echo "(no report)"; fi
done

verdict() { sed -n 's/^- Verdict: //p' "$1/ab-report.md" 2>/dev/null; }
v_a=$(verdict "$work/slower") v_b=$(verdict "$work/same")
echo "===="
if [ "$rc_a" -eq 0 ] && [ "$v_a" = slower ] && grep -q "^Decision: .* does not beat " "$work/slower/ab-report.md"; then
  echo "PASS (a) blocks 4 vs 6: verdict slower, B does not beat A"
else
  echo "FAIL (a) blocks 4 vs 6: exit $rc_a, verdict '${v_a}', want slower"
fi
if [ "$rc_b" -eq 0 ] && [ "$v_b" = same ]; then
  echo "PASS (b) A vs A: verdict same"
else
  echo "FAIL (b) A vs A: exit $rc_b, verdict '${v_b}', want same"
fi
