"""edge.tracking runs on the Pi: numpy and pydantic only (no TensorFlow, SciPy, OpenCV, convert, stream, bench)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["edge.tracking", "edge.tracking.kalman", "edge.tracking.assignment", "edge.tracking.tracker",
           "edge.tracking.regions", "edge.tracking.events", "edge.tracking.config", "edge.tracking.measurements"]
FORBIDDEN = ("tensorflow", "keras", "scipy", "cv2", "convert", "stream", "bench", "motmetrics", "lap")


def test_tracking_imports_only_what_a_pi_has():
    code = (f"import sys; [__import__(m) for m in {MODULES!r}]; "
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}); print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"edge.tracking imported {out.stdout.strip()}"
