#!/usr/bin/env python3
"""Tests `diffscope compare` and `diffscope merge` through the binary, and the input rules of
every reader (compare, merge --summary, hotspots: docs/outputs.md, "Reading inputs") against
missing, directory, empty, truncated, deep, huge, binary, FIFO, BOM and stdin input.
Usage: test_compare_cli.py DIFFSCOPE_BINARY FIXTURE_DIR WORK_DIR
  FIXTURE_DIR is tests/fixtures/compare (cases.txt, expected/*.md, the dumps); the hotspots
  fixtures beside it supply a trace.
Exit 0 when every check passes, 1 otherwise (each failure printed)."""
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from layerwise_dump import layerwise_dump  # noqa: E402
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def run(binary, *args, cwd=None):
    p = subprocess.run([binary, *args], capture_output=True, cwd=cwd, timeout=30)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


# Runs a command and writes its peak RSS (KiB) to a file. A child's peak RSS counts what it
# held before exec too, and a child of this (large) script starts with a copy of it: the
# command is started from this small process instead.
MEASURER = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
"""


def run_measured(argv, stdin_data=None, timeout=20):
    """Runs argv with stdin fed from bytes (or an iterable of chunks, written by a thread);
    returns (rc, stdout, stderr, peak RSS in MiB, seconds). rc is -N for signal N and None
    when it was killed at the timeout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile() as rss:
        start = time.monotonic()
        p = subprocess.Popen([sys.executable, "-c", MEASURER, rss.name, *argv], stdout=out,
                             stderr=err, start_new_session=True,
                             stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)

        def feed():
            chunks = [stdin_data] if isinstance(stdin_data, bytes) else stdin_data
            try:
                for c in chunks:
                    p.stdin.write(c)
                p.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the reader stopped early, as it should on bad input

        if stdin_data is not None:
            threading.Thread(target=feed, daemon=True).start()
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc = None
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        kib = rss.read().decode() or "0"
        return (rc, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                int(kib) / 1024, seconds)


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
        # --sglang-only: exactly compare_perf.py's part, which ends at </details> (and starts
        # after our note on mixed timings, which goes to stderr there).
        rc, plain, err = run(binary, "compare", "--sglang-only", *files, cwd=fixtures)
        cut = expected[expected.index("### Performance Comparison Report"):
                       expected.index("</details>\n") + len("</details>\n")]
        check(rc == 0 and mask(plain) == cut, f"compare --sglang-only {name}: SGLang part only")
        noted = expected.startswith("> **Note:**")
        check(("note: the stage durations are different quantities" in err) == noted,
              f"compare --sglang-only {name}: the timing note on stderr exactly when mixed")
    rc, out, _ = run(binary, "compare", "ds_base.json", "ds_new.json", cwd=fixtures)
    check("| DenoisingStage/step/attention | 500.00 | 350.00 | -30.0% | 520.00 | 365.00 | -29.8% |"
          in out, "diffscope section: busy and envelope rows with diff %")
    rc, out, _ = run(binary, "compare", "ds_base.json", "sg_new.json", cwd=fixtures)
    check("#### 3. diffscope" not in out, "no diffscope section when one side is an SGLang dump")


def section3_labels(out, title):
    """The Scope cells of the section 3 table that follows `title`."""
    lines = out[out.index(title):].splitlines()[3:]
    cells = []
    for l in lines:
        if not l.startswith("| "):
            break
        cells.append(l[2:l.index(" | ")])
    return cells


def section3_rows(out):
    """The rows of the first section 3 table: [scope, base busy, new busy, ...] cells."""
    lines = out[out.index("#### 3. diffscope"):].splitlines()[3:]
    rows = []
    for l in lines:
        if not l.startswith("| "):
            break
        rows.append([c.strip() for c in l.strip("|").split(" | ")])
    return rows


