"""The numpy assignment solver against brute force (small problems) and SciPy (larger ones, reference only)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from edge.tracking.assignment import assign, hungarian


def objective(cost, limit, rows, cols):
    """(primary, secondary) to minimise: with a finite limit the unmatched ends cost limit/2 each; with an
    infinite one, the most pairs first, then the cheapest."""
    n, m = cost.shape
    k = len(rows)
    total = float(cost[rows, cols].sum()) if k else 0.0
    if np.isfinite(limit):
        return total + limit / 2 * (n - k + m - k), 0.0
    return -k, total


def brute_force(cost, limit):
    n, m = cost.shape
    best = None
    for choice in itertools.product(*[[None, *range(m)]] * n):
        cols = [c for c in choice if c is not None]
        if len(set(cols)) != len(cols):
            continue
        rows = [i for i, c in enumerate(choice) if c is not None]
        if any(not np.isfinite(cost[i, c]) or cost[i, c] >= limit for i, c in zip(rows, cols)):
            continue
        value = objective(cost, limit, np.array(rows, int), np.array(cols, int))
        if best is None or value < best:
            best = value
    return best


@pytest.mark.parametrize("seed", range(6))
def test_equals_brute_force_on_small_random_problems(seed):
    rng = np.random.default_rng(seed)
    for trial in range(150):
        n, m = int(rng.integers(0, 5)), int(rng.integers(0, 5))
        cost = rng.uniform(-2, 10, (n, m))
        if trial % 4 == 0:
            cost = np.round(cost)                     # ties
        cost[rng.random((n, m)) < 0.35] = np.inf      # forbidden pairs (outside a gate)
        limit = np.inf if trial % 3 == 0 else float(rng.uniform(1, 11))
        rows, cols = assign(cost, limit)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert np.all(np.isfinite(cost[rows, cols])) and np.all(cost[rows, cols] < limit)
        assert list(rows) == sorted(rows)
        got, want = objective(cost, limit, rows, cols), brute_force(cost, limit)
        assert got == pytest.approx(want, abs=1e-9), (cost, limit, rows, cols)


def test_dense_problems_equal_scipy():
    rng = np.random.default_rng(1)
    for n, m in [(1, 1), (5, 9), (9, 5), (20, 20), (30, 41), (41, 30)]:
        cost = rng.uniform(0, 1, (n, m))
        r, c = linear_sum_assignment(cost)
        rows, cols = assign(cost)
        assert len(rows) == min(n, m)
        assert cost[rows, cols].sum() == pytest.approx(cost[r, c].sum(), rel=1e-12)
        hr, hc = hungarian(cost) if n <= m else hungarian(cost.T)[::-1]
        assert cost[hr, hc].sum() == pytest.approx(cost[r, c].sum(), rel=1e-12)


def test_components_of_a_gated_problem_are_solved_apart():
    # two far-apart groups: a 1-to-1 pair and a 2 x 2 conflict where the greedy choice is wrong
    cost = np.full((3, 3), np.inf)
    cost[0, 0] = 0.5
    cost[1, 1], cost[1, 2] = 1.0, 2.0
    cost[2, 1] = 1.5
    rows, cols = assign(cost, limit=5.0)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 0, 1: 2, 2: 1}


def test_pairs_at_or_above_the_limit_are_not_taken():
    cost = np.array([[1.0, 5.0], [5.0, 4.9]])
    rows, cols = assign(cost, limit=5.0)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 0, 1: 1}
    rows, cols = assign(cost, limit=4.0)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 0}


def test_empty_and_bad_input():
    assert [a.size for a in assign(np.zeros((0, 3)))] == [0, 0]
    assert [a.size for a in assign(np.full((2, 2), np.inf))] == [0, 0]
    with pytest.raises(ValueError, match="2-D"):
        assign(np.zeros(3))
    with pytest.raises(ValueError, match="rows <= columns"):
        hungarian(np.zeros((3, 2)))
