"""Run the real ``edge-agent run`` (the console script's entry point) on a video file, against a broker, on
the host or under the emulated Pi, and collect what it publishes.

The agent reads a YAML config written here the way a Pi user writes /etc/edge-agent/config.yaml, with the
video as its camera (``realtime: false`` so no frame is dropped, ``exit_on_end: true`` so it stops by itself
at the end of the file and drains its outbox).
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edge.contract import schema

from pi_reference import THREADS
from pi_runner import EmulatedPython, describe_exit, stop

PREFIX = "sigmawatch"


class AgentRunError(AssertionError):
    """The agent crashed, hung or exited with an error: the message carries the exit reason and its log."""


def console_script_args(entry: tuple[str, str], *argv: str, script: str = "edge-agent") -> list[str]:
    """Python arguments that do what the installed console script does: sys.exit(module.func())."""
    module, func = entry
    code = f"import sys; sys.argv[0] = {script!r}; from {module} import {func}; sys.exit({func}())"
    return ["-c", code, *argv]


def write_config(path: Path, *, device_id: str, video: Path, model: Path, port: int, state_dir: Path,
                 score_threshold: float, threads: int = THREADS) -> Path:
    config = {
        "device_id": device_id,
        "state_dir": str(state_dir),
        "log_level": "INFO",
        "source": {"uri": str(video), "realtime": False, "exit_on_end": True},
        "model": {"path": str(model), "device": "cpu", "threads": threads, "task": "detection"},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX, "metrics_interval_s": 2},
        "outbox": {"drain_timeout_s": 10},
        "settings": {"score_threshold": score_threshold},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Collector:
    """A paho subscriber on ``<prefix>/#`` in the test process, recording every message."""
    host: str
    port: int
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self):
        import paho.mqtt.client as mqtt
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pi-test-collector")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def start(self) -> "Collector":
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError(f"test subscriber could not subscribe at {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def of(self, device: str, kind: str) -> list[dict]:
        """Decoded payloads published on <prefix>/<device>/<kind>, in arrival order."""
        topic = f"{PREFIX}/{device}/{kind}"
        with self._lock:
            raw = [p for t, p in self.messages if t == topic and p]
        if kind == "detections":      # the compact wire format, decoded (and validated) as the server does
            return [schema.decode(p, "detections") for p in raw]
        return [json.loads(p) for p in raw]

    def wait_for(self, device: str, kind: str, count: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.of(device, kind)) < count:
            time.sleep(0.1)
        return self.of(device, kind)


@dataclass
class AgentRun:
    returncode: int
    log: str
    seconds: float


def run_agent(argv_python: list[str], *, python: EmulatedPython, cwd: Path, log_path: Path,
              timeout: float) -> AgentRun:
    """Run the agent to completion with ``python`` (emulated Pi or HostPython). Raises AgentRunError on a
    crash, a non-zero exit or a timeout, with the exit reason and the agent's log."""
    t0 = time.monotonic()
    with open(log_path, "wb") as logf:
        proc = python.popen(*argv_python, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            raise AgentRunError(f"edge-agent ({python.where}) did not finish within {timeout:.0f} s "
                                f"(it should stop at the end of the video); log:\n{_tail(log_path)}") from None
    run = AgentRun(proc.returncode, log_path.read_text(errors="replace"), time.monotonic() - t0)
    if run.returncode != 0:
        raise AgentRunError(f"edge-agent ({python.where}) failed: {describe_exit(run.returncode)}\n"
                            f"--- agent log (tail) ---\n{_tail(log_path)}")
    return run


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:]
