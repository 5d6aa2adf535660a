#!/usr/bin/env python3
"""diffscope on a PyTorch denoise loop: overhead, accuracy, nesting and coexistence, one command.

Runs examples/torch_extension/dit_loop.py (a bf16 DiT loop calling our fused RMSNorm + RoPE
extension) as fresh processes in two configurations, GPU-bound (4096 tokens, dim 3072) and
launch-bound (256 tokens, dim 1536), alternating three modes per repetition:
    plain       python3 dit_loop.py ...
    diffscope   diffscope run --dump D -- python3 dit_loop.py ...
    profiler    python3 dit_loop.py ... --profiler          (torch.profiler, CPU + CUDA)
then one diffscope run per configuration with per-step CUDA events (per-step ground truth),
and one coexistence run (diffscope run + torch.profiler started before the first NVTX range).
Then the launch-bound loop paired within processes (--paired-reps processes per mode, each of
--paired-loops loops, every other one measured, A B B A): diffscope run with --paired-timing
(the collector paused in the other loops: profile mode's CUPTI tracing off, perf mode's events
off) and plain python with --paired-profiler (torch.profiler around every other loop). What
each adds is then measured against the same process's own unmeasured loops, which cancels the
process-to-process spread that makes the process medians above noisy (T2 paired). Last,
profile mode paired step by step (stepped_diffscope: dit_loop.py --paired-steps, the
collector paused in every other step, A B B A in groups of four, each step timed on the host),
the estimator T2 is judged on: its A/A control reads within +-0.25% of zero where loop pairs
and process medians spread several percent (docs/torch.md).

Targets (docs/torch.md says what each number means):
  T1 GPU-bound: diffscope overhead vs plain <= 3 % (median e2e)
  T2 launch-bound: time diffscope adds <= 1/5 of the time torch.profiler adds; judged on
     profile mode's step-paired cost (upper 95% bound) over torch.profiler's loop-paired cost
     ("T2 step-paired"); the process-median and loop-paired ratios are reported beside it
  T3 GPU-bound: the dump's sum of denoise_steps_ms within 2 % of the measured e2e
  T4 nesting: a dump scope path has denoise_step as an ancestor of fused_rms_norm_rope, with
     2 * blocks * steps calls
  T5 coexistence: the collector keeps host timings and names the CUPTI holder; the checksum
     equals the plain runs'
Everything goes under --out (results.json, report.md, runs/, dumps/, logs/); the markdown
report is the last thing printed. A failed run is reported, never fatal. Exit 0 when every
judged target passed (or was skipped without a GPU), 1 otherwise, 2 on bad arguments.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from perf_mode import step_group_ratios, trimmed_mean  # the step-paired estimator

HERE = os.path.dirname(os.path.abspath(__file__))
DIT_LOOP = os.path.join(HERE, "..", "examples", "torch_extension", "dit_loop.py")
SCOPE_NAME = "fused_rms_norm_rope"
STEP_SCOPE = "denoise_step"

# Steps chosen so the timed loop is about 1 s on an H200 and a whole process 4-7 s.
# repeat: timed loops per process (each a request range; e2e is their median): launch-bound
# loops are short and their host-side jitter large, so each process measures three.
CONFIGS = {
    "gpu_bound": {"tokens": 4096, "dim": 3072, "heads": 24, "blocks": 4, "steps": 100, "repeat": 1},
    "launch_bound": {"tokens": 256, "dim": 1536, "heads": 24, "blocks": 4, "steps": 150, "repeat": 3},
}
# --small: seconds on a CPU, for checking this script itself.
SMALL = {
    "gpu_bound": {"tokens": 64, "dim": 128, "heads": 4, "blocks": 2, "steps": 3, "repeat": 1},
    "launch_bound": {"tokens": 16, "dim": 64, "heads": 4, "blocks": 2, "steps": 6, "repeat": 2},
}
# diffscope: `diffscope run` in its default profile mode (CUPTI, every kernel, what
# torch.profiler also records); diffscope_perf: the same in perf mode (DIFFSCOPE_MODE=perf).
MODES = ["plain", "diffscope", "diffscope_perf", "profiler"]
MODE_ENV = {"diffscope_perf": {"DIFFSCOPE_MODE": "perf"},
            "paired_diffscope_perf": {"DIFFSCOPE_MODE": "perf"}}
# stepped_diffscope: profile mode paused in every other step instead (--paired-steps), the
# estimator T2 is judged on (below).
PAIRED_MODES = ["paired_diffscope", "paired_diffscope_perf", "paired_profiler",
                "stepped_diffscope"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--diffscope", required=True, help="the diffscope binary (build-gpu/tools/diffscope)")
    p.add_argument("--ext", required=True, help="libdiffscope_torch_ext.so")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reps", type=int, default=5, help="repetitions of each mode (default 5)")
    p.add_argument("--python", default=sys.executable, help="interpreter with torch (default: this one)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--small", action="store_true", help="tiny sizes (a CPU check of this driver)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.add_argument("--gpu-steps", type=int, help="steps of the GPU-bound configuration")
    p.add_argument("--launch-steps", type=int, help="steps of the launch-bound configuration")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per run")
    p.add_argument("--paired-reps", type=int, default=4,
                   help="processes per mode of the paired launch-bound measurement (0: none)")
    p.add_argument("--paired-loops", type=int, default=16,
                   help="loops per paired process, measured and unmeasured in A B B A order")
    p.add_argument("--cpus", default="2-5",
                   help="CPUs every run is pinned to (same for every mode; '' = no pinning)")
    a = p.parse_args(argv)
    if a.reps < 1:
        p.error("--reps must be at least 1")
    if a.paired_reps < 0 or a.paired_loops < 4:
        p.error("--paired-reps must be >= 0 and --paired-loops >= 4 (A B B A)")
    for what, path in (("--diffscope", a.diffscope), ("--ext", a.ext)):
        if not os.path.isfile(path):
            p.error(f"{what} {path}: no such file")
    return a


def cpu_set(spec):
    """'2-5' or '2,3' -> {2, 3, 4, 5}, limited to the CPUs this process may use."""
    if not spec or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    cpus &= os.sched_getaffinity(0)
    return cpus or None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".1f", none="-"):
    return none if x is None else format(x, spec)


def clean_env():
    """The environment of a plain run: no collector injected from outside."""
    env = dict(os.environ)
    for k in list(env):
        if k == "NVTX_INJECTION64_PATH" or (k.startswith("DIFFSCOPE_") and k != "DIFFSCOPE_INJECT_LIB"):
            del env[k]
    return env


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f), None
    except FileNotFoundError:
        return None, f"{path}: not written"
    except (OSError, ValueError) as e:
        return None, f"{path}: {e}"


class Bench:
    def __init__(self, a):
        self.a = a
        self.out = os.path.abspath(a.out)
        for d in ("runs", "dumps", "logs"):
            os.makedirs(os.path.join(self.out, d), exist_ok=True)
        self.configs = {k: dict(v) for k, v in (SMALL if a.small else CONFIGS).items()}
        if a.gpu_steps:
            self.configs["gpu_bound"]["steps"] = a.gpu_steps
        if a.launch_steps:
            self.configs["launch_bound"]["steps"] = a.launch_steps
        self.runs = []

    def command(self, cfg, mode, json_out, dump):
        c = self.configs[cfg]
        cmd = [self.a.python, DIT_LOOP, "--ext", os.path.abspath(self.a.ext), "--device", self.a.device,
               "--dtype", self.a.dtype, "--warmup", str(self.a.warmup), "--json", json_out]
        paired = mode.startswith("paired_") or mode == "stepped_diffscope"
        for k in ("tokens", "dim", "heads", "blocks", "steps", "repeat"):
            v = self.a.paired_loops if paired and k == "repeat" else c[k]
            cmd += [f"--{k}", str(v)]
        if mode == "stepped_diffscope":
            cmd.append("--paired-steps")
        elif paired:
            cmd.append("--paired-profiler" if mode == "paired_profiler" else "--paired-timing")
        if mode == "profiler":
            cmd.append("--profiler")
        if mode == "diffscope_events":
            cmd.append("--step-events")
        if mode == "coexist":
            cmd.append("--profiler-first")
        if mode in ("diffscope", "diffscope_perf", "diffscope_events", "coexist",
                    "paired_diffscope", "paired_diffscope_perf", "stepped_diffscope"):
            cmd = [os.path.abspath(self.a.diffscope), "run", "--dump", dump, "--"] + cmd
        return cmd

    def run(self, cfg, mode, rep):
        name = f"{cfg}-{mode}-{rep}"
        json_out = os.path.join(self.out, "runs", name + ".json")
        dump = os.path.join(self.out, "dumps", name + ".json")
        log = os.path.join(self.out, "logs", name + ".log")
        for f in (json_out, dump):
            if os.path.exists(f):
                os.remove(f)
        cmd = self.command(cfg, mode, json_out, dump)
        rec = {"name": name, "config": cfg, "mode": mode, "rep": rep, "command": cmd, "rc": None,
               "wall_s": None, "error": None, "result": None, "dump": None, "log": log}
        t0 = time.perf_counter()
        env = clean_env()
        env.update(MODE_ENV.get(mode, {}))
        cpus = cpu_set(self.a.cpus)
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        try:
            with open(log, "w") as lf:
                rec["rc"] = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env,
                                           stdin=subprocess.DEVNULL, timeout=self.a.timeout,
                                           preexec_fn=pin).returncode
        except subprocess.TimeoutExpired:
            rec["error"] = f"timed out after {self.a.timeout:.0f} s"
        except OSError as e:
            rec["error"] = f"could not start: {e}"
        rec["wall_s"] = time.perf_counter() - t0
        if rec["error"] is None and rec["rc"] != 0:
            rec["error"] = f"exit code {rec['rc']}"
        rec["result"], err = read_json(json_out)
        if err and rec["error"] is None:
            rec["error"] = err
        if "diffscope" in mode or mode == "coexist":
            rec["dump"], derr = read_json(dump)
            if derr and rec["error"] is None:
                rec["error"] = derr
        if rec["error"]:
            tail = ""
            try:
                with open(log) as lf:
                    tail = " | ".join(lf.read().strip().splitlines()[-3:])
            except OSError:
                pass
            rec["error"] += f" (log: {log}; last lines: {tail[-400:]})"
        e2e = rec["result"]["e2e_ms"] if rec["result"] else None
        print(f"  {name:<34} rc={rec['rc']} wall={rec['wall_s']:.1f}s e2e_ms={fmt(e2e, '.2f')}"
              + (f"  ERROR: {rec['error'][:200]}" if rec["error"] else ""), flush=True)
        self.runs.append(rec)
        return rec

    def collect(self):
        t0 = time.perf_counter()
        print(f"torch_overhead: {len(self.configs)} configurations x {len(MODES)} modes x {self.a.reps} "
              f"reps + {len(self.configs)} step-event runs + 1 coexistence run + "
              f"{len(PAIRED_MODES)} paired modes x {self.a.paired_reps} processes", flush=True)
        for rep in range(self.a.reps):
            for cfg in self.configs:
                # Rotate the order so no mode always runs first (page cache, clocks).
                for mode in MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]:
                    self.run(cfg, mode, rep)
        for cfg in self.configs:
            self.run(cfg, "diffscope_events", 0)
        self.run("launch_bound", "coexist", 0)
        for rep in range(self.a.paired_reps):
            k = rep % len(PAIRED_MODES)
            for mode in PAIRED_MODES[k:] + PAIRED_MODES[:k]:
                self.run("launch_bound", mode, rep)
        self.elapsed_s = time.perf_counter() - t0


def adjacent_pairs_pct(e2e_all):
    """Median over neighbouring loops (0,1), (2,3), ... of measured / unmeasured - 1 in %
    (dit_loop.py measures loops r with r % 4 in (0, 3): A B B A)."""
    out = []
    for i in range(0, len(e2e_all) - 1, 2):
        a, b = e2e_all[i], e2e_all[i + 1]
        timed, untimed = (a, b) if i % 4 == 0 else (b, a)
        out.append(100.0 * (timed / untimed - 1))
    return median(out)


def dump_steps_sum(dump):
    steps = dump.get("denoise_steps_ms") or []
    return sum(s.get("duration_ms", 0.0) for s in steps), len(steps)


def nesting(dump, expected_calls):
    """Scopes whose path has the step scope as a proper ancestor of the extension's scope."""
    found = []
    for s in (dump.get("diffscope") or {}).get("scopes") or []:
        parts = s.get("path", "").split("/")
        if parts[-1] == SCOPE_NAME and STEP_SCOPE in parts[:-1]:
            found.append({"path": s["path"], "calls": s.get("calls"), "category": s.get("category"),
                          "gpu": s.get("gpu")})
    ok = any(f["calls"] == expected_calls for f in found)
    return ok, found


