#!/usr/bin/env python3
"""A small DiT-style denoise loop in PyTorch that calls diffscope_ext's fused RMSNorm + RoPE.

bf16 transformer blocks (adaLN modulation, fused QKV, per-head RMSNorm + RoPE on q and k by
the extension, F.scaled_dot_product_attention, output projection, 4x GELU MLP) and a
flow-matching Euler update per step. The timed loop is marked the way SGLang marks it:

    torch.cuda.nvtx.range_push("stage_DenoisingStage")      -> diffscope stage "DenoisingStage"
      torch.cuda.nvtx.range_push(f"denoising_step_{i}")     -> denoise step i
        (extension) DIFFSCOPE_NORM_ROPE("fused_rms_norm_rope")  -> .../denoise_step/fused_rms_norm_rope

Warm-up iterations run before it inside one "warmup" range and without step ranges, so under
`diffscope run` the collector starts (and CUPTI instruments the kernels) before the clock.

Results: prints `e2e_ms` and `checksum`, and with --json writes them with the per-step CUDA
event times (--step-events) and the configuration. Exit 0 on success, 1 on a failed --check,
2 on bad arguments.
"""

import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time


# --step-probe kinds: what a timed step does at its start and at its end.
PROBE_KINDS = {"events", "events-query", "event-start", "markers", "cu-events", "cu-event-end",
               "cu-markers",
               "cu-events-blocking", "cu-events-nonblocking", "cu-events-ptds", "cu-noop",
               "launch", "spin"}
