"""Several ranks under real MPI on this machine (mpirun, Open MPI): `seekd logits` and a
data-parallel `seekd serve` against the single-rank answers, the launch checks, and a rank that
dies or hangs stopping the whole service."""
import concurrent.futures
import functools
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from conftest import FIXTURES, SERVE_MODEL, TOKENIZER, Server, free_port

MODELS = sorted(p.parent for p in (FIXTURES / "models").glob("*/golden.json"))
MODES = {"prefill": [], "chunk5": ["--chunk", "5"], "decode": ["--decode"]}
MPIRUN = ["mpirun", "--oversubscribe", "--bind-to", "none"]


def mpi_env(binary):
    """The environment of an mpirun: root allowed (CI runs as root); under ASan, whole stacks
    so that Open MPI's own never-freed allocations are suppressed by library."""
    env = dict(os.environ)
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env["LSAN_OPTIONS"] = f"suppressions={FIXTURES.parent / 'lsan-mpi.supp'}"
    env["TSAN_OPTIONS"] = f"halt_on_error=1:suppressions={FIXTURES.parent / 'tsan-mpi.supp'}"
    return env


def logits(cmd_prefix, binary, model, tokens, extra, out, env):
    cmd = [*cmd_prefix, binary, "logits", "--model", str(model), "--tokens",
           ",".join(map(str, tokens)), "--out", str(out), "--threads", "1", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Sanitizer" not in proc.stderr and "runtime error:" not in proc.stderr, proc.stderr
    return np.load(out)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_data_parallel_logits_identical(binary, tmp_path, model, mode):
    """Every rank runs rank 0's step plans; the result is bit-identical to one rank's."""
    golden = json.loads((model / "golden.json").read_text())
    tokens = max(golden["prompts"], key=lambda p: len(p["tokens"]))["tokens"][:12]
    env = mpi_env(binary)
    one = logits([], binary, model, tokens, MODES[mode], tmp_path / "one.npy", env)
    two = logits([*MPIRUN, "-np", "2"], binary, model, tokens,
                 ["--data-parallel-size", "2", *MODES[mode]], tmp_path / "two.npy", env)
    assert one.shape[0] == len(tokens)
    assert np.array_equal(one, two)


def test_logits_three_ranks(binary, tmp_path):
    model = MODELS[0]
    env = mpi_env(binary)
    tokens = [1, 5, 17, 33, 2, 99, 100]
    one = logits([], binary, model, tokens, ["--chunk", "3"], tmp_path / "one.npy", env)
    three = logits([*MPIRUN, "-np", "3"], binary, model, tokens,
                   ["--data-parallel-size", "3", "--chunk", "3"], tmp_path / "three.npy", env)
    assert np.array_equal(one, three)


# ---- tensor parallelism ----------------------------------------------------------------------

GGUF_MODELS = sorted(p for p in (FIXTURES / "gguf").glob("*.gguf") if p.stem != "quant_blocks")


def close_to(one, many):
    """Within 1e-5 of the largest |logit|: the ranks sum partial products in another order."""
    assert one.shape == many.shape
    err = float(np.abs(one - many).max() / np.abs(one).max())
    assert err <= 1e-5, err


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("model", MODELS + GGUF_MODELS, ids=[m.name for m in MODELS + GGUF_MODELS])
def test_tensor_parallel_logits(binary, tmp_path, model, mode, ranks):
    """Each rank computes its heads, experts, intermediate and vocabulary rows; the logits equal
    one rank's within the tolerance, on every rank alike (seekd checks that itself)."""
    tokens = [1, 5, 17, 33, 2, 99, 100, 7, 8, 9, 11, 12]
    env = mpi_env(binary)
    one = logits([], binary, model, tokens, MODES[mode], tmp_path / "one.npy", env)
    many = logits([*MPIRUN, "-np", str(ranks)], binary, model, tokens,
                  ["--tensor-parallel-size", str(ranks), *MODES[mode]], tmp_path / "tp.npy", env)
    close_to(one, many)


def uneven_model(tmp_path):
    """An FP8 synthetic model none of whose widths divide by 4 but the heads: a vocabulary of
    1003, 6 routed experts, an MLP of 300 and shared experts of 96 (both inside 128x128 scale
    blocks that the ranks' boundaries cut), o_proj's 128 columns split at 32."""
    cfg = json.loads((FIXTURES / "synthetic" / "tiny-fp8.json").read_text())
    cfg.update(vocab_size=1003, n_routed_experts=6, n_group=1, topk_group=1, num_experts_per_tok=2,
               intermediate_size=300, moe_intermediate_size=96)
    path = tmp_path / "uneven.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("ranks", [2, 4])
def test_tensor_parallel_uneven_splits(binary, tmp_path, ranks):
    cfg, env = uneven_model(tmp_path), mpi_env(binary)
    base = [binary, "logits", "--synthetic", str(cfg), "--seed", "3", "--threads", "1",
            "--numerics", "ref", "--tokens", "1,5,17,33,2,99,100,7,8,9"]
    for mode in MODES.values():
        for out, prefix, extra in ((tmp_path / "one.npy", [], []),
                                   (tmp_path / "tp.npy", [*MPIRUN, "-np", str(ranks)],
                                    ["--tensor-parallel-size", str(ranks)])):
            proc = run([*prefix, *base, "--out", str(out), *mode, *extra], env, timeout=600)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "Sanitizer" not in proc.stderr and "runtime error:" not in proc.stderr, proc.stderr
        close_to(np.load(tmp_path / "one.npy"), np.load(tmp_path / "tp.npy"))


MOE_MODELS = [m for m in MODELS + GGUF_MODELS if m.name.startswith(("v2", "v3", "deepseek2"))]


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("model", MOE_MODELS, ids=[m.name for m in MOE_MODELS])
def test_expert_parallel_logits(binary, tmp_path, model, mode, ranks):
    """Data-parallel attention, the experts split: every MoE layer sends each routed row to its
    expert's rank and back, and each token sums its experts in one rank's order — so the logits
    are one rank's bit for bit."""
    tokens = [1, 5, 17, 33, 2, 99, 100, 7, 8, 9, 11, 12]
    env = mpi_env(binary)
    one = logits([], binary, model, tokens, MODES[mode], tmp_path / "one.npy", env)
    many = logits([*MPIRUN, "-np", str(ranks)], binary, model, tokens,
                  ["--data-parallel-size", str(ranks), "--enable-expert-parallel", *MODES[mode]],
                  tmp_path / "ep.npy", env)
    assert np.array_equal(one, many)


def test_expert_parallel_uneven_and_with_tensor_parallel(binary, tmp_path):
    """6 experts over 4 ranks (2, 2, 1, 1) and over 3; and --enable-expert-parallel beside
    --tensor-parallel-size, where the experts are split whole across the ranks either way."""
    cfg, env = uneven_model(tmp_path), mpi_env(binary)
    base = [binary, "logits", "--synthetic", str(cfg), "--seed", "3", "--threads", "1",
            "--numerics", "ref", "--tokens", "1,5,17,33,2,99,100,7,8,9"]

    def run_ok(prefix, extra, out):
        proc = run([*prefix, *base, "--out", str(out), *extra], env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return np.load(out)

    one = run_ok([], [], tmp_path / "one.npy")
    for ranks in (3, 4):
        ep = run_ok([*MPIRUN, "-np", str(ranks)], ["--data-parallel-size", str(ranks),
                                                    "--enable-expert-parallel"], tmp_path / "ep.npy")
        assert np.array_equal(one, ep)
    tp = run_ok([*MPIRUN, "-np", "2"], ["--tensor-parallel-size", "2"], tmp_path / "tp.npy")
    tpep = run_ok([*MPIRUN, "-np", "2"], ["--tensor-parallel-size", "2", "--enable-expert-parallel"],
                  tmp_path / "tpep.npy")
    assert np.array_equal(tp, tpep)
    close_to(one, tpep)


def test_tensor_parallel_refusals(binary, tmp_path):
    env = mpi_env(binary)
    base = [binary, "logits", "--model", str(MODELS[0]), "--tokens", "1,2", "--threads", "1",
            "--out", str(tmp_path / "x.npy")]
    proc = run([*MPIRUN, "-np", "3", *base, "--tensor-parallel-size", "3"], env)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0
    assert "4 attention heads do not divide by tensor_parallel_size 3" in out, out
    proc = run([*MPIRUN, "-np", "2", *base, "--tensor-parallel-size", "2", "--numerics", "fast"], env)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0 and "emulation of the FP8 recipe runs on one rank" in out, out


# ---- launch checks ---------------------------------------------------------------------------

def run(cmd, env, timeout=120):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_launch_refusals(binary, tmp_path):
    env = mpi_env(binary)
    base = ["serve", "--model", str(SERVE_MODEL), "--tokenizer", str(TOKENIZER)]
    # several ranks and no mpirun to start them with: said, with what to do
    for layout in ("--data-parallel-size", "--tensor-parallel-size"):
        proc = run([binary, *base, layout, "2"], dict(env, PATH="/nonexistent"))
        assert proc.returncode != 0
        assert "needs 2 ranks, and mpirun cannot be started" in proc.stderr, proc.stderr
        assert "apt-get install openmpi-bin" in proc.stderr and "mpirun -np 2" in proc.stderr
    proc = run([binary, *base, "--enable-expert-parallel"], env)
    assert proc.returncode == 2 and "needs data_parallel_size or tensor_parallel_size above 1" \
        in proc.stderr, proc.stderr
    proc = run([*MPIRUN, "-np", "2", binary, *base], env)
    assert proc.returncode != 0
    assert "started as 2 MPI ranks" in proc.stderr + proc.stdout
    proc = run([*MPIRUN, "-np", "4", binary, "logits", "--model", str(MODELS[0]), "--tokens", "1",
                "--out", str(tmp_path / "x.npy"), "--data-parallel-size", "2",
                "--tensor-parallel-size", "2", "--enable-expert-parallel"], env)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0 and out.count("together: not implemented yet") == 1, out


def test_rank_that_cannot_load_stops_every_rank(binary, tmp_path):
    """A rank whose start-up fails makes every rank exit non-zero, and rank 0 names it."""
    env = mpi_env(binary)
    script = tmp_path / "launch.sh"  # rank 1 is given a model directory that does not exist
    script.write_text('#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 1 ] && set -- "$@" --model '
                      f'{tmp_path}/missing\nexec "$@"\n')
    script.chmod(0o755)
    proc = run([*MPIRUN, "-np", "2", str(script), binary, "serve", "--model", str(SERVE_MODEL),
                "--tokenizer", str(TOKENIZER), "--port", str(free_port()), "--data-parallel-size", "2",
                "--kv-cache-memory", "64MiB", "--threads", "1"], env)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0, out
    assert re.search(r"rank 1: .*missing", out), out  # rank 1 says why
    assert "rank(s) 1 failed to start" in out, out  # rank 0 names it


# ---- a data-parallel server ------------------------------------------------------------------

class MpiServer(Server):
    """`mpirun -np N seekd serve --data-parallel-size N` (or another layout flag) on 127.0.0.1."""

    def __init__(self, binary, n, args=(), layout="--data-parallel-size", size=None):
        super().__init__(binary, mpi_env(binary), SERVE_MODEL, TOKENIZER,
                         (layout, str(size or n), "--threads", "1", *args),
                         launcher=(*MPIRUN, "-np", str(n)))

    def rank_pid(self, rank):
        """A rank's process id, from its log line."""
        pat = (r"pid (\d+)\) serves HTTP" if rank == 0
               else rf"rank {rank}: one of \d+ ranks, on \S+ \(pid (\d+)\)")
        m = re.search(pat, self.output())
        assert m, self.output()
        return int(m.group(1))

    def signal_stop(self):
        """SIGTERM to rank 0 (not mpirun, which would kill the ranks a second later): it
        drains, then stops the other ranks; every rank exits 0."""
        os.kill(self.rank_pid(0), signal.SIGTERM)


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return r.read().decode()


def complete(base, prompt, max_tokens=12, stream=False):
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": stream}).encode()
    req = urllib.request.Request(base + "/v1/completions", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        text = r.read().decode()
    if stream:
        return text
    return json.loads(text)["choices"][0]["text"]


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


PROMPTS = [f"Request {i}: " + "lorem ipsum " * (i % 5) + str(i * 7919) for i in range(32)]


def answers(base):
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        return list(pool.map(lambda p: complete(base, p), PROMPTS))


@functools.lru_cache(maxsize=None)
def one_rank_answers(binary):
    """The greedy answers to PROMPTS of one plain server: what every layout must give."""
    one = Server(binary, mpi_env(binary), SERVE_MODEL, TOKENIZER, ("--threads", "1"))
    try:
        return answers(one.base)
    finally:
        one.stop()


def test_data_parallel_server_matches_one_rank(binary):
    """32 concurrent greedy requests: each answer equals the one-rank server's, both ranks
    served some, /metrics sums the ranks, and every KV block is free afterwards."""
    env = mpi_env(binary)
    one = Server(binary, env, SERVE_MODEL, TOKENIZER, ("--threads", "1"))
    try:
        want = answers(one.base)
        one_total = metric(get(one.base, "/metrics"), "seekd:kv_cache_blocks_total")
    finally:
        one.stop()
    dp = MpiServer(binary, 2)
    try:
        got = answers(dp.base)
        assert got == want
        assert dp.blocks_in_use() == 0
        text = get(dp.base, "/metrics")
        assert metric(text, "seekd:kv_cache_blocks_total") == 2 * one_total
        routed = [metric(text, f'seekd:data_parallel_requests_total{{rank="{r}"}}') for r in (0, 1)]
        assert sum(routed) == 32 and min(routed) >= 8, routed
        deadline = time.time() + 10  # rank 1's counters arrive with its next heartbeat
        while metric(text, 'seekd:request_success_total{finished_reason="length"}') < 34:
            assert time.time() < deadline, text
            time.sleep(0.1)
            text = get(dp.base, "/metrics")
        assert metric(text, "seekd:generation_tokens_total") == 32 * 12 + 2  # + 2 warm-ups
    finally:
        dp.stop()


def test_constrained_requests_run_on_rank_zero(binary):
    """Requests with a JSON schema stay on rank 0, whose process holds the compiled grammar,
    however the load falls; every reply satisfies the schema."""
    schema = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                                               "b": {"enum": ["x", "y"]}},
              "required": ["a", "b"], "additionalProperties": False}

    def constrained(i):
        body = json.dumps({"prompt": f"Record {i}:", "max_tokens": 40, "seed": i,
                           "response_format": {"type": "json_schema",
                                               "json_schema": {"name": "r", "schema": schema}}})
        req = urllib.request.Request(dp.base + "/v1/completions", body.encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())["choices"][0]

    dp = MpiServer(binary, 2)
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            choices = list(pool.map(constrained, range(8)))
        for c in choices:
            doc = json.loads(c["text"])
            assert c["finish_reason"] == "stop" and 0 <= doc["a"] <= 99 and doc["b"] in "xy", c
            assert set(doc) == {"a", "b"}, c
        text = get(dp.base, "/metrics")
        routed = [metric(text, f'seekd:data_parallel_requests_total{{rank="{r}"}}') for r in (0, 1)]
        assert routed == [8, 0], routed
        assert complete(dp.base, "and a free one")  # the router still balances the rest
    finally:
        dp.stop()


def test_disconnect_on_another_rank_frees_its_blocks(binary):
    """Streaming clients that go away mid-answer, one on each rank: each rank cancels its
    request and frees its blocks."""
    import socket
    dp = MpiServer(binary, 2, ("--max-model-len", "8192", "--allow-long-max-model-len"))
    try:
        socks = []
        for _ in range(2):  # the second goes to rank 1: rank 0 already has a sequence
            s = socket.create_connection(("127.0.0.1", dp.port), timeout=30)
            body = json.dumps({"prompt": [1, 2, 3], "max_tokens": 8000, "ignore_eos": True,
                               "stream": True}).encode()
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            data = b""
            while b"data:" not in data:
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            socks.append(s)
        for s in socks:
            s.close()
        deadline = time.time() + 30
        key = 'seekd:request_success_total{finished_reason="abort"}'
        while metric(get(dp.base, "/metrics"), key) < 2:
            assert time.time() < deadline, get(dp.base, "/metrics")
            time.sleep(0.05)
        assert dp.blocks_in_use() == 0
        text = get(dp.base, "/metrics")
        assert metric(text, 'seekd:data_parallel_requests_total{rank="1"}') == 1
    finally:
        dp.stop()


def test_drain_finishes_requests_on_every_rank(binary):
    """SIGHUP to every rank (logrotate's `pkill -HUP seekd`) changes nothing; SIGTERM to rank 0
    while requests run on both ranks: they finish, then every rank exits 0."""
    dp = MpiServer(binary, 2)
    for rank in (0, 1):
        os.kill(dp.rank_pid(rank), signal.SIGHUP)
    assert complete(dp.base, "still here")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(complete, dp.base, p, 200) for p in PROMPTS[:4]]
        time.sleep(0.5)
        os.kill(dp.rank_pid(0), signal.SIGTERM)
        texts = [f.result(timeout=120) for f in futs]
    assert all(texts)
    dp.proc.wait(timeout=60)
    assert dp.proc.returncode == 0, dp.output()
    assert "rank 1: exit 0" in dp.output()