def analyse(b):
    a, runs = b.a, b.runs
    ok_runs = [r for r in runs if r["error"] is None]
    by = {}
    for r in ok_runs:
        by.setdefault((r["config"], r["mode"]), []).append(r)
    any_result = next((r["result"] for r in ok_runs if r["result"]), None)
    device = any_result["device"] if any_result else "unknown"
    has_gpu = a.device == "cuda"

    table = {}
    for cfg in b.configs:
        e2e = {m: [r["result"]["e2e_ms"] for r in by.get((cfg, m), [])] for m in MODES}
        med = {m: median(v) for m, v in e2e.items()}
        row = {"e2e_ms": e2e, "median_ms": med, "runs_ok": {m: len(v) for m, v in e2e.items()}}
        p = med["plain"]
        for m in ("diffscope", "diffscope_perf", "profiler"):
            row[f"{m}_added_ms"] = med[m] - p if p is not None and med[m] is not None else None
            row[f"{m}_overhead_pct"] = 100.0 * row[f"{m}_added_ms"] / p if row[f"{m}_added_ms"] is not None else None
        # The dump's sum of per-step durations against the same process's measured e2e.
        # (With --repeat the dump holds the last loop, a request: compare with that loop.)
        rel = []
        for r in by.get((cfg, "diffscope"), []):
            s, n = dump_steps_sum(r["dump"])
            last = r["result"].get("e2e_last_ms", r["result"]["e2e_ms"])
            rel.append(100.0 * (s - last) / last if n else None)
        row["steps_sum_vs_e2e_pct"] = rel
        row["steps_sum_vs_e2e_pct_median"] = median([abs(x) if x is not None else None for x in rel])
        row["steps_sum_vs_e2e_pct_max"] = max((abs(x) for x in rel if x is not None), default=None)
        # Per-step ground truth: dump duration_ms against CUDA events of the same steps.
        ev = by.get((cfg, "diffscope_events"), [])
        if ev and ev[0]["result"].get("step_ms"):
            truth = ev[0]["result"]["step_ms"]
            got = {s["step"]: s["duration_ms"] for s in ev[0]["dump"].get("denoise_steps_ms") or []}
            diffs = [100.0 * (got[i] - t) / t for i, t in enumerate(truth) if i in got and t > 0]
            row["per_step_vs_events_pct"] = {
                "steps": len(diffs), "median_abs": median([abs(d) for d in diffs]),
                "max_abs": max((abs(d) for d in diffs), default=None),
                "sum_dump_ms": sum(got.values()), "sum_events_ms": sum(truth),
                "clock": ev[0]["result"]["mode"].get("step_clock")}
        else:
            row["per_step_vs_events_pct"] = None
        # Nesting, from the first good diffscope dump of the configuration.
        ds = by.get((cfg, "diffscope"), []) or by.get((cfg, "diffscope_events"), [])
        c = b.configs[cfg]
        expected = 2 * c["blocks"] * c["steps"] * max(1, c.get("repeat", 1))
        if ds:
            row["nesting_ok"], row["nesting_paths"] = nesting(ds[0]["dump"], expected)
        else:
            row["nesting_ok"], row["nesting_paths"] = None, []
        row["nesting_expected_calls"] = expected
        row["gpu_timing"] = [bool((r["dump"].get("diffscope") or {}).get("status", {}).get("gpu_timing"))
                             for r in by.get((cfg, "diffscope"), [])]
        table[cfg] = row

    # Checksums: every mode of a configuration computes the same latents.
    checksums = {}
    for cfg in b.configs:
        sums = {}
        for r in ok_runs:
            if r["config"] == cfg and r["result"]:
                sums.setdefault(r["mode"], set()).add(json.dumps(r["result"]["checksum"], sort_keys=True))
        checksums[cfg] = {m: sorted(v) for m, v in sums.items()}

    coexist = by.get(("launch_bound", "coexist"), [])
    co = {"ran": bool(coexist)}
    if coexist:
        st = (coexist[0]["dump"].get("diffscope") or {}).get("status", {})
        plain = checksums["launch_bound"].get("plain", [])
        mine = json.dumps(coexist[0]["result"]["checksum"], sort_keys=True)
        co.update({"status": st, "checksum": coexist[0]["result"]["checksum"],
                   "checksum_equals_plain": len(plain) == 1 and plain[0] == mine,
                   "plain_checksums": len(plain)})

    # Paired: per process, median of the measured loops minus median of the unmeasured ones;
    # and the median ratio of neighbouring loops (one measured, one not): this host's loops
    # switch between a fast and a slow state (about 2x) lasting several loops, which the
    # halves' medians mix and neighbours mostly share (bench/profile_cost.py, BENCHMARKS.md).
    paired = {}
    for m in PAIRED_MODES:
        if m == "stepped_diffscope":
            continue  # below
        added, pct, pairs = [], [], []
        for r in by.get(("launch_bound", m), []):
            t, u = r["result"].get("e2e_timed_ms"), r["result"].get("e2e_untimed_ms")
            if t and u:
                added.append(median(t) - median(u))
                pct.append(100.0 * (median(t) / median(u) - 1))
                pairs.append(adjacent_pairs_pct(r["result"]["e2e_all_ms"]))
        paired[m] = {"added_ms": added, "added_pct": pct, "median_added_ms": median(added),
                     "median_added_pct": median(pct), "pairs_pct": pairs,
                     "median_pairs_pct": median(pairs)}

    # Step-paired: every group of four steps (A B B A) of every process, pooled; the
    # 10%-trimmed mean and its standard error (bench/perf_mode.py).
    groups = []
    for r in by.get(("launch_bound", "stepped_diffscope"), []):
        if r["result"].get("step_host_ms"):
            groups += step_group_ratios(r["result"])
    stepped = None
    if len(groups) >= 8:
        mean, se = trimmed_mean(groups)
        stepped = {"groups": len(groups), "mean_pct": 100 * mean, "se_pct": 100 * se,
                   "upper_pct": 100 * (mean + 2 * se)}

    def verdict(ok, skip_reason=None, judged=True):
        if skip_reason:
            return "SKIP"
        if not judged:  # reported beside the judge, not a pass/fail of its own
            return "info: " + ("within" if ok else "over")
        return "PASS" if ok else "FAIL"

    # Timing targets are skipped only on a CPU run; on a GPU run a missing number is a failure.
    no_gpu = "--device cpu: host timings only" if a.device == "cpu" else None
    gb, lb = table.get("gpu_bound", {}), table.get("launch_bound", {})
    targets = []
    v = gb.get("diffscope_overhead_pct")
    targets.append({"id": "T1", "what": "GPU-bound: diffscope overhead vs plain <= 3 %",
                    "value": f"{fmt(v, '+.2f')} %", "verdict": verdict(v is not None and v <= 3.0, no_gpu)})
    v = gb.get("diffscope_perf_overhead_pct")
    targets.append({"id": "T1p", "what": "GPU-bound: diffscope perf mode overhead vs plain <= 3 %",
                    "value": f"{fmt(v, '+.2f')} %", "verdict": verdict(v is not None and v <= 3.0, no_gpu)})
    pa = lb.get("profiler_added_ms")
    for tid, m, label in (("T2", "diffscope", "profile mode"), ("T2p", "diffscope_perf", "perf mode")):
        da = lb.get(f"{m}_added_ms")
        ok2 = da is not None and pa is not None and pa > 0 and da <= pa / 5.0
        ratio = da / pa if da is not None and pa else None
        # Process medians: reported; T2 is judged step-paired ("T2 step-paired" below).
        targets.append({"id": tid, "what": f"launch-bound, process medians: diffscope ({label}) adds <= 1/5 of what torch.profiler adds",
                        "value": f"diffscope {fmt(da, '+.2f')} ms, profiler {fmt(pa, '+.2f')} ms, ratio {fmt(ratio, '.3f')}",
                        "verdict": verdict(ok2, no_gpu, judged=a.paired_reps == 0)})
    if a.paired_reps > 0:
        pa = paired["paired_profiler"]["median_added_ms"]
        pq = paired["paired_profiler"]["median_pairs_pct"]
        for tid, m, label in (("T2 paired", "paired_diffscope", "profile mode"),
                              ("T2p paired", "paired_diffscope_perf", "perf mode")):
            da = paired[m]["median_added_ms"]
            dq = paired[m]["median_pairs_pct"]
            ratio = da / pa if da is not None and pa else None
            # Judged on neighbouring loops (see above); the halves' ratio is reported too.
            pair_ratio = dq / pq if dq is not None and pq else None
            ok2 = pair_ratio is not None and pq > 0 and pair_ratio <= 0.2
            targets.append({
                "id": tid,
                "what": f"launch-bound, paired in-process: diffscope ({label}) adds <= 1/5 of what "
                        f"torch.profiler adds",
                "value": f"diffscope {fmt(da, '+.2f')} ms ({fmt(paired[m]['median_added_pct'], '+.2f')} %), "
                         f"profiler {fmt(pa, '+.2f')} ms ({fmt(paired['paired_profiler']['median_added_pct'], '+.2f')} %), "
                         f"ratio {fmt(ratio, '.3f')}; neighbouring loops: diffscope "
                         f"{fmt(dq, '+.2f')} %, profiler {fmt(pq, '+.2f')} %, ratio "
                         f"{fmt(pair_ratio, '.3f')}",
                "verdict": verdict(ok2, no_gpu, judged=False)})
    if a.paired_reps > 0:
        # The judge of T2: profile mode's cost paired step by step (its upper 95% bound) over
        # torch.profiler's, paired by loops (it cannot be switched per step). The two loop-
        # based T2 lines above are reported too; their process-to-process and loop-to-loop
        # noise is several times this one's (docs/torch.md).
        pp = paired["paired_profiler"]["median_added_pct"]
        ratio = stepped["upper_pct"] / pp if stepped and pp else None
        ok2 = ratio is not None and pp > 0 and ratio <= 0.2
        val = (f"diffscope {stepped['mean_pct']:+.3f} % +- {2 * stepped['se_pct']:.3f} % a step "
               f"({stepped['groups']} groups; upper bound {stepped['upper_pct']:+.3f} %), profiler "
               f"{fmt(pp, '+.2f')} % a loop, ratio of the upper bound {fmt(ratio, '.3f')} "
               f"(of the mean {fmt(stepped['mean_pct'] / pp if pp else None, '.3f')})"
               if stepped else "no step-paired run succeeded")
        targets.append({
            "id": "T2 step-paired",
            "what": "launch-bound, paired step by step (the judge of T2): diffscope (profile mode) "
                    "adds <= 1/5 of what torch.profiler adds",
            "value": val, "verdict": verdict(ok2, no_gpu)})
    m3 = gb.get("steps_sum_vs_e2e_pct_median")
    timed = gb.get("gpu_timing") or []
    gpu_steps = bool(timed) and all(timed)  # device-timed step durations, not host fallbacks
    targets.append({"id": "T3", "what": "GPU-bound: dump sum(denoise_steps_ms) within 2 % of e2e",
                    "value": f"median abs diff {fmt(m3, '.2f')} %, max {fmt(gb.get('steps_sum_vs_e2e_pct_max'), '.2f')} %, "
                             f"GPU-timed dumps {sum(timed)}/{len(timed)}",
                    "verdict": verdict(m3 is not None and m3 <= 2.0 and gpu_steps, no_gpu)})
    nest_ok = all(table[c]["nesting_ok"] for c in table)
    targets.append({"id": "T4", "what": f"nesting: .../{STEP_SCOPE}/.../{SCOPE_NAME}, calls = 2 x blocks x steps x repeat",
                    "value": ", ".join(f"{p['path']} x{p['calls']}" for c in table for p in table[c]["nesting_paths"]
                                       if "DenoisingStage/" in p["path"]) or "no such path",
                    "verdict": verdict(nest_ok)})
    if co["ran"]:
        st = co["status"]
        held = (not st.get("gpu_timing", True)) and bool(st.get("cupti_holder") or "CUPTI" in st.get("reason", ""))
        val = (f"gpu_timing={st.get('gpu_timing')}, holder='{st.get('cupti_holder', '')}', "
               f"reason='{st.get('reason', '')[:80]}', checksum equal: {co['checksum_equals_plain']}")
        targets.append({"id": "T5", "what": "coexistence: host timings, CUPTI holder named, same checksum",
                        "value": val, "verdict": verdict(held and co["checksum_equals_plain"],
                                                         None if has_gpu else "--device cpu: no CUPTI to hold")})
    else:
        targets.append({"id": "T5", "what": "coexistence: host timings, CUPTI holder named, same checksum",
                        "value": "the run failed", "verdict": "FAIL"})
    failures = [{"name": r["name"], "error": r["error"]} for r in runs if r["error"]]
    return {"device": device, "has_gpu": has_gpu, "table": table, "checksums": checksums, "coexist": co,
            "paired": paired, "stepped": stepped,
            "targets": targets, "failed_runs": failures, "no_gpu_reason": no_gpu}


