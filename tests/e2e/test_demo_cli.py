"""sigmawatch-demo's orchestration without the slow parts: skips, failures, shutdown, nothing left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from edge.contract.errors import DemoError, InputError

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]


def _demo(tmp_path, *args, timeout=120, env=None, synthetic=True):
    workdir = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "demo", "--workdir", str(workdir), "--dashboard-port", "0",
                           "--devices", "1", *(["--synthetic", "--video-seconds", "1"] if synthetic else []), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
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
                             "--devices", "1", "--video-seconds", "1", "--synthetic", "--no-flink",
                             "--model", str(tmp_path / "none.tflite")],
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


def test_without_the_fetched_footage_the_demo_says_so_and_how_to_fetch_it(tmp_path):
    """The default input is vtest.avi from the user cache; an empty cache ($SIGMAWATCH_CACHE) is an input error
    (exit 3) naming the missing file, the fetch command and the synthetic alternative, without a traceback, and
    nothing is started."""
    cache = tmp_path / "cache"
    cache.mkdir()
    proc, summary, workdir = _demo(tmp_path, "--duration", "5", "--no-flink", synthetic=False,
                                   env={"SIGMAWATCH_CACHE": str(cache)})
    assert proc.returncode == InputError.exit_code, proc.stdout + proc.stderr
    err = proc.stderr
    assert f"{cache / 'real' / 'video' / 'vtest.avi'} does not exist" in err, err
    assert "python -m convert.realdata.fetch videos" in err and "ARGS=--synthetic" in err, err
    assert "Traceback" not in proc.stdout + err
    assert "==> starting" not in proc.stdout and summary is None and _ours(workdir) == []


def test_synthetic_fallback_only_when_asked_plays_the_generated_videos(tmp_path):
    """--synthetic-if-missing with no footage: one real agent runs the synthetic detector on a generated video and
    publishes the synthetic classes (and nothing of the real scene)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    proc, summary, workdir = _demo(tmp_path, "--duration", "8", "--no-flink", "--synthetic-if-missing",
                                   "--video-seconds", "4", synthetic=False, env={"SIGMAWATCH_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "--> --synthetic-if-missing: playing generated videos" in proc.stdout
    assert summary["input"]["kind"] == "synthetic"
    assert summary["input"]["model"].endswith("demo-detector-int8.tflite")
    assert summary["detections_published"] > 0, proc.stdout[-3000:]
    assert set(summary["detections_by_class"]) <= {"square", "disc", "triangle", "star"}
    assert summary["left_behind"] == [] and _ours(workdir) == []


def test_video_seconds_without_synthetic_is_refused_not_ignored(tmp_path):
    """--video-seconds shapes the generated videos only: with the real footage it would be silently ignored."""
    proc, summary, workdir = _demo(tmp_path, "--duration", "5", "--no-flink", "--video-seconds", "5", synthetic=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--video-seconds" in proc.stderr and "--synthetic" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and summary is None
