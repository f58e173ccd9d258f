"""The agent runs on a Pi with a TFLite interpreter, OpenCV, paho, numpy, pyyaml and pydantic only."""
from __future__ import annotations

import subprocess
import sys

from edge_helpers import ROOT

MODULES = ["edge.cli", "edge.agent", "edge.bench", "edge.engine", "edge.sources", "edge.publisher", "edge.outbox",
           "edge.contract.mqtt", "edge.config", "edge.contract.secrets", "edge.classify", "edge.zones", "edge.sdnotify"]


def test_agent_imports_no_tensorflow_convert_or_stream():
    code = (f"import sys; [__import__(m) for m in {MODULES!r}]; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'convert', 'stream'));"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"edge-agent imported {out.stdout.strip()}"
