"""Slow and greedy clients: the request head and body have deadlines (not idle timers that
each dripped byte resets), one address cannot take every connection, connections over the limit
are refused at once instead of waiting in the kernel's backlog, and a legitimate client is
served while hundreds of slow sockets drip bytes."""
import os
import selectors
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server

DEADLINES = ("--header-timeout", "1s", "--body-timeout", "1s")


@pytest.fixture(scope="module")
def strict(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, DEADLINES)
    yield s
    s.stop()


def drip_until_closed(sock, pieces, every=0.25, limit=10.0):
    """Sends one piece every `every` seconds; returns (seconds until the server closed, what
    it said), or (None, ...) if it was still open after `limit` seconds."""
    t0, out = time.time(), b""
    sock.setblocking(False)
    for piece in pieces:
        if time.time() - t0 > limit:
            break
        try:
            sock.send(piece)
        except OSError:
            return time.time() - t0, out
        end = time.time() + every
        while time.time() < end:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    return time.time() - t0, out
                out += chunk
            except BlockingIOError:
                time.sleep(0.02)
            except OSError:
                return time.time() - t0, out
    return None, out


def test_dripped_head_hits_its_deadline(strict):
    s = socket.create_connection(("127.0.0.1", strict.port))
    pieces = [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"] + [b"X-A: b\r\n"] * 200
    took, out = drip_until_closed(s, pieces)
    s.close()
    assert took is not None and took < 5, (took, out[:200])
    assert out.startswith(b"HTTP/1.1 408"), out[:200]


def test_silent_connection_hits_the_head_deadline(strict):
    s = socket.create_connection(("127.0.0.1", strict.port))
    s.settimeout(8)
    t0 = time.time()
    out = s.recv(1000)
    assert time.time() - t0 < 5 and out.startswith(b"HTTP/1.1 408"), out
    s.close()


def test_dripped_body_hits_its_deadline(strict):
    s = socket.create_connection(("127.0.0.1", strict.port))
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    took, out = drip_until_closed(s, [head] + [b" "] * 200)
    s.close()
    assert took is not None and took < 5, (took, out[:200])
    assert out.startswith(b"HTTP/1.1 408"), out[:200]


def test_kept_alive_connection_may_idle_past_the_head_deadline(strict):
    """Between requests a kept-alive connection is idle, not slow: the idle timeout applies."""
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as s:
        req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(2):
            s.sendall(req)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(2.5)  # over header_timeout, under idle_timeout
        # the clock starts with the next request's first byte
        s.sendall(req[:10])
        time.sleep(2.5)
        s.sendall(req[10:])
        assert s.recv(65536).startswith(b"HTTP/1.1 408")


def test_over_max_connections_refused_at_once(binary):
    """Past max_connections a new connection gets 503 at once, not a place in the backlog."""
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--max-connections", "4"))
    try:
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", s.port))
        extra.settimeout(3)
        out = b""
        try:
            while chunk := extra.recv(1000):
                out += chunk
        except ConnectionResetError:
            pass
        assert out.startswith(b"HTTP/1.1 503"), out
        assert b"Retry-After" in out
        extra.close()
        for h in held:
            h.close()
        time.sleep(0.2)
        assert requests.get(s.base + "/health", timeout=10).status_code == 200
    finally:
        s.stop()


def connect_from(addr, port):
    s = socket.socket()
    s.bind((addr, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def test_per_address_limit(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--max-connections-per-ip", "3"))
    try:
        held = [connect_from("127.0.0.2", s.port) for _ in range(3)]
        time.sleep(0.2)
        extra = connect_from("127.0.0.2", s.port)
        extra.settimeout(3)
        try:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = extra.recv(1000)
        except (ConnectionResetError, BrokenPipeError):
            got = b""
        assert got == b"", got  # closed at once, never served
        other = connect_from("127.0.0.3", s.port)
        other.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert other.recv(1000).startswith(b"HTTP/1.1 200")
        for c in held + [extra, other]:
            c.close()
    finally:
        s.stop()


def test_served_while_hundreds_of_sockets_drip(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-connections", "64", "--max-connections-per-ip", "16",
                "--header-timeout", "2s"))
    stop = threading.Event()

    def loris():
        sel = selectors.DefaultSelector()
        socks = []
        while not stop.is_set():
            while len(socks) < 300 and not stop.is_set():  # keep 300 open, reopen what closes
                try:
                    c = socket.socket()
                    c.bind(("127.0.0.2", 0))
                    c.setblocking(False)
                    c.connect_ex(("127.0.0.1", s.port))
                    socks.append(c)
                except OSError:
                    break
            for c in list(socks):
                try:
                    c.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n"[:8])
                except OSError:
                    socks.remove(c)
                    c.close()
            time.sleep(0.3)
        for c in socks:
            c.close()
        sel.close()

    t = threading.Thread(target=loris)
    t.start()
    try:
        time.sleep(1.5)
        for _ in range(10):
            r = requests.post(s.base + "/v1/completions", json={"prompt": [1, 2], "max_tokens": 2},
                              timeout=10)
            assert r.status_code == 200, r.text
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(30)
        s.stop()


def test_warns_when_connections_exceed_the_fd_limit(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-connections", "5000"), launcher=["prlimit", "--nofile=1024:1024"])
    out = s.stop()
    assert [line for line in out.splitlines() if "warn" in line and "max_connections" in line
            and "file" in line], out
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER, ("--max-connections", "100"),
               launcher=["prlimit", "--nofile=1024:1024"])
    out = s.stop()
    assert "max_connections" not in out, out


def test_half_closed_client_with_a_partial_head_is_let_go(binary):
    """A client that stops sending mid-head can never finish it: closed within a couple of
    seconds, not at the idle timeout (libmicrohttpd alone waits for that); a complete request
    sent before the half-close is still answered in full."""
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER)  # header_timeout 30s, idle 1m
    try:
        for data, want in ((b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A", b""),
                           (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /hea",
                            b"HTTP/1.1 200")):
            c = socket.create_connection(("127.0.0.1", s.port))
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            c.settimeout(10)
            t0, out = time.time(), b""
            while chunk := c.recv(65536):
                out += chunk
            c.close()
            assert time.time() - t0 < 5, time.time() - t0
            assert out.startswith(want), out[:100]
    finally:
        s.stop()
