"""curl, the client most people try first: a streamed chat, a complete one, and an error."""
import json
import shutil
import subprocess

import pytest

CURL = shutil.which("curl")


def curl(server, path, body, *extra):
    p = subprocess.run([CURL, "-sS", "-N", *extra, "-H", "Content-Type: application/json",
                        "-d", json.dumps(body), server.base + path],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.skipif(not CURL, reason="curl is not installed")
def test_curl_stream_and_complete(server):
    body = {"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 5,
            "temperature": 0}
    whole = json.loads(curl(server, "/v1/chat/completions", body))
    events = [l[6:] for l in curl(server, "/v1/chat/completions", dict(body, stream=True))
              .splitlines() if l.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1]
                   if json.loads(e)["choices"])
    assert text == whole["choices"][0]["message"]["content"]


@pytest.mark.skipif(not CURL, reason="curl is not installed")
def test_curl_error_status(server):
    out = curl(server, "/v1/chat/completions", {"messages": "hi"}, "-w", "\n%{http_code}")
    body, code = out.rsplit("\n", 1)
    assert code == "400" and json.loads(body)["error"]["param"] == "messages"
