#!/bin/sh
# How steady the launch-bound PyTorch loop is under each CPU pinning, then profile mode's cost
# measured under the steadiest one: one command on the GPU machine.
#   bench/loop_noise.sh OUT DIFFSCOPE EXT [PINNINGS...]
# PINNINGS are --cpus values for bench/profile_cost.py ("none": no pinning); default
# "2-5 2 3,5 none". For each, perf mode's paired run (3 processes x 16 loops) gives the
# unmeasured loops' spread (the noise) and what perf mode adds. The pinning with the smallest
# median spread then runs profile mode, both launch-API callbacks, perf mode and
# torch.profiler (COST_REPS processes each, default 3). Prints the CPU topology first.
set -u
out=$1 diffscope=$2 ext=$3
shift 3
[ $# -gt 0 ] || set -- 2-5 2 3,5 none
mkdir -p "$out"
lscpu | grep -E '^(CPU\(s\)|Thread|Core|Socket|Model name|NUMA node)' || true
for c in /sys/devices/system/cpu/cpu[0-9]; do
  echo "$(basename "$c") siblings $(cat "$c/topology/thread_siblings_list" 2>/dev/null)"
done
best="" best_spread=""
for pin in "$@"; do
  cpus=$pin
  [ "$pin" = none ] && cpus=""
  dir="$out/noise-$(echo "$pin" | tr ',-' '_.')"
  python3 bench/profile_cost.py --diffscope "$diffscope" --ext "$ext" --out "$dir" \
    --variants perf --reps ${NOISE_REPS:-3} --loops ${NOISE_LOOPS:-16} --cpus "$cpus" ${NOISE_ARGS:-} >"$dir.log" 2>&1
  # The table's row: | perf | added | % | pairs % | fastest | per process | cpu | spread% | ...
  row=$(grep '^| perf |' "$dir.log")
  spread=$(echo "$row" | awk -F'|' '{gsub(/[ %]/, "", $9); print $9}')
  echo "pinning $pin: $row"
  if [ -n "$spread" ] && { [ -z "$best_spread" ] ||
    awk -v a="$spread" -v b="$best_spread" 'BEGIN { exit !(a < b) }'; }; then
    best=$pin best_spread=$spread
  fi
done
echo "steadiest pinning: $best (unmeasured loops' median spread $best_spread%)"
cpus=$best
[ "$best" = none ] && cpus=""
python3 bench/profile_cost.py --diffscope "$diffscope" --ext "$ext" --out "$out/cost" \
  --variants profile,both,perf,torch_profiler --reps "${COST_REPS:-3}" --loops 16 --cpus "$cpus"
