"""The numpy assignment solver against brute force (small problems) and SciPy (larger ones, reference only)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from edge.tracking.assignment import _assign_general, assign, assign_pairs, hungarian


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


def gated_problem(rng, n, m, ties):
    """Pairs as the tracker's gate leaves them: row i near column i (objects apart), a few rows reaching a neighbour's
    column too (a detection two tracks can reach), some rows and columns alone."""
    pairs = []
    for r in range(n):
        for c in range(max(0, r - 2), min(m, r + 3)):
            if c == r and rng.random() < 0.85 or c != r and rng.random() < 0.25:
                v = float(rng.uniform(0, 10))
                pairs.append((r, c, float(round(v)) if ties else v))
    return pairs


def fast_path_taken(pairs):
    row_best, col_best = {}, {}
    for r, c, v in pairs:
        if r not in row_best or v < row_best[r][0]:
            row_best[r] = (v, c)
        if c not in col_best or v < col_best[c][0]:
            col_best[c] = (v, r)
    if len({c for _v, c in row_best.values()}) == len(row_best):
        return "rows"
    if len({r for _v, r in col_best.values()}) == len(col_best):
        return "columns"
    return "general"


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_paths_give_what_the_full_solver_gives(seed):
    """On gated problems up to 20 x 20: the same pairs as the solver without its fast paths (components, stars,
    enumeration, Hungarian) when costs have no ties, the same objective with ties; the objective also equals SciPy's
    on the matrix (forbidden pairs at a cap that no saving can beat); each of the three paths is taken."""
    rng = np.random.default_rng(100 + seed)
    taken = {"rows": 0, "columns": 0, "general": 0}
    for trial in range(400):
        n, m = int(rng.integers(1, 21)), int(rng.integers(1, 21))
        ties = trial % 5 == 0
        pairs = gated_problem(rng, n, m, ties)
        limit = np.inf if trial % 2 else float(rng.uniform(3, 12))
        pairs = [p for p in pairs if p[2] < limit]
        got, full = assign_pairs(pairs, limit), _assign_general(pairs, limit)
        taken[fast_path_taken(pairs)] += 1
        cost = np.full((n, m), np.inf)
        for r, c, v in pairs:
            cost[r, c] = v
        values = [objective(cost, limit, np.array([r for r, _ in x], int), np.array([c for _, c in x], int))
                  for x in (got, full)]
        assert values[0] == pytest.approx(values[1], abs=1e-9), (pairs, limit)
        if not ties:
            assert got == full, (pairs, limit)
            shuffled = [pairs[k] for k in rng.permutation(len(pairs))]     # the pairs' order does not matter
            assert assign_pairs(shuffled, limit) == got, (pairs, limit)
        assert got == sorted(got)                                          # rows ascending
        if pairs:
            big = 1e6
            capped = np.where(np.isfinite(cost), cost, big if np.isinf(limit) else limit)
            if np.isinf(limit):
                capped = np.where(np.isfinite(cost), cost - big, 0.0)   # each allowed pair worth more than any saving
            r, c = linear_sum_assignment(capped)
            keep = np.isfinite(cost[r, c])
            want = objective(cost, limit, r[keep], c[keep])
            assert values[0] == pytest.approx(want, abs=1e-6), (pairs, limit)
    assert min(taken.values()) > 20, taken
