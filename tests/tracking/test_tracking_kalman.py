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


def full_covariance(p: np.ndarray) -> np.ndarray:
    """(3, 4) var/cov/var per coordinate -> the 8 x 8 matrix."""
    P = np.zeros((8, 8))
    i = np.arange(4)
    P[i, i], P[i, i + 4], P[i + 4, i], P[i + 4, i + 4] = p[0], p[1], p[1], p[2]
    return P


def test_matches_the_matrix_filter_over_a_random_sequence():
    rng = np.random.default_rng(7)
    n = 3
    z0 = rng.uniform(0.1, 0.9, (n, 4))
    r0 = rng.uniform(1e-5, 1e-3, (n, 4))
    v0 = rng.uniform(0.01, 0.5, (n, 4))
    x, p = kalman.initiate(z0, r0, v0)
    refs = [ReferenceKalman(z0[k], r0[k], v0[k]) for k in range(n)]
    for step in range(60):
        dt = float(rng.uniform(0.02, 0.5))               # dropped frames: uneven steps
        accel = rng.uniform(0.01, 2.0, (n, 4))
        x, p = kalman.predict(x, p, dt, accel)
        for k, ref in enumerate(refs):
            ref.predict(dt, accel[k])
        z = x[:, :4] + rng.normal(0, 0.02, (n, 4))
        r = rng.uniform(1e-6, 1e-2, (n, 4))              # per-detection noise, as from the model's sigma
        d2, logdet = kalman.mahalanobis(x, p, z, r, with_log_det=True)
        np.testing.assert_array_equal(kalman.mahalanobis(x, p, z, r), d2)
        for k, ref in enumerate(refs):
            for j in range(n):
                y, S = ref.innovation(z[j], r[j])
                assert d2[k, j] == pytest.approx(float(y @ np.linalg.inv(S) @ y), rel=1e-9)
                want = np.linalg.slogdet(S)[1] - np.sum(np.log(r[j]))
                assert logdet[k, j] == pytest.approx(want, rel=1e-9, abs=1e-9)
        seen = rng.random(n) < 0.7                       # some tracks miss their detection this step
        if seen.any():
            x[seen], p[seen] = kalman.update(x[seen], p[seen], z[seen], r[seen])
            for k in np.nonzero(seen)[0]:
                refs[k].update(z[k], r[k])
        for k, ref in enumerate(refs):
            np.testing.assert_allclose(x[k], ref.x, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(full_covariance(p[k]), ref.P, rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(kalman.measurement_std(p), np.sqrt(p[:, 0]))


def test_measurement_noise_sets_how_far_an_update_moves_the_track():
    x, p = kalman.initiate(np.array([[0.5, 0.5, 0.1, 0.1]] * 2), np.full((2, 4), 1e-4), np.full((2, 4), 0.05))
    x, p = kalman.predict(x, p, 0.1, np.full((2, 4), 0.1))
    z = np.array([[0.6, 0.5, 0.1, 0.1]] * 2)
    sure, unsure = np.full(4, 1e-6), np.full(4, 1e-1)
    x2, p2 = kalman.update(x, p, z, np.stack([sure, unsure]))
    assert x2[0, 0] == pytest.approx(0.6, abs=1e-3)       # a precise detection pulls the track onto itself
    assert x2[1, 0] == pytest.approx(0.5, abs=1e-3)       # a vague one barely moves it
    assert p2[0, 0, 0] < p2[1, 0, 0]


def test_inputs_are_not_modified():
    x, p = kalman.initiate(np.array([[0.5, 0.5, 0.1, 0.1]]), np.full((1, 4), 1e-4), np.full((1, 4), 0.05))
    x0, p0 = x.copy(), p.copy()
    kalman.predict(x, p, 0.1, np.full((1, 4), 0.1))
    kalman.update(x, p, np.array([[0.6, 0.5, 0.1, 0.1]]), np.full((1, 4), 1e-4))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(p, p0)
