"""The decoupled Kalman filter (edge.tracking.kalman) against the textbook 8-state matrix filter written here."""
from __future__ import annotations

import numpy as np
import pytest

from edge.tracking import kalman


class ReferenceKalman:
    """x = [cx, cy, w, h, vcx, vcy, vw, vh]; z = H x + noise(R); full 8 x 8 matrices, inverse by np.linalg.inv."""

    H = np.hstack([np.eye(4), np.zeros((4, 4))])

    def __init__(self, z, r, velocity_std):
        self.x = np.concatenate([z, np.zeros(4)])
        self.P = np.diag(np.concatenate([r, np.square(velocity_std)]))

    def predict(self, dt, accel_std):
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        G = np.vstack([0.5 * dt * dt * np.eye(4), dt * np.eye(4)])      # acceleration -> (position, velocity)
        Q = G @ np.diag(np.square(accel_std)) @ G.T
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q

    def innovation(self, z, r):
        S = self.H @ self.P @ self.H.T + np.diag(r)
        return z - self.H @ self.x, S

    def update(self, z, r):
        y, S = self.innovation(z, r)
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        self.P = (np.eye(8) - K @ self.H) @ self.P


def full_covariance(row) -> np.ndarray:
    """One track's row (state, then var/cov/var per coordinate) -> the 8 x 8 matrix."""
    row = np.asarray(row)
    P = np.zeros((8, 8))
    i = np.arange(4)
    P[i, i], P[i, i + 4], P[i + 4, i], P[i + 4, i + 4] = row[kalman.PP], row[kalman.PV], row[kalman.PV], row[kalman.VV]
    return P


