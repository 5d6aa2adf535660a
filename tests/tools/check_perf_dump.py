#!/usr/bin/env python3
"""Check perf dumps against SGLang's diffusion perf-dump contract.

Usage: check_perf_dump.py [--quiet] DUMP.json [DUMP.json ...]

Written from SGLang's side of the format (what `sglang generate --perf-dump-path` writes,
what compare_perf.py and the benchmark helper read; see docs/outputs.md), not from
diffscope's C++, so it is an independent reading of the format. Exit 0 when every file passes, 1 otherwise; every problem
is printed as "FILE: reason". Standard library only.
"""
import json
import math
import re
import sys
from datetime import datetime

SGLANG_KEYS = [
    "timestamp",
    "request_id",
    "commit_hash",
    "tag",
    "total_duration_ms",
    "steps",
    "denoise_steps_ms",
    "memory_checkpoints",
    "meta",
]
TAGS = {"cli_generate", "server_perf_dump", "benchmark_dump"}
MEMORY_KEYS = ["allocated_mb", "reserved_mb", "peak_allocated_mb", "peak_reserved_mb"]
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$")
DENOISE_RE = re.compile(r"^denoising_step_(\d+)$")


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_finite_number(v):
    return is_number(v) and math.isfinite(v)


def _reject_constant(name):
    raise ValueError(f"non-JSON constant {name}")


def check_sampled(ds, bad):
    """Sampled mode: the sampling object agrees with the steps' traced flags, untraced steps
    carry no operations of their own, and every estimate has its error."""
    sm = ds.get("sampling")
    if sm is None:
        # No operation traced (no GPU, no CUPTI): the status must say why.
        st = ds.get("status") or {}
        if st.get("gpu_timing") and not st.get("reason"):
            bad("diffscope.sampling is missing from a sampled-mode dump with GPU timing "
                "and no reason")
        return
    if not isinstance(sm, dict):
        bad("diffscope.sampling must be an object in a sampled-mode dump")
        return
    idx = sm.get("traced_indices")
    if not isinstance(idx, list) or not all(isinstance(i, int) for i in idx):
        bad("diffscope.sampling.traced_indices must be a list of step indices")
        return
    for key in ("steps", "traced_steps", "switches", "launches_traced",
                "launches_untraced_estimated"):
        if not isinstance(sm.get(key), int) or sm[key] < 0:
            bad(f"diffscope.sampling.{key} must be a count")
            return
    if sm["traced_steps"] != len(idx):
        bad(f"diffscope.sampling.traced_steps {sm['traced_steps']} != len(traced_indices) "
            f"{len(idx)}")
    if sm["traced_steps"] > sm["steps"]:
        bad("diffscope.sampling.traced_steps exceeds sampling.steps")
    steps = [st for st in ds.get("steps") or [] if isinstance(st, dict)]
    if steps:
        indices = {st.get("step") for st in steps}
        if not set(idx) <= indices:
            bad(f"diffscope.sampling.traced_indices {sorted(set(idx) - indices)} are not steps")
        for st in steps:
            traced = st.get("traced")
            if not isinstance(traced, bool):
                bad(f"step {st.get('step')}: traced must be a boolean in sampled mode")
            elif traced != (st.get("step") in idx):
                bad(f"step {st.get('step')}: traced is {traced} but traced_indices say otherwise")
            elif not traced and "categories" in st:
                bad(f"step {st.get('step')}: not traced but has categories")
    for table in ("stages", "steps", "scopes"):
        for i, x in enumerate(ds.get(table) or []):
            g = x.get("gpu") if isinstance(x, dict) else None
            if isinstance(g, dict) and g.get("estimated") and not (
                    is_finite_number(g.get("error_ms")) and g["error_ms"] >= 0):
                bad(f"diffscope.{table}[{i}].gpu: an estimate without error_ms")


