"""Rectangular linear assignment with forbidden pairs and a cost limit (numpy only; no SciPy on the Pi).

``assign(cost, limit)`` returns the pairs (row, col) that minimise

    sum of cost[row, col] over the chosen pairs + limit / 2 * (rows left unmatched + columns left unmatched)

where pairs with a non-finite cost or a cost >= ``limit`` may not be chosen. That is the usual tracking
formulation (a pair is worth taking when its cost is below the limit): the same objective as ``lap.lapjv(cost,
extend_cost=True, cost_limit=limit)``. With ``limit=inf`` it returns a matching with as many pairs as possible
and, among those, the cheapest.

How: the allowed pairs form a bipartite graph whose connected components are independent problems. A component
of one row and one column (the common case when objects are apart) is its own answer; larger components are
solved with the shortest-augmenting-path Hungarian method (Kuhn-Munkres with potentials, O(n^2 m)) on the
rectangular matrix in which a forbidden pair costs a cap: no better than leaving both of its ends unmatched.
"""
from __future__ import annotations

import numpy as np


def assign(cost: np.ndarray, limit: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Matched row and column indices (two int arrays of equal length, rows ascending)."""
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    n, m = cost.shape
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n == 0 or m == 0:
        return empty
    allowed = np.isfinite(cost) & (cost < limit)
    if not allowed.any():
        return empty
    row_deg = allowed.sum(1)
    col_deg = allowed.sum(0)
    rows_out: list[int] = []
    cols_out: list[int] = []
    # one-to-one pairs: the row's only column, and that column's only row
    single = np.nonzero(row_deg == 1)[0]
    if single.size:
        their_col = np.argmax(allowed[single], axis=1)
        lone = col_deg[their_col] == 1
        rows_out.extend(single[lone].tolist())
        cols_out.extend(their_col[lone].tolist())
        done_r = np.zeros(n, bool)
        done_r[single[lone]] = True
    else:
        done_r = np.zeros(n, bool)
    rest = np.nonzero((row_deg > 0) & ~done_r)[0]
    for comp_rows, comp_cols in _components(allowed, rest):
        sub = cost[np.ix_(comp_rows, comp_cols)]
        r, c = _solve_dense(sub, allowed[np.ix_(comp_rows, comp_cols)], limit)
        rows_out.extend(comp_rows[r].tolist())
        cols_out.extend(comp_cols[c].tolist())
    rows = np.asarray(rows_out, np.int64)
    cols = np.asarray(cols_out, np.int64)
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _components(allowed: np.ndarray, rows: np.ndarray):
    """Connected components (row indices, column indices) of the allowed pairs, over the given rows."""
    todo = set(rows.tolist())
    while todo:
        start = todo.pop()
        comp_r, comp_c = {start}, set()
        frontier = [start]
        while frontier:
            cols = set(np.nonzero(allowed[frontier].any(0))[0].tolist()) - comp_c
            comp_c |= cols
            if not cols:
                break
            new_rows = set(np.nonzero(allowed[:, sorted(cols)].any(1))[0].tolist()) - comp_r
            comp_r |= new_rows
            todo -= new_rows
            frontier = sorted(new_rows)
        yield np.asarray(sorted(comp_r), np.int64), np.asarray(sorted(comp_c), np.int64)


def _solve_dense(cost: np.ndarray, allowed: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """One component. Forbidden pairs get the cap: with a finite limit the cap is the limit itself (a pair at the
    limit is as good as leaving its row and column unmatched, limit/2 each); with an infinite limit the cap
    exceeds anything the allowed pairs could save, so the most pairs win, then the cheapest."""
    finite = cost[allowed]
    if np.isfinite(limit):
        cap = float(limit)
    else:
        span = float(finite.max() - finite.min()) if finite.size else 0.0
        cap = float(finite.max()) + (span + 1.0) * (min(cost.shape) + 1)
    a = np.where(allowed, cost, cap)
    transposed = a.shape[0] > a.shape[1]
    if transposed:
        a = a.T
    r, c = hungarian(a)
    if transposed:
        r, c = c, r
    keep = allowed[r, c]
    r, c = r[keep], c[keep]
    order = np.argsort(r, kind="stable")
    return r[order], c[order]


def hungarian(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of every row of ``a`` (n x m, n <= m, all finite) to a distinct column.

    Shortest augmenting paths with row/column potentials u, v (reduced costs a[i, j] - u[i] - v[j] >= 0 on
    every column; zero on the chosen pairs). Column 0 is a virtual column that starts every search."""
    n, m = a.shape
    if n > m:
        raise ValueError(f"hungarian needs rows <= columns, got {n} x {m}")
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, np.int64)       # owner[j] = row (1-based) assigned to column j, 0 = free
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used
            free[0] = False
            reduced = a[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order]
