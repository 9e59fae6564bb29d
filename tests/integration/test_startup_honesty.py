"""Start-up tells the truth or stops: a second server cannot share a port (no SO_REUSEPORT unless
asked), a FIFO or device named like a model file is refused rather than opened and waited on, a
safetensors header over 100 MB is refused as the format's reference does, and a max_model_len
the model or the KV pool cannot serve is an error (explicit) or a logged clamp (derived)."""
import os
import shutil
import struct
import subprocess

import pytest
import requests

from conftest import FIXTURES, SERVE_MODEL, TOKENIZER, Server, free_port

FP8 = FIXTURES / "models" / "v3-fp8"


def serve(binary, *args, timeout=30):
    return subprocess.run([binary, "serve", "--port", str(free_port()), "--kv-cache-memory",
                           "64MiB", *args], capture_output=True, text=True, timeout=timeout)


def test_port_taken_is_an_error(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER)
    try:
        p = subprocess.run([binary, "serve", "--model", str(SERVE_MODEL), "--tokenizer",
                            str(TOKENIZER), "--port", str(s.port)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, p.stderr
        assert "cannot listen" in p.stderr and str(s.port) in p.stderr
        assert requests.get(s.base + "/health", timeout=10).status_code == 200
    finally:
        s.stop()


def test_reuse_port_when_asked(binary):
    a = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--reuse-port",))
    try:
        b = subprocess.Popen([binary, "serve", "--model", str(SERVE_MODEL), "--tokenizer",
                              str(TOKENIZER), "--port", str(a.port), "--reuse-port",
                              "--kv-cache-memory", "64MiB"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                b.wait(3)  # still serving beside the first
        finally:
            b.terminate()
            b.wait(30)
    finally:
        a.stop()


def special(kind, path):
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("name", ["config.json", "model.safetensors",
                                  "model.safetensors.index.json", "tokenizer.json",
                                  "tokenizer_config.json"])
def test_special_files_refused(binary, tmp_path, kind, name):
    m = tmp_path / "m"
    src = FP8 if name == "model.safetensors" else SERVE_MODEL
    shutil.copytree(src, m)
    tok = tmp_path / "tok"
    shutil.copytree(TOKENIZER, tok)
    where = tok if name.startswith("tokenizer") else m
    (where / name).unlink(missing_ok=True)
    special(kind, where / name)
    p = serve(binary, "--model", str(m), "--tokenizer", str(tok), timeout=60)
    assert p.returncode != 0
    assert name in p.stderr and "not a regular file" in p.stderr, p.stderr


def test_safetensors_header_over_100MB(binary, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(FP8, m)
    f = m / "model.safetensors"
    n = 150_000_000
    with open(f, "wb") as out:
        out.write(struct.pack("<Q", n) + b'{"a":' + b" " * 64)
        out.truncate(8 + n + 16)  # sparse: no disk used
    p = serve(binary, "--model", str(m), "--tokenizer", str(TOKENIZER))
    assert p.returncode != 0
    assert "model.safetensors" in p.stderr and "100000000" in p.stderr, p.stderr


def test_max_model_len_over_the_model_is_an_error(binary):
    p = serve(binary, "--model", str(SERVE_MODEL), "--tokenizer", str(TOKENIZER),
              "--max-model-len", "4096")
    assert p.returncode != 0
    assert "max_model_len" in p.stderr and "512" in p.stderr and "4096" in p.stderr, p.stderr
    assert "allow-long-max-model-len" in p.stderr
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-model-len", "4096", "--allow-long-max-model-len"))
    try:
        card = requests.get(s.base + "/v1/models", timeout=10).json()["data"][0]
        assert card["max_model_len"] == 4096
    finally:
        s.stop()


def test_max_model_len_over_the_kv_pool_is_an_error(binary):
    # 1 MiB of F32 latents in 64-token blocks: 12 blocks, 768 tokens
    p = serve(binary, "--model", str(SERVE_MODEL), "--tokenizer", str(TOKENIZER),
              "--max-model-len", "4096", "--allow-long-max-model-len", "--kv-cache-memory",
              "1MiB", "--kv-cache-dtype", "f32")
    assert p.returncode != 0
    assert "max_model_len" in p.stderr and "768" in p.stderr and "kv_cache_memory" in p.stderr


def test_derived_max_model_len_clamped_to_the_kv_pool(binary, tmp_path):
    """A context from config.json longer than the KV pool holds is clamped to the pool, with a
    log line, so requests without max_tokens are served instead of all refused."""
    import json
    m = tmp_path / "m"
    shutil.copytree(SERVE_MODEL, m)
    cfg = json.loads((m / "config.json").read_text())
    cfg["max_position_embeddings"] = 100000
    (m / "config.json").write_text(json.dumps(cfg))
    s = Server(binary, dict(os.environ), m, TOKENIZER)  # 64 MiB of F32: under 50,000 tokens
    try:
        card = requests.get(s.base + "/v1/models", timeout=10).json()["data"][0]
        assert 1000 < card["max_model_len"] < 100000, card
        for path, body in (("/v1/completions", {"prompt": [1, 2, 3]}),
                           ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})):
            with requests.post(s.base + path, json=dict(body, stream=True), stream=True,
                               timeout=60) as r:
                assert r.status_code == 200, r.text
                assert next(r.iter_lines()).startswith(b"data: ")
    finally:
        out = s.stop()
    assert "max_model_len" in out and "clamped" in out, out
