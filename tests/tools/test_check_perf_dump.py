#!/usr/bin/env python3
"""Runs check_perf_dump.py on diffscope's sample dumps (must pass), on broken copies of one
(each must fail, for the expected reason), and checks that the files are laid out exactly as
Python's json.dump(indent=2) lays them out.

Usage: test_check_perf_dump.py SAMPLE_DIR   (the dumps test_perf_dump wrote)
"""
import copy
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "check_perf_dump.py")


def run_checker(path):
    p = subprocess.run([sys.executable, CHECKER, path], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def main(sample_dir):
    failures = []
    samples = sorted(f for f in os.listdir(sample_dir) if f.endswith(".json"))
    if not samples:
        print(f"no sample dumps in {sample_dir}")
        return 1
    for name in samples:
        path = os.path.join(sample_dir, name)
        rc, out = run_checker(path)
        if rc != 0:
            failures.append(f"{name}: checker rejected a diffscope dump:\n{out}")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # Same bytes as Python would write (ensure_ascii=False keeps UTF-8 as SGLang's file
        # encoding); floats here are short enough that repr() and ours agree.
        expected = json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
        if text != expected:
            failures.append(f"{name}: layout differs from json.dumps(indent=2)")

    with open(os.path.join(sample_dir, "profiled.json"), encoding="utf-8") as f:
        good = json.load(f)

    def reorder(d):
        keys = list(d)
        keys[0], keys[1] = keys[1], keys[0]
        return {k: d[k] for k in keys}

    def mutate(fn):
        d = copy.deepcopy(good)
        r = fn(d)
        return r if r is not None else d

    cases = {
        "key order": (mutate(reorder), "in that order"),
        "missing meta": (mutate(lambda d: d.pop("meta") and None), "missing key 'meta'"),
        "bad tag": (mutate(lambda d: d.update(tag="whatever")), "tag"),
        "timestamp without zone": (
            mutate(lambda d: d.update(timestamp="2025-12-18T09:54:57.458009")),
            "timestamp",
        ),
        "string duration": (
            mutate(lambda d: d["steps"][0].update(duration_ms="1.0")),
            "steps[0].duration_ms",
        ),
        "integer duration": (
            mutate(lambda d: d["steps"][0].update(duration_ms=1)),
            "must be a float",
        ),
        "step index gap": (
            mutate(lambda d: d["denoise_steps_ms"][1].update(step=5)),
            "denoise_steps_ms[1].step",
        ),
        "unrounded memory": (
            mutate(lambda d: d["memory_checkpoints"]["before_forward"].update(allocated_mb=1.234)),
            "not rounded",
        ),
        "negative total": (mutate(lambda d: d.update(total_duration_ms=-1.0)), "total_duration_ms"),
        "diffscope disagrees with steps": (
            mutate(lambda d: d["steps"][2].update(duration_ms=1.5)),
            "diffscope.stages says",
        ),
        "status without reason": (
            mutate(lambda d: d["diffscope"]["status"].update(gpu_timing=False, reason="")),
            "reason",
        ),
    }
    # With request markers the SGLang part is one request's and diffscope's tables cover all
    # of them: a stage must then lie within its range over the requests.
    def per_request(d, scale):
        named = [x for x in d["steps"] if not x["name"].startswith("denoising_step_")]
        for st in d["diffscope"]["stages"]:
            st["duration_ms"] *= 4  # four requests together
            st["host_ms"] = st["duration_ms"] if st["duration_source"] == "host" else st["host_ms"]
            if st["duration_source"] == "gpu_envelope":
                st["gpu"]["envelope_ms"] = st["duration_ms"]
        d["diffscope"]["requests"] = {
            "count": 4, "warmups": 0, "dumped": {"index": 3, "id": "3"},
            "stages": [{"name": x["name"], "count": 4, "median_ms": x["duration_ms"],
                        "min_ms": x["duration_ms"] * scale, "max_ms": x["duration_ms"] * 2}
                       for x in named]}
        return d

    def step_categories(d, off):
        for st in d["diffscope"]["steps"]:
            busy = st["gpu"]["busy_ms"]
            st["categories"] = {"gemm": busy * 0.75, "misc": busy * 0.25 + off}
        return d

    good_cases = {"one request of four": mutate(lambda d: per_request(d, 0.5)),
                  "steps by category": mutate(lambda d: step_categories(d, 0.0))}
    cases["step categories off their busy"] = (
        mutate(lambda d: step_categories(d, 0.5)), "categories do not sum to gpu.busy_ms")
    cases["request stage outside the requests' range"] = (
        mutate(lambda d: per_request(d, 1.5)), "outside the requests' range")
    # Sampled mode: the sampling object and the steps' traced flags agree.
    with open(os.path.join(sample_dir, "sampled.json"), encoding="utf-8") as f:
        sampled = json.load(f)

    def smutate(fn):
        d = copy.deepcopy(sampled)
        fn(d)
        return d

    cases["sampled: traced_steps off its indices"] = (
        smutate(lambda d: d["diffscope"]["sampling"].update(traced_steps=3)),
        "!= len(traced_indices)")
    cases["sampled: a traced index that is no step"] = (
        smutate(lambda d: d["diffscope"]["sampling"]["traced_indices"].append(9)),
        "are not steps")
    cases["sampled: a step's traced flag off the indices"] = (
        smutate(lambda d: d["diffscope"]["steps"][0].update(traced=True)),
        "traced_indices say otherwise")
    cases["sampled: no sampling object"] = (
        smutate(lambda d: d["diffscope"].pop("sampling")), "diffscope.sampling is missing")
    cases["sampled: a sampling object of the wrong type"] = (
        smutate(lambda d: d["diffscope"].update(sampling=5)), "diffscope.sampling must be")
    # Without operations traced (no GPU, no CUPTI) the status says why and the object is absent.
    good_cases["sampled without a GPU"] = smutate(lambda d: (
        d["diffscope"].pop("sampling"),
        d["diffscope"]["status"].update(gpu_timing=False, reason="no CUDA driver")))
    cases["sampled: span source off the span"] = (
        smutate(lambda d: d["diffscope"]["stages"][1]["gpu"].update(span_ms=1.0)),
        "span_ms differs")
    with tempfile.TemporaryDirectory() as tmp:
        for label, doc in good_cases.items():
            path = os.path.join(tmp, "good.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2)
            rc, out = run_checker(path)
            if rc != 0:
                failures.append(f"{label}: expected the checker to accept it, got {rc}: {out}")
        for label, (doc, reason) in cases.items():
            path = os.path.join(tmp, "bad.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2)
            rc, out = run_checker(path)
            if rc != 1 or reason not in out:
                failures.append(f"{label}: expected exit 1 mentioning {reason!r}, got {rc}: {out}")
        raw_cases = {
            "invalid UTF-8": (b'{"timestamp": "\xff"}', "UTF-8"),
            "truncated file": (open(os.path.join(sample_dir, "profiled.json"), "rb").read()[:200], "JSON"),
            "NaN": (b'{"total_duration_ms": NaN}', "JSON"),
            "not indent 2": (json.dumps(good).encode(), "indent 2"),
        }
        for label, (raw, reason) in raw_cases.items():
            path = os.path.join(tmp, "raw.json")
            with open(path, "wb") as f:
                f.write(raw)
            rc, out = run_checker(path)
            if rc != 1 or reason not in out:
                failures.append(f"{label}: expected exit 1 mentioning {reason!r}, got {rc}: {out}")

    for f in failures:
        print("FAIL:", f)
    total = len(samples) * 2 + len(good_cases) + len(cases) + len(raw_cases)
    print(f"{total - len(failures)} of {total} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
