#!/usr/bin/env python3
"""A Flux-like text-to-image pipeline built from PyPI diffusers with random weights, annotated
the way SGLang's --enable-layerwise-nvtx-marker annotates a pipeline, for diffscope.

diffusers' own FluxTransformer2DModel (reduced depth), FlowMatchEulerDiscreteScheduler with
Flux's resolution-dependent shift, and an AutoencoderKL decode, all built from configs: nothing
is downloaded. The text encoder is a small stand-in (two torch encoder layers) producing
embeddings of the shapes Flux's transformer expects.

NVTX ranges in the default domain, as SGLang pushes them (docs/sglang.md, section 6):
  [request_<n>]                        with --requests N (diffscope's request marker)
    stage_<Stage>                      InputValidation, TextEncoding, LatentPreparation,
                                       TimestepPreparation, Denoising, Decoding
      denoising_loop
        denoising_step_<i>_t<timestep>
          predict_noise
            transformer in=[[shape], ...]          one range per submodule call, by
              transformer.<module> in=[...]        forward hooks (shapes stripped by diffscope)
          scheduler_step
Warm-up generations push no range (as SGLang), or sit in a `warmup` range (--warmup-range).

Run under diffscope (examples/diffusers/README.md):
  bash examples/diffusers/fetch_deps.sh
  build/tools/diffscope run --dump perf.json --summary -- python3 examples/diffusers/flux_like.py

Exit codes: 0 done, 2 bad arguments or a missing dependency.
"""

import argparse
import os
import sys
import time

PROG = "flux_like.py"
HERE = os.path.dirname(os.path.abspath(__file__))
DEVDEPS = os.path.normpath(os.path.join(HERE, "..", "..", ".devdeps"))


