#!/usr/bin/env bash
# device_check: the one command of a GPU run. On a machine with one Hopper GPU, the CUDA toolkit
# and no network, it takes the build from .devbundle/ (make devbundle, made beforehand on a
# build machine) or rebuilds there with the bundled headers and libraries (CUTLASS's included),
# then:
#   kernels  every kernel against its CPU reference (tests/cuda/dev_kernels: reference and fast
#            numerics, the GEMM scale-layout probe, CUTLASS, graph replay = padded eager steps)
#   stages   --dump-stages of the FP8 fixture and of the 2-layer V3-shaped synthetic model on the
#            GPU, each stage recomputed on the CPU by seekd check-stages
#   bench    tests/cuda/bench_cu: FP8 GEMMs, MLA decode, the MoE layer, end-to-end decode and a
#            4,096-token prefill on the 8-layer V3-shaped synthetic model (tables in the report)
#   golden   tests/integration/test_logits.py with --backend cuda --numerics ref, then the fast
#            numerics' gates (test_fast_numerics.py with FAST_BACKEND=cuda)
#   serve    seekd serve on the GPU behind the real scheduler and sampler
#   parallel the NCCL communicator (tests/cuda/nccl_check.sh), then tensor and expert
#            parallelism over 2 and 4 GPUs: `seekd logits --tensor-parallel-size N` and
#            `--data-parallel-size N --enable-expert-parallel` under mpirun against one GPU on
#            the safetensors fixtures in every mode, within 1e-5 of max |logit|; skipped, and
#            said so, where fewer GPUs are there (NCCL refuses two ranks on one GPU)
# Every step has a timeout and the whole run a limit (DEVICE_CHECK_LIMIT, 470 s: under 8 minutes);
# the report ($OUT/device-report.md, OUT defaulting to ./device-out) is appended to after every
# step, so a run cut short still says what it saw. A step that needs a GPU where none is usable
# is recorded as unavailable, with the runtime's reason.
#
# usage: tests/cuda/device_check.sh [STEPS]
#        STEPS: comma list of env,build,kernels,stages,bench,golden,serve,parallel (default: all)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export ROOT=$PWD
export OUT=${OUT:-$ROOT/device-out}
export BUNDLE=${SEEKD_BUNDLE:-$ROOT/.devbundle}
LIMIT=${DEVICE_CHECK_LIMIT:-470}
STEPS=${1:-env,build,kernels,stages,bench,golden,serve,parallel}
[ "$STEPS" = all ] && STEPS=env,build,kernels,stages,bench,golden,serve,parallel
START=$(date +%s)
REPORT=$OUT/device-report.md
mkdir -p "$OUT/logs"
SUMMARY=()
GPU_WHY=""

want() { [[ ",$STEPS," == *",$1,"* ]]; }
left() { echo $((START + LIMIT - $(date +%s))); }

# A section of the report: the step, its status and time, the end of its log.
record() {
    local name=$1 status=$2 secs=$3 log=${4:-}
    SUMMARY+=("| $name | $status | ${secs} s |")
    {
        echo "## $name: $status (${secs} s)"
        echo
        if [ -n "$log" ] && [ -s "$log" ]; then
            echo '```'
            tail -n 80 "$log"
            echo '```'
        fi
        echo
    } >> "$REPORT"
}

# run_step NAME BUDGET FUNCTION: the function under a timeout (the smaller of BUDGET and the
# time left), its output in logs/NAME.log. Returns its status.
run_step() {
    local name=$1 budget=$2 fn=$3 t rc t0 status
    t=$(left)
    ((t > budget)) && t=$budget
    if ((t < 5)); then
        record "$name" "skipped: the run's time limit was reached" 0
        return 124
    fi
    t0=$(date +%s)
    timeout -k 5 "$t" bash -c "$fn" > "$OUT/logs/$name.log" 2>&1
    rc=$?
    case $rc in
    0) status=ok ;;
    124 | 137) status="TIMEOUT after ${t} s" ;;
    *) status="FAILED (exit $rc)" ;;
    esac
    record "$name" "$status" $(($(date +%s) - t0)) "$OUT/logs/$name.log"
    return $rc
}

