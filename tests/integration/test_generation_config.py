"""Sampling defaults: a request that sets no temperature, top_p, top_k or min_p samples with the
model's own (generation_config.json beside a checkpoint), unless --generation-config none keeps
OpenAI's; a request's own values always win; a malformed file is refused at start."""
import os

import requests

from conftest import SERVE_MODEL, TOKENIZER, Server, free_port


def checkpoint_with(tmp_path, text):
    """The serve fixture's files, linked, beside a generation_config.json of text."""
    d = tmp_path / "model"
    d.mkdir()
    for f in SERVE_MODEL.iterdir():
        if f.is_file():
            os.symlink(f, d / f.name)
    (d / "generation_config.json").write_text(text)
    return d


def complete(base, **extra):
    r = requests.post(base + "/v1/completions", timeout=60,
                      json={"prompt": "Once upon a time", "max_tokens": 24, "seed": 7, **extra})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def test_model_defaults_apply_and_requests_win(binary, tmp_path):
    model = checkpoint_with(tmp_path, '{"temperature": 0.0, "top_p": 0.9}')
    s = Server(binary, {}, model, TOKENIZER)
    try:
        assert "sampling defaults from generation_config.json: temperature 0, top_p 0.9" in s.output()
        greedy = complete(s.base, temperature=0)
        assert complete(s.base) == greedy  # the file's temperature 0
        assert complete(s.base, temperature=1.0) != greedy  # the request's own value wins
    finally:
        s.stop()
    s = Server(binary, {}, model, TOKENIZER, args=("--generation-config", "none"))
    try:
        assert "sampling defaults: OpenAI's" in s.output()
        assert complete(s.base) == complete(s.base, temperature=1.0, top_p=1.0)
        assert complete(s.base) != complete(s.base, temperature=0)
    finally:
        s.stop()


def test_malformed_generation_config_refused(binary, tmp_path):
    import subprocess
    model = checkpoint_with(tmp_path, '{"temperature": "warm"}')
    p = subprocess.run([binary, "serve", "--port", str(free_port()), "--model", str(model),
                        "--tokenizer", str(TOKENIZER), "--kv-cache-memory", "64MiB"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "generation_config.json" in p.stderr and "'temperature' must be a number" in p.stderr
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr
