"""Constant-velocity Kalman filter on box centre and size, for many tracks at once (numpy only).

State per track: cx, cy, w, h and their velocities, in frame-normalized units and units per second.
Measurement: cx, cy, w, h with independent noise per coordinate (variances ``r``): the model's own box sigma
squared when it predicts one (Gaussian head), a constant fraction of the box size otherwise
(``edge.tracking.measurements``).

Process noise: each coordinate gets its own random acceleration, constant over a step (piecewise-constant white
acceleration) with std ``accel_std`` (units/s^2): per coordinate Q = accel_std^2 * [[dt^4/4, dt^3/2], [dt^3/2, dt^2]].

Structure used: F, Q, H and R never couple two coordinates, so a covariance that starts block-diagonal (one 2 x 2
block per coordinate: position, velocity) stays so through every predict and update, and the 8-state filter is
exactly four independent 2-state filters. Each track's covariance is kept as three (4,) vectors instead of an
8 x 8 matrix, and every step is elementwise arithmetic on (N, 4) arrays: no matrix inverse, no solve.
(tests/tracking/test_kalman.py checks this against the textbook 8 x 8 matrix filter.)

Arrays: ``x`` (N, 8) = position (4) then velocity (4); ``p`` (N, 3, 4) = var(position), cov(position, velocity),
var(velocity) per coordinate. Functions return new arrays and never modify their inputs.
"""
from __future__ import annotations

import numpy as np

DIM = 4          # measured coordinates: cx, cy, w, h
STATE = 2 * DIM  # plus their velocities
PP, PV, VV = 0, 1, 2


def initiate(z: np.ndarray, r: np.ndarray, velocity_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks at measurements ``z`` (M, 4) with noise variances ``r`` (M, 4), velocity 0 with std
    ``velocity_std`` (M, 4)."""
    z = np.asarray(z, np.float64)
    x = np.concatenate([z, np.zeros_like(z)], axis=1)
    p = np.stack([np.asarray(r, np.float64), np.zeros_like(z), np.square(velocity_std)], axis=1)
    return x, p


def predict(x: np.ndarray, p: np.ndarray, dt: float, accel_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of ``dt`` seconds: x' = F x, P' = F P F^T + Q, with ``accel_std`` (N, 4)."""
    q = np.square(accel_std)
    x_new = np.empty_like(x)
    x_new[:, :DIM] = x[:, :DIM] + dt * x[:, DIM:]
    x_new[:, DIM:] = x[:, DIM:]
    pp, pv, vv = p[:, PP], p[:, PV], p[:, VV]
    p_new = np.empty_like(p)
    p_new[:, PP] = pp + 2.0 * dt * pv + dt * dt * vv + q * (dt ** 4 / 4.0)
    p_new[:, PV] = pv + dt * vv + q * (dt ** 3 / 2.0)
    p_new[:, VV] = vv + q * (dt * dt)
    return x_new, p_new


def mahalanobis(x: np.ndarray, p: np.ndarray, z: np.ndarray, r: np.ndarray, with_log_det: bool = False):
    """Squared Mahalanobis distance (N, M) between every track and every measurement under the innovation
    covariance S_ij = H P_i H^T + R_j (diagonal here). With ``with_log_det`` also ln(det S_ij / det R_j) (N, M):
    how much less sure the innovation is than the measurement alone (0 for a track that knows where it is)."""
    s = p[:, None, PP, :] + r[None, :, :]
    y = z[None, :, :] - x[:, None, :DIM]
    d2 = (y * y / s).sum(-1)
    if not with_log_det:
        return d2
    ratio = s / r[None, :, :]
    return d2, np.log(ratio[..., 0] * ratio[..., 1] * ratio[..., 2] * ratio[..., 3])   # one log per pair, not four


def update(x: np.ndarray, p: np.ndarray, z: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Measurement update of N tracks with their N matched measurements ``z`` (N, 4), variances ``r`` (N, 4)."""
    pp, pv, vv = p[:, PP], p[:, PV], p[:, VV]
    s = pp + r
    kp, kv = pp / s, pv / s                         # gain rows for position and velocity
    y = z - x[:, :DIM]
    x_new = np.empty_like(x)
    x_new[:, :DIM] = x[:, :DIM] + kp * y
    x_new[:, DIM:] = x[:, DIM:] + kv * y
    p_new = np.empty_like(p)                        # (I - K H) P
    p_new[:, PP] = pp - kp * pp
    p_new[:, PV] = pv - kp * pv
    p_new[:, VV] = vv - kv * pv
    return x_new, p_new


def measurement_std(p: np.ndarray) -> np.ndarray:
    """Std of the estimated cx, cy, w, h (N, 4): the track's own uncertainty."""
    return np.sqrt(np.maximum(p[:, PP], 0.0))