def layerwise(binary, work):
    """Two dumps of a layerwise model (~300 scopes whose names repeat their parents'): short,
    distinct rows in section 3 and in merge's summary."""
    base, new = os.path.join(work, "lw_base.json"), os.path.join(work, "lw_new.json")
    json.dump(layerwise_dump(), open(base, "w"))
    json.dump(layerwise_dump(scale=lambda i: 1.0 + (i % 5) * 0.1), open(new, "w"))
    rc, out, err = run(binary, "compare", base, new)
    check(rc == 0, f"layerwise compare: exit 0 ({err!r})")
    # By default the 20 scopes whose busy time changed most, largest change first, and a line
    # that says how many more were timed (304: vae.decoder ran no GPU work).
    rows = section3_rows(out)
    changes = [abs(float(r[2]) - float(r[1])) for r in rows]
    check(len(rows) == 20 and all(a >= b - 0.011 for a, b in zip(changes, changes[1:])),
          f"layerwise compare: 20 rows by absolute change ({len(rows)})")
    check("\n284 more scopes timed on either side changed less: `diffscope compare --scopes all` "
          "lists them.\n" in out, "layerwise compare: the 'more' line")
    rc, five, _ = run(binary, "compare", "--scopes", "5", base, new)
    check(rc == 0 and section3_rows(five) == rows[:5] and "299 more scopes" in five,
          "layerwise compare --scopes 5: the first five")
    for bad in ("0", "x", "-1", ""):
        rc, o, e = run(binary, "compare", "--scopes", bad, base, new)
        check(rc == 2 and o == "" and "--scopes" in e, f"compare --scopes {bad!r}: exit 2 ({e!r})")
    rc, o, e = run(binary, "compare", "--scopes", "5", "--base", base, "--new", new)
    check(rc == 2 and "--scopes" in e, f"compare --scopes with --base/--new: exit 2 ({e!r})")
    rc, out, err = run(binary, "compare", "--scopes", "all", base, new)
    check(rc == 0 and "more scopes" not in out, f"layerwise compare --scopes all ({err!r})")
    cells = section3_labels(out, "#### 3. diffscope")
    check(len(cells) == 304 and len(set(cells)) == len(cells),
          f"layerwise compare: distinct scope rows ({len(cells)}, {len(set(cells))} distinct)")
    check(all(len(c) <= 100 for c in cells), "layerwise compare: labels at most 100 columns")
    check(any(c.endswith("/transformer.transformer_blocks.3/.attn") for c in cells),
          "layerwise compare: names relative to their parent's")
    # Perf mode timing stages and steps: only those, not ~300 rows of untimed scopes.
    pbase, pnew = os.path.join(work, "lw_perf_base.json"), os.path.join(work, "lw_perf_new.json")
    json.dump(layerwise_dump(mode="perf"), open(pbase, "w"))
    json.dump(layerwise_dump(mode="perf", scale=lambda i: 1.0 + (i % 3) * 0.1), open(pnew, "w"))
    rc, out, err = run(binary, "compare", pbase, pnew)
    rows = section3_rows(out)
    check(rc == 0 and sorted(r[0] for r in rows) ==
          ["DecodingStage", "DenoisingStage", "DenoisingStage/denoising_loop/denoise_step"]
          and "more scopes" not in out, f"perf-mode compare: stages and steps only ({rows})")
    check(len(out.splitlines()) < 60, f"perf-mode compare: {len(out.splitlines())} lines")
    ranks = [os.path.join(work, f"lw_rank{r}.json") for r in (0, 1)]
    for r, path in enumerate(ranks):
        json.dump(layerwise_dump(rank=r, comm=True), open(path, "w"))
    rc, out, err = run(binary, "merge", "--summary", *ranks)
    check(rc == 0, f"layerwise merge --summary: exit 0 ({err!r})")
    table = out[out.index("communication per scope"):].splitlines()[1:]
    col = table[0].index("  rank") + 2
    labels = [l[2:col].rstrip().replace(" [attention]", "") for l in table[1:]
              if l.startswith("  ") and l[2:col].strip()]
    check(len(labels) == 26 * 5 and len(set(labels)) == len(labels)
          and all(len(l) <= 60 for l in labels),
          f"layerwise merge --summary: distinct comm scope rows ({len(labels)}, {len(set(labels))})")
    check(any(l.endswith("/.attn/.to_q") for l in labels),
          "layerwise merge --summary: names relative to their parent's")


