"""The chat page at /: its headers and bytes as served by both builds, off with --no-webui or
`webui: false`, and the page itself in a real headless Chromium against the real daemon —
streaming, stop (the server frees the request at once), settings, reload, edit, regenerate,
R1 thinking, API keys, export and import, a phone-sized screen, and model text that looks like
HTML staying text. Screenshots land in build/screenshots/ for people to look at."""
import base64
import hashlib
import json
import os
import re
import time

import pytest
import requests

from browser import Browser
from conftest import FIXTURES, ROOT, SERVE_MODEL, TOKENIZER, Server
from test_batching import metrics

SERVER_ARGS = ("--max-model-len", "32768", "--allow-long-max-model-len")
SHOTS = ROOT / "build" / "screenshots"
DEMO = ROOT / "tests" / "integration" / "webui_demo.json"

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
HOSTILE = (f"Look: {IMG} and {SCRIPT} <b>not bold</b> **bold**\n\n"
           f"```html\n{SCRIPT}\n{IMG}\n```\n\n[a link](javascript:window.__pwned=3)")


def csp_of(headers):
    out = {}
    for part in headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def inline_hash(html, tag):
    (text,) = re.findall(rf"\n<{tag}>(.*?)</{tag}>", html, re.S)
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# ---- the page as bytes ---------------------------------------------------------------------------

