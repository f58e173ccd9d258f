"""Every listening socket of the running demo (broker, dashboard, agents, bridge) on 127.0.0.1, listed with psutil
(issue 14 item 5; the job's own sockets: tests/stream/test_job_sockets.py)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.sockets import listening, on_every_interface

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]


def test_no_socket_of_the_demo_listens_on_every_interface(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "demo", "--workdir", str(tmp_path / "demo"), "--dashboard-port",
                             "0", "--devices", "1", "--video-seconds", "1", "--synthetic", "--no-flink"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            if "Stop with Ctrl-C" in lines[-1]:
                break
        assert "Stop with Ctrl-C" in lines[-1], "".join(lines)
        sockets = listening(proc.pid)
        names = {s.name for s in sockets}
        assert "mosquitto" in names or any("python" in n for n in names), sockets
        assert len(sockets) >= 2, f"broker and dashboard should listen: {sockets}"
        assert on_every_interface(sockets) == [], sockets
        assert all(s.ip in ("127.0.0.1", "::ffff:127.0.0.1") for s in sockets), sockets
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
