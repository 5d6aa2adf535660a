#!/usr/bin/env python3
"""`diffscope gate` end to end: saved logs (tests/fixtures/gate), commands run under the
gate (exit codes, byte-exact pass-through, a late signal, kill-on-fallback, killed children,
command not found) and usage errors.

usage: test_gate_cli.py DIFFSCOPE_BINARY FIXTURE_DIR
"""
import os
import subprocess
import sys
import tempfile
import time

BIN, FIXTURES = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def gate(*args, stdin=None, timeout=20):
    t0 = time.monotonic()
    p = subprocess.run([BIN, "gate", *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def verdict_line(err):
    lines = err.decode("utf-8", "replace").rstrip("\n").split("\n")
    return lines[-1]


# ---- saved logs --------------------------------------------------------------------------
def log(name, *flags):
    return gate(*flags, "--log", os.path.join(FIXTURES, name))


rc, out, err, _ = log("clean.log")
check(rc == 0 and out == b"", "clean.log: exit 0, nothing on stdout (%d)" % rc)
check(verdict_line(err).startswith("diffscope gate: valid: no diffusers fallback in 10 lines"),
      "clean.log verdict line: %r" % err)
check(err.count(b"\n") == 1, "one line on stderr")

rc, _, err, _ = log("clean.log", "--expect-bcg")
check(rc == 3 and b"bcg_unverified" in err, "clean.log --expect-bcg: unverified, exit 3")

rc, _, err, _ = log("fallback.log")
line = verdict_line(err)
check(rc == 3, "fallback.log: exit 3 (%d)" % rc)
check('"Falling back to diffusers backend"' in line and "fallback.log line 3" in line,
      "fallback.log names the signal and line: %r" % line)

rc, _, err, _ = log("bcg_valid.log", "--expect-bcg")
check(rc == 0 and b"BCG captured at" in err, "bcg_valid.log: valid (%d %r)" % (rc, err))
rc, _, err, _ = log("bcg_failed.log", "--expect-bcg")
check(rc == 3 and b"bcg_invalid" in err and b"capture failed" in err
      and b"no graph will be captured" in err and b"cannot be used with breakable cuda graphs" in err,
      "bcg_failed.log: invalid with every reason (%r)" % err)
rc, _, err, _ = log("bcg_missed.log", "--expect-bcg")
check(rc == 3 and b"serving signature MISSED" in err, "bcg_missed.log: invalid")
rc, _, err, _ = log("bcg_failed.log")
check(rc == 0 and b"BCG not expected" in err, "bcg markers without --expect-bcg: valid, noted")
rc, _, err, _ = log("coloured_crlf.log")
check(rc == 3 and b"coloured_crlf.log line 3" in err, "coloured CRLF log: fallback at line 3 (%r)" % err)

# stdin, and a log in which a signal is not at a line start and has no final newline
rc, _, err, _ = gate("--log", "-", stdin=b"\x00\xff clean\r\nx LOADED diffusers PIPELINE")
check(rc == 3 and b"stdin line 2" in err, "stdin log: fallback on the unterminated line 2 (%r)" % err)

# ---- usage errors --------------------------------------------------------------------------
for args, what in [((), "no arguments"), (("--log",), "--log without a file"),
                   (("--log", "/nonexistent/x.log"), "missing log"),
                   (("--log", FIXTURES), "a directory"),
                   (("--bogus",), "unknown option"), (("--",), "-- without a command"),
                   (("--log", "a", "--", "true"), "both modes"),
                   (("--kill-grace", "x", "--", "true"), "bad --kill-grace")]:
    rc, out, err, _ = gate(*args)
    check(rc == 2 and out == b"" and err.startswith(b"diffscope gate: ") and err.count(b"\n") == 1,
          "usage error, exit 2 and one line: %s (%d %r)" % (what, rc, err))
rc, out, _, _ = gate("--help")
check(rc == 0 and out.startswith(b"usage: diffscope gate"), "--help")

# ---- commands ------------------------------------------------------------------------------
rc, out, err, _ = gate("--", "sh", "-c", "echo out; echo err >&2; exit 4")
check(rc == 4 and out == b"out\n", "the command's exit code when the gate holds (%d)" % rc)
check(err.startswith(b"err\ndiffscope gate: valid") and b"exited with 4" in err, "stderr %r" % err)

rc, out, err, _ = gate("--", "sh", "-c", "echo 'INFO Using Diffusers Backend'; exit 0")
check(rc == 3 and b'"Using diffusers backend" at stdout line 1' in err, "tripped: exit 3 (%r)" % err)

rc, out, err, _ = gate("--", "sh", "-c", "printf 'no newline at the end Loaded diffusers pipeline' >&2")
check(rc == 3, "signal at EOF without newline on stderr: exit 3")
check(err.startswith(b"no newline at the end Loaded diffusers pipeline\ndiffscope gate: fallback"),
      "our line starts on a line of its own: %r" % err)

# byte-exact pass-through of binary output (all 256 byte values, several MB)
with tempfile.TemporaryDirectory() as d:
    data = bytes(range(256)) * 4096 + os.urandom(3 << 20)
    path = os.path.join(d, "blob")
    with open(path, "wb") as f:
        f.write(data)
    rc, out, err, _ = gate("--", "sh", "-c", 'cat "$0"; cat "$0" >&2', path)
    check(rc == 0 and out == data, "stdout byte for byte (%d, %d of %d bytes)" % (rc, len(out), len(data)))
    check(err[:len(data)] == data and err[len(data):].startswith(b"\ndiffscope gate: valid"),
          "stderr byte for byte, then our line")

# a signal after about a second of clean output, passed through in order
script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo step $i; sleep 0.1; done; " \
         "echo '[Diffusion BCG] captured'; echo 'WARNING: Falling back to diffusers backend'; echo done"
rc, out, err, took = gate("--expect-bcg", "--", "sh", "-c", script)
check(rc == 3 and took >= 0.9, "late signal: exit 3 after the clean second (%d, %.2f s)" % (rc, took))
check(out == b"".join(b"step %d\n" % i for i in range(1, 11))
      + b"[Diffusion BCG] captured\nWARNING: Falling back to diffusers backend\ndone\n", "late: stdout")
check(b"stdout line 12" in err, "late: line 12 (%r)" % err)

# --kill-on-fallback: SIGTERM to the process group at once; SIGKILL after the grace period
rc, out, err, took = gate("--kill-on-fallback", "--", "sh", "-c",
                          "echo clean; sleep 0.3; echo 'Using diffusers backend'; sleep 30; echo never")
check(rc == 3 and took < 5 and b"never" not in out, "kill-on-fallback ends it early (%d, %.1f s)" % (rc, took))
check(b"killed by signal 15" in err and b"after the fallback signal" in err, "says it was killed: %r" % err)
rc, out, err, took = gate("--kill-on-fallback", "--kill-grace", "0.5", "--", "sh", "-c",
                          "trap '' TERM; echo 'Using diffusers backend'; sleep 30")
check(rc == 3 and took < 5 and b"killed by signal 9" in err, "SIGKILL after the grace (%d, %.1f s, %r)" % (rc, took, err))
rc, out, err, took = gate("--", "sh", "-c", "echo 'Using diffusers backend'; sleep 0.5; echo end")
check(rc == 3 and out.endswith(b"end\n"), "without --kill-on-fallback the command runs to its end")

# a command killed by a signal, a command that does not exist or cannot run
rc, out, err, _ = gate("--", "sh", "-c", "echo before; kill -KILL $$")
check(rc == 128 + 9 and b"killed by signal 9" in err and out == b"before\n", "killed child: 137 (%d %r)" % (rc, err))
rc, out, err, _ = gate("--", "sh", "-c", "kill -TERM $$")
check(rc == 143, "SIGTERM child: 143 (%d)" % rc)
rc, out, err, _ = gate("--", "diffscope-no-such-command-xyz", "arg")
check(rc == 127 and b"diffscope-no-such-command-xyz: command not found" in err, "not found: 127 (%d %r)" % (rc, err))
rc, out, err, _ = gate("--", FIXTURES)
check(rc == 126, "a directory as command: 126 (%d %r)" % (rc, err))

# stdin reaches the command
rc, out, err, _ = gate("--", "cat", stdin=b"through stdin\n")
check(rc == 0 and out == b"through stdin\n", "stdin passes to the command")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all gate CLI checks passed")
