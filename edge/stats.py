"""Counters and latency windows shared by the pipeline threads, and the periodic metrics they feed."""
from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import numpy as np

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c(path: Path = THERMAL) -> float | None:
    """The SoC temperature on a Pi (millidegrees in sysfs); None where it cannot be read."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def percentiles(values, qs=(50, 95)) -> dict[str, float]:
    if not values:
        return {f"p{q}": 0.0 for q in qs}
    arr = np.asarray(values, np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


class Stats:
    def __init__(self, window: int = 512):
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.captured = 0
        self.processed = 0
        self.dropped = 0           # stale frames replaced by a newer one before inference took them
        self.published = 0
        self.latency: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=window))
        self._done_times: collections.deque = collections.deque(maxlen=window)

    def add_latency(self, stage: str, ms: float) -> None:
        with self._lock:
            self.latency[stage].append(ms)

    def frame_done(self) -> None:
        with self._lock:
            self.processed += 1
            self._done_times.append(time.monotonic())

    def fps(self, horizon_s: float = 10.0) -> float:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._done_times if now - t <= horizon_s]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], 1e-6)
        return len(recent) / span

    def latency_summary(self, stage: str) -> dict[str, float]:
        with self._lock:
            values = list(self.latency.get(stage, ()))
        return percentiles(values)

    def stage_table(self) -> dict[str, dict[str, float]]:
        with self._lock:
            stages = list(self.latency)
        return {s: self.latency_summary(s) for s in stages}

    def uptime(self) -> float:
        return time.monotonic() - self.started
