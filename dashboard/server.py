"""The dashboard's HTTP side: static page, a JSON snapshot and a Server-Sent Events stream.

Standard library only (``http.server``). Routes:

- ``GET /`` and ``/static/<file>``: the page (HTML/JS/CSS and the SVG icon shipped in ``static/``,
  nothing from the network); ``/favicon.ico`` is that icon too;
- ``GET /api/state``: the current :meth:`DashboardState.snapshot` as JSON;
- ``GET /events``: SSE; first a ``snapshot`` event, then one event per MQTT message, with a
  keep-alive comment every few seconds. A browser that cannot keep up loses events (counted and
  reported to it as a ``lagged`` event) instead of slowing the MQTT thread down.

While it serves, a thread forgets devices not heard from for too long (:meth:`DashboardState.expire`, once
per ``EXPIRE_EVERY_S``).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dashboard.state import DashboardState

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
CLIENT_QUEUE = 2000
KEEPALIVE_S = 5.0
EXPIRE_EVERY_S = 1.0


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: DashboardState):
        self.state = state
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "DashboardServer":
        self._thread = threading.Thread(target=self.serve_forever, name="dashboard-http", daemon=True)
        self._thread.start()
        self._expiry = threading.Thread(target=self._expire_devices, name="dashboard-expiry", daemon=True)
        self._expiry.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        if getattr(self, "_expiry", None):
            self._expiry.join(5)

    def _expire_devices(self) -> None:
        while not self.stopping.wait(EXPIRE_EVERY_S):
            for device in self.state.expire():
                log.info("forgot device %s: not heard from for longer than %g s", device,
                         self.state.view.forget_after_s)


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # route through logging, quiet by default
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self):  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path == "/favicon.ico":        # browsers ask for it whatever the page links
            return self._static("favicon.svg")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/state":
            return self._send(HTTPStatus.OK, "application/json", _json_bytes(self.server.state.snapshot()))
        if path == "/events":
            return self._events()
        return self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: HTTPStatus, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _static(self, name: str) -> None:
        target = (STATIC_DIR / name).resolve()
        if STATIC_DIR.resolve() not in target.parents or not target.is_file():
            return self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
        ctype = CONTENT_TYPES.get(target.suffix, "application/octet-stream")
        self._send(HTTPStatus.OK, ctype, target.read_bytes())

    def _events(self) -> None:
        events: queue.Queue[dict] = queue.Queue(CLIENT_QUEUE)
        lost = [0]

        def listener(event: dict) -> None:
            try:
                events.put_nowait(event)
            except queue.Full:
                lost[0] += 1

        state = self.server.state
        state.add_listener(listener)  # before the snapshot, so nothing falls in between
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._write_event(state.snapshot())
            reported = 0
            last_write = time.monotonic()
            while not self.server.stopping.is_set():
                try:
                    self._write_event(events.get(timeout=0.5))  # short: notice a stopping server quickly
                    last_write = time.monotonic()
                except queue.Empty:
                    if time.monotonic() - last_write >= KEEPALIVE_S:
                        self.wfile.write(b": keep-alive\n\n")
                        self.wfile.flush()
                        last_write = time.monotonic()
                if lost[0] != reported:
                    reported = lost[0]
                    self._write_event({"kind": "lagged", "lost": reported})
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the browser went away
        finally:
            state.remove_listener(listener)

    def _write_event(self, event: dict) -> None:
        self.wfile.write(b"data: " + _json_bytes(event) + b"\n\n")
        self.wfile.flush()
