"""Constant-velocity Kalman filter on box centre and size, for many tracks at once (numpy only).

State per track: cx, cy, w, h and their velocities, in frame-normalized units and units per second.
Measurement: cx, cy, w, h with independent noise per coordinate (variances ``r``): the model's own box sigma
squared when it predicts one (Gaussian head), a constant fraction of the box size otherwise
(``edge.tracking.measurements``).

Process noise: each coordinate gets its own random acceleration, constant over a step (piecewise-constant white
acceleration) with variance ``q`` (units^2/s^4): per coordinate Q = q * [[dt^4/4, dt^3/2], [dt^3/2, dt^2]].

Structure used: F, Q, H and R never couple two coordinates, so a covariance that starts block-diagonal (one 2 x 2
block per coordinate: position, velocity) stays so through every predict and update, and the 8-state filter is
exactly four independent 2-state filters. Each track is one row of 20 numbers (``WIDTH``):

    position (4) | velocity (4) | var(position) (4) | cov(position, velocity) (4) | var(velocity) (4)

and a frame of N tracks one (N, 20) array ``s``. The predict step is then linear in the row and in the acceleration
variances q: s' = [s | q] M(dt), one matrix product with a 24 x 20 matrix (``Step``) instead of a dozen elementwise
calls; the update is elementwise on (N, 4) blocks: no matrix inverse, no solve.
(tests/tracking/test_tracking_kalman.py checks all of it against the textbook 8 x 8 matrix filter.)
Functions return new arrays and never modify their inputs.
"""
from __future__ import annotations

import numpy as np

DIM = 4          # measured coordinates: cx, cy, w, h
STATE = 2 * DIM  # plus their velocities
WIDTH = 5 * DIM  # one track's row: state and the three covariance blocks
POS, VEL, PP, PV, VV = (slice(k * DIM, (k + 1) * DIM) for k in range(5))
_I = np.arange(DIM)


def initiate(z: np.ndarray, r: np.ndarray, velocity_std: np.ndarray) -> np.ndarray:
    """Rows (M, 20) of new tracks at measurements ``z`` (M, 4) with noise variances ``r`` (M, 4), velocity 0 with
    std ``velocity_std`` (M, 4)."""
    z = np.asarray(z, np.float64)
    s = np.zeros((z.shape[0], WIDTH))
    s[:, POS] = z
    s[:, PP] = r
    s[:, VV] = np.square(velocity_std)
    return s


class Step:
    """The predict step as one matrix product: [s | q] @ ``m`` = [F x, F P F^T + Q] per coordinate, for a step
    length ``dt``. ``set(dt)`` rewrites only the 28 entries that depend on dt (the agent's steps differ from frame
    to frame)."""
    __slots__ = ("dt", "m")
    # (row, column) of the entries that depend on dt, and each one's coefficients of (dt, dt^2, dt^3, dt^4)
    _AT = (np.r_[VEL.start + _I, PV.start + _I, VV.start + _I, VV.start + _I,            # T: s -> s'
                 WIDTH + _I, WIDTH + _I, WIDTH + _I],                                     # B: q -> s'
           np.r_[POS.start + _I, PP.start + _I, PP.start + _I, PV.start + _I, PP.start + _I, PV.start + _I,
                 VV.start + _I])
    _COEF = np.repeat(np.array([[1, 0, 0, 0],        # position += dt velocity
                                [2, 0, 0, 0],        # var(pos) += 2 dt cov(pos, vel)
                                [0, 1, 0, 0],        #          + dt^2 var(vel)
                                [1, 0, 0, 0],        # cov += dt var(vel)
                                [0, 0, 0, 0.25],     # var(pos) += q dt^4 / 4
                                [0, 0, 0.5, 0],      # cov += q dt^3 / 2
                                [0, 1, 0, 0]], np.float64), DIM, axis=0)   # var(vel) += q dt^2

    def __init__(self, dt: float):
        self.m = np.zeros((WIDTH + DIM, WIDTH))
        self.m[np.arange(WIDTH), np.arange(WIDTH)] = 1.0
        self.dt = None
        self.set(dt)

    def set(self, dt: float) -> "Step":
        if dt != self.dt:
            dt2 = dt * dt
            self.m[self._AT] = self._COEF @ np.array([dt, dt2, dt2 * dt, dt2 * dt2])
            self.dt = dt
        return self


def predict(s: np.ndarray, dt: float | Step, q: np.ndarray) -> np.ndarray:
    """One step of ``dt`` seconds (or a prepared ``Step``) with acceleration variances ``q`` (N, 4)."""
    step = dt if isinstance(dt, Step) else Step(dt)
    return np.concatenate([s, q], axis=1) @ step.m


def mahalanobis(s: np.ndarray, z: np.ndarray, r: np.ndarray, with_log_det: bool = False):
    """Squared Mahalanobis distance (N, M) between every track and every measurement under the innovation
    covariance S_ij = H P_i H^T + R_j (diagonal here). With ``with_log_det`` also ln(det S_ij / det R_j) (N, M):
    how much less sure the innovation is than the measurement alone (0 for a track that knows where it is)."""
    var = s[:, None, PP] + r[None, :, :]
    y = z[None, :, :] - s[:, None, POS]
    y *= y
    y /= var
    d2 = y[..., 0] + y[..., 1]          # four adds of (N, M) slices: cheaper than a reduction over an axis of 4
    d2 += y[..., 2]
    d2 += y[..., 3]
    if not with_log_det:
        return d2
    var /= r[None, :, :]
    ratio = var[..., 0] * var[..., 1]
    ratio *= var[..., 2]
    ratio *= var[..., 3]
    return d2, np.log(ratio, out=ratio)   # one log per pair, not four


def update(s: np.ndarray, z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Measurement update of N tracks (rows ``s``) with their N matched measurements ``z`` (N, 4), variances ``r``."""
    out = s.copy()
    blocks = out.reshape(-1, 5, DIM)                   # position, velocity, pp, pv, vv
    gain = blocks[:, 2:4] / (blocks[:, 2] + r)[:, None]    # rows for position and velocity: pp / S, pv / S
    y = z - blocks[:, 0]
    blocks[:, 0:2] += gain * y[:, None]
    blocks[:, 4] -= gain[:, 1] * blocks[:, 3]          # (I - K H) P: var(vel) first, it needs the old cov
    blocks[:, 2:4] -= gain[:, 0:1] * blocks[:, 2:4]
    return out


def measurement_std(s: np.ndarray) -> np.ndarray:
    """Std of the estimated cx, cy, w, h (N, 4): the track's own uncertainty."""
    return np.sqrt(np.maximum(s[:, PP], 0.0))