def report(b, res):
    a = b.a
    L = []
    L.append(f"## diffscope vs torch.profiler on a PyTorch DiT loop ({res['device']})")
    L.append("")
    L.append(f"{len(b.runs)} runs, {a.reps} reps per mode, {b.elapsed_s:.0f} s; medians of e2e (timed denoise loop, "
             f"sync + perf_counter); dtype {a.dtype}; output in {b.out}")
    L.append("")
    L.append("| config | tokens x dim, blocks, steps | plain ms | diffscope (profile) ms | diffscope perf ms "
             "| torch.profiler ms | diffscope added | perf added | profiler added | dump steps sum vs e2e "
             "| per-step vs CUDA events |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for cfg, row in res["table"].items():
        c = b.configs[cfg]
        med = row["median_ms"]
        ps = row["per_step_vs_events_pct"]
        L.append(
            f"| {cfg} | {c['tokens']} x {c['dim']}, {c['blocks']}, {c['steps']} | {fmt(med['plain'], '.2f')} "
            f"| {fmt(med['diffscope'], '.2f')} | {fmt(med['diffscope_perf'], '.2f')} | {fmt(med['profiler'], '.2f')} "
            f"| {fmt(row['diffscope_added_ms'], '+.2f')} ms ({fmt(row['diffscope_overhead_pct'], '+.2f')} %) "
            f"| {fmt(row['diffscope_perf_added_ms'], '+.2f')} ms ({fmt(row['diffscope_perf_overhead_pct'], '+.2f')} %) "
            f"| {fmt(row['profiler_added_ms'], '+.2f')} ms ({fmt(row['profiler_overhead_pct'], '+.2f')} %) "
            f"| {fmt(row['steps_sum_vs_e2e_pct_median'], '.2f')} % (max {fmt(row['steps_sum_vs_e2e_pct_max'], '.2f')} %) "
            f"| {('median ' + fmt(ps['median_abs'], '.2f') + ' %, max ' + fmt(ps['max_abs'], '.2f') + ' %') if ps else '-'} |")
    L.append("")
    for cfg, row in res["table"].items():
        spread = ", ".join(f"{m} {fmt(min(v), '.1f')}..{fmt(max(v), '.1f')} ({len(v)} ok)" if v else f"{m} none"
                           for m, v in row["e2e_ms"].items())
        L.append(f"e2e range {cfg}: {spread}")
    for cfg, sums in res["checksums"].items():
        distinct = sorted({s for v in sums.values() for s in v})
        if not distinct:
            L.append(f"checksums {cfg}: no successful run")
        elif len(distinct) == 1:
            L.append(f"checksums {cfg}: identical in every mode")
        else:
            L.append(f"checksums {cfg}: {len(distinct)} distinct: {sums}")
    for m, p in res["paired"].items():
        if p["added_ms"]:
            L.append(f"paired launch-bound {m}: added {fmt(p['median_added_ms'], '+.2f')} ms "
                     f"({fmt(p['median_added_pct'], '+.2f')} %), per process "
                     f"{[round(x, 2) for x in p['added_ms']]} ms; neighbouring loops "
                     f"{fmt(p['median_pairs_pct'], '+.2f')} %, per process "
                     f"{[round(x, 2) for x in p['pairs_pct']]} %")
    if res["no_gpu_reason"]:
        L.append(f"note: timing targets skipped: {res['no_gpu_reason']}")
    for f in res["failed_runs"]:
        L.append(f"failed run {f['name']}: {f['error'][:300]}")
    L.append("")
    L.append("| target | value | verdict |")
    L.append("| --- | --- | --- |")
    for t in res["targets"]:
        L.append(f"| {t['id']} {t['what']} | {t['value']} | **{t['verdict']}** |")
    return "\n".join(L) + "\n"


def main(argv):
    a = parse_args(argv)
    b = Bench(a)
    b.collect()
    res = analyse(b)
    res["arguments"] = vars(a)
    res["configs"] = b.configs
    res["elapsed_s"] = b.elapsed_s
    res["runs"] = [{k: v for k, v in r.items() if k != "dump"} for r in b.runs]
    text = report(b, res)
    with open(os.path.join(b.out, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
    with open(os.path.join(b.out, "report.md"), "w") as f:
        f.write(text)
    print()
    print(text, end="")
    failed = [t for t in res["targets"] if t["verdict"] == "FAIL"]
    print(f"torch_overhead: {'FAIL (' + ', '.join(t['id'] for t in failed) + ')' if failed else 'PASS'}"
          f" ({sum(t['verdict'] == 'PASS' for t in res['targets'])} passed, {len(failed)} failed, "
          f"{sum(t['verdict'] == 'SKIP' for t in res['targets'])} skipped, "
          f"{sum(t['verdict'].startswith('info') for t in res['targets'])} reported only)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
