"""The stream job run ``--bounded`` over a landing directory, as a real child process, and what it aggregated.

For tests whose faults happen before the job (broker crashes, dead bridges): the landing files they leave are
replayed through the job with its default event-time settings, and the totals per device are compared with
the distinct frames that landed.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from tests.support.bridges import ROOT, landed


def _records(directory: Path) -> list[dict]:
    out = []
    for p in sorted(directory.rglob("*")) if directory.is_dir() else []:
        if p.is_file() and not p.name.startswith((".", "_")):
            out += [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return out


def aggregate_bounded(landing: Path, work: Path, timeout: float = 600) -> dict[str, dict[str, int]]:
    """Run ``stream-job run --bounded --no-mqtt`` over ``landing``; per device, the detections in its aggregates
    and the frames in its health records (the latest revision of each window, as consumers apply them)."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "job.yaml"
    cfg.write_text(yaml.safe_dump({"job": {"landing_dir": str(landing), "output_dir": str(work / "out"),
                                           "checkpoint_dir": str(work / "chk"), "publish_mqtt": False}}))
    proc = subprocess.run([sys.executable, "-m", "stream.job", "run", "--config", str(cfg), "--bounded", "--no-mqtt"],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, start_new_session=True)
    if proc.returncode != 0:
        raise AssertionError(f"stream-job --bounded exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    latest: dict[str, dict] = {}
    for r in _records(work / "out" / "records"):
        if r["type"] in ("aggregate", "health") and r.get("revision", 0) >= latest.get(r["id"], {}).get("revision", -1):
            latest[r["id"]] = r
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"detections": 0, "frames": 0})
    for r in latest.values():
        if r["type"] == "aggregate":
            out[r["device"]]["detections"] += r["detections"]
        else:
            out[r["device"]]["frames"] += r["frames"]
    return dict(out)


def recount_landed(landing: Path) -> dict[str, dict[str, int]]:
    """Per device, the distinct frames (device, seq) in the landing files and their detections: what the job
    must aggregate, exactly once."""
    frames: dict[tuple[str, int], int] = {}
    for x in landed(landing):
        if x["kind"] == "detections":
            frames[(x["device"], x["seq"])] = len(x["dets"])
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"detections": 0, "frames": 0})
    for (device, _seq), n in frames.items():
        out[device]["detections"] += n
        out[device]["frames"] += 1
    return dict(out)
