"""Malformed and unusual HTTP over raw sockets: partial headers held open, huge headers, many
headers, chunked bodies, pipelining, a Content-Length that lies. The server answers or closes,
never crashes, and keeps serving everyone else."""
import json
import socket
import time

import requests

SERVER_ARGS = ("--idle-timeout", "2")


def connect(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def recv_all(s, limit=5.0):
    s.settimeout(limit)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def healthy(server):
    return requests.get(server.base + "/health", timeout=10).status_code == 200


def body(prompt=(1, 2, 3)):
    return json.dumps({"prompt": list(prompt), "max_tokens": 2}).encode()


def test_partial_headers_held_open(server):
    s = connect(server)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    assert healthy(server)  # others are served meanwhile
    r = requests.post(server.base + "/v1/completions", data=body(), timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert recv_all(s, 6) == b""  # closed by the idle timeout, no response
    s.close()


def test_huge_header(server):
    s = connect(server)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    out = recv_all(s)
    s.close()
    assert out == b"" or out.split(b"\r\n")[0].split()[1] in (b"413", b"431", b"400")
    assert healthy(server)


def test_many_headers(server):
    s = connect(server)
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + hdrs + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = recv_all(s)
    s.close()
    assert out == b"" or out.split(b"\r\n")[0].split()[1] in (b"413", b"431", b"400")
    assert healthy(server)


def test_chunked_body(server):
    b = body()
    s = connect(server)
    req = (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: application/json\r\nConnection: close\r\n\r\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(b[i:i + 7]), b[i:i + 7]) for i in range(0, len(b), 7))
    s.sendall(req + chunks + b"0\r\n\r\n")
    out = recv_all(s, 30)
    s.close()
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert b'"text_completion"' in out


def test_pipelining(server):
    s = connect(server)
    one = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    two = (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
           b"Content-Type: application/json\r\n"
           b"Connection: close\r\n\r\n%s") % (len(body()), body())
    s.sendall(one + two)
    out = recv_all(s, 30)
    s.close()
    assert out.count(b"HTTP/1.1 200") == 2, out[:300]


def test_content_length_too_long(server):
    """The client promises more than it sends, then hangs up: no response owed, no crash."""
    s = connect(server)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
              + body())
    time.sleep(0.2)
    s.close()
    assert healthy(server)


def test_content_length_too_short(server):
    """The body is cut where Content-Length says: the JSON is incomplete → 400, and the rest
    of the bytes are garbage as a next request."""
    b = body()
    s = connect(server)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
              b"Content-Type: application/json\r\n\r\n" + b)
    out = recv_all(s, 10)
    s.close()
    assert out.startswith(b"HTTP/1.1 400"), out[:200]
    assert healthy(server)


def test_garbage_request_line(server):
    s = connect(server)
    s.sendall(b"\x00\x01\x02 NOT HTTP\r\n\r\n")
    out = recv_all(s, 5)
    s.close()
    assert out == b"" or out.startswith(b"HTTP/1.1 400")
    assert healthy(server)