def test_matches_the_matrix_filter_over_a_random_sequence():
    rng = np.random.default_rng(7)
    n = 3
    z0 = rng.uniform(0.1, 0.9, (n, 4))
    r0 = rng.uniform(1e-5, 1e-3, (n, 4))
    v0 = rng.uniform(0.01, 0.5, (n, 4))
    rows = [kalman.initiate([*z0[k], *r0[k]], v0[k].tolist()) for k in range(n)]
    refs = [ReferenceKalman(z0[k], r0[k], v0[k]) for k in range(n)]
    for step in range(60):
        dt = float(rng.uniform(0.02, 0.5))               # dropped frames: uneven steps
        accel = rng.uniform(0.01, 2.0, (n, 4))
        rows = [kalman.predict(row, kalman.step(dt), np.square(accel[k]).tolist()) for k, row in enumerate(rows)]
        for k, ref in enumerate(refs):
            ref.predict(dt, accel[k])
        z = np.array([row[:4] for row in rows]) + rng.normal(0, 0.02, (n, 4))
        r = rng.uniform(1e-6, 1e-2, (n, 4))              # per-detection noise, as from the model's sigma
        for k, ref in enumerate(refs):
            both = np.hstack([z, r]).tolist()
            costs = kalman.gated_costs(rows[k], both, float("inf"))
            assert [j for j, _d2, _ld in costs] == list(range(n))
            for j in range(n):
                y, S = ref.innovation(z[j], r[j])
                d2, logdet = kalman.innovation(rows[k], z[j].tolist(), r[j].tolist())
                assert (d2, logdet) == costs[j][1:]
                assert d2 == pytest.approx(float(y @ np.linalg.inv(S) @ y), rel=1e-9)
                want = np.linalg.slogdet(S)[1] - np.sum(np.log(r[j]))
                assert logdet == pytest.approx(want, rel=1e-9, abs=1e-9)
            gate = sorted(c[1] for c in costs)[1]       # the gate drops what reaches it, keeps what is below
            assert [c[0] for c in kalman.gated_costs(rows[k], both, gate)] == \
                [c[0] for c in costs if c[1] < gate]
            # the reach in cx and in cy (two comparisons per far measurement) drops nothing the gate keeps, at every
            # gate from the smallest cost to the largest, the costs themselves included
            for gate in sorted({c[1] for c in costs} | {c[1] * (1 + 1e-12) for c in costs}):
                exact = [c for c in kalman.gated_costs(rows[k], both, float("inf")) if c[1] < gate]
                assert kalman.gated_costs(rows[k], both, gate) == exact
                assert kalman.gated_costs(rows[k], both, gate, float(r[:, 0].max())) == exact
                assert kalman.gated_costs(rows[k], both, gate, float(r[:, 0].max()), float(r[:, 1].max())) == exact
        seen = rng.random(n) < 0.7                       # some tracks miss their detection this step
        for k in np.nonzero(seen)[0]:
            rows[k] = kalman.update(rows[k], [*z[k], *r[k]])
            refs[k].update(z[k], r[k])
        for k, ref in enumerate(refs):
            np.testing.assert_allclose(rows[k][:8], ref.x, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(full_covariance(rows[k]), ref.P, rtol=1e-8, atol=1e-15)
    for row in rows:
        np.testing.assert_allclose(kalman.measurement_std(row), np.sqrt(row[kalman.PP]))


def test_measurement_noise_sets_how_far_an_update_moves_the_track():
    rows = [kalman.predict(kalman.initiate([0.5, 0.5, 0.1, 0.1] + [1e-4] * 4, [0.05] * 4), kalman.step(0.1),
                           [0.1 ** 2] * 4)] * 2
    z = [0.6, 0.5, 0.1, 0.1]
    sure, unsure = kalman.update(rows[0], z + [1e-6] * 4), kalman.update(rows[1], z + [1e-1] * 4)
    assert sure[0] == pytest.approx(0.6, abs=1e-3)       # a precise detection pulls the track onto itself
    assert unsure[0] == pytest.approx(0.5, abs=1e-3)     # a vague one barely moves it
    assert sure[kalman.PP][0] < unsure[kalman.PP][0]


def test_rows_are_new_immutable_tuples():
    """A track's row cannot change behind the tracker's back (an ended track reports the row of its last match,
    which later steps must not touch): every function returns a new tuple of 20 floats."""
    row = kalman.initiate([0.5, 0.5, 0.1, 0.1] + [1e-4] * 4, [0.05] * 4)
    predicted = kalman.predict(row, kalman.step(0.1), [0.1 ** 2] * 4)
    gated, _costs = kalman.predict_gated(row, kalman.step(0.1), 0.5, 0.5, [], 30.0)
    updated = kalman.update(predicted, [0.6, 0.5, 0.1, 0.1] + [1e-4] * 4)
    for r in (row, predicted, gated, updated):
        assert type(r) is tuple and len(r) == kalman.WIDTH and all(type(v) is float for v in r)
    assert updated is not predicted and predicted is not row


def test_predict_gated_is_predict_then_gated_costs_bitwise():
    """The tracker's one call per track (step and gate together) against the two functions it writes out again:
    the same row and the same pairs, bitwise, over random rows (sizes below the 1e-3 floor included), steps,
    measurements and gates; with the reach in cx and cy from the largest variances or without (the same pairs)."""
    rng = np.random.default_rng(3)
    for trial in range(300):
        z = rng.uniform(0.0, 1.0, 4)
        z[2:] = rng.choice([1e-4, 0.05, 0.3]) * rng.uniform(0.5, 1.5, 2)     # tiny, small and large boxes
        row = kalman.initiate([*z, *rng.uniform(1e-6, 1e-3, 4)], rng.uniform(0.01, 1.0, 4).tolist())
        row = kalman.update(kalman.predict(row, kalman.step(0.1), [1e-3] * 4), [*(z + rng.normal(0, 0.01, 4)),
                                                                               *rng.uniform(1e-6, 1e-3, 4)])
        accel, size_accel = rng.uniform(0.1, 3.0, 2)
        steps = kalman.step(float(rng.uniform(0.02, 0.5)))
        ms = [tuple([*rng.uniform(0, 1, 2), *rng.uniform(1e-3, 0.3, 2), *rng.uniform(1e-6, 1e-2, 4)])
              for _ in range(int(rng.integers(0, 15)))]
        ms += [tuple([*(np.array(row[:4]) + rng.normal(0, 0.02, 4)), *rng.uniform(1e-6, 1e-3, 4)])]  # one near
        gate = float(rng.choice([9.0, 30.0, np.inf]))
        far = max(m[4] for m in ms) if trial % 2 else float("inf")
        far_y = max(m[5] for m in ms) if trial % 3 else float("inf")
        w, h = max(row[2], 1e-3), max(row[3], 1e-3)
        q = [(accel * w) ** 2, (accel * h) ** 2, (size_accel * w) ** 2, (size_accel * h) ** 2]
        want_row = kalman.predict(row, steps, q)
        want = [(j, d2 + ld) for j, d2, ld in kalman.gated_costs(want_row, ms, gate, far, far_y)]
        assert want == [(j, d2 + ld) for j, d2, ld in kalman.gated_costs(want_row, ms, gate)]   # the reach: no loss
        got_row, got = kalman.predict_gated(row, steps, float(accel), float(size_accel), ms, gate, far, far_y)
        assert got_row == want_row and got == want, trial
        if trial == 0:
            assert want, "the near measurement passes the gate"