# ---- where the CUDA libraries are -----------------------------------------------------------
cuda_lib_dirs() {
    local d
    {
        [ -n "${CUDA_HOME:-}" ] && echo "$CUDA_HOME/lib64"
        ls -d /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/local/cuda-*/lib 2>/dev/null
        ldconfig -p 2>/dev/null | awk '/libcublasLt\.so\.13|libnccl\.so\.2/ { print $NF }' | xargs -r -n1 dirname
        python3 - <<'PY' 2>/dev/null
import glob, site
for p in site.getsitepackages() + [site.getusersitepackages()]:
    for d in glob.glob(p + "/nvidia/*/lib"):
        print(d)
PY
    } | while read -r d; do
        [ -e "$d/libcublasLt.so.13" ] || [ -e "$d/libnccl.so.2" ] && echo "$d"
    done | awk '!seen[$0]++' | paste -sd: -
}
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
export CUDA_HOME=${CUDA_HOME:-$( [ -n "$NVCC" ] && dirname "$(dirname "$NVCC")")}
export LD_LIBRARY_PATH="$BUNDLE/lib:$(cuda_lib_dirs)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="${CUDA_HOME:+$CUDA_HOME/bin:}$PATH"

# ---- Python for the golden test: the machine's, or the bundled pytest and numpy ---------------
python_setup() {
    python3 -c 'import pytest, numpy' 2>/dev/null && return 0
    local want have dir=${TMPDIR:-/tmp}/seekd-py
    want=$(cat "$BUNDLE/py/PYTHON_VERSION" 2>/dev/null)
    have=python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
    export PYTHONPATH="$BUNDLE/py${PYTHONPATH:+:$PYTHONPATH}"
    if ! python3 -c 'import numpy' 2>/dev/null && [ "$want" = "$have" ]; then
        mkdir -p "$dir" && tar -xJf "$BUNDLE/py/numpy.tar.xz" -C "$dir" && export PYTHONPATH="$dir:$PYTHONPATH"
    fi
    python3 -c 'import pytest, numpy' 2>/dev/null
}

{
    echo "# seekd device check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), steps $STEPS"
    echo
} > "$REPORT"

