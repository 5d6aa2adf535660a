#!/usr/bin/env bash
# Collector on versus off for the toy_dit example, runs alternating A B B A ... so drift
# hits both alike. Prints the median wall time of each and the slowdown.
# Usage: bench/toy_dit_overhead.sh TOY_DIT RUNS [toy_dit args...]
#   off: the collector is linked in but not started (no DIFFSCOPE_* output variables)
#   on:  DIFFSCOPE_DUMP set: the collector collects every range, kernel and copy
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 TOY_DIT RUNS [toy_dit args...]" >&2
  exit 2
fi
exe=$1 runs=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$exe" --quiet "$@" >/dev/null  # warm-up: module load, clocks
run() {  # $1 = off|on, then the toy_dit arguments
  local mode=$1 out
  shift
  if [ "$mode" = on ]; then
    out=$(env -u DIFFSCOPE_TRACE -u DIFFSCOPE_SUMMARY DIFFSCOPE_DUMP="$tmp/perf.json" "$exe" "$@" 2>/dev/null)
  else
    out=$(env -u DIFFSCOPE_DUMP -u DIFFSCOPE_TRACE -u DIFFSCOPE_SUMMARY "$exe" "$@" 2>/dev/null)
  fi
  echo "$out" | sed -n 's/^wall_ms: //p' >>"$tmp/$mode"
}
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) -eq 1 ]; then run off "$@"; run on "$@"; else run on "$@"; run off "$@"; fi
done
median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
off=$(median "$tmp/off") on=$(median "$tmp/on")
echo "toy_dit $*: $runs runs each, median wall off ${off} ms, on ${on} ms, slowdown $(awk -v a="$off" -v b="$on" 'BEGIN {printf "%+.2f%%", (b/a-1)*100}')"
