#!/usr/bin/env bash
# Everything that needs a GPU, in one command (docs/gpu.md): configure and build in
# Release for sm_90, run every test (GPU ones included), check the toy DiT's GPU kernels
# against its CPU reference, run the README's main job, and run the GPU benchmarks.
# Logs go to $OUT (or out/gpu); a summary is printed last.
#
#   bash bench/gpu_suite.sh
#   SUITE_PARTS="core perf" bash bench/gpu_suite.sh   # a subset (the build is always made)
#
# Parts (SUITE_PARTS, default all of them, in this order):
#   core   every test (-s for the GPU ones), toy_dit --check, the main job (and in sampled
#          mode, its dump checked), via the injection lib
#   gpu    only the tests labelled gpu (a quick re-check)
#   bench  the micro-benchmarks and toy_dit collector on/off
#   sampled  sampled mode alone: test_sampled_gpu and bench_sample_switch (quick; not in the
#          default parts)
#   torch  bench/torch_overhead.sh: the PyTorch extension and Python loop against torch.profiler
#   perf   bench/perf_mode.py: perf mode against uninstrumented runs and CUDA events
#   cost   bench/profile_cost.py: what each part of profile mode adds to the Python loop
#          (not in the default parts: SUITE_PARTS="... cost", COST_ARGS more arguments)
#   noise  bench/loop_noise.sh: the Python loop's steadiness per CPU pinning, then profile_cost
#          under the steadiest (not in the default parts)
#   modes  bench/process_cost.py: what each mode costs whole processes (plain, perf, sampled,
#          profile, records-only, torch.profiler alternating) on the launch-bound Python loop
#          and on the diffusers example (not in the default parts; MODES_REPS processes per
#          variant, default 6; MODES_WORKLOADS, default "dit flux"; MODES_VARIANTS, a subset)
#   ab     bench/ab_toy_dit.sh: diffscope ab on toy_dit
#   multi  bench/multi_gpu.sh: two ranks under diffscope run (needs two GPUs)
#   diffusers  bench/diffusers_example.sh: examples/diffusers/flux_like.py (PyPI diffusers'
#          Flux transformer, random weights) under diffscope run in profile and perf mode,
#          steps against CUDA events (not in the default parts; needs the deps that
#          examples/diffusers/fetch_deps.sh puts in .devdeps/, carried; DIFFUSERS_ARGS more
#          flux_like.py arguments)
# SUITE_TARGETS builds only those CMake targets (parts that need others fail).
# SUITE_COMMIT labels the figures when the machine has no git. PERF_REPS and PY_REPS set the
# runs per variant of perf_mode.py (toy_dit, Python loop); TORCH_REPS those of torch_overhead;
# PERF_ARGS more arguments for perf_mode.py (e.g. "--py-sections accuracy").
#
# Optional: a .devdeps/usr prefix with doctest, nlohmann_json and Google Benchmark, for GPU
# machines whose image lacks them (docs/gpu.md).
set -uo pipefail
out=${OUT:-$PWD/out/gpu}
mkdir -p "$out"
summary="$out/summary.txt"
logs=$(mktemp -d)  # configure and build logs: printed on failure, not kept (8 files come back)
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

prefix_args=()
if [ -d .devdeps/usr ]; then
  prefix_args=(-DCMAKE_PREFIX_PATH="$PWD/.devdeps/usr")
  export LD_LIBRARY_PATH="$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
export PATH="/usr/local/cuda/bin:$PATH"

parts=${SUITE_PARTS:-core bench torch perf ab multi}
has() { [[ " $parts " == *" $1 "* ]]; }
note "gpu_suite: $(date -u +%Y-%m-%dT%H:%M:%SZ) commit ${SUITE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)} parts: $parts"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$summary"

start=$(date +%s)
if ! cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DDIFFSCOPE_BUILD_BENCHMARKS=ON -DDIFFSCOPE_PACKAGE_TESTS=OFF "${prefix_args[@]}" \
  >"$logs/configure.log" 2>&1; then
  tail -40 "$logs/configure.log"
  note "configure: FAILED"
  exit 1
fi
if ! cmake --build build-gpu -j "$(nproc)" ${SUITE_TARGETS:+--target $SUITE_TARGETS} \
  >"$logs/build.log" 2>&1; then
  grep -E "error|FAILED" -A3 "$logs/build.log" | head -80
  note "build: FAILED"
  exit 1
fi
note "build: ok in $(($(date +%s) - start)) s"

