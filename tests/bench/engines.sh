#!/usr/bin/env bash
# engines.sh: seekd against llama.cpp's server, side by side, same machine, same weights, same
# thread count. Run by `make bench`; see docs/PERFORMANCE.md. Three models (BENCH_MODELS picks):
#   bf16     a random DeepSeek-V3-architecture checkpoint in BF16 (seekd reads the safetensors,
#            llama.cpp its GGUF conversion)
#   smollm2  the default model, SmolLM2-135M-Instruct Q4_1 GGUF (the same file for both)
#   q4km     a random DeepSeek-V3-architecture GGUF in a Q4_K_M mix (the same file for both)
#
#   tests/bench/engines.sh OUT_DIR THREADS
#
# Everything it makes goes under OUT_DIR (git-ignored): the bench models, .venv-bench's
# llama.cpp sources, the llama-server build, results/<model>/*.json (RES overrides the results
# directory). Steps already done are kept (delete OUT_DIR to start over). The machine's load
# average is recorded before and after each model's runs (results/<model>/load.txt).
#
# Environment: BENCH_MODELS (all three), REPEATS (2), SCENARIOS (each model's own list: see
# below), SEEKD_ARGS (more `seekd serve` flags), LLAMA_BUILD (a llama.cpp build directory other
# than OUT_DIR/llama-build, e.g. one with other GGML options; its CMake options are reported).
#
# Fairness: for every run, the CPU time that other work took from the machine (all busy time,
# steal included, less the two servers' and the load generator's own); report.py marks a figure,
# and its table, disturbed when that exceeds a tenth of the machine's cores over the run.
set -euo pipefail
OUT=${1:-bench-out}
THREADS=${2:-$(nproc)}
LLAMA_CPP_PYTHON=0.3.36
# Ports the kernel has free when a model's servers start (a fixed one may be another bench's on
# a shared machine; one chosen at the start may since be a client connection's local port).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
FIXED_SEEKD=${PORT_SEEKD:-}
FIXED_LLAMA=${PORT_LLAMA:-}
BENCH_MODELS=${BENCH_MODELS:-bf16 smollm2 q4km}
RES_ROOT=${RES:-$OUT/results}
mkdir -p "$OUT" "$RES_ROOT"

log() { printf '\n== %s\n' "$*" >&2; }

# llama.cpp: llama-cpp-python from PyPI (its Python server, and the llama.cpp sources it
# carries, from which llama.cpp's own C++ server is built), plus the gguf package.
setup_llama() {
    if [ ! -f .venv-bench/ok ]; then
        log "installing llama-cpp-python $LLAMA_CPP_PYTHON into .venv-bench (compiles llama.cpp: minutes)"
        python3 -m venv .venv-bench
        .venv-bench/bin/pip install -q --disable-pip-version-check \
            "llama-cpp-python[server]==$LLAMA_CPP_PYTHON" numpy==2.2.6 gguf==0.19.0
        touch .venv-bench/ok
    fi
    local src
    src=$(ls -d "$OUT"/llama-src/*/vendor/llama.cpp 2>/dev/null | head -1 || true)
    if [ -z "$src" ]; then
        .venv-bench/bin/pip download -q --no-deps --no-binary :all: \
            "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$OUT/dl"
        mkdir -p "$OUT/llama-src"
        tar xzf "$OUT"/dl/llama_cpp_python-*.tar.gz -C "$OUT/llama-src"
        src=$(ls -d "$OUT"/llama-src/*/vendor/llama.cpp | head -1)
    fi
    if [ ! -x "$OUT/llama-build/bin/llama-server" ]; then
        log "building llama-server from llama-cpp-python's llama.cpp sources"
        cmake -S "$src" -B "$OUT/llama-build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
            -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >/dev/null
        cmake --build "$OUT/llama-build" --target llama-server -j"$(nproc)" >/dev/null
    fi
}

setup_bf16() {
    if [ ! -f "$OUT/model-bf16/model.safetensors" ]; then
        log "writing the bench checkpoint (random weights, BF16)"
        .venv-bench/bin/python tests/bench/mkmodel.py --out "$OUT/model-bf16" --dtype bf16
    fi
    if [ ! -f "$OUT/model-bf16.gguf" ]; then
        log "converting it to GGUF"
        .venv-bench/bin/python tests/bench/to_gguf.py "$OUT/model-bf16" "$OUT/model-bf16.gguf"
    fi
}

