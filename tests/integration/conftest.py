"""Shared pieces of the integration tests: where the binaries and fixtures are."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# The plain build and the AddressSanitizer/UBSan build; each test runs against both.
# SEEKD_BUILDS picks others (make test runs the concurrency tests again under ThreadSanitizer, and
# the backend-choice tests against the CUDA builds).
ALL_BINARIES = {
    "release": ROOT / "seekd",
    "asan": ROOT / "build" / "asan" / "seekd",
    "tsan": ROOT / "build" / "tsan" / "seekd",
    "cuda": ROOT / "build" / "cuda-release" / "seekd",
    "cuda-asan": ROOT / "build" / "cuda-asan" / "seekd",
    "bundle": ROOT / ".devbundle" / "bin" / "seekd",  # tests/cuda/device_check.sh on a GPU
}
BINARIES = {n: ALL_BINARIES[n] for n in os.environ.get("SEEKD_BUILDS", "release,asan").split(",")}


def pytest_generate_tests(metafunc):
    if "seekd_bin" in metafunc.fixturenames:
        names = [n for n in BINARIES if BINARIES[n].exists()]
        metafunc.parametrize("seekd_bin", [str(BINARIES[n]) for n in names], ids=names)


@pytest.fixture
def seekd_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `seekd serve` on 127.0.0.1, serving a fixture model; launcher (e.g. mpirun and
    its arguments) goes in front of the command."""

    def __init__(self, binary, env, model, tokenizer=None, args=(), host="127.0.0.1",
                 launcher=()):
        import subprocess
        import tempfile
        self.port = free_port()
        self.key = None  # the API key /metrics needs, when the server has keys
        self.base = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        cmd = [*launcher, binary, "serve", "--model", str(model), "--port", str(self.port),
               "--kv-cache-memory", "64MiB", "--kv-cache-dtype", "f32", *args]
        if tokenizer:
            cmd += ["--tokenizer", str(tokenizer)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout=60):
        import time
        import urllib.request
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"seekd exited {self.proc.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("seekd did not become ready: " + self.output())

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def blocks_in_use(self):
        """KV blocks still held by sequences, waiting up to 10 s for running requests to end."""
        import time
        import urllib.request
        used = None
        for _ in range(200):
            req = urllib.request.Request(self.base + "/metrics")
            if self.key:
                req.add_header("Authorization", f"Bearer {self.key}")
            with urllib.request.urlopen(req, timeout=5) as r:
                text = r.read().decode()
            used = running = None
            for line in text.splitlines():
                if line.startswith("seekd:kv_cache_blocks_used "):
                    used = float(line.split()[1])
                if line.startswith("seekd:num_requests_running "):
                    running = float(line.split()[1])
            if used == 0 and running == 0:
                return 0
            time.sleep(0.05)
        return used

    def signal_stop(self):
        """Asks the server to drain and exit."""
        import signal
        self.proc.send_signal(signal.SIGTERM)

    def stop(self):
        """SIGTERM; checks the KV cache was left empty, a clean exit and no sanitizer report.
        The process never outlives this call."""
        import signal
        try:
            if self.proc.poll() is None:
                # every test leaves the KV cache empty
                assert self.blocks_in_use() == 0, "KV blocks still in use after the tests"
                self.signal_stop()
                self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        assert "Sanitizer" not in out and "runtime error:" not in out, out
        assert self.proc.returncode == 0, out
        return out


TOKENIZER = FIXTURES / "tokenizer" / "v3"
SERVE_MODEL = FIXTURES / "models" / "v3-bf16-sharded"


BUILDS = [n for n in BINARIES if BINARIES[n].exists()]


@pytest.fixture(scope="module", params=BUILDS)
def binary(request):
    """Each build in turn (release, ASan/UBSan) for tests that start their own servers."""
    return str(BINARIES[request.param])


@pytest.fixture(scope="module", params=BUILDS)
def server(request):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    s = Server(str(BINARIES[request.param]), env, SERVE_MODEL, TOKENIZER,
               getattr(request.module, "SERVER_ARGS", ()))
    yield s
    s.stop()