def fail(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(2)


def import_deps():
    """torch and diffusers, with what fetch_deps.sh fetched (.devdeps/python.zip or
    .devdeps/python/) appended to the path: packages the interpreter has take precedence."""
    for p in (os.path.join(DEVDEPS, "python.zip"), os.path.join(DEVDEPS, "python")):
        if os.path.exists(p):
            sys.path.append(p)
    try:
        import torch  # noqa: F401
    except ImportError as e:
        fail(f"needs PyTorch ({e}): pip install torch, or run with a Python that has it "
             "(on the GPU machines /opt/torch/.venv/bin/python3)")
    try:
        import diffusers  # noqa: F401
        from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler,  # noqa: F401
                               FluxTransformer2DModel)
    except Exception as e:  # diffusers wraps its lazy imports' errors in RuntimeError
        fail(f"needs diffusers and its import-time dependencies ({type(e).__name__}: "
             f"{str(e).splitlines()[0] if str(e) else ''}): run "
             "`bash examples/diffusers/fetch_deps.sh` (into .devdeps/, found automatically; "
             "Pillow, PyYAML and safetensors come from the interpreter), or "
             "`pip install diffusers`")
    # diffusers warns that a .to(dtype) cast skips its keep-in-fp32 list, which is empty here
    diffusers.utils.logging.set_verbosity_error()


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default=None,
                   help="default: cuda when available, else cpu")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default 28 on "
                   "cuda, 4 on cpu)")
    p.add_argument("--height", type=int, default=None, help="image height in pixels, a "
                   "multiple of 16 (default 512 on cuda, 128 on cpu)")
    p.add_argument("--width", type=int, default=None, help="as --height")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default=None,
                   help="default bf16 on cuda, fp32 on cpu")
    p.add_argument("--layers", type=int, default=2, help="double-stream blocks (Flux: 19)")
    p.add_argument("--single-layers", type=int, default=4, help="single-stream blocks (Flux: 38)")
    p.add_argument("--heads", type=int, default=None, help="attention heads (default 24, "
                   "Flux's own, on cuda; 4 on cpu)")
    p.add_argument("--head-dim", type=int, default=None, help="attention head width, a "
                   "multiple of 16 (default 128, Flux's own, on cuda; 32 on cpu)")
    p.add_argument("--text-len", type=int, default=None, help="text tokens (default 512, "
                   "Flux's own, on cuda; 32 on cpu)")
    p.add_argument("--requests", type=int, default=0, help="N generations, each inside a "
                   "request_<n> range; 0 (default): one generation and no request range, as "
                   "SGLang")
    p.add_argument("--warmup", type=int, default=1, help="generations before the measured "
                   "ones, with no NVTX range (as SGLang's warm-up); default 1")
    p.add_argument("--warmup-range", action="store_true", help="annotate the warm-ups too, "
                   "each inside a `warmup` range (diffscope leaves it out of every table)")
    p.add_argument("--no-layerwise", action="store_true",
                   help="no per-module ranges (stages, loop, steps only)")
    p.add_argument("--layerwise-vae", action="store_true",
                   help="per-module ranges on the VAE decoder too (vae.decoder.<module>)")
    p.add_argument("--step-events", action="store_true", help="time each denoising step of "
                   "the last generation with CUDA events (host clock on cpu) and print "
                   "`step_ms <i> <ms>` lines")
    p.add_argument("--nvtx", choices=["auto", "torch", "nvtx", "none"], default="auto",
                   help="where ranges go: torch.cuda.nvtx, the `nvtx` package, nowhere; "
                   "auto (default): the first available")
    p.add_argument("--profiler", action="store_true", help="run warm-ups and measured generations "
                   "inside torch.profiler (CPU, and CUDA on cuda): its cost, for comparison")
    p.add_argument("--profiler-trace", metavar="PATH", help="with --profiler: export its Chrome "
                   "trace (PATH ending in .gz: compressed)")
    p.add_argument("--paused", action="store_true", help="under `diffscope run`: pause the "
                   "collector (diffscope_set_timing_paused) for the measured generations; the "
                   "warm-ups stay traced: what the process pays while the collector is not tracing")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.profiler_trace and not a.profiler:
        fail("--profiler-trace needs --profiler")
    if a.paused and (a.profiler or not os.environ.get("NVTX_INJECTION64_PATH")):
        fail("--paused needs a run under `diffscope run` (NVTX_INJECTION64_PATH set), "
             "without --profiler")
    for name in ("steps", "height", "width", "heads", "head_dim", "text_len"):
        v = getattr(a, name)
        if v is not None and v <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {v}")
    for name in ("layers", "single_layers", "requests", "warmup"):
        if getattr(a, name) < 0:
            fail(f"--{name.replace('_', '-')} must not be negative, got {getattr(a, name)}")
    for name in ("height", "width"):
        v = getattr(a, name)
        if v is not None and v % 16:
            fail(f"--{name} must be a multiple of 16 (8x VAE, 2x2 patches), got {v}")
    if a.head_dim is not None and a.head_dim % 16:
        fail(f"--head-dim must be a multiple of 16 (three RoPE axes), got {a.head_dim}")
    return a


class Nvtx:
    """Default-domain push/pop: torch.cuda.nvtx (a CUDA build of torch, with or without a GPU),
    else the `nvtx` package (domain None: the default domain), else nothing (said on stderr)."""

    def __init__(self, choice="auto"):
        self.push = self.pop = None
        if choice in ("auto", "torch"):
            try:
                from torch._C import _nvtx  # absent from CPU-only builds of torch
                self.push, self.pop, self.backend = _nvtx.rangePushA, _nvtx.rangePop, "torch.cuda.nvtx"
            except ImportError:
                if choice == "torch":
                    fail("--nvtx torch: this torch has no NVTX (a CPU-only build)")
        if self.push is None and choice in ("auto", "nvtx"):
            try:
                import nvtx
                self.push = lambda name: nvtx.push_range(name)
                self.pop, self.backend = nvtx.pop_range, "nvtx package"
            except ImportError:
                if choice == "nvtx":
                    fail("--nvtx nvtx: no `nvtx` package (pip install nvtx)")
        if self.push is None:
            self.push = self.pop = lambda *a: None
            self.backend = "none"
            if choice == "auto":
                print(f"{PROG}: note: no NVTX available (a CPU-only torch and no `nvtx` "
                      "package: pip install nvtx); running without ranges", file=sys.stderr)
        self.on = False  # ranges are pushed only while on (off during unannotated warm-ups)

    def range(self, name):
        return _Range(self, name)


