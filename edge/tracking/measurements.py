"""Detections -> what the tracker works on: measurement z = (cx, cy, w, h) and its noise variances r in one tuple, the
box, score, class and the model's mean sigma per detection (plain Python: see ``edge.tracking.kalman`` for why).

The noise is where the Gaussian head pays off: a detection's ``box_sigma`` (std of cx, cy, w, h in frame units,
see ``edge.decode``) is the measurement std the Kalman filter needs, so a blurred or half-hidden object moves its
track less and widens its gate. A model without sigma (plain head), or ``noise: constant``, gets a constant
fraction of the box size instead, as trackers without a Gaussian head do: (centre x w, centre x h, size x w,
size x h)^2 for (cx, cy, w, h), with ``constant_noise`` = (centre, size).
"""
from __future__ import annotations

from typing import Optional, Sequence

from edge.decode import Detection
from edge.tracking.config import TrackerConfig

Quad = tuple[float, float, float, float]


class Measurements:
    """One frame's detections as the tracker works on them (``fill`` them in): per detection, in the detections'
    order, ``zr`` (cx, cy, w, h, var cx, var cy, var w, var h), the measurement and its noise variances in one tuple
    (what kalman's functions take); ``boxes`` (x1, y1, x2, y2 as detected); ``x1`` (left edge, index) of each box
    (the duplicates' sweep sorts them); ``score``; ``class_id``; ``sigma_mean`` (the model's mean sigma, None without
    one); and ``max_r_cx``, ``max_r_cy``, the largest var cx and var cy (kalman.gated_costs' reach). One object per
    tracker, filled anew each frame: right after the invoke, making an object of a Python class costs about 2.5 us,
    setting its attributes next to nothing (bench/README.md, "Cost")."""
    __slots__ = ("boxes", "class_id", "max_r_cx", "max_r_cy", "noise", "score", "sigma_mean", "x1", "zr")

    def __init__(self, cfg: TrackerConfig):
        centre, size = cfg.constant_noise
        self.noise = (cfg.noise == "sigma", cfg.sigma_scale, cfg.sigma_floor, centre, size)
        self.zr: list[tuple[float, ...]] = []
        self.max_r_cx = self.max_r_cy = 0.0
        self.boxes: list[Quad] = []
        self.x1: list[tuple[float, int]] = []
        self.score: list[float] = []
        self.class_id: list[int] = []
        self.sigma_mean: list[Optional[float]] = []

    def fill(self, detections: Sequence[Detection], labels: dict[int, str]) -> int:
        """This frame's ``detections`` (one pass over them); ``labels`` (class id -> label) gets the label of every
        class not in it yet. Returns how many."""
        with_sigma, scale, floor, centre, size = self.noise
        zrs, boxes, lefts, scores, classes, sigmas = [], [], [], [], [], []
        max_r_cx = max_r_cy = 0.0
        j = 0
        for d in detections:
            box = d.box
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            w = w if w > 1e-6 else 1e-6
            h = h if h > 1e-6 else 1e-6
            sigma = d.box_sigma if with_sigma else None
            if sigma is None:
                a, b, c, e = centre * w, centre * h, size * w, size * h
            else:
                a, b, c, e = sigma
                a, b, c, e = a * scale, b * scale, c * scale, e * scale
                if a < floor:
                    a = floor
                if b < floor:
                    b = floor
                if c < floor:
                    c = floor
                if e < floor:
                    e = floor
            a *= a
            b *= b
            if a > max_r_cx:
                max_r_cx = a
            if b > max_r_cy:
                max_r_cy = b
            zrs.append(((x1 + x2) * 0.5, (y1 + y2) * 0.5, w, h, a, b, c * c, e * e))
            boxes.append(box)
            lefts.append((x1, j))
            j += 1
            scores.append(d.score)
            k = d.class_id
            classes.append(k)
            if k not in labels:
                labels[k] = d.label
            sigmas.append(d.sigma_mean)
        self.zr, self.max_r_cx, self.max_r_cy, self.boxes, self.x1 = zrs, max_r_cx, max_r_cy, boxes, lefts
        self.score, self.class_id, self.sigma_mean = scores, classes, sigmas
        return j