def kernel_rows(out, title):
    """The first cells of the kernel table after `title`: kernel labels and family names."""
    lines = out[out.index(title):].splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("| Kernel |")) + 2
    cells = []
    for l in lines[start:]:
        if not l.startswith("| "):
            break
        cells.append(l[2:l.index(" | ")])
    return cells


def kernel_diff(binary, fixtures, work):
    """The kernel section of compare: dumps (families, repeated runs, a capped list, no
    kernels), two torch.profiler traces (plain and gzip), and what is refused."""
    title = "#### 4. diffscope: GPU time per kernel (New)"
    rc, out, err = run(binary, "compare", "kd_base.json", "kd_new.json", cwd=fixtures)
    check(rc == 0 and err == "" and out.index(title) > out.index("#### 3. diffscope"),
          f"kernel diff: after section 3 ({err!r})")
    check("- **AdaLN scale/shift/gate** (missed -> engaged): 20,831 separate kernel launches -> "
          "560 fused kernel launches, -212.00 ms\n" in out, "kernel diff: the AdaLN family line")
    rows = kernel_rows(out, title)
    check(rows[:5] == ["**All kernels**", "**AdaLN scale/shift/gate**",
                       "\u21b3 `vectorized_layer_norm_kernel<c10::BFloat16, float>`",
                       "\u21b3 `vectorized_elementwise_kernel<4, at::na...tor<float> >, "
                       "std::array<char*, 3ul> >`",
                       "\u21b3 `fuse_scale_shift_kernel<c10::BFloat16>`"],
          f"kernel diff: families first by change, their kernels under them ({rows[:5]})")
    # The base dump was written before names were demangled: its symbol matches the new name.
    check(sum("GeluCUDAKernelImpl" in r or "BFloat16)#1}" in r for r in rows) == 1
          and "_ZN2at6native" not in out, "kernel diff: a mangled name diffs with its demangled one")
    check("| `triton_poi_fused_add_0` | - | 280 | - | 14.00 | +14.00 | - | 50.0 | added |" in out
          and "| `Memcpy HtoD (Pageable -> Device)` | 10 | - | 1.50 | - | -1.50 | 150.0 | - | "
          "removed |" in out, "kernel diff: added and removed kernels")
    rc, two, _ = run(binary, "compare", "--kernels", "2", "kd_base.json", "kd_new.json", cwd=fixtures)
    check(rc == 0 and kernel_rows(two, title) == rows[:5]
          and "\n6 more kernels changed less: `diffscope compare --kernels all` lists them.\n" in two,
          "kernel diff --kernels 2: the first family whole, a line for the rest")
    rc, alls, _ = run(binary, "compare", "--kernels", "all", "kd_base.json", "kd_new.json",
                      cwd=fixtures)
    check(rc == 0 and alls == out.replace(out[out.index("- Timestamp:"):].split("\n")[0],
                                          alls[alls.index("- Timestamp:"):].split("\n")[0]),
          "kernel diff --kernels all: every row (9 fit the default 20)")
    for bad in ("0", "x", "-3", ""):
        rc, o, e = run(binary, "compare", "--kernels", bad, "kd_base.json", "kd_new.json",
                       cwd=fixtures)
        check(rc == 2 and o == "" and "--kernels" in e, f"compare --kernels {bad!r}: exit 2 ({e!r})")
    rc, out, err = run(binary, "compare", "--base", "kd_base.json", "kd_base_2.json", "--new",
                       "kd_new.json", "kd_new_2.json", cwd=fixtures)
    check(rc == 0 and "#### diffscope: GPU time per kernel\nBase: median of 2 runs (kd_base.json, "
          "kd_base_2.json); New: median of 2 runs (kd_new.json, kd_new_2.json)." in out
          and out.index("#### diffscope: GPU time per kernel") > out.index("| Metric |"),
          f"kernel diff --base/--new: medians of the runs, after the table ({err!r})")
    rc, out, _ = run(binary, "compare", "kd_base.json", "kd_capped.json", cwd=fixtures)
    check(rc == 0 and "| not listed in new |" in out and "| removed |" not in out
          and "kd_capped.json lists its 4 longest kernel entries of 6" in out,
          "kernel diff: a capped list's missing kernels are not listed, not removed")
    rc, out, _ = run(binary, "compare", "kd_perf.json", "kd_perf.json", cwd=fixtures)
    check(rc == 0 and out.endswith("No kernel rows:\n- kd_perf.json: a perf-mode dump: perf mode "
                                   "times scopes, not kernels (profile mode lists them).\n"),
          "kernel diff: a perf-mode dump says why it has no kernel rows")
    rc, out, _ = run(binary, "compare", "--sglang-only", "kd_base.json", "kd_new.json",
                     cwd=fixtures)
    check(rc == 0 and "kernel" not in out.lower(), "compare --sglang-only: no kernel section")
    # A layerwise model's dumps (written by layerwise() above) list 50 of their kernel entries.
    base, new = os.path.join(work, "lw_base.json"), os.path.join(work, "lw_new.json")
    rc, out, _ = run(binary, "compare", base, new)
    check(rc == 0 and "lw_base.json lists its 50 longest kernel entries of" in out
          and "| removed |" not in out and "| added |" not in out,
          "kernel diff: capped layerwise dumps: nothing removed or added by the cap")

    # Two torch.profiler traces, plain and gzip: the kernel diff alone.
    rc, out, err = run(binary, "compare", "kd_trace_base.json", "kd_trace_new.json.gz",
                       cwd=fixtures)
    check(rc == 0 and err == "" and out.startswith(
        "### Kernel Comparison Report\n\n- Baseline: kd_trace_base.json (torch.profiler trace, "
        "29 events)\n- New: kd_trace_new.json.gz (torch.profiler trace, 23 events)\n\n"
        "#### GPU time per kernel (New)\n") and "Stage Breakdown" not in out,
        f"trace compare: header and kernel section ({err!r})")
    check("| **attention backend** | 4 | 4 | 6.00 | 2.80 | -3.20 | | | fast path missed -> "
          "engaged |" in out and "| **All kernels** | 28 | 22 | 16.90 | 12.26 | -4.64 | | | "
          "-27.5% |" in out, "trace compare: totals and the attention family")
    check(sum("BFloat16)#1}" in r for r in kernel_rows(out, "#### GPU time per kernel")) == 1,
          "trace compare: a mangled name in the older trace diffs with its demangled one")
    rc, out, err = run(binary, "compare", "--base", "kd_trace_base.json", "kd_trace_base.json",
                       "--new", "kd_trace_new.json.gz", cwd=fixtures)
    check(rc == 0 and "Base: median of 2 runs" in out, f"trace compare --base/--new ({err!r})")
    # A trace above a dump's size limit is streamed from a file; stdin holds what a dump may.
    big = os.path.join(work, "big.trace.json")
    with open(os.path.join(fixtures, "kd_trace_base.json"), "rb") as f:
        small = f.read()
    with open(big, "wb") as f:
        f.write(b'{"pad": "' + b"x" * (65 * MIB) + b'", ' + small[1:])
    rc, out, err = run(binary, "compare", big, "kd_trace_new.json.gz", cwd=fixtures)
    check(rc == 0 and "- Baseline: big.trace.json (torch.profiler trace, 29 events)" in out,
          f"trace compare: a 65 MiB trace from a file ({err!r})")
    with open(big, "rb") as f:
        p = subprocess.run([binary, "compare", "-", "kd_trace_new.json.gz"], stdin=f,
                           capture_output=True, cwd=fixtures, timeout=30)
    check(p.returncode == 2 and b"stdin: larger than 64 MiB" in p.stderr,
          "trace compare: a 65 MiB trace on stdin is refused")
    os.remove(big)
    rc, three, _ = run(binary, "compare", "kd_trace_base.json", "kd_trace_new.json.gz",
                       "kd_trace_base.json", cwd=fixtures)
    check(rc == 0 and three.count("#### GPU time per kernel (") == 2,
          "trace compare of three: the baseline against each")
    refused = [
        (["kd_trace_base.json", "kd_new.json"], "kd_trace_base.json",
         "a Chrome trace (it has traceEvents), not a perf dump like kd_new.json"),
        (["kd_base.json", "kd_trace_new.json.gz"], "kd_trace_new.json.gz", "not a perf dump like"),
        (["--base", "kd_base.json", "--new", "kd_trace_new.json.gz"], "kd_trace_new.json.gz",
         "compare traces with traces"),
        (["--sglang-only", "kd_trace_base.json", "kd_trace_new.json.gz"], "kd_trace_base.json",
         "--sglang-only"),
        (["--scopes", "3", "kd_trace_base.json", "kd_trace_new.json.gz"], "kd_trace_base.json",
         "--scopes"),
    ]
    d = os.path.join(work, "traces")
    os.makedirs(d, exist_ok=True)
    good = os.path.join(fixtures, "kd_trace_base.json")
    bad = {
        "no_name.json": b'{"traceEvents": [{"ph": "X", "cat": "kernel", "ts": 1, "dur": 2}]}',
        "dur_string.json": b'{"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", '
                           b'"dur": "2"}]}',
        "truncated.json.gz": gzip.compress(open(good, "rb").read())[:300],
        "truncated.json": open(good, "rb").read()[:500],
    }
    for name, data in bad.items():
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        refused.append(([good, path], path, None))
        refused.append(([path, good], path, None))
    for args, name, needle in refused:
        rc, out, err = run(binary, "compare", *args, cwd=fixtures)
        check(rc == 2 and out == "" and err.count("\n") == 1 and name in err
              and (needle is None or needle in err) and "Traceback" not in err,
              f"compare {' '.join(os.path.basename(a) for a in args)}: exit 2 naming {name} "
              f"({rc}: {err.strip()!r})")


