"""Helpers for the edge-agent tests (imported by conftest.py and the tests; no fixtures here)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge.contract import schema

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
USERS = {"cam-a": "secret-a", "cam-b": "secret-b", "operator": "secret-op"}   # secured_broker


def write_video(path: Path, frames: int = 60, size=(160, 120), fps: float = 20.0, empty_every: int = 0,
                fourcc: str = "MJPG") -> Path:
    """A red square moving across black; with ``empty_every`` N, frames N-1, 2N-1, ... are empty (black)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cv2.VideoWriter could not open {path} with {fourcc}"
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        if not (empty_every and i % empty_every == empty_every - 1):
            x = int((w - w // 3) * (i % 30) / 29)
            img[h // 4:h // 4 + h // 2, x:x + w // 3, 2] = 255   # red in BGR
        writer.write(img)
    writer.release()
    return path


def agent_config(tmp_path: Path, broker, model: Path, video: Path, device: str = "cam-1", **over) -> Path:
    cfg = {
        "device_id": device,
        "state_dir": str(tmp_path / f"state-{device}"),
        "log_level": "INFO",
        "source": {"uri": str(video), "realtime": True, "loop": True, "backoff_initial_s": 0.2,
                   "backoff_max_s": 1.0},
        "model": {"path": str(model), "threads": 1},
        # no bridge in most agent tests: a message is delivered at the broker's PUBACK unless a test sets
        # mqtt__delivery (auto / landed: kept until a bridge confirms it landed)
        "mqtt": {"host": broker.host, "port": broker.port, "metrics_interval_s": 1.0,
                 "reconnect_min_s": 1, "reconnect_max_s": 2, "delivery": "puback"},
        "settings": {"score_threshold": 0.3},
    }
    for dotted, value in over.items():
        node = cfg
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    path = tmp_path / f"{device}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class AgentProcess:
    """``edge-agent run`` as a real child process (so SIGTERM/SIGKILL are real)."""

    def __init__(self, config: Path, *args: str, env: dict | None = None):
        self.log = config.with_suffix(".log")
        cmd = [PY, "-m", "edge.cli", "run", "-c", str(config), *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
                                     env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})),
                                     start_new_session=True)

    def terminate(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"agent did not stop on SIGTERM within {timeout} s:\n{self.logs()}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


class Subscriber:
    """A paho client collecting every message under a topic filter (clean session, QoS 1)."""

    def __init__(self, broker, topic_filter: str, client_id: str = "test-sub", username=None, password=None):
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if username:
            c.username_pw_set(username, password)

        def on_connect(client, userdata, flags, rc, props):
            if not rc.is_failure:
                client.subscribe(topic_filter, 1)

        def on_subscribe(client, userdata, mid, rcs, props):
            self.ready.set()

        def on_message(client, userdata, msg):
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        c.reconnect_delay_set(1, 2)
        c.connect_async(broker.host, broker.port, keepalive=30)
        c.loop_start()
        self.client = c
        assert self.ready.wait(10), "test subscriber could not subscribe"

    def raw_payloads(self, suffix: str) -> list[dict]:
        """Payloads as they travelled (detections: the compact version-2 wire format)."""
        with self.lock:
            return [json.loads(p) for t, p, _r in self.messages if t.endswith(suffix)]

    def payloads(self, suffix: str) -> list[dict]:
        """Payloads as subscribers use them: detections decoded by edge.contract.schema (which validates them)."""
        with self.lock:
            raw = [p for t, p, _r in self.messages if t.endswith(suffix)]
        if suffix.endswith("/detections"):
            return [schema.decode(p, "detections") for p in raw]
        return [json.loads(p) for p in raw]

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)
        return info

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def write_crossing_video(path: Path, *, size=(320, 240), fps: float = 10.0, cross_frames: int = 40,
                         gone_frames: int = 10, parked: bool = True, fourcc: str = "MJPG") -> Path:
    """A scripted scene for the tracking tests, drawn with the shipped detector's own synthetic renderer: a disc
    crosses the frame left to right at mid height (x from 12 % to 88 % of the width in ``cross_frames`` frames),
    then is gone for ``gone_frames`` frames; with ``parked`` a square stands still in the right half, upper part,
    the whole time. Frame-normalized: the disc's centre is at (0.12 + 0.76 * i / (cross_frames - 1), 0.55)."""
    from convert.detection.synthetic import SynthObject, render_background, render_frame
    w, h = size
    background = render_background(w, h, 5, 6, noise=0.0)
    square = SynthObject(class_id=0, cx=0.78 * w, cy=0.22 * h, size=0.26 * h, color=(220, 60, 40), angle=5.0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cv2.VideoWriter could not open {path} with {fourcc}"
    for i in range(cross_frames + gone_frames):
        objects = [square] if parked else []
        if i < cross_frames:
            cx = (0.12 + 0.76 * i / (cross_frames - 1)) * w
            objects.append(SynthObject(class_id=1, cx=cx, cy=0.55 * h, size=0.3 * h, color=(40, 200, 60)))
        frame = render_frame(w, h, objects, background_seed=5, bgr=True, background=background)
        writer.write(frame.image)
    writer.release()
    return path
