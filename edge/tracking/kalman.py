"""Constant-velocity Kalman filter on box centre and size, one track at a time, in plain Python floats.

State per track: cx, cy, w, h and their velocities, in frame-normalized units and units per second.
Measurement: cx, cy, w, h with independent noise per coordinate (variances ``r``): the model's own box sigma
squared when it predicts one (Gaussian head), a constant fraction of the box size otherwise
(``edge.tracking.measurements``).

Process noise: each coordinate gets its own random acceleration, constant over a step (piecewise-constant white
acceleration) with variance ``q`` (units^2/s^4): per coordinate Q = q * [[dt^4/4, dt^3/2], [dt^3/2, dt^2]].

Structure used: F, Q, H and R never couple two coordinates, so a covariance that starts block-diagonal (one 2 x 2
block per coordinate: position, velocity) stays so through every predict and update, and the 8-state filter is
exactly four independent 2-state filters. A track is one tuple of 20 floats (``WIDTH``):

    position (4) | velocity (4) | var(position) (4) | cov(position, velocity) (4) | var(velocity) (4)

and every step is a few float operations per coordinate: no matrix, no inverse, no solve.
(tests/tracking/test_tracking_kalman.py checks it against the textbook 8 x 8 matrix filter.)

Why plain Python and not numpy arrays of all tracks: the tracker runs right after the interpreter's invoke, whose
weights and activations have evicted the caches; there, every distinct numpy operation costs about 10 us
(its dispatch and loop code reloaded) against about 1 us warm, and a frame needs dozens of them, while a loop
over a few dozen tracks in Python costs a few us more cold than warm (bench/README.md, "Cost").
Functions return new tuples and never modify their inputs. A tuple, not a list: its items sit in the object itself,
so reaching a track's numbers right after the invoke takes one cache miss less than through a list's separate item
array (measured: bench/README.md, "Cost").
"""
from __future__ import annotations

from math import log, sqrt
from typing import Sequence

DIM = 4          # measured coordinates: cx, cy, w, h
STATE = 2 * DIM  # plus their velocities
WIDTH = 5 * DIM  # one track's tuple: state and the three covariance blocks
POS, VEL, PP, PV, VV = (slice(k * DIM, (k + 1) * DIM) for k in range(5))

Row = tuple           # 20 floats, the layout above
Quad = Sequence[float]


def initiate(m: Sequence[float], velocity_std: Quad) -> Row:
    """A new track at measurement ``m`` = (cx, cy, w, h, their noise variances), velocity 0 with std
    ``velocity_std``."""
    z0, z1, z2, z3, r0, r1, r2, r3 = m
    a, b, c, e = velocity_std
    return (z0, z1, z2, z3, 0.0, 0.0, 0.0, 0.0, r0, r1, r2, r3, 0.0, 0.0, 0.0, 0.0, a * a, b * b, c * c, e * e)


def step(dt: float) -> tuple[float, float, float, float, float]:
    """What ``predict`` needs of a step of ``dt`` seconds, computed once per frame: dt, 2 dt, dt^2, dt^3/2, dt^4/4."""
    return dt, 2.0 * dt, dt * dt, dt ** 3 / 2.0, dt ** 4 / 4.0


def predict(f: Row, steps: tuple[float, float, float, float, float], q: Quad) -> Row:
    """One step (``step(dt)``) with acceleration variances ``q``: x' = F x, P' = F P F^T + Q. Per coordinate
    k: position += dt velocity; var(pos) += 2 dt cov + dt^2 var(vel) + q dt^4/4; cov += dt var(vel) + q dt^3/2;
    var(vel) += q dt^2 (written out: a loop over the four coordinates costs twice as much)."""
    dt, two, c2, c3, c4 = steps
    x0, x1, x2, x3, v0, v1, v2, v3, a0, a1, a2, a3, b0, b1, b2, b3, g0, g1, g2, g3 = f
    q0, q1, q2, q3 = q
    return (x0 + dt * v0, x1 + dt * v1, x2 + dt * v2, x3 + dt * v3, v0, v1, v2, v3,
            a0 + two * b0 + c2 * g0 + q0 * c4, a1 + two * b1 + c2 * g1 + q1 * c4,
            a2 + two * b2 + c2 * g2 + q2 * c4, a3 + two * b3 + c2 * g3 + q3 * c4,
            b0 + dt * g0 + q0 * c3, b1 + dt * g1 + q1 * c3, b2 + dt * g2 + q2 * c3, b3 + dt * g3 + q3 * c3,
            g0 + q0 * c2, g1 + q1 * c2, g2 + q2 * c2, g3 + q3 * c2)


