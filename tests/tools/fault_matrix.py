#!/usr/bin/env python3
"""The fault matrix: every reader against every kind of bad input, every writer against every
kind of awkward target, and `diffscope run` against children and signals that end badly.

    fault_matrix.py DIFFSCOPE INJECT_LIB FAULT_APP WORK_DIR [TOY_DIT or ""] [SECTIONS]

SECTIONS: a comma-separated subset of readers,writers,run,collector (default: all).

What must hold in every case (docs/testing.md, "The fault matrix"; the rules themselves are in
docs/outputs.md: the writers at the top, the readers in section 5):
- readers: exit 2 with the file named on stderr, no signal, no hang, bounded memory;
- writers: a device node, FIFO or directory at the path is never replaced; a symlink is
  written through; an error names the path; nothing half-written or temporary is left;
- run: the child's exit code is relayed, no partial file at the output path, no private
  directory left for the next run to trip on.
Prints one line a case and closes with "N passed, N failed".
"""
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

DS, INJECT, APP, WORK = sys.argv[1:5]
TOY_DIT = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
TIMEOUT_S = 30
# A reader may hold one capped document, never more (a sanitizer build needs more).
MAX_RSS_MB = float(os.environ.get("FAULT_MATRIX_MAX_RSS_MB", "600"))

results = []  # (name, ok, detail)


def record(name, ok, detail=""):
    results.append((name, ok, detail))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)


class Run:
    """A finished process: exit code (-signal when killed), output, peak RSS, wall time."""

    def __init__(self, rc, out, err, rss_mb, seconds, timed_out):
        self.rc, self.out, self.err = rc, out, err
        self.rss_mb, self.seconds, self.timed_out = rss_mb, seconds, timed_out


