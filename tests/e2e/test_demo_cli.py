"""sigmawatch-demo's orchestration without the slow parts: skips, failures, shutdown, nothing left behind."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from edge.contract.errors import DemoError

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]


def _demo(tmp_path, *args, timeout=120):
    workdir = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "demo", "--workdir", str(workdir), "--dashboard-port", "0",
                           "--devices", "1", "--video-seconds", "1", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    summary = workdir / "summary.json"
    return proc, (json.loads(summary.read_text()) if summary.is_file() else None), workdir


def _ours(workdir: Path) -> list[str]:
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(str(workdir) in part for part in (p.info["cmdline"] or [])):
                left.append(" ".join(p.info["cmdline"])[:200])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return left


def test_missing_components_are_skipped_with_a_message_and_shutdown_is_clean(tmp_path):
    proc, summary, workdir = _demo(tmp_path, "--duration", "2", "--no-flink", "--model", str(tmp_path / "none.tflite"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--> edge agents: the demo detector" in proc.stdout and "is not there yet" in proc.stdout
    assert "--> stream-bridge + PyFlink job: skipped (--no-flink)" in proc.stdout
    assert "Dashboard:  http://127.0.0.1:" in proc.stdout
    assert summary["left_behind"] == [] and _ours(workdir) == []
    assert "dashboard: stopped" in proc.stdout and "broker: stopped" in proc.stdout


def test_a_component_that_fails_stops_the_demo_with_its_log_and_nothing_is_left(tmp_path):
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"this is not a flatbuffer")
    proc, summary, workdir = _demo(tmp_path, "--duration", "30", "--no-flink", "--model", str(bogus))
    assert proc.returncode == DemoError.exit_code
    assert "ERROR: agent-cam-1 exited with code" in proc.stdout, proc.stdout[-3000:]
    assert "agent-cam-1.log" in proc.stdout
    assert summary["left_behind"] == [] and _ours(workdir) == []


def test_ctrl_c_stops_the_demo_cleanly_with_a_summary(tmp_path):
    import signal
    import time
    workdir = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "demo", "--workdir", str(workdir), "--dashboard-port", "0",
                             "--devices", "1", "--video-seconds", "1", "--no-flink", "--model", str(tmp_path / "none.tflite")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Stop with Ctrl-C" in line:
                break
        assert "Stop with Ctrl-C\n" in lines[-1], "".join(lines)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "==> stopping everything" in rest and "broker: stopped" in rest
    assert json.loads((workdir / "summary.json").read_text())["left_behind"] == []
    assert _ours(workdir) == []
