"""Start-up failures are one clear line and a non-zero exit: an unknown chat template (naming
the option that selects one), a broken checkpoint, a bad option."""
import json
import shutil
import subprocess

import pytest

from conftest import FIXTURES, SERVE_MODEL, Server, free_port


def serve(binary, *args):
    return subprocess.run([binary, "serve", "--port", str(free_port()), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def odd_template(tmp_path):
    d = tmp_path / "tok"
    shutil.copytree(FIXTURES / "tokenizer" / "v3", d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d


def test_unknown_template_names_the_option(binary, odd_template):
    p = serve(binary, "--model", str(SERVE_MODEL), "--tokenizer", str(odd_template))
    assert p.returncode != 0
    assert "chat_template" in p.stderr and "deepseek-v3" in p.stderr


def test_template_option_overrides(binary, odd_template):
    import os
    s = Server(binary, dict(os.environ), SERVE_MODEL, odd_template,
               ("--chat-template", "deepseek-v3"))
    s.stop()


def test_broken_checkpoint(binary, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(SERVE_MODEL, d)
    shard = sorted(d.glob("model-*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:1000])
    p = serve(binary, "--model", str(d), "--tokenizer", str(FIXTURES / "tokenizer" / "v3"))
    assert p.returncode != 0
    assert shard.name in p.stderr and "past the end" in p.stderr


def test_bad_option(binary):
    p = serve(binary, "--model", str(SERVE_MODEL), "--max-body-size", "12XB")
    assert p.returncode == 2 and "12XB" in p.stderr
