"""stream-bridge as a real child process for tests and benchmarks, its config, and what it landed.

A bridge runs in its own process group and is stopped by its pid (SIGTERM, SIGKILL after a grace period);
``kill()`` is the crash (SIGKILL). :func:`landed` reads every visible landing file and checks its trailer.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_bridge_config(path: Path, host: str, port: int, landing: Path, **bridge) -> Path:
    """A stream config whose bridge lands into ``landing`` (no cleanup: the tests read every file)."""
    cfg = {"mqtt": {"host": host, "port": port, "topic_prefix": "sigmawatch"},
           "bridge": {"landing_dir": str(landing), "group": "g1", "roll_interval_s": 0.3, "consumed_dir": None,
                      "confirm_interval_s": 0.3, **bridge}}
    path.write_text(yaml.safe_dump(cfg))
    return path


class BridgeProcess:
    def __init__(self, config: Path, client_id: str, log: Path, env: Optional[dict] = None):
        self.log = log
        self.client_id = client_id
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.bridge", "--config", str(config),
                                      "--client-id", client_id], cwd=ROOT, stdout=open(log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, **(env or {})))

    def wait_subscribed(self, timeout: float = 20) -> "BridgeProcess":
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "subscribed to" in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"bridge {self.client_id} exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"bridge {self.client_id} did not subscribe within {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, grace: float = 15) -> Optional[int]:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def landed(landing_dir: Path) -> list[dict]:
    """Message lines of every visible landing file, each file's ``eof`` trailer checked against its lines."""
    lines: list[dict] = []
    for p in sorted(Path(landing_dir).glob("*.jsonl")):
        *messages, eof = [json.loads(x) for x in p.read_text().splitlines()]
        assert eof["kind"] == "eof" and eof["records"] == len(messages), p.name
        lines += messages
    return lines


def landed_seqs(landing_dir: Path, kind: str = "detections") -> Counter:
    """How often each (device, seq) of valid ``kind`` lines landed (copies counted)."""
    return Counter((x["device"], x["seq"]) for x in landed(landing_dir) if x["kind"] == kind)


def first_landed_ms(landing_dir: Path, kind: str = "detections") -> dict[tuple[str, int], int]:
    """(device, seq) -> when its first copy became durable: the epoch milliseconds in the name of the first
    landing file holding it (the bridge names a file when it writes it)."""
    out: dict[tuple[str, int], int] = {}
    for p in sorted(Path(landing_dir).glob("*.jsonl")):
        written = int(p.name.split("-", 1)[0])
        for line in p.read_text().splitlines()[:-1]:
            x = json.loads(line)
            if x["kind"] == kind:
                key = (x["device"], x["seq"])
                out[key] = min(out.get(key, written), written)
    return out