# ---- steps ------------------------------------------------------------------------------------
step_env() {
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.max.sm,clocks.max.mem \
        --format=csv || echo "nvidia-smi: unavailable"
    nvcc --version 2>/dev/null | tail -2 || echo "nvcc: unavailable"
    uname -srm
    ldd --version 2>&1 | head -1
    python3 --version 2>&1
    echo "CUDA_HOME=$CUDA_HOME"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    for b in "$BUNDLE"/bin/*; do
        echo "ldd $b:"
        ldd "$b" | grep -E 'not found|cublas|nccl|microhttpd|jansson|yaml|pcre2'
    done
}

# Uses the bundle where it is when its seekd starts here; else builds build/cuda-release/.
step_build() {
    if [ "$BUILD_NAME" = bundle ]; then
        echo "the bundled binaries start here"
    else
        echo "the bundled seekd does not start here; building with this machine's nvcc"
        local cut
        cut=build/cutlass-$(sed -n 1p "$BUNDLE/cutlass/VERSION" 2>/dev/null)
        if [ -s "$BUNDLE/cutlass/headers.tar.xz" ] && [ ! -e "$cut/ok" ]; then
            mkdir -p "$cut" && tar -xJf "$BUNDLE/cutlass/headers.tar.xz" -C "$cut" && touch "$cut/ok"
        fi
        make -j"$(nproc)" CUDA_HOME="$CUDA_HOME" build/cuda-release/seekd build/cuda-release/tests/cuda/dev_kernels \
            build/cuda-release/tests/cuda/bench_cu \
            PKG_CFLAGS="-I$BUNDLE/sysroot/include" CHECK_CFLAGS= CHECK_LIBS= \
            PKG_LIBS="-L$BUNDLE/lib -Wl,-rpath-link,$BUNDLE/lib -l:libjansson.so.4 -l:libpcre2-8.so.0 -l:libmicrohttpd.so.12 -l:libyaml-0.so.2" ||
            return 1
    fi
    "$SEEKD" version
}

step_kernels() {
    "$DEV_KERNELS" tests/fixtures/models/v3-fp8 tests/fixtures/models/v3-bf16-sharded \
        tests/fixtures/models/v2-lite tests/fixtures/synthetic/v3-L2.json
}

# Teacher-forced stage checks of the GPU's fast numerics: the FP8 fixture (a 128-token prefill,
# then steps of 11), and the 2-layer V3-shaped synthetic model (32 tokens, then 8 decode steps).
step_stages() {
    local d=${TMPDIR:-/tmp}/seekd-stages rc=0
    rm -rf "$d" && mkdir -p "$d"
    "$SEEKD" logits --model tests/fixtures/models/v3-fp8 --tokens "$(seq -s, 3 5 752)" --first 128 \
        --chunk 11 --backend cuda --numerics fast --dump-stages "$d/fixture" --out "$d/f.npy" &&
        "$SEEKD" check-stages --model tests/fixtures/models/v3-fp8 --dump "$d/fixture" || rc=1
    "$SEEKD" logits --synthetic tests/fixtures/synthetic/v3-L2.json --seed 3 --tokens "$(seq -s, 11 97 3890)" \
        --first 32 --decode --backend cuda --numerics fast --dump-stages "$d/v3" --out "$d/v.npy" &&
        "$SEEKD" check-stages --synthetic tests/fixtures/synthetic/v3-L2.json --seed 3 --dump "$d/v3" || rc=1
    rm -rf "$d"
    return $rc
}

# The reference numerics against the golden logits and the CPU; the fast numerics' gates.
step_golden() {
    local rc=0
    SEEKD_BUILDS=$BUILD_NAME SEEKD_LOGITS_ARGS="--backend cuda --numerics ref" \
        python3 -m pytest -q -p no:cacheprovider -rf tests/integration/test_logits.py || rc=1
    SEEKD_BUILDS=$BUILD_NAME FAST_BACKEND=cuda \
        python3 -m pytest -q -p no:cacheprovider -rf tests/integration/test_fast_numerics.py || rc=1
    return $rc
}

# seekd serve on the GPU behind the real scheduler and sampler: two concurrent chat completions,
# one asking for n = 2 (its second choice forks the first's blocks: copy_blocks on the device).
step_serve() {
    local port=18123 pid rc=0
    "$SEEKD" serve --model tests/fixtures/models/v3-bf16-sharded \
        --tokenizer tests/fixtures/tokenizer/v3 --backend cuda --port $port \
        --kv-cache-memory 256MiB &
    pid=$!
    python3 - "$port" <<'PY' || rc=1
import json, sys, threading, time, urllib.request
base = "http://127.0.0.1:%s" % sys.argv[1]
for _ in range(600):
    try:
        if urllib.request.urlopen(base + "/health", timeout=2).status == 200:
            break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("seekd did not become ready")
out = {}
def ask(name, body):
    req = urllib.request.Request(base + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    out[name] = json.load(urllib.request.urlopen(req, timeout=60))
msgs = [{"role": "user", "content": "Hello there, GPU!"}]
ts = [threading.Thread(target=ask, args=("n2", {"messages": msgs, "max_tokens": 24, "n": 2,
                                               "temperature": 0})),
      threading.Thread(target=ask, args=("one", {"messages": msgs, "max_tokens": 24, "seed": 7}))]
[t.start() for t in ts]
[t.join() for t in ts]
for name, r in sorted(out.items()):
    for c in r["choices"]:
        print(name, c["index"], c["finish_reason"], repr(c["message"]["content"][:60]))
assert len(out) == 2 and len(out["n2"]["choices"]) == 2, out
a, b = (c["message"]["content"] for c in out["n2"]["choices"])
assert a == b, "greedy choices of one prompt differ: %r %r" % (a, b)
print("serve: ok")
PY
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" || rc=1
    return $rc
}

# One GPU's logits against N GPU ranks' (the layout's flags in $3..): within 1e-5 of max |logit|.
compare_ranks() {
    local n=$1 model=$2 mode=$3 d=$4
    shift 4
    # shellcheck disable=SC2086
    "$SEEKD" logits --model "$model" --tokens 1,5,17,33,2,99,100,7,8,9,11,12 --backend cuda \
        --numerics ref --gpus 0 $mode --out "$d/one.npy" &&
        mpirun --oversubscribe --bind-to none -np "$n" "$SEEKD" logits --model "$model" \
            --tokens 1,5,17,33,2,99,100,7,8,9,11,12 --backend cuda --numerics ref \
            --gpus "0-$((n - 1))" "$@" $mode --out "$d/many.npy" &&
        python3 -c 'import sys, numpy as np
one, many = np.load(sys.argv[1]), np.load(sys.argv[2])
err = float(np.abs(one - many).max() / np.abs(one).max())
print("%s over %s GPUs, %s %s: max |diff| / max |logit| = %.2e" % (sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] or "prefill", err))
sys.exit(0 if one.shape == many.shape and err <= 1e-5 else 1)' "$d/one.npy" "$d/many.npy" "$*" "$n" "$model" "$mode"
}

# NCCL's collectives, then tensor- and expert-parallel logits over 2 and 4 GPUs against one GPU's.
step_parallel() {
    local rc=0 gpus n mode model d=${TMPDIR:-/tmp}/seekd-ranks
    if ! command -v mpirun > /dev/null; then
        echo "parallel: skipped: no mpirun (Open MPI) on this machine"
        return 0
    fi
    tests/cuda/nccl_check.sh "$OUT/logs" || rc=1
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    rm -rf "$d" && mkdir -p "$d"
    for n in 2 4; do
        if [ "${gpus:-0}" -lt "$n" ]; then
            echo "tensor and expert parallelism over $n GPUs: skipped: ${gpus:-0} GPU(s) here"
            continue
        fi
        for model in tests/fixtures/models/v3-fp8 tests/fixtures/models/v3-bf16-sharded tests/fixtures/models/v2-lite; do
            for mode in "" "--chunk 5" "--decode"; do
                compare_ranks "$n" "$model" "$mode" "$d" --tensor-parallel-size "$n" || rc=1
                compare_ranks "$n" "$model" "$mode" "$d" --data-parallel-size "$n" --enable-expert-parallel || rc=1
            done
        done
    done
    rm -rf "$d"
    return $rc
}

# The fast path's benchmarks (tests/cuda/bench_cu), the 8-layer V3-shaped model end to end.
step_bench() {
    "$BENCH" gemm mla moe decode tests/fixtures/synthetic/v3-L8.json
}
export -f step_env step_build step_kernels step_stages step_golden step_serve step_bench step_parallel \
    compare_ranks

# The figures of the bench log, as report tables (key=value fields of bench_cu's lines).
bench_figures() {
    awk '
        function kv(   i, p) { delete f; for (i = 2; i <= NF; i++) { p = index($i, "="); if (p) f[substr($i, 1, p - 1)] = substr($i, p + 1) } }
        /^copy_bandwidth_GBps/ { printf "- device-to-device copy: %s GB/s\n", $2 }
        /^gemm_probe/ { print "- cuBLASLt scale-layout probe: " substr($0, 12) }
        /^gemm path=/ { kv(); if (!g++) print "\n| GEMM path | linear | n × k | T | µs | TFLOPS | % of 1,979 | weight TB/s |\n|---|---|---|---|---|---|---|---|"
                        printf "| %s | %s | %s × %s | %s | %s | %s | %s | %s |\n", f["path"], f["shape"], f["n"], f["k"], f["T"], f["us"], f["TFLOPS"], f["pct_peak"], f["weight_TBps"] }
        /^gemm shape=.*does not take/ { print "- " $0 }
        /^mla B=/ { kv(); if (!m++) print "\n| MLA decode, H 128 | context | µs | cache TB/s | % of copy | TFLOPS |\n|---|---|---|---|---|---|"
                    printf "| B = %s | %s | %s | %s | %s | %s |\n", f["B"], f["L"], f["us"], f["TBps"], f["pct_copy"], f["TFLOPS"] }
        /^moe T=/ { kv(); if (!e++) print "\n| MoE layer (experts side) | experts touched | µs | TB/s | % of copy | TFLOPS |\n|---|---|---|---|---|---|"
                    printf "| T = %s | %s | %s | %s | %s | %s |\n", f["T"], f["experts"], f["us"], f["TBps"], f["pct_copy"], f["TFLOPS"] }
        /^decode_setup/ { print "- " $0 }
        /^prefill T=/ { kv(); printf "- prefill of %s tokens (v3-L8): %s ms, %s tokens/s\n", f["T"], f["ms"], f["tok_s"] }
        /^decode B=/ { kv(); if (!d++) print "\n| decode v3-L8, context 1,024 | ms / step | tokens/s | rows whole to host | rows pre-filtered | roofline ms | × roofline |\n|---|---|---|---|---|---|---|"
                       printf "| B = %s | %s | %s | %s | %s | %s | %s |\n", f["B"], f["ms"], f["tok_s"], f["ms_with_logits"], f["ms_with_cands"], f["roofline_ms"], f["x_roofline"] }
        / unavailable/ { print "- " $0 }' "$1"
}

# The binaries: the bundle's where they start (SEEKD_BUILDS name "bundle" in the integration
# tests), else the ones the build step makes ("cuda").
if "$BUNDLE/bin/seekd" version 2>/dev/null | grep -q cuda; then
    export BUILD_NAME=bundle SEEKD=$BUNDLE/bin/seekd DEV_KERNELS=$BUNDLE/bin/dev_kernels BENCH=$BUNDLE/bin/bench_cu
else
    export BUILD_NAME=cuda SEEKD=build/cuda-release/seekd DEV_KERNELS=build/cuda-release/tests/cuda/dev_kernels \
        BENCH=build/cuda-release/tests/cuda/bench_cu
fi

if want env; then run_step env 30 step_env; fi
if want build; then run_step build 240 step_build || GPU_WHY="no build"; fi
if [ -z "$GPU_WHY" ] && [ -x "$SEEKD" ]; then
    "$SEEKD" logits --model tests/fixtures/models/v2-lite --tokens 1 --out "$OUT/logs/probe.npy" \
        --backend cuda > "$OUT/logs/probe.log" 2>&1 || GPU_WHY=$(tail -1 "$OUT/logs/probe.log")
    rm -f "$OUT/logs/probe.npy"
elif [ -z "$GPU_WHY" ]; then
    GPU_WHY="no seekd binary (run the build step)"
fi
for s in kernels stages bench golden serve parallel; do
    want $s || continue
    if [ -n "$GPU_WHY" ]; then
        record $s "unavailable: $GPU_WHY" 0
        continue
    fi
    case $s in
    kernels) run_step kernels 120 step_kernels ;;
    stages) run_step stages 75 step_stages ;;
    bench) run_step bench 150 step_bench; bench_figures "$OUT/logs/bench.log" >> "$REPORT" ;;
    golden) python_setup && run_step golden 150 step_golden ||
        { [ -s "$OUT/logs/golden.log" ] || record golden "unavailable: python3 lacks pytest or numpy" 0; } ;;
    serve) run_step serve 45 step_serve ;;
    parallel) python_setup; run_step parallel 150 step_parallel ;;
    esac
done

{
    echo "## Summary"
    echo
    echo "| step | result | time |"
    echo "|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    echo
    [ -s "$OUT/logs/kernels.log" ] && echo "- kernel cases: $(grep -c ' PASS$' "$OUT/logs/kernels.log") passed, $(grep -c ' FAIL$' "$OUT/logs/kernels.log") failed"
    [ -s "$OUT/logs/golden.log" ] && echo "- golden (ref; fast): $(grep -E '[0-9]+ (passed|failed)' "$OUT/logs/golden.log" | paste -sd';' -)"
    [ -s "$OUT/logs/stages.log" ] && grep '^check-stages:' "$OUT/logs/stages.log" | sed 's/^/- /'
    [ -s "$OUT/logs/bench.log" ] && grep -E '^(prefill|decode B=(1|64|256) )' "$OUT/logs/bench.log" | sed 's/^/- /'
    echo "- total: $(($(date +%s) - START)) s"
} >> "$REPORT"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
sed -n '/^## Summary/,$p' "$REPORT"
