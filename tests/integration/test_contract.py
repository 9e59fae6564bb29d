"""The error contract in OpenAI's terms: error types per status (401 authentication_error with
WWW-Authenticate, 404 not_found_error, 503 service_unavailable_error), a fast 503 while the
engine is stalled, 400 for fields that would change the meaning of a request but are not
supported yet, for out-of-vocabulary stop_token_ids and for two Authorization headers."""
import os
import socket
import time

import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server


def post(base, path, body, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(base + path, json=body, headers=headers, timeout=60)


def error(resp, status):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


@pytest.fixture(scope="module")
def keyed(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--api-key", "k1"))
    s.key = "k1"
    yield s
    s.stop()


def test_401_is_authentication_error(keyed):
    for key in (None, "wrong"):
        r = post(keyed.base, "/v1/completions", {"prompt": [1], "max_tokens": 1}, key)
        err = error(r, 401)
        assert err["type"] == "authentication_error" and err["code"] == "invalid_api_key"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_two_authorization_headers(keyed):
    body = b'{"prompt": [1], "max_tokens": 1}'
    for second in (b"Bearer k1", b"Bearer other"):
        with socket.create_connection(("127.0.0.1", keyed.port), timeout=10) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Authorization: Bearer k1\r\nAuthorization: " + second + b"\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body) + body)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        assert b"Authorization" in out


def test_404_is_not_found_error(server):
    err = error(requests.get(server.base + "/v1/nothing", timeout=10), 404)
    assert err["type"] == "not_found_error"
    err = error(post(server.base, "/v1/completions", {"model": "gpt-9", "prompt": [1]}), 404)
    assert err["type"] == "not_found_error" and err["code"] == "model_not_found"
    err = error(requests.get(server.base + "/v1/models/gpt-9", timeout=10), 404)
    assert err["type"] == "not_found_error"


UNSUPPORTED = [
    ({"best_of": 3}, "best_of"),
    ({"best_of": 2, "n": 1}, "best_of"),
    ({"chat_template": "{{ messages }}"}, "chat_template"),
    ({"guided_whitespace_pattern": " *"}, "guided_whitespace_pattern"),
]


@pytest.mark.parametrize("extra,param", UNSUPPORTED, ids=[u[1] + str(i) for i, u in
                                                          enumerate(UNSUPPORTED)])
def test_unsupported_fields_refused(server, extra, param):
    for path, body in (("/v1/completions", {"prompt": [1, 2], "max_tokens": 1}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                 "max_tokens": 1})):
        err = error(post(server.base, path, dict(body, **extra)), 400)
        assert err["param"] == param and "not supported" in err["message"], err


def test_neutral_values_of_unsupported_fields_pass(server):
    for extra in ({"best_of": 1}, {"best_of": None}, {"best_of": 2, "n": 2},
                  {"guided_json": None}, {"chat_template": None}):
        r = post(server.base, "/v1/completions", dict({"prompt": [1, 2], "max_tokens": 1}, **extra))
        assert r.status_code == 200, (extra, r.text)


def test_stop_token_ids_out_of_vocabulary(server):
    n_vocab = 4096
    for bad in ([n_vocab], [1, 10 ** 9], [2 ** 31 - 1]):
        err = error(post(server.base, "/v1/completions",
                         {"prompt": [1], "max_tokens": 1, "stop_token_ids": bad}), 400)
        assert err["param"] == "stop_token_ids"
    r = post(server.base, "/v1/completions",
             {"prompt": [1], "max_tokens": 1, "stop_token_ids": [n_vocab - 1]})
    assert r.status_code == 200, r.text


def test_queue_full_is_service_unavailable(binary):
    """503s carry type service_unavailable_error and Retry-After."""
    from concurrent.futures import ThreadPoolExecutor
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-queued-requests", "1", "--max-num-seqs", "1", "--max-model-len", "8192",
                "--allow-long-max-model-len"))
    try:
        body = {"prompt": [1, 2], "max_tokens": 2000, "ignore_eos": True}
        with ThreadPoolExecutor(6) as ex:
            codes = list(ex.map(lambda _: post(s.base, "/v1/completions", body), range(6)))
        busy = [r for r in codes if r.status_code == 503]
        assert busy, [r.status_code for r in codes]
        err = error(busy[0], 503)
        assert err["type"] == "service_unavailable_error" and busy[0].headers["Retry-After"]
    finally:
        s.stop()


def is_fault_build(binary):
    return os.path.join("build", "asan") in binary


def test_stalled_engine_fails_fast(binary, tmp_path):
    """While the engine loop is hung, a new request gets 503 at once instead of waiting."""
    if not is_fault_build(binary):
        pytest.skip("the stall hook exists in the fault-hook (ASan) build only")
    stall = tmp_path / "stall"
    env = dict(os.environ, SEEKD_FAULT_STALL=str(stall))
    s = Server(binary, env, SERVE_MODEL, TOKENIZER, ("--engine-stall-timeout", "0.5"))
    try:
        stall.touch()
        end = time.time() + 10
        while requests.get(s.base + "/health", timeout=10).status_code == 200:
            assert time.time() < end
            time.sleep(0.05)
        # parked behind the hung loop, this would time out
        r = requests.post(s.base + "/v1/completions", json={"prompt": [1], "max_tokens": 1},
                          timeout=10)
        err = error(r, 503)
        assert err["type"] == "service_unavailable_error" and err["code"] == "engine_stalled"
        assert r.headers["Retry-After"]
        stall.unlink()
        while requests.get(s.base + "/health", timeout=10).status_code != 200:
            time.sleep(0.05)
        r = post(s.base, "/v1/completions", {"prompt": [1], "max_tokens": 1})
        assert r.status_code == 200, r.text
    finally:
        if stall.exists():
            stall.unlink()
        s.stop()
