"""A client that goes away — mid-stream, mid-prefill, while queued, or waiting for a complete
reply — has its request cancelled and its KV blocks freed promptly."""
import json
import socket
import threading
import time

import requests

from test_batching import metrics, prompts, wait_idle

SERVER_ARGS = ("--max-model-len", "8192", "--allow-long-max-model-len",
               "--max-num-batched-tokens", "256", "--max-num-seqs", "1")


def open_request(server, body):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return s


def read_until(s, marker):
    data = b""
    while marker not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    return data


def aborted(server):
    return metrics(server.base).get('request_success_total{finished_reason="abort"}', 0)


def wait_for(cond, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_mid_stream(server):
    before = aborted(server)
    s = open_request(server, {"prompt": [1, 2, 3], "max_tokens": 8000, "ignore_eos": True,
                              "stream": True})
    read_until(s, b"data:")
    s.close()
    assert wait_for(lambda: aborted(server) > before)
    wait_idle(server.base)


def test_mid_prefill(server):
    before = aborted(server)
    # a long answer too, so the request is still running however fast the prefill went
    s = open_request(server, {"prompt": prompts(1, seed=9, lo=4000, hi=4001)[0],
                              "max_tokens": 4000, "ignore_eos": True})
    assert wait_for(lambda: metrics(server.base)["num_requests_running"] == 1)
    s.close()
    assert wait_for(lambda: aborted(server) > before)
    m = wait_idle(server.base)
    assert m["num_requests_waiting"] == 0


def test_while_queued(server):
    """max_num_seqs is 1: the second request waits behind a stream, then its client leaves."""
    before = aborted(server)
    first = open_request(server, {"prompt": [4, 5], "max_tokens": 8000, "ignore_eos": True,
                                  "stream": True})
    read_until(first, b"data:")
    second = open_request(server, {"prompt": [6, 7], "max_tokens": 5})
    assert wait_for(lambda: metrics(server.base)["num_requests_waiting"] == 1)
    second.close()
    assert wait_for(lambda: metrics(server.base)["num_requests_waiting"] == 0)
    assert wait_for(lambda: aborted(server) > before)
    first.close()
    wait_idle(server.base)


def test_non_streaming(server):
    before = aborted(server)
    s = open_request(server, {"prompt": [8, 9], "max_tokens": 8000, "ignore_eos": True})
    assert wait_for(lambda: metrics(server.base)["num_requests_running"] == 1)
    time.sleep(0.05)
    s.close()
    assert wait_for(lambda: aborted(server) > before)
    wait_idle(server.base)
    r = requests.post(server.base + "/v1/completions", json={"prompt": [1], "max_tokens": 2})
    assert r.status_code == 200