class _Range:
    __slots__ = ("nv", "name", "pushed")

    def __init__(self, nv, name):
        self.nv, self.name = nv, name

    def __enter__(self):
        self.pushed = self.nv.on
        if self.pushed:
            self.nv.push(self.name)

    def __exit__(self, *exc):
        if self.pushed:
            self.nv.pop()


def shapes_of(args, kwargs):
    """`[[1, 1024, 3072], [1, 512, 3072]]`: the tensor inputs' shapes, positional then keyword,
    one level of lists and tuples flattened (SGLang's `in=` text)."""
    import torch

    out = []

    def add(v):
        if isinstance(v, torch.Tensor):
            out.append(list(v.shape))
        elif isinstance(v, (list, tuple)):
            for x in v:
                if isinstance(x, torch.Tensor):
                    out.append(list(x.shape))

    for v in args:
        add(v)
    for v in kwargs.values():
        add(v)
    return str(out)


def add_layerwise_ranges(nv, model, prefix):
    """One range per submodule call, `<prefix>.<qualified.name> in=[...]`, pushed by a forward
    pre-hook and popped by a forward hook (always_call: popped on exceptions too)."""
    pushed = []  # whether each open call pushed: `on` cannot change inside a forward

    def make_pre(name):
        def pre(module, args, kwargs):
            pushed.append(nv.on)
            if nv.on:
                nv.push(f"{name} in={shapes_of(args, kwargs)}")
        return pre

    def post(module, args, output):
        if pushed.pop():
            nv.pop()

    for name, module in model.named_modules(prefix=prefix):
        module.register_forward_pre_hook(make_pre(name), with_kwargs=True)
        module.register_forward_hook(post, always_call=True)


def rope_axes(head_dim):
    """Flux's (16, 56, 56) split of a 128-wide head, scaled to `head_dim` (each even)."""
    a = head_dim // 8
    b = (head_dim - a) // 2
    return (a, b, head_dim - a - b)