def run(cmd, env=None, timeout=TIMEOUT_S, stdin=None, cwd=None, preexec=None):
    """Runs `cmd`, measuring its peak RSS through wait4; kills it (and its group) on timeout."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.monotonic()
    with open(os.path.join(WORK, "stdout.tmp"), "w+b") as out, \
            open(os.path.join(WORK, "stderr.tmp"), "w+b") as err:
        p = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=err, cwd=cwd,
                             stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=preexec)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        p.returncode = 0  # reaped by wait4; keep Popen from waiting again
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Run(rc, o, e, usage.ru_maxrss / 1024.0, time.monotonic() - t0, timed_out)


def ds(*args, **kw):
    return run([DS, *args], **kw)


def expect(name, r, code, names=None, words=None):
    """Checks exit code, no signal, no hang, memory, and that stderr names `names`."""
    problems = []
    if r.timed_out:
        problems.append(f"hung (killed after {TIMEOUT_S} s)")
    elif r.rc < 0:
        problems.append(f"killed by signal {-r.rc}")
    elif code is not None and r.rc != code:
        problems.append(f"exit {r.rc}, want {code}")
    if r.rss_mb > MAX_RSS_MB:
        problems.append(f"peak RSS {r.rss_mb:.0f} MB > {MAX_RSS_MB} MB")
    for n in names or []:
        if n not in r.err:
            problems.append(f"stderr does not name {n!r}")
    for w in words or []:
        if w.lower() not in r.err.lower():
            problems.append(f"stderr does not say {w!r}")
    if problems:
        problems.append("stderr: " + r.err.strip()[-300:])
    record(name, not problems, "; ".join(problems))
    return not problems


# ---- inputs -------------------------------------------------------------------------------

def dump_obj(total=100.0, mode=None):
    d = {"timestamp": "2026-01-01T00:00:00+00:00", "request_id": "r", "commit_hash": "abc",
         "tag": "cli_generate", "total_duration_ms": total,
         "steps": [{"name": "DenoisingStage", "duration_ms": total * 0.9}],
         "denoise_steps_ms": [{"step": 0, "duration_ms": total * 0.45},
                              {"step": 1, "duration_ms": total * 0.45}],
         "memory_checkpoints": {}, "meta": {}}
    return d


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def make_inputs(d):
    os.makedirs(d, exist_ok=True)
    valid = json.dumps(dump_obj(), indent=2)
    inputs = {}
    inputs["valid"] = write(f"{d}/valid.json", valid)
    inputs["valid2"] = write(f"{d}/valid2.json", json.dumps(dump_obj(110.0), indent=2))
    inputs["missing"] = f"{d}/no-such-file.json"
    os.makedirs(f"{d}/a-directory.json", exist_ok=True)
    inputs["directory"] = f"{d}/a-directory.json"
    inputs["empty"] = write(f"{d}/empty.json", "")
    inputs["truncated"] = write(f"{d}/truncated.json", valid[: len(valid) // 2])
    n = 100_000
    inputs["deep_object"] = write(f"{d}/deep_object.json",
                                  '{"meta": ' + '{"a": ' * n + "1" + "}" * n + "}")
    inputs["deep_array"] = write(f"{d}/deep_array.json", "[" * n + "]" * n)
    # Over any document cap: a valid, flat dump of ~100 MB, and 200 MB of '['.
    row = '{"name": "DenoisingStage", "duration_ms": 1.0},\n'
    with open(f"{d}/huge_flat.json", "w") as f:
        f.write('{"total_duration_ms": 1.0, "steps": [\n')
        chunk = row * 10_000
        for _ in range(100_000_000 // len(chunk)):
            f.write(chunk)
        f.write(row.rstrip(",\n") + "]}\n")
    inputs["huge_flat"] = f"{d}/huge_flat.json"
    with open(f"{d}/huge_brackets.json", "w") as f:
        block = "[" * (1 << 20)
        for _ in range(200):
            f.write(block)
    inputs["huge_brackets"] = f"{d}/huge_brackets.json"
    rnd = random.Random(7)
    inputs["binary"] = write(f"{d}/binary.json", bytes(rnd.randrange(256) for _ in range(65536)))
    inputs["bom"] = write(f"{d}/bom.json", b"\xef\xbb\xbf" + valid.encode())
    inputs["chrome_trace"] = write(f"{d}/chrome_trace.json", json.dumps(
        {"traceEvents": [{"name": "k", "cat": "kernel", "ph": "X", "ts": 0, "dur": 5}]}))
    return inputs


def feed_fifo(path, data):
    """A FIFO with a writer that writes `data` once a reader opens it."""
    if os.path.exists(path):
        os.unlink(path)
    os.mkfifo(path)

    def writer():
        try:
            fd = os.open(path, os.O_WRONLY)  # blocks until the reader opens
            try:
                os.write(fd, data)
            except BrokenPipeError:
                pass
            os.close(fd)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    return t


def unblock_fifo(path):
    """Opens the FIFO for reading without blocking, so a writer thread left waiting ends."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


# ---- readers ------------------------------------------------------------------------------