def test_headers_and_csp(server):
    r = requests.get(server.base + "/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-cache"
    csp = csp_of(r.headers)
    # exactly the page's own inline script and style, nothing else; only this server is fetched
    assert csp["script-src"] == [inline_hash(r.text, "script")]
    assert csp["style-src"] == [inline_hash(r.text, "style")]
    assert csp["default-src"] == ["'none'"] and csp["connect-src"] == ["'self'"]
    assert csp["img-src"] == ["data:"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["require-trusted-types-for"] == ["'script'"] and csp["trusted-types"] == ["'none'"]
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    # nothing is loaded from anywhere: the only URL in an attribute is the data: icon
    urls = re.findall(r'\b(?:src|href|action)\s*=\s*"([^"]*)"', r.text)
    assert urls and all(u.startswith("data:") for u in urls), urls


def test_etag_and_head(server):
    r = requests.get(server.base + "/")
    etag = r.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{16}"', etag)
    again = requests.get(server.base + "/", headers={"If-None-Match": f'W/"x", {etag}'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert requests.get(server.base + "/", headers={"If-None-Match": '"0000"'}).status_code == 200
    head = requests.head(server.base + "/")
    assert head.status_code == 200 and head.content == b"" and head.headers["ETag"] == etag
    post = requests.post(server.base + "/", json={})
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"


def test_page_needs_no_key(binary, seekd_env, tmp_path):
    s = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER, ("--api-key", "k1"))
    s.key = "k1"  # /metrics needs it too
    try:
        assert requests.get(s.base + "/").status_code == 200
        assert requests.get(s.base + "/v1/models").status_code == 401
    finally:
        out = s.stop()
    assert f"chat page: {s.base}/" in out  # where to point a browser


@pytest.mark.parametrize("how", ["flag", "yaml"])
def test_webui_off(binary, seekd_env, tmp_path, how):
    args = ("--no-webui",)
    if how == "yaml":
        cfg = tmp_path / "seekd.yaml"
        cfg.write_text("webui: false\n")
        args = ("--config", str(cfg))
    s = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER, args)
    try:
        for method in ("GET", "HEAD"):
            r = requests.request(method, s.base + "/")
            assert r.status_code == 404, method
        assert requests.get(s.base + "/").json()["error"]["code"] == "not_found"
        assert requests.get(s.base + "/v1/models").status_code == 200
    finally:
        out = s.stop()
    assert "chat page" not in out


# ---- the page in a browser -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    b = Browser()
    yield b
    b.close()


def open_page(b, base, allow=()):
    """Loads the page on a clean slate (no stored conversations, settings or key)."""
    b.viewport(1280, 860)
    b.goto(base + "/")
    b.eval("localStorage.clear(), sessionStorage.clear()")
    b.reload()
    b.problems.clear()
    b.allowed_problems = allow
    return b


def check_problems(b):
    left = [p for p in b.problems if not any(a in p for a in b.allowed_problems)]
    assert left == [], left


@pytest.fixture
def page(browser, server):
    b = open_page(browser, server.base)
    b.wait("document.getElementById('model-name').textContent === 'v3-bf16-sharded'")
    yield b
    check_problems(b)


def settings(b, max_tokens=None, temperature_zero=False):
    """Changes settings the way a person would: the dialog, the keyboard, Esc to close."""
    b.click("#open-settings")
    b.wait("document.getElementById('settings').open")
    if temperature_zero:
        b.click("#set-temperature")
        b.press("Home")
    if max_tokens is not None:
        b.click("#set-max-tokens")
        b.eval("document.getElementById('set-max-tokens').select()")
        b.type(str(max_tokens))
    b.press("Escape")
    b.wait("!document.getElementById('settings').open")


def send(b, text):
    b.click("#input")
    b.type(text)
    b.press("Enter")


def n_replies(b):
    return b.eval("document.querySelectorAll('.msg.assistant .meta-tokens').length")


def wait_reply(b, n, timeout=60):
    """Waits until the n-th reply is complete (its token count is shown)."""
    b.wait(f"document.querySelectorAll('.msg.assistant .meta-tokens').length >= {n} && "
           "document.getElementById('stop').hidden", timeout=timeout)


def texts(b):
    return b.eval("[...document.querySelectorAll('#thread .msg')].map(m => "
                  "(m.querySelector('.bubble, .body') || m).textContent)")


def rendered_text(b, markdown):
    """The text the page's own Markdown renderer makes of markdown."""
    return b.eval("(() => { const d = document.createElement('div'); "
                  f"renderMarkdown({json.dumps(markdown)}, d); return d.textContent; }})()")


def last_body_len(b):
    return b.eval("(document.querySelector('.msg.assistant:last-child .body') || "
                  "{textContent: ''}).textContent.length")


def test_chat_stream_stop_reload(page, server):
    b = page
    settings(b, max_tokens=40)
    send(b, "Hello")
    wait_reply(b, 1)
    assert texts(b)[0] == "Hello" and len(texts(b)[1]) > 0
    meta = b.eval("document.querySelector('.msg.assistant .meta').textContent")
    assert re.search(r"v3-bf16-sharded.*\d+ tokens.*tok/s.*TTFT \d", meta), meta
    assert int(re.search(r"(\d+) tokens", meta).group(1)) <= 40

    # Shift+Enter is a new line, not a send
    b.click("#input")
    b.type("one")
    b.press("Enter", "Shift")
    b.type("two")
    assert b.eval("document.getElementById('input').value") == "one\ntwo"
    assert len(texts(b)) == 2
    b.eval("document.getElementById('input').value = ''")

    # A long answer in a new chat (greedy, so its length does not depend on luck): text
    # arrives while the server still runs the request; Esc stops it and the server drops it.
    b.click("#new-chat")
    settings(b, max_tokens=20000, temperature_zero=True)
    aborted = metrics(server.base).get('request_success_total{finished_reason="abort"}', 0)
    send(b, "Write a very long story")
    b.wait("document.querySelector('.msg.assistant:last-child .body').textContent.length > 0")
    m = metrics(server.base)
    assert m["num_requests_running"] == 1
    first = last_body_len(b)
    b.wait(f"document.querySelector('.msg.assistant:last-child .body').textContent.length > {first}")
    assert metrics(server.base)["num_requests_running"] == 1, "the answer ended before Esc"
    b.press("Escape")
    deadline = time.time() + 5
    while metrics(server.base)["num_requests_running"] != 0:
        assert time.time() < deadline, "the server still runs the stopped request"
        time.sleep(0.02)
    assert metrics(server.base)['request_success_total{finished_reason="abort"}'] == aborted + 1
    wait_reply(b, 1)
    assert "stopped" in b.eval("document.querySelector('.msg.assistant .meta').textContent")
    b.screenshot(str(SHOTS / f"webui-{server_name(server)}-stopped.png"))

    # Reload: both conversations are still there, word for word.
    before = texts(b)
    b.reload()
    b.wait("document.querySelectorAll('#thread .msg').length === 2")
    assert texts(b) == before
    assert b.eval("document.querySelectorAll('.conv').length") == 2
    b.click(".conv:nth-last-child(1) .conv-open")
    b.wait("document.querySelectorAll('#thread .msg').length === 2 && "
           "document.querySelector('.bubble').textContent === 'Hello'")


def server_name(server):
    return "asan" if "asan" in server.proc.args[0] else "release"


def test_regenerate_and_edit(page):
    b = page
    settings(b, max_tokens=8)
    send(b, "First question")
    wait_reply(b, 1)
    first = texts(b)[1]
    # regenerate: the reply is replaced, not added
    b.click(".msg.assistant:last-child [aria-label=Regenerate]")
    b.wait("document.getElementById('stop').hidden && "
           "document.querySelectorAll('.msg.assistant .meta-tokens').length === 1 && "
           f"document.querySelector('.msg.assistant .body').textContent !== {json.dumps(first)}")
    assert len(texts(b)) == 2
    # edit the last user message: Enter sends the new text and asks again
    b.click(".msg.user [aria-label=Edit]")
    b.wait("document.activeElement.matches('.edit-box textarea')")
    b.eval("document.activeElement.select()")
    b.type("Second question")
    b.press("Enter")
    wait_reply(b, 1)
    assert texts(b)[0] == "Second question" and len(texts(b)) == 2
    # Esc leaves an edit without changing anything
    b.click(".msg.user [aria-label=Edit]")
    b.wait("document.activeElement.matches('.edit-box textarea')")
    b.type(" changed")
    b.press("Escape")
    b.wait("!document.querySelector('.edit-box')")
    assert texts(b)[0] == "Second question"


def test_model_text_is_never_html(page, server):
    """The random model cannot write this markup itself, so it goes into the conversation the
    way a person can put it there: by editing the model's answer. From then on it is history
    that the page renders, sends back through the real server, stores and re-renders."""
    b = page
    b.call("Network.enable")
    settings(b, max_tokens=8)
    send(b, "Hi")
    wait_reply(b, 1)
    b.click(".msg.assistant:last-child [aria-label=Edit]")
    b.wait("document.activeElement.matches('.edit-box textarea')")
    b.eval("document.activeElement.select()")
    b.type(HOSTILE)
    b.press("Enter")
    b.wait("!document.querySelector('.edit-box')")
    check_inert(b)
    # the next turn sends it to the server as the assistant's message, and the server answers
    send(b, "And you wrote " + IMG)
    wait_reply(b, 2)
    sent = [e["params"]["request"] for e in b.events if e.get("method") == "Network.requestWillBeSent"
            and e["params"]["request"]["url"].endswith("/v1/chat/completions")]
    history = json.loads(sent[-1]["postData"])["messages"]
    assert history[1] == {"role": "assistant", "content": HOSTILE}
    check_inert(b)
    assert IMG in texts(b)[2]
    b.reload()
    b.wait("document.querySelectorAll('#thread .msg').length === 4")
    check_inert(b)


def check_inert(b):
    body = b.eval("document.querySelector('.msg.assistant .body').textContent")
    assert IMG in body and SCRIPT in body and "<b>not bold</b>" in body
    assert b.eval("[...document.querySelectorAll('#thread img, #thread script, #thread iframe, "
                  "#thread b, #thread [onerror]')].map(e => e.outerHTML)") == []
    assert b.eval("typeof window.__pwned") == "undefined"
    # the Markdown around it still works: bold, a code block holding the markup as text
    assert b.eval("document.querySelector('.msg.assistant .body strong').textContent") == "bold"
    assert SCRIPT in b.eval("document.querySelector('.msg.assistant .body pre code').textContent")
    # a javascript: link stays text
    assert b.eval("[...document.querySelectorAll('#thread a')].every(a => /^https?:|^mailto:/"
                  ".test(a.href))")
    assert "a link" in body


def test_phone_screen(page, server):
    b = page
    b.viewport(390, 844, mobile=True, scale=2)
    b.reload()
    b.wait("document.getElementById('model-name').textContent === 'v3-bf16-sharded'")
    settings(b, max_tokens=30)
    send(b, "Hello from a phone")
    wait_reply(b, 1)
    fits = "document.documentElement.scrollWidth <= innerWidth"
    assert b.eval(fits)
    assert b.eval("document.getElementById('sidebar').getBoundingClientRect().right <= 0")
    composer = b.eval("JSON.stringify(document.querySelector('.composer').getBoundingClientRect())")
    box = json.loads(composer)
    assert box["left"] >= 0 and box["right"] <= 390 and box["bottom"] <= 844
    b.screenshot(str(SHOTS / f"webui-{server_name(server)}-phone.png"))
    b.click("#side-open")
    b.wait("document.getElementById('sidebar').getBoundingClientRect().left === 0")
    b.wait("getComputedStyle(document.getElementById('sidebar')).transform === 'none'")
    b.screenshot(str(SHOTS / f"webui-{server_name(server)}-phone-menu.png"))
    b.press("Escape")
    b.wait("getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'")
    assert b.eval(fits)


def file_input_node(b, selector):
    root = b.call("DOM.getDocument")["root"]["nodeId"]
    return b.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]


def test_export_and_import(page, server, tmp_path):
    b = page
    settings(b, max_tokens=10)
    send(b, "Keep this")
    wait_reply(b, 1)
    b.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(tmp_path),
           eventsEnabled=True)
    b.click("#export")
    deadline = time.time() + 10
    while not list(tmp_path.glob("seekd-chat-*.json")):
        assert time.time() < deadline, "no download"
        time.sleep(0.05)
    time.sleep(0.2)
    (path,) = tmp_path.glob("seekd-chat-*.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "seekd-chat" and len(doc["conversations"]) == 1
    msgs = doc["conversations"][0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    # the page shows the answer rendered as Markdown (line breaks become <br>, which textContent
    # drops): the export keeps the raw text, and rendering it again gives exactly what is shown
    shown = texts(b)
    assert msgs[0]["content"] == "Keep this"
    assert msgs[1]["content"].strip()
    assert rendered_text(b, msgs[1]["content"]) == shown[1]
    assert msgs[1]["meta"]["model"] == "v3-bf16-sharded" and msgs[1]["meta"]["tokens"] >= 1
    # importing the file gives a second, identical conversation: shown exactly as the first
    b.call("DOM.setFileInputFiles", files=[str(path)], nodeId=file_input_node(b, "#import-file"))
    b.wait("document.querySelectorAll('.conv').length === 2")
    assert texts(b) == shown


def test_demo_screenshot(page, server):
    """The conversation shown in the README: imported into a clean page, thinking opened."""
    b = page
    b.viewport(1280, 960)
    b.call("DOM.setFileInputFiles", files=[str(DEMO)], nodeId=file_input_node(b, "#import-file"))
    b.wait("document.querySelectorAll('.conv').length === 1 && !!document.querySelector('.think')")
    b.click(".think > summary")
    b.wait("document.querySelector('.think').open")
    assert b.eval("document.querySelector('.think-body').textContent").startswith("Both inputs")
    assert b.eval("document.querySelectorAll('.msg.assistant .body pre code, .msg.assistant "
                  ".body table td code, .msg.assistant .body strong').length") == 4
    b.call("Input.dispatchMouseEvent", type="mouseMoved", x=5, y=400)
    b.eval("document.getElementById('scroller').scrollTop = 0; "
           "document.getElementById('toast').hidden = true")
    time.sleep(0.3)  # the chevron's turn
    b.screenshot(str(SHOTS / f"webui-{server_name(server)}-demo.png"))
    b.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
    b.screenshot(str(SHOTS / f"webui-{server_name(server)}-demo-dark.png"))
    b.call("Emulation.setEmulatedMedia", features=[])


# ---- R1 thinking and API keys, on servers of their own ----------------------------------------

def test_r1_thinking(browser, binary, seekd_env):
    s = Server(binary, seekd_env, SERVE_MODEL, FIXTURES / "tokenizer" / "r1", SERVER_ARGS)
    try:
        b = open_page(browser, s.base)
        b.wait("document.getElementById('model-name').textContent === 'v3-bf16-sharded'")
        settings(b, max_tokens=20000, temperature_zero=True)
        send(b, "Think first")
        # while the reasoning streams, the block is open and says so; Esc stops it there
        b.wait("(() => { const t = document.querySelector('.think'); return t && !t.hidden && "
               "t.open && t.textContent.startsWith('Thinking'); })()")
        b.press("Escape")
        wait_reply(b, 1)
        think = "document.querySelector('.think')"
        assert b.eval(f"{think}.open") is False
        assert b.eval(f"{think}.querySelector('summary').textContent").startswith("Thought for")
        assert len(b.eval(f"{think}.querySelector('.think-body').textContent")) > 0
        b.click(".think > summary")
        b.wait(f"{think}.open")
        check_problems(b)
    finally:
        s.stop()


def test_api_key(browser, binary, seekd_env):
    key = "sk-page-test-7f3a"
    s = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER, ("--api-key", key))
    s.key = key  # /metrics needs it too
    try:
        b = open_page(browser, s.base, allow=("status of 401",))
        b.call("Network.enable")
        b.events.clear()
        b.wait("document.getElementById('key-dialog').open")
        b.wait("document.activeElement.id === 'key-input'")
        b.type("wrong")
        b.press("Enter")
        b.wait("document.getElementById('key-error').textContent.includes('not accepted')")
        b.eval("document.getElementById('key-input').select()")
        b.type(key)
        b.press("Enter")
        b.wait("!document.getElementById('key-dialog').open && "
               "document.getElementById('model-name').textContent === 'v3-bf16-sharded'")
        settings(b, max_tokens=5)
        send(b, "Hello with a key")
        wait_reply(b, 1)
        reqs = [e["params"]["request"] for e in b.events
                if e.get("method") == "Network.requestWillBeSent"]
        assert all(key not in r["url"] for r in reqs)
        api = [r for r in reqs if "/v1/" in r["url"]]
        assert any(r["url"].endswith("/v1/chat/completions") for r in api)
        last = [r for r in api if r["headers"].get("Authorization")]
        assert last[-1]["headers"]["Authorization"] == "Bearer " + key
        assert b.eval("localStorage.getItem('seekd.apiKey')") is None  # not remembered
        check_problems(b)
    finally:
        s.stop()
