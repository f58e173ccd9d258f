"""Detections -> what the tracker works on: measurement z = (cx, cy, w, h), its noise variances r, the box, score,
class and the model's mean sigma per detection (plain Python: see ``edge.tracking.kalman`` for why).

The noise is where the Gaussian head pays off: a detection's ``box_sigma`` (std of cx, cy, w, h in frame units,
see ``edge.decode``) is the measurement std the Kalman filter needs, so a blurred or half-hidden object moves its
track less and widens its gate. A model without sigma (plain head), or ``noise: constant``, gets a constant
fraction of the box size instead, as trackers without a Gaussian head do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from edge.decode import Detection
from edge.tracking.config import TrackerConfig

Quad = tuple[float, float, float, float]


@dataclass
class Measurements:
    z: list[Quad]                      # cx, cy, w, h
    r: list[Quad]                      # their variances
    zr: list[tuple[float, ...]]        # z + r, one tuple per detection (kalman.gated_costs)
    max_r_cx: float                    # the largest r of cx (kalman.gated_costs' reach)
    boxes: list[Quad]                  # x1, y1, x2, y2 as detected
    score: list[float]
    class_id: list[int]
    sigma_mean: list[Optional[float]]  # the model's mean sigma, None without one

    def __len__(self) -> int:
        return len(self.score)


def from_detections(detections: Sequence[Detection], cfg: TrackerConfig) -> Measurements:
    with_sigma = cfg.noise == "sigma"
    scale, floor = cfg.sigma_scale, cfg.sigma_floor
    centre, size = cfg.constant_noise
    zs, rs, zrs = [], [], []
    for d in detections:
        x1, y1, x2, y2 = d.box
        w, h = x2 - x1, y2 - y1
        z = ((x1 + x2) * 0.5, (y1 + y2) * 0.5, w if w > 1e-6 else 1e-6, h if h > 1e-6 else 1e-6)
        sigma = d.box_sigma if with_sigma else None
        if sigma is None:
            r = constant_variances(z, centre, size)
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
            r = (a * a, b * b, c * c, e * e)
        zs.append(z)
        rs.append(r)
        zrs.append(z + r)
    return Measurements(zs, rs, zrs, max([r[0] for r in rs], default=0.0), [d.box for d in detections],
                        [d.score for d in detections], [d.class_id for d in detections],
                        [d.sigma_mean for d in detections])


def constant_variances(z: Quad, centre: float, size: float) -> Quad:
    """Variances of (cx, cy, w, h) when the std is a fixed fraction (centre, size) of the box width (x, w) or
    height (y, h)."""
    a, b, c, e = centre * z[2], centre * z[3], size * z[2], size * z[3]
    return (a * a, b * b, c * c, e * e)
