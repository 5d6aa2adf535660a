#!/usr/bin/env bash
# Multi-GPU check, one command, on a machine with two GPUs (NCCL):
#   bench/multi_gpu.sh DIFFSCOPE [OUT_DIR] [EXAMPLE_ARGS...]
# Runs examples/multi_gpu/ulysses_dit.py (Ulysses sequence parallelism, 2 ranks) under
#   diffscope run --summary --dump OUT_DIR/merged.json -- torchrun --standalone --nproc_per_node=2 ...
# with NVLink multicast off, then checks:
#   1. per-rank dumps: OUT_DIR/merged-rank0.json and merged-rank1.json exist;
#   2. critical path: each merged denoise step (max over ranks of the collector's GPU step time)
#      is within 3 % of the max over ranks of the example's own CUDA-event step times;
#   3. communication: the merged dump reports busy/overlapped/exposed comm per attention scope
#      (transformer.blocks.<b>.attn) for both ranks.
# Prints the merged summary (diffscope merge --summary), then one PASS/FAIL line per check
# last. Exit 0 when all pass. Logs and files stay in OUT_DIR (default /tmp/diffscope-multi-gpu).
set -uo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
ds=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=${2:-/tmp/diffscope-multi-gpu}
shift
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$ds" ] || { echo "multi_gpu.sh: $ds is not an executable diffscope" >&2; exit 2; }

# NVLink multicast (NVLS) stays off on our two-GPU machine: NCCL's NVLS algorithms, torch
# symmetric memory and NVSHMEM would otherwise create multicast objects.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

torchrun=$(command -v torchrun || true)
[ -z "$torchrun" ] && [ -x /opt/torch/.venv/bin/torchrun ] && torchrun=/opt/torch/.venv/bin/torchrun
[ -n "$torchrun" ] || { echo "multi_gpu.sh: torchrun not found (PATH, /opt/torch/.venv/bin)" >&2; exit 2; }
python=$(dirname "$torchrun")/python3
[ -x "$python" ] || python=python3

rm -rf "$out" && mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  command -v nvidia-smi >/dev/null && nvidia-smi -L
  echo "command: $ds run --summary --dump $out/merged.json -- $torchrun --standalone" \
    "--nproc_per_node=2 $root/examples/multi_gpu/ulysses_dit.py --json-dir $out/events $*"
} >"$out/info.txt"

"$ds" run --summary --dump "$out/merged.json" -- \
  "$torchrun" --standalone --nproc_per_node=2 "$root/examples/multi_gpu/ulysses_dit.py" \
  --json-dir "$out/events" "$@" >"$out/run.log" 2>&1
rc=$?
echo "diffscope run exit: $rc" >>"$out/info.txt"

# The merged summary from the per-rank dumps (the same text diffscope run printed in run.log).
ranks=("$out"/merged-rank*.json)
[ -e "${ranks[0]}" ] || ranks=("$out"/merged-pid*.json)  # a collector without environment.rank
if [ -e "${ranks[0]}" ]; then
  "$ds" merge --summary -o "$out/remerged.json" "${ranks[@]}" >"$out/summary.txt" 2>&1
fi

"$python" - "$out" "$rc" <<'PY'
import glob, json, os, sys

out, rc = sys.argv[1], int(sys.argv[2])
lines = []


def result(ok, what):
    lines.append(("PASS" if ok else "FAIL") + ": " + what)


info = open(os.path.join(out, "info.txt")).read()
summary_path = os.path.join(out, "summary.txt")
summary = open(summary_path).read() if os.path.exists(summary_path) else ""
print(info.rstrip())
print()
if summary:
    print(summary.rstrip())
else:
    print("(no merged summary: see run.log)")
    print(open(os.path.join(out, "run.log")).read()[-4000:])
print()

result(rc == 0, f"diffscope run exited {rc} (log: {out}/run.log)")

per_rank = sorted(glob.glob(os.path.join(out, "merged-rank*.json")))
others = sorted(glob.glob(os.path.join(out, "merged-pid*.json")))
result(len(per_rank) == 2,
       f"per-rank dumps: {[os.path.basename(p) for p in per_rank]}"
       + (f" (named by pid, no environment.rank: {[os.path.basename(p) for p in others]})"
          if others else ""))

merged_path = os.path.join(out, "merged.json")
merged = json.load(open(merged_path)) if os.path.exists(merged_path) else None
events = {}
for p in glob.glob(os.path.join(out, "events", "rank*.json")):
    e = json.load(open(p))
    events[e["rank"]] = e["step_ms"]

if merged is None or len(events) != 2:
    result(False, f"critical path: merged dump {'missing' if merged is None else 'ok'}, "
                  f"{len(events)} of 2 event files")
else:
    ds = merged["diffscope"]
    gpu = ds["status"]["gpu_timing"]
    steps = [s["duration_ms"] for s in merged["denoise_steps_ms"]]
    n = len(events[0])
    measured = [max(events[r][i] for r in events) for i in range(n)]
    worst = 0.0
    rows = []
    for i in range(min(n, len(steps))):
        dev = (steps[i] - measured[i]) / measured[i] * 100 if measured[i] > 0 else float("inf")
        worst = max(worst, abs(dev))
        rows.append(f"    step {i}: merged {steps[i]:.3f} ms, events max {measured[i]:.3f} ms, {dev:+.2f} %")
    print("critical path vs CUDA events (max over ranks):")
    print("\n".join(rows))
    print(f"    sum: merged {sum(steps):.3f} ms, events {sum(measured):.3f} ms")
    ok = gpu and len(steps) == n and worst <= 3.0
    result(ok, f"critical path per step within 3 % of the CUDA-event max over ranks "
               f"(worst {worst:.2f} %, {len(steps)} vs {n} steps, gpu_timing {gpu}"
               + ("" if gpu else f": {ds['status'].get('reason', '')}") + ")")

    comm = ds.get("comm", {}).get("scopes", [])
    attn = [c for c in comm if c.get("attention")]
    both = [c for c in attn if len(c["ranks"]) == 2 and all(r["busy_ms"] > 0 for r in c["ranks"])]
    if attn:
        print("attention scopes, comm per rank (busy / overlapped / exposed ms):")
        for c in attn:
            cells = ", ".join(f"rank {r['rank']}: {r['busy_ms']:.3f} / {r['overlapped_ms']:.3f} / "
                              f"{r['exposed_ms']:.3f}" for r in c["ranks"])
            print(f"    {c['path']}: {cells}")
    consistent = all(abs(r["busy_ms"] - r["overlapped_ms"] - r["exposed_ms"]) < 1e-6
                     and r["overlapped_ms"] <= r["busy_ms"] + 1e-9 for c in attn for r in c["ranks"])
    in_text = "[attention]" in summary
    result(len(both) > 0 and len(both) == len(attn) and consistent and in_text,
           f"comm overlap per attention scope: {len(both)} of {len(attn)} attention scopes with "
           f"comm on both ranks, busy = overlapped + exposed: {consistent}, in the summary: {in_text}")

print()
print("\n".join(lines))
sys.exit(0 if all(l.startswith("PASS") for l in lines) else 1)
PY