def readers(inputs):
    v, v2 = inputs["valid"], inputs["valid2"]
    out = os.path.join(WORK, "reader_out.json")
    # Each reader with the bad input in its place; the other inputs are valid.
    cmds = {
        "compare(base)": lambda bad: ["compare", bad, v],
        "compare(new)": lambda bad: ["compare", v, bad],
        "compare --base": lambda bad: ["compare", "--base", bad, "--new", v2],
        "merge --summary": lambda bad: ["merge", "--summary", bad, v],
        "merge -o": lambda bad: ["merge", "-o", out, v, bad],
        "hotspots": lambda bad: ["hotspots", bad],
    }
    bad_kinds = ["missing", "directory", "empty", "truncated", "deep_object", "deep_array",
                 "huge_flat", "huge_brackets", "binary"]
    for cname, make in cmds.items():
        for kind in bad_kinds:
            if os.path.exists(out):
                os.unlink(out)
            path = inputs[kind]
            r = ds(*make(path))
            expect(f"reader {cname} <- {kind}", r, 2, names=[path])
            if cname == "merge -o" and os.path.exists(out):
                record(f"reader {cname} <- {kind}: no output", False, f"{out} was written")
        # A FIFO that delivers bad bytes: refused like a file, no hang.
        fifo = os.path.join(WORK, "in.fifo")
        t = feed_fifo(fifo, b"{not json")
        r = ds(*make(fifo))
        unblock_fifo(fifo)
        t.join(5)
        expect(f"reader {cname} <- fifo(bad)", r, 2, names=[fifo])
        # compare refuses what is not a perf dump.
        if cname.startswith("compare") or cname.startswith("merge"):
            r = ds(*make(inputs["chrome_trace"]))
            expect(f"reader {cname} <- chrome trace", r, 2, names=[inputs["chrome_trace"]])

    # One BOM rule for every reader: all accept it or all refuse it (exit 2 naming the file).
    bom_codes = {}
    for cname, make in cmds.items():
        if cname == "hotspots":
            continue  # a dump with no kernels: hotspots has its own reason to refuse it
        r = ds(*make(inputs["bom"]))
        bom_codes[cname] = r.rc
        if r.rc not in (0, 2) or (r.rc == 2 and inputs["bom"] not in r.err):
            record(f"reader {cname} <- bom", False, f"exit {r.rc}: {r.err.strip()[-200:]}")
    record("readers agree on a UTF-8 BOM", len(set(bom_codes.values())) == 1, str(bom_codes))

    # Valid input through a FIFO (process substitution) and through stdin.
    fifo = os.path.join(WORK, "valid.fifo")
    t = feed_fifo(fifo, open(v, "rb").read())
    r = ds("compare", fifo, v2)
    unblock_fifo(fifo)
    t.join(5)
    expect("reader compare <- fifo(valid)", r, 0)
    trace = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hotspots",
                         "trace_fused.json")
    if os.path.exists(trace):
        import gzip
        gz = gzip.compress(open(trace, "rb").read())
        for label, data in (("plain", open(trace, "rb").read()), ("gzip", gz)):
            t = feed_fifo(fifo, data)
            r = ds("hotspots", fifo)
            unblock_fifo(fifo)
            t.join(5)
            expect(f"reader hotspots <- fifo({label} trace)", r, 0)
            with open(os.path.join(WORK, "stdin.bin"), "wb") as f:
                f.write(data)
            with open(os.path.join(WORK, "stdin.bin"), "rb") as f:
                r = ds("hotspots", "-", stdin=f)
            expect(f"reader hotspots <- stdin({label} trace)", r, 0)

    # gate --log: a text reader. Missing and directory are errors; a huge log is streamed.
    for kind in ("missing", "directory"):
        r = ds("gate", "--log", inputs[kind])
        expect(f"reader gate --log <- {kind}", r, 2, names=[inputs[kind]])
    r = ds("gate", "--log", inputs["huge_flat"])
    expect("reader gate --log <- huge (bounded memory)", r, None)


# ---- writers ------------------------------------------------------------------------------

def is_root():
    return os.geteuid() == 0


def as_nobody():
    """For the read-only directory case as root, who may write anywhere: drop to nobody."""
    if not is_root():
        return None

    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    return drop


def leftovers(d, before):
    """Files in `d` that were not there before (temp files a writer left behind)."""
    try:
        return sorted(set(os.listdir(d)) - set(before))
    except OSError:
        return []


def device_nodes():
    """Character devices to write to: private copies of /dev/null and /dev/full where we may
    make them (as root a broken writer could otherwise replace the machine's own), else the
    machine's, which a non-root writer cannot replace. {} when neither can be had."""
    d = os.path.join(WORK, "dev")
    os.makedirs(d, exist_ok=True)
    nodes = {}
    for name, minor in (("null", 3), ("full", 7)):
        path = os.path.join(d, name)
        if os.path.lexists(path):
            os.unlink(path)
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            os.chmod(path, 0o666)
            os.close(os.open(path, os.O_WRONLY))  # a file system mounted nodev refuses this
            nodes[name] = path
        except OSError:
            if not is_root() and os.path.exists(f"/dev/{name}"):
                nodes[name] = f"/dev/{name}"
    return nodes


