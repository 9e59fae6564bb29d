"""What a web page in a browser can make of the server: a rebound DNS name (Host is not the
server's) gets 421, a cross-site form post (not application/json) gets 415 before anything
runs, /metrics needs the key when keys are on, and CORS "*" without a key is warned about."""
import os
import socket

import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server

BODY = b'{"prompt": [1, 2], "max_tokens": 1}'


def raw(port, request: bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        out = b""
        s.settimeout(10)
        while chunk := s.recv(65536):
            out += chunk
    return out


def status(reply: bytes):
    return int(reply.split(b"\r\n")[0].split()[1])


def request(host, path="/health", method="GET", body=b"", ctype=b"application/json"):
    head = method.encode() + b" " + path.encode() + b" HTTP/1.1\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    if body:
        head += b"Content-Type: " + ctype + b"\r\nContent-Length: %d\r\n" % len(body)
    return head + b"Connection: close\r\n\r\n" + body


def test_foreign_host_is_misdirected(server):
    p = server.port
    for host in (b"evil.example", b"evil.example:%d" % p, b"127.0.0.1.nip.io:%d" % p,
                 b"localhost.evil.example", b"[::1]x"):
        for path, method, body in (("/health", "GET", b""),
                                   ("/v1/completions", "POST", BODY)):
            reply = raw(p, request(host, path, method, body))
            assert status(reply) == 421, (host, reply[:300])
            assert b"allowed_hosts" in reply


def test_own_names_and_addresses_pass(server):
    p = server.port
    for host in (b"127.0.0.1", b"127.0.0.1:%d" % p, b"localhost:%d" % p, b"LOCALHOST",
                 b"localhost.", b"[::1]:%d" % p, b"10.1.2.3:%d" % p):
        reply = raw(p, request(host))
        assert status(reply) == 200, (host, reply[:300])
    # HTTP/1.0 may omit Host; HTTP/1.1 must send one
    assert status(raw(p, b"GET /health HTTP/1.0\r\n\r\n")) == 200
    assert status(raw(p, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")) == 400


def test_allowed_hosts_option(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--allowed-hosts", "api.example,*.corp.example"))
    try:
        for host, want in ((b"api.example:%d" % s.port, 200), (b"API.EXAMPLE", 200),
                           (b"a.corp.example", 200), (b"corp.example", 421),
                           (b"evil.example", 421), (b"localhost", 200)):
            assert status(raw(s.port, request(host))) == want, host
    finally:
        s.stop()
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--allowed-hosts", "*"))
    try:
        assert status(raw(s.port, request(b"anything.example"))) == 200
    finally:
        s.stop()


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx",
                                   "text/json"])
def test_api_posts_must_be_json(server, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    for path in ("/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"):
        r = requests.post(server.base + path, data=BODY, headers=headers, timeout=30)
        assert r.status_code == 415, (path, ctype, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and "application/json" in err["message"]


def test_json_media_type_variants_pass(server):
    for ctype in ("application/json", "application/json; charset=utf-8", "Application/JSON",
                  "application/json ;charset=UTF-8"):
        r = requests.post(server.base + "/v1/completions", data=BODY,
                          headers={"Content-Type": ctype}, timeout=30)
        assert r.status_code == 200, (ctype, r.text)


def test_metrics_need_the_key(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--api-key", "mk"))
    s.key = "mk"
    try:
        r = requests.get(s.base + "/metrics", timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        r = requests.get(s.base + "/metrics", headers={"Authorization": "Bearer mk"}, timeout=10)
        assert r.status_code == 200 and "seekd:" in r.text
        assert requests.get(s.base + "/health", timeout=10).status_code == 200
    finally:
        s.stop()
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--api-key", "mk", "--public-metrics"))
    try:
        assert requests.get(s.base + "/metrics", timeout=10).status_code == 200
    finally:
        s.stop()


def test_cors_any_origin_without_key_warns(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--cors-allowed-origins", "*"))
    out = s.stop()
    warn = [line for line in out.splitlines() if "warn" in line and "CORS" in line]
    assert warn, out
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--cors-allowed-origins", "*", "--api-key", "k"))
    s.key = "k"
    out = s.stop()
    assert not [line for line in out.splitlines() if "warn" in line and "CORS" in line], out
