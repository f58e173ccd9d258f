"""Detections -> what the tracker works on: measurement z = (cx, cy, w, h) and its noise variances r (arrays, for
the filter and the costs), score, class and the model's mean sigma (lists, for the per-track bookkeeping).

The noise is where the Gaussian head pays off: a detection's ``box_sigma`` (std of cx, cy, w, h in frame units,
see ``edge.decode``) is the measurement std the Kalman filter needs, so a blurred or half-hidden object moves its
track less and widens its gate. A model without sigma (plain head), or ``noise: constant``, gets a constant
fraction of the box size instead, as trackers without a Gaussian head do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from edge.decode import Detection
from edge.tracking.config import TrackerConfig

NO_SIGMA = (np.nan,) * 4
# (x1, y1, x2, y2) @ TO_CXCYWH = (cx, cy, w, h): every entry is 0, +-1 or 0.5, so each product is exact and the
# result is bitwise (x1 + x2) / 2 and x2 - x1
TO_CXCYWH = np.array([[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]], np.float64)


@dataclass
class Measurements:
    z: np.ndarray                      # (M, 4) cx, cy, w, h
    r: np.ndarray                      # (M, 4) variances
    boxes: np.ndarray                  # (M, 4) x1, y1, x2, y2 as detected
    score: list[float]
    class_id: list[int]
    sigma_mean: list[Optional[float]]  # the model's mean sigma, None without one

    def __len__(self) -> int:
        return len(self.score)


def from_detections(detections: Sequence[Detection], cfg: TrackerConfig) -> Measurements:
    """One array from the detections' boxes and sigmas (one tuple per detection, one conversion: ``box`` and
    ``box_sigma`` are tuples, as ``edge.decode`` makes them)."""
    table = np.array([d.box + (d.box_sigma or NO_SIGMA) for d in detections], np.float64).reshape(-1, 8)
    boxes = table[:, :4]
    z = boxes @ TO_CXCYWH
    np.maximum(z[:, 2:], 1e-6, out=z[:, 2:])
    if cfg.noise == "sigma":
        r = table[:, 4:] * cfg.sigma_scale
        np.maximum(r, cfg.sigma_floor, out=r)
        r *= r
        if any(d.box_sigma is None for d in detections):     # a detection without sigma gets the constant
            without = np.isnan(table[:, 4])
            r[without] = constant_variances(z[without], cfg.constant_noise)
    else:
        r = constant_variances(z, cfg.constant_noise)
    return Measurements(z, r, boxes, [d.score for d in detections], [d.class_id for d in detections],
                        [d.sigma_mean for d in detections])


def constant_variances(z: np.ndarray, fraction: tuple[float, float]) -> np.ndarray:
    """Variances of (cx, cy, w, h) when the std is a fixed fraction (centre, size) of the box width (x, w) or
    height (y, h)."""
    wh = z[:, 2:4]
    return np.square(np.concatenate([fraction[0] * wh, fraction[1] * wh], axis=1))
