#!/usr/bin/env python3
"""CLI test of `diffscope hotspots`: ranking, totals, categories, family notes, gzip and
plain traces, perf dumps, --top, --rules, and exit 2 with a reason naming the file on
malformed input. Usage: test_hotspots_cli.py DIFFSCOPE_BINARY FIXTURE_DIR"""
import gzip, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layerwise_dump import layerwise_dump

exe, fx = sys.argv[1], sys.argv[2]
failures = []


def run(*args):
    p = subprocess.run([exe, "hotspots", *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def check(cond, what):
    if not cond:
        failures.append(what)


def rows(out):
    """Ranking rows: the lines of the first table after its header."""
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("  kernel "))
    out_rows = []
    for l in lines[start + 1:]:
        if not l.startswith("  "):
            break
        out_rows.append(l)
    return out_rows


unfused = os.path.join(fx, "trace_unfused.json")
rc, out, err = run(unfused)
check(rc == 0, f"unfused rc {rc}: {err}")
r = rows(out)
check(len(r) == 10, f"10 kernel rows, got {len(r)}")
check(r[0].split()[0] == "nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT" and "10.00" in r[0].split(), r[0])
check(r[1].startswith("  fmha_cutlassF") and " gemm " in r[1], "cutlass-named SDPA kernel is gemm by the contract's rules")
check(any(l.startswith("  triton_poi_fused_gemm_silu_0") and " gemm " in l for l in r), "first match wins")
check("Memset" not in out, "gpu_memset events are not counted (SGLang: kernel + gpu_memcpy)")
check("26.80 ms in 70 operations" in out, "total over kernel + gpu_memcpy")
for fam in ["missed    fused QK norm + RoPE", "missed    AdaLN scale/shift/gate", "missed    RMSNorm",
            "missed    Ulysses / USP overlap", "missed    attention backend: SDPA memory-efficient"]:
    check(fam in out, f"unfused: {fam}")

rc, out2, _ = run("--top", "3", unfused)
check(rc == 0 and len(rows(out2)) == 3 and "Top 3 of 10" in out2, "--top 3")

fused = os.path.join(fx, "trace_fused.json")
rc, out, err = run(fused)
check(rc == 0, f"fused rc {rc}: {err}")
check("missed" not in out and "hint:" not in out, "fused: no miss, no hint")
for fam in ["engaged   fused QK norm + RoPE", "engaged   AdaLN", "engaged   Ulysses / USP overlap",
            "engaged   attention backend", "engaged   GroupNorm+SiLU"]:
    check(fam in out, f"fused: {fam}")

with tempfile.TemporaryDirectory() as tmp:
    # gzip, detected by magic bytes whatever the name; a plain file named .gz works too.
    for name, data in [("t.json.gz", gzip.compress(open(unfused, "rb").read())),
                       ("t.json", gzip.compress(open(unfused, "rb").read())),
                       ("plain.json.gz", open(unfused, "rb").read())]:
        p = os.path.join(tmp, name)
        open(p, "wb").write(data)
        rc, o, e = run(p)
        check(rc == 0 and rows(o) == r, f"{name}: same ranking as the plain trace ({e})")
    gz = gzip.compress(open(unfused, "rb").read())
    bad_cases = [("truncated.json.gz", gz[: len(gz) // 2], "truncated"),
                 ("corrupt.json.gz", gz[:20] + b"\x00" * 64 + gz[84:], "gzip")]
    for name, data, word in bad_cases:
        p = os.path.join(tmp, name)
        open(p, "wb").write(data)
        rc, o, e = run(p)
        check(rc == 2 and p in e and o == "", f"{name}: exit 2 naming the file, got {rc} {e!r}")

# The input is read once: a pipe, process substitution, "-" and /dev/stdin work, gzip or plain,
# and rank as the file does.
with tempfile.TemporaryDirectory() as tmp:
    gz_path = os.path.join(tmp, "t.json.gz")
    raw = open(unfused, "rb").read()
    open(gz_path, "wb").write(gzip.compress(raw))
    for what, cmd in [("<(zcat t.json.gz)", f'"$0" hotspots <(zcat "$1")'),
                      ("<(cat t.json.gz)", f'"$0" hotspots <(cat "$1")'),
                      ("cat t.json.gz | hotspots -", f'cat "$1" | "$0" hotspots -'),
                      ("cat t.json.gz | hotspots /dev/stdin", f'cat "$1" | "$0" hotspots /dev/stdin'),
                      ("zcat t.json.gz | hotspots -", f'zcat "$1" | "$0" hotspots -'),
                      ("hotspots /dev/stdin < t.json.gz", f'"$0" hotspots /dev/stdin < "$1"')]:
        p = subprocess.run(["bash", "-c", cmd, exe, gz_path], capture_output=True, text=True,
                           timeout=30)
        check(p.returncode == 0 and rows(p.stdout) == r and p.stderr == "",
              f"{what}: same ranking as the file ({p.returncode}: {p.stderr!r})")
    p = subprocess.run([exe, "hotspots", "-"], input=gzip.compress(raw), capture_output=True,
                       timeout=30)
    check(p.returncode == 0 and p.stdout.decode().startswith("stdin: torch.profiler trace (gzip)"),
          f"-: named stdin in the header ({p.stderr!r})")
    # A byte-order mark is skipped, as by every reader; a second one is not JSON.
    for name, data, ok in [("bom.json", b"\xef\xbb\xbf" + raw, True),
                           ("bom.json.gz", gzip.compress(b"\xef\xbb\xbf" + raw), True),
                           ("two_boms.json", b"\xef\xbb\xbf" * 2 + raw, False)]:
        path = os.path.join(tmp, name)
        open(path, "wb").write(data)
        rc, o, e = run(path)
        if ok:
            check(rc == 0 and rows(o) == r, f"{name}: read like the plain trace ({e!r})")
        else:
            check(rc == 2 and path in e and o == "", f"{name}: exit 2 naming it ({e!r})")
    # Nesting is limited to 256 levels counted from the top, as in dumps.
    for levels, ok in [(256, True), (257, False), (100000, False)]:
        inner = levels - 3  # the top object, traceEvents and the event are 3 levels
        ev = b'{"cat": "kernel", "name": "k", "dur": 1, "args": ' + b"[" * inner + b"]" * inner + b"}"
        path = os.path.join(tmp, f"deep{levels}.json")
        open(path, "wb").write(b'{"traceEvents": [' + ev + b"]}")
        rc, o, e = run(path)
        if ok:
            check(rc == 0, f"{levels} levels: read ({e!r})")
        else:
            check(rc == 2 and "JSON nested too deeply: more than 256 levels" in e and path in e,
                  f"{levels} levels: exit 2, nested too deeply ({rc} {e[:200]!r})")
    # A rules file follows the same rules: a directory is refused.
    rc, o, e = run("--rules", tmp, unfused)
    check(rc == 2 and f"{tmp}: is a directory" in e and o == "", f"--rules DIR: {e!r}")
    rc, o, e = run("--rules", "-", "-")
    check(rc == 2 and "stdin" in e and o == "", f"--rules - with FILE -: {e!r}")

dump = os.path.join(fx, "dump_qknorm_missed.json")
rc, out, err = run(dump)
check(rc == 0 and "diffscope perf dump" in out and "top 5 of 8" in out, f"dump header: {err}")
check("missed    fused QK norm + RoPE: 192 separate kernels, 7.00 ms combined in attention/norm_rope scopes" in out,
      "dump: QK norm + RoPE miss with combined time")
check("By scope" in out and "By denoise step" in out, "dump: per scope and per step")
rc, out, _ = run(os.path.join(fx, "dump_norm_outside_attention.json"))
check(rc == 0 and "fused QK norm + RoPE" not in out, "norm/rope outside attention: no QK hint")
rc, out, _ = run(os.path.join(fx, "dump_qknorm_fused.json"))
check(rc == 0 and "engaged   fused QK norm + RoPE" in out and "hint:" not in out, "fused QK: engaged")

# A dump written before kernel names were demangled: read demangled, ranked and matched by the
# demangled text (SDPA's FlashAttention-2 kernels say "pytorch_flash::" only there).
old_dump = json.load(open(dump))
fa2 = "_ZN13pytorch_flash16flash_fwd_kernelINS_23Flash_fwd_kernel_traitsIN3c108BFloat16EEELb1EEEvi"
old_dump["diffscope"]["kernels"][0]["name"] = fa2
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "old.json")
    json.dump(old_dump, open(path, "w"))
    rc, out, err = run(path)
    check(rc == 0 and "_Z" not in out, f"old dump: no mangled name in the output ({err!r})")
    check("[pytorch_flash::flash_fwd_kernel]" in out, "old dump: the kernel named demangled")
    check("\n  flash_fwd_kernel<pytorch_flash::Flash_fwd_kernel_traits<c10::BFloat16>, true>  " in out,
          "old dump: the kernel ranked by its short demangled name")
    check("SDPA FlashAttention-2 backend" in out, "old dump: the family matched on the demangled name")

# A layerwise model's dump: "By scope" rows are paths with each name relative to its parent's,
# cut in the middle, never two alike; kernels by their short demangled names.
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "layerwise.json")
    json.dump(layerwise_dump(), open(path, "w"))
    rc, out, err = run("--top", "100", path)
    check(rc == 0, f"layerwise dump: exit 0 ({err!r})")
    lines = out.splitlines()
    head = lines.index("By scope (innermost scope the operations were attributed to)") + 1
    col = lines[head].index("top kernel")
    labels = []
    for l in lines[head + 1:]:
        if not l.startswith("  "):
            break
        labels.append(l[2:col].rstrip())
    check(len(labels) == 50 and len(set(labels)) == len(labels),
          f"layerwise dump: 50 distinct scope rows ({len(labels)}, {len(set(labels))} distinct)")
    check(all(len(l) <= 60 for l in labels), "layerwise dump: scope labels at most 60 columns")
    check(any(l.endswith("/.ff/.net.0.proj") for l in labels),
          "layerwise dump: names relative to their parent's, the leaf kept")
    check("\n  conv2d_kernel<float>  " in out and "void " not in out,
          "layerwise dump: kernels by their short names")

# A dump names its window: hotspots prints the window's own totals (every kernel it saw, the
# dump listing its longest), and the work outside its requests apart; a dump written before
# windows ranks what it lists, as it did.
with tempfile.TemporaryDirectory() as tmp:
    kernels = [{"name": f"void gemm_{i}<float>(float*)", "kind": "kernel", "scope_path": "request/x",
                "count": 10, "total_ms": 50.0 - i} for i in range(3)]
    dump = {"total_duration_ms": 900.0, "diffscope": {
        "requests": {"count": 2, "warmups": 1, "list": [
            {"index": 0, "id": "warmup", "warmup": True, "e2e_ms": 500.0},
            {"index": 1, "id": "a", "warmup": False, "e2e_ms": 400.0},
            {"index": 2, "id": "b", "warmup": False, "e2e_ms": 400.0}]},
        "window": {"covers": "last", "requests": [{"index": 2, "id": "b"}], "kernel_names": 212,
                   "gpu": {"busy_ms": 871.2, "operations": 22100, "kernels": 22000,
                           "memcpys": 100, "memsets": 0},
                   "outside": {"busy_ms": 421.0, "operations": 22000, "kernels": 22000,
                               "memcpys": 0, "memsets": 0},
                   "warmups": {"busy_ms": 400.0, "operations": 21000, "kernels": 21000,
                               "memcpys": 0, "memsets": 0}},
        "kernels_total": 591, "kernels": kernels}}
    path = os.path.join(tmp, "window.json")
    json.dump(dump, open(path, "w"))
    rc, out, err = run(path)
    check(rc == 0, f"window dump: exit 0 ({err!r})")
    check("(the dump lists the top 3 of 591)" in out, "window dump: entries listed of the total")
    check("\nwindow: the last of 2 counted requests (id b); 871.20 ms of GPU work in 22100 "
          "operations\n" in out, f"window dump: the window's own totals ({out[:400]!r})")
    check("\noutside requests: 421.00 ms of GPU work in 22000 operations (warm-ups: 400.00 ms in "
          "21000), not ranked\n" in out, "window dump: the work outside its requests, apart")
    check("Top 3 of 212 kernels by total GPU time (871.20 ms in 22100 operations)" in out,
          "window dump: top N of the window's kernel names, its totals")
    check("  (not listed) " in out, "window dump: the kernels it does not list, one category row")
    del dump["diffscope"]["window"]
    json.dump(dump, open(path, "w"))
    rc, out, err = run(path)
    check(rc == 0 and "window:" not in out and "outside requests" not in out
          and "Top 3 of 3 kernels by total GPU time (147.00 ms in 30 operations)" in out,
          f"old dump: ranked from what it lists ({out[:400]!r})")

rc, out, err = run("--rules", os.path.join(fx, "custom.rules"), fused)
check(rc == 0 and "custom rules" in out and " attention_any " in out, f"--rules: {err}")
bad = os.path.join(fx, "bad_regex.rules")
rc, out, err = run("--rules", bad, fused)
check(rc == 2 and f"{bad}:4: bad regex '(unclosed|paren'" in err and out == "", f"bad regex: {err!r}")
rc, out, _ = run("--print-rules")
check(rc == 0 and "gemm              gemm|nvjet|cutlass" in out, "--print-rules")

for name, why in [("truncated.json", "truncated"), ("not_json.txt", "not JSON"),
                  ("not_gzip.json.gz", "not JSON"), ("no_trace_events.json", "neither a Chrome trace"),
                  ("trace_events_object.json", "traceEvents is not an array"),
                  ("event_not_object.json", "traceEvents[1] is not an object"),
                  ("dur_string.json", "\"dur\" that is not a number"),
                  ("dump_kernels_wrong_type.json", "count is not a number"),
                  ("missing_file.json", "cannot open")]:
    p = os.path.join(fx, name)
    rc, out, err = run(p)
    check(rc == 2 and p in err and why in err and out == "" and err.count("\n") == 1,
          f"{name}: want exit 2 and '{why}', got {rc} {err!r}")
for args, why in [(["--top", "0", unfused], "--top"), (["--top"], "--top needs"), ([], "no FILE"),
                  (["--bogus", unfused], "unknown option")]:
    rc, out, err = run(*args)
    check(rc == 2 and why in err, f"{args}: {rc} {err!r}")

# A sampled-mode dump: its traced steps are named, its kernels said to be estimates.
with tempfile.TemporaryDirectory() as tmp:
    d = {"diffscope": {"status": {"gpu_timing": True, "mode": "sampled"},
                       "sampling": {"rule": "steps 1-2", "steps": 8, "traced_steps": 2,
                                    "traced_indices": [1, 2]},
                       "kernels": [{"name": "nvjet_gemm", "kind": "kernel", "count": 40,
                                    "total_ms": 12.0, "estimated": True, "error_ms": 0.5}]}}
    path = os.path.join(tmp, "sampled.json")
    json.dump(d, open(path, "w"))
    rc, out, err = run(path)
    check(rc == 0 and "sampled mode: steps 1-2, traced 2 of 8 steps (1, 2); the kernels inside "
          "denoise steps are estimates" in out, f"sampled dump: {rc} {out!r} {err!r}")
    rc, out, err = run(os.path.join(fx, "dump_qknorm_fused.json"))
    check(rc == 0 and "sampled mode" not in out, "a dump that is not sampled says nothing of it")

if failures:
    print("FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("test_hotspots_cli: all checks passed")