setup_q4km() {
    if [ ! -f "$OUT/model-q4km.gguf" ]; then
        log "writing the Q4_K_M bench GGUF (random weights, 0.7 GB)"
        .venv-bench/bin/python tests/bench/mkgguf.py --out "$OUT/model-q4km.gguf.tmp"
        mv "$OUT/model-q4km.gguf.tmp" "$OUT/model-q4km.gguf"
    fi
}

wait_up() { # url pid — until /health answers 200: loaded, warmed up, serving
    for _ in $(seq 1 1200); do
        if curl -sf "$1/health" >/dev/null 2>&1; then return 0; fi
        kill -0 "$2" 2>/dev/null || { echo "server exited" >&2; return 1; }
        sleep 0.5
    done
    return 1
}

# The scenarios, identical for every engine: name, prompts, concurrency, input, output.
SCENARIOS_BF16=${SCENARIOS:-"decode:4:1:32:128 prompt:3:1:1024:1 c1:4:1:128:64 c4:8:4:128:64 c16:16:16:128:64 c64:64:64:128:64"}
SCENARIOS_GGUF=${SCENARIOS:-"decode:4:1:32:128 c16:16:16:128:64"}
REPEATS=${REPEATS:-2}
LLAMA_BUILD=${LLAMA_BUILD:-$OUT/llama-build}
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

# CPU time (user + system clock ticks) a process has used so far, all its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Busy jiffies of the whole machine (user, nice, system, irq, softirq, steal), and of processes.
machine_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
pids_busy() {
    local s=0 p
    for p in "$@"; do [ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$s"
}

# Prompts differ between scenarios and repeats (--seed), never between engines: a prompt seen
# before would be answered from the server's prefix cache. The server's CPU time over the run
# goes to .cpu (seconds): on a machine shared with other work it measures the work done, where
# wall time also measures the waiting. Beside it, .cpu.json: the run's wall time and the CPU
# seconds other work took meanwhile.
one_run() { # engine url scenario-spec rep seed server-pid
    local name np mc il ol t0 b0 p0 w0 client
    IFS=: read -r name np mc il ol <<<"$3"
    local out="$RES/$1-$name-$4"
    t0=$(cpu_ticks "$6") b0=$(machine_busy) p0=$(pids_busy $SERVER_PIDS) w0=$(date +%s.%N)
    { TIMEFORMAT='%3U %3S'; time ./seekd bench --base-url "$2" --num-prompts "$np" \
        --max-concurrency "$mc" --seed "$5" --random-input-len "$il" --random-output-len "$ol" \
        --tokenizer "$TOK" --label "$1 $name #$4" --result-file "$out.json" >"$out.txt" 2>&3; } \
        3>&2 2>"$out.time"
    echo "$(( $(cpu_ticks "$6") - t0 )) $HZ" | awk '{print $1 / $2}' >"$out.cpu"
    client=$(tail -1 "$out.time")
    awk -v b="$(( $(machine_busy) - b0 ))" -v p="$(( $(pids_busy $SERVER_PIDS) - p0 ))" \
        -v w0="$w0" -v w1="$(date +%s.%N)" -v c="$client" -v hz="$HZ" -v n="$NCPU" \
        'BEGIN { split(c, t, " "); o = (b - p) / hz - t[1] - t[2]; if (o < 0) o = 0; w = w1 - w0;
                 printf "{\"wall_s\": %.3f, \"other_cpu_s\": %.3f, \"ncpu\": %d}\n", w, o, n }' >"$out.cpu.json"
}

stop() { [ -n "$1" ] || return 0; kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# What each engine runs: seekd's kernel choice (its backend log line), llama.cpp's build options
# and the CPU features its log reports.
record_kernels() {
    {
        echo "seekd: $(grep -m1 -o 'backend cpu (.*' "$RES/seekd.log" || echo '?')"
        echo "llama.cpp build: $(grep -E '^GGML_(NATIVE|AVX[A-Z0-9_]*|AMX_[A-Z0-9]*|FMA|F16C|BMI2|LLAMAFILE|CPU_REPACK|OPENMP):' \
            "$LLAMA_BUILD/CMakeCache.txt" | sed 's/:BOOL//' | tr '\n' ' ')"
        echo "llama.cpp ggml-cpu compiled with: $(grep -ho -- '-m[a-z0-9=_.-]*' \
            "$LLAMA_BUILD"/ggml/src/CMakeFiles/ggml-cpu.dir/flags.make 2>/dev/null | sort -u | tr '\n' ' ')"
        echo "CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-); $(grep -m1 '^flags' /proc/cpuinfo |
            tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_bf16|avx512_vnni|avx_vnni|amx_[a-z0-9]+)$' | tr '\n' ' ')"
    } >"$RES/kernels.txt"
}