def timing_note(binary, fixtures):
    """A host-timed dump (SGLang's, or ours without GPU timing) against a device-timed one."""
    note = "> **Note:** the stage durations are different quantities"
    for files in (["ds_base.json", "sg_new.json"], ["sg_new.json", "ds_base.json"],
                  ["ds_nogpu.json", "ds_new.json"]):
        rc, out, err = run(binary, "compare", *files, cwd=fixtures)
        host = [f for f in files if f != "ds_base.json" and f != "ds_new.json"][0]
        device = [f for f in files if f in ("ds_base.json", "ds_new.json")][0]
        check(rc == 0 and out.startswith(note) and f"synchronisation in {host} (" in out
              and f"the GPU envelope in {device} (" in out
              and out.index("### Performance Comparison Report") > out.index(note) and err == "",
              f"compare {' '.join(files)}: the note above the report names both sides")
        rc, out, err = run(binary, "compare", "--strict", *files, cwd=fixtures)
        check(rc == 2 and out == "" and err.count("\n") == 1 and "--strict" in err
              and host in err and device in err, f"compare --strict {' '.join(files)}: exit 2 ({err!r})")
        rc, out, err = run(binary, "compare", "--sglang-only", *files, cwd=fixtures)
        check(rc == 0 and "Note" not in out and out.startswith("### Performance Comparison Report")
              and err.startswith("diffscope compare: note: the stage durations"),
              f"compare --sglang-only {' '.join(files)}: no note on stdout, one on stderr")
    rc, out, err = run(binary, "compare", "--base", "ds_base.json", "--new", "sg_new.json",
                       cwd=fixtures)
    check(rc == 0 and out.startswith(note) and "### Repeated-run Comparison" in out,
          "compare --base/--new: the note above the table")
    rc, out, err = run(binary, "compare", "--strict", "--base", "ds_base.json", "--new",
                       "sg_new.json", cwd=fixtures)
    check(rc == 2 and out == "" and "--strict" in err, "compare --strict --base/--new: exit 2")
    for files in (["ds_base.json", "ds_new.json"], ["sg_base.json", "sg_new.json"],
                  ["ds_nogpu.json", "sg_new.json"]):
        for strict in ([], ["--strict"]):
            rc, out, err = run(binary, "compare", *strict, *files, cwd=fixtures)
            check(rc == 0 and "Note" not in out and err == "",
                  f"compare {' '.join(strict + files)}: timed alike, no note")


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
              ("compare a directory", ["compare", good, bad_dir], "is a directory"),
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


