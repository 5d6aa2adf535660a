#!/usr/bin/env python3
"""Perf mode against uninstrumented runs and against CUDA-event ground truth.

One command, alternating runs (A B C D, then D C B A, ...) so drift hits every variant alike:

  python3 bench/perf_mode.py --toy build-gpu/examples/toy_dit/toy_dit \
      [--diffscope build-gpu/tools/diffscope --ext build-ext/libdiffscope_torch_example.so] \
      [--reps 7] [--out DIR]

Variants per workload:
  off        no collection (toy_dit: collector linked, not started; Python: plain python3)
  perf       DIFFSCOPE_MODE=perf, stages and denoise steps timed (the default granularity)
  perf-all   DIFFSCOPE_MODE=perf DIFFSCOPE_PERF_SCOPES=all, every scope timed
  perf-all-s8, perf-all-s16  the same with DIFFSCOPE_PERF_SAMPLE=8 or 16: the scopes inside
             steps timed in one step of 8 or 16 (their totals estimated)
  profile    DIFFSCOPE_MODE=profile (CUPTI, every kernel)
  perf-side, perf-side-all   timestamps on our own stream (DIFFSCOPE_EXPERIMENT_PERF_EVENTS=side)
  perf-noshare, perf-all-noshare   every stamp its own event (DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS=0)
  perf-each, perf-all-each   completed pairs queried one by one
             (DIFFSCOPE_EXPERIMENT_PERF_DRAIN=each)
  host-only  the collector with DIFFSCOPE_NO_GPU=1: its host bookkeeping alone (diagnostic)
The side and noshare variants are reported for comparison; the checks are on the defaults.
Both workloads are also measured paired: toy_dit --repeat --paired-timing and dit_loop.py
--paired-timing under diffscope run time every other run or loop (A B B A, the timing paused
in between with set_timing_paused), so the spread between processes cancels; it measures what
the timing adds (host-only gives the rest).
The Python loop also runs paired within each loop (--py-sections steps): dit_loop.py
--paired-steps pauses the timing in every other run of denoise steps (A B B A over runs of
--step-pair-run steps, 4 by default, so timed steps follow each other and chain) and
times each step on the host; neighbouring steps share the host's state, which whole loops
(1.5 ms against 250 ms) do not, so this resolves what loop pairs cannot. Its A/A control is
host-only (the pause does nothing there): how far the estimator itself sits from zero.
Checks (PASS/FAIL lines last): launch-bound slowdown of perf <= 0.5% and perf-all <= 2%;
per-step GPU times of perf mode within 2% of CUDA events recorded independently around each
step (toy_dit --step-events; dit_loop.py --step-events, launch-bound and GPU-bound; in the
launch-bound loop a second pair just outside the NVTX range shows how far the ground truth
itself moves with its place); profile-mode per-step envelopes
within 3% of perf mode's (GPU-bound configuration, where CUPTI's launch cost does not change
the GPU's work).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

TOY_LAUNCH = ["--tokens", "64", "--dim", "128", "--heads", "2", "--blocks", "4", "--steps", "50"]
TOY_GPU = ["--tokens", "4096", "--dim", "1024", "--heads", "16", "--blocks", "4", "--steps", "10"]

VARIANTS = {
    "off": {},
    "perf": {"DIFFSCOPE_MODE": "perf"},
    "perf-all": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_PERF_SCOPES": "all"},
    # Every scope, the ones inside denoise steps timed in one step of 8 (estimates).
    "perf-all-s8": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_PERF_SCOPES": "all",
                    "DIFFSCOPE_PERF_SAMPLE": "8"},
    "perf-all-s16": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_PERF_SCOPES": "all",
                     "DIFFSCOPE_PERF_SAMPLE": "16"},
    "profile": {"DIFFSCOPE_MODE": "profile"},
    # Timestamps on a stream of our own waiting for a marker
    # (DIFFSCOPE_EXPERIMENT_PERF_EVENTS=side).
    "perf-side": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_EXPERIMENT_PERF_EVENTS": "side"},
    "perf-side-all": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_EXPERIMENT_PERF_EVENTS": "side",
                      "DIFFSCOPE_PERF_SCOPES": "all"},
    # Every stamp its own event (no sharing of back-to-back stamps).
    "perf-noshare": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS": "0"},
    "perf-all-noshare": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_PERF_SCOPES": "all",
                         "DIFFSCOPE_EXPERIMENT_PERF_SHARE_NS": "0"},
    # Completed pairs settled by the program's thread at timed scopes' ends, in batches
    # (DIFFSCOPE_EXPERIMENT_PERF_DRAIN=batch) or one query per pair (each), not by our
    # resolver thread.
    "perf-batch": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_EXPERIMENT_PERF_DRAIN": "batch"},
    # Every step records its own start (DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS=0), as before
    # chaining.
    "perf-nochain": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS": "0"},
    "perf-all-batch": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_PERF_SCOPES": "all",
                       "DIFFSCOPE_EXPERIMENT_PERF_DRAIN": "batch"},
    "perf-each": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_EXPERIMENT_PERF_DRAIN": "each"},
    "perf-all-each": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_PERF_SCOPES": "all",
                      "DIFFSCOPE_EXPERIMENT_PERF_DRAIN": "each"},
    # Diagnostic: the collector running with no GPU timing (its host bookkeeping alone).
    "host-only": {"DIFFSCOPE_MODE": "perf", "DIFFSCOPE_NO_GPU": "1"},
}


# dit_loop.py --step-probe kinds, by step-section variant name (no collector).
PROBES = {"probe-" + k: k for k in ("events", "events-query", "markers", "event-start",
                                     "cu-events", "cu-event-end", "cu-markers",
                                     "cu-events-blocking",
                                     "cu-events-nonblocking", "cu-events-ptds", "cu-noop",
                                     "launch", "spin")}
PROBES_ON_CPU = {"probe-launch", "probe-spin"}


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFSCOPE_")}
    env.update(extra)
    return env


# Every run on the same CPUs (less run-to-run jitter from migrations), when there are enough.
PIN = set(range(2, 6)) & os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


def run(cmd, env, what):
    pin = (lambda: os.sched_setaffinity(0, PIN)) if len(PIN) == 4 else None
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=pin)
    if p.returncode != 0:
        raise RuntimeError(f"{what}: exit {p.returncode}: {p.stderr.strip()[-800:]}")
    return p.stdout


def toy_run(toy, args, variant, dump, step_events=False):
    env = clean_env(VARIANTS[variant])
    if variant != "off":
        env["DIFFSCOPE_DUMP"] = dump
    cmd = [toy] + args + (["--step-events"] if step_events else [])
    out = run(cmd, env, f"toy_dit {variant}")
    wall = None
    steps = []
    for line in out.splitlines():
        if line.startswith("wall_ms: "):
            wall = float(line.split()[1])
        elif line.startswith("step_ms: "):
            steps.append(float(line.split()[2]))
    if wall is None:
        raise RuntimeError("toy_dit printed no wall_ms line")
    return wall, steps


def dump_steps(path):
    with open(path) as f:
        d = json.load(f)
    return [s["duration_ms"] for s in d["denoise_steps_ms"]], d["diffscope"]["status"]


PY_GPU = ["--tokens", "4096", "--dim", "3072", "--heads", "24", "--steps", "100"]


def py_run(args, variant, dump, step_events=False, gpu_bound=False, full=False, paired=False,
           paired_steps=False, extra=()):
    """The Python denoise loop (examples/torch_extension/dit_loop.py) plain or under diffscope
    run; bench/torch_overhead.py's launch-bound (default) or GPU-bound configuration. Returns
    the median e2e ms and the per-step ground truth (full: the whole result)."""
    res = os.path.join(args.out, f"py-{variant}.json")
    cfg = (PY_GPU if gpu_bound else
           ["--tokens", str(args.py_tokens), "--dim", "1536", "--heads", "24",
            "--steps", str(args.py_steps)])
    loop = [sys.executable, args.loop, "--ext", args.ext, "--blocks", "4", "--device", args.device,
            "--repeat", str(args.paired_loops if paired else
                            args.step_pair_loops if paired_steps else 3), "--json", res] + cfg + \
        (["--step-events", "--outer-events"] if step_events else []) + \
        (["--paired-timing"] if paired else []) + \
        (["--paired-steps", "--pair-run", str(args.step_pair_run)] if paired_steps else []) + \
        list(extra)
    if variant == "off":
        cmd, env = loop, clean_env({})
    else:
        cmd, env = [args.diffscope, "run", "--dump", dump, "--"] + loop, clean_env(VARIANTS[variant])
    run(cmd, env, f"dit_loop {variant}")
    with open(res) as f:
        r = json.load(f)
    return (r["e2e_ms"], r) if full else (r["e2e_ms"], r.get("step_ms", []))


def alternate(fn, variants, reps):
    """Runs fn(variant) reps times per variant in A B C D / D C B A order; medians."""
    times = {v: [] for v in variants}
    for i in range(reps):
        order = variants if i % 2 == 0 else list(reversed(variants))
        for v in order:
            times[v].append(fn(v))
    return {v: statistics.median(t) for v, t in times.items()}, times


def step_group_ratios(r):
    """dit_loop.py --paired-steps: per group of four runs of K steps (timed, untimed,
    untimed, timed; K = 1 unless --pair-run), the timed steps' host time over the untimed
    ones', minus 1."""
    timed = r["step_timed"]
    k = timed.index(False) if False in timed else 0
    size = 4 * k
    if k == 0 or timed[:size] != [True] * k + [False] * (2 * k) + [True] * k:
        raise RuntimeError("dit_loop.py --paired-steps: unexpected step pattern")
    out = []
    for loop in r["step_host_ms"]:
        for g in range(0, len(loop) - size + 1, size):
            group = list(zip(loop[g:g + size], timed[g:g + size]))
            out.append(sum(ms for ms, t in group if t) / sum(ms for ms, t in group if not t) - 1)
    return out


