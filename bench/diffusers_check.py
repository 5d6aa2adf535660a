#!/usr/bin/env python3
"""Checks one `diffscope run` of examples/diffusers/flux_like.py: the dump's structure against
what the example pushes, its per-step times against the example's own (`step_ms <i> <ms>`
lines from --step-events: CUDA events on a GPU, the host clock on a CPU), and the size of
what a user reads.

  python3 bench/diffusers_check.py --dump perf.json --log run.log [--steps 28]
      [--summary-max 100] [--compare compare.md --compare-max 80] [--scan FILE ...]

--log is the run's merged stdout and stderr (the example's lines and diffscope's summary).
Prints the per-step table, then one line per check, PASS / FAIL, and last one line of figures
(--brief: the failed checks and that line). A dump's kernel entries may keep the symbol CUPTI
reported (`mangled`); every name a user reads must be demangled.
Exit 0 when nothing failed, 1 when a check failed, 2 on unreadable input.
"""

import argparse
import json
import re
import statistics
import sys

STAGES = ["InputValidationStage", "TextEncodingStage", "LatentPreparationStage",
          "TimestepPreparationStage", "DenoisingStage", "DecodingStage"]
STEP_PATH = "DenoisingStage/denoising_loop/denoise_step"
# An Itanium-ABI mangled name (what CUPTI reports for C++ kernels): _Z, then a nested name,
# a length-prefixed one, or a special name.
MANGLED = re.compile(r"(?<![A-Za-z0-9_])_Z[NLZST0-9][A-Za-z0-9_]*")


def fail_input(msg):
    print(f"diffusers_check.py: {msg}", file=sys.stderr)
    sys.exit(2)


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        fail_input(f"{path}: {e.strerror}")


