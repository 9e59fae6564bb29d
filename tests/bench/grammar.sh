#!/usr/bin/env bash
# grammar.sh: constrained decoding, seekd against llguidance and llama.cpp's grammar sampler on
# the same 128k vocabulary and the same token sequences, then seekd end to end with and without
# a JSON schema. Run by `make bench`; see docs/PERFORMANCE.md.
#
#   tests/bench/grammar.sh OUT_DIR
#
# Everything it makes goes under OUT_DIR (git-ignored): a venv with llguidance, tokenizers,
# gguf and jsonschema; llama-cpp-python's source tarball, whose llama.cpp carries
# models/ggml-vocab-llama-bpe.gguf (Llama 3's 128,256-token vocabulary, turned into a
# tokenizer.json here); a random-weight checkpoint with that vocabulary; results/grammar-*.
# llama.cpp's sampler runs in .venv-bench (made by engines.sh); without it that column is left out.
set -euo pipefail
OUT=${1:-bench-out}
LLAMA_CPP_PYTHON=0.3.36
VENV=$OUT/venv-grammar
RES=$OUT/results
PORT=${PORT_GRAMMAR:-8393}
mkdir -p "$OUT" "$RES"

log() { printf '\n== %s\n' "$*" >&2; }

if [ ! -f "$VENV/ok" ]; then
    log "installing llguidance, tokenizers, gguf, jsonschema into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check llguidance==1.9.1 tokenizers==0.23.3 \
        gguf==0.19.0 jsonschema==4.25.1 numpy==2.2.6
    touch "$VENV/ok"
fi

gguf=$(ls "$OUT"/llama-src/*/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf 2>/dev/null | head -1 || true)
if [ -z "$gguf" ]; then
    log "fetching llama-cpp-python $LLAMA_CPP_PYTHON's sources for llama.cpp's vocabulary files"
    "$VENV/bin/pip" download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$OUT/dl"
    mkdir -p "$OUT/llama-src"
    tar xzf "$OUT"/dl/llama_cpp_python-*.tar.gz -C "$OUT/llama-src"
    gguf=$(ls "$OUT"/llama-src/*/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf | head -1)
fi
TOK=$OUT/vocab-llama3
[ -f "$TOK/tokenizer.json" ] || "$VENV/bin/python" tests/bench/gguf_vocab.py "$gguf" "$TOK"
"$VENV/bin/python" tests/bench/grammar_cases.py "$TOK" "$OUT/grammar-cases.jsonl"

log "mask and compile costs: seekd, llguidance, llama.cpp"
build/release/tests/bench/bench_grammar "$TOK" "$OUT/grammar-cases.jsonl" >"$RES/grammar-seekd.jsonl"
"$VENV/bin/python" tests/bench/bench_grammar_peers.py llguidance "$TOK" "$OUT/grammar-cases.jsonl" \
    >"$RES/grammar-llguidance.jsonl"
if [ -x .venv-bench/bin/python ]; then
    .venv-bench/bin/python tests/bench/bench_grammar_peers.py llamacpp "$gguf" \
        "$OUT/grammar-cases.jsonl" 2>/dev/null >"$RES/grammar-llamacpp.jsonl"
else
    rm -f "$RES/grammar-llamacpp.jsonl"
fi

MODEL=$OUT/model-v128k
if [ ! -f "$MODEL/model.safetensors" ]; then
    log "writing a random-weight checkpoint with the 128k vocabulary"
    "$VENV/bin/python" tests/bench/mkmodel.py --out "$MODEL" --vocab 128256 --tokenizer "$TOK" --layers 8
fi
log "end to end: tokens/s with and without a JSON schema"
./seekd serve --model "$MODEL" --port "$PORT" --host 127.0.0.1 --chat-template deepseek-v3 \
    --kv-cache-memory 1GiB --max-model-len 1024 >"$RES/grammar-seekd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "seekd exited" >&2; exit 1; }
    sleep 1
done
"$VENV/bin/python" tests/bench/grammar_e2e.py "http://127.0.0.1:$PORT" "$RES/grammar-e2e.json" "$pid"
kill "$pid"
wait "$pid" 2>/dev/null || true
trap - EXIT
"$VENV/bin/python" tests/bench/grammar_report.py "$RES" | tee "$RES/grammar-report.md"
