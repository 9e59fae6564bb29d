"""A headless Chromium driven over the DevTools protocol, for the chat page's tests.

Chromium is started with --remote-debugging-pipe: commands go as JSON messages, each ended by a
NUL byte, into its fd 3, and replies and events come back on its fd 4 (the transport the
DevTools protocol defines for a parent process; no port, no websocket). One page is opened and
every command below goes to it: navigate, evaluate JavaScript, real mouse clicks and key
presses, screenshots. JavaScript exceptions, console errors and security (CSP) messages are
collected so that a test can assert there were none."""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

KEYS = {  # key name -> (code, Windows virtual key code, text typed)
    "Enter": ("Enter", 13, "\r"),
    "Escape": ("Escape", 27, ""),
    "Home": ("Home", 36, ""),
    "End": ("End", 35, ""),
    "Tab": ("Tab", 9, ""),
    "a": ("KeyA", 65, "a"),
}
MODIFIERS = {"Alt": 1, "Control": 2, "Meta": 4, "Shift": 8}


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("no Chromium found: `make test` installs Debian's chromium package")


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, width=1280, height=860):
        self.profile = tempfile.mkdtemp(prefix="seekd-chromium-")
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()
        # numbers above 4, so that bash's "3<&A 4>&B" cannot overwrite one with the other
        for fd in (to_child, from_child):
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
            if fd == to_child:
                to_child = high
            else:
                from_child = high
        args = [chromium_path(), "--headless", "--remote-debugging-pipe", "--no-first-run",
                "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
                "--disable-component-update", "--mute-audio", "--hide-scrollbars",
                "--password-store=basic", "--use-mock-keychain", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        # the child's fd 3 reads our commands, its fd 4 writes replies
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_child} 4>&{from_child}', *args],
            pass_fds=(to_child, from_child), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self._next_id = 0
        self._lock = threading.Condition()
        self._replies = {}
        self.events = []
        self.problems = []  # exceptions, console errors, CSP violations seen on the page
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable")
        self.viewport(width, height)

    # ---- transport ----
    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._in, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    self._replies["closed"] = True
                    self._lock.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                self._dispatch(json.loads(raw))

    def _dispatch(self, msg):
        with self._lock:
            if "id" in msg:
                self._replies[msg["id"]] = msg
            else:
                self.events.append(msg)
                self._note_problem(msg)
            self._lock.notify_all()

    def _note_problem(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.problems.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self.problems.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.problems.append(f"log ({p['entry']['source']}): {p['entry']['text']}")

    def call(self, method, timeout=30, **params):
        with self._lock:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        try:
            os.write(self._out, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError("Chromium went away: " + self._stderr()) from None
        end = time.time() + timeout
        with self._lock:
            while mid not in self._replies:
                if "closed" in self._replies:
                    raise BrowserError("Chromium went away: " + self._stderr())
                if not self._lock.wait(max(0.0, end - time.time())) and time.time() >= end:
                    raise BrowserError(f"{method}: no reply in {timeout}s")
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _stderr(self):
        self.proc.wait(timeout=5)
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    # ---- the page ----
    def viewport(self, width, height, mobile=False, scale=1):
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=scale, mobile=mobile)

    def goto(self, url):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && location.href === " + json.dumps(url))

    def reload(self):
        self.eval("window.__reloading = 1")
        self.call("Page.reload", ignoreCache=True)
        self.wait("!window.__reloading && document.readyState === 'complete'")

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, timeout=30, interval=0.05):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        end = time.time() + timeout
        while True:
            try:
                v = self.eval(expr)
            except BrowserError:
                v = None  # e.g. the page is navigating
            if v:
                return v
            if time.time() > end:
                raise AssertionError(f"timed out waiting for: {expr}")
            time.sleep(interval)

    def click(self, selector):
        """A real mouse click in the middle of the first element matching selector."""
        box = self.wait(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect();
            return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null;
        }})()""", timeout=10)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                      clickCount=1)

    def press(self, key, *modifiers):
        code, vk, text = KEYS[key]
        mods = sum(MODIFIERS[m] for m in modifiers)
        down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk,
                "modifiers": mods}
        if text and not mods & (MODIFIERS["Control"] | MODIFIERS["Meta"]):
            down["text"] = text
        self.call("Input.dispatchKeyEvent", **down)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code,
                  windowsVirtualKeyCode=vk, modifiers=mods)

    def type(self, text):
        """Types into the focused element (as an input method would)."""
        self.call("Input.insertText", text=text)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except BrowserError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        self._reader.join(timeout=5)
        os.close(self._in)
        shutil.rmtree(self.profile, ignore_errors=True)