def writers(inputs):
    v, v2 = inputs["valid"], inputs["valid2"]
    app_env = {"NVTX_INJECTION64_PATH": INJECT, "DIFFSCOPE_NO_GPU": "1"}
    # Each writer as a function of the target path; `code` is its exit code on a bad target
    # (the collector inside a program must not change the program's exit code).
    wdir = os.path.join(WORK, "targets")
    side = os.path.join(wdir, "side.json")
    writers_ = {
        "merge -o": (lambda t, **kw: ds("merge", "-o", t, v, v2, **kw), 2),
        "run --dump": (lambda t, **kw: ds("run", "--dump", t, "--", APP, "exit", "0", **kw), 2),
        "run --trace": (lambda t, **kw: ds("run", "--dump", side, "--trace", t, "--", APP, "exit",
                                           "0", **kw), 2),
        "DIFFSCOPE_DUMP": (lambda t, **kw: run([APP, "exit", "0"],
                                               env=dict(app_env, DIFFSCOPE_DUMP=t), **kw), 0),
        "DIFFSCOPE_TRACE": (lambda t, **kw: run([APP, "exit", "0"],
                                                env=dict(app_env, DIFFSCOPE_TRACE=t), **kw), 0),
    }
    if TOY_DIT:
        writers_["toy_dit --dump"] = (lambda t, **kw: run(
            [TOY_DIT, "--steps", "2", "--dump", t], env={"DIFFSCOPE_NO_GPU": "1"}, **kw), 2)
    devs = device_nodes()
    if len(devs) < 2:
        print("SKIP writer device cases: cannot make device nodes here", flush=True)
    for wname, (write_to, bad_code) in writers_.items():
        shutil.rmtree(wdir, ignore_errors=True)
        os.makedirs(wdir)
        os.chmod(wdir, 0o777)

        # A null device: written to, stays a character device. A full one: an error naming
        # it, and it stays a device.
        if "null" in devs:
            r = write_to(devs["null"])
            expect(f"writer {wname} -> null device", r, 0)
            record(f"writer {wname} -> null device stays a device",
                   stat.S_ISCHR(os.lstat(devs["null"]).st_mode), "replaced by a file")
        if "full" in devs:
            r = write_to(devs["full"])
            expect(f"writer {wname} -> full device", r, bad_code, names=[devs["full"]])
            record(f"writer {wname} -> full device stays a device",
                   stat.S_ISCHR(os.lstat(devs["full"]).st_mode), "replaced by a file")
        # A FIFO with no reader: an error, no hang; stays a FIFO.
        fifo = os.path.join(wdir, "out.fifo")
        os.mkfifo(fifo)
        before = os.listdir(wdir)
        r = write_to(fifo)
        expect(f"writer {wname} -> fifo(no reader)", r, bad_code, names=[fifo])
        record(f"writer {wname} -> fifo stays a FIFO", stat.S_ISFIFO(os.lstat(fifo).st_mode),
               "replaced")
        record(f"writer {wname} -> fifo: nothing left", not leftovers(wdir, before),
               str(leftovers(wdir, before)))
        # A FIFO with a reader: the content arrives whole.
        got = []

        def reader():
            with open(fifo, "rb") as f:
                got.append(f.read())
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        time.sleep(0.05)
        r = write_to(fifo)
        t.join(10)
        ok = expect(f"writer {wname} -> fifo(reader)", r, 0)
        if ok:
            try:
                json.loads(got[0] if got else b"")
                record(f"writer {wname} -> fifo(reader): whole JSON", True)
            except ValueError:
                record(f"writer {wname} -> fifo(reader): whole JSON", False,
                       f"{len(got[0]) if got else 0} bytes, not JSON")
        os.unlink(fifo)
        # A directory: an error naming it; stays a directory.
        d = os.path.join(wdir, "is-a-dir.json")
        os.makedirs(d)
        r = write_to(d)
        expect(f"writer {wname} -> directory", r, bad_code, names=[d])
        record(f"writer {wname} -> directory stays", os.path.isdir(d) and not os.listdir(d),
               "changed")
        # A symlink: written through, the link kept.
        target = os.path.join(wdir, "real.json")
        link = os.path.join(wdir, "link.json")
        os.symlink("real.json", link)
        r = write_to(link)
        ok = expect(f"writer {wname} -> symlink", r, 0)
        kept = os.path.islink(link) and os.path.isfile(target)
        record(f"writer {wname} -> symlink kept, target written", kept,
               f"islink={os.path.islink(link)} target={os.path.exists(target)}")
        if kept:
            try:
                json.load(open(target))
            except ValueError:
                record(f"writer {wname} -> symlink target is JSON", False, "not JSON")
        # A read-only directory: an error naming the path, nothing left behind.
        ro = os.path.join(wdir, "readonly")
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        path = os.path.join(ro, "out.json")
        r = write_to(path, preexec=as_nobody())
        expect(f"writer {wname} -> read-only dir", r, bad_code, names=[path])
        record(f"writer {wname} -> read-only dir: nothing left", not os.listdir(ro),
               str(os.listdir(ro)))
        # A 250-byte name: written, no temp left.
        before = os.listdir(wdir)
        long_path = os.path.join(wdir, "d" * 245 + ".json")
        r = write_to(long_path)
        expect(f"writer {wname} -> 250-byte name", r, 0)
        record(f"writer {wname} -> 250-byte name written", os.path.isfile(long_path), "missing")
        extra = [f for f in leftovers(wdir, before) if f != os.path.basename(long_path)]
        record(f"writer {wname} -> 250-byte name: no temp left", not extra, str(extra))