BOM = b"\xef\xbb\xbf"
DEEP = 100000
MIB = 1 << 20


def reader_faults(binary, fixtures, work):
    """Every reader against every kind of bad input: exit 2, one line naming the input, nothing
    on stdout, no signal, within a timeout, bounded memory; and the same valid input through a
    file, a FIFO, stdin, gzip and a byte-order mark works in every reader."""
    good = os.path.join(fixtures, "sg_base.json")
    hot = os.path.join(os.path.dirname(os.path.abspath(fixtures)), "hotspots")
    with open(os.path.join(hot, "dump_qknorm_missed.json"), "rb") as f:
        dump = f.read()  # a perf dump that hotspots reads too
    with open(os.path.join(hot, "trace_unfused.json"), "rb") as f:
        trace = f.read()
    readers = {
        "compare (new)": lambda p: [binary, "compare", good, p],
        "compare (base)": lambda p: [binary, "compare", p, good],
        "compare --base": lambda p: [binary, "compare", "--base", p, "--new", good],
        "merge --summary": lambda p: [binary, "merge", "--summary", p],
        "hotspots": lambda p: [binary, "hotspots", p],
    }
    dump_readers = [r for r in readers if r != "hotspots"]
    d = os.path.join(work, "faults")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "a_directory"))

    def write(name, data):
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    rng = random.Random(7)
    huge_dump = (b'{"total_duration_ms": 1, "diffscope": {"kernels": []}, "meta": {"pad": "'
                 + b"x" * (65 * MIB) + b'"}}')
    # (input, needle per reader: None = any reason; a reader left out is not run)
    bad = [
        (os.path.join(d, "missing.json"), dict.fromkeys(readers, "cannot open")),
        (os.path.join(d, "a_directory"), dict.fromkeys(readers, "is a directory")),
        (write("empty.json", b""), dict.fromkeys(readers, "empty file")),
        (write("bom_blank.json", BOM + b" \n"), dict.fromkeys(readers, "empty file")),
        (write("truncated.json", dump[: len(dump) // 2]), dict.fromkeys(readers)),
        (write("binary.json", bytes(rng.randrange(256) for _ in range(4096))),
         dict.fromkeys(readers)),
        (write("nul.json", b"\x00" * 64), dict.fromkeys(readers)),
        (write("deep_meta.json", b'{"meta": ' + b'{"a": ' * DEEP + b"1" + b"}" * (DEEP + 1)),
         dict.fromkeys(readers, "nested too deeply")),
        (write("deep_steps.json", b'{"steps": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
         dict.fromkeys(readers, "nested too deeply")),
        (write("deep_bare.json", b"[" * DEEP),
         {**dict.fromkeys(dump_readers, "nested too deeply"), "hotspots": None}),
        (write("two_boms.json", BOM + BOM + dump), dict.fromkeys(readers)),
        (write("huge.json", huge_dump), dict.fromkeys(readers, "larger than 64 MiB")),
        (write("huge.json.gz", gzip.compress(huge_dump, 1)),
         dict.fromkeys(readers, "larger than 64 MiB")),
        (write("trace.json", trace),
         {**dict.fromkeys(dump_readers, "a Chrome trace (it has traceEvents), not a perf dump")}),
        (write("array.json", b"[1, 2]"), dict.fromkeys(dump_readers, "not a perf dump")),
        (write("number.json", b"42"), dict.fromkeys(readers)),
        (write("no_dump_keys.json", b'{"meta": {}}'), dict.fromkeys(dump_readers, "not a perf dump")),
    ]
    del huge_dump

    def expect_refused(what, argv, name, needle, stdin_data=None, max_mib=300, timeout=20):
        rc, out, err, mib, secs = run_measured(argv, stdin_data, timeout)
        check(rc == 2 and out == "" and err.count("\n") == 1 and name in err
              and (needle is None or needle in err) and mib < max_mib,
              f"{what}: exit 2 naming {name!r}{' with ' + repr(needle) if needle else ''}, "
              f"{secs:.1f} s, {mib:.0f} MiB < {max_mib} ({rc}: {err.strip()[:200]!r})")

    def expect_read(what, argv, stdin_data=None):
        rc, out, err, mib, _ = run_measured(argv, stdin_data)
        check(rc == 0 and out != "" and "Traceback" not in err and mib < 300,
              f"{what}: read and reported ({rc}: {err.strip()[:200]!r})")

    for path, needles in bad:
        for reader, needle in needles.items():
            expect_refused(f"{reader} {os.path.basename(path)}", readers[reader](path), path, needle)
    for name in ("huge.json", "huge.json.gz"):
        os.remove(os.path.join(d, name))

    # The same good input every way a reader can get it.
    plain = write("dump.json", dump)
    bommed = write("bom_dump.json", BOM + dump)
    zipped = write("dump.json.gz", gzip.compress(BOM + dump))
    for reader, argv in readers.items():
        for path in (plain, bommed, zipped):
            expect_read(f"{reader} {os.path.basename(path)}", argv(path))
        expect_read(f"{reader} - (stdin)", argv("-"), dump)
        expect_read(f"{reader} - (stdin, gzip)", argv("-"), gzip.compress(dump))
        expect_read(f"{reader} /dev/stdin", argv("/dev/stdin"), BOM + dump)
        expect_refused(f"{reader} - (stdin, deep)", argv("-"), "stdin", "nested too deeply",
                       b'{"meta": ' + b'{"a": ' * DEEP)
        expect_refused(f"{reader} /dev/stdin (binary)", argv("/dev/stdin"), "/dev/stdin", None,
                       bytes(rng.randrange(256) for _ in range(4096)))
        # A FIFO, opened once, fed by a writer: good content works, bad content is refused.
        for content, ok in ((dump, True), (gzip.compress(dump), True),
                            (b'{"meta": ' + b"[" * DEEP, False), (b"\x1f\x8b\x08junk", False)):
            fifo = os.path.join(d, "fifo")
            if os.path.exists(fifo):
                os.remove(fifo)
            os.mkfifo(fifo)

            def writer(data=content):
                try:
                    with open(fifo, "wb") as f:
                        f.write(data)
                except (BrokenPipeError, OSError):
                    pass

            threading.Thread(target=writer, daemon=True).start()
            label = f"{reader} FIFO ({'good' if ok else 'bad'}, {len(content)} bytes)"
            if ok:
                expect_read(label, argv(fifo))
            else:
                expect_refused(label, argv(fifo), fifo, None)
            os.remove(fifo)
    # 200 MB of '[' through a pipe: stops at the depth limit, not after reading it all.
    block = b"[" * MIB
    for reader in ("compare (new)", "merge --summary"):
        expect_refused(f"{reader} 200 MB of '[' on stdin", readers[reader]("-"), "stdin",
                       "nested too deeply", (block for _ in range(200)), max_mib=100)
    # Whitespace past the limit through a pipe: no size known in advance.
    expect_refused("compare 65 MiB of spaces on stdin", readers["compare (new)"]("-"), "stdin",
                   "larger than 64 MiB", (b" " * MIB for _ in range(65)), max_mib=200)
    # stdin can be read once.
    expect_refused("compare - -", [binary, "compare", "-", "-"], "'-' (stdin) given more than once",
                   None, dump)
    expect_refused("merge --summary - -", [binary, "merge", "--summary", "-", "-"],
                   "'-' (stdin) given more than once", None, dump)
    shutil.rmtree(d, ignore_errors=True)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, fixtures, work = (os.path.abspath(a) for a in argv)
    os.makedirs(work, exist_ok=True)
    compare_cases(binary, fixtures)
    timing_note(binary, fixtures)
    repeated(binary, fixtures)
    merge(binary, fixtures, work)
    layerwise(binary, work)
    kernel_diff(binary, fixtures, work)
    bad_inputs(binary, fixtures, work)
    reader_faults(binary, fixtures, work)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
