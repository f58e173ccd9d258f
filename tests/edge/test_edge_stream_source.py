"""An HTTP video stream as the camera (OpenCV's FFmpeg backend): a stream that stalls mid-way is reported and
reopened, and the agent carries on. The server is a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge_helpers import agent_config, write_video

pytestmark = pytest.mark.mqtt


class StallingServer:
    """Serves one video file; the first request gets a third of it and then hangs (a stalled camera)."""

    def __init__(self, data: bytes):
        self.requests = 0
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests += 1
                first = outer.requests == 1
                self.send_response(200)
                self.send_header("Content-Type", "video/x-msvideo")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data[:len(data) // 3] if first else data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                if first:
                    outer.release.wait(60)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.avi"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_stalled_http_stream_is_reopened(tmp_path, broker, detector_model, agents, subscriber):
    data = write_video(tmp_path / "cam.avi", frames=90, fps=20).read_bytes()
    server = StallingServer(data)
    try:
        sub = subscriber(broker, "sigmawatch/cam-1/#")
        agent = agents(agent_config(tmp_path, broker, detector_model, tmp_path / "unused",
                                    source__uri=server.url, source__stall_timeout_s=2.0))
        sources = lambda: [s["source"] for s in sub.payloads("/status") if s["state"] == "online"]  # noqa: E731
        lost = sub.wait_for(lambda: [s for s in sources() if s["state"] in ("stalled", "reconnecting")], timeout=40,
                            what="the stall reported in the status")
        assert lost[0].get("error")
        sub.wait_for(lambda: server.requests >= 2 and [s for s in sources() if s["state"] == "open"
                                                       and s["reconnects"] >= 1], timeout=40,
                     what="the stream reopened")
        n = len(sub.payloads("/detections"))
        sub.wait_for(lambda: len(sub.payloads("/detections")) > n, timeout=20, what="detections after the reopen")
        assert agent.terminate() == 0, agent.logs()
    finally:
        server.close()
