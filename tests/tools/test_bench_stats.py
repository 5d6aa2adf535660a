#!/usr/bin/env python3
"""The estimators of the GPU benchmark drivers (bench/perf_mode.py) and the whole-process
report (bench/process_cost.py), on synthetic data: their figures go into BENCHMARKS.md, so what
they compute is tested like the library's.

    test_bench_stats.py BENCH_DIR
Exit 0 when every check passes, 1 otherwise."""
import argparse
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else
                os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from perf_mode import step_group_ratios, trimmed_mean  # noqa: E402 (after the path)
import process_cost  # noqa: E402

failures = []


def check(what, ok):
    if not ok:
        failures.append(what)
    print(f"{'ok  ' if ok else 'FAIL'} {what}")


def near(a, b, tol=1e-12):
    return abs(a - b) <= tol


pattern = [i % 4 in (0, 3) for i in range(10)]
# Timed steps (0, 3, 4, 7) take 1.1 ms, untimed ones 1.0 ms: every group reads +10%; the last
# two steps (8, 9) make no whole group and are left out.
loop = [1.1 if t else 1.0 for t in pattern]
r = step_group_ratios({"step_timed": pattern, "step_host_ms": [loop, loop]})
check("two loops of ten steps give two whole groups each", len(r) == 4)
check("each group reads timed over untimed minus 1", all(near(x, 0.1) for x in r))

# Linear drift within a group cancels (A B B A): steps 1.0, 1.1, 1.2, 1.3 with no timing cost.
drift = {"step_timed": pattern[:4], "step_host_ms": [[1.0, 1.1, 1.2, 1.3]]}
check("a linear drift within a group cancels", near(step_group_ratios(drift)[0], 0.0))

try:
    step_group_ratios({"step_timed": [False, True, True, False], "step_host_ms": [[1] * 4]})
    check("a pattern other than A B B A is refused", False)
except RuntimeError:
    check("a pattern other than A B B A is refused", True)

# Runs of K steps (dit_loop.py --pair-run K): groups of 4K, K timed, 2K untimed, K timed.
run4 = [(i // 4) % 4 in (0, 3) for i in range(36)]
loop4 = [1.05 if t else 1.0 for t in run4]
r4 = step_group_ratios({"step_timed": run4, "step_host_ms": [loop4]})
check("runs of four: two whole groups of sixteen in 36 steps", len(r4) == 2)
check("runs of four: each group reads timed over untimed minus 1", all(near(x, 0.05) for x in r4))
ramp = [1.0 + 0.01 * i for i in range(16)]  # linear drift across a group of runs
check("runs of four: a linear drift within a group cancels",
      near(step_group_ratios({"step_timed": run4[:16], "step_host_ms": [ramp]})[0], 0.0))
try:
    step_group_ratios({"step_timed": [True, True, False, True] * 4, "step_host_ms": [[1] * 16]})
    check("a broken run pattern is refused", False)
except RuntimeError:
    check("a broken run pattern is refused", True)

# The trimmed mean ignores the lowest and highest 10%: a host stall in one step says nothing
# about the timing.
xs = [0.01] * 18 + [5.0, -5.0]
mean, se = trimmed_mean(xs)
check("the 10%-trimmed mean drops one outlier each side of twenty", near(mean, 0.01))
check("identical values give a zero standard error", near(se, 0.0))

# Its standard error: the winsorised standard deviation over (1 - 2 * 0.1) * sqrt(n).
ys = list(range(10))  # winsorised: 1, 1, 2, ..., 8, 8
mean, se = trimmed_mean(ys)
wins = [1, 1, 2, 3, 4, 5, 6, 7, 8, 8]
m = sum(wins) / 10
sd = math.sqrt(sum((w - m) ** 2 for w in wins) / 9)
check("the trimmed mean of 0..9 is 4.5", near(mean, 4.5))
check("the standard error comes from the winsorised values", near(se, sd / (0.8 * math.sqrt(10))))

try:
    trimmed_mean([1.0])
    check("one value is too few for a standard error", False)
except ValueError:
    check("one value is too few for a standard error", True)

# process_cost.py's report: rows in a fixed order whatever --variants' order, medians and
# spreads over processes, sampled's added time against torch.profiler's, profile's against
# records-only's.
loops = {"plain": [100, 102, 98], "perf": [101, 101, 100], "sampled": [103, 101, 102],
         "profile": [125, 124, 126], "records": [120, 122, 119],
         "torch_profiler": [160, 150, 155]}
runs = [{"variant": v, "rep": i, "ok": True, "e2e_ms": x, "device": "cuda"}
        for v, xs in loops.items() for i, x in enumerate(xs)]
runs.append({"variant": "records", "rep": 3, "ok": False, "rc": 1, "log": "x.log"})
args = argparse.Namespace(workload="dit", small=False, repeat=3, reps=3,
                          variants=["torch_profiler", "records", "profile", "plain", "sampled",
                                    "perf"])
text = process_cost.report(args, runs)
rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")][1:]
check("the report's rows: plain, perf, sampled, profile, records, torch_profiler",
      rows == ["plain", "perf", "sampled", "profile", "records", "torch_profiler"])
check("paused has no row when it was not run", "paused" not in text)
check("a row shows the median, the spread and the change against plain",
      "| sampled | 3 | 102.00 | 101.00-103.00 (2.0%) | +2.00 ms (+2.0%) | 0.036 |" in text)
check("a failed process is counted beside its variant", "| records | 3 (1 failed) | 120.00 |" in text)
check("sampled's added time as a share of torch.profiler's",
      "sampled added +2.00 ms, 0.036 of torch.profiler's +55.00 ms" in text)
check("full profile's added time as a multiple of records-only's",
      "profile added +25.00 ms, 1.25x records-only's +20.00 ms" in text)
args.variants = ["plain", "paused", "profile"]
text = process_cost.report(args, [r for r in runs if r["variant"] in ("plain", "profile")] +
                          [{"variant": "paused", "rep": 0, "ok": False, "rc": 1, "log": "x.log"}])
check("paused has a row when it was run (its one process failed)", "| paused | 0 (1 failed) |" in text)
check("a missing variant leaves its line without a figure",
      "sampled vs torch.profiler: - (needs plain, sampled and torch_profiler)" in text and
      "full profile vs records only: - (needs plain, profile and records)" in text)
check("the default variants: all but paused",
      process_cost.DEFAULT_VARIANTS ==
      ["plain", "perf", "sampled", "profile", "records", "torch_profiler"])

sys.exit(1 if failures else 0)
