"""Memory is admitted, not hoped for: what a request could hold (n x max_tokens x the bytes of
a token's text and logprobs, every prompt of a batch, and its choices side by side in the KV
cache) is counted before it runs — over max_request_memory a 400 naming the parameters, over
request_memory_budget a 503 with Retry-After; n counts as n in max_queued_requests; a
non-streamed reply is not held whole for a client that stops reading; and an allocation that
fails under a memory limit fails its request, never the process.

The fixture tokenizer has a 2 KiB token, so the worst case per token is large here: the numbers
below are sized to it."""
import json
import os
import socket
import subprocess
import time

import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server


def error(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]


def first_line(base, path, body):
    """Starts a stream and returns (status, response) after its first line; the caller closes."""
    r = requests.post(base + path, json=dict(body, stream=True), stream=True, timeout=60)
    if r.status_code == 200:
        # the line iterator stays with the response: dropped, it would close the connection,
        # and the server would rightly free the request at once
        r.lines = r.iter_lines()
        next(r.lines)
    else:
        r.content  # an error reply is whole: read it before the caller closes
    return r.status_code, r


def test_batch_over_the_default_limit_is_400(server):
    """64 prompts x n=8 x 500 tokens could hold over the default 1 GiB."""
    body = {"prompt": [[1, 2, 3]] * 64, "n": 8, "max_tokens": 500, "ignore_eos": True}
    status, r = first_line(server.base, "/v1/completions", body)
    r.close()
    err = error(r, 400)
    assert err["param"] == "n" and "max_request_memory" in err["message"], err
    assert "64 prompts" in err["message"] and "n=8" in err["message"]


@pytest.fixture(scope="module")
def small(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-request-memory", "64MiB", "--request-memory-budget", "64MiB"))
    yield s
    s.stop()


def test_request_over_its_limit_names_the_parameters(small):
    chat = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 500}
    for body, param in ((dict(chat, n=24), "n"),
                        (dict(chat, n=24, logprobs=True, top_logprobs=20), "top_logprobs"),
                        ({"messages": chat["messages"], "n": 32}, "n")):  # max_tokens unset
        status, r = first_line(small.base, "/v1/chat/completions", body)
        r.close()
        err = error(r, 400)
        assert err["param"] == param, err
        assert "max_request_memory" in err["message"] and "n=" in err["message"], err
    r = requests.post(small.base + "/v1/chat/completions", json=dict(chat, n=2), timeout=60)
    assert r.status_code == 200, r.text


def test_choices_must_fit_the_kv_cache_side_by_side(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-model-len", "8192", "--allow-long-max-model-len",
                "--max-request-memory", "64GiB"))
    try:
        # the 64 MiB cache holds under 50,000 tokens: 8 x 8,000 do not fit at once
        status, r = first_line(s.base, "/v1/completions",
                               {"prompt": [1, 2], "n": 8, "max_tokens": 8000})
        r.close()
        err = error(r, 400)
        assert "KV cache" in err["message"] and "n=8" in err["message"], err
    finally:
        s.stop()


def test_budget_in_use_is_503(small):
    # each: 12 choices x 500 tokens, held as queued events while the client does not read
    body = {"prompt": [1, 2, 3], "n": 12, "max_tokens": 500, "ignore_eos": True}
    status, first = first_line(small.base, "/v1/completions", body)
    assert status == 200, first.text
    try:
        status, second = first_line(small.base, "/v1/completions", body)
        second.close()
        err = error(second, 503)
        assert err["type"] == "service_unavailable_error" and err["code"] == "server_busy", err
        assert "request_memory_budget" in err["message"]
        assert second.headers["Retry-After"]
    finally:
        first.close()
    # the first request's memory is given back when its connection ends
    end = time.time() + 20
    while True:
        status, again = first_line(small.base, "/v1/completions", body)
        again.close()
        if status == 200 or time.time() > end:
            break
        time.sleep(0.2)
    assert status == 200


def test_n_counts_in_max_queued_requests(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-num-seqs", "1", "--max-queued-requests", "4", "--max-model-len", "8192",
                "--allow-long-max-model-len"))
    held = []
    try:
        status, r = first_line(s.base, "/v1/completions",
                               {"prompt": [1], "max_tokens": 6000, "ignore_eos": True})
        held.append(r)
        assert status == 200
        status, r = first_line(s.base, "/v1/completions",
                               {"prompt": [1], "n": 8, "max_tokens": 10})
        r.close()
        err = error(r, 503)
        assert err["code"] == "server_busy" and "adds 8" in err["message"], err
        status, r = first_line(s.base, "/v1/completions", {"prompt": [1], "n": 3, "max_tokens": 10})
        held.append(r)
        assert status == 200, r.text
    finally:
        for r in held:
            r.close()
        s.stop()


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def idle(s):
    text = requests.get(s.base + "/metrics", timeout=10).text
    return "seekd:num_requests_running 0" in text


def test_non_streamed_reply_is_not_held_whole(binary):
    """A client that sends a request and stops reading: the server keeps the reply compact and
    writes it as the client reads, instead of the whole JSON (35 KiB per token with
    top_logprobs=20 as a tree, then again as text)."""
    if "asan" in binary:
        pytest.skip("peak RSS means nothing under ASan's allocator (quarantine, redzones)")
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-model-len", "16384", "--allow-long-max-model-len"))
    try:
        time.sleep(0.5)
        before = vm_hwm(s.proc.pid)
        body = json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 8000,
                           "ignore_eos": True, "logprobs": True, "top_logprobs": 20}).encode()
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", s.port))
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body)
        time.sleep(1)
        end = time.time() + 300
        while not idle(s) and time.time() < end:
            time.sleep(0.2)
        time.sleep(0.5)
        grown = vm_hwm(s.proc.pid) - before
        # 8,000 tokens of KV pages (10 MiB) and compact logprobs; not ~300 MiB of JSON
        assert grown < 64 << 20, grown >> 20
        c.settimeout(60)
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = c.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        c.close()
        head, _, chunked = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        body_out, rest = b"", chunked
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            body_out += rest[:n]
            rest = rest[n + 2:]
        reply = json.loads(body_out)
        assert len(reply["choices"][0]["logprobs"]["content"]) == 8000
        assert reply["usage"]["completion_tokens"] == 8000
    finally:
        s.stop()


def test_allocation_failure_fails_only_the_request(binary):
    """Under a 1.2 GB address-space limit, a body the server cannot store gets 503; the server
    goes on serving."""
    if "asan" in binary:
        pytest.skip("ASan reserves terabytes of address space: RLIMIT_AS cannot apply to it")
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-body-size", "1GiB", "--max-request-memory", "0",
                "--request-memory-budget", "64GiB"),
               launcher=["prlimit", "--as=1200000000"])
    try:
        n = 1_000_000_000
        with socket.create_connection(("127.0.0.1", s.port), timeout=60) as c:
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % n)
            c.settimeout(60)
            reply = c.recv(65536)
        assert reply.startswith(b"HTTP/1.1 503"), reply[:300]
        assert b"out_of_memory" in reply
        r = requests.post(s.base + "/v1/completions", json={"prompt": [1, 2], "max_tokens": 3},
                          timeout=60)
        assert r.status_code == 200, r.text
    finally:
        s.stop()
