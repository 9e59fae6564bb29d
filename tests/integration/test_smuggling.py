"""Request smuggling and lenient parsing: a request whose body framing is ambiguous (both
Content-Length and Transfer-Encoding, two different Content-Length values, an unknown coding) or
whose lines end in a bare LF gets 400 and its connection is closed, so nothing sent after it on
that connection runs. Oversized bodies are refused as soon as that is known: a declared one
before it is read (413 instead of 100 Continue), a chunked one as soon as it crosses the limit.
max_header_size holds as documented (431)."""
import json
import re
import socket
import threading
import time

import requests

BODY = json.dumps({"prompt": [1, 2, 3], "max_tokens": 1}).encode()
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def exchange(server, data: bytes, wait=10.0):
    """Sends data and reads until the server closes (or wait seconds pass)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        end = time.time() + wait
        try:
            while time.time() < end:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return out, False


def responses(out: bytes):
    """The status lines in out (a response may follow a body without a line break)."""
    return re.findall(rb"HTTP/1\.1 \d{3}", out)


def chunked(data: bytes, size=7):
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\n\r\n"


def post_head(*extra: bytes):
    return (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n" + b"".join(x + b"\r\n" for x in extra) + b"\r\n")


def assert_refused_alone(server, data, status=b"400"):
    """One error response, then the connection closes: the smuggled request never runs."""
    out, closed = exchange(server, data)
    got = responses(out)
    assert got and got[0].split()[1] == status, out[:400]
    assert len(got) == 1, out[:600]
    assert closed, "the connection stayed open after a refused request"
    assert requests.get(server.base + "/health", timeout=10).status_code == 200


def test_content_length_with_transfer_encoding(server):
    for te_first in (False, True):
        hdrs = [b"Content-Length: %d" % len(BODY), b"Transfer-Encoding: chunked"]
        if te_first:
            hdrs.reverse()
        assert_refused_alone(server, post_head(*hdrs) + chunked(BODY) + HEALTH)


def test_two_different_content_lengths(server):
    data = post_head(b"Content-Length: %d" % len(BODY), b"Content-Length: 5") + BODY + HEALTH
    assert_refused_alone(server, data)
    # the same value twice is one value (RFC 9110 allows merging): served
    data = post_head(b"Content-Length: %d" % len(BODY), b"Content-Length: %d" % len(BODY),
                     b"Connection: close") + BODY
    out, _ = exchange(server, data, 30)
    assert out.startswith(b"HTTP/1.1 200"), out[:300]


def test_unknown_transfer_coding(server):
    for te in (b"gzip, chunked", b"identity", b"chunked, chunked"):
        assert_refused_alone(server, post_head(b"Transfer-Encoding: " + te) + chunked(BODY)
                             + HEALTH, b"501")


def test_bare_lf_line_endings(server):
    variants = [
        b"GET /health HTTP/1.1\nHost: 127.0.0.1\n\n",                 # all bare LF
        b"GET /health HTTP/1.1\nHost: 127.0.0.1\r\n\r\n",             # request line
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\nX-A: b\r\n\r\n",   # a header line
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\n",             # the blank line
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\n\r\n",             # last header, blank CRLF
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n x\r\n\r\n",  # folded line
    ]
    for v in variants:
        assert_refused_alone(server, v + HEALTH)
    # CRLF everywhere, with empty and spaced values: served, pipelined
    ok = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Empty:\r\nX-Sp:  a b  \r\n\r\n" +
          b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    out, _ = exchange(server, ok)
    assert [r.split()[1] for r in responses(out)] == [b"200", b"200"], out[:400]


def test_expect_continue_over_limit_gets_413_first(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(post_head(b"Content-Length: %d" % (64 << 20), b"Expect: 100-continue"))
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 413"), first[:200]
        assert b"100 Continue" not in first
    # within the limit, the client is told to go on
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(post_head(b"Content-Length: %d" % len(BODY), b"Expect: 100-continue",
                            b"Connection: close"))
        assert s.recv(65536).startswith(b"HTTP/1.1 100")
        s.sendall(BODY)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        assert b"HTTP/1.1 200" in out


def test_declared_body_over_limit_is_not_read(server):
    """413 comes back while the client is still sending; the 64 MiB are not all read."""
    out, _ = exchange(server, post_head(b"Content-Length: %d" % (64 << 20)) + b"{" * 4096)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]


def test_chunked_body_cut_at_the_limit(server):
    """A chunked body that never ends is cut with 413 as soon as it crosses max_body_size."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(post_head(b"Transfer-Encoding: chunked"))
    sent = [0]
    stop = threading.Event()

    def feed():
        piece = b"%x\r\n%s\r\n" % (1 << 16, b" " * (1 << 16))
        try:
            while not stop.is_set() and sent[0] < (256 << 20):
                s.sendall(piece)
                sent[0] += 1 << 16
        except OSError:
            pass

    t = threading.Thread(target=feed)
    t.start()
    out = b""
    try:
        s.settimeout(30)
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    stop.set()
    t.join(30)
    s.close()
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert sent[0] < (64 << 20), sent[0]  # the default limit is 4 MiB: cut long before
    assert requests.get(server.base + "/health", timeout=10).status_code == 200


def test_max_header_size(server):
    """The default max_header_size is 16 KiB, below the 64 KiB connection buffer."""
    big = b"X-Big: " + b"a" * (20 << 10)
    assert_refused_alone(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big +
                         b"\r\n\r\n" + HEALTH, b"431")
    small = b"X-Big: " + b"a" * (12 << 10)
    out, _ = exchange(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + small +
                      b"\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
