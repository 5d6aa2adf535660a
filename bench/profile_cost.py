#!/usr/bin/env python3
"""Where profile mode's cost goes in the launch-bound PyTorch loop: one command.

Profile mode (CUPTI: a launch callback for every launch, a record for every kernel) adds
time per launch. This driver measures what each part of it adds to the launch-bound DiT loop
(examples/torch_extension/dit_loop.py, 256 tokens x 1536), paired within processes: every
process runs --loops loops and measures every other one (A B B A), so what a variant adds is
read against the same process's unmeasured loops (the process-to-process spread of this loop,
10-25%, cancels). Variants (DIFFSCOPE_EXPERIMENT_CUPTI_* are collector_options::cupti,
BENCHMARKS.md's experiment settings):
    profile          diffscope run, the defaults (what users get: launch callbacks on runtime
                     and driver APIs until the runtime's prove redundant, then driver only)
    both             runtime and driver callbacks throughout
                     (DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS=both)
    zeroed           buffers zeroed by us on CUPTI's thread
                     (DIFFSCOPE_EXPERIMENT_CUPTI_ZERO_BUFFERS=1)
    driver           launch callbacks on driver APIs only
                     (DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS=driver)
    bare             no launch callbacks: CUPTI's kernel records alone, nothing attributed
                     (DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS=none)
    noclock          CUPTI's own timestamps (DIFFSCOPE_EXPERIMENT_CUPTI_HOST_CLOCK=0)
    perf             perf mode (DIFFSCOPE_MODE=perf): no CUPTI
    torch_profiler   torch.profiler around every other loop (dit_loop.py --paired-profiler)
    baseline         profile, but with the injection library given by --baseline-lib (another
                     build, e.g. the last commit's): two versions compared in one run
Each variant runs --reps processes, in rotating order. Reported per variant: the median over
processes of (median measured loop - median unmeasured loop), in ms and %; of the median
ratio of neighbouring loops (adjacent pairs, %), and of the fastest measured minus the
fastest unmeasured loop (ms): three estimators, because this host's loops switch between a
fast and a slow state (about 2x) for several loops at a time; the same for the
main thread's CPU time (work on the launching thread, against waiting); the spread of the
unmeasured loops (the noise the pairing has to beat); and for diffscope variants the records
and launch callbacks per measured loop read from the dump. Every loop's times go to
OUT/results.json, the table to OUT/report.md.
With --step-pairs the diffscope variants are paired step by step instead (dit_loop.py
--paired-steps: the collector paused in every other step, A B B A in groups of four, each
step timed on the host), which resolves a fraction of a percent where loop pairs cannot;
torch.profiler cannot be switched per step and stays paired by loops, so the ratio to it
divides a step-paired percentage by a loop-paired one.
Usage: profile_cost.py --diffscope D --ext E [--out DIR] [--reps 4] [--loops 8] [--steps 150]
                       [--variants a,b,...] [--python P] [--cpus 2-5] [--device cpu]
                       [--step-pairs] [--baseline-lib LIB]
Exit 0 when every run succeeded, 1 when one failed, 2 on bad arguments.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# The estimator torch_overhead.py reports its loop-paired T2 on (neighbouring loops).
from torch_overhead import adjacent_pairs_pct, cpu_set
from perf_mode import step_group_ratios, trimmed_mean

HERE = os.path.dirname(os.path.abspath(__file__))
DIT_LOOP = os.path.join(HERE, "..", "examples", "torch_extension", "dit_loop.py")
LOOP = ["--tokens", "256", "--dim", "1536", "--heads", "24", "--blocks", "4", "--dtype", "bf16",
        "--warmup", "2"]
VARIANTS = {
    "profile": {},
    "both": {"DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS": "both"},
    "zeroed": {"DIFFSCOPE_EXPERIMENT_CUPTI_ZERO_BUFFERS": "1"},
    "driver": {"DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS": "driver"},
    "bare": {"DIFFSCOPE_EXPERIMENT_CUPTI_LAUNCH_APIS": "none"},
    "noclock": {"DIFFSCOPE_EXPERIMENT_CUPTI_HOST_CLOCK": "0"},
    "perf": {"DIFFSCOPE_MODE": "perf"},
    "torch_profiler": None,  # not under diffscope run
    "baseline": {},  # DIFFSCOPE_INJECT_LIB=--baseline-lib, added in main()
}


def take_overhead(dump):
    """The dump's diffscope.overhead (None when the run wrote no dump); the dump is removed,
    as few files come back from the GPU machine."""
    if not os.path.isfile(dump):
        return None
    with open(dump) as f:
        ov = json.load(f)["diffscope"]["overhead"]
    os.remove(dump)
    return ov


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--diffscope", required=True)
    p.add_argument("--ext", required=True)
    p.add_argument("--out", default="out/profile_cost")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--reps", type=int, default=4, help="processes per variant")
    p.add_argument("--loops", type=int, default=8, help="loops per process (A B B A)")
    p.add_argument("--variants", default=",".join(v for v in VARIANTS if v != "baseline"))
    p.add_argument("--cpus", default="2-5", help="CPUs every run is pinned to ('' = none)")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cpu: a check of this driver (no CUPTI; figures meaningless)")
    p.add_argument("--steps", type=int, default=150, help="denoise steps per loop")
    p.add_argument("--step-pairs", action="store_true",
                   help="pair the diffscope variants step by step (dit_loop.py --paired-steps)")
    p.add_argument("--baseline-lib", help="libdiffscope_inject.so of the 'baseline' variant")
    a = p.parse_args(argv)
    variants = [v for v in a.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        p.error(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    if a.reps < 1 or a.loops < 4:
        p.error("--reps must be >= 1 and --loops >= 4 (A B B A)")
    if ("baseline" in variants) != (a.baseline_lib is not None):
        p.error("the 'baseline' variant and --baseline-lib go together")
    for what, path in (("--diffscope", a.diffscope), ("--ext", a.ext),
                       ("--baseline-lib", a.baseline_lib)):
        if path is not None and not os.path.isfile(path):
            p.error(f"{what} {path}: no such file")
    if a.baseline_lib:
        VARIANTS["baseline"] = {"DIFFSCOPE_INJECT_LIB": os.path.abspath(a.baseline_lib)}
    os.makedirs(a.out, exist_ok=True)
    cpus = cpu_set(a.cpus)
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None

    added = {v: [] for v in variants}
    pct = {v: [] for v in variants}
    per_loop = {v: [] for v in variants}
    cpu_added = {v: [] for v in variants}
    spread = {v: [] for v in variants}
    pairs = {v: [] for v in variants}
    fastest = {v: [] for v in variants}
    groups = {v: [] for v in variants}  # --step-pairs: every group's ratio, pooled
    callback_ns = {v: [] for v in variants}  # the dump's sampled launch callback, per process
    runs = []
    failures = []
    t0 = time.perf_counter()
    for rep in range(a.reps):
        k = rep % len(variants)
        for v in variants[k:] + variants[:k]:
            name = f"{v}-{rep}"
            res = os.path.join(a.out, name + ".json")
            dump = os.path.join(a.out, name + ".dump.json")
            for f in (res, dump):
                if os.path.exists(f):
                    os.remove(f)
            loop = [a.python, DIT_LOOP, "--ext", os.path.abspath(a.ext), "--json", res,
                    "--repeat", str(a.loops), "--steps", str(a.steps), "--device", a.device] + LOOP
            env = {k2: x for k2, x in os.environ.items() if not k2.startswith("DIFFSCOPE_")}
            if VARIANTS[v] is None:
                cmd = loop + ["--paired-profiler"]
            else:
                cmd = [a.diffscope, "run", "--dump", dump, "--"] + loop + \
                    ["--paired-steps" if a.step_pairs else "--paired-timing"]
                env.update(VARIANTS[v])
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.timeout,
                               preexec_fn=pin, stdin=subprocess.DEVNULL)
            if r.returncode != 0 or not os.path.isfile(res):
                failures.append(f"{name}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
                print(f"  {name}: FAILED (exit {r.returncode})", flush=True)
                continue
            with open(res) as f:
                out = json.load(f)
            os.remove(res)  # everything needed goes into results.json (few files come back)
            if out.get("step_host_ms"):
                ratios = step_group_ratios(out)
                groups[v] += ratios
                mean, se = trimmed_mean(ratios)
                run_rec = {"variant": v, "rep": rep, "step_host_ms": out["step_host_ms"]}
                note = ""
                ov = take_overhead(dump)
                if ov is not None:
                    run_rec["overhead"] = ov
                    if ov.get("per_launch_callback_ns"):
                        callback_ns[v].append(ov["per_launch_callback_ns"])
                        note = f", launch callback {ov['per_launch_callback_ns']:.1f} ns (sampled)"
                runs.append(run_rec)
                print(f"  {name}: step-paired {100 * mean:+.3f}% +- {200 * se:.3f}%{note}",
                      flush=True)
                continue
            timed, untimed = out["e2e_timed_ms"], out["e2e_untimed_ms"]
            d = statistics.median(timed) - statistics.median(untimed)
            added[v].append(d)
            pct[v].append(100 * (statistics.median(timed) / statistics.median(untimed) - 1))
            # The main thread's CPU time, split the same way: whether the added time is work
            # on this thread or waiting.
            flags = [i % 4 in (0, 3) for i in range(len(out["cpu_all_ms"]))]
            cpu_t = [c for c, t in zip(out["cpu_all_ms"], flags) if t]
            cpu_u = [c for c, t in zip(out["cpu_all_ms"], flags) if not t]
            cpu_added[v].append(statistics.median(cpu_t) - statistics.median(cpu_u))
            spread[v].append(100 * (max(untimed) / min(untimed) - 1))
            pairs[v].append(adjacent_pairs_pct(out["e2e_all_ms"]))
            fastest[v].append(min(timed) - min(untimed))
            run_rec = {"variant": v, "rep": rep, "e2e_all_ms": out["e2e_all_ms"],
                       "cpu_all_ms": out["cpu_all_ms"], "added_ms": d}
            note = ""
            ov = take_overhead(dump)
            if ov is not None:
                # The measured loops (and the two warm-up evaluations, about one step's worth
                # each, traced before the first pause: under 2% more).
                traced = len(timed)
                per_loop[v].append((ov["records"] / traced, ov["callbacks"] / traced))
                run_rec["overhead"] = ov
                note = f" records/loop ~{ov['records'] / traced:.0f}"
            runs.append(run_rec)
            print(f"  {name}: {d:+.2f} ms ({pct[v][-1]:+.2f}%), thread CPU "
                  f"{cpu_added[v][-1]:+.2f} ms, unmeasured loops spread {spread[v][-1]:.1f}%"
                  f"{note}", flush=True)

    lines = [f"profile_cost: launch-bound loop {' '.join(LOOP)} --steps {a.steps} on {a.device}, "
             f"{a.reps} processes x "
             f"{a.loops} loops (A B B A) per variant, {time.perf_counter() - t0:.0f} s", "",
             "| variant | added per loop (median) | % | adjacent pairs % | fastest loops ms | "
             "per process (ms) | thread CPU added (median) | unmeasured loops' spread (median) "
             "| records, callbacks per loop |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for v in variants:
        if groups[v]:
            continue  # the step-paired table below
        if not added[v]:
            lines.append(f"| {v} | - | - | all runs failed | |")
            continue
        rc = (f"{statistics.median(x for x, _ in per_loop[v]):.0f}, "
              f"{statistics.median(y for _, y in per_loop[v]):.0f}") if per_loop[v] else ""
        lines.append(f"| {v} | {statistics.median(added[v]):+.2f} ms | "
                     f"{statistics.median(pct[v]):+.2f} | {statistics.median(pairs[v]):+.2f} | "
                     f"{statistics.median(fastest[v]):+.2f} | "
                     f"{', '.join(f'{x:.1f}' for x in added[v])} | "
                     f"{statistics.median(cpu_added[v]):+.2f} ms | "
                     f"{statistics.median(spread[v]):.1f}% | {rc} |")
    if "torch_profiler" in variants and added["torch_profiler"]:
        tp = statistics.median(added["torch_profiler"])
        tq = statistics.median(pairs["torch_profiler"])
        tf = statistics.median(fastest["torch_profiler"])
        for v in variants:
            if v != "torch_profiler" and added[v] and tp > 0:
                lines.append(f"ratio {v} / torch_profiler: halves' medians "
                             f"{statistics.median(added[v]) / tp:.3f}, adjacent pairs "
                             f"{statistics.median(pairs[v]) / tq:.3f}, fastest loops "
                             f"{statistics.median(fastest[v]) / tf:.3f}")
    stepped = [v for v in variants if groups[v]]
    if stepped:
        lines += ["", "Paired step by step (groups of four steps, A B B A; 10%-trimmed mean "
                  "+- two standard errors, pooled over processes):", "",
                  "| variant | added per step | median | groups | ratio to torch.profiler "
                  "(its halves / pairs %) | our launch callback, sampled (median ns) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        tp = (statistics.median(pct["torch_profiler"]), statistics.median(pairs["torch_profiler"])) \
            if "torch_profiler" in variants and pct["torch_profiler"] else None
        for v in stepped:
            mean, se = trimmed_mean(groups[v])
            ratio = (f"{100 * mean / tp[0]:.3f} / {100 * mean / tp[1]:.3f}"
                     if tp and tp[0] > 0 and tp[1] > 0 else "-")
            cb = f"{statistics.median(callback_ns[v]):.1f}" if callback_ns[v] else "-"
            lines.append(f"| {v} | {100 * mean:+.3f}% +- {200 * se:.3f}% | "
                         f"{100 * statistics.median(groups[v]):+.3f}% | {len(groups[v])} | {ratio} "
                         f"| {cb} |")
    for f in failures:
        lines.append(f"failed: {f}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"loop": LOOP, "steps": a.steps, "reps": a.reps, "loops": a.loops,
                   "runs": runs, "failures": failures}, f)
    print(text, end="")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
