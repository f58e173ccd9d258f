"""Detections -> the arrays the tracker works on: measurement z = (cx, cy, w, h) and its noise variances r.

The noise is where the Gaussian head pays off: a detection's ``box_sigma`` (std of cx, cy, w, h in frame units,
see ``edge.decode``) is the measurement std the Kalman filter needs, so a blurred or half-hidden object moves its
track less and widens its gate. A model without sigma (plain head), or ``noise: constant``, gets a constant
fraction of the box size instead, as trackers without a Gaussian head do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge.decode import Detection
from edge.tracking.config import TrackerConfig

NO_SIGMA = (None, None, None, None)


@dataclass
class Measurements:
    z: np.ndarray            # (M, 4) cx, cy, w, h
    r: np.ndarray            # (M, 4) variances
    boxes: np.ndarray        # (M, 4) x1, y1, x2, y2 as detected
    score: np.ndarray        # (M,)
    class_id: np.ndarray     # (M,) int
    sigma_mean: np.ndarray   # (M,) the model's mean sigma, NaN without one

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def take(self, index: np.ndarray) -> "Measurements":
        return Measurements(self.z[index], self.r[index], self.boxes[index], self.score[index],
                            self.class_id[index], self.sigma_mean[index])


def from_detections(detections: Sequence[Detection], cfg: TrackerConfig) -> Measurements:
    m = len(detections)
    flat: list = []
    for d in detections:      # one flat list, one array: a Python loop over the few fields, one numpy call
        flat += (*d.box, *(d.box_sigma or NO_SIGMA), d.score, d.class_id, d.sigma_mean)
    table = np.array(flat, np.float64).reshape(m, 11)      # None (no sigma) becomes NaN
    boxes = table[:, :4]
    z = np.empty((m, 4))
    np.add(boxes[:, :2], boxes[:, 2:], out=z[:, :2])
    z[:, :2] *= 0.5                                       # exactly / 2
    np.subtract(boxes[:, 2:], boxes[:, :2], out=z[:, 2:])
    np.maximum(z[:, 2:], 1e-6, out=z[:, 2:])
    if cfg.noise == "sigma":
        r = np.square(np.maximum(table[:, 4:8] * cfg.sigma_scale, cfg.sigma_floor))
        without = np.isnan(table[:, 4])
        if without.any():                                  # a detection without sigma gets the constant
            r[without] = constant_variances(z[without], cfg.constant_noise)
    else:
        r = constant_variances(z, cfg.constant_noise)
    return Measurements(z, r, boxes, table[:, 8], table[:, 9].astype(np.int64), table[:, 10])


def constant_variances(z: np.ndarray, fraction: tuple[float, float]) -> np.ndarray:
    """Variances of (cx, cy, w, h) when the std is a fixed fraction (centre, size) of the box width (x, w) or
    height (y, h)."""
    wh = z[:, 2:4]
    return np.square(np.concatenate([fraction[0] * wh, fraction[1] * wh], axis=1))