def test_killed_rank_stops_the_service(binary):
    """kill -9 of rank 1: the whole service exits non-zero within seconds, naming the rank."""
    dp = MpiServer(binary, 2)
    try:
        t0 = time.time()
        os.kill(dp.rank_pid(1), signal.SIGKILL)
        dp.proc.wait(timeout=30)
        took = time.time() - t0
        assert dp.proc.returncode != 0
        assert took < 15, took
        assert re.search(r"rank 1\b", dp.output()[dp.output().find("ready: serving"):]), dp.output()
    finally:
        if dp.proc.poll() is None:
            dp.proc.kill()
            dp.proc.wait()


def test_hung_rank_stops_the_service(binary):
    """A rank that stops answering (SIGSTOP: no exit for mpirun to see): rank 0 notices the
    silence within engine_stall_timeout, logs the rank, and ends the job non-zero."""
    dp = MpiServer(binary, 2, ("--engine-stall-timeout", "2s"))
    pid = dp.rank_pid(1)
    try:
        t0 = time.time()
        os.kill(pid, signal.SIGSTOP)
        dp.proc.wait(timeout=60)
        took = time.time() - t0
        assert dp.proc.returncode != 0
        assert took < 20, took
        assert "rank 1 has sent nothing for" in dp.output(), dp.output()
        assert "stopping every rank" in dp.output()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if dp.proc.poll() is None:
            dp.proc.kill()
            dp.proc.wait()


