#!/usr/bin/env python3
"""Tests `diffscope compare` and `diffscope merge` through the binary.
Usage: test_compare_cli.py DIFFSCOPE_BINARY FIXTURE_DIR WORK_DIR
  FIXTURE_DIR is tests/fixtures/compare (cases.txt, expected/*.md, the dumps).
Exit 0 when every check passes, 1 otherwise (each failure printed)."""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def run(binary, *args, cwd=None):
    p = subprocess.run([binary, *args], capture_output=True, cwd=cwd, timeout=30)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


TS_LINE = re.compile(r"^- Timestamp: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$", re.M)


def mask(text):
    return TS_LINE.sub("- Timestamp: <now>", text)


def compare_cases(binary, fixtures):
    with open(os.path.join(fixtures, "cases.txt")) as f:
        cases = [l.split() for l in f if l.strip() and not l.startswith("#")]
    for name, *files in cases:
        rc, out, err = run(binary, "compare", *files, cwd=fixtures)
        check(rc == 0 and err == "", f"compare {name}: exit 0, nothing on stderr ({rc}, {err!r})")
        check(len(TS_LINE.findall(out)) == 1, f"compare {name}: one isoformat Timestamp line")
        with open(os.path.join(fixtures, "expected", name + ".md"), encoding="utf-8") as f:
            expected = f.read()
        check(mask(out) == expected, f"compare {name}: output equals expected/{name}.md")
        # --sglang-only: exactly compare_perf.py's part, which ends at </details>.
        rc, plain, _ = run(binary, "compare", "--sglang-only", *files, cwd=fixtures)
        cut = expected[: expected.index("</details>\n") + len("</details>\n")]
        check(rc == 0 and mask(plain) == cut, f"compare --sglang-only {name}: SGLang part only")
    rc, out, _ = run(binary, "compare", "ds_base.json", "ds_new.json", cwd=fixtures)
    check("| DenoisingStage/step/attention | 500.00 | 350.00 | -30.0% | 520.00 | 365.00 | -29.8% |"
          in out, "diffscope section: busy and envelope rows with diff %")
    rc, out, _ = run(binary, "compare", "ds_base.json", "sg_new.json", cwd=fixtures)
    check("diffscope" not in out, "no diffscope section when one side is an SGLang dump")


def repeated(binary, fixtures):
    b = [f"rep_base_{i}.json" for i in (1, 2, 3)]
    n = [f"rep_new_{i}.json" for i in (1, 2, 3)]
    rc, out, err = run(binary, "compare", "--base", *b, "--new", *n, cwd=fixtures)
    with open(os.path.join(fixtures, "expected", "repeated.md"), encoding="utf-8") as f:
        check(rc == 0 and out == f.read(), "repeated runs: output equals expected/repeated.md")
    verdicts = {r.split("|")[1].strip(): r.split("|")[-2].strip() for r in out.splitlines()
                if r.startswith("| ") and not r.startswith("| Metric")}
    check(verdicts.get("**E2E Latency**") == "slower", "repeated: e2e +5% beyond spread -> slower")
    check(verdicts.get("Denoise step 0") == "faster", "repeated: step 0 -5% beyond spread -> faster")
    check(verdicts.get("DenoisingStage") == "same", "repeated: +0.1% with tight runs -> same")
    check(verdicts.get("DecodingStage") == "unsure", "repeated: noisy stage -> unsure")
    # A 10 % threshold (100 ms) covers both the difference and the spread.
    rc, out, _ = run(binary, "compare", "--rel-tol", "10", "--base", *b, "--new", *n, cwd=fixtures)
    check(rc == 0 and "| **E2E Latency** | 1000.00 | 1050.00 | +50.00 | +5.0% | 10.00 | 7.50 | same |"
          in out, "repeated --rel-tol 10: +5% with spread 17.5 <= 100 -> same")
    rc, out, _ = run(binary, "compare", "--base", b[0], "--new", n[0], cwd=fixtures)
    check(rc == 0 and "| **E2E Latency** | 1000.00 | 1050.00 | +50.00 | +5.0% | 0.00 | 0.00 | slower |"
          in out, "repeated with one run a side: no spread, threshold only")


