#!/usr/bin/env python3
"""Check Chrome trace event JSON files for what Perfetto and chrome://tracing need.

Usage: check_chrome_trace.py TRACE.json [...]

Checks: the object form ("traceEvents" array, optional "displayTimeUnit"), the fields each
phase requires (X: name, ts, dur >= 0; M: known name + args; s/f: id, ts, cat, and "bp":"e"
on f; i: scope), integer pid/tid, complete events that nest properly on each thread (Perfetto
drops slices that overlap partially), every flow start matched by exactly one end with the
same id, cat and name, and the categories SGLang's kernel ranking reads. ts need not be
monotonic. Exit 0 when every file passes, 1 otherwise. Standard library only.
"""
import json
import math
import sys
from collections import defaultdict

METADATA = {"process_name", "process_labels", "process_sort_index", "thread_name", "thread_sort_index"}


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check(path):
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (OSError, ValueError) as e:
        return [f"not valid JSON/UTF-8: {e}"], {}
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        return ["top level must be an object with a traceEvents array"], {}
    if data.get("displayTimeUnit", "ms") not in ("ms", "ns"):
        problems.append("displayTimeUnit must be 'ms' or 'ns'")
    events = data["traceEvents"]
    slices = defaultdict(list)
    flows = {"s": defaultdict(list), "f": defaultdict(list)}
    named_pids, named_tids = set(), set()
    ranking = defaultdict(float)
    for i, e in enumerate(events):
        where = f"traceEvents[{i}]"
        if not isinstance(e, dict):
            problems.append(f"{where} is not an object")
            continue
        ph = e.get("ph")
        if not isinstance(e.get("name"), str):
            problems.append(f"{where} has no string name")
        for k in ("pid", "tid"):
            if not isinstance(e.get(k), int) or isinstance(e.get(k), bool):
                problems.append(f"{where}.{k} must be an integer")
        if ph == "M":
            if e.get("name") not in METADATA or not isinstance(e.get("args"), dict):
                problems.append(f"{where}: metadata event needs a known name and args")
            elif e["name"] == "process_name":
                named_pids.add(e.get("pid"))
            elif e["name"] == "thread_name":
                named_tids.add((e.get("pid"), e.get("tid")))
        elif ph == "X":
            if not num(e.get("ts")) or not num(e.get("dur")) or e["dur"] < 0:
                problems.append(f"{where}: complete event needs numeric ts and dur >= 0")
                continue
            if "args" in e and not isinstance(e["args"], dict):
                problems.append(f"{where}.args must be an object")
            slices[(e.get("pid"), e.get("tid"))].append((e["ts"], e["ts"] + e["dur"], e["name"]))
            if e.get("cat") in ("kernel", "gpu_memcpy"):
                ranking[e["name"]] += e["dur"]
        elif ph in ("s", "f"):
            if "id" not in e or not num(e.get("ts")) or not isinstance(e.get("cat"), str):
                problems.append(f"{where}: flow event needs id, ts and cat")
                continue
            if ph == "f" and e.get("bp") != "e":
                problems.append(f"{where}: flow end should bind to its enclosing slice (bp 'e')")
            flows[ph][(e["cat"], e["name"], e["id"])].append(e)
        elif ph == "i" or ph == "I":
            if not num(e.get("ts")) or e.get("s", "t") not in ("g", "p", "t"):
                problems.append(f"{where}: instant event needs ts and scope g/p/t")
        else:
            problems.append(f"{where}: unexpected phase {ph!r}")
    # Complete events on one track must nest (or be disjoint).
    for track, items in slices.items():
        if track[0] not in named_pids:
            problems.append(f"pid {track[0]} has events but no process_name")
        if track not in named_tids:
            problems.append(f"track {track} has events but no thread_name")
        stack = []
        for start, end, name in sorted(items, key=lambda x: (x[0], -x[1])):
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack and end > stack[-1][1]:
                problems.append(f"track {track}: {name!r} overlaps {stack[-1][2]!r} without nesting")
            stack.append((start, end, name))
    for key in set(flows["s"]) | set(flows["f"]):
        if len(flows["s"].get(key, [])) != 1 or len(flows["f"].get(key, [])) != 1:
            problems.append(f"flow {key}: {len(flows['s'].get(key, []))} starts, "
                            f"{len(flows['f'].get(key, []))} ends (need exactly one each)")
    top = sorted(ranking.items(), key=lambda kv: -kv[1])[:3]
    info = {"events": len(events), "flows": len(flows["s"]), "top": [[n, round(d / 1000, 3)] for n, d in top]}
    return problems, info


def main(files):
    if not files:
        print("usage: check_chrome_trace.py TRACE.json [...]", file=sys.stderr)
        return 2
    failed = False
    for path in files:
        problems, info = check(path)
        for p in problems:
            print(f"{path}: {p}")
        if problems:
            failed = True
        else:
            print(f"{path}: ok {json.dumps(info)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
