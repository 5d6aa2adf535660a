#!/usr/bin/env python3
"""Old against new on one machine: the collector's micro-benchmarks of two builds, run in
alternation so that both see the same machine state, and the median of each figure.

    bench/old_vs_new.py --old OLD_BUILD --new NEW_BUILD [--rounds 5] [--programs A,B]

OLD_BUILD and NEW_BUILD are build trees with the benchmarks built (bench_collector_gpu,
bench_launch_path; e.g. `git archive <commit> | tar -x -C old`, then the usual configure with
-DDIFFSCOPE_BUILD_BENCHMARKS=ON). A figure is a line that ends in a number; the label is the
rest of the line. Prints each round's raw output to stderr and a table of medians (old, new,
new - old, and the spread of each side as min-max) to stdout. Figures go to BENCHMARKS.md with
date, commits, machine and command.
"""
import argparse
import re
import statistics
import subprocess
import sys

PROGRAMS = [("bench_collector_gpu", []), ("bench_launch_path", [])]
NUMBER_AT_END = re.compile(r"^(.*?)\s+(-?\d+(?:\.\d+)?)\s*$")


def figures(text, program):
    """{label: value} of the lines that end in a number (multi-column lines: each column)."""
    out = {}
    header = None
    for line in text.splitlines():
        cols = line.split()
        if program == "bench_launch_path":
            # A table: "evict KiB  trace  timer ns  launch ns  net ns"; rows are numbers.
            if cols and cols[0] == "evict":
                header = ["timer ns", "launch ns", "net ns"]
                continue
            if header and len(cols) == 5:
                for name, value in zip(header, cols[2:]):
                    out[f"launch path, evict {cols[0]} KiB, trace {cols[1]}: {name}"] = float(value)
            continue
        m = NUMBER_AT_END.match(line)
        if m and not line.startswith("bench_"):
            out[f"{program}: {m.group(1).strip()}"] = float(m.group(2))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--programs", default=",".join(p for p, _ in PROGRAMS),
                    help="comma-separated subset of the benchmarks")
    a = ap.parse_args()
    programs = [(p, args) for p, args in PROGRAMS if p in a.programs.split(",")]
    values = {"old": {}, "new": {}}
    for r in range(a.rounds):
        # A B B A: neither side always runs first.
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for side in order:
            build = a.old if side == "old" else a.new
            for program, args in programs:
                p = subprocess.run([f"{build}/bench/{program}", *args], capture_output=True,
                                   text=True)
                print(f"==== round {r} {side} {program} (exit {p.returncode})\n{p.stdout}",
                      file=sys.stderr)
                if p.returncode != 0:
                    print(p.stderr, file=sys.stderr)
                    continue
                for label, v in figures(p.stdout, program).items():
                    values[side].setdefault(label, []).append(v)
    print(f"{'figure':<72} {'old':>9} {'new':>9} {'new-old':>9}  old range / new range")
    for label in values["new"]:
        old, new = values["old"].get(label, []), values["new"][label]
        if not old:
            continue
        mo, mn = statistics.median(old), statistics.median(new)
        print(f"{label[:72]:<72} {mo:>9.1f} {mn:>9.1f} {mn - mo:>+9.1f}  "
              f"{min(old):.1f}-{max(old):.1f} / {min(new):.1f}-{max(new):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