def summary_lines(log):
    """The lines of diffscope's console summary in the run's log: from its header to the end
    (the gate's verdict line excluded)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^diffscope \S+ summary - mode:", line):
            return [l for l in lines[i:] if not l.startswith("diffscope gate:")]
    return []


def check(args):
    results = []  # (verdict, text)
    facts = {}  # for --brief

    def verdict(ok, text):
        results.append(("PASS" if ok else "FAIL", text))

    try:
        dump = json.loads(read_text(args.dump))
    except json.JSONDecodeError as e:
        fail_input(f"{args.dump}: not JSON ({e})")
    if not isinstance(dump, dict) or not isinstance(dump.get("diffscope"), dict):
        fail_input(f"{args.dump}: not a diffscope perf dump (no diffscope object)")
    ds = dump["diffscope"]
    log = read_text(args.log)
    status = ds.get("status") or {}
    mode = status.get("mode", "?")
    gpu = bool(status.get("gpu_timing"))
    print(f"{args.dump}: mode {mode}, GPU timing {'on' if gpu else 'off: ' + str(status.get('reason'))}")
    if args.require_gpu:
        verdict(gpu, f"GPU timing: {'on' if gpu else 'off (' + str(status.get('reason')) + ')'}")

    # Structure: stages, loop, steps, module scopes.
    stages = [s.get("name") for s in dump.get("steps") or []]
    verdict(stages == STAGES, f"stages: {len(stages)} ({' '.join(stages)})"
            + ("" if stages == STAGES else f"; expected {' '.join(STAGES)}"))
    events = {}
    for m in re.finditer(r"^step_ms (\d+) ([0-9.eE+-]+)\s*$", log, re.M):
        events[int(m.group(1))] = float(m.group(2))
    steps = {s["step"]: s["duration_ms"] for s in dump.get("denoise_steps_ms") or []}
    expect = args.steps if args.steps is not None else len(events)
    verdict(len(steps) == expect and sorted(steps) == list(range(expect)),
            f"denoise steps: {len(steps)} in the dump, {expect} expected")
    scopes = ds.get("scopes") or []
    paths = {s.get("path", "") for s in scopes}
    for want in ("DenoisingStage/denoising_loop", STEP_PATH, STEP_PATH + "/predict_noise",
                 STEP_PATH + "/scheduler_step", STEP_PATH + "/predict_noise/transformer"):
        found = any(p == want or p.endswith("/" + want) for p in paths)  # under request/
        verdict(found, f"scope {want}: {'found' if found else 'missing'}")
    modules = [s for s in scopes if s.get("name", "").startswith("transformer.")]
    facts["scopes"] = f"{len(scopes)} scopes ({len(modules)} transformer.*)"
    verdict(len(modules) > 0, f"module scopes: {len(modules)} transformer.* of {len(scopes)} scopes")
    shaped = [s["name"] for s in scopes if " in=" in s.get("name", "")]
    verdict(not shaped, f"shapes stripped from range names: {len(shaped)} scopes keep ' in='"
            + (f" (first: {shaped[0][:80]})" if shaped else ""))
    if gpu and mode == "profile":
        timed = [s for s in modules if (s.get("gpu") or {}).get("kernels", 0) > 0]
        verdict(len(timed) > 0 and ds.get("kernels_total", 0) > 0,
                f"kernels attributed: {ds.get('kernels_total', 0)} in all, "
                f"{len(timed)} module scopes with kernels")
    faults = {k: v for k, v in (ds.get("faults") or {}).items() if v}
    verdict(not faults, "faults: " + (", ".join(f"{k}={v}" for k, v in faults.items()) or "none"))

    # Per-step times against the example's own.
    if not events:
        verdict(False, "step_ms lines: none in the log (run the example with --step-events)")
    else:
        rows = []
        print(f"{'step':>4} {'example ms':>11} {'dump ms':>11} {'diff %':>8}")
        for i in sorted(events):
            ev, got = events[i], steps.get(i)
            rel = None if got is None or ev <= 0 else abs(got - ev) / ev * 100
            if rel is not None:
                rows.append(rel)
            print(f"{i:>4} {ev:>11.4f} {got if got is not None else float('nan'):>11.4f} "
                  f"{rel if rel is not None else float('nan'):>8.3f}")
        if rows:
            med, worst = statistics.median(rows), max(rows)
            clock = "CUDA events" if gpu else "host clock"
            facts["steps"] = (f"steps {len(steps)}/{expect}: median {med:.3f}% (max {worst:.3f}%) "
                              f"off {clock}")
            verdict(med <= args.tolerance_pct,
                    f"steps against {clock}: median |dump - example| / example {med:.3f}% "
                    f"(max {worst:.3f}%, {len(rows)} steps; limit {args.tolerance_pct}%)")
        else:
            verdict(False, "steps against the example: no step in both")

    # What a user reads.
    summ = summary_lines(log)
    facts["summary"] = f"summary {len(summ)} lines"
    verdict(len(summ) <= args.summary_max,
            f"summary: {len(summ)} lines (target <= {args.summary_max})")
    if args.compare:
        n = len(read_text(args.compare).splitlines())
        facts["compare"] = f"compare {n} lines"
        verdict(n <= args.compare_max, f"compare: {n} lines (target <= {args.compare_max})")
    # A kernel entry keeps the symbol CUPTI reported as "mangled", by design; its name must not.
    listed = [{k: v for k, v in e.items() if k != "mangled"} if isinstance(e, dict) else e
              for e in ds.get("kernels") or []]
    texts = {"dump": json.dumps(listed) + json.dumps(ds.get("hotspots") or {}),
             "summary": "\n".join(summ)}
    for path in args.scan or []:
        texts[path] = read_text(path)
    mangled = {k: len(set(MANGLED.findall(v))) for k, v in texts.items()}
    facts["mangled"] = f"mangled names {sum(mangled.values())}"
    verdict(not any(mangled.values()), "mangled names: " + ", ".join(
        f"{n} in {k}" for k, n in mangled.items()) + " (target 0)")

    failed = [text for v, text in results if v == "FAIL"]
    for v, text in results:
        if not args.brief or v == "FAIL":
            print(f"{v} {text}")
    print(f"{mode}: {'FAIL' if failed else 'PASS'} ({len(results) - len(failed)}/"
          f"{len(results)} checks); stages {len(stages)}; "
          + "; ".join(facts[k] for k in ("steps", "scopes", "summary", "compare", "mangled")
                      if k in facts))
    return 1 if failed else 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dump", required=True, help="the perf dump `diffscope run --dump` wrote")
    p.add_argument("--log", required=True, help="the run's stdout and stderr")
    p.add_argument("--steps", type=int, help="denoising steps expected (default: as many as "
                   "step_ms lines)")
    p.add_argument("--tolerance-pct", type=float, default=1.0,
                   help="median per-step difference allowed, %% (default 1)")
    p.add_argument("--require-gpu", action="store_true", help="fail without GPU timing")
    p.add_argument("--summary-max", type=int, default=100)
    p.add_argument("--compare", help="a `diffscope compare` output of two runs, to count")
    p.add_argument("--compare-max", type=int, default=80)
    p.add_argument("--scan", nargs="*", help="more outputs to scan for mangled kernel names")
    p.add_argument("--brief", action="store_true", help="after the step table, only the "
                   "failed checks and the line of figures")
    return check(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
