"""Drive a real headless Chromium over the DevTools protocol on a pipe (no websocket, stdlib only).

Used by the demo (``sigmawatch-demo --screenshot``) and the browser tests to load the dashboard,
read values out of its live DOM and save a screenshot. Chromium is started with
``--remote-debugging-pipe``: it reads NUL-terminated JSON commands from fd 3 and writes replies
and events to fd 4. It runs in its own process group and is stopped by that group's id.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from demo.procs import stop_group

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


# Move the two pipe ends out of the way first (either may already be fd 3 or 4), then onto 3 and 4.
_LAUNCHER = ("import fcntl, os, sys\n"
             "r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])\n"
             "os.dup2(r, 3); os.dup2(w, 4); os.close(r); os.close(w)\n"
             "os.execv(sys.argv[3], sys.argv[3:])\n")


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            return path
    return None


class HeadlessChromium:
    """One headless Chromium with one page; ``with HeadlessChromium() as b: b.goto(url) ...``."""

    def __init__(self, binary: str | None = None, window: tuple[int, int] = (1400, 1100)):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError("Chromium not found: install it (apt-get install chromium) to use the browser check")
        self.window = window
        self._profile = tempfile.mkdtemp(prefix="sigmawatch-chromium-")
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._cv = threading.Condition()
        self._closed = False
        self.session: str | None = None
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ process
    def start(self) -> "HeadlessChromium":
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe",
                f"--window-size={self.window[0]},{self.window[1]}", "about:blank"]
        # A tiny launcher puts our pipe ends on the fds Chromium expects (3 in, 4 out), then execs it.
        self.log = open(Path(self._profile) / "chromium.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(to_chrome_r), str(from_chrome_w),
                                      self.binary, *args], pass_fds=(to_chrome_r, from_chrome_w),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        threading.Thread(target=self._reader, name="cdp-reader", daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=self.window[0],
                  height=self.window[1], deviceScaleFactor=1, mobile=False)
        return self

    def close(self) -> None:
        if self.proc:
            stop_group(self.proc, grace=10.0)
        self._closed = True
        for fd in (getattr(self, "_to_chrome", None),):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "HeadlessChromium":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ protocol
    def _reader(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cv:
                        self._replies[msg["id"]] = msg
                        self._cv.notify_all()
        os.close(self._from_chrome)
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def call(self, method: str, *, session: bool = False, timeout: float = 30.0, **params) -> dict:
        with self._cv:
            self._next_id += 1
            msg_id = self._next_id
        msg = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cv:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    tail = Path(self._profile, "chromium.log").read_bytes()[-1500:].decode(errors="replace")
                    raise BrowserError(f"no reply from Chromium to {method} "
                                       f"({'it exited' if self._closed else 'timeout'}); its log ends:\n{tail}")
                self._cv.wait(min(left, 0.5))
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    # ------------------------------------------------------------------ page helpers
    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait until the new document has loaded."""
        reply = self.call("Page.navigate", session=True, url=url)
        if reply.get("errorText"):
            raise BrowserError(f"cannot load {url}: {reply['errorText']}")
        self.wait_for("location.href !== 'about:blank' && document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"page script failed: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.25):
        """Evaluate ``expression`` until it is truthy; return its value or raise naming it."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        raise BrowserError(f"timed out after {timeout:.0f} s waiting for {expression!r} (last value {value!r})")

    def screenshot(self, path: str | Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
