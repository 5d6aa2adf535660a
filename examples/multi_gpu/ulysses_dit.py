#!/usr/bin/env python3
"""A DiT-style denoise loop with Ulysses sequence parallelism, for diffscope's multi-GPU work.

Each rank holds tokens/world of the sequence. Around attention, all-to-all switches the
projections from sequence-sharded to head-sharded (every rank then sees the whole sequence
for heads/world heads), SDPA runs, and a second all-to-all switches back. bf16 throughout.

NVTX ranges in SGLang's names, so `diffscope run` maps them as it does for SGLang:
  stage_DenoisingStage > denoising_step_<i> > transformer.blocks.<b>.attn / .mlp, scheduler_step

Each rank times every step with CUDA events on its compute stream (no synchronisation inside
the loop, no barrier) and writes <json-dir>/rank<r>.json with its per-step milliseconds.

Launch (two GPUs, NVLink multicast off as on our machines):
  NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 \\
    torchrun --standalone --nproc_per_node=2 examples/multi_gpu/ulysses_dit.py --json-dir out
A CPU dry run of the same code (gloo, fp32, tiny sizes): add --cpu.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=8192, help="sequence length over all ranks")
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed denoise steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first, inside a \"warmup\" range")
    p.add_argument("--no-overlap", action="store_true",
                   help="one blocking all-to-all for q, k, v together (nothing to overlap); by "
                        "default q and k travel asynchronously while the next projection runs")
    p.add_argument("--json-dir", default="", help="write <dir>/rank<r>.json (per-step ms)")
    p.add_argument("--cpu", action="store_true", help="gloo on CPU, fp32 (a dry run)")
    return p.parse_args()


class nvtx_range:
    """torch.cuda.nvtx push/pop (the default NVTX domain, as SGLang); nothing on CPU."""

    enabled = True

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        if nvtx_range.enabled:
            torch.cuda.nvtx.range_push(self.name)

    def __exit__(self, *exc):
        if nvtx_range.enabled:
            torch.cuda.nvtx.range_pop()


class ulysses:
    """Sequence <-> head sharding over the default process group."""

    def __init__(self, world, heads, head_dim):
        self.world, self.heads, self.head_dim = world, heads, head_dim

    def to_heads(self, x, async_op=False):
        """[S/P, H*hd] (my tokens, all heads) -> [S, H/P, hd] (all tokens, my heads)."""
        s_local = x.shape[0]
        send = (x.view(s_local, self.world, self.heads // self.world, self.head_dim)
                .transpose(0, 1).contiguous())  # [P, S/P, H/P, hd]: chunk j goes to rank j
        recv = torch.empty_like(send)  # chunk j: rank j's tokens, my heads
        work = dist.all_to_all_single(recv, send, async_op=async_op)
        return recv, work

    @staticmethod
    def gathered(recv):
        p, s_local, h, d = recv.shape
        return recv.view(p * s_local, h, d)

    def to_tokens(self, o):
        """[S, H/P, hd] -> [S/P, H*hd]: back to my tokens, all heads."""
        s, h, d = o.shape
        send = o.reshape(self.world, s // self.world, h, d).contiguous()  # chunk j: rank j's tokens
        recv = torch.empty_like(send)  # chunk j: my tokens, rank j's heads
        dist.all_to_all_single(recv, send)
        return recv.transpose(0, 1).reshape(s // self.world, self.world * h * d)


class block:
    def __init__(self, dim, heads, gen, device, dtype):
        def w(i, o):
            return (torch.randn(i, o, generator=gen) / math.sqrt(i)).to(device, dtype)

        self.wq, self.wk, self.wv, self.wo = w(dim, dim), w(dim, dim), w(dim, dim), w(dim, dim)
        self.w1, self.w2 = w(dim, 4 * dim), w(4 * dim, dim)
        self.mod = w(dim, 3 * dim)  # AdaLN-style shift/scale/gate from the timestep embedding


def rms_norm(x):
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype)


def attention(x, blk, sp, overlap, heads_local, head_dim):
    if overlap:
        # q travels while k is projected, k while v is: NCCL's stream overlaps the GEMMs.
        q, wq = sp.to_heads(x @ blk.wq, async_op=True)
        k, wk = sp.to_heads(x @ blk.wk, async_op=True)
        v, _ = sp.to_heads(x @ blk.wv)
        wq.wait()
        wk.wait()
    else:
        q, _ = sp.to_heads(x @ blk.wq)
        k, _ = sp.to_heads(x @ blk.wk)
        v, _ = sp.to_heads(x @ blk.wv)
    q, k, v = (sp.gathered(t).transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # [1, H/P, S, hd]
    o = F.scaled_dot_product_attention(q, k, v)
    o = o.squeeze(0).transpose(0, 1)  # [S, H/P, hd]
    return sp.to_tokens(o) @ blk.wo


def forward(x, temb, blocks, sp, args, heads_local, head_dim):
    for b, blk in enumerate(blocks):
        shift, scale, gate = (temb @ blk.mod).chunk(3, dim=-1)
        gate = 0.1 * torch.tanh(gate)  # small residual updates keep bf16 finite over the loop
        with nvtx_range(f"transformer.blocks.{b}.attn"):
            h = rms_norm(x) * (1 + scale) + shift
            x = x + gate * attention(h, blk, sp, not args.no_overlap, heads_local, head_dim)
        with nvtx_range(f"transformer.blocks.{b}.mlp"):
            x = x + gate * (F.gelu(rms_norm(x) @ blk.w1, approximate="tanh") @ blk.w2)
    return x


def main():
    args = parse_args()
    if args.cpu:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29512")
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if args.cpu:
        device, dtype = torch.device("cpu"), torch.float32
        nvtx_range.enabled = False
        dist.init_process_group("gloo", rank=rank, world_size=world)
    else:
        torch.cuda.set_device(local_rank)
        device, dtype = torch.device("cuda", local_rank), torch.bfloat16
        dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    if args.tokens % world or args.heads % world or args.dim % args.heads:
        sys.exit("tokens and heads must divide by the world size, dim by heads")

    head_dim = args.dim // args.heads
    heads_local = args.heads // world
    sp = ulysses(world, args.heads, head_dim)
    gen = torch.Generator().manual_seed(1234)  # same weights on every rank
    blocks = [block(args.dim, args.heads, gen, device, dtype) for _ in range(args.blocks)]
    t_embed = (torch.randn(256, args.dim, generator=gen) / 16).to(device, dtype)
    noise_gen = torch.Generator().manual_seed(42 + rank)  # each rank's own tokens
    x0 = torch.randn(args.tokens // world, args.dim, generator=noise_gen).to(device, dtype)

    def step(x, i, n):
        t, t_next = 1.0 - i / n, 1.0 - (i + 1) / n
        temb = torch.sin(t_embed[i % 256] * (t * 1000.0))
        v = forward(x, temb, blocks, sp, args, heads_local, head_dim)
        with nvtx_range("scheduler_step"):
            return x + (t_next - t) * v  # flow-matching Euler step

    # Warm-up inside a "warmup" range: diffscope collects it but leaves it out of every table
    # (NCCL's first all-to-all sets up its channels: tens of ms that are not the loop's).
    x = x0.clone()
    with nvtx_range("warmup"):
        for i in range(args.warmup):
            x = step(x, i, max(args.warmup, 1))
    if not args.cpu:
        torch.cuda.synchronize()
    dist.barrier()

    # The timed loop: events on the compute stream, nothing waits on the host until the end.
    timing = not args.cpu
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(args.steps)] if timing else []
    stage_events = (torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True)) if timing else None
    host_start = time.perf_counter()
    x = x0.clone()
    with nvtx_range("stage_DenoisingStage"):
        if timing:
            stage_events[0].record()
        for i in range(args.steps):
            with nvtx_range(f"denoising_step_{i}"):
                if timing:
                    events[i][0].record()
                x = step(x, i, args.steps)
                if timing:
                    events[i][1].record()
        if timing:
            stage_events[1].record()
    if timing:
        torch.cuda.synchronize()
    host_ms = (time.perf_counter() - host_start) * 1000.0
    step_ms = [a.elapsed_time(b) for a, b in events]
    stage_ms = stage_events[0].elapsed_time(stage_events[1]) if timing else None
    checksum = float(x.float().abs().mean())

    result = {
        "rank": rank, "world_size": world, "local_rank": local_rank,
        "device": torch.cuda.get_device_name(device) if timing else "cpu",
        "config": {k: getattr(args, k) for k in
                   ("tokens", "dim", "heads", "blocks", "steps", "warmup", "no_overlap")},
        "timing": "CUDA events recorded on the compute stream at each step's start and end",
        "step_ms": step_ms, "stage_ms": stage_ms, "host_loop_ms": host_ms, "checksum": checksum,
    }
    if args.json_dir:
        os.makedirs(args.json_dir, exist_ok=True)
        path = os.path.join(args.json_dir, f"rank{rank}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(path + ".tmp", path)
    steps_text = " ".join(f"{v:.3f}" for v in step_ms) if step_ms else "(no GPU timing)"
    print(f"ulysses_dit rank {rank}/{world}: steps ms {steps_text}; checksum {checksum:.6f}",
          flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
