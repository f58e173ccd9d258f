"""Fixtures for the dashboard tests: a publisher on the real broker and a running dashboard."""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # dash_messages.py, ha_schema.py

from dashboard.relay import MqttRelay  # noqa: E402
from dashboard.server import DashboardServer  # noqa: E402
from dashboard.state import DashboardState  # noqa: E402
from dashboard.view import ViewSettings  # noqa: E402
from edge.contract.mqtt import MqttSettings  # noqa: E402
from tests.conftest import missing  # noqa: E402
from tests.support.browser import HeadlessChromium, find_chromium  # noqa: E402


class Publisher:
    def __init__(self, broker):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, messages, retain: bool = False) -> None:
        for topic, payload in messages:
            self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker):
    p = Publisher(broker)
    yield p
    p.close()


@pytest.fixture
def chromium():
    """A real headless Chromium (1400 x 1300 px); missing Chromium skips locally and fails under CI."""
    if not find_chromium():
        missing("Chromium is not installed (apt-get install chromium)")
    with HeadlessChromium(window=(1400, 1300)) as browser:
        yield browser


class RunningDashboard:
    def __init__(self, broker, prefix="sigmawatch", **view):
        self.state = DashboardState(prefix, view=ViewSettings(**view))
        self.server = DashboardServer(("127.0.0.1", 0), self.state).start()
        self.relay = MqttRelay(MqttSettings(host=broker.host, port=broker.port, topic_prefix=prefix), self.state).start()
        self.relay.wait_ready(10)

    @property
    def url(self) -> str:
        return self.server.url

    def get_json(self, path: str):
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=5) as resp:
            return json.loads(resp.read())

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.state.snapshot()
            if predicate(snap):
                return snap
            time.sleep(0.05)
        raise AssertionError(f"dashboard state never satisfied the condition; last snapshot counters: "
                             f"{self.state.snapshot()['counters']}")

    def stop(self):
        self.relay.stop()
        self.server.stop()


@pytest.fixture
def dashboard(broker):
    d = RunningDashboard(broker)
    yield d
    d.stop()


class SSEReader:
    """Reads the dashboard's /events stream in a thread and keeps the decoded events."""

    def __init__(self, url: str):
        self.events: list[dict] = []
        self.resp = urllib.request.urlopen(url.rstrip("/") + "/events", timeout=10)
        self.content_type = self.resp.headers.get("Content-Type")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for line in self.resp:
                if line.startswith(b"data: "):
                    self.events.append(json.loads(line[6:]))
        except (OSError, ValueError):
            pass

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [e for e in list(self.events) if predicate(e)]
            if hits:
                return hits
            time.sleep(0.05)
        raise AssertionError(f"no SSE event matched; got kinds {[e.get('kind') for e in self.events][-20:]}")

    def close(self):
        # shut the socket down first: close() alone waits for the reader thread's pending read
        sock = getattr(getattr(self.resp.fp, "raw", None), "_sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self.resp.close()