# ---- a tensor-parallel server ----------------------------------------------------------------

def test_tensor_parallel_server_matches_one_rank(binary):
    """`mpirun -np 2 seekd serve --tensor-parallel-size 2`: rank 0 schedules, both ranks run
    every step; 32 concurrent greedy answers equal one rank's, every request is rank 0's, and
    every KV block is free afterwards."""
    want = one_rank_answers(binary)
    tp = MpiServer(binary, 2, layout="--tensor-parallel-size")
    try:
        assert "tensor-parallel rank 1 of 2" in tp.output(), tp.output()
        assert answers(tp.base) == want
        assert tp.blocks_in_use() == 0
        text = get(tp.base, "/metrics")
        routed = [metric(text, f'seekd:data_parallel_requests_total{{rank="{r}"}}') for r in (0, 1)]
        assert routed == [32, 0], routed
    finally:
        tp.stop()


def drain_with_requests_running(srv):
    """SIGTERM to rank 0 while four requests run: they finish, and every rank exits 0."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(complete, srv.base, p, 100) for p in PROMPTS[:4]]
        time.sleep(0.5)
        os.kill(srv.rank_pid(0), signal.SIGTERM)
        assert all(f.result(timeout=120) for f in futs)
    srv.proc.wait(timeout=60)
    assert srv.proc.returncode == 0 and "rank 1: exit 0" in srv.output(), srv.output()


def test_tensor_parallel_drain_and_failures(binary):
    """SIGTERM to rank 0 while requests run: they finish and both ranks exit 0. A follower
    killed, or stopped (no exit for mpirun to see), ends the service non-zero naming it."""
    drain_with_requests_running(MpiServer(binary, 2, layout="--tensor-parallel-size"))
    for sig, args, says in ((signal.SIGKILL, (), r"rank 1\b"),
                            (signal.SIGSTOP, ("--engine-stall-timeout", "2s"),
                             "rank 1 has sent nothing for")):
        tp = MpiServer(binary, 2, args, layout="--tensor-parallel-size")
        pid = tp.rank_pid(1)
        try:
            assert complete(tp.base, "before")
            os.kill(pid, sig)
            tp.proc.wait(timeout=60)
            out = tp.output()
            assert tp.proc.returncode != 0
            assert re.search(says, out[out.find("ready: serving"):]), out
        finally:
            if sig == signal.SIGSTOP:
                os.kill(pid, signal.SIGKILL)
            if tp.proc.poll() is None:
                tp.proc.kill()
                tp.proc.wait()


# ---- data parallelism with expert parallelism ------------------------------------------------

def test_expert_parallel_server_matches_one_rank(binary):
    """`--data-parallel-size 2 --enable-expert-parallel`: each rank schedules its own requests,
    both step together (an idle one serving the other's expert rows); 32 concurrent greedy
    answers equal one rank's, both ranks took some, and every KV block is free afterwards.
    Then SIGTERM to rank 0 with requests running: they finish and both ranks exit 0."""
    want = one_rank_answers(binary)
    ep = MpiServer(binary, 2, ("--enable-expert-parallel",))
    assert "expert-parallel rank 1 of 2" in ep.output(), ep.output()
    assert answers(ep.base) == want
    assert ep.blocks_in_use() == 0
    text = get(ep.base, "/metrics")
    routed = [metric(text, f'seekd:data_parallel_requests_total{{rank="{r}"}}') for r in (0, 1)]
    assert sum(routed) == 32 and min(routed) >= 8, routed
    drain_with_requests_running(ep)


def test_expert_parallel_hung_rank_stops_the_service(binary):
    ep = MpiServer(binary, 2, ("--enable-expert-parallel", "--engine-stall-timeout", "2s"))
    pid = ep.rank_pid(1)
    try:
        assert complete(ep.base, "before")
        os.kill(pid, signal.SIGSTOP)
        ep.proc.wait(timeout=60)
        out = ep.output()
        assert ep.proc.returncode != 0
        assert "rank 1 has sent nothing for" in out, out
    finally:
        os.kill(pid, signal.SIGKILL)
        if ep.proc.poll() is None:
            ep.proc.kill()
            ep.proc.wait()


def test_ranks_started_by_seekd_itself(binary, tmp_path):
    """Without mpirun on the command line, a layout of several ranks starts them itself (under
    mpirun, as a child): `seekd logits` equals the mpirun-launched run, and `seekd serve`
    answers, then drains and exits 0 on SIGTERM to the process that was started."""
    env, model, tokens = mpi_env(binary), MODELS[0], [1, 5, 17, 33]
    by_hand = logits([*MPIRUN, "-np", "2"], binary, model, tokens, ["--tensor-parallel-size", "2"],
                     tmp_path / "a.npy", env)
    itself = logits([], binary, model, tokens, ["--tensor-parallel-size", "2"], tmp_path / "b.npy", env)
    assert np.array_equal(by_hand, itself)
    srv = Server(binary, env, SERVE_MODEL, TOKENIZER, ("--tensor-parallel-size", "2", "--threads", "1"))
    try:
        assert "starting 2 ranks" in srv.output() and "tensor-parallel rank 1 of 2" in srv.output()
        assert complete(srv.base, "hello")
    finally:
        out = srv.stop()
    assert "rank 1: exit 0" in out, out


def test_tensor_and_data_parallel_together(binary, tmp_path):
    """Two groups of two tensor-parallel ranks: `seekd logits` gives the 2-rank tensor-parallel
    logits bit for bit (each group runs every plan), and a server routes requests to the groups'
    first ranks only, answering 32 concurrent greedy requests as one rank does."""
    env, model, tokens = mpi_env(binary), MODELS[0], [1, 5, 17, 33, 2, 99]
    tp = logits([*MPIRUN, "-np", "2"], binary, model, tokens, ["--tensor-parallel-size", "2"],
                tmp_path / "tp.npy", env)
    both = logits([*MPIRUN, "-np", "4"], binary, model, tokens,
                  ["--tensor-parallel-size", "2", "--data-parallel-size", "2"], tmp_path / "b.npy", env)
    assert np.array_equal(tp, both)
    want = one_rank_answers(binary)
    srv = MpiServer(binary, 4, ("--tensor-parallel-size", "2"), size=2)
    try:
        assert "rank 3: ready" in srv.output() and "rank 2's steps" in srv.output(), srv.output()
        assert answers(srv.base) == want
        text = get(srv.base, "/metrics")
        routed = [metric(text, f'seekd:data_parallel_requests_total{{rank="{r}"}}') for r in range(4)]
        assert routed[1] == routed[3] == 0 and min(routed[0], routed[2]) >= 8, routed
    finally:
        srv.stop()