def check_dump(path):
    """Returns (problems, derived) for one file."""
    problems = []
    derived = {}

    def bad(msg):
        problems.append(msg)

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return [f"cannot read: {e}"], derived
    try:
        text = raw.decode("utf-8")  # strict: invalid UTF-8 fails here
    except UnicodeDecodeError as e:
        return [f"not valid UTF-8: {e}"], derived
    try:
        pairs_seen = []

        def hook(pairs):
            keys = [k for k, _ in pairs]
            if len(keys) != len(set(keys)):
                pairs_seen.append(keys)
            return dict(pairs)

        data = json.loads(text, object_pairs_hook=hook, parse_constant=_reject_constant)
    except ValueError as e:
        return [f"not valid JSON: {e}"], derived
    if pairs_seen:
        bad(f"duplicate keys in an object: {pairs_seen[0]}")
    if not isinstance(data, dict):
        return problems + ["top level is not an object"], derived

    keys = list(data.keys())
    if keys[: len(SGLANG_KEYS)] != SGLANG_KEYS:
        bad(f"keys must start with {SGLANG_KEYS} in that order, got {keys[:len(SGLANG_KEYS)]}")
    for k in SGLANG_KEYS:
        if k not in data:
            bad(f"missing key {k!r}")

    # Written with indent 2 (json.dump(report, f, indent=2)).
    lines = text.split("\n")
    if len(lines) < 2 or not lines[0] == "{" or not lines[1].startswith('  "timestamp": '):
        bad('layout is not indent 2: expected "{" then \'  "timestamp": \'')

    ts = data.get("timestamp")
    if not isinstance(ts, str) or not TIMESTAMP_RE.match(ts):
        bad(f"timestamp {ts!r} is not UTC ISO-8601 like 2025-12-18T09:54:57.458009+00:00")
    else:
        try:
            datetime.fromisoformat(ts)
        except ValueError as e:
            bad(f"timestamp {ts!r} does not parse: {e}")
    for k in ("request_id", "commit_hash"):
        if k in data and (not isinstance(data[k], str) or not data[k]):
            bad(f"{k} must be a non-empty string, got {data[k]!r}")
    if "tag" in data and data["tag"] not in TAGS:
        bad(f"tag {data['tag']!r} is not one of {sorted(TAGS)}")

    total = data.get("total_duration_ms")
    if "total_duration_ms" in data:
        if not is_finite_number(total) or total < 0:
            bad(f"total_duration_ms must be a finite number >= 0, got {total!r}")

    steps = data.get("steps")
    legacy = 0
    if "steps" in data:
        if not isinstance(steps, list):
            bad("steps is not an array")
            steps = []
        for i, s in enumerate(steps):
            if not isinstance(s, dict):
                bad(f"steps[{i}] is not an object")
                continue
            if list(s.keys()) != ["name", "duration_ms"]:
                bad(f"steps[{i}] keys must be ['name', 'duration_ms'], got {list(s.keys())}")
            if not isinstance(s.get("name"), str) or not s.get("name"):
                bad(f"steps[{i}].name must be a non-empty string")
            d = s.get("duration_ms")
            if not is_finite_number(d) or d < 0:
                bad(f"steps[{i}].duration_ms must be a finite number >= 0, got {d!r}")
            elif not isinstance(d, float):
                bad(f"steps[{i}].duration_ms must be a float, got {d!r}")
            if isinstance(s.get("name"), str) and DENOISE_RE.match(s["name"]):
                legacy += 1

    dsteps = data.get("denoise_steps_ms")
    if "denoise_steps_ms" in data:
        if not isinstance(dsteps, list):
            bad("denoise_steps_ms is not an array")
            dsteps = []
        for i, s in enumerate(dsteps):
            if not isinstance(s, dict):
                bad(f"denoise_steps_ms[{i}] is not an object")
                continue
            if list(s.keys()) != ["step", "duration_ms"]:
                bad(f"denoise_steps_ms[{i}] keys must be ['step', 'duration_ms'], got {list(s)}")
            st = s.get("step")
            if not isinstance(st, int) or isinstance(st, bool):
                bad(f"denoise_steps_ms[{i}].step must be an integer, got {st!r}")
            elif st != i:
                bad(f"denoise_steps_ms[{i}].step is {st}, expected {i} (0..N-1 in order)")
            d = s.get("duration_ms")
            if not is_finite_number(d) or d < 0:
                bad(f"denoise_steps_ms[{i}].duration_ms must be a finite number >= 0, got {d!r}")
        if legacy and legacy != len(dsteps):
            bad(f"{legacy} legacy denoising_step_<i> entries but {len(dsteps)} denoise steps")

    mem = data.get("memory_checkpoints")
    peak_gb = 0.0
    if "memory_checkpoints" in data:
        if not isinstance(mem, dict):
            bad("memory_checkpoints is not an object")
            mem = {}
        for name, m in mem.items():
            if not isinstance(m, dict):
                bad(f"memory_checkpoints[{name!r}] is not an object")
                continue
            if list(m.keys()) != MEMORY_KEYS:
                bad(f"memory_checkpoints[{name!r}] keys must be {MEMORY_KEYS}, got {list(m)}")
            for k in MEMORY_KEYS:
                v = m.get(k)
                if not is_finite_number(v) or v < 0:
                    bad(f"memory_checkpoints[{name!r}].{k} must be a finite number >= 0")
                elif round(v, 2) != v:
                    bad(f"memory_checkpoints[{name!r}].{k} = {v!r} is not rounded to 2 places")
            if is_finite_number(m.get("peak_reserved_mb")):
                peak_gb = max(peak_gb, m["peak_reserved_mb"] / 1024)

    if "meta" in data and not isinstance(data["meta"], dict):
        bad("meta is not an object")

    # What SGLang's readers derive (docs/sglang.md, sections 2 and 3), to show and sanity-check.
    if isinstance(steps, list) and is_finite_number(total):
        denoise = sum(
            s["duration_ms"]
            for s in steps
            if isinstance(s, dict)
            and isinstance(s.get("name"), str)
            and is_finite_number(s.get("duration_ms"))
            and (s["name"].endswith("DenoisingStage") or s["name"].endswith("RefinementStage"))
            and "BeforeDenoisingStage" not in s["name"]
        )
        if denoise == 0 and isinstance(dsteps, list):
            denoise = sum(
                s["duration_ms"]
                for s in dsteps
                if isinstance(s, dict) and is_finite_number(s.get("duration_ms"))
            )
        derived = {
            "e2e_s": total / 1000,
            "denoise_s": denoise / 1000,
            "peak_memory_gb": peak_gb,
            "stages": len(steps) - legacy,
            "legacy_step_entries": legacy,
            "denoise_steps": len(dsteps) if isinstance(dsteps, list) else 0,
        }

    ds = data.get("diffscope")
    if ds is not None:
        if not isinstance(ds, dict):
            bad("diffscope is not an object")
        else:
            if ds.get("schema_version") != 1:
                bad(f"diffscope.schema_version must be 1, got {ds.get('schema_version')!r}")
            status = ds.get("status")
            if not isinstance(status, dict) or not isinstance(status.get("gpu_timing"), bool):
                bad("diffscope.status.gpu_timing must be a boolean")
            elif not status["gpu_timing"] and not status.get("reason"):
                bad("diffscope.status.reason must say why GPU timing is missing")
            stages = ds.get("stages")
            if isinstance(stages, list) and isinstance(steps, list):
                named = [s for s in steps if isinstance(s, dict) and not DENOISE_RE.match(str(s.get("name")))]
                if [s.get("name") for s in stages] != [s.get("name") for s in named]:
                    bad("diffscope.stages do not match the non-legacy steps entries")
                else:
                    # With request markers the SGLang part is one request's while diffscope's
                    # tables cover every counted request: each stage must then lie within that
                    # stage's range over the requests (diffscope.requests.stages).
                    reqs = ds.get("requests") if isinstance(ds.get("requests"), dict) else {}
                    per_request = reqs.get("dumped") is not None
                    spreads = {x.get("name"): x for x in reqs.get("stages") or []
                               if isinstance(x, dict)}
                    for a, b in zip(stages, named):
                        got = b.get("duration_ms")
                        if per_request:
                            sp = spreads.get(b.get("name"))
                            if sp is None:
                                bad(f"stage {b.get('name')!r}: not in diffscope.requests.stages")
                            elif not (isinstance(got, (int, float)) and
                                      sp["min_ms"] - 1e-6 <= got <= sp["max_ms"] + 1e-6):
                                bad(f"stage {b.get('name')!r}: steps says {got}, outside the "
                                    f"requests' range {sp['min_ms']}..{sp['max_ms']}")
                        elif a.get("duration_ms") != got:
                            bad(f"stage {a.get('name')!r}: steps says {got}, "
                                f"diffscope.stages says {a.get('duration_ms')}")
                        src = a.get("duration_source")
                        if src not in ("gpu_envelope", "gpu_span", "host"):
                            bad(f"stage {a.get('name')!r}: duration_source {src!r}")
                        elif src == "gpu_span" and (
                            not isinstance(a.get("gpu"), dict)
                            or a["gpu"].get("span_ms") != a.get("duration_ms")
                        ):
                            bad(f"stage {a.get('name')!r}: gpu_span source but span_ms differs")
                        elif src == "gpu_envelope" and (
                            not isinstance(a.get("gpu"), dict)
                            or a["gpu"].get("envelope_ms") != a.get("duration_ms")
                        ):
                            bad(f"stage {a.get('name')!r}: gpu_envelope source but envelope differs")
                        elif src == "host" and a.get("host_ms") != a.get("duration_ms"):
                            bad(f"stage {a.get('name')!r}: host source but host_ms differs")
            # A step's busy by kernel category (profile mode): numbers summing to its busy.
            for st in ds.get("steps") or []:
                cats = st.get("categories") if isinstance(st, dict) else None
                if cats is None:
                    continue
                gpu = st.get("gpu")
                if not isinstance(cats, dict) or not all(
                    isinstance(v, (int, float)) and v >= 0 for v in cats.values()
                ):
                    bad(f"step {st.get('step')}: categories must be an object of ms")
                elif not isinstance(gpu, dict) or abs(
                    sum(cats.values()) - gpu.get("busy_ms", 0)
                ) > 1e-6 * max(1.0, gpu.get("busy_ms", 0)):
                    bad(f"step {st.get('step')}: categories do not sum to gpu.busy_ms")
            if isinstance(status, dict) and status.get("mode") == "sampled":
                check_sampled(ds, bad)
            faults = ds.get("faults")
            if not isinstance(faults, dict) or not all(
                isinstance(v, int) and v >= 0 for v in faults.values()
            ):
                bad("diffscope.faults must be an object of counts")
    return problems, derived


def main(argv):
    quiet = "--quiet" in argv
    files = [a for a in argv if a != "--quiet"]
    if not files:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    failed = False
    for path in files:
        problems, derived = check_dump(path)
        if problems:
            failed = True
            for p in problems:
                print(f"{path}: {p}")
        elif not quiet:
            print(f"{path}: ok {json.dumps(derived)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