def merge(binary, fixtures, work):
    out_path = os.path.join(work, "merged", "merged.json")
    if os.path.exists(out_path):
        os.remove(out_path)
    ins = [os.path.join(fixtures, f) for f in ("rank0.json", "rank1.json", "rank2_sglang.json")]
    rc, out, err = run(binary, "merge", "-o", out_path, *ins)
    check(rc == 0 and out == "", f"merge: exit 0 ({rc}, {err!r})")
    check("commit_hash differs" in err and "tag differs" in err, "merge: warns on commit/tag")
    with open(out_path, encoding="utf-8") as f:
        text = f.read()
    m = json.loads(text)
    check(text == json.dumps(m, indent=2), "merge: written like json.dump(indent=2)")
    check(list(m)[:9] == ["timestamp", "request_id", "commit_hash", "tag", "total_duration_ms",
                          "steps", "denoise_steps_ms", "memory_checkpoints", "meta"], "merge: key order")
    check(m["total_duration_ms"] == 1240.25, "merge: total is the max over ranks")
    check(m["steps"] == [{"name": "TextEncodingStage", "duration_ms": 30.0},
                         {"name": "DenoisingStage", "duration_ms": 960.0},
                         {"name": "DecodingStage", "duration_ms": 210.5},
                         {"name": "denoising_step_0", "duration_ms": 241.0},
                         {"name": "denoising_step_1", "duration_ms": 240.0},
                         {"name": "denoising_step_2", "duration_ms": 238.0},
                         {"name": "denoising_step_3", "duration_ms": 239.0},
                         {"name": "DecodingStage", "duration_ms": 3.0}],
          f"merge: stages by name and occurrence, max over ranks ({m['steps']})")
    check([s["duration_ms"] for s in m["denoise_steps_ms"]] == [241.0, 240.0, 238.0, 239.0]
          and [s["step"] for s in m["denoise_steps_ms"]] == [0, 1, 2, 3], "merge: steps max per index")
    mem = m["memory_checkpoints"]
    check(list(mem) == ["before_forward", "after_forward", "after_DecodingStage"]
          and mem["after_forward"] == {"allocated_mb": 210.0, "reserved_mb": 300.0,
                                       "peak_allocated_mb": 400.0, "peak_reserved_mb": 600.0},
          "merge: memory checkpoints field-wise max")
    check(m["meta"]["prompt"] == "a cat, \u00e9t\u00e9" and m["commit_hash"].startswith("0123"),
          "merge: meta and commit from the first")
    ds = m["diffscope"]
    check(ds["merged"] is True and [r["file"] for r in ds["ranks"]] == ins
          and ds["ranks"][1]["total_duration_ms"] == 1240.25
          and len(ds["ranks"][1]["denoise_steps_ms"]) == 3, "merge: per-rank values kept")
    check(ds["status"]["gpu_timing"] is False and "rank2_sglang.json" in ds["status"]["reason"],
          "merge: GPU timing false when a rank is an SGLang dump, reason names it")
    check(ds["faults"] == {"dropped_records": 3, "unbalanced_ranges": 0}, "merge: faults summed")
    p = subprocess.run([sys.executable, os.path.join(HERE, "check_perf_dump.py"), out_path],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"merge: check_perf_dump.py passes ({p.stdout.strip()})")
    leftovers = [f for f in os.listdir(os.path.dirname(out_path)) if ".tmp." in f]
    check(not leftovers, "merge: no temp file left")
    rc, out, err = run(binary, "compare", out_path, ins[0])
    check(rc == 0, "merged dump reads back through compare")


