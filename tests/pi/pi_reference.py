"""Running pi_probe.py (on the emulated Pi or the x86 host) and shaping its output like agent messages."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PROBE = Path(__file__).with_name("pi_probe.py")
NOISE_SEEDS = range(1, 7)
THREADS = 2  # probe and agent alike: the x86 noise runs must describe the configuration the agent runs


def run_probe(python, model: Path, video: Path, out: Path, threshold: float, noise_seed: int | None = None):
    """(probe JSON, {frame/output: raw tensor}) of one probe run with ``python`` (emulated or host)."""
    args = [str(PROBE), str(model), str(video), str(out), "--score-threshold", str(threshold), "--threads", str(THREADS)]
    if noise_seed is not None:
        args += ["--noise-seed", str(noise_seed)]
    proc = python.run(*args, timeout=600)
    return json.loads(proc.stdout.strip().splitlines()[-1]), dict(np.load(out))


def probe_payloads(result: dict) -> list[dict]:
    """The probe's per-frame detections shaped like detection messages (frames without any are dropped,
    as the agent publishes nothing for them)."""
    w, h = result["frame_size"]
    return [{"frame": {"w": w, "h": h}, "detections": dets} for dets in result["detections"] if dets]


def meaningful(table) -> str:
    """Describe the per-detection tolerances; fail when too few detections can be checked numerically."""
    total, tight, worst = table.summary()
    text = (f"{tight} of {total} x86 detections are stable under +-1 gray-level noise and checked numerically "
            f"(largest of their tolerances: " + ", ".join(f"{k} {v:.4f}" for k, v in worst.items()) +
            f"; floor: {table.floor.describe()}); the others only for presence and class")
    assert total and tight * 2 >= total, "the comparison would say little: " + text
    return text
