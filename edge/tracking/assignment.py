"""Rectangular linear assignment with forbidden pairs and a cost limit (numpy only; no SciPy on the Pi).

``assign(cost, limit)`` returns the pairs (row, col) that minimise

    sum of cost[row, col] over the chosen pairs + limit / 2 * (rows left unmatched + columns left unmatched)

where pairs with a non-finite cost or a cost >= ``limit`` may not be chosen. That is the usual tracking
formulation (a pair is worth taking when its cost is below the limit): the same objective as ``lap.lapjv(cost,
extend_cost=True, cost_limit=limit)``. With ``limit=inf`` it returns a matching with as many pairs as possible
and, among those, the cheapest.

How: first two checks that settle most of what a tracker meets. If every row's cheapest allowed column is a
different column, those pairs are optimal (every row is matched, each at its least cost); likewise if every column's
cheapest allowed row is a different row. Otherwise: the allowed pairs form a bipartite graph whose connected
components are independent problems. A component
of one row and one column (the common case when objects are apart: a row and a column that each allow only the
other) is its own answer; a row allowed to several columns that no other row wants (a star) takes its cheapest; the
other components (a few rows and columns) are solved exactly: by trying every assignment up to 3 x 4, beyond that
with the shortest-augmenting-path Hungarian method (Kuhn-Munkres with potentials, O(n^2 m)), on the rectangular
matrix in which a forbidden pair costs a cap: no better than leaving both of its ends unmatched.
``assign_pairs`` takes the problem as its list of allowed pairs (what the tracker has after gating: a few per row)
and works in plain Python; ``assign`` takes a matrix.
"""
from __future__ import annotations

from itertools import permutations

import numpy as np

_EMPTY = np.zeros(0, np.int64)