BAD = {
    "empty.json": "",
    "blank.json": "  \n\t",
    "notjson.json": "hello",
    "truncated.json": '{"total_duration_ms": 12.5, "steps": [{"name": "A", "dur',
    "truncated_lines.json": '{"steps": [\n\n{"name"',
    "array.json": "[1, 2]",
    "total_string.json": '{"total_duration_ms": "12"}',
    "total_bool.json": '{"total_duration_ms": true}',
    "total_null.json": '{"total_duration_ms": null}',
    "total_overflow.json": '{"total_duration_ms": 1e999}',
    "steps_object.json": '{"steps": {"name": "A"}}',
    "step_not_object.json": '{"steps": [3]}',
    "step_name_number.json": '{"steps": [{"name": 5, "duration_ms": 1.0}]}',
    "step_duration_string.json": '{"steps": [{"name": "A", "duration_ms": "1.0"}]}',
    "denoise_not_array.json": '{"denoise_steps_ms": 4}',
    "denoise_step_float.json": '{"denoise_steps_ms": [{"step": 0.5, "duration_ms": 1}]}',
    "memory_array.json": '{"memory_checkpoints": []}',
    "memory_value.json": '{"memory_checkpoints": {"a": {"allocated_mb": "x"}}}',
    "meta_list.json": '{"meta": []}',
    "commit_number.json": '{"commit_hash": 5}',
    "diffscope_string.json": '{"diffscope": "yes"}',
    "diffscope_scopes.json": '{"diffscope": {"scopes": [{"path": "a", "gpu": {"busy_ms": "1"}}]}}',
    "nan.json": '{"total_duration_ms": NaN}',
    "bad_utf8.json": b'{"steps": [{"name": "\xff\xfe", "duration_ms": 1}]}',
}


def bad_inputs(binary, fixtures, work):
    bad_dir = os.path.join(work, "bad")
    os.makedirs(bad_dir, exist_ok=True)
    good = os.path.join(fixtures, "sg_base.json")
    for name, content in BAD.items():
        path = os.path.join(bad_dir, name)
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
    cases = [(f"compare {n} (as new)", ["compare", good, os.path.join(bad_dir, n)], n) for n in BAD]
    cases += [(f"compare {n} (as base)", ["compare", os.path.join(bad_dir, n), good], n) for n in BAD]
    cases += [(f"compare --base {n}", ["compare", "--base", good, os.path.join(bad_dir, n),
                                       "--new", good], n) for n in ("truncated.json", "array.json")]
    cases += [("compare missing file", ["compare", good, os.path.join(bad_dir, "nope.json")], "nope.json"),
              ("compare a directory", ["compare", good, bad_dir], "bad"),
              ("compare one file", ["compare", good], "at least 2"),
              ("compare no file", ["compare"], "at least 2"),
              ("compare unknown option", ["compare", "--frobnicate", good, good], "--frobnicate"),
              ("compare --base without --new", ["compare", "--base", good], "--new"),
              ("compare --rel-tol junk", ["compare", "--rel-tol", "x", "--base", good, "--new", good], "x"),
              ("compare --abs-tol missing value", ["compare", "--base", good, "--new", good, "--abs-tol"], "--abs-tol"),
              ("merge without -o", ["merge", good], "-o"),
              ("merge without inputs", ["merge", "-o", os.path.join(bad_dir, "o.json")], "no input"),
              ("merge -o without value", ["merge", good, "-o"], "-o")]
    for what, args, needle in cases:
        rc, out, err = run(binary, *args)
        lines = err.strip("\n").split("\n")
        check(rc == 2 and out == "" and len(lines) == 1 and needle in err
              and "Traceback" not in err,
              f"{what}: exit 2, no stdout, one line naming '{needle}' ({rc}: {err.strip()!r})")
    # Merge with a bad input: an existing output stays untouched, a new one is not created.
    target = os.path.join(bad_dir, "existing.json")
    with open(target, "w") as f:
        f.write("old")
    for n in ("truncated.json", "total_string.json"):
        rc, _, err = run(binary, "merge", "-o", target, good, os.path.join(bad_dir, n))
        with open(target) as f:
            check(rc == 2 and f.read() == "old" and n in err, f"merge {n}: exit 2, output untouched")
    fresh = os.path.join(bad_dir, "fresh.json")
    rc, _, _ = run(binary, "merge", "-o", fresh, os.path.join(bad_dir, "empty.json"))
    check(rc == 2 and not os.path.exists(fresh), "merge empty input: exit 2, no output file")
    rc, _, err = run(binary, "merge", "-o", os.path.join(good, "x.json"), good)
    check(rc == 2 and "x.json" in err, f"merge to an unwritable path: exit 2 naming it ({err.strip()!r})")


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, fixtures, work = (os.path.abspath(a) for a in argv)
    os.makedirs(work, exist_ok=True)
    compare_cases(binary, fixtures)
    repeated(binary, fixtures)
    merge(binary, fixtures, work)
    bad_inputs(binary, fixtures, work)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