# Both servers stay up and every scenario runs on one, then the other, REPEATS times: a
# machine shared with other work then slows both alike; the report keeps each one's best run.
bench_both() { # name seekd-model llama-model tokenizer scenarios slots
    local name=$1 SCENARIOS=$5
    RES=$RES_ROOT/$name TOK=$4
    mkdir -p "$RES"
    rm -f "$RES"/*.json "$RES"/*.txt "$RES"/*.time "$RES"/*.cpu
    log "$name: seekd serve and llama-server, $THREADS threads each"
    PORT_SEEKD=${FIXED_SEEKD:-$(free_port)}
    PORT_LLAMA=${FIXED_LLAMA:-$(free_port)}
    for port in "$PORT_SEEKD" "$PORT_LLAMA"; do # a server left over would answer for ours
        if curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1; then
            echo "engines.sh: something already listens on port $port" >&2
            exit 1
        fi
    done
    echo "before: $(cat /proc/loadavg)" >"$RES/load.txt"
    # shellcheck disable=SC2086 # SEEKD_ARGS: words
    ./seekd serve --model "$2" --host 127.0.0.1 --port "$PORT_SEEKD" \
        --threads "$THREADS" --kv-cache-memory 2GiB --max-model-len 2048 ${SEEKD_ARGS:-} \
        >"$RES/seekd.log" 2>&1 &
    SPID=$!
    "$LLAMA_BUILD/bin/llama-server" -m "$3" --host 127.0.0.1 \
        --port "$PORT_LLAMA" -t "$THREADS" -tb "$THREADS" -np "$6" -c $(($6 * 1280)) --no-webui \
        >"$RES/llama.log" 2>&1 &
    LPID=$!
    trap 'stop "${SPID:-}"; stop "${LPID:-}"' EXIT
    wait_up "http://127.0.0.1:$PORT_SEEKD" "$SPID"
    wait_up "http://127.0.0.1:$PORT_LLAMA" "$LPID"
    SERVER_PIDS="$SPID $LPID"
    record_kernels
    local seed=0
    for rep in $(seq 1 "$REPEATS"); do
        for s in $SCENARIOS; do
            seed=$((seed + 1))
            one_run seekd "http://127.0.0.1:$PORT_SEEKD" "$s" "$rep" "$seed" "$SPID"
            one_run llama.cpp "http://127.0.0.1:$PORT_LLAMA" "$s" "$rep" "$seed" "$LPID"
        done
    done
    stop "$SPID"
    stop "$LPID"
    trap - EXIT
    echo "after: $(cat /proc/loadavg)" >>"$RES/load.txt"
}

if [ "${LLAMA_BUILD}" = "$OUT/llama-build" ]; then setup_llama; fi
log "memory bandwidth, $THREADS threads"
build/release/tests/bench/membw "$THREADS" | tee "$RES_ROOT/membw.json"
for m in $BENCH_MODELS; do
    case $m in
    bf16)
        setup_bf16
        bench_both bf16 "$OUT/model-bf16" "$OUT/model-bf16.gguf" tests/fixtures/tokenizer/v3 \
            "$SCENARIOS_BF16" 64 ;;
    smollm2)
        smol=$(tools/default-model.sh)
        bench_both smollm2 "$smol" "$smol" "$smol" "$SCENARIOS_GGUF" 16 ;;
    q4km)
        setup_q4km
        bench_both q4km "$OUT/model-q4km.gguf" "$OUT/model-q4km.gguf" tests/fixtures/tokenizer/v3 \
            "$SCENARIOS_GGUF" 16 ;;
    *) echo "engines.sh: unknown model '$m' (bf16, smollm2, q4km)" >&2; exit 2 ;;
    esac
done
.venv-bench/bin/python tests/bench/report.py "$OUT" "$THREADS" "$RES_ROOT" | tee "$RES_ROOT/report.md"
