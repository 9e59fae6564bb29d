"""`seekd bench` against a running seekd: every request completes, the counts add up, the
latency figures are consistent, and the JSON uses vLLM's field names."""
import json
import subprocess

from conftest import BINARIES, TOKENIZER


def test_bench_against_server(server, tmp_path):
    out = tmp_path / "result.json"
    p = subprocess.run([str(BINARIES["release"]), "bench", "--base-url", server.base,
                        "--num-prompts", "12", "--max-concurrency", "4", "--random-input-len",
                        "24", "--random-output-len", "6", "--tokenizer", str(TOKENIZER),
                        "--disable-tqdm", "--result-file", str(out), "--seed", "5"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Output token throughput" in p.stdout
    r = json.loads(out.read_text())
    assert r["completed"] == 12 and r["failed"] == 0
    assert r["total_output_tokens"] == 12 * 6
    assert r["max_concurrency"] == 4
    for k in ("ttft", "tpot", "itl", "e2el"):
        assert 0 <= r[f"median_{k}_ms"] <= r[f"p99_{k}_ms"]
    assert r["mean_e2el_ms"] >= r["mean_ttft_ms"] > 0
    assert r["output_throughput"] > 0 and r["request_throughput"] > 0


def test_bench_poisson_rate(server, tmp_path):
    p = subprocess.run([str(BINARIES["release"]), "bench", "--base-url", server.base,
                        "--num-prompts", "6", "--request-rate", "50", "--random-input-len", "8",
                        "--random-output-len", "3", "--tokenizer", str(TOKENIZER),
                        "--disable-tqdm", "--result-file", str(tmp_path / "r.json")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["completed"] == 6 and r["request_rate"] == 50


def test_bench_unreachable_server():
    p = subprocess.run([str(BINARIES["release"]), "bench", "--base-url", "http://127.0.0.1:9",
                        "--num-prompts", "2", "--disable-tqdm"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and p.stderr
