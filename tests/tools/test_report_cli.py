#!/usr/bin/env python3
"""Tests `diffscope report` through the binary: pages from the fixtures in tests/fixtures/compare
(one dump, a compare of two, repeated runs, a multi-rank merge, a host-only dump, an SGLang
dump, an empty one), a generated dump with every table, and large generated dumps (1,000 scopes,
100 steps, 8 ranks: each page under 1 s of CPU time in an optimised build, and under 2 MB). Each chart's bars and points are counted
from the page and checked against the dump; --svg-dir files parse as XML; bad input exits 2
naming the file and writes nothing. Then the same pages in headless Chromium: the DOM it dumps
must hold the same charts, the console must stay silent, and a screenshot of each goes to
$DIFFSCOPE_ARTIFACTS (default: WORK_DIR/artifacts). Without chromium the browser part is
skipped, and says so.
Usage: test_report_cli.py DIFFSCOPE_BINARY FIXTURE_DIR WORK_DIR
Exit 0 when every check passes, 1 otherwise (each failure printed)."""
import gzip
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

failures = []
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def run(binary, *args, cwd=None, stdin=None, timeout=60):
    p = subprocess.run([binary, *args], capture_output=True, cwd=cwd, input=stdin,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class Page(HTMLParser):
    """The charts of a page: per data-chart element its attributes and the class names of
    every element inside it; plus the data-missing notes and the Markdown block."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.charts, self.missing, self.tables = {}, [], {}
        self.buttons, self.markdown, self.scripts_src = [], None, []
        self.stack, self.open_chart, self.in_md, self.in_button = [], None, False, False
        self.current_table = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if self.open_chart is not None:
            self.charts[self.open_chart]["classes"].extend(classes)
        if "data-chart" in a and self.open_chart is None:
            self.open_chart = a["data-chart"]
            self.charts[self.open_chart] = {"attrs": a, "classes": [], "depth": len(self.stack),
                                            "tag": tag}
        if "data-missing" in a:
            self.missing.append(a["data-missing"])
        if "data-table" in a:
            self.tables[a["data-table"]] = 0
            self.current_table = a["data-table"]
        if tag == "tr" and self.current_table:
            self.tables[self.current_table] += 1
        if tag == "pre" and "md" in classes:
            self.in_md, self.markdown = True, ""
        if tag == "button":
            self.in_button = True
            self.buttons.append("")
        if tag in ("script", "link", "img", "iframe") and (a.get("src") or a.get("href")):
            self.scripts_src.append(a.get("src") or a.get("href"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        if self.open_chart is not None:
            self.charts[self.open_chart]["classes"].extend((a.get("class") or "").split())

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.stack:
            t = self.stack.pop()
            if t == tag:
                break
        if self.open_chart is not None and len(self.stack) <= self.charts[self.open_chart]["depth"]:
            self.open_chart = None
        if tag == "pre":
            self.in_md = False
        if tag == "table":
            self.current_table = None
        if tag == "button":
            self.in_button = False

    def handle_data(self, data):
        if self.in_md:
            self.markdown += data
        if self.in_button and self.buttons:
            self.buttons[-1] += data

    def count(self, chart, cls):
        return self.charts[chart]["classes"].count(cls)


def check_page(name, page, expect, missing=(), absent=()):
    """expect: {chart id: (attribute, count)} with attribute data-bars or data-points."""
    for chart, info in page.charts.items():
        a = info["attrs"]
        if "data-bars" in a:
            check(int(a["data-bars"]) == page.count(chart, "bar"),
                  f"{name}: {chart} data-bars {a['data-bars']} = bars drawn "
                  f"{page.count(chart, 'bar')}")
        if "data-points" in a:
            check(int(a["data-points"]) == page.count(chart, "pt"),
                  f"{name}: {chart} data-points {a['data-points']} = points drawn "
                  f"{page.count(chart, 'pt')}")
    for chart, (attr, n) in expect.items():
        got = page.charts.get(chart, {}).get("attrs", {}).get(attr)
        check(got is not None and int(got) == n, f"{name}: chart {chart} has {attr} {n} ({got})")
    for key in missing:
        check(key in page.missing, f"{name}: says what is missing: {key} ({page.missing})")
    for chart in absent:
        check(chart not in page.charts, f"{name}: no {chart} chart")
    check(not page.scripts_src, f"{name}: no external script, style sheet or image "
                                f"({page.scripts_src})")


# ---- dumps ---------------------------------------------------------------------------------

KERNELS = [("void cutlass::Kernel2", "<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64>(Params)",
            "mlp"),
           ("flash::FlashAttnFwdSm90", "<cutlass::bfloat16_t>", "attn"),
           ("void vllm::rms_norm_kernel", "<c10::BFloat16>(float)", "norm"),
           ("void apply_rotary_embedding", "<float>(float*)", "attn"),
           ("ncclDevKernel_SendRecv", "(ncclDevComm*)", "attn"),
           ("triton_poi_fused_add_mul_0", "", "mlp"),
           ("void at::native::elementwise_kernel", "<128, 4>(int)", "mlp"),
           ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", "", "mlp")]


def gpu(busy, env):
    return {"busy_ms": busy, "occupied_ms": busy, "envelope_ms": env, "kernels": 3,
            "memcpys": 0, "memsets": 0, "bytes": 0}


def make_dump(n_scopes, n_steps, rank=0, world=1, seed=0, hotspots=False, comm=True,
              n_kernels=50, step_categories=False):
    """A diffscope dump with every table the page reads; with step_categories, each step's
    busy by kernel category (odd steps without rope), as profile mode writes it now."""
    rnd = random.Random(seed + 1000 * rank)
    stages = [("InputValidationStage", None), ("TextEncodingStage", 25.0),
              ("LatentPreparationStage", 3.0), ("DenoisingStage", None), ("DecodingStage", 210.0)]
    step_rows = []
    for i in range(n_steps):
        env = 20.0 + rnd.random() * 4 + (1.5 if i % 7 == rank % 7 else 0)
        step_rows.append({"step": i, "calls": 1, "duration_ms": env,
                          "duration_source": "gpu_envelope", "host_ms": env * 0.6,
                          "start_ms": 100 + 25 * i, "gpu": gpu(env * 0.9, env)})
        if step_categories:
            busy = env * 0.9
            parts = [("gemm", 0.5), ("attention", 0.3), ("norm", 0.1)] + (
                [("rope", 0.05)] if i % 2 == 0 else [])
            cats = {c: busy * f for c, f in parts}
            cats["misc"] = busy - sum(cats.values())
            step_rows[-1]["categories"] = cats
    denoise = sum(s["duration_ms"] for s in step_rows)
    stage_rows = []
    for name, ms in stages:
        if name == "DenoisingStage":
            ms = denoise + 1
        if ms is None:
            stage_rows.append({"name": name, "calls": 1, "duration_ms": 0.3,
                               "duration_source": "host", "host_ms": 0.3, "start_ms": 0,
                               "gpu": None})
        else:
            stage_rows.append({"name": name, "calls": 1, "duration_ms": ms,
                               "duration_source": "gpu_envelope", "host_ms": ms * 0.7,
                               "start_ms": 1, "gpu": gpu(ms * 0.9, ms)})
    scopes = [{"path": "TextEncodingStage", "category": "stage", "calls": 1,
               "host": {"sum_ms": 17.0}, "gpu": gpu(22.0, 25.0)},
              {"path": "DenoisingStage", "category": "stage", "calls": 1,
               "host": {"sum_ms": denoise * 0.6}, "gpu": gpu(denoise * 0.9, denoise)},
              {"path": "DenoisingStage/denoise_step", "category": "denoise_step",
               "calls": n_steps, "host": {"sum_ms": denoise * 0.6},
               "gpu": gpu(denoise * 0.9, denoise)}]
    block = 0
    while len(scopes) < n_scopes - 1:
        base = f"DenoisingStage/denoise_step/transformer.blocks.{block}"
        for child in ["", "/attn", "/attn/norm_rope", "/mlp"]:
            if len(scopes) >= n_scopes - 1:
                break
            busy = rnd.random() * 5
            s = {"path": base + child, "category": "attention" if "attn" in child else "other",
                 "calls": n_steps, "host": {"sum_ms": busy / 3}, "gpu": gpu(busy, busy * 1.1)}
            if comm and child == "/attn":
                b = rnd.random() * 2
                o = b * rnd.random()
                s["comm"] = {"busy_ms": b, "overlapped_ms": o, "exposed_ms": b - o,
                             "kernels": 2 * n_steps}
            scopes.append(s)
        block += 1
    scopes.append({"path": "DecodingStage", "category": "stage", "calls": 1,
                   "host": {"sum_ms": 150.0}, "gpu": None})
    kernels = []
    for i in range(n_kernels):
        name, rest, where = KERNELS[i % len(KERNELS)]
        b = i // len(KERNELS)
        kernels.append({"name": (name if b == 0 else f"{name}_{b}") + rest, "kind": "kernel",
                        "scope_path": f"DenoisingStage/denoise_step/transformer.blocks.{b}/{where}",
                        "count": n_steps * 2, "total_ms": 5 + rnd.random() * 30})
    d = {"timestamp": "2025-12-18T09:54:57.458009+00:00", "request_id": f"req-{rank}",
         "commit_hash": "0123456789abcdef0123456789abcdef01234567", "tag": "cli_generate",
         "total_duration_ms": denoise + 260,
         "steps": [{"name": s["name"], "duration_ms": s["duration_ms"]} for s in stage_rows],
         "denoise_steps_ms": [{"step": s["step"], "duration_ms": s["duration_ms"]}
                              for s in step_rows],
         "memory_checkpoints": {},
         "meta": {"model": "Wan-AI/Wan2.1-T2V-1.3B", "prompt": "a <b>cat</b> & \"dog\""},
         "diffscope": {
             "schema_version": 1, "version": "0.1.0",
             "status": {"gpu_timing": True, "reason": "", "mode": "profile"},
             "gate": {"gated": True, "verdict": "valid"},
             "environment": {"gpu_name": "NVIDIA H200", "device_count": 1,
                             "driver_version": 13000, "rank": rank, "world_size": world,
                             "local_rank": rank},
             "stages": stage_rows, "steps": step_rows,
             "requests": {"count": 1, "warmups": 1},
             "scopes": scopes, "kernels_total": n_kernels + 7, "kernels": kernels,
             "faults": {"dropped_records": 0, "unbalanced_pops": 2 if rank == 1 else 0},
             "overhead": {"ranges": 1234, "callbacks": 5000, "records": 5000, "buffers": 3,
                          "per_launch_callback_ns": 1500.0, "per_range_ns": 120.0}}}
    if hotspots:
        d["diffscope"]["hotspots"] = {
            "total_ms": 100.0, "rules": "sglang_default",
            "categories": [{"category": c, "count": 10, "total_ms": t, "share": t}
                           for c, t in [("gemm", 50.0), ("attention", 30.0), ("norm", 20.0)]],
            "families": [{"family": "qknorm_rope", "title": "fused QK norm + RoPE",
                          "status": "missed", "kernels": ["void vllm::rms_norm_kernel<x>(float)"],
                          "count": 4, "time_ms": 3.5, "evidence": "4 separate kernels",
                          "hint": "fuse them"}]}
    return d


def write(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
    return path


def html_of(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def not_legacy(name):
    return not re.fullmatch(r"denoising_step_\d+", name)


# ---- the checks ----------------------------------------------------------------------------

def main():
    binary, fixtures, work = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    binary = os.path.abspath(binary)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    artifacts = os.environ.get("DIFFSCOPE_ARTIFACTS") or os.path.join(work, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    fx = lambda name: os.path.join(fixtures, name)  # noqa: E731
    pages = {}  # name -> (html path, expectations)
    mask = lambda t: re.sub(r"- Timestamp: \S+", "- Timestamp: <now>", t)  # noqa: E731

    def report(name, *args, expect=None, missing=(), absent=()):
        out = os.path.join(work, name + ".html")
        rc, stdout, err = run(binary, "report", *args, "-o", out)
        check(rc == 0 and err == "" and stdout == "", f"{name}: exit 0, nothing printed ({rc}, "
                                                       f"{err.strip()!r})")
        if rc != 0:
            return None
        page = Page(html_of(out))
        check_page(name, page, expect or {}, missing, absent)
        pages[name] = (out, expect or {}, missing, absent)
        return page

    # One diffscope dump with scopes but no stage/step tables or kernels.
    base = json.load(open(fx("ds_base.json")))
    stages = [s for s in base["steps"] if not_legacy(s["name"])]
    gpu_scopes = [s for s in base["diffscope"]["scopes"] if s.get("gpu")]
    p = report("single", fx("ds_base.json"),
               expect={"stages": ("data-bars", len(stages)),
                       "steps": ("data-points", len(base["denoise_steps_ms"])),
                       "scope-tree": ("data-bars", len(gpu_scopes))},
               missing=("stages-detail", "steps-detail", "step-categories", "categories",
                        "kernels", "fast-paths"),
               absent=("kernels", "categories"))
    if p:
        check(p.charts["scope-tree"]["attrs"]["data-rows"] == str(len(base["diffscope"]["scopes"])),
              "single: every scope is a row of the tree")
        check(p.tables == {}, "single: no kernel or fast-path table without kernels")

    # Host only: GPU timing not measured.
    nogpu = json.load(open(fx("ds_nogpu.json")))
    report("host_only", fx("ds_nogpu.json"),
           expect={"stages": ("data-bars", len([s for s in nogpu["steps"] if not_legacy(s["name"])]))},
           missing=("scopes-gpu", "categories", "step-categories", "kernels"))
    text = html_of(os.path.join(work, "host_only.html"))
    check("by kernel category: GPU timing was not measured" in text,
          "host_only: no per-step categories, and why")
    check("not measured</span> (no CUDA driver)" in text, "host_only: says GPU timing was not "
                                                          "measured and why")

    # An SGLang dump and an empty one: what is missing is said, nothing crashes.
    report("sglang", fx("sg_base.json"), missing=("scopes", "categories", "kernels"))
    empty = write(os.path.join(work, "empty.json"), {"steps": []})
    report("empty", empty, missing=("stages", "steps", "scopes", "kernels"),
           absent=("stages", "steps", "scope-tree"))

    # Compare of two: verdicts and the Markdown of `diffscope compare`.
    new = json.load(open(fx("ds_new.json")))
    names = []
    for d in (new, base):  # compare_perf's order: the newest file's stages first
        for s in d["steps"]:
            n = "Denoising Loop" if not not_legacy(s["name"]) else s["name"]
            if n not in names:
                names.append(n)
    scope_paths = {s["path"] for d in (base, new) for s in d["diffscope"]["scopes"]
                   if s.get("gpu")}
    p = report("compare", fx("ds_base.json"), fx("ds_new.json"),
               expect={"compare-stages": ("data-bars", 2 * (1 + len(names))),
                       "compare-steps": ("data-bars", 2 * len(base["denoise_steps_ms"])),
                       "compare-scopes": ("data-bars", len(scope_paths))},
               missing=("compare-kernels",))
    rc, md, _ = run(binary, "compare", fx("ds_base.json"), fx("ds_new.json"))
    if p:
        check(p.markdown is not None and mask(p.markdown) == mask(md),
              "compare: the Markdown block is what diffscope compare prints")
        check("compare-stages" in p.charts and "faster (-6.8%)" in html_of(pages["compare"][0]),
              "compare: end to end verdict as compare_perf gives it (-6.8%: faster)")

    # Kernels: the bars are compare's kernel diff (its rows, and per bar the verdict and
    # added/removed); the Markdown carries the same section.
    p = report("compare_kernels", fx("kd_base.json"), fx("kd_new.json"),
               expect={"compare-kernels": ("data-bars", 9)})
    rc, md, _ = run(binary, "compare", fx("kd_base.json"), fx("kd_new.json"))
    if p:
        page = html_of(pages["compare_kernels"][0])
        check(mask(p.markdown) == mask(md) and "#### 4. diffscope: GPU time per kernel" in md,
              "compare_kernels: the Markdown block is compare's, kernel diff included")
        check(">faster, removed<" in page and ">slower, added<" in page,
              "compare_kernels: bars noted with their verdict and added/removed")
    report("compare_kernels_perf", fx("kd_perf.json"), fx("kd_perf.json"),
           missing=("compare-kernels",))
    if "compare_kernels_perf" in pages:
        check("no per-kernel changes: kd_perf.json: a perf-mode dump" in
              html_of(pages["compare_kernels_perf"][0]),
              "compare_kernels_perf: why there are no kernel bars, as compare says it")

    # Four dumps, host-timed and device-timed mixed: every dump a series, the mix is said.
    multi = [fx(n) for n in ("ds_base.json", "ds_new.json", "ds_nogpu.json", "sg_new.json")]
    loaded = [json.load(open(f)) for f in multi]
    names = []
    for d in reversed(loaded):
        for s in d["steps"]:
            n = "Denoising Loop" if not not_legacy(s["name"]) else s["name"]
            if n not in names:
                names.append(n)
    p = report("compare_four", *multi,
               expect={"compare-stages": ("data-bars", 4 * (1 + len(names))),
                       "compare-steps": ("data-bars",
                                         sum(len(d["denoise_steps_ms"]) for d in loaded))},
               missing=("timing-mix", "compare-scopes-2", "compare-scopes-3"))
    rc, md, _ = run(binary, "compare", *multi)
    if p:
        check(p.markdown is not None and mask(p.markdown) == mask(md),
              "compare_four: the Markdown block is what diffscope compare prints")

    # Repeated runs: medians and verdicts as `compare --base/--new`.
    rb = [fx(f"rep_base_{i}.json") for i in (1, 2, 3)]
    rn = [fx(f"rep_new_{i}.json") for i in (1, 2, 3)]
    p = report("repeated", "--labels", "before,after", "--base", *rb, "--new", *rn)
    rc, md, _ = run(binary, "compare", "--base", *rb, "--new", *rn)
    if p:
        check(p.markdown == md, "repeated: the Markdown block is what compare --base/--new prints")
        text = html_of(pages["repeated"][0])
        for row in md.splitlines():
            m = re.match(r"\| Denoise step (\d+) \|.*\| (\w+) \|$", row)
            if m:
                check(re.search(rf">step {m.group(1)}<title>[^\n]*<text[^>]*>{m.group(2)}</text></g>",
                                text) is not None,
                      f"repeated: step {m.group(1)} verdict on the chart is compare's "
                      f"({m.group(2)})")
        check("before median" in text and "after median" in text, "repeated: --labels name sides")

    # Multi-rank merge through diffscope merge.
    merged = os.path.join(work, "merged.json")
    rc, _, err = run(binary, "merge", "-o", merged, fx("rank0.json"), fx("rank1.json"))
    check(rc == 0, f"merge of rank0/rank1 ({err.strip()})")
    m = json.load(open(merged))
    cp = m["diffscope"]["critical_path"]
    stage_bars = sum(len(s["ranks"]) for s in cp["stages"] if not_legacy(s["name"]))
    report("merged", merged,
           expect={"merge-steps": ("data-points", 2 * len(cp["denoise_steps"])),
                   "merge-spread": ("data-bars", len(cp["denoise_steps"])),
                   "merge-stages": ("data-bars", stage_bars),
                   "merge-stragglers": ("data-bars",
                                        len({s["straggler_rank"] for s in cp["denoise_steps"]}))},
           missing=("stages-detail", "communication", "scopes", "kernels"))
    text = html_of(os.path.join(work, "merged.html"))
    for s in cp["denoise_steps"]:
        check(f"straggler: rank {s['straggler_rank']} " in text,
              f"merged: step {s['step']} names straggler rank {s['straggler_rank']}")
    check("dropped_records=" in text and 'class="fault"' in text, "merged: faults are shown")

    # A dump with every table (stages, steps, scopes, kernels, comm), read from gzip.
    rich = make_dump(24, 12, seed=3)
    rich_path = os.path.join(work, "rich.json.gz")
    with gzip.open(rich_path, "wt", encoding="utf-8") as f:
        json.dump(rich, f)
    ds = rich["diffscope"]
    names = {k["name"] for k in ds["kernels"]}
    comm_scopes = [s for s in ds["scopes"] if "comm" in s]
    svg_dir = os.path.join(work, "svg")
    p = report("rich", rich_path, "--svg-dir", svg_dir,
               expect={"stages": ("data-bars", sum((s["gpu"] is not None) + 1
                                                   for s in ds["stages"])),
                       "steps": ("data-points", 3 * len(ds["steps"])),
                       "kernels": ("data-bars", min(20, len(names))),
                       "scope-tree": ("data-bars", sum(1 for s in ds["scopes"] if s["gpu"])),
                       "comm": ("data-bars", sum((s["comm"]["overlapped_ms"] > 0) +
                                                 (s["comm"]["exposed_ms"] > 0)
                                                 for s in comm_scopes))},
               missing=("step-categories",))
    if p:
        check(p.tables.get("kernels") == len(names) + 1, "rich: kernel table row per name")
        check("scope-categories" in p.charts and "categories" in p.charts,
              "rich: categories over the run and per scope")
        text = html_of(pages["rich"][0])
        check("a &lt;b&gt;cat&lt;/b&gt; &amp; &quot;dog&quot;" in text, "rich: meta escaped")
        check("NVIDIA H200" in text and "valid" in text and "1 counted, 1 warm-up excluded" in text
              and "1500 ns per launch callback" in text, "rich: GPU, gate, requests, overhead")
        check("<dt>window</dt>" not in text and "<dt>outside requests</dt>" not in text,
              "rich: a dump written before windows names none")
        svgs = sorted(os.listdir(svg_dir))
        want = sorted(c + ".svg" for c in p.charts)
        check(svgs == want, f"--svg-dir: one file per chart ({svgs} vs {want})")
        for name in svgs:
            try:
                root = ET.parse(os.path.join(svg_dir, name)).getroot()
                ok = root.tag == "{http://www.w3.org/2000/svg}svg"
                bars = sum(1 for e in root.iter() if "bar" in (e.get("class") or "").split())
                pts = sum(1 for e in root.iter() if "pt" in (e.get("class") or "").split())
                ok = ok and (bars == int(root.get("data-bars", bars)) and
                             pts == int(root.get("data-points", pts)))
                titled = all(any(c.tag.endswith("title") for c in e)
                             for e in root.iter() if (e.get("class") or "") in ("bar", "pt"))
                check(ok and titled, f"--svg-dir {name}: XML, counts match, a title on every "
                                     "bar and point")
            except ET.ParseError as e:
                check(False, f"--svg-dir {name}: not XML ({e})")

    # Per-step categories (profile mode's dumps now): one stacked bar per step, one segment
    # per category that ran in it.
    stepcat = make_dump(12, 6, seed=4, step_categories=True)
    stepcat_path = write(os.path.join(work, "stepcat.json"), stepcat)
    segments = sum(1 for st in stepcat["diffscope"]["steps"]
                   for v in st["categories"].values() if v > 0)
    p = report("stepcat", stepcat_path, expect={"step-categories": ("data-bars", segments)})
    if p:
        check("step-categories" not in p.missing, "stepcat: no missing note when every step has "
                                                  "categories")
        text = html_of(pages["stepcat"][0])
        st = stepcat["diffscope"]["steps"][2]
        check(f"step 2, attention: {st['categories']['attention']:.6g} ms</title>" in text,
              "stepcat: a segment's title holds its step, category and value")
        for c in ("gemm", "attention", "norm", "rope", "misc"):
            check(f">{c}</text>" in text, f"stepcat: the legend names {c}")
        check("GPU busy (ms)" in text, "stepcat: the value axis says GPU busy and its unit")
    # Without them, the note says why: an older dump, host only, perf mode.
    text = html_of(pages["rich"][0])
    check("written before diffscope.steps[].categories" in text,
          "rich: an older dump's missing per-step categories are said so")
    # Sampled mode: the mode names the traced steps, the per-step chart holds those only, the
    # steps' line the spans, and estimated kernels say so.
    smp = make_dump(12, 6, seed=7, step_categories=True)
    ds = smp["diffscope"]
    ds["status"]["mode"] = "sampled"
    ds["sampling"] = {"rule": "steps 1-2", "steps": 6, "traced_steps": 2, "traced_indices": [1, 2],
                      "switches": 2, "switch_ms": 0.5, "launches_traced": 100,
                      "launches_untraced_estimated": 200, "saved_callback_ms_estimated": 0.3}
    for st in ds["steps"]:
        st["traced"] = st["step"] in (1, 2)
        st["gpu"]["span_ms"] = st["duration_ms"]
        st["duration_source"] = "gpu_span"
        if not st["traced"]:
            st.pop("categories")
    ds["kernels"][0]["estimated"] = True
    ds["kernels"][0]["error_ms"] = 0.5
    segments = sum(1 for st in ds["steps"] if st["traced"]
                   for v in st["categories"].values() if v > 0)
    p = report("sampled", write(os.path.join(work, "sampled.json"), smp),
               expect={"step-categories": ("data-bars", segments)})
    if p:
        text = html_of(pages["sampled"][0])
        check("sampled: steps 1-2, traced 2 of 6 steps (1, 2)" in text,
              "sampled: the mode names the rule and the traced steps")
        check("Only the traced steps (sampled mode: steps 1-2" in text,
              "sampled: the per-step chart says it holds the traced steps only")
        check("<title>step 0, " not in text and "<title>step 1, " in text,
              "sampled: an untraced step is not in the per-step chart")
        check("(estimate)" in text, "sampled: an estimated kernel is marked")
        check("GPU span" in text, "sampled: the steps' line is their span")
    perf = make_dump(12, 4, seed=6)
    perf["diffscope"]["status"]["mode"] = "perf"
    report("perf_mode", write(os.path.join(work, "perf_mode.json"), perf),
           missing=("step-categories",))
    check("perf mode times scopes" in html_of(pages["perf_mode"][0]),
          "perf_mode: no per-step categories, perf mode named as the reason")

    # Names that need escaping, in a page and its SVGs.
    evil = make_dump(8, 3, seed=5)
    evil["diffscope"]["scopes"][1]["path"] = "<script>alert(1)</script>&'\"\x01"
    evil["steps"][0]["name"] = "</style><script>alert(2)</script>"
    evil["diffscope"]["stages"][0]["name"] = evil["steps"][0]["name"]
    report("escaping", write(os.path.join(work, "evil.json"), evil), "--svg-dir",
           os.path.join(work, "svg-evil"))
    text = html_of(os.path.join(work, "escaping.html"))
    check("<script>alert" not in text and text.count("<script>") == 1,
          "escaping: names never become markup")
    for name in os.listdir(os.path.join(work, "svg-evil")):
        try:
            ET.parse(os.path.join(work, "svg-evil", name))
        except ET.ParseError as e:
            check(False, f"escaping: {name} is not XML ({e})")

    # stdin and stdout.
    with open(fx("ds_base.json"), "rb") as f:
        rc, out, err = run(binary, "report", "-", stdin=f.read())
    check(rc == 0 and out.startswith("<!DOCTYPE html>") and out.endswith("</html>\n"),
          "stdin in, page on stdout")

    # Bad input: exit 2, one line naming the file or option, no output written.
    bad_type = write(os.path.join(work, "bad_type.json"),
                     {"diffscope": {"steps": [{"step": 0, "host_ms": "x"}]}})
    bad_fault = write(os.path.join(work, "bad_fault.json"),
                      {"diffscope": {"faults": {"dropped_records": -1}}})
    not_json = os.path.join(work, "not_json.json")
    with open(not_json, "w") as f:
        f.write("{not json")
    out = os.path.join(work, "never.html")
    for args, text in [
        ([fx("missing.json")], "missing.json: cannot open"),
        ([bad_type], "bad_type.json: diffscope.steps[0].host_ms is not a number"),
        ([bad_fault], "bad_fault.json: diffscope.faults.dropped_records is not a non-negative"),
        ([fx("ds_base.json"), not_json], "not_json.json: not valid JSON"),
        ([work], "is a directory"),
        ([fx("ds_base.json"), "--labels", "a,b"], "--labels: 2 label(s) for 1"),
        ([fx("ds_base.json"), fx("ds_new.json"), "--labels", "a"], "--labels: 1 label(s) for 2"),
        (["--labels", "a,,b", fx("ds_base.json")], "empty label"),
        (["--base", fx("ds_base.json")], "--base and --new each need"),
        (["--bogus", fx("ds_base.json")], "unknown option '--bogus'"),
        (["-o", out, fx("ds_base.json")], "-o: given more than once"),
        ([], "no DUMP"),
    ]:
        rc, stdout, err = run(binary, "report", *args, "-o", out)
        check(rc == 2 and text in err and len(err.strip().splitlines()) == 1 and stdout == ""
              and not os.path.exists(out),
              f"bad input {args[-1] if args else '(none)'}: exit 2, '{text}', nothing written "
              f"({rc}, {err.strip()!r})")
        if os.path.exists(out):
            os.remove(out)
    rc, _, err = run(binary, "report", fx("ds_base.json"), "-o", work)
    check(rc == 2 and work in err, f"-o at a directory: exit 2 naming it ({err.strip()!r})")

    # A dump that names its window: the header says which requests every table covers and
    # what GPU work was outside them; kernel shares are of the window's own total.
    windowed = make_dump(8, 4, seed=5, n_kernels=3)
    windowed["diffscope"]["requests"] = {"count": 2, "warmups": 0, "list": [
        {"index": 0, "id": "a", "warmup": False, "e2e_ms": 9.0},
        {"index": 1, "id": "b", "warmup": False, "e2e_ms": 9.0}]}
    listed = sum(k["total_ms"] for k in windowed["diffscope"]["kernels"])
    windowed["diffscope"]["window"] = {
        "covers": "last", "requests": [{"index": 1, "id": "b"}], "kernel_names": 40,
        "gpu": {"busy_ms": 2 * listed, "operations": 1000, "kernels": 1000, "memcpys": 0,
                "memsets": 0},
        "outside": {"busy_ms": 421.0, "operations": 22000, "kernels": 22000, "memcpys": 0,
                    "memsets": 0},
        "warmups": None}
    p = report("windowed", write(os.path.join(work, "windowed.json"), windowed))
    if p:
        text = html_of(os.path.join(work, "windowed.html"))
        check("<dt>window</dt><dd>the last of 2 counted requests (id b), in every table below</dd>"
              in text, "windowed: the window in the header")
        check("<dt>outside requests</dt><dd>421.00 ms of GPU work in 22000 operations, in no "
              "table</dd>" in text, "windowed: the work outside its requests in the header")

    # Large dumps: 1,000 scopes, 100 steps, 8 ranks.
    ranks = []
    for r in range(8):
        ranks.append(write(os.path.join(work, f"big_rank{r}.json"),
                           make_dump(1000, 100, rank=r, world=8, seed=11, hotspots=True)))
    big_merged = os.path.join(work, "big_merged.json")
    rc, _, err = run(binary, "merge", "-o", big_merged, *ranks)
    check(rc == 0, f"merge of 8 large ranks ({err.strip()})")
    def cpu_time(*args):
        """(CPU seconds, wall seconds, rc, stderr) of `diffscope ARGS`, the best of three: CPU
        time (user + system), since the wall clock of a shared machine measures its
        neighbours too."""
        cpu = wall = None
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.monotonic()
            rc, _, err = run(binary, *args)
            took = time.monotonic() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpu = used if cpu is None else min(cpu, used)
            wall = took if wall is None else min(wall, took)
        return cpu, wall, rc, err

    for name, args, same_reads in [
            ("big_single", [ranks[0]], [ranks[0], ranks[0]]),
            ("big_merged", [big_merged], [big_merged, big_merged]),
            ("big_compare", [ranks[0], ranks[1]], [ranks[0], ranks[1]]),
            ("big_repeated", ["--base", *ranks[:4], "--new", *ranks[4:]],
             ["--base", *ranks[:4], "--new", *ranks[4:]])]:
        out = os.path.join(work, name + ".html")
        cpu, wall, rc, err = cpu_time("report", *args, "-o", out)
        # The same dumps through `compare`: what reading them costs in this build. An
        # optimised build must stay under 1 s; a debug or sanitizer build, where reading
        # alone is slow, within 3 times that.
        reading, _, _, _ = cpu_time("compare", *same_reads)
        size = os.path.getsize(out) if rc == 0 else 0
        budget = max(1.0, 3 * reading)
        print(f"timing: {name}: {cpu:.3f} s CPU ({wall:.3f} s wall), {size / 1e6:.2f} MB; "
              f"compare of the same dumps {reading:.3f} s CPU")
        check(rc == 0 and cpu < budget,
              f"{name}: under {budget:.2f} s of CPU time ({cpu:.3f} s; {err.strip()})")
        check(0 < size < 2_000_000, f"{name}: under 2 MB ({size} bytes)")
        if rc == 0:
            page = Page(html_of(out))
            check_page(name, page, {}, (), ())
            pages[name] = (out, {}, (), ())
    page = Page(html_of(os.path.join(work, "big_merged.html")))
    check(page.charts.get("merge-steps", {}).get("attrs", {}).get("data-points") == "200",
          "big_merged: 100 steps, critical path and fastest rank")
    check(page.charts.get("merge-stages", {}).get("attrs", {}).get("data-series") == "8",
          "big_merged: one series per rank")

    browser_checks(pages, work, artifacts)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("test_report_cli: ok")
    return 0


def chromium():
    for name in (os.environ.get("DIFFSCOPE_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def browse(exe, work, url, *mode):
    """Runs headless Chromium on url; returns (rc, stdout, console lines)."""
    profile = os.path.join(work, "chromium-profile")
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                        "--enable-logging=stderr", "--v=0", "--window-size=1200,1600", *mode, url],
                       capture_output=True, timeout=120)
    err = p.stderr.decode("utf-8", "replace")
    console = [l for l in err.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    return p.returncode, p.stdout.decode("utf-8", "replace"), console


def browser_checks(pages, work, artifacts):
    exe = chromium()
    if exe is None:
        print("SKIP browser checks: no chromium on PATH (Debian: apt-get install chromium; "
              "or set DIFFSCOPE_CHROMIUM)")
        return
    # The detector must see a console error, or its silence below means nothing.
    control = os.path.join(work, "control.html")
    with open(control, "w") as f:
        f.write("<!DOCTYPE html><p>x</p><script>console.error('boom');undefined_fn();</script>")
    rc, dom, console = browse(exe, work, "file://" + control, "--dump-dom")
    check(rc == 0 and "<p>x</p>" in dom and any("Uncaught" in l for l in console),
          f"browser: the console check sees an uncaught error ({rc}, {console})")
    for name, (path, expect, missing, absent) in pages.items():
        url = "file://" + os.path.abspath(path)
        rc, dom, console = browse(exe, work, url, "--dump-dom")
        check(rc == 0 and dom.rstrip().endswith("</html>"), f"browser {name}: DOM dumped ({rc})")
        check(not console, f"browser {name}: nothing on the console ({console[:3]})")
        page = Page(dom)
        static = Page(html_of(path))
        check(set(page.charts) == set(static.charts) and all(
            page.charts[c]["attrs"] == static.charts[c]["attrs"] for c in page.charts),
              f"browser {name}: every chart of the file is in the DOM")
        check_page("browser " + name, page, expect, missing, absent)
        if "scope-tree" in page.charts:
            check("expand all" in page.buttons, f"browser {name}: the script ran (tree buttons)")
        shot = os.path.join(artifacts, name + ".png")
        rc, _, console = browse(exe, work, url, f"--screenshot={shot}")
        check(rc == 0 and os.path.exists(shot) and os.path.getsize(shot) > 10000 and not console,
              f"browser {name}: screenshot {shot}")


if __name__ == "__main__":
    sys.exit(main())
