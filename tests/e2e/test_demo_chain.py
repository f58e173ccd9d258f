"""The whole chain, as `make demo` runs it, for a short duration.

broker -> 2 edge agents (generated videos, shipped int8 demo detector) -> stream-bridge -> PyFlink job ->
aggregates on MQTT -> dashboard (read in a real headless Chromium). Asserts that every published detection
is aggregated exactly once (per device, class and window, recounted from the published messages), that the
dashboard shows the same figures, and that shutting down leaves no process behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from stream.demo import MODEL, in_tree
from stream.demo_browser import find_chromium

pytestmark = [pytest.mark.mqtt, pytest.mark.flink, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 40


def _require_chain():
    missing = []
    if not MODEL.is_file():
        missing.append(f"the shipped demo detector {MODEL}")
    for rel in ("edge/cli.py", "stream/bridge.py", "stream/job.py"):
        if not in_tree(rel):
            missing.append(rel)
    if not find_chromium():
        missing.append("chromium (apt-get install chromium)")
    if missing:
        pytest.skip("the end-to-end chain needs: " + ", ".join(missing))


def _ours(workdir: Path) -> list[str]:
    """Processes whose command line mentions this run's work directory (agents, bridge, job, broker...)."""
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(str(workdir) in part for part in (p.info["cmdline"] or [])):
                left.append(f"{p.info['pid']}: {' '.join(p.info['cmdline'])[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return left


def test_every_published_detection_is_aggregated_once_and_shown_and_nothing_is_left(tmp_path):
    _require_chain()
    workdir = tmp_path / "demo"
    summary_path = tmp_path / "summary.json"
    shot = tmp_path / "dashboard.png"
    proc = subprocess.run(
        [sys.executable, "-m", "stream.demo", "--duration", str(DURATION_S), "--devices", "2", "--fps", "3",
         "--workdir", str(workdir), "--dashboard-port", "0", "--check-dashboard", "--screenshot", str(shot),
         "--summary-json", str(summary_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=DURATION_S + 240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    s = json.loads(summary_path.read_text())
    assert s["skipped"] == [], s["skipped"]
    assert s["devices"] == ["cam-1", "cam-2"]

    # the chain carried real detections from both cameras
    assert s["detections_published"] > 20, out[-3000:]
    assert s["frames_processed"] >= s["detection_messages"] > 0
    # exactly once: the job's per-(device, class, window) counts equal a recount of the published messages
    assert s["recount"] == {"missing": [], "extra": [], "wrong": []}, s["recount"]
    assert s["events_aggregated"] == s["detections_published"]
    assert s["aggregated_by_class"] == s["detections_by_class"]
    assert s["dead_letters"] in (0, None) and s["late_events"] in (0, None)

    # the dashboard (read in headless Chromium after the drain) shows the same figures
    dash = s["dashboard"]
    assert dash is not None, out[-3000:]
    assert dash["detections"] == s["detections_published"]
    assert dash["aggregated_events"] == s["detections_published"]
    assert sorted(d["device"] for d in dash["devices"]) == ["cam-1", "cam-2"]
    assert dash["live_canvases"] == 2
    assert shot.stat().st_size > 20_000

    # the demo measured what it claims
    assert 0 < s["bytes_ratio"] < 0.2   # detections + sigma are a small fraction of the JPEG frames
    assert s["latency_capture_to_mqtt"]["n"] == s["detection_messages"]

    # shutting down left nothing behind
    assert s["left_behind"] == []
    assert _ours(workdir) == []
