"""Scripted detections for the tracking tests (no fixtures here)."""
from __future__ import annotations

from edge.decode import Detection

LABELS = ("square", "disc", "triangle", "star")


def det(cx: float, cy: float, w: float = 0.1, h: float = 0.1, score: float = 0.9, cls: int = 0,
        sigma: float | tuple[float, float, float, float] | None = 0.004) -> Detection:
    """A detection centred at (cx, cy), frame-normalized; ``sigma`` the box sigma (None: a plain-head model)."""
    box_sigma = None if sigma is None else (tuple(sigma) if isinstance(sigma, tuple) else (sigma,) * 4)
    return Detection(class_id=cls, label=LABELS[cls], score=score, objectness=score,
                     box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                     sigma=None if sigma is None else (0.1, 0.1, 0.1, 0.1),
                     sigma_mean=None if sigma is None else 0.1, box_sigma=box_sigma)


def run(tracker, frames, fps: float = 10.0, t0: float = 1000.0):
    """Feed ``frames`` (lists of detections) at ``fps``; returns the FrameTracks of every frame."""
    return [tracker.update(dets, t0 + i / fps) for i, dets in enumerate(frames)]


def ids_of(result) -> dict[int, tuple[float, float]]:
    """{track id: (cx, cy)} of the tracks matched in one frame."""
    return {t.id: ((t.box[0] + t.box[2]) / 2, (t.box[1] + t.box[3]) / 2) for t in result.tracks if t.matched}
