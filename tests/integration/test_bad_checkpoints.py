"""The command line on broken checkpoints and bad input: one clear message, exit 1, no crash
(the ASan build too)."""
import shutil
import subprocess

import pytest

from conftest import FIXTURES

MODEL = FIXTURES / "models" / "v3-fp8"


def run(seekd_bin, env, model, tokens="1,2,3"):
    return subprocess.run([seekd_bin, "logits", "--model", str(model), "--tokens", tokens,
                           "--out", str(model / "out.npy")], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def model_copy(tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(MODEL, dst)
    return dst


def test_truncated_file(seekd_bin, seekd_env, model_copy):
    f = model_copy / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    p = run(seekd_bin, seekd_env, model_copy)
    assert p.returncode == 1
    assert "model.safetensors" in p.stderr and "past the end" in p.stderr
    assert "tensor \"" in p.stderr


def test_garbage_header(seekd_bin, seekd_env, model_copy):
    f = model_copy / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:40] = b"x" * 32
    f.write_bytes(bytes(data))
    p = run(seekd_bin, seekd_env, model_copy)
    assert p.returncode == 1 and "not valid JSON" in p.stderr


def test_missing_config(seekd_bin, seekd_env, model_copy):
    (model_copy / "config.json").unlink()
    p = run(seekd_bin, seekd_env, model_copy)
    assert p.returncode == 1 and "config.json" in p.stderr


def test_token_out_of_range(seekd_bin, seekd_env, model_copy):
    p = run(seekd_bin, seekd_env, model_copy, tokens="1,999999")
    assert p.returncode == 1 and "token id 999999" in p.stderr


def test_bad_token_list(seekd_bin, seekd_env, model_copy):
    p = run(seekd_bin, seekd_env, model_copy, tokens="1,,x")
    assert p.returncode == 2 and "usage" in p.stderr