def build(a, device, dtype):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    inner = a.heads * a.head_dim
    text_dim = inner  # the stand-in encoder's width: T5's 4096 is not needed for the shapes
    pooled_dim = min(768, inner)
    torch.manual_seed(a.seed)
    with torch.device(device):  # random init on the device: fast for Flux's width on a GPU
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=a.layers, num_single_layers=a.single_layers,
            attention_head_dim=a.head_dim, num_attention_heads=a.heads,
            joint_attention_dim=text_dim, pooled_projection_dim=pooled_dim, guidance_embeds=True,
            axes_dims_rope=rope_axes(a.head_dim))
        # Flux's VAE (16 latent channels, 8x, no quant convs), narrower
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 64, 128, 128),
            layers_per_block=1, latent_channels=16, norm_num_groups=32,
            scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
            use_post_quant_conv=False)
        text_encoder = text_encoder_class()(text_dim, pooled_dim, heads=max(1, text_dim // 128))
    transformer = transformer.to(dtype).eval()
    vae = vae.to(dtype).eval()
    text_encoder = text_encoder.to(dtype).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    return transformer, vae, text_encoder, scheduler


def text_encoder_class():
    import torch

    class TextEncoder(torch.nn.Module):
        """A stand-in for T5 and CLIP: token embeddings, two encoder layers, a pooled projection."""

        def __init__(self, dim, pooled_dim, heads, vocab=4096):
            super().__init__()
            self.vocab = vocab
            self.embed = torch.nn.Embedding(vocab, dim)
            self.layers = torch.nn.ModuleList(
                torch.nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0,
                                                 batch_first=True) for _ in range(2))
            self.pool = torch.nn.Linear(dim, pooled_dim)

        def forward(self, tokens):
            x = self.embed(tokens)
            for layer in self.layers:
                x = layer(x)
            return x, self.pool(x.mean(dim=1))

    return TextEncoder


def tokenize(prompt, length, vocab):
    ids = [b % vocab for b in prompt.encode()][:length]
    return ids + [0] * (length - len(ids))


def calculate_shift(seq_len, base_seq_len=256, max_seq_len=4096, base_shift=0.5, max_shift=1.15):
    """Flux's resolution-dependent timestep shift (mu), as its diffusers pipeline computes it."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return seq_len * m + base_shift - m * base_seq_len


class Pipeline:
    def __init__(self, a, nv, device, dtype):
        import torch

        self.a, self.nv, self.device, self.dtype = a, nv, device, dtype
        self.transformer, self.vae, self.text_encoder, self.scheduler = build(a, device, dtype)
        if not a.no_layerwise:
            add_layerwise_ranges(nv, self.transformer, "transformer")
            if a.layerwise_vae:
                add_layerwise_ranges(nv, self.vae.decoder, "vae.decoder")
        self.cuda = device.type == "cuda"
        self.torch = torch

    def stage(self, name):
        return self.nv.range("stage_" + name)

    def generate(self, seed, step_times=None):
        """One image. step_times: a list to receive (start, end) event pairs (cuda) or
        perf_counter pairs (cpu) of each denoising step, or None."""
        torch, a, nv = self.torch, self.a, self.nv
        with self.stage("InputValidationStage"):
            h, w = a.height // 8, a.width // 8  # latent size (8x VAE)
            seq = (h // 2) * (w // 2)  # image tokens after 2x2 packing
            prompt = "a photograph of an astronaut riding a horse"
        with self.stage("TextEncodingStage"):
            tokens = torch.tensor([tokenize(prompt, a.text_len, self.text_encoder.vocab)],
                                  device=self.device)
            prompt_embeds, pooled = self.text_encoder(tokens)
            txt_ids = torch.zeros(a.text_len, 3, device=self.device, dtype=self.dtype)
        with self.stage("LatentPreparationStage"):
            gen = torch.Generator("cpu").manual_seed(seed)
            latents = torch.randn(1, 16, h, w, generator=gen).to(self.device, self.dtype)
            latents = (latents.view(1, 16, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
                       .reshape(1, seq, 64))
            img_ids = torch.zeros(h // 2, w // 2, 3)
            img_ids[..., 1] += torch.arange(h // 2)[:, None]
            img_ids[..., 2] += torch.arange(w // 2)[None, :]
            img_ids = img_ids.reshape(seq, 3).to(self.device, self.dtype)
        with self.stage("TimestepPreparationStage"):
            sigmas = [1.0 - i * (1.0 - 1.0 / a.steps) / max(1, a.steps - 1)
                      for i in range(a.steps)]
            self.scheduler.set_timesteps(sigmas=sigmas, device=self.device,
                                         mu=calculate_shift(seq))
            self.scheduler.set_begin_index(0)
            timesteps = self.scheduler.timesteps
            names = [f"denoising_step_{i}_t{round(t)}" for i, t in enumerate(timesteps.tolist())]
            guidance = torch.full((1,), 3.5, device=self.device, dtype=torch.float32)
        with self.stage("DenoisingStage"), nv.range("denoising_loop"):
            for i, t in enumerate(timesteps):
                with nv.range(names[i]):
                    if step_times is not None:
                        start = self.mark()
                    with nv.range("predict_noise"):
                        noise = self.transformer(
                            hidden_states=latents, timestep=(t.expand(1) / 1000).to(self.dtype),
                            guidance=guidance, pooled_projections=pooled,
                            encoder_hidden_states=prompt_embeds, txt_ids=txt_ids,
                            img_ids=img_ids, return_dict=False)[0]
                    with nv.range("scheduler_step"):
                        latents = self.scheduler.step(noise, t, latents, return_dict=False)[0]
                    if step_times is not None:
                        step_times.append((start, self.mark()))
        with self.stage("DecodingStage"):
            latents = (latents.view(1, h // 2, w // 2, 16, 2, 2).permute(0, 3, 1, 4, 2, 5)
                       .reshape(1, 16, h, w))
            latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
            image = self.vae.decode(latents, return_dict=False)[0]
            image = ((image.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        return image

    def mark(self):
        if self.cuda:
            e = self.torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def elapsed_ms(self, pair):
        start, end = pair
        if self.cuda:
            return start.elapsed_time(end)
        return (end - start) * 1e3


def main(argv):
    a = parse_args(argv)
    import_deps()
    import torch

    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device is available to this torch "
             f"({torch.__version__}); use --device cpu")
    gpu = a.device == "cuda"
    defaults = dict(steps=(28, 4), height=(512, 128), width=(512, 128), heads=(24, 4),
                    head_dim=(128, 32), text_len=(512, 32), dtype=("bf16", "fp32"))
    for name, (on_gpu, on_cpu) in defaults.items():
        if getattr(a, name) is None:
            setattr(a, name, on_gpu if gpu else on_cpu)
    device = torch.device(a.device)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32

    nv = Nvtx(a.nvtx)
    t0 = time.perf_counter()
    pipe = Pipeline(a, nv, device, dtype)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    print(f"{PROG}: {a.device} {a.dtype}, {a.height}x{a.width} ({(a.height // 16) * (a.width // 16)} "
          f"image + {a.text_len} text tokens), transformer {a.layers}+{a.single_layers} blocks "
          f"x {a.heads}x{a.head_dim} ({params / 1e6:.1f} M parameters), {a.steps} steps, "
          f"NVTX: {nv.backend}; built in {time.perf_counter() - t0:.1f} s", flush=True)

    pause = None
    if a.paused:
        import ctypes
        lib = os.environ["NVTX_INJECTION64_PATH"]
        try:
            pause = ctypes.CDLL(lib).diffscope_set_timing_paused
        except (OSError, AttributeError) as e:
            fail(f"--paused: {lib} has no diffscope_set_timing_paused (not diffscope's "
                 f"injection library?): {e}")
        pause.argtypes = [ctypes.c_int]
    prof = None
    if a.profiler:
        acts = [torch.profiler.ProfilerActivity.CPU] + \
            ([torch.profiler.ProfilerActivity.CUDA] if gpu else [])
        prof = torch.profiler.profile(activities=acts)
        prof.__enter__()

    with torch.inference_mode():
        for k in range(a.warmup):
            nv.on = a.warmup_range
            with nv.range("warmup"):
                pipe.generate(a.seed)
            nv.on = False
        if gpu:
            torch.cuda.synchronize()
        runs = max(1, a.requests)
        step_times = None
        if pause:
            pause(1)
        for n in range(runs):
            nv.on = True
            last = n == runs - 1
            times = [] if (a.step_events and last) else None
            t = time.perf_counter()
            if a.requests:
                with nv.range(f"request_{n}"):
                    image = pipe.generate(a.seed + 1 + n, times)
            else:
                image = pipe.generate(a.seed + 1 + n, times)
            nv.on = False
            if gpu:
                torch.cuda.synchronize()
            print(f"generation {n}: {(time.perf_counter() - t) * 1e3:.1f} ms host, image "
                  f"{'x'.join(map(str, image.shape))} mean {image.float().mean().item():.1f}",
                  flush=True)
            if times is not None:
                step_times = times
    if prof is not None:
        prof.__exit__(None, None, None)
        if a.profiler_trace:
            prof.export_chrome_trace(a.profiler_trace)
    if step_times is not None:
        for i, pair in enumerate(step_times):
            print(f"step_ms {i} {pipe.elapsed_ms(pair):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
