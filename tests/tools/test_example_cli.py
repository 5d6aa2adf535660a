#!/usr/bin/env python3
"""The CLI on outputs recorded from the real-model example on a GPU (tests/fixtures/example):
examples/diffusers/flux_like.py (diffusers' Flux transformer, one double and one single block,
random weights, 2 steps, 256x256, one request) in bf16 and fp32, each as a profile-mode dump of
`diffscope run` and as a torch.profiler trace (--profiler --profiler-trace).

Checks what a user reads on them: names demangled everywhere, the dump's one window (its
kernels sum to the window's busy time and `hotspots` prints that total), the kernel diff of
the two dtypes on dumps and on traces (added and removed kernels, bounded), and the report.

    test_example_cli.py DIFFSCOPE FIXTURE_DIR WORK_DIR
Exit 0 when every check passed, 1 otherwise.
"""
import json
import os
import re
import shutil
import subprocess
import sys

# An Itanium-ABI mangled name: _Z, then a nested name, a length-prefixed one, or a special name.
MANGLED = re.compile(r"(?<![A-Za-z0-9_])_Z[NLZST0-9][A-Za-z0-9_]*")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(exe, *args):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def main():
    exe, fixtures, work = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    fx = lambda name: os.path.join(fixtures, name)  # noqa: E731

    for dt in ("bf16", "fp32"):
        with open(fx(f"flux_{dt}.json")) as f:
            ds = json.load(f)["diffscope"]
        names = [k["name"] for k in ds["kernels"]]
        check(names and not any(MANGLED.search(n) for n in names),
              f"{dt} dump: {len(names)} kernel names, none mangled")
        check(any("mangled" in k for k in ds["kernels"]),
              f"{dt} dump: the symbols CUPTI reported are kept as `mangled`")
        w = ds["window"]
        listed = sum(k["total_ms"] for k in ds["kernels"])
        check(ds["kernels_total"] == len(ds["kernels"]) and
              abs(listed - w["gpu"]["busy_ms"]) < 1e-3,
              f"{dt} dump: one window, its kernels sum to its busy time "
              f"({listed:.6f} vs {w['gpu']['busy_ms']:.6f} ms)")
        steps = sum(s["gpu"]["busy_ms"] for s in ds["steps"])
        check(0 < steps <= w["gpu"]["busy_ms"], f"{dt} dump: the steps' busy time lies in the window")

        rc, out, err = run(exe, "hotspots", fx(f"flux_{dt}.json"))
        check(rc == 0 and err == "", f"{dt} hotspots: exit 0 ({rc}, {err.strip()[:200]!r})")
        check(f"{w['gpu']['busy_ms']:.2f} ms of GPU work in {w['gpu']['operations']} operations"
              in out, f"{dt} hotspots: prints the dump's own window total")
        check(not MANGLED.search(out), f"{dt} hotspots: no mangled name")

        rc, out, err = run(exe, "hotspots", fx(f"flux_{dt}.trace.json.gz"))
        check(rc == 0 and not MANGLED.search(out), f"{dt} hotspots on the torch trace: exit 0, "
                                                   f"no mangled name ({rc}, {err.strip()[:200]!r})")

    # The kernel diff: bf16 against fp32 swaps the GEMM and attention kernels.
    rc, out, err = run(exe, "compare", fx("flux_bf16.json"), fx("flux_fp32.json"))
    lines = out.splitlines()
    check(rc == 0 and err == "", f"compare of the dumps: exit 0 ({rc}, {err.strip()[:200]!r})")
    check("#### 4. diffscope: GPU time per kernel (New)" in out, "compare of the dumps: a kernel section")
    rows = [l for l in lines if l.startswith("| `") or l.startswith("| ↳")]
    check(0 < len(rows) <= 22 and any(l.endswith("| added |") for l in rows) and
          any(l.endswith("| removed |") for l in rows),
          f"compare of the dumps: {len(rows)} kernel rows (at most the default 20 and family "
          "members), kernels added and removed")
    check("more kernels changed less" in out, "compare of the dumps: the rest is counted")
    check(not MANGLED.search(out), "compare of the dumps: no mangled name")
    check(len(lines) <= 100, f"compare of the dumps: {len(lines)} lines")

    rc, out, err = run(exe, "compare", fx("flux_bf16.trace.json.gz"), fx("flux_fp32.trace.json.gz"))
    check(rc == 0 and "Kernel Comparison Report" in out,
          f"compare of the traces: exit 0, a kernel report ({rc}, {err.strip()[:200]!r})")
    check(any(l.endswith("| added |") for l in out.splitlines()) and
          any(l.endswith("| removed |") for l in out.splitlines()),
          "compare of the traces: kernels added and removed")
    check(not MANGLED.search(out), "compare of the traces: no mangled name")

    rc, out, err = run(exe, "compare", fx("flux_bf16.json"), fx("flux_fp32.trace.json.gz"))
    check(rc == 2 and "flux_fp32.trace.json.gz" in err, "a dump against a trace: exit 2 naming "
                                                        f"the trace ({rc}, {err.strip()[:200]!r})")

    page = os.path.join(work, "flux.html")
    rc, _, err = run(exe, "report", fx("flux_bf16.json"), "-o", page)
    html = open(page, encoding="utf-8").read() if rc == 0 and os.path.exists(page) else ""
    check(rc == 0 and "driver CUDA 13.0" in html and "step-categories" in html and not MANGLED.search(
        re.sub(r'"mangled":\s*"[^"]*"', "", html)),
        f"report of the dump: written, the driver's version read, the per-step categories' "
        f"place, no mangled name "
        f"({rc}, {err.strip()[:200]!r})")

    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