def assign(cost: np.ndarray, limit: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Matched row and column indices (two int arrays of equal length, rows ascending)."""
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if cost.size == 0:
        return _EMPTY, _EMPTY
    ok = np.isfinite(cost)
    if limit != np.inf:
        ok &= cost < limit
    r, c = np.nonzero(ok)
    pairs = assign_pairs(list(zip(r.tolist(), c.tolist(), cost[r, c].tolist())), limit)
    return np.array([r for r, _ in pairs], np.int64), np.array([c for _, c in pairs], np.int64)


def assign_pairs(pairs: list[tuple[int, int, float]], limit: float = np.inf) -> list[tuple[int, int]]:
    """The same problem given as its allowed pairs (row, col, cost), every cost finite and below ``limit``:
    the tracker's gated cost matrices hold a few allowed pairs per row, so plain Python on the pair list is cheaper
    than numpy calls on the matrix. Returns the chosen (row, col) pairs, rows ascending."""
    # Fast paths, the common cases: when every row's cheapest column is a different column, those pairs are the
    # answer (every row matched, each at its least cost: nothing has more pairs or costs less; with a finite limit
    # an unmatched row would cost limit/2 twice, more than any allowed pair); the same for every column's cheapest
    # row. Objects apart (each pair alone), and a detection two tracks can reach while each track has a
    # detection of its own, end here.
    # Plain loops over dicts (no dict.get, set or sorted() on this path, which most frames take: right after the
    # invoke each such builtin's code costs 1-9 us the first time in a frame; bench/README.md, "Cost").
    best: dict[int, tuple[float, int]] = {}      # row -> (its least cost, that column)
    ordered = True                               # rows first met in ascending order (the tracker's pairs are)
    last = None
    for r, c, v in pairs:
        if r in best:
            if v < best[r][0]:
                best[r] = (v, c)
        else:
            best[r] = (v, c)
            if last is not None and r < last:
                ordered = False
            last = r
    cols: dict[int, int] = {}
    out = []
    for r in best:
        c = best[r][1]
        if c in cols:
            break
        cols[c] = r
        out.append((r, c))
    else:
        if not ordered:
            out.sort()
        return out
    best = {}
    for r, c, v in pairs:
        if c in best:
            if v < best[c][0]:
                best[c] = (v, r)
        else:
            best[c] = (v, r)
    rows: dict[int, int] = {}
    out = []
    for c in best:
        r = best[c][1]
        if r in rows:
            break
        rows[r] = c
        out.append((r, c))
    else:
        out.sort()
        return out
    return _assign_general(pairs, limit)


def _assign_general(pairs: list[tuple[int, int, float]], limit: float) -> list[tuple[int, int]]:
    """``assign_pairs`` without its fast paths: 1 x 1 components, stars, then every other component exactly."""
    row_deg: dict[int, int] = {}
    col_deg: dict[int, int] = {}
    for r, c, _v in pairs:
        row_deg[r] = row_deg.get(r, 0) + 1
        col_deg[c] = col_deg.get(c, 0) + 1
    chosen: list[tuple[int, int]] = []
    rest: dict[tuple[int, int], float] = {}
    shared_rows: set[int] = set()     # rows that reach a column some other row wants too
    shared_cols: set[int] = set()
    for r, c, v in pairs:
        if row_deg[r] == 1 and col_deg[c] == 1:         # a 1 x 1 component: its own answer
            chosen.append((r, c))
        else:
            rest[r, c] = v
            if col_deg[c] > 1:
                shared_rows.add(r)
            if row_deg[r] > 1:
                shared_cols.add(c)
    # stars: a column whose rows want nothing else takes its cheapest row (ties: the lowest), and the same for a
    # row whose columns no other row wants; what is left goes to the components
    col_star: dict[int, tuple[float, int]] = {}
    row_star: dict[int, tuple[float, int]] = {}
    others: dict[tuple[int, int], float] = {}
    for (r, c), v in rest.items():
        if c not in shared_cols:
            best = col_star.get(c)
            if best is None or (v, r) < best:
                col_star[c] = (v, r)
        elif r not in shared_rows:
            best = row_star.get(r)
            if best is None or (v, c) < best:
                row_star[r] = (v, c)
        else:
            others[r, c] = v
    chosen.extend((r, c) for c, (_v, r) in col_star.items())
    chosen.extend((r, c) for r, (_v, c) in row_star.items())
    for comp_rows, comp_cols in _components([r for r, _c in others], [c for _r, c in others]):
        chosen.extend(_solve_component(others, comp_rows, comp_cols, limit))
    chosen.sort()
    return chosen


def _components(pair_r: list[int], pair_c: list[int]):
    """Connected components (sorted row indices, sorted column indices) of the allowed pairs."""
    cols_of: dict[int, list[int]] = {}
    rows_of: dict[int, list[int]] = {}
    for r, c in zip(pair_r, pair_c):
        cols_of.setdefault(r, []).append(c)
        rows_of.setdefault(c, []).append(r)
    todo = set(cols_of)
    while todo:
        start = todo.pop()
        comp_r, comp_c = {start}, set()
        stack = [start]
        while stack:
            for c in cols_of[stack.pop()]:
                if c not in comp_c:
                    comp_c.add(c)
                    for r in rows_of[c]:
                        if r not in comp_r:
                            comp_r.add(r)
                            todo.discard(r)
                            stack.append(r)
        yield sorted(comp_r), sorted(comp_c)


def _solve_component(values: dict[tuple[int, int], float], rows: list[int], cols: list[int],
                     limit: float) -> list[tuple[int, int]]:
    """One component (``values``: cost of every allowed pair). Forbidden pairs get the cap: with a finite limit the
    cap is the limit itself (a pair at the limit is as good as leaving its row and column unmatched, limit/2 each);
    with an infinite limit the cap exceeds anything the allowed pairs could save, so the most pairs win, then the
    cheapest. Plain Python: components are a few rows and columns, where numpy's per-call overhead dominates."""
    if len(rows) == 1:          # a star: one row allowed to several columns (all of them) takes the cheapest
        r = rows[0]
        return [(r, min(cols, key=lambda c: values[r, c]))]
    if len(cols) == 1:
        c = cols[0]
        return [(min(rows, key=lambda r: values[r, c]), c)]
    sub = [[values.get((r, c)) for c in cols] for r in rows]
    if limit != float("inf"):
        cap = float(limit)
    else:
        finite = [v for row in sub for v in row if v is not None]
        hi, lo = max(finite), min(finite)
        cap = hi + (hi - lo + 1.0) * (min(len(rows), len(cols)) + 1)
    a = [[cap if v is None else v for v in row] for row in sub]
    solve = _exhaustive if min(len(rows), len(cols)) <= 3 and max(len(rows), len(cols)) <= 4 else _hungarian
    if len(rows) <= len(cols):
        chosen = solve(a)
    else:
        chosen = [(i, j) for j, i in solve([list(col) for col in zip(*a)])]
    return [(rows[i], cols[j]) for i, j in chosen if sub[i][j] is not None]


def _exhaustive(a: list[list[float]]) -> list[tuple[int, int]]:
    """Every assignment of the rows to distinct columns (rows <= columns <= 4: at most 24), the cheapest; for the
    small components tracking meets this is several times faster than the Hungarian method in Python."""
    n = len(a)
    best, best_cols = float("inf"), None
    for cols in permutations(range(len(a[0])), n):
        total = 0.0
        for i, j in enumerate(cols):
            total += a[i][j]
        if total < best:
            best, best_cols = total, cols
    return list(enumerate(best_cols))


def hungarian(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of every row of ``a`` (n x m, n <= m, all finite) to a distinct column:
    (rows, cols) index arrays, rows ascending."""
    a = np.asarray(a, np.float64)
    if a.shape[0] > a.shape[1]:
        raise ValueError(f"hungarian needs rows <= columns, got {a.shape[0]} x {a.shape[1]}")
    pairs = _hungarian(a.tolist())
    return np.array([r for r, _ in pairs], np.int64), np.array([c for _, c in pairs], np.int64)


def _hungarian(a: list[list[float]]) -> list[tuple[int, int]]:
    """Shortest augmenting paths with row/column potentials u, v (reduced costs a[i][j] - u[i] - v[j] >= 0 on
    every column; zero on the chosen pairs); column 0 is a virtual column that starts every search. Plain Python
    on lists: for the component sizes tracking meets (a few rows) it is several times faster than numpy calls.
    Returns (row, col) pairs sorted by row; needs rows <= columns."""
    n, m = len(a), len(a[0])
    inf = float("inf")
    u = [0.0] * (n + 1)
    v = [0.0] * (m + 1)
    owner = [0] * (m + 1)          # owner[j] = row (1-based) assigned to column j, 0 = free
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = owner[j0]
            row, ui0 = a[i0 - 1], u[i0]
            delta, j1 = inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = row[j - 1] - ui0 - v[j]
                    if reduced < minv[j]:
                        minv[j], way[j] = reduced, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    return sorted((owner[j] - 1, j - 1) for j in range(1, m + 1) if owner[j])
