"""Helpers of the stream tests: configs in tmp dirs, child processes stopped by process group."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, broker, base: Path, **job) -> Path:
    cfg = {
        "mqtt": {"host": broker.host, "port": broker.port, "prefix": "sigmawatch"},
        "bridge": {"landing_dir": str(base / "landing"), "client_id": "bridge-t1", "group": "g1",
                   "roll_interval_s": 0.3, "roll_max_records": 50, "consumed_dir": str(base / "out" / "consumed"),
                   "cleanup_interval_s": 1.0},
        "job": {"landing_dir": str(base / "landing"), "output_dir": str(base / "out"),
                "checkpoint_dir": str(base / "chk"), "checkpoint_interval_s": 1.0, **job},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


class Proc:
    """A child process in its own process group (Flink's JVM is a grandchild): stopped by group."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        self.proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=ROOT)

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        else:  # the leader exited; children of its group may live on
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def alive(self) -> bool:
        return self.proc.poll() is None


def bridge_args(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stream.bridge", "--config", str(config), *extra]


def wait_for(cond, timeout: float, interval: float = 0.2, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