def untimed_step_us(r):
    """The median host time of the untimed steps of a --paired-steps result, in us."""
    return 1e3 * statistics.median(ms for loop in r["step_host_ms"]
                                   for ms, t in zip(loop, r["step_timed"]) if not t)


def timed_scope_us_per_step(dump, r):
    """The collector's own host time in timed scopes per timed step (us), from its dump's
    overhead (timed scopes x their mean cost over the timed steps); None without timing."""
    try:
        with open(dump) as f:
            ov = json.load(f)["diffscope"]["overhead"]
    except (OSError, ValueError, KeyError):
        return None
    timed_steps = sum(r["step_timed"]) * len(r["step_host_ms"])
    if not ov.get("timed_scopes") or not timed_steps:
        return None
    return ov["timed_scopes"] * ov["per_timed_scope_ns"] / 1e3 / timed_steps


def trimmed_mean(xs, cut=0.1):
    """The mean without the lowest and highest 10% (a step with a GC pause or a host stall in
    it says nothing about the timing), and its standard error from the winsorised variance."""
    xs = sorted(xs)
    n, k = len(xs), int(cut * len(xs))
    if n - 2 * k < 2:
        raise ValueError("trimmed_mean: too few values")
    core = xs[k:n - k]
    wins = [min(max(x, core[0]), core[-1]) for x in xs]
    se = statistics.stdev(wins) / ((1 - 2 * cut) * n ** 0.5)
    return statistics.fmean(core), se