def innovation(f: Row, z: Quad, r: Quad) -> tuple[float, float]:
    """(d^2, ln(det S / det R)) of one track and one measurement: the squared Mahalanobis distance under the
    innovation covariance S = H P H^T + R (diagonal here), and how much less sure the innovation is than the
    measurement alone (0 for a track that knows where it is)."""
    costs = gated_costs(f, [(*z, *r)], float("inf"))
    return costs[0][1], costs[0][2]


def gated_costs(f: Row, measurements: Sequence[tuple[float, ...]], gate: float,
                max_r_cx: float = float("inf"), max_r_cy: float = float("inf")) -> list[tuple[int, float, float]]:
    """(j, d^2, ln(det S / det R)) for every measurement j with d^2 < ``gate``; ``measurements[j]`` is
    (z_cx, z_cy, z_w, z_h, r_cx, r_cy, r_w, r_h): the measurement and its variances in one tuple, and the loop
    neither zips nor enumerates (half the time of a loop over zip(z, r) with enumerate).

    Most measurements are far from the track: with ``max_r_cx`` and ``max_r_cy`` (the largest r_cx, r_cy of them)
    two comparisons drop those whose centre is out of reach, since d^2 >= (z_cx - cx)^2 / (var(cx) + r_cx) >= gate
    once |z_cx - cx| >= sqrt(gate (var(cx) + max_r_cx)) (the bound widened by 1e-9 relative and 1e-12 against
    rounding), and the same in y; the others are dropped at the first coordinate whose partial sum reaches the gate.
    A measurement with a NaN centre never passes."""
    x0, x1, x2, x3 = f[0], f[1], f[2], f[3]
    p0, p1, p2, p3 = f[8], f[9], f[10], f[11]
    reach = sqrt(gate * (p0 + max_r_cx)) * (1.0 + 1e-9) + 1e-12
    lo, hi = x0 - reach, x0 + reach
    reach = sqrt(gate * (p1 + max_r_cy)) * (1.0 + 1e-9) + 1e-12
    ylo, yhi = x1 - reach, x1 + reach
    out = []
    j = -1
    for m in measurements:
        j += 1
        if not (lo < m[0] < hi and ylo < m[1] < yhi):
            continue
        y = m[0] - x0
        s0 = p0 + m[4]
        d2 = y * y / s0
        if d2 >= gate:
            continue
        y = m[1] - x1
        s1 = p1 + m[5]
        d2 += y * y / s1
        if d2 >= gate:
            continue
        y = m[2] - x2
        s2 = p2 + m[6]
        d2 += y * y / s2
        if d2 >= gate:
            continue
        y = m[3] - x3
        s3 = p3 + m[7]
        d2 += y * y / s3
        if d2 >= gate:
            continue
        out.append((j, d2, log(s0 / m[4] * (s1 / m[5]) * (s2 / m[6]) * (s3 / m[7]))))   # one log, not four
    return out


