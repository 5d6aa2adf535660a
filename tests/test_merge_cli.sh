#!/usr/bin/env bash
# `diffscope merge` on synthetic per-rank dumps of a multi-GPU run (environment.rank, comm
# objects): the merged file's critical path / comm sections, --summary with and without -o,
# and usage errors. Usage: test_merge_cli.sh DIFFSCOPE PYTHON WORK_DIR
set -uo pipefail
ds=$1 python=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

"$python" - "$work" <<'PY'
import json, os, sys
def comm(b, o, k): return {"busy_ms": b, "overlapped_ms": o, "exposed_ms": b - o, "kernels": k}
def dump(rank, steps, ab, ao):
    return {"total_duration_ms": sum(steps) + 5,
            "steps": [{"name": "DenoisingStage", "duration_ms": sum(steps)}],
            "denoise_steps_ms": [{"step": i, "duration_ms": v} for i, v in enumerate(steps)],
            "diffscope": {"status": {"gpu_timing": True, "reason": ""},
                          "environment": {"pid": 100 + rank, "rank": rank, "world_size": 2, "local_rank": rank},
                          "scopes": [{"path": "DenoisingStage/denoise_step/transformer.blocks.0.attn",
                                      "category": "other", "gpu": {"busy_ms": 1, "envelope_ms": 2},
                                      "comm": comm(ab, ao, 8)}]}}
json.dump(dump(1, [10.0, 12.5, 11.0], 3.0, 1.0), open(os.path.join(sys.argv[1], "b.json"), "w"), indent=2)
json.dump(dump(0, [10.5, 12.0, 11.0], 2.0, 1.5), open(os.path.join(sys.argv[1], "a.json"), "w"), indent=2)
PY

out=$("$ds" merge -o "$work/m.json" --summary "$work/b.json" "$work/a.json" 2>"$work/err")
[ "$?" -eq 0 ] || fail "merge --summary -o: exit ($(cat "$work/err"))"
echo "$out" | grep -q "rank from diffscope.environment.rank" || fail "summary: rank source"
echo "$out" | grep -Eq "^  1 +12.500 +12.000 +0.500 +4.0 +1 +12.000 +12.500$" || fail "summary: step 1 row"
echo "$out" | grep -q "transformer.blocks.0.attn \[attention\]" || fail "summary: attention scope"
echo "$out" | grep -Eq "attn \[attention\] +0 +8 +2.000 +1.500 +0.500 +75.0$" || fail "summary: rank 0 comm row"
"$python" - "$work/m.json" <<'PY' || fail "merged file"
import json, sys
d = json.load(open(sys.argv[1]))
cp = d["diffscope"]["critical_path"]
assert [s["duration_ms"] for s in cp["denoise_steps"]] == [10.5, 12.5, 11.0]
assert [s["straggler_rank"] for s in cp["denoise_steps"]] == [0, 1, 0]
assert [s["spread_ms"] for s in cp["denoise_steps"]] == [0.5, 0.5, 0.0]
sc = d["diffscope"]["comm"]["scopes"][0]
assert sc["attention"] and [r["rank"] for r in sc["ranks"]] == [0, 1]
assert [r["exposed_ms"] for r in sc["ranks"]] == [0.5, 2.0]
PY
# --summary alone writes nothing; neither -o nor --summary is a usage error.
before=$(ls "$work" | wc -l)
"$ds" merge --summary "$work/a.json" "$work/b.json" >/dev/null || fail "--summary alone: exit"
[ "$(ls "$work" | wc -l)" -eq "$before" ] || fail "--summary alone wrote a file"
"$ds" merge "$work/a.json" 2>"$work/err"
[ "$?" -eq 2 ] && grep -q -- "-o OUT.json is required" "$work/err" || fail "no -o, no --summary: exit 2"
echo '{"diffscope": {"environment": {"rank": "x"}}}' >"$work/bad.json"
"$ds" merge --summary "$work/a.json" "$work/bad.json" >"$work/out" 2>"$work/err"
[ "$?" -eq 2 ] && [ ! -s "$work/out" ] && grep -q "bad.json: diffscope.environment.rank" "$work/err" ||
  fail "bad rank: exit 2, nothing on stdout, message names the file"

if [ "$failures" -ne 0 ]; then
  echo "test_merge_cli: $failures failure(s)" >&2
  exit 1
fi
echo "test_merge_cli: ok"
