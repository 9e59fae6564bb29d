"""Choosing what runs the model: on a machine without a usable GPU, `--backend cuda` fails at
once with one line naming the reason (exit 1), `auto` runs on the CPU and says why, and the
backend's choice and holdings are in the log."""
import os
import subprocess

from conftest import FIXTURES, SERVE_MODEL, TOKENIZER, Server, free_port

MODEL = FIXTURES / "models" / "v3-fp8"


def gpu_here():
    return os.path.exists("/dev/nvidia0")


def logits(binary, *args, out):
    return subprocess.run([binary, "logits", "--model", str(MODEL), "--tokens", "1,2,3",
                           "--out", str(out), *args], capture_output=True, text=True, timeout=120)


def test_logits_cuda_without_gpu(binary, tmp_path):
    if gpu_here():
        return
    p = logits(binary, "--backend", "cuda", out=tmp_path / "x.npy")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seekd: backend cuda: "), p.stderr
    assert not (tmp_path / "x.npy").exists()


def built_with_cuda(binary):
    out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30).stdout
    return "cuda" in out.splitlines()[-1]


def test_cuda_refusal_names_the_runtime_reason(binary, tmp_path):
    """A CUDA build says what the CUDA runtime answered; a CPU build says it lacks CUDA."""
    if gpu_here():
        return
    p = logits(binary, "--backend", "cuda", out=tmp_path / "x.npy")
    if built_with_cuda(binary):
        assert "CUDA runtime 13." in p.stderr and "cudaError" in p.stderr, p.stderr
    else:
        assert "built without CUDA (make CUDA=1)" in p.stderr, p.stderr


def test_logits_auto_falls_back(binary, tmp_path):
    if gpu_here():
        return
    p = logits(binary, out=tmp_path / "x.npy")
    assert p.returncode == 0, p.stderr
    assert "running on the CPU: " in p.stderr
    q = logits(binary, "--backend", "cpu", out=tmp_path / "y.npy")
    assert q.returncode == 0 and q.stderr == ""
    assert (tmp_path / "x.npy").read_bytes() == (tmp_path / "y.npy").read_bytes()


def test_logits_bad_flags(binary, tmp_path):
    for args in (["--backend", "tpu"], ["--numerics", "fp4"], ["--gpus", "1,1"]):
        p = logits(binary, *args, out=tmp_path / "x.npy")
        assert p.returncode == 2, args


def test_logits_bf16_numerics(binary, tmp_path):
    """`--numerics bf16` runs end to end through each BF16 matrix set — the AMX driver over the
    emulated tile instructions on any CPU, AVX-512-BF16 where the CPU has it, whatever this CPU
    picks itself — and stays close to the F32 reference (activations rounded to BF16 move the
    logits by about 2^-9 each: 1e-2 of the largest logit)."""
    import numpy as np
    model = FIXTURES / "models" / "v3-bf16-sharded"

    def run(name, *args, env=None):
        p = subprocess.run([binary, "logits", "--model", str(model), "--tokens", "1,2,3,4,5,6,7,8",
                            "--backend", "cpu", "--out", str(tmp_path / name), *args],
                           capture_output=True, text=True, timeout=300, env=env)
        assert p.returncode == 0, p.stderr
        return np.load(tmp_path / name)

    ref = run("ref.npy")
    for matrix in ("amx-emulated", "avx512bf16", None):
        env = dict(os.environ)
        env.pop("SEEKD_MATRIX", None)
        if matrix:
            env["SEEKD_MATRIX"] = matrix
        got = run(f"bf16-{matrix}.npy", "--numerics", "bf16", env=env)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-2 * np.abs(ref).max(), matrix
        if matrix == "amx-emulated":  # it ran: rounding shows
            assert (got != ref).any()
            # auto is the reference on the CPU for float weights (bf16 only when asked), and
            # so is the default
            assert run("auto.npy", "--numerics", "auto", env=env).tobytes() == ref.tobytes()
            assert run("default.npy", env=env).tobytes() == ref.tobytes()


def test_logits_fast_on_the_cpu(binary, tmp_path):
    """The CPU emulates the fast numerics (its latent cache is BF16: an F32 one is refused)."""
    p = logits(binary, "--backend", "cpu", "--numerics", "fast", out=tmp_path / "x.npy")
    assert p.returncode == 0, p.stderr
    p = logits(binary, "--backend", "cpu", "--numerics", "fast", "--kv-dtype", "f32", out=tmp_path / "x.npy")
    assert p.returncode == 1 and "bf16" in p.stderr, p.stderr


def test_serve_cuda_without_gpu(binary):
    if gpu_here():
        return
    p = subprocess.run([binary, "serve", "--port", str(free_port()), "--model", str(SERVE_MODEL),
                        "--tokenizer", str(TOKENIZER), "--backend", "cuda"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    errors = [l for l in p.stderr.splitlines() if " error " in l]
    assert len(errors) == 1 and "backend cuda: " in errors[0], p.stderr


def test_serve_logs_backend(binary):
    """The log names the backend and the arithmetic numerics auto became there."""
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--backend", "auto"))
    out = s.stop()
    if not gpu_here():
        assert "running on the CPU: " in out
        assert "backend cpu (CPU, " in out and "), numerics ref: " in out and "KV pool " in out
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--backend", "cpu", "--numerics", "ref"))
    assert "), numerics ref: " in s.stop()


def test_serve_bad_gpus_option(binary):
    p = subprocess.run([binary, "serve", "--model", str(SERVE_MODEL), "--gpus", "3-1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "runs backwards" in p.stderr