# ---- run ----------------------------------------------------------------------------------

def private_dirs(tmp):
    return sorted(f for f in os.listdir(tmp) if f.startswith("diffscope-run-"))


def run_cases():
    tmp = os.path.join(WORK, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    env = {"TMPDIR": tmp}
    out = os.path.join(WORK, "run-out.json")

    def clean():
        if os.path.exists(out):
            os.unlink(out)

    for n in (0, 3, 42):
        clean()
        r = ds("run", "--dump", out, "--", APP, "exit", str(n), env=env)
        expect(f"run: child exits {n}", r, n)
        record(f"run: child exits {n}: dump written", os.path.isfile(out), "no dump")
    for sig, num in (("KILL", 9), ("SEGV", 11)):
        clean()
        r = ds("run", "--dump", out, "--", APP, "signal", sig, env=env)
        expect(f"run: child killed by SIG{sig}", r, 128 + num, words=["signal"])
        record(f"run: child killed by SIG{sig}: not 'no NVTX range was seen'",
               "no NVTX range was seen" not in r.err, r.err.strip()[-200:])
        record(f"run: child killed by SIG{sig}: no file at the output path",
               not os.path.exists(out), "a dump was written")
        record(f"run: child killed by SIG{sig}: no private dir left", not private_dirs(tmp),
               str(private_dirs(tmp)))
    # A grandchild that outlives the child must not bring the private directory back.
    clean()
    r = ds("run", "--dump", out, "--", APP, "linger", "1500", env=env)
    expect("run: lingering grandchild", r, 0)
    time.sleep(3)
    record("run: lingering grandchild: private dir not recreated", not private_dirs(tmp),
           str(private_dirs(tmp)))
    # run itself killed: SIGTERM cleans up; after SIGKILL, the next run removes the leftovers.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        clean()
        full_env = dict(os.environ, **env)
        p = subprocess.Popen([DS, "run", "--dump", out, "--", APP, "hang"], env=full_env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        line = p.stdout.readline()
        os.kill(p.pid, sig)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
            record(f"run: killed by {sig.name}: exits", False, "hung")
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the child, if run could not take it along
        except ProcessLookupError:
            pass
        name = f"run: killed by {sig.name}"
        record(f"{name}: child was running", line.strip() == b"ready", repr(line))
        record(f"{name}: no file at the output path", not os.path.exists(out), "file written")
        if sig == signal.SIGTERM:
            record(f"{name}: exit {rc}", rc in (-15, 143), f"exit {rc}")
            record(f"{name}: no private dir left", not private_dirs(tmp), str(private_dirs(tmp)))
        else:
            time.sleep(0.2)
            left = private_dirs(tmp)
            r = ds("run", "--dump", out, "--", APP, "exit", "0", env=env)
            expect(f"{name}: the next run", r, 0)
            record(f"{name}: the next run removed the stale dir",
                   not (set(left) & set(private_dirs(tmp))), f"{left} -> {private_dirs(tmp)}")
    # A long but valid dump name; output failures still relay the child's code.
    long_out = os.path.join(WORK, "r" * 245 + ".json")
    r = ds("run", "--dump", long_out, "--", APP, "exit", "0", env=env)
    expect("run: 250-byte dump name", r, 0)
    record("run: 250-byte dump name written", os.path.isfile(long_out), "missing")
    full = device_nodes().get("full")
    if full:
        r = ds("run", "--dump", full, "--", APP, "exit", "5", env=env)
        expect("run: output fails, child exits 5", r, 5, names=[full])
        r = ds("run", "--dump", full, "--", APP, "exit", "0", env=env)
        expect("run: output fails, child exits 0", r, 2, names=[full])
    record("run: no private dir left at the end", not private_dirs(tmp), str(private_dirs(tmp)))


def collector_cases():
    """The collector in a program: open ranges at exit are counted, distinct names capped."""
    env = {"NVTX_INJECTION64_PATH": INJECT, "DIFFSCOPE_NO_GPU": "1", "DIFFSCOPE_SUMMARY": "1"}
    out = os.path.join(WORK, "collector.json")
    r = run([APP, "unclosed", "3"], env=dict(env, DIFFSCOPE_DUMP=out))
    expect("collector: open ranges at exit", r, 0)
    try:
        faults = json.load(open(out))["diffscope"]["faults"]
        record("collector: open ranges counted", faults.get("unclosed_at_stop") == 4,
               f"unclosed_at_stop={faults.get('unclosed_at_stop')}")
    except (OSError, ValueError, KeyError) as e:
        record("collector: open ranges counted", False, repr(e))
    record("collector: summary names the innermost open range",
           "left_open_2" in r.err and "faults: none" not in r.err, r.err.strip()[-300:])
    r = run([APP, "names", "100000"], env=dict(env, DIFFSCOPE_DUMP=out), timeout=120)
    expect("collector: 100,000 distinct names", r, 0)
    size_mb = os.path.getsize(out) / 1e6 if os.path.exists(out) else 0
    record("collector: 100,000 distinct names: RSS bounded", r.rss_mb < 150,
           f"{r.rss_mb:.0f} MB")
    record("collector: 100,000 distinct names: dump bounded", 0 < size_mb < 10,
           f"{size_mb:.1f} MB")
    record("collector: 100,000 distinct names: folding reported", "(other)" in r.err,
           r.err.strip()[-300:])


def main():
    os.makedirs(WORK, exist_ok=True)
    os.chmod(WORK, 0o755)
    inputs = make_inputs(os.path.join(WORK, "inputs"))
    sections = sys.argv[6].split(",") if len(sys.argv) > 6 else ["readers", "writers", "run",
                                                                  "collector"]
    if "readers" in sections:
        readers(inputs)
    if "writers" in sections:
        writers(inputs)
    if "run" in sections:
        run_cases()
    if "collector" in sections:
        collector_cases()
    for f in ("huge_flat.json", "huge_brackets.json"):
        try:
            os.unlink(os.path.join(WORK, "inputs", f))
        except OSError:
            pass
    failed = [r for r in results if not r[1]]
    print(f"\nfault matrix: {len(results) - len(failed)} passed, {len(failed)} failed")
    for name, _, detail in failed:
        print(f"  FAIL {name}: {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
