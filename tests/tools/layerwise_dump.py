"""Test helper: a perf dump of a transformer annotated as SGLang's layerwise markers do it
(a stage, the loop, the step, predict_noise, then one scope per module named by its
qualified name, so that a child repeats its parent's name), about 300 scopes. The same
model as sample::layerwise() in sample_results.hpp, written as the collector writes dumps
(the keys compare, merge and hotspots read)."""


def layerwise_dump(blocks=26, scale=lambda i: 1.0, mode="profile", rank=None, comm=False):
    """The dump as a dict. scale(i) multiplies scope i's own GPU time (scopes in pre-order);
    mode "perf" writes what perf mode with stages and steps timed writes: every scope has a
    gpu object, only stages and the step have timed_calls and time. comm: communication
    kernels in every attention module."""
    nodes = []  # (name, parent, own busy ms, kernel)

    def add(name, parent, own, kernel=""):
        nodes.append((name, parent, own, kernel))
        return len(nodes) - 1

    gemm = "nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT"
    norm = ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, "
            "float>(int, float, c10::BFloat16 const*, c10::BFloat16 const*, c10::BFloat16 const*, "
            "float*, float*, c10::BFloat16*)")
    attn = "void flash::FlashAttnFwdSm90<cutlass::bfloat16_t, 128, 128, true>(flash::Params)"
    stage = add("DenoisingStage", -1, 0)
    loop = add("denoising_loop", stage, 0)
    step = add("denoise_step", loop, 0)
    predict = add("predict_noise", step, 0)
    tte = add("transformer.time_text_embed", predict, 0.5, gemm)
    for e in ("timestep_embedder", "text_embedder"):
        q = "transformer.time_text_embed." + e
        m = add(q, tte, 0)
        add(q + ".linear_1", m, 1.0, gemm)
        add(q + ".linear_2", m, 1.5, gemm)
    add("transformer.x_embedder", predict, 2, gemm)
    add("transformer.context_embedder", predict, 3, gemm)
    for b in range(blocks):
        q = f"transformer.transformer_blocks.{b}"
        f = 1.0 + (b % 7) * 0.1 + b * 0.01
        block = add(q, predict, 0.3 * f, gemm)
        n1 = add(q + ".norm1", block, 0.5 * f, norm)
        add(q + ".norm1.linear", n1, 2 * f, gemm)
        a = add(q + ".attn", block, 3 * f, attn)
        for l in ("to_q", "to_k", "to_v", "to_out.0"):
            add(q + ".attn." + l, a, 1 * f, gemm)
        ff = add(q + ".ff", block, 0)
        add(q + ".ff.net.0.proj", ff, 6 * f, gemm)
        add(q + ".ff.net.2", ff, 5 * f, gemm)
    no = add("transformer.norm_out", predict, 0.5, norm)
    add("transformer.norm_out.linear", no, 1, gemm)
    add("transformer.proj_out", predict, 2, gemm)
    add("scheduler_step", step, 0.2, gemm)
    dec = add("DecodingStage", -1, 40, "void conv2d_kernel<float>(int)")
    add("vae.decoder", dec, 0)

    own = [n[2] * scale(i) for i, n in enumerate(nodes)]
    busy = list(own)
    for i in range(len(nodes) - 1, -1, -1):
        if nodes[i][1] >= 0:
            busy[nodes[i][1]] += busy[i]
    scopes, kernels, paths, depths = [], [], [], []
    for i, (name, parent, _, kernel) in enumerate(nodes):
        path = name if parent < 0 else paths[parent] + "/" + name
        depth = 0 if parent < 0 else depths[parent] + 1
        paths.append(path)
        depths.append(depth)
        category = ("stage" if name.endswith("Stage") else "denoise_step" if i == step
                    else "attention" if name.endswith(".attn") else "other")
        timed = category in ("stage", "denoise_step")
        calls = 28 if depth >= 2 else 1
        if mode == "perf":
            gpu = {"busy_ms": busy[i] if timed else 0.0, "occupied_ms": busy[i] if timed else 0.0,
                   "envelope_ms": busy[i] * 1.05 if timed else 0.0, "kernels": 0, "memcpys": 0,
                   "memsets": 0, "bytes": 0}
            if timed:
                gpu["timed_calls"] = calls
        else:
            gpu = {"busy_ms": busy[i], "occupied_ms": busy[i], "envelope_ms": busy[i] * 1.05,
                   "kernels": calls, "memcpys": 0, "memsets": 0, "bytes": 0}
        s = {"path": path, "name": name, "category": category, "domain": "", "depth": depth,
             "parent": parent, "calls": calls, "host": {"sum_ms": busy[i] * 1.2}, "gpu": gpu,
             "launches": calls}
        if comm and ".attn" in name:
            s["comm"] = {"busy_ms": 1.0, "overlapped_ms": 0.5, "exposed_ms": 0.5, "kernels": 2}
        scopes.append(s)
        if kernel and mode != "perf":
            kernels.append({"name": kernel, "kind": "kernel", "scope_path": path, "count": calls,
                            "total_ms": own[i], "mean_ms": own[i] / calls,
                            "min_ms": own[i] / calls, "max_ms": own[i] / calls})
    kernels.sort(key=lambda k: -k["total_ms"])
    total = busy[stage] + busy[dec]
    dump = {
        "timestamp": "2025-01-01T00:00:00+00:00", "request_id": "r", "commit_hash": "abc",
        "tag": "layerwise", "total_duration_ms": total,
        "steps": [{"name": "DenoisingStage", "duration_ms": busy[stage]},
                  {"name": "DecodingStage", "duration_ms": busy[dec]}],
        "denoise_steps_ms": [{"step": i, "duration_ms": busy[step] / 28} for i in range(28)],
        "memory_checkpoints": {}, "meta": {},
        "diffscope": {
            "schema_version": 1,
            "status": {"gpu_timing": True, "reason": "", "mode": mode,
                       **({"perf_scopes": "steps", "perf_sample_steps": 1} if mode == "perf" else {})},
            "environment": {"rank": -1 if rank is None else rank,
                            "world_size": -1 if rank is None else 2, "local_rank": -1},
            "scopes": scopes, "kernels_total": len(kernels), "kernels": kernels[:50],
        },
    }
    return dump
