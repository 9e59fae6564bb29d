"""The daemon's life under a service manager: drain on SIGTERM (8 streams finish, new
connections refused, exit 0), a second signal ends streams with an error event at once, the
sd_notify datagrams on a real unix socket (STATUS, READY=1 after warm-up, WATCHDOG=1,
STOPPING=1), the test-build stall hook (no watchdog pings, /health 503), SIGHUP (API keys
reloaded, log file reopened), text and JSON log lines, and no prompt text at info level."""
import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server

LONG = ("--max-model-len", "8192", "--allow-long-max-model-len")
SECRET = "zebra-quartz-prompt-marker"


def is_fault_build(binary):
    return os.path.join("build", "asan") in binary


def stream(base, max_tokens, out, i, started, headers=None):
    """Streams one completion; out[i] gets the list of SSE data payloads (strings)."""
    body = {"prompt": [1, 2, 3, i], "max_tokens": max_tokens, "ignore_eos": True,
            "temperature": 0, "stream": True}
    events = []
    out[i] = events
    try:
        with requests.post(base + "/v1/completions", json=body, stream=True, timeout=300,
                           headers=headers) as r:
            for line in r.iter_lines():
                if line.startswith(b"data: "):
                    events.append(line[6:].decode())
                    started[i].set()
    except requests.RequestException as e:
        events.append(f"EXCEPTION {e}")
    started[i].set()


def start_streams(base, n, max_tokens):
    out, started = [None] * n, [threading.Event() for _ in range(n)]
    threads = [threading.Thread(target=stream, args=(base, max_tokens, out, i, started))
               for i in range(n)]
    for t in threads:
        t.start()
    for e in started:
        assert e.wait(120)
    return out, threads


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def health_on(conn):
    conn.request("GET", "/health")
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def test_drain_eight_streams(seekd_bin, seekd_env):
    # the drain waits for the streams, however long they take (a loaded ASan run can pass the
    # 30 s default, which would end them with an error instead)
    s = Server(seekd_bin, seekd_env, SERVE_MODEL, TOKENIZER, LONG + ("--shutdown-timeout", "10m"))
    try:
        keep = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        assert health_on(keep)[0] == 200
        out, threads = start_streams(s.base, 8, 1500)  # still running at SIGTERM, however fast
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        assert refused(s.port), "a new connection was accepted while draining"
        status, body = health_on(keep)  # a kept-alive connection still gets an answer
        assert (status, body["status"]) == (503, "draining")
        keep.close()
        for t in threads:
            t.join(120)
        s.proc.wait(60)
    finally:
        log = s.stop()
    assert s.proc.returncode == 0, log
    for events in out:
        assert events[-1] == "[DONE]", events[-3:]
        finishes = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-1]]
        assert finishes[-1] == "length" and not any("error" in e for e in events), events[-3:]
    assert "draining 8 request(s)" in log and "drained" in log


