"""The event-loop thread never does request-sized work: while a 4 MiB prompt is parsed and
tokenised (seconds), a running stream keeps delivering tokens and /health answers at once —
the work runs on a worker, and the loop only sends what is ready."""
import json
import os
import threading
import time

import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server

ARGS = ("--max-body-size", "16MiB", "--max-model-len", "16384", "--allow-long-max-model-len",
        "--max-num-batched-tokens", "256")


@pytest.fixture(scope="module")
def big(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ARGS)
    yield s
    s.stop()


def long_text(n_bytes):
    """One 4 MiB word: a single piece for BPE, seconds of merging."""
    return "a" * n_bytes


def stream_gaps(base, stop, gaps):
    """Streams a long completion; gaps gets (time, seconds since the previous chunk)."""
    body = {"prompt": [1, 2, 3], "max_tokens": 15000, "ignore_eos": True, "stream": True}
    with requests.post(base + "/v1/completions", json=body, stream=True, timeout=600) as r:
        last = time.time()
        for line in r.iter_lines():
            now = time.time()
            if line.startswith(b"data: "):
                gaps.append((now, now - last))
                last = now
            if stop.is_set():
                break


def health_latencies(base, stop, out):
    while not stop.is_set():
        t0 = time.time()
        requests.get(base + "/health", timeout=120)
        out.append((t0, time.time() - t0))
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["/tokenize", "/v1/chat/completions"])
def test_loop_keeps_going_while_a_big_prompt_is_tokenised(big, path):
    text = long_text(4 << 20)
    if path == "/v1/chat/completions":
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": 1}
    else:
        body = {"prompt": text, "max_tokens": 1}
    stop = threading.Event()
    gaps, health = [], []
    streamer = threading.Thread(target=stream_gaps, args=(big.base, stop, gaps))
    prober = threading.Thread(target=health_latencies, args=(big.base, stop, health))
    streamer.start()
    while not gaps:
        time.sleep(0.05)
    prober.start()
    time.sleep(0.5)
    t0 = time.time()
    r = requests.post(big.base + path, data=json.dumps(body),
                      headers={"Content-Type": "application/json"}, timeout=600)
    t1 = time.time()
    stop.set()
    streamer.join(120)
    prober.join(120)
    assert r.status_code == 200, r.text[:300]  # 4 MiB of one letter: about 2,000 tokens
    took = t1 - t0
    during_h = [lat for t, lat in health if t0 <= t <= t1]
    during_g = [gap for t, gap in gaps if t0 <= t <= t1 + 0.5]
    assert took > 1.0, took  # tokenising 4 MiB takes a while: the measurement means something
    assert during_h and max(during_h) < took / 4, (took, max(during_h))
    assert len(during_g) > 1, (took, len(during_g))  # tokens kept coming meanwhile
    if path == "/tokenize":  # nothing but tokenising: the stream's pace is the engine's own
        assert max(during_g) < took / 4, (took, max(during_g))
