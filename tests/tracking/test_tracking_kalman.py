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


def full_covariance(row: np.ndarray) -> np.ndarray:
    """One track's row (state, then var/cov/var per coordinate) -> the 8 x 8 matrix."""
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
    s = kalman.initiate(z0, r0, v0)
    refs = [ReferenceKalman(z0[k], r0[k], v0[k]) for k in range(n)]
    for step in range(60):
        dt = float(rng.uniform(0.02, 0.5))               # dropped frames: uneven steps
        accel = rng.uniform(0.01, 2.0, (n, 4))
        s = kalman.predict(s, dt, np.square(accel))
        for k, ref in enumerate(refs):
            ref.predict(dt, accel[k])
        z = s[:, :4] + rng.normal(0, 0.02, (n, 4))
        r = rng.uniform(1e-6, 1e-2, (n, 4))              # per-detection noise, as from the model's sigma
        d2, logdet = kalman.mahalanobis(s, z, r, with_log_det=True)
        np.testing.assert_array_equal(kalman.mahalanobis(s, z, r), d2)
        for k, ref in enumerate(refs):
            for j in range(n):
                y, S = ref.innovation(z[j], r[j])
                assert d2[k, j] == pytest.approx(float(y @ np.linalg.inv(S) @ y), rel=1e-9)
                want = np.linalg.slogdet(S)[1] - np.sum(np.log(r[j]))
                assert logdet[k, j] == pytest.approx(want, rel=1e-9, abs=1e-9)
        seen = rng.random(n) < 0.7                       # some tracks miss their detection this step
        if seen.any():
            s[seen] = kalman.update(s[seen], z[seen], r[seen])
            for k in np.nonzero(seen)[0]:
                refs[k].update(z[k], r[k])
        for k, ref in enumerate(refs):
            np.testing.assert_allclose(s[k, :8], ref.x, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(full_covariance(s[k]), ref.P, rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(kalman.measurement_std(s), np.sqrt(s[:, kalman.PP]))


def test_measurement_noise_sets_how_far_an_update_moves_the_track():
    s = kalman.initiate(np.array([[0.5, 0.5, 0.1, 0.1]] * 2), np.full((2, 4), 1e-4), np.full((2, 4), 0.05))
    s = kalman.predict(s, 0.1, np.full((2, 4), 0.1 ** 2))
    z = np.array([[0.6, 0.5, 0.1, 0.1]] * 2)
    sure, unsure = np.full(4, 1e-6), np.full(4, 1e-1)
    s2 = kalman.update(s, z, np.stack([sure, unsure]))
    assert s2[0, 0] == pytest.approx(0.6, abs=1e-3)       # a precise detection pulls the track onto itself
    assert s2[1, 0] == pytest.approx(0.5, abs=1e-3)       # a vague one barely moves it
    assert s2[0, kalman.PP][0] < s2[1, kalman.PP][0]


def test_inputs_are_not_modified():
    s = kalman.initiate(np.array([[0.5, 0.5, 0.1, 0.1]]), np.full((1, 4), 1e-4), np.full((1, 4), 0.05))
    s0 = s.copy()
    kalman.predict(s, 0.1, np.full((1, 4), 0.1 ** 2))
    kalman.update(s, np.array([[0.6, 0.5, 0.1, 0.1]]), np.full((1, 4), 1e-4))
    np.testing.assert_array_equal(s, s0)