toy=build-gpu/examples/toy_dit/toy_dit
if has core; then
# Every test but the ones that download (no network on GPU machines).
ctest --test-dir build-gpu -LE network --output-on-failure -j 4 >"$out/ctest.log" 2>&1
note "ctest: $(grep -E 'tests passed|tests failed' "$out/ctest.log")"
grep -E "\*\*\*(Failed|Skipped|Not Run)|Exception" "$out/ctest.log" | tee -a "$summary"
# The GPU tests again with their MESSAGE lines (measured against ground truth).
for t in test_collector_gpu test_cupti_source_gpu test_perf_mode_gpu test_sampled_gpu; do
  echo "==== $t -s" >>"$out/gpu_tests.log"
  build-gpu/tests/$t -s >"$out/$t.tmp" 2>&1
  rc=$?
  cat "$out/$t.tmp" >>"$out/gpu_tests.log"
  note "$t: exit $rc $(grep -E '^\[doctest\] (test cases|assertions)' "$out/$t.tmp" | tr '\n' ' ')"
  grep "MESSAGE:" "$out/$t.tmp" | sed 's/^.*MESSAGE: /  /' | tee -a "$summary"
  grep -B3 -A3 "ERROR:" "$out/$t.tmp" | head -40 | tee -a "$summary"
  rm -f "$out/$t.tmp"
done
$toy --check >"$out/toy_dit_check.tmp" 2>&1
note "toy_dit --check: exit $? $(tail -1 "$out/toy_dit_check.tmp")"
rm -f "$out/toy_dit_check.tmp"

# The README's main job on the GPU.
rm -rf build-gpu/out
$toy --dump build-gpu/out/perf.json --trace build-gpu/out/trace.json --summary \
  >"$out/main_job.log" 2>&1
note "main job: exit $?"
cp build-gpu/out/perf.json "$out/main_job_perf.json" 2>/dev/null
gzip -c build-gpu/out/trace.json >"$out/main_job_trace.json.gz" 2>/dev/null

# The same job in sampled mode (events time every step, CUPTI traces steps 1-2), its dump
# checked against SGLang's contract and for what sampled mode must say.
rm -rf build-gpu/out-sampled
DIFFSCOPE_MODE=sampled $toy --dump build-gpu/out-sampled/perf.json --summary \
  >"$out/main_job_sampled.log" 2>&1
note "main job sampled: exit $? $(python3 tests/tools/check_perf_dump.py --quiet \
  build-gpu/out-sampled/perf.json 2>&1 | head -3; echo "contract exit ${PIPESTATUS[0]}") $(python3 -c '
import json
d = json.load(open("build-gpu/out-sampled/perf.json"))["diffscope"]
st = d["status"]
traced = [s["step"] for s in d["steps"] if s.get("traced")]
sources = sorted({s.get("duration_source", "?") for s in d["steps"]})
ok = st["mode"] == "sampled" and st["gpu_timing"] and traced == [1, 2]
print("mode=%s gpu_timing=%s traced_steps=%s of %d step_sources=%s %s" % (st["mode"],
      st["gpu_timing"], traced, len(d["steps"]), ",".join(sources), "ok" if ok else "FAILED"))
' 2>&1 | tail -1)"

# The same job collected by libdiffscope_inject.so instead (NVTX_INJECTION64_PATH takes
# precedence over the static injection linked into toy_dit).
if [ -f build-gpu/tools/libdiffscope_inject.so ]; then
  rm -rf build-gpu/out-inject
  NVTX_INJECTION64_PATH="$PWD/build-gpu/tools/libdiffscope_inject.so" \
    DIFFSCOPE_DUMP=build-gpu/out-inject/perf.json $toy --quiet >/dev/null 2>&1
  note "main job through libdiffscope_inject.so: exit $? $(python3 -c '
import json, sys
d = json.load(open("build-gpu/out-inject/perf.json"))["diffscope"]
k = sum(s["gpu"]["kernels"] for s in d["scopes"] if s["depth"] == 0 and s["gpu"])
print("gpu_timing=%s kernels_in_top_scopes=%d" % (d["status"]["gpu_timing"], k))
' 2>&1)"
fi

fi

if has bench; then
{
  build-gpu/bench/bench_collector_gpu
  build-gpu/bench/bench_event_cost 200 7
  build-gpu/bench/bench_cupti_launch 100000
  build-gpu/bench/bench_sample_switch
  if [ -x build-gpu/bench/bench_scope ]; then
    env -u NVTX_INJECTION64_PATH build-gpu/bench/bench_scope --benchmark_repetitions=5 \
      --benchmark_report_aggregates_only=true --benchmark_format=console 2>&1 | grep -E "median|Benchmark|^---"
    build-gpu/bench/bench_scope_disabled --benchmark_repetitions=5 \
      --benchmark_report_aggregates_only=true 2>&1 | grep -E "median"
  fi
  bash bench/toy_dit_overhead.sh $toy 5 --tokens 4096 --dim 1024 --heads 16 --blocks 4 --steps 10
  bash bench/toy_dit_overhead.sh $toy 5 --tokens 64 --dim 128 --heads 2 --blocks 4 --steps 50
} >"$out/bench.log" 2>&1
note "benchmarks:"
sed 's/^/  /' "$out/bench.log" | tee -a "$summary" >/dev/null
fi