def max_rel(a, b):
    """Largest |a_i - b_i| / b_i over paired lists (None when they differ in length)."""
    if not a or len(a) != len(b):
        return None
    return max(abs(x - y) / y for x, y in zip(a, b))


def median_rel(a, b):
    """Median |a_i - b_i| / b_i: the typical step, where max_rel is the worst one."""
    if not a or len(a) != len(b):
        return None
    return statistics.median(abs(x - y) / y for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--toy", help="the toy_dit binary (its sections run when given)")
    ap.add_argument("--diffscope")
    ap.add_argument("--ext")
    ap.add_argument("--loop", default=os.path.join(os.path.dirname(__file__), "..", "examples",
                                                   "torch_extension", "dit_loop.py"))
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                    help="the Python loop's device (cpu: a smoke run of the driver)")
    ap.add_argument("--py-tokens", type=int, default=256)
    ap.add_argument("--py-steps", type=int, default=150)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--py-reps", type=int, default=4)
    ap.add_argument("--paired-reps", type=int, default=6,
                    help="processes per variant of the paired measurements (0: skip)")
    ap.add_argument("--paired-loops", type=int, default=8,
                    help="runs or loops per paired process, timed and untimed in A B B A order")
    ap.add_argument("--paired-variants", default="perf,perf-all,perf-all-s8,perf-all-s16",
                    help="toy_dit variants measured paired (comma-separated names of VARIANTS)")
    ap.add_argument("--py-sections", default="overhead,paired,steps,accuracy",
                    help="which Python-loop sections run (comma-separated: overhead = process "
                         "medians, paired = loop pairs, steps = step pairs, accuracy)")
    ap.add_argument("--step-pair-reps", type=int, default=3,
                    help="processes per variant of the step-paired measurement")
    ap.add_argument("--step-variants", default="host-only,perf,perf-all",
                    help="variants of the step-paired section (host-only: the A/A control; "
                         "also perf-each, perf-all-each, perf-side and the probes " +
                         ", ".join(PROBES) + ")")
    ap.add_argument("--step-pair-loops", type=int, default=16,
                    help="loops per step-paired process")
    ap.add_argument("--step-pair-run", type=int, default=4,
                    help="steps per run of the step-paired pattern (dit_loop.py --pair-run): "
                         "runs of timed steps, as in a fully timed loop, where perf mode's "
                         "chained steps cost one stamp each (1: single steps, A B B A)")
    ap.add_argument("--accuracy-variants", default="perf",
                    help="perf-mode variants of the Python loop's accuracy section "
                         "(comma-separated; perf-nochain: every step its own start)")
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="perf-mode-"))
    args = ap.parse_args()
    py_sections = set(args.py_sections.split(",")) - {""}
    if not args.toy and not (args.ext and args.diffscope):
        ap.error("nothing to run: give --toy, or --ext and --diffscope (the Python loop)")
    known_sections = {"overhead", "paired", "steps", "accuracy"}
    if not py_sections <= known_sections:
        ap.error(f"--py-sections: unknown {sorted(py_sections - known_sections)}")
    if args.step_pair_reps < 1 or args.step_pair_loops < 1 or args.step_pair_run < 1:
        ap.error("--step-pair-reps, --step-pair-loops and --step-pair-run must be at least 1")
    if 4 * args.step_pair_run > args.py_steps:
        ap.error("--step-pair-run K needs --py-steps 4K or more")
    step_variants = [v for v in args.step_variants.split(",") if v]
    unknown = sorted(set(step_variants) - (set(VARIANTS) - {"off"}) - set(PROBES))
    if unknown or not step_variants:
        ap.error(f"--step-variants: unknown {unknown} (or none given)")
    accuracy_variants = [v for v in args.accuracy_variants.split(",") if v]
    if not accuracy_variants or not all(
            VARIANTS.get(v, {}).get("DIFFSCOPE_MODE") == "perf" and
            "DIFFSCOPE_NO_GPU" not in VARIANTS[v] for v in accuracy_variants):
        ap.error(f"--accuracy-variants: not perf-mode variants with GPU timing: "
                 f"{args.accuracy_variants!r}")
    paired_variants = [v for v in args.paired_variants.split(",") if v]
    if not set(paired_variants) <= set(VARIANTS) - {"off"}:
        ap.error(f"--paired-variants: unknown {sorted(set(paired_variants) - set(VARIANTS))} "
                 f"(or 'off')")
    os.makedirs(args.out, exist_ok=True)
    dump = os.path.join(args.out, "dump.json")
    checks = []
    lines = []

    def say(line):
        lines.append(line)
        print(line, flush=True)

    def check(name, ok, detail):
        checks.append(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")

    def paired(what, unit, one_process):
        """Runs one_process(variant) -> timed/untimed - 1 for args.paired_reps processes per
        variant; reports and checks the median (the targets: 0.5% steps, 2% every scope)."""
        for variant in (paired_variants if args.paired_reps > 0 else ()):
            ratios = [one_process(variant) for _ in range(args.paired_reps)]
            med_ratio = statistics.median(ratios)
            say(f"{what}, paired in-process ({args.paired_loops} {unit} A B B A x "
                f"{args.paired_reps} processes): {variant} timed vs untimed {unit} "
                f"{100 * med_ratio:+.2f}% (per process {[round(100 * x, 2) for x in ratios]})")
            limit = 0.02 if "-all" in variant else 0.005  # every scope / stages and steps
            check(f"{what} paired {variant} timing <= {100 * limit:g}%", med_ratio <= limit,
                  f"{100 * med_ratio:+.2f}%")

    if args.toy:  # the toy_dit sections
        # 1. Overhead, toy_dit launch-bound.
        toy_run(args.toy, TOY_LAUNCH, "off", dump)  # warm-up
        med, raw = alternate(lambda v: toy_run(args.toy, TOY_LAUNCH, v, dump)[0], list(VARIANTS),
                             args.reps)
        say(f"toy_dit launch-bound {' '.join(TOY_LAUNCH)}: {args.reps} runs each, median wall ms")
        for v in VARIANTS:
            # The fastest run as well: an added cost shifts it too, run-to-run noise mostly not.
            say(f"  {v:16s} {med[v]:9.3f}  {100 * (med[v] / med['off'] - 1):+6.2f}%   fastest "
                f"{min(raw[v]):9.3f} {100 * (min(raw[v]) / min(raw['off']) - 1):+6.2f}%   runs {raw[v]}")
        check("toy_dit launch-bound perf <= 0.5%", med["perf"] <= med["off"] * 1.005,
              f"{100 * (med['perf'] / med['off'] - 1):+.2f}%")
        for v in ("perf-all", "perf-all-s8", "perf-all-s16"):
            check(f"toy_dit launch-bound {v} <= 2%", med[v] <= med["off"] * 1.02,
                  f"{100 * (med[v] / med['off'] - 1):+.2f}%")

        # 1b. Paired, within one process: toy_dit --repeat with timing paused in every other run
        #     (A B B A), so the spread between processes cancels; what the timing adds.
        def toy_paired(variant):
            env = clean_env(VARIANTS[variant])
            env["DIFFSCOPE_DUMP"] = dump
            out = run([args.toy] + TOY_LAUNCH + ["--repeat", str(args.paired_loops),
                                                 "--paired-timing"], env, f"toy_dit paired {variant}")
            halves = dict(l.split(": ") for l in out.splitlines()
                          if l.startswith(("wall_ms_timed: ", "wall_ms_untimed: ")))
            return float(halves["wall_ms_timed"]) / float(halves["wall_ms_untimed"]) - 1

        paired("toy_dit launch-bound", "runs", toy_paired)

        # 2. Accuracy against CUDA events, and profile vs perf, both configurations.
        for name, cfg in (("launch-bound", TOY_LAUNCH), ("GPU-bound", TOY_GPU)):
            for variant in ("perf-side", "perf"):  # the plain perf dump stays for the comparison below
                _, truth = toy_run(args.toy, cfg, variant, dump, step_events=True)
                perf_steps, status = dump_steps(dump)
                err = max_rel(perf_steps, truth)
                say(f"toy_dit {name}: {variant} steps vs CUDA events: max error "
                    f"{'-' if err is None else f'{100 * err:.3f}%'} over {len(truth)} steps "
                    f"(gpu_timing {status['gpu_timing']})")
                check(f"toy_dit {name} per-step {variant} vs CUDA events within 2%",
                      err is not None and err <= 0.02,
                      f"max {100 * err:.3f}%" if err is not None else "no data")
            toy_run(args.toy, cfg, "profile", dump)
            prof_steps, _ = dump_steps(dump)
            agree = max_rel(prof_steps, perf_steps)
            if agree is None or not perf_steps:
                say(f"toy_dit {name}: profile and perf dumps have different step counts")
                check(f"toy_dit {name} profile vs perf", False, "step counts differ")
                continue
            med_p, med_q = statistics.median(prof_steps), statistics.median(perf_steps)
            say(f"toy_dit {name}: profile envelopes vs perf spans: median {med_p:.4f} vs "
                         f"{med_q:.4f} ms ({100 * (med_p / med_q - 1):+.2f}%), max per-step "
                         f"{100 * agree:.2f}%")
            if name == "GPU-bound":
                check("toy_dit GPU-bound profile per-step envelopes within 3% of perf",
                      abs(med_p / med_q - 1) <= 0.03 and agree <= 0.03,
                      f"median {100 * (med_p / med_q - 1):+.2f}%, max {100 * agree:.2f}%")

        # 2c. Sampled every-scope timing against every scope timed in every step: each sampled
        #     scope's estimated total (spans of the timed calls scaled to all calls) vs the exact.
        def scope_totals(path):
            with open(path) as f:
                d = json.load(f)["diffscope"]
            return {s["path"]: s["gpu"] for s in d["scopes"] if s.get("gpu")}

        # (GPU-bound with 32 steps: four sampled steps, not one, behind each estimate.)
        toy_gpu_32 = TOY_GPU[:-1] + ["32"]
        for name, cfg in (("launch-bound", TOY_LAUNCH), ("GPU-bound", toy_gpu_32)):
            toy_run(args.toy, cfg, "perf-all", dump)
            exact = scope_totals(dump)
            toy_run(args.toy, cfg, "perf-all-s8", dump)
            sampled = scope_totals(dump)
            errs = sorted(abs(g["envelope_ms"] / exact[p]["envelope_ms"] - 1)
                          for p, g in sampled.items()
                          if g.get("estimated") and exact.get(p, {}).get("envelope_ms", 0) > 0)
            if not errs:
                say(f"toy_dit {name}: no estimated scope in the sampled dump")
                check(f"toy_dit {name} sampled estimates", False, "no estimated scope")
                continue
            say(f"toy_dit {name}: perf-all-s8 estimated scope totals vs perf-all's: median "
                f"{100 * statistics.median(errs):.2f}%, max {100 * errs[-1]:.2f}% over {len(errs)} "
                f"scopes")
            if name == "GPU-bound":
                check("toy_dit GPU-bound sampled scope totals within 3% of every step timed",
                      errs[-1] <= 0.03, f"max {100 * errs[-1]:.2f}%")

        # 2b. The same through libdiffscope_inject.so (diffscope run): toy_dit names its stream
        #     with diffscope::set_timing_stream, which must reach the injected collector.
        if args.diffscope:
            env = clean_env({"DIFFSCOPE_MODE": "perf"})
            out = run([args.diffscope, "run", "--dump", dump, "--", args.toy] + TOY_GPU +
                      ["--step-events"], env, "diffscope run toy_dit")
            truth = [float(l.split()[2]) for l in out.splitlines() if l.startswith("step_ms: ")]
            got, status = dump_steps(dump)
            err = max_rel(got, truth)
            say(f"toy_dit GPU-bound under diffscope run (perf): steps vs CUDA events: max error "
                f"{'-' if err is None else f'{100 * err:.3f}%'} (gpu_timing {status['gpu_timing']}, "
                f"mode {status['mode']})")
            check("diffscope run toy_dit perf steps vs CUDA events within 2% (stream forwarded)",
                  err is not None and err <= 0.02, f"max {100 * err:.3f}%" if err is not None else "no data")

    # 3. The Python loop, when the extension and the diffscope binary are given.
    if args.ext and args.diffscope:
        py_run(args, "off", dump)  # warm-up (kernel caches, extension load)
    if args.ext and args.diffscope and "overhead" in py_sections:
        med, raw = alternate(lambda v: py_run(args, v, dump)[0], ["off", "perf", "perf-all"],
                             args.py_reps)
        say(f"dit_loop.py launch-bound tokens={args.py_tokens} steps={args.py_steps}: "
                     f"median e2e ms")
        for v in ("off", "perf", "perf-all"):
            say(f"  {v:9s} {med[v]:9.3f}  {100 * (med[v] / med['off'] - 1):+6.2f}%   runs "
                         f"{[round(x, 3) for x in raw[v]]}")
        check("dit_loop launch-bound perf <= 0.5%", med["perf"] <= med["off"] * 1.005,
              f"{100 * (med['perf'] / med['off'] - 1):+.2f}%")
        check("dit_loop launch-bound perf-all <= 2%", med["perf-all"] <= med["off"] * 1.02,
              f"{100 * (med['perf-all'] / med['off'] - 1):+.2f}%")
    if args.ext and args.diffscope and "paired" in py_sections:
        # Paired, as for toy_dit: dit_loop.py --paired-timing times every other loop.
        def py_paired(variant):
            _, r = py_run(args, variant, dump, full=True, paired=True)
            return (statistics.median(r["e2e_timed_ms"]) /
                    statistics.median(r["e2e_untimed_ms"]) - 1)

        paired("dit_loop launch-bound", "loops", py_paired)

    if args.ext and args.diffscope and "steps" in py_sections:
        # Paired step by step; host-only first: the A/A control of the estimator. The probes
        # run without the collector: a torch.cuda.Event pair per timed step, with or without
        # a query of an old one (what perf mode's stamps and drain do), as a yardstick.
        probes = {v: PROBES[v] for v in step_variants if v in PROBES}
        if args.device != "cuda":  # CUDA events
            skip = sorted(set(probes) - PROBES_ON_CPU)
            if skip:
                say(f"(probes skipped on {args.device}: {', '.join(skip)})")
            probes = {v: k for v, k in probes.items() if v in PROBES_ON_CPU}
        pooled = {v: [] for v in step_variants if v not in PROBES or v in probes}
        # What the timed work's own calls cost on the host, per timed step (us): the probes
        # time their calls; the collector reports its mean cost per timed scope.
        call_us = {v: [] for v in pooled}
        r_step_us = {}  # per process: the median untimed step, us
        for i in range(args.step_pair_reps):
            for v in (list(pooled) if i % 2 == 0 else list(reversed(pooled))):
                if v in probes:
                    _, r = py_run(args, "off", dump, full=True, paired_steps=True,
                                  extra=["--step-probe", probes[v]])
                    if r.get("probe_call_us") is not None:
                        call_us[v].append(r["probe_call_us"])
                else:
                    _, r = py_run(args, v, dump, full=True, paired_steps=True)
                    us = timed_scope_us_per_step(dump, r)
                    if us is not None:
                        call_us[v].append(us)
                pooled[v] += step_group_ratios(r)
                r_step_us.setdefault(v, []).append(untimed_step_us(r))
        with open(os.path.join(args.out, "step_pairs.json"), "w") as f:
            json.dump(pooled, f)  # every group's ratio, for a second look
        say(f"dit_loop launch-bound, paired step by step ({args.step_pair_loops} loops x "
            f"{args.step_pair_reps} processes per variant, groups of four runs of "
            f"{args.step_pair_run} step(s) A B B A, host "
            f"time of timed over untimed steps; 10%-trimmed mean +- 2 standard errors):")
        for v, ratios in pooled.items():
            mean, se = trimmed_mean(ratios)
            step_us = statistics.median(r_step_us[v]) if r_step_us.get(v) else None
            say(f"  {v:18s} {100 * mean:+.3f}% +- {200 * se:.3f}%  median "
                f"{100 * statistics.median(ratios):+.3f}%  over {len(ratios)} groups" +
                (f"  (~{mean * step_us:.1f} us a step" if step_us else "") +
                (f"; its calls {statistics.median(call_us[v]):.1f} us" if call_us[v] else "") +
                (")" if step_us else ""))
            if v in probes:
                continue
            if v == "host-only":
                if abs(mean) > 2 * se:
                    say(f"  (the A/A control is {100 * mean:+.3f}% from zero: the figures below "
                        f"carry that bias)")
                continue
            if v not in ("perf", "perf-all"):
                continue  # reported; the checks are on the defaults
            limit = 0.02 if v == "perf-all" else 0.005
            check(f"dit_loop launch-bound step-paired {v} timing <= {100 * limit:g}% "
                  f"(upper 95% bound)", mean + 2 * se <= limit,
                  f"{100 * mean:+.3f}% +- {200 * se:.3f}%")

    if args.ext and args.diffscope and "accuracy" in py_sections:
        # Accuracy: launch-bound (with the outer pair) and GPU-bound. Chained steps (the
        # default) run from the previous step's end to their own, so their ground truth is the
        # outer pair's boundaries chained the same way (dit_loop.py's step_ms_chained); with
        # DIFFSCOPE_EXPERIMENT_PERF_CHAIN_STEPS=0 it is the inner pair, recorded inside each step.
        for variant in accuracy_variants:
            for name, gpu_bound in (("launch-bound", False), ("GPU-bound", True)):
                _, r = py_run(args, variant, dump, step_events=True, gpu_bound=gpu_bound,
                              full=True)
                truth, outer = r.get("step_ms") or [], r.get("step_ms_outer") or []
                perf_steps, status = dump_steps(dump)
                chained = "chain_steps=off" not in status.get("perf_settings", "")
                ref = (r.get("step_ms_chained") or []) if chained else truth
                ref_name = "the chained outer pairs" if chained else "the inner pair"
                # Kept per configuration (the next run writes the same names).
                for src, tag in ((dump, "dump"),
                                 (os.path.join(args.out, f"py-{variant}.json"), "result")):
                    if os.path.exists(src):
                        with open(src) as f_in, open(os.path.join(
                                args.out, f"py-accuracy-{variant}-{name}-{tag}.json"),
                                "w") as f_out:
                            f_out.write(f_in.read())
                err = max_rel(perf_steps, ref)
                pct = lambda x: "-" if x is None else f"{100 * x:.3f}%"
                line = (f"dit_loop.py {name}, {variant}: steps vs {ref_name}: max error "
                        f"{pct(err)} (median {pct(median_rel(perf_steps, ref))}) over "
                        f"{len(ref)} steps")
                if outer:
                    # The ground truth's own spread: the same steps timed by pairs a few
                    # microseconds of Python apart (inside the range, outside it).
                    line += (f"; vs the inner pair {pct(max_rel(perf_steps, truth))} (median "
                             f"{pct(median_rel(perf_steps, truth))}); vs the outer pair "
                             f"{pct(max_rel(perf_steps, outer))} (median "
                             f"{pct(median_rel(perf_steps, outer))}); inner vs outer pair "
                             f"{pct(max_rel(truth, outer))} (median "
                             f"{pct(median_rel(truth, outer))})")
                say(line)
                check(f"dit_loop {name} {variant} per-step times vs CUDA events within 2%",
                      err is not None and err <= 0.02,
                      f"max {100 * err:.3f}% vs {ref_name}" if err is not None else "no data")

    with open(os.path.join(args.out, "perf_mode.txt"), "w") as f:
        f.write("\n".join(lines + checks) + "\n")
    print("\n".join(checks))
    return 0 if all(c.startswith("PASS") for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
