#!/usr/bin/env python3
"""What each collector mode costs a whole denoise loop: fresh processes, alternating.

The judge of every overhead target: whole processes of one workload, one of each variant per
round in rotating order, each process timing --repeat loops (each a request range) and
reporting their median. Workloads (--workload):
    dit    examples/torch_extension/dit_loop.py, launch-bound: 256 tokens x 1536, 12 blocks,
           28 steps, bf16 (needs the extension, --ext)
    flux   examples/diffusers/flux_like.py: diffusers' Flux transformer with layerwise ranges,
           28 steps (a loop: one generation's host time, synchronised; needs diffusers, from
           examples/diffusers/fetch_deps.sh)
Variants (the default: all but the diagnostic ones, paused and sampled_off):
    plain           the workload alone
    perf            diffscope run, DIFFSCOPE_MODE=perf (events time stages and steps)
    sampled         diffscope run, DIFFSCOPE_MODE=sampled (events time stages and steps, CUPTI
                    traces a sample of denoise steps and the work outside steps)
    profile         diffscope run, the defaults (CUPTI traces everything)
    records         diffscope run, CUPTI's kernel records alone, no launch callbacks
                    (DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS=none): full tracing's floor
    torch_profiler  --profiler (torch.profiler, CPU + CUDA)
    paused          diffscope run (profile mode), the collector paused for every timed loop
                    (--paused: warm-up traced, so CUPTI is subscribed and set up): what
                    "not tracing" costs a subscribed process
    sampled_off     sampled mode tracing no denoise step (DIFFSCOPE_SAMPLE_STEPS past the
                    loop): what sampled mode pays outside its samples
Reported per variant, in the order above: the median over processes of the process's loop
time, the spread (min-max), and the median's change against plain in ms and %; torch.profiler's
added time as the yardstick ("share of torch.profiler's added time"). Two lines follow the
table: sampled's added time as a share of torch.profiler's, and full profile's added time as a
multiple of records-only's. Every process's loops go to OUT/results.json, the table to
OUT/report.md (printed last).
Usage: process_cost.py --diffscope D --out DIR [--workload dit|flux] [--ext E] [--reps 6]
                       [--repeat 3] [--variants a,b,...] [--small] [--device cpu]
--small --device cpu checks this script in seconds without a GPU (diffscope run then records
host timings only). Exit 0 when every run succeeded, 1 when one failed, 2 on bad arguments.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = {
    "dit": {"script": os.path.join(HERE, "..", "examples", "torch_extension", "dit_loop.py"),
            "args": ["--tokens", "256", "--dim", "1536", "--heads", "24", "--blocks", "12",
                     "--steps", "28", "--dtype", "bf16", "--warmup", "2"],
            # --small: seconds on a CPU, for checking this script itself.
            "small": ["--tokens", "16", "--dim", "64", "--heads", "4", "--blocks", "2",
                      "--steps", "4", "--dtype", "fp32", "--warmup", "1"]},
    "flux": {"script": os.path.join(HERE, "..", "examples", "diffusers", "flux_like.py"),
             "args": ["--steps", "28", "--warmup", "1"],
             "small": ["--steps", "2", "--layers", "1", "--single-layers", "1", "--warmup", "1"]},
}
GENERATION = re.compile(r"^generation \d+: ([0-9.]+) ms host", re.M)
# In the report's order.
VARIANTS = {
    "plain": {"run": False, "env": {}, "args": []},
    "perf": {"run": True, "env": {"DIFFSCOPE_MODE": "perf"}, "args": []},
    "sampled": {"run": True, "env": {"DIFFSCOPE_MODE": "sampled"}, "args": []},
    "profile": {"run": True, "env": {}, "args": []},
    "records": {"run": True, "env": {"DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS": "none"}, "args": []},
    "torch_profiler": {"run": False, "env": {}, "args": ["--profiler"]},
    "paused": {"run": True, "env": {}, "args": ["--paused"]},
    # Sampled mode tracing no denoise step (the window lies past the loop): what it pays
    # outside its samples, the events and the switches included.
    "sampled_off": {"run": True, "env": {"DIFFSCOPE_MODE": "sampled",
                                         "DIFFSCOPE_SAMPLE_STEPS": "100000"}, "args": []},
}
DIAGNOSTIC_VARIANTS = ("paused", "sampled_off")
DEFAULT_VARIANTS = [v for v in VARIANTS if v not in DIAGNOSTIC_VARIANTS]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--diffscope", required=True, help="the diffscope binary")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="dit")
    p.add_argument("--ext", help="libdiffscope_torch_ext.so (workload dit)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reps", type=int, default=6, help="processes per variant (at least 1)")
    p.add_argument("--repeat", type=int, default=3, help="timed loops per process")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help="comma-separated subset of " + ", ".join(VARIANTS) +
                   " (default: all but paused and sampled_off)")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--small", action="store_true", help="a tiny loop (checks this script)")
    a = p.parse_args(argv)
    a.variants = list(dict.fromkeys(v for v in a.variants.split(",") if v))  # once each
    bad = [v for v in a.variants if v not in VARIANTS]
    if bad or not a.variants:
        p.error(f"--variants: unknown {', '.join(bad) or '(none given)'}; "
                f"known: {', '.join(VARIANTS)}")
    if a.reps < 1 or a.repeat < 1:
        p.error("--reps and --repeat must be at least 1")
    if a.workload == "dit" and not a.ext:
        p.error("--workload dit needs --ext (bench/build_torch_ext.sh builds it)")
    for path, what in ((a.diffscope, "--diffscope"), (a.ext, "--ext")):
        if path and not os.path.isfile(path):
            p.error(f"{what} {path}: no such file")
    return a


def clean_env():
    """This environment without any diffscope setting or injection a caller left behind."""
    return {k: v for k, v in os.environ.items()
            if k != "NVTX_INJECTION64_PATH" and not k.startswith("DIFFSCOPE_")}


def run_one(a, variant, rep):
    v = VARIANTS[variant]
    tag = f"{variant}_{rep}"
    js = os.path.join(a.out, "runs", tag + ".json")
    w = WORKLOADS[a.workload]
    cmd = [a.python, w["script"], "--device", a.device] + w["small" if a.small else "args"]
    if a.workload == "dit":
        cmd += ["--ext", a.ext, "--repeat", str(a.repeat), "--json", js]
    else:
        cmd += ["--requests", str(a.repeat)]
    cmd += v["args"]
    dump = None
    if v["run"]:
        dump = os.path.join(a.out, "dumps", tag + ".json")
        cmd = [os.path.abspath(a.diffscope), "run", "--dump", dump, "--"] + cmd
    env = clean_env()
    env.update(v["env"])
    log = os.path.join(a.out, "logs", tag + ".log")
    with open(log, "w") as f:
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    failed = {"variant": variant, "rep": rep, "ok": False, "rc": rc, "log": log}
    if rc != 0:
        return failed
    if a.workload == "dit":
        if not os.path.exists(js):
            return failed
        with open(js) as f:
            r = json.load(f)
        loops, device = r["e2e_all_ms"], r["device"]
    else:
        with open(log) as f:
            loops = [float(x) for x in GENERATION.findall(f.read())]
        device = a.device
        if len(loops) != a.repeat:
            return failed
    return {"variant": variant, "rep": rep, "ok": True, "e2e_ms": statistics.median(loops),
            "e2e_all_ms": loops, "dump": dump, "device": device}


def added_ratio(med, plain, num, den):
    """(added time of num, added time of den, their ratio); None where a figure is missing or
    den added nothing measurable."""
    if plain is None or num not in med or den not in med:
        return None
    n, d = med[num] - plain, med[den] - plain
    return n, d, (n / d if d > 0 else None)


def report(a, runs):
    shown = [v for v in VARIANTS if v in a.variants]  # the report's order, whatever --variants'
    by = {v: [r["e2e_ms"] for r in runs if r["variant"] == v and r["ok"]] for v in shown}
    med = {v: statistics.median(x) for v, x in by.items() if x}
    plain = med.get("plain")
    prof_added = (med["torch_profiler"] - plain
                  if plain is not None and "torch_profiler" in med else None)
    device = next((r["device"] for r in runs if r["ok"]), "?")
    w = WORKLOADS[a.workload]
    cfg = " ".join(w["small" if a.small else "args"])
    lines = [f"# Whole-process cost per variant, alternating ({device})", "",
             f"{os.path.basename(w['script'])} {cfg}, {a.repeat} timed loops a process "
             "(its figure: their median), "
             f"{a.reps} processes per variant in rotating order.", "",
             "| variant | processes | median loop ms | spread (min-max) | vs plain | "
             "share of torch.profiler's added time |",
             "|---|---|---|---|---|---|"]
    for v in shown:
        x = by[v]
        failed = sum(1 for r in runs if r["variant"] == v and not r["ok"])
        if not x:
            lines.append(f"| {v} | 0 ({failed} failed) | - | - | - | - |")
            continue
        m = med[v]
        vs = "-" if plain is None or v == "plain" else \
            f"{m - plain:+.2f} ms ({(m - plain) / plain * 100:+.1f}%)"
        share = ("-" if prof_added is None or prof_added <= 0 or v in ("plain", "torch_profiler")
                 else f"{(m - plain) / prof_added:.3f}")
        n = f"{len(x)}" + (f" ({failed} failed)" if failed else "")
        width = f" ({(max(x) - min(x)) / m * 100:.1f}%)" if m > 0 else ""
        lines.append(f"| {v} | {n} | {m:.2f} | {min(x):.2f}-{max(x):.2f}{width} | {vs} | {share} |")
    lines.append("")
    for a, b, label, a_name, b_name, b_own, fmt in (
            ("sampled", "torch_profiler", "sampled vs torch.profiler", "sampled",
             "torch.profiler", "torch.profiler's", "{:.3f} of"),
            ("profile", "records", "full profile vs records only", "profile", "records only",
             "records-only's", "{:.2f}x")):
        r = added_ratio(med, plain, a, b)
        if r is None:
            lines.append(f"{label}: - (needs plain, {a} and {b})")
        elif r[2] is None:
            lines.append(f"{label}: {a_name} added {r[0]:+.2f} ms; {b_name} added "
                         f"{r[1]:+.2f} ms, nothing to compare with")
        else:
            lines.append(f"{label}: {a_name} added {r[0]:+.2f} ms, {fmt.format(r[2])} "
                         f"{b_own} {r[1]:+.2f} ms")
    return "\n".join(lines) + "\n"


def save(a, runs):
    """Writes OUT/results.json and OUT/report.md; returns the report."""
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"workload": a.workload, "args": WORKLOADS[a.workload]["small" if a.small else "args"],
                   "repeat": a.repeat, "runs": runs}, f, indent=1)
    text = report(a, runs)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(text)
    return text


def main(argv):
    a = parse_args(argv)
    for d in ("runs", "dumps", "logs"):
        os.makedirs(os.path.join(a.out, d), exist_ok=True)
    runs = []
    n = len(a.variants)
    for rep in range(a.reps):
        order = a.variants[rep % n:] + a.variants[:rep % n]  # rotating: no variant always first
        for v in order:
            r = run_one(a, v, rep)
            runs.append(r)
            state = f"{r['e2e_ms']:.2f} ms" if r["ok"] else f"FAILED rc={r['rc']} ({r['log']})"
            print(f"[{rep + 1}/{a.reps}] {v}: {state}", file=sys.stderr, flush=True)
        text = save(a, runs)  # after every round: a run cut short keeps its complete rounds
    print(text)
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
