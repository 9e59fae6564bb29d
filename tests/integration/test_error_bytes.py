"""Error replies built from request bytes: any bytes (invalid UTF-8 in the path or method, a
message cut at its length limit inside a multi-byte character) give a well-formed JSON error,
and the server keeps serving."""
import json
import socket

import requests

LONG = "é" * 700          # 1,400 bytes: cut by every message buffer, mid-character at odd limits
LONG3 = "語" * 500         # 3-byte characters: some cut lands inside every character position


def raw(server, request: bytes):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        s.settimeout(10)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    return data


def status_and_json(reply: bytes):
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split()[1])
    return status, json.loads(body.decode("utf-8"))


def healthy(server):
    return requests.get(server.base + "/health", timeout=10).status_code == 200


def test_invalid_utf8_path_404(server):
    for path in (b"/\xff\xfe", b"/v1/\xc3", b"/v1/%ff%fe%c3", b"/" + b"\xe8\xaa" * 600):
        reply = raw(server, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status, doc = status_and_json(reply)
        assert status == 404, reply[:200]
        assert doc["error"]["code"] == "not_found"
        assert healthy(server)


def test_invalid_utf8_path_405(server):
    # /v1/models/* exists for GET only: a POST gets 405 naming the path
    reply = raw(server, b"POST /v1/models/\xff\xc3 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n")
    status, doc = status_and_json(reply)
    assert status == 405 and doc["error"]["code"] == "method_not_allowed"
    assert healthy(server)


def test_invalid_utf8_model_card(server):
    reply = raw(server, b"GET /v1/models/\xff" + b"\xe2\x82" * 300 +
                b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    status, doc = status_and_json(reply)
    assert status == 404 and doc["error"]["code"] == "model_not_found"
    assert healthy(server)


def test_long_model_card_cut_mid_character(server):
    for name in (LONG, "x" + LONG, LONG3, "x" + LONG3, "xx" + LONG3):
        r = requests.get(server.base + "/v1/models/" + name, timeout=10)
        assert r.status_code == 404
        assert r.json()["error"]["message"].startswith("The model '")
    assert healthy(server)


def test_long_names_in_json_errors_cut_mid_character(server):
    bodies = []
    for name in (LONG, "x" + LONG, LONG3, "x" + LONG3, "xx" + LONG3):
        bodies += [
            {"model": name, "prompt": "hi", "max_tokens": 1},
            {"prompt": "hi", "max_tokens": 1, "logit_bias": {name: 1}},
            {"messages": [{"role": name, "content": "hi"}], "max_tokens": 1},
        ]
    for b in bodies:
        path = "/v1/chat/completions" if "messages" in b else "/v1/completions"
        r = requests.post(server.base + path, json=b, timeout=30)
        assert r.status_code in (400, 404), r.text
        msg = r.json()["error"]["message"]
        assert msg and "\ufffd" not in msg[:-1]   # cut on a character boundary
    assert healthy(server)


def test_invalid_utf8_in_json_strings(server):
    # jansson refuses invalid UTF-8 inside JSON strings; its error text quotes the offending
    # position and must not carry raw bytes into the reply
    for blob in (b'{"prompt": "\xff\xfe", "max_tokens": 1}', b'{"\xc3": 1}',
                 b'{"model": "' + b"\xe8\xaa" * 600 + b'"}'):
        r = requests.post(server.base + "/v1/completions", data=blob,
                          headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("invalid JSON")
    assert healthy(server)