def test_second_signal_aborts_streams(seekd_bin, seekd_env):
    s = Server(seekd_bin, seekd_env, SERVE_MODEL, TOKENIZER, LONG)
    try:
        out, threads = start_streams(s.base, 8, 6000)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        t0 = time.time()
        s.proc.send_signal(signal.SIGINT)
        s.proc.wait(10)
        elapsed = time.time() - t0
        for t in threads:
            t.join(30)
    finally:
        log = s.stop()
    assert elapsed < 1.0, f"exit took {elapsed:.2f}s after the second signal\n{log}"
    for events in out:
        last = json.loads(events[-1])
        assert last["error"]["code"] == "shutting_down", events[-3:]
    assert "second signal" in log


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, tmp_path):
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.msgs = []

    def collect(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                self.msgs.extend(self.sock.recv(4096).decode().split("\n"))
            except socket.timeout:
                pass
        return self.msgs


def notify_env(env, ns, watchdog_usec=200000):
    env = dict(env, NOTIFY_SOCKET=ns.path, WATCHDOG_USEC=str(watchdog_usec))
    env.pop("WATCHDOG_PID", None)
    return env


def test_notify_protocol_order(seekd_bin, seekd_env, tmp_path):
    ns = NotifySocket(tmp_path)
    s = Server(seekd_bin, notify_env(seekd_env, ns), SERVE_MODEL, TOKENIZER)
    ns.collect(0.8)
    s.stop()
    msgs = ns.collect(0.3)
    ready = msgs.index("READY=1")
    assert any(m.startswith("STATUS=Loading model") for m in msgs[:ready]), msgs
    assert "STATUS=Warming up" in msgs[:ready], msgs
    assert msgs.index("STATUS=Warming up") < ready
    assert "WATCHDOG=1" in msgs[ready:], msgs
    stopping = msgs.index("STOPPING=1")
    assert stopping > ready and "READY=1" not in msgs[stopping:], msgs


def test_notify_abstract_socket(seekd_bin, seekd_env):
    name = f"seekd-test-{os.getpid()}-{time.time_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.05)
    env = dict(seekd_env, NOTIFY_SOCKET="@" + name)
    s = Server(seekd_bin, env, SERVE_MODEL, TOKENIZER)
    got = []
    end = time.time() + 5
    while "READY=1" not in got and time.time() < end:
        try:
            got.extend(sock.recv(4096).decode().split("\n"))
        except socket.timeout:
            pass
    s.stop()
    assert "READY=1" in got


def test_stall_hook_stops_watchdog(seekd_bin, seekd_env, tmp_path):
    stall = tmp_path / "stall"
    ns = NotifySocket(tmp_path)
    env = notify_env(seekd_env, ns)
    env["SEEKD_FAULT_STALL"] = str(stall)
    if not is_fault_build(seekd_bin):
        stall.touch()  # a release build must ignore the hook and still come up
        s = Server(seekd_bin, env, SERVE_MODEL, TOKENIZER, ("--engine-stall-timeout", "0.5"))
        assert requests.get(s.base + "/health").status_code == 200
        s.stop()
        return
    s = Server(seekd_bin, env, SERVE_MODEL, TOKENIZER, ("--engine-stall-timeout", "0.5"))
    try:
        assert ns.collect(0.6).count("WATCHDOG=1") >= 2
        stall.touch()
        ns.collect(1.0)  # past the stall limit; takes the pings sent before it
        ns.msgs.clear()
        assert "WATCHDOG=1" not in ns.collect(1.0), "pings continued while the engine hung"
        r = requests.get(s.base + "/health")
        assert (r.status_code, r.json()["status"]) == (503, "stalled")
        stall.unlink()
        ns.msgs.clear()
        assert "WATCHDOG=1" in ns.collect(0.6)
        assert requests.get(s.base + "/health").status_code == 200
    finally:
        if stall.exists():
            stall.unlink()
        s.stop()


def wait_for(pred, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_sighup_reloads_keys_and_reopens_log(seekd_bin, seekd_env, tmp_path):
    conf, logf = tmp_path / "seekd.yaml", tmp_path / "seekd.log"
    conf.write_text("api_keys: [old-key]\n")
    s = Server(seekd_bin, seekd_env, SERVE_MODEL, TOKENIZER,
               ("--config", str(conf), "--log-file", str(logf)))

    def models(key):
        return requests.get(s.base + "/v1/models",
                            headers={"Authorization": f"Bearer {key}"}).status_code
    s.key = "old-key"
    try:
        assert (models("old-key"), models("new-key")) == (200, 401)
        conf.write_text("api_keys: [new-key]\n")
        os.rename(logf, str(logf) + ".1")  # what logrotate does
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: logf.exists() and "API key(s) loaded" in logf.read_text())
        assert (models("old-key"), models("new-key")) == (401, 200)
        s.key = "new-key"
        assert "ready" in (tmp_path / "seekd.log.1").read_text()
    finally:
        s.stop()
    assert "exit 0" in logf.read_text()


def chat_once(base):
    body = {"messages": [{"role": "user", "content": SECRET}], "max_tokens": 4, "temperature": 0}
    r = requests.post(base + "/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_json_log_lines(seekd_bin, seekd_env, tmp_path):
    logf = tmp_path / "seekd.log"
    s = Server(seekd_bin, seekd_env, SERVE_MODEL, TOKENIZER,
               ("--log-format", "json", "--log-file", str(logf)))
    reply = chat_once(s.base)
    s.stop()
    lines = [json.loads(line) for line in logf.read_text().splitlines()]
    assert all({"ts", "level", "msg"} <= set(x) for x in lines)
    access = [x for x in lines if x["msg"] == "access"]
    assert len(access) == 1, lines
    a = access[0]
    assert a["id"] == reply["id"] and a["status"] == 200 and a["path"] == "/v1/chat/completions"
    assert a["prompt_tokens"] == reply["usage"]["prompt_tokens"]
    assert a["completion_tokens"] == reply["usage"]["completion_tokens"]
    assert a["finish_reason"] == reply["choices"][0]["finish_reason"]
    assert a["ttft_ms"] >= 0 and a["duration_ms"] >= a["ttft_ms"]
    assert SECRET not in logf.read_text()


def test_text_log_lines(seekd_bin, seekd_env, tmp_path):
    logf = tmp_path / "seekd.log"
    s = Server(seekd_bin, seekd_env, SERVE_MODEL, TOKENIZER, ("--log-file", str(logf)))
    reply = chat_once(s.base)
    s.stop()
    text = logf.read_text()
    line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error) \S")
    assert all(line.match(x) for x in text.splitlines()), text
    m = re.search(r"access id=(\S+) path=(\S+) status=(\d+) prompt_tokens=(\d+) "
                  r"completion_tokens=(\d+) ttft_ms=([\d.]+) duration_ms=([\d.]+) "
                  r"finish_reason=(\w+)", text)
    assert m and m.group(1) == reply["id"] and m.group(3) == "200", text
    assert SECRET not in text


def test_log_level_error_hides_info(seekd_bin, seekd_env, tmp_path):
    logf = tmp_path / "seekd.log"
    s = Server(seekd_bin, seekd_env, SERVE_MODEL, TOKENIZER,
               ("--log-file", str(logf), "--log-level", "error"))
    chat_once(s.base)
    s.stop()
    assert logf.read_text() == ""
