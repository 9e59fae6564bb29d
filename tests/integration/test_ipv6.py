"""Listening on IPv6 loopback."""
import os
import socket

import pytest

from conftest import SERVE_MODEL, TOKENIZER, Server


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback(binary):
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--host", "::1"), host="::1")
    try:
        with socket.create_connection(("::1", s.port), timeout=10) as c:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        s.stop()
