#!/usr/bin/env python3
"""Writes the generated part of tests/fuzz/corpus/ (deterministic; run from anywhere):
the deep inputs (20,000 levels of objects and of arrays, in a dump and in a trace), a huge
dump (about 2 MB: above the 256 KiB dump limit the fuzz build sets, so the limit is what
refuses it), gzip and byte-order-mark variants, and small valid dumps and traces. The fuzz
targets also take tests/fixtures/compare and tests/fixtures/hotspots as seeds."""
import gzip
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
DEEP = 20000
BOM = b"\xef\xbb\xbf"


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def gz(data):
    return gzip.compress(data if isinstance(data, bytes) else data.encode(), 9, mtime=0)


def main():
    os.makedirs(OUT, exist_ok=True)
    sglang = {"timestamp": "2025-12-18T09:54:57+00:00", "request_id": "r", "commit_hash": "c",
              "tag": "cli_generate", "total_duration_ms": 1000.5,
              "steps": [{"name": "TextEncodingStage", "duration_ms": 30.0},
                        {"name": "DenoisingStage", "duration_ms": 900.0},
                        {"name": "denoising_step_0", "duration_ms": 450.0},
                        {"name": "denoising_step_1", "duration_ms": 449.0},
                        {"name": "DecodingStage", "duration_ms": 70.5}],
              "denoise_steps_ms": [{"step": 0, "duration_ms": 450.0},
                                   {"step": 1, "duration_ms": 449.0}],
              "memory_checkpoints": {"after_forward": {"allocated_mb": 1.0, "reserved_mb": 2.0,
                                                       "peak_allocated_mb": 3.0,
                                                       "peak_reserved_mb": 4.0}},
              "meta": {"model": "m"}}
    ours = dict(sglang)
    ours["diffscope"] = {
        "schema_version": 1,
        "status": {"gpu_timing": True, "reason": "", "mode": "perf"},
        "environment": {"rank": 0, "world_size": 2, "local_rank": 0},
        "steps": [{"step": 0, "comm": {"busy_ms": 1, "overlapped_ms": 0.5, "exposed_ms": 0.5,
                                       "kernels": 2}}],
        "stages": [{"name": "DenoisingStage"}],
        "scopes": [{"path": "DenoisingStage", "category": "stage",
                    "gpu": {"busy_ms": 800, "envelope_ms": 890, "estimated": False}},
                   {"path": "DenoisingStage/step/attention", "category": "attention",
                    "gpu": {"busy_ms": 400, "envelope_ms": 420},
                    "comm": {"busy_ms": 1, "overlapped_ms": 1, "exposed_ms": 0, "kernels": 1}}],
        "kernels_total": 2,
        "kernels": [{"name": "flash_fwd_kernel", "kind": "kernel", "scope_path":
                     "DenoisingStage/step/attention", "count": 4, "total_ms": 400.0},
                    {"name": "nvjet_gemm", "count": 8, "total_ms": 300.0}]}
    trace = {"displayTimeUnit": "ms", "traceEvents": [
        {"ph": "X", "cat": "kernel", "name": "nvjet_gemm", "ts": 0, "dur": 10, "args": {"a": [1]}},
        {"ph": "X", "cat": "kernel", "name": "flash_fwd_kernel", "ts": 10, "dur": 5},
        {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_SendRecv", "ts": 11, "dur": 3},
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": 20, "dur": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 30}]}
    write("sglang_dump.json", json.dumps(sglang, indent=2))
    write("diffscope_dump.json", json.dumps(ours, indent=2))
    write("diffscope_dump_bom.json", BOM + json.dumps(ours).encode())
    write("trace.json", json.dumps(trace))
    write("trace_array.json", json.dumps(trace["traceEvents"]))
    write("trace.json.gz", gz(json.dumps(trace)))
    write("trace_two_members.json.gz", gz(json.dumps(trace)[:50]) + gz(json.dumps(trace)[50:]))
    write("dump.json.gz", gz(BOM + json.dumps(ours).encode()))
    # Deep: objects in a dump's meta, arrays in a dump and in a trace event's args.
    write("deep_objects.json", '{"meta": ' + '{"a": ' * DEEP + "1" + "}" * (DEEP + 1))
    write("deep_arrays.json", '{"steps": [], "x": ' + "[" * DEEP + "]" * DEEP + "}")
    write("deep_brackets.json", "[" * DEEP)
    write("deep_trace_args.json", '{"traceEvents": [{"cat": "kernel", "name": "k", "args": '
          + "[" * DEEP + "]" * DEEP + "}]}")
    # Huge: a well-formed dump of about 2 MB with many scopes (a dump, so hotspots keeps it
    # and the limit refuses it there too).
    huge = dict(ours)
    huge["diffscope"] = dict(ours["diffscope"])
    huge["diffscope"]["scopes"] = [
        {"path": f"DenoisingStage/step/block{i}/attention", "category": "attention",
         "gpu": {"busy_ms": i * 0.25, "envelope_ms": i * 0.5}} for i in range(16000)]
    write("huge_dump.json", json.dumps(huge))


if __name__ == "__main__":
    main()