# Each driver prints its report with PASS/FAIL lines last; the summary keeps the tail.
part() {  # $1 = name, then the command
  local name=$1 t0
  shift
  t0=$(date +%s)
  "$@" >"$out/$name.log" 2>&1
  note "$name: exit $? in $(($(date +%s) - t0)) s"
  tail -n "${TAIL_LINES:-25}" "$out/$name.log" | sed 's/^/  /' | tee -a "$summary" >/dev/null
}
if has gpu; then
  ctest --test-dir build-gpu -L gpu --output-on-failure >"$out/ctest_gpu.log" 2>&1
  note "ctest -L gpu: $(grep -E 'tests passed|tests failed' "$out/ctest_gpu.log")"
  grep -E "MESSAGE|ERROR|logged" "$out/ctest_gpu.log" | head -20 | sed 's/^/  /' | tee -a "$summary"
fi
ext=build-ext/libdiffscope_torch_ext.so
if has sampled; then
  build-gpu/tests/test_sampled_gpu 2>&1 | grep -E "MESSAGE|ERROR|test cases|assertions" |
    cut -c1-600 | tee -a "$summary"
  build-gpu/bench/bench_sample_switch 2>&1 | tee -a "$summary"
fi
has torch && part torch bash bench/torch_overhead.sh "$out/torch" --reps "${TORCH_REPS:-5}"
if has perf; then
  # The Python loop needs the extension: built here unless the torch part made it
  # (PY_REPS=0: toy_dit only).
  if [ "${PY_REPS:-4}" != 0 ]; then
    [ -f "$ext" ] || sh bench/build_torch_ext.sh "$logs" >"$out/ext_build.log" 2>&1 ||
      note "perf: the PyTorch extension did not build ($(tail -1 "$out/ext_build.log")); toy_dit only"
  fi
  ext_args=(--diffscope build-gpu/tools/diffscope)
  [ -f "$ext" ] && [ "${PY_REPS:-4}" != 0 ] && ext_args+=(--ext "$ext")
  part perf python3 bench/perf_mode.py --toy "$toy" "${ext_args[@]}" --out "$out/perf_mode" \
    --reps "${PERF_REPS:-7}" --py-reps "${PY_REPS:-4}" ${PERF_ARGS:-}
fi
if has cost || has noise || has modes; then
  [ -f "$ext" ] || sh bench/build_torch_ext.sh "$logs" >"$out/ext_build.log" 2>&1 ||
    note "cost: the PyTorch extension did not build ($(tail -1 "$out/ext_build.log"))"
fi
has cost && [ -f "$ext" ] && part cost python3 bench/profile_cost.py \
  --diffscope build-gpu/tools/diffscope --ext "$ext" --out "$out/profile_cost" ${COST_ARGS:-}
has noise && [ -f "$ext" ] && part noise sh bench/loop_noise.sh "$out/noise" \
  build-gpu/tools/diffscope "$ext"
if has modes; then
  for w in ${MODES_WORKLOADS:-dit flux}; do
    [ "$w" = dit ] && [ ! -f "$ext" ] && { note "modes dit: skipped (no extension)"; continue; }
    part "modes_$w" python3 bench/process_cost.py --workload "$w" --diffscope \
      build-gpu/tools/diffscope --out "$out/modes_$w" --reps "${MODES_REPS:-6}" \
      ${MODES_VARIANTS:+--variants $MODES_VARIANTS} \
      $([ "$w" = dit ] && echo --ext "$ext")
  done
fi
has ab && part ab bash bench/ab_toy_dit.sh build-gpu/tools/diffscope "$toy"
if has multi; then
  if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
    part multi bash bench/multi_gpu.sh build-gpu/tools/diffscope "$out/multi_gpu"
  else
    note "multi: skipped (fewer than two GPUs)"
  fi
fi
has diffusers && part diffusers bash bench/diffusers_example.sh build-gpu/tools/diffscope \
  "$out/diffusers" ${DIFFUSERS_ARGS:-}
note "total: $(($(date +%s) - start)) s"
echo "==================== summary ===================="
cat "$summary"
if has core; then
  echo "==================== main job (GPU) ====================="
  head -60 "$out/main_job.log"
fi
