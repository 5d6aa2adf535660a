#!/usr/bin/env bash
# Writes every output diffscope produces from fixed inputs into OUT_DIR, so two builds can be
# compared byte for byte (diff -r OLD NEW): the CLI on the test fixtures, and the toy DiT on
# the CPU with its dump, trace and summary. Two things differ from run to run and are replaced
# by placeholders: compare's "- Timestamp:" line (the time it ran, as in compare_perf.py), and
# in the toy DiT's outputs every decimal number (host timings) and the timestamp, request id,
# commit and pid fields, and runs of spaces (column padding follows the numbers' widths).
# Counts, names and structure are compared as written.
#   usage: output_snapshot.sh BUILD_DIR OUT_DIR
set -u
build=${1:?usage: output_snapshot.sh BUILD_DIR OUT_DIR}
out=${2:?usage: output_snapshot.sh BUILD_DIR OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd) || exit 2
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
fx=$here/../fixtures
cli=$build/tools/diffscope
toy=$build/examples/toy_dit/toy_dit
[[ -x $cli && -x $toy ]] || { echo "output_snapshot: build $build lacks tools/diffscope or toy_dit" >&2; exit 2; }
cd "$fx" || exit 2

# Runs a CLI command; its stdout, stderr and exit code become OUT/NAME.{out,err,rc}.
snap() {
  local name=$1
  shift
  "$cli" "$@" >"$out/$name.out.raw" 2>"$out/$name.err"
  echo $? >"$out/$name.rc"
  # compare prints the time it ran, as compare_perf.py does
  sed -E 's/^- Timestamp: .*/- Timestamp: <now>/' "$out/$name.out.raw" >"$out/$name.out"
  rm -f "$out/$name.out.raw"
}

while read -r name files; do
  [[ -z $name || $name == \#* ]] && continue
  # shellcheck disable=SC2086
  snap "compare_$name" compare $(printf 'compare/%s ' $files)
done <compare/cases.txt
snap compare_repeated compare --base compare/rep_base_1.json compare/rep_base_2.json \
  compare/rep_base_3.json --new compare/rep_new_1.json compare/rep_new_2.json compare/rep_new_3.json
snap compare_sglang_only compare --sglang-only compare/ds_base.json compare/ds_new.json
snap compare_traces compare compare/kd_trace_base.json compare/kd_trace_new.json.gz
snap compare_kernels_repeated compare --base compare/kd_base.json compare/kd_base_2.json \
  --new compare/kd_new.json compare/kd_new_2.json
snap compare_tolerances compare --rel-tol 5 --abs-tol 0.5 --base compare/rep_base_1.json \
  compare/rep_base_2.json --new compare/rep_new_1.json compare/rep_new_2.json
snap merge merge -o "$out/merged.json" compare/rank0.json compare/rank1.json
snap merge_sglang merge -o "$out/merged_sglang.json" compare/rank0.json compare/rank2_sglang.json
for f in hotspots/*.json hotspots/*.gz hotspots/*.txt; do
  snap "hotspots_$(basename "$f")" hotspots "$f"
  snap "hotspots_json_$(basename "$f")" hotspots --json "$f"
done
snap hotspots_rules hotspots --rules hotspots/custom.rules hotspots/trace_unfused.json
snap hotspots_bad_rules hotspots --rules hotspots/bad_regex.rules hotspots/trace_unfused.json
for f in gate/*.log; do
  snap "gate_$(basename "$f" .log)" gate --log "$f"
  snap "gate_bcg_$(basename "$f" .log)" gate --expect-bcg --log "$f"
done

# The toy DiT on the CPU: timings normalised (see above).
norm() {
  sed -E -e 's/-?[0-9]+\.[0-9]+(e[-+]?[0-9]+)?/<num>/g' -e 's/ +/ /g' \
    -e 's/[0-9]+ ns per/<n> ns per/g' \
    -e 's/"(timestamp|request_id|commit_hash|pid|tid|start_unix_ns|ts|dur)": *"?[^,}"]*"?/"\1": <v>/g' "$@"
}
# toy_run NAME [VAR=VALUE...] [-- TOY_DIT_ARGS...]
toy_run() {
  local name=$1
  shift
  local vars=()
  while [[ $# -gt 0 && $1 != -- ]]; do vars+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  env DIFFSCOPE_NO_GPU=1 "${vars[@]}" "$toy" --cpu --quiet --steps 4 --blocks 2 --tokens 64 \
    --dim 64 "$@" --dump "$out/$name.dump.raw" --trace "$out/$name.trace.raw" --summary \
    >"$out/$name.stdout.raw" 2>"$out/$name.stderr.raw"
  echo $? >"$out/$name.rc"
  for k in dump trace stdout stderr; do
    norm "$out/$name.$k.raw" >"$out/$name.$k" && rm -f "$out/$name.$k.raw"
  done
}
toy_run toy_dit
toy_run toy_dit_perf DIFFSCOPE_MODE=perf
toy_run toy_dit_repeat DIFFSCOPE_LABEL=snap
toy_run toy_dit_requests -- --repeat 3
toy_run toy_dit_requests_all DIFFSCOPE_WINDOW=requests -- --repeat 3
echo "output_snapshot: $(find "$out" -type f | wc -l) files in $out"
