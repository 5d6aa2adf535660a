#!/usr/bin/env bash
# examples/diffusers/flux_like.py under `diffscope run`: once in profile mode, twice in perf
# mode, each with --step-events; bench/diffusers_check.py checks each dump against the
# example's own step times and structure, and `diffscope compare` of the two perf runs is
# counted. The gpu_suite part `diffusers`; runs on a CPU too (host timings only).
#
#   bash bench/diffusers_example.sh DIFFSCOPE OUTDIR [flux_like.py arguments...]
#
# The Python is $PYTHON, else /opt/torch/.venv/bin/python3 when present, else python3; it
# needs torch, and diffusers from examples/diffusers/fetch_deps.sh (.devdeps/, carried to GPU
# machines) or its own site-packages. Exit 0 when every check passed, 1 when one failed,
# 2 when the example could not run.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: diffusers_example.sh DIFFSCOPE OUTDIR [flux_like.py args...]" >&2; exit 2; }
diffscope=$1 dir=$2
shift 2
[ -x "$diffscope" ] || { echo "diffusers_example.sh: $diffscope: not an executable" >&2; exit 2; }
python=${PYTHON:-}
if [ -z "$python" ]; then
  python=python3
  [ -x /opt/torch/.venv/bin/python3 ] && python=/opt/torch/.venv/bin/python3
fi
mkdir -p "$dir" || exit 2
example=(examples/diffusers/flux_like.py --step-events "$@")
steps_arg=()
for ((i = 1; i <= $#; i++)); do  # the step count to expect, when given
  [ "${!i}" = --steps ] && { j=$((i + 1)); steps_arg=(--steps "${!j}"); }
done

rc=0
for run in profile perf perf2; do
  mode=${run%2}
  t0=$(date +%s)
  "$diffscope" run --mode "$mode" --dump "$dir/$run.json" --summary -- \
    "$python" "${example[@]}" >"$dir/$run.log" 2>&1
  code=$?
  echo "== $run: diffscope run --mode $mode: exit $code in $(($(date +%s) - t0)) s"
  if [ "$code" != 0 ] || [ ! -f "$dir/$run.json" ]; then
    tail -5 "$dir/$run.log"
    exit 2
  fi
done
"$diffscope" compare "$dir/perf.json" "$dir/perf2.json" >"$dir/compare.md" 2>&1 ||
  echo "diffscope compare: exit $?"
"$diffscope" hotspots "$dir/profile.json" >"$dir/hotspots.txt" 2>&1 ||
  echo "diffscope hotspots: exit $?"
gpu_arg=()
nvidia-smi -L >/dev/null 2>&1 && gpu_arg=(--require-gpu)
# Each check's full report (the step table, every check, a line of figures) goes to
# check_<run>.txt; the log keeps the step tables and ends with the failed checks and the
# figures of each mode.
for run in profile perf; do
  extra=(--scan "$dir/hotspots.txt")
  [ "$run" = perf ] && extra=(--compare "$dir/compare.md")
  python3 bench/diffusers_check.py --dump "$dir/$run.json" --log "$dir/$run.log" \
    "${steps_arg[@]}" "${extra[@]}" "${gpu_arg[@]}" >"$dir/check_$run.txt" 2>&1 || rc=1
  grep -vE "^(PASS|FAIL) " "$dir/check_$run.txt" | sed '$d'
done
echo "== $(head -1 "$dir/profile.log")"
for run in profile perf; do
  grep -E "^FAIL " "$dir/check_$run.txt"
  tail -1 "$dir/check_$run.txt"
done
exit $rc