# cu-* probes: the stream handle each records on (None: NULL, the legacy default stream;
# CU_STREAM_PER_THREAD is 0x2; "blocking"/"nonblocking": a stream the probe creates).
CU_PROBE_STREAMS = {"cu-events": None, "cu-event-end": None, "cu-markers": None,
                    "cu-events-ptds": 2,
                    "cu-events-blocking": "blocking", "cu-events-nonblocking": "nonblocking",
                    "cu-noop": None}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ext", required=True, help="the built libdiffscope_torch_ext.so")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.add_argument("--tokens", type=int, default=4096, help="image tokens (4096 GPU-bound, 256 launch-bound)")
    p.add_argument("--dim", type=int, default=3072, help="model width (heads * head_dim)")
    p.add_argument("--heads", type=int, default=24)
    p.add_argument("--blocks", type=int, default=4, help="transformer blocks")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=20, help="timed denoise steps")
    p.add_argument("--warmup", type=int, default=2, help="warm-up model evaluations (no step ranges)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step-events", action="store_true",
                   help="record a torch.cuda.Event pair around each step (per-step ground truth)")
    p.add_argument("--outer-events", action="store_true",
                   help="with --step-events: a second pair just outside each step's NVTX range "
                        "(recorded before the push, after the pop): how much the ground truth "
                        "itself moves with its place in a launch-bound loop")
    p.add_argument("--profiler", action="store_true",
                   help="run warm-up and timed loop inside torch.profiler.profile(CPU, CUDA)")
    p.add_argument("--profiler-first", action="store_true",
                   help="start torch.profiler before the first NVTX range (implies --profiler)")
    p.add_argument("--profiler-trace", metavar="PATH", help="export the profiler's Chrome trace")
    p.add_argument("--nvtx", choices=["auto", "torch", "ext", "nvtx"], default="auto",
                   help="who pushes the stage/step ranges: torch.cuda.nvtx, the extension's "
                        "nvtx_range_push op, or the PyPI nvtx package (auto: torch, else ext)")
    p.add_argument("--check", action="store_true",
                   help="compare the fused op with a PyTorch reference and exit")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the timed loop N times in one process, each a request range "
                        "'request_<r>' (e2e_ms: their median; the dump holds the last)")
    p.add_argument("--paired-timing", action="store_true",
                   help="under 'diffscope run --mode perf' with --repeat: pause perf-mode timing "
                        "(diffscope_set_timing_paused) in every other loop, in A B B A order, so "
                        "one process gives timed and untimed loops (e2e_timed_ms, e2e_untimed_ms); "
                        "in profile mode the pause turns CUPTI's tracing off")
    p.add_argument("--paused", action="store_true",
                   help="under 'diffscope run': pause the collector (diffscope_set_timing_paused) "
                        "for every timed loop; warm-up stays traced, so CUPTI is set up and "
                        "subscribed: what a process pays while the collector is not tracing")
    p.add_argument("--paired-profiler", action="store_true",
                   help="with --repeat: run every other loop inside torch.profiler (CPU, CUDA), "
                        "in A B B A order (e2e_timed_ms: profiled loops, e2e_untimed_ms: plain); "
                        "the profiler starts before each profiled loop's clock and stops after it")
    p.add_argument("--paired-steps", action="store_true",
                   help="under 'diffscope run': pause the collector's timing (perf mode's events, "
                        "or CUPTI's tracing in profile mode) in every other denoise step instead "
                        "of every other loop, A B B A within each group of four steps, and record "
                        "each step's host time (step_host_ms, step_timed): in a launch-bound loop "
                        "the host's time is the step's, and neighbouring steps share the host's "
                        "state, which whole loops do not (the pause switch is outside the clock)")
    p.add_argument("--pair-run", type=int, default=1, metavar="K",
                   help="with --paired-steps: runs of K steps instead of single steps (A B B A "
                        "over runs: K timed, 2K untimed, K timed), so consecutive timed steps "
                        "occur as in a fully timed loop (perf mode chains them: one stamp a step)")
    p.add_argument("--step-probe", choices=sorted(PROBE_KINDS),
                   help="with --paired-steps and no collector: what perf mode's work costs in "
                        "this loop, as a yardstick: the timed steps do one thing at their start "
                        "and end. events: a torch.cuda.Event pair (events-query: and a query "
                        "of the end event of the timed step 32 steps back, as perf mode's drain "
                        "does; event-start: the start event alone; markers: events without "
                        "timing); cu-events / cu-markers: the same records through the driver "
                        "(ctypes cuEventRecord on the legacy stream: no torch wrapper; cu-event-end: "
                        "the end's record alone, one a step; -ptds, -blocking, "
                        "-nonblocking: on the per-thread default stream or a blocking or "
                        "non-blocking stream of the probe's own; cu-noop: cuCtxGetCurrent, "
                        "ctypes' own cost); launch: "
                        "a one-element torch kernel; spin: 5 us of host busy-wait (the scale: "
                        "host time the step must absorb). Each probe call's own host time is "
                        "reported (probe_call_us) beside what the step pays")
    a = p.parse_args(argv)
    if a.paired_timing and (a.repeat < 2 or not os.environ.get("NVTX_INJECTION64_PATH")):
        p.error("--paired-timing needs --repeat 2 or more and a run under 'diffscope run'")
    injected = bool(os.environ.get("NVTX_INJECTION64_PATH"))
    if a.paired_steps and (a.steps < 4 or injected == bool(a.step_probe)
                           or a.paired_timing or a.paired_profiler or a.profiler):
        p.error("--paired-steps needs --steps 4 or more and either a run under 'diffscope run' "
                "or --step-probe (not both), without --paired-timing, --paired-profiler or "
                "--profiler")
    if a.pair_run < 1 or (a.pair_run > 1 and (not a.paired_steps or a.steps < 4 * a.pair_run)):
        p.error("--pair-run K needs K >= 1, --paired-steps and --steps 4K or more")
    if a.step_probe and (not a.paired_steps or
                         (a.device != "cuda" and a.step_probe not in ("spin", "launch"))):
        p.error("--step-probe needs --paired-steps, and --device cuda except spin and launch")
    if a.paused and (not injected or a.paired_timing or a.paired_steps or a.profiler
                     or a.paired_profiler):
        p.error("--paused needs a run under 'diffscope run', without --paired-timing, "
                "--paired-steps, --profiler or --paired-profiler")
    if a.paired_profiler and (a.repeat < 2 or a.profiler or a.paired_timing):
        p.error("--paired-profiler needs --repeat 2 or more, without --profiler or --paired-timing")
    if a.profiler_first:
        a.profiler = True
    if a.dim % a.heads != 0 or (a.dim // a.heads) % 2 != 0 or a.dim // a.heads > 256:
        p.error(f"--dim {a.dim} / --heads {a.heads} must give an even head_dim <= 256")
    for name in ("tokens", "blocks", "batch", "steps"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.warmup < 0:
        p.error("--warmup must be >= 0")
    if not os.path.isfile(a.ext):
        p.error(f"--ext {a.ext}: no such file (build examples/torch_extension first)")
    return a


# torch is imported after argument parsing so --help and usage errors are instant.
import_t0 = time.perf_counter()
args = parse_args(sys.argv[1:])
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class Nvtx:
    """Default-domain NVTX push/pop from one of three real NVTX clients."""

    def __init__(self, kind):
        if kind == "auto":
            kind = "torch" if hasattr(torch._C, "_nvtx") else "ext"
        self.kind = kind
        if kind == "torch":
            if not hasattr(torch._C, "_nvtx"):
                sys.exit("dit_loop: --nvtx torch: this torch has no NVTX (a CPU build); use --nvtx ext")
            self.push, self.pop = torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop
        elif kind == "ext":
            self.push = torch.ops.diffscope_ext.nvtx_range_push
            self.pop = torch.ops.diffscope_ext.nvtx_range_pop
        else:
            import nvtx  # the PyPI package; domain=None is NVTX's default domain

            self.push = lambda name: nvtx.push_range(name)
            self.pop = nvtx.pop_range


def reference_norm_rope(x, weight, cos, sin, eps):
    """What the fused op computes, in plain PyTorch (fp32 math)."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight
    y1, y2 = y.chunk(2, dim=-1)
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([y1 * c - y2 * s, y2 * c + y1 * s], dim=-1).to(x.dtype)


def rope_tables(tokens, head_dim, device):
    inv = 1.0 / (10000.0 ** (torch.arange(0, head_dim // 2, dtype=torch.float64) / (head_dim // 2)))
    ang = torch.arange(tokens, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float().to(device).contiguous(), ang.sin().float().to(device).contiguous()


class DiT:
    """Weights of a DiT with `blocks` blocks; velocity(x, t) is one model evaluation."""

    def __init__(self, a, device, dtype):
        self.dim, self.heads, self.hd = a.dim, a.heads, a.dim // a.heads
        self.eps = 1e-6
        # Generated on the device: fast at 3072 wide, and reproducible run to run on one GPU.
        g = torch.Generator(device=device).manual_seed(a.seed)

        def w(out, inp, scale=1.0):
            return (torch.randn(out, inp, generator=g, device=device) * (scale / math.sqrt(inp))).to(dtype)

        d = a.dim
        self.t_freqs = torch.exp(-math.log(10000.0) * torch.arange(128, device=device) / 128.0)
        self.t_w = w(d, 256)
        self.blocks = []
        for _ in range(a.blocks):
            self.blocks.append({
                "ada_w": w(6 * d, d, 0.1),
                "ada_b": torch.zeros(6 * d, device=device, dtype=dtype),
                "qkv_w": w(3 * d, d),
                "q_norm": (1.0 + 0.1 * torch.randn(self.hd, generator=g, device=device)).float(),
                "k_norm": (1.0 + 0.1 * torch.randn(self.hd, generator=g, device=device)).float(),
                "out_w": w(d, d),
                "fc1_w": w(4 * d, d),
                "fc2_w": w(d, 4 * d),
            })
        self.final_ada = w(2 * d, d, 0.1)
        self.final_w = w(d, d)
        self.cos, self.sin = rope_tables(a.tokens, self.hd, device)
        self.norm_rope = torch.ops.diffscope_ext.rms_norm_rope

    def velocity(self, x, t):
        B, T, D = x.shape
        H, hd = self.heads, self.hd
        arg = self.t_freqs * (1000.0 * t)
        temb = torch.cat([arg.cos(), arg.sin()])[None, :].to(x.dtype).expand(B, -1)
        c = F.silu(F.linear(temb, self.t_w))
        for blk in self.blocks:
            mod = F.linear(c, blk["ada_w"], blk["ada_b"])[:, None, :]
            sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
            h = F.layer_norm(x, (D,)) * (1 + sc1) + sh1
            q, k, v = F.linear(h, blk["qkv_w"]).view(B, T, 3, H, hd).unbind(2)
            q = self.norm_rope(q, blk["q_norm"], self.cos, self.sin, self.eps)
            k = self.norm_rope(k, blk["k_norm"], self.cos, self.sin, self.eps)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            x = x + g1 * F.linear(o.transpose(1, 2).reshape(B, T, D), blk["out_w"])
            h = F.layer_norm(x, (D,)) * (1 + sc2) + sh2
            x = x + g2 * F.linear(F.gelu(F.linear(h, blk["fc1_w"]), approximate="tanh"), blk["fc2_w"])
        sh, sc = F.linear(c, self.final_ada)[:, None, :].chunk(2, dim=-1)
        return F.linear(F.layer_norm(x, (D,)) * (1 + sc) + sh, self.final_w)


class StepProbe:
    """--step-probe: one thing at a timed step's start and one at its end (event-start: the
    start only), everything it needs made before the loop, and the host time of the calls
    themselves (call_ns), to tell the call's own cost from what the step pays around it."""

    LAG = 32  # events-query: the end event queried is this many steps old

    def __init__(self, kind, steps, device):
        self.kind, self.steps, self.call_ns = kind, steps, 0
        self.pairs = self.cu = None
        if kind in ("events", "events-query", "event-start", "markers"):
            timing = kind != "markers"
            self.pairs = [(torch.cuda.Event(enable_timing=timing),
                           torch.cuda.Event(enable_timing=timing)) for _ in range(steps)]
            for pair in self.pairs:  # torch makes an event at its first record
                for e in pair:
                    e.record()
        elif kind in CU_PROBE_STREAMS:
            self.cu = ctypes.CDLL("libcuda.so.1")
            self.cu.cuEventRecord.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            self.stream = CU_PROBE_STREAMS[kind]
            if isinstance(self.stream, str):
                st = ctypes.c_void_p()
                if self.cu.cuStreamCreate(ctypes.byref(st), 0 if self.stream == "blocking" else 1):
                    sys.exit("dit_loop: --step-probe: cuStreamCreate failed")
                self.stream = st
            self.ctx = ctypes.c_void_p()
            flags = 2 if kind == "cu-markers" else 0  # CU_EVENT_DISABLE_TIMING / CU_EVENT_DEFAULT
            self.pairs = []
            for _ in range(steps if kind != "cu-noop" else 0):  # cu-noop records nothing
                pair = []
                for _ in range(2):
                    ev = ctypes.c_void_p()
                    if self.cu.cuEventCreate(ctypes.byref(ev), flags) != 0:
                        sys.exit("dit_loop: --step-probe: cuEventCreate failed")
                    pair.append(ev)
                self.pairs.append(tuple(pair))
        elif kind == "launch":
            self.tiny = torch.zeros(1, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()

    def _do(self, i, end):
        k = self.kind
        if k == "spin":
            t = time.perf_counter_ns() + 5000
            while time.perf_counter_ns() < t:
                pass
        elif k == "launch":
            self.tiny.add_(1)
        elif k == "cu-noop":
            self.cu.cuCtxGetCurrent(ctypes.byref(self.ctx))
        elif k == "cu-event-end":  # one record a step, as perf mode's chained steps make
            if end:
                self.cu.cuEventRecord(self.pairs[i][end], self.stream)
        elif self.cu is not None:
            self.cu.cuEventRecord(self.pairs[i][end], self.stream)
        elif not (end and k == "event-start"):
            self.pairs[i][end].record()
            if end and k == "events-query":
                self.pairs[(i - self.LAG) % self.steps][1].query()

    def at(self, i, end):
        """Step i's start (end=0) or end (end=1), its own host time added to call_ns."""
        t0 = time.perf_counter_ns()
        self._do(i, end)
        self.call_ns += time.perf_counter_ns() - t0


def run_check(device):
    """Fused op against the reference on strided views, several shapes and dtypes."""
    g = torch.Generator(device="cpu").manual_seed(1)
    worst = 0.0
    ok = True
    for (B, T, H, hd) in [(1, 7, 3, 64), (2, 33, 5, 128), (1, 16, 2, 256), (1, 5, 1, 2)]:
        for dt in (torch.bfloat16, torch.float16, torch.float32):
            qkv = torch.randn(B, T, 3, H, hd, generator=g).to(device, dt)
            q = qkv.unbind(2)[0]  # a strided view, like the model's
            wgt = (1 + 0.1 * torch.randn(hd, generator=g)).float().to(device)
            cos, sin = rope_tables(T, hd, device)
            got = torch.ops.diffscope_ext.rms_norm_rope(q, wgt, cos, sin, 1e-6)
            ref = reference_norm_rope(q, wgt, cos, sin, 1e-6)
            err = (got.float() - ref.float()).abs().max().item()
            tol = {torch.bfloat16: 3e-2, torch.float16: 4e-3, torch.float32: 1e-5}[dt]
            scale = max(1.0, ref.float().abs().max().item())
            worst = max(worst, err / scale)
            if err > tol * scale or not got.is_contiguous() or got.shape != q.shape:
                ok = False
                print(f"check: MISMATCH shape={tuple(q.shape)} {dt} max_err={err:.3g} tol={tol * scale:.3g}")
    print(f"check: {'ok' if ok else 'FAILED'} on {device} (worst relative error {worst:.3g})")
    return ok


def main(a):
    torch.ops.load_library(a.ext)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("dit_loop: --device cuda but torch sees no usable CUDA device", file=sys.stderr)
        return 2
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    if cuda and not torch.ops.diffscope_ext.has_cuda_kernel():
        print(f"dit_loop: {a.ext} was built without its CUDA kernel", file=sys.stderr)
        return 2
    if a.check:
        return 0 if run_check(device) else 1

    nvtx = Nvtx(a.nvtx)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    prof = None
    if a.profiler:
        acts = [torch.profiler.ProfilerActivity.CPU]
        if cuda:
            acts.append(torch.profiler.ProfilerActivity.CUDA)
        prof = torch.profiler.profile(activities=acts)
    if a.profiler_first:
        prof.__enter__()  # before any NVTX range: it takes CUPTI before the diffscope collector

    setup_t0 = time.perf_counter()
    dtype = DTYPES[a.dtype]
    model = DiT(a, device, dtype)
    g = torch.Generator(device=device).manual_seed(a.seed + 1)
    x0 = torch.randn(a.batch, a.tokens, a.dim, generator=g, device=device).to(dtype)
    sync()
    setup_s = time.perf_counter() - setup_t0

    # Warm-up: same shapes, one range, no steps. The collector (if any) starts here.
    nvtx.push("warmup")
    if a.profiler and not a.profiler_first:
        prof.__enter__()
    warm_t0 = time.perf_counter()
    with torch.no_grad():
        xw = x0.clone()
        for _ in range(a.warmup):
            xw = xw + 0.0 * model.velocity(xw, 1.0)
    sync()
    warmup_ms = (time.perf_counter() - warm_t0) * 1e3
    nvtx.pop()

    events = []
    # Ground-truth events exist before the loop: creating one inside a step would put its
    # cost between the collector's event and ours (launch-bound steps feel every microsecond).
    def event_pairs(on, timing=True):
        return ([(torch.cuda.Event(enable_timing=timing), torch.cuda.Event(enable_timing=timing))
                 for _ in range(a.steps)] if on and cuda else None)
    pool = event_pairs(a.step_events)
    outer = event_pairs(a.step_events and a.outer_events)
    dt = -1.0 / a.steps
    e2e_all = []
    cpu_all = []  # the main thread's CPU time per loop (sync's wait included: it spins)
    # --paired-timing: the injected collector's pause switch (the library NVTX loaded).
    pause = None
    if a.paired_timing or a.paused or (a.paired_steps and not a.step_probe):
        lib = os.environ["NVTX_INJECTION64_PATH"]
        try:
            pause = ctypes.CDLL(lib).diffscope_set_timing_paused
        except (OSError, AttributeError) as e:
            sys.exit(f"dit_loop.py: --paired-timing/--paired-steps/--paused: {lib} has no "
                     f"diffscope_set_timing_paused (not diffscope's injection library?): {e}")
        pause.argtypes = [ctypes.c_int]
    profiler_acts = [torch.profiler.ProfilerActivity.CPU] + \
        ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    if a.paired_profiler:
        # Kineto's one-off start (CUPTI's initialisation) outside every measured loop.
        with torch.profiler.profile(activities=profiler_acts), torch.no_grad():
            xw = x0.clone()
            xw = xw + 0.0 * model.velocity(xw, 1.0)
            sync()
    timed_loops = []
    # --paired-steps: A B B A within each group of four steps (linear drift cancels).
    step_timed = ([(i // a.pair_run) % 4 in (0, 3) for i in range(a.steps)]
                  if a.paired_steps else None)
    # Made before the loop, like the ground truth's.
    probe = StepProbe(a.step_probe, a.steps, device) if a.step_probe else None
    probe_timed_steps = 0
    step_host = []  # per loop, each step's host ms (--paired-steps)
    for r in range(max(1, a.repeat)):
        events = []  # the last loop's are reported
        timed = r % 4 in (0, 3)  # A B B A: drift hits both halves alike
        timed_loops.append(timed)
        if pause:  # --paired-steps pauses step by step: every loop starts timed
            pause(1 if a.paused else 0 if timed or a.paired_steps else 1)
        loop_host = []
        loop_prof = None
        if a.paired_profiler and timed:
            loop_prof = torch.profiler.profile(activities=profiler_acts)
            loop_prof.__enter__()
        if a.repeat > 1:
            nvtx.push(f"request_{r}")
        with torch.no_grad():
            x = x0.clone()
            sync()
            t0 = time.perf_counter()
            c0 = time.thread_time()  # this thread's CPU time: tells waiting from working
            nvtx.push("stage_DenoisingStage")
            for i in range(a.steps):
                if step_timed:
                    if pause:
                        pause(0 if step_timed[i] else 1)
                    h0 = time.perf_counter()
                    if probe and step_timed[i]:
                        probe.at(i, 0)
                        probe_timed_steps += 1
                if outer:
                    outer[i][0].record()
                nvtx.push(f"denoising_step_{i}")
                if a.step_events:
                    start = pool[i][0] if cuda else time.perf_counter()
                    if cuda:
                        start.record()
                x = x + dt * model.velocity(x, 1.0 + i * dt)
                if a.step_events:
                    if cuda:
                        end = pool[i][1]
                        end.record()
                        events.append((start, end))
                    else:  # CPU ops are synchronous: the host clock is the ground truth
                        events.append((time.perf_counter() - start) * 1e3)
                nvtx.pop()
                if outer:
                    outer[i][1].record()
                if step_timed:
                    if probe and step_timed[i]:
                        probe.at(i, 1)
                    loop_host.append((time.perf_counter() - h0) * 1e3)
            nvtx.pop()
            sync()
            e2e_all.append((time.perf_counter() - t0) * 1e3)
            cpu_all.append((time.thread_time() - c0) * 1e3)
            if step_timed:
                step_host.append(loop_host)
        if loop_prof is not None:
            loop_prof.__exit__(None, None, None)  # its processing is outside the clock
        if a.repeat > 1:
            nvtx.pop()
    if pause and not a.paused:
        pause(0)
    e2e_ms = statistics.median(e2e_all)

    profiler_exit_s = None
    if prof is not None:
        pt = time.perf_counter()
        prof.__exit__(None, None, None)
        if a.profiler_trace:
            prof.export_chrome_trace(a.profiler_trace)
        profiler_exit_s = time.perf_counter() - pt

    step_ms = ([s.elapsed_time(e) for s, e in events] if cuda else events) if events else None
    xd = x.double()
    checksum = {"sum": xd.sum().item(), "abs_sum": xd.abs().sum().item()}
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "config": {k: getattr(a, k) for k in ("tokens", "dim", "heads", "blocks", "batch", "steps",
                                               "warmup", "dtype", "seed")},
        "mode": {"profiler": a.profiler, "profiler_first": a.profiler_first,
                 "paired_timing": a.paired_timing, "paired_profiler": a.paired_profiler,
                 "paired_steps": a.paired_steps, "paused": a.paused, "step_probe": a.step_probe,
                 "step_events": a.step_events, "nvtx": nvtx.kind,
                 "step_clock": None if not a.step_events else ("cuda_event" if cuda else "host"),
                 "collector_injected": bool(os.environ.get("NVTX_INJECTION64_PATH"))},
        "norm_rope_calls": 2 * a.blocks * a.steps,
        "e2e_ms": e2e_ms,
        "e2e_last_ms": e2e_all[-1],
        "e2e_all_ms": e2e_all,
        "cpu_all_ms": cpu_all,
        "e2e_timed_ms": ([e for e, t in zip(e2e_all, timed_loops) if t]
                         if a.paired_timing or a.paired_profiler else None),
        "e2e_untimed_ms": ([e for e, t in zip(e2e_all, timed_loops) if not t]
                           if a.paired_timing or a.paired_profiler else None),
        "step_host_ms": step_host if a.paired_steps else None,
        "step_timed": step_timed,
        # --step-probe: the probe calls' own host time per timed step, in us
        "probe_call_us": (probe.call_ns / 1e3 / probe_timed_steps
                          if probe and probe_timed_steps else None),
        "step_ms": step_ms,
        "step_ms_sum": sum(step_ms) if step_ms else None,
        "step_ms_outer": [s.elapsed_time(e) for s, e in outer] if outer else None,
        # The outer pair's boundaries chained: step i from just after step i-1's pop to just
        # after its own (step 0 from before its push): what perf mode's chained steps measure.
        "step_ms_chained": ([outer[0][0].elapsed_time(outer[0][1])] +
                            [outer[i - 1][1].elapsed_time(outer[i][1])
                             for i in range(1, len(outer))]) if outer else None,
        "checksum": checksum,
        "warmup_ms": warmup_ms,
        "setup_s": setup_s,
        "import_s": setup_t0 - import_t0,
        "profiler_exit_s": profiler_exit_s,
        "finite": bool(torch.isfinite(xd).all().item()),
    }
    print(f"device: {result['device']}  torch {torch.__version__}  nvtx via {nvtx.kind}")
    print(f"config: tokens={a.tokens} dim={a.dim} heads={a.heads} blocks={a.blocks} steps={a.steps} "
          f"warmup={a.warmup} {a.dtype}" + ("  [torch.profiler" + (" first]" if a.profiler_first else "]")
                                           if a.profiler else ""))
    print(f"e2e_ms: {e2e_ms:.3f}" + (f"  (step events sum {result['step_ms_sum']:.3f})" if step_ms else ""))
    print(f"checksum: sum={checksum['sum']!r} abs_sum={checksum['abs_sum']!r}")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        tmp = f"{a.json}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, a.json)
    return 0 if result["finite"] else 1


if __name__ == "__main__":
    sys.exit(main(args))