def predict_gated(f: Row, steps: tuple[float, float, float, float, float], accel: float, size_accel: float,
                  measurements: Sequence[tuple[float, ...]], gate: float, max_r_cx: float = float("inf"),
                  max_r_cy: float = float("inf")) -> tuple[Row, list[tuple[int, float]]]:
    """One track's step and its gated costs in one call, as the tracker needs them for every track right after the
    interpreter's invoke: ``predict(f, steps, q)`` with the acceleration std ``accel`` (centre) and ``size_accel``
    (size) box sizes, q = ((accel w)^2, (accel h)^2, (size_accel w)^2, (size_accel h)^2), w and h the row's size (at
    least 1e-3); then, for the predicted row, the (j, d^2 + ln(det S / det R)) of ``gated_costs``. The same
    arithmetic in the same order as those two (bitwise the same results; tests/tracking/test_tracking_kalman.py)."""
    dt, two, c2, c3, c4 = steps
    x0, x1, x2, x3, v0, v1, v2, v3, a0, a1, a2, a3, b0, b1, b2, b3, g0, g1, g2, g3 = f
    w = x2 if x2 > 1e-3 else 1e-3
    h = x3 if x3 > 1e-3 else 1e-3
    q0, q1, q2, q3 = accel * w, accel * h, size_accel * w, size_accel * h
    q0, q1, q2, q3 = q0 * q0, q1 * q1, q2 * q2, q3 * q3
    x0, x1, x2, x3 = x0 + dt * v0, x1 + dt * v1, x2 + dt * v2, x3 + dt * v3
    p0, p1 = a0 + two * b0 + c2 * g0 + q0 * c4, a1 + two * b1 + c2 * g1 + q1 * c4
    p2, p3 = a2 + two * b2 + c2 * g2 + q2 * c4, a3 + two * b3 + c2 * g3 + q3 * c4
    row = (x0, x1, x2, x3, v0, v1, v2, v3, p0, p1, p2, p3,
           b0 + dt * g0 + q0 * c3, b1 + dt * g1 + q1 * c3, b2 + dt * g2 + q2 * c3, b3 + dt * g3 + q3 * c3,
           g0 + q0 * c2, g1 + q1 * c2, g2 + q2 * c2, g3 + q3 * c2)
    reach = sqrt(gate * (p0 + max_r_cx)) * (1.0 + 1e-9) + 1e-12
    lo, hi = x0 - reach, x0 + reach
    reach = sqrt(gate * (p1 + max_r_cy)) * (1.0 + 1e-9) + 1e-12
    ylo, yhi = x1 - reach, x1 + reach
    out = []
    j = -1
    for m in measurements:
        j += 1
        if not (lo < m[0] < hi and ylo < m[1] < yhi):
            continue
        y = m[0] - x0
        s0 = p0 + m[4]
        d2 = y * y / s0
        if d2 >= gate:
            continue
        y = m[1] - x1
        s1 = p1 + m[5]
        d2 += y * y / s1
        if d2 >= gate:
            continue
        y = m[2] - x2
        s2 = p2 + m[6]
        d2 += y * y / s2
        if d2 >= gate:
            continue
        y = m[3] - x3
        s3 = p3 + m[7]
        d2 += y * y / s3
        if d2 >= gate:
            continue
        out.append((j, d2 + log(s0 / m[4] * (s1 / m[5]) * (s2 / m[6]) * (s3 / m[7]))))
    return row, out


def update(f: Row, m: Sequence[float]) -> Row:
    """Measurement update with ``m`` = (z: cx, cy, w, h, then their noise variances r, the layout of
    ``gated_costs``' measurements): gain K = P H^T S^-1, x += K y, P = (I - K H) P; per coordinate S = var(pos) + r,
    gains var(pos) / S and cov / S (written out, like ``predict``)."""
    x0, x1, x2, x3, v0, v1, v2, v3, a0, a1, a2, a3, b0, b1, b2, b3, g0, g1, g2, g3 = f
    z0, z1, z2, z3, r0, r1, r2, r3 = m
    s = a0 + r0
    k0, j0, y0 = a0 / s, b0 / s, z0 - x0
    s = a1 + r1
    k1, j1, y1 = a1 / s, b1 / s, z1 - x1
    s = a2 + r2
    k2, j2, y2 = a2 / s, b2 / s, z2 - x2
    s = a3 + r3
    k3, j3, y3 = a3 / s, b3 / s, z3 - x3
    return (x0 + k0 * y0, x1 + k1 * y1, x2 + k2 * y2, x3 + k3 * y3,
            v0 + j0 * y0, v1 + j1 * y1, v2 + j2 * y2, v3 + j3 * y3,
            a0 - k0 * a0, a1 - k1 * a1, a2 - k2 * a2, a3 - k3 * a3,
            b0 - k0 * b0, b1 - k1 * b1, b2 - k2 * b2, b3 - k3 * b3,
            g0 - j0 * b0, g1 - j1 * b1, g2 - j2 * b2, g3 - j3 * b3)


def measurement_std(f: Row) -> tuple[float, float, float, float]:
    """Std of the estimated cx, cy, w, h: the track's own uncertainty."""
    return (sqrt(max(f[8], 0.0)), sqrt(max(f[9], 0.0)), sqrt(max(f[10], 0.0)), sqrt(max(f[11], 0.0)))
