"""Zone and counting-line geometry in frame-normalized coordinates (x right, y down, both in [0, 1]).

Used by the detection filter (``Settings.zones``: keep a detection whose box centre lies in a zone) and by the
tracker's regions (``edge.tracking.regions``: entered / left / crossed). Pure Python, no numpy.
"""
from __future__ import annotations

from typing import Sequence

Point = Sequence[float]


def point_in_polygon(x: float, y: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Even-odd ray casting; points on an edge may fall either way."""
    inside = False
    n = len(polygon)
    j = n - 1
    for i in range(n):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def zones_of(box: Sequence[float], zones) -> list[str]:
    """Names of the zones (objects with .name and .polygon) containing the centre of ``box`` (x1, y1, x2, y2)."""
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return [z.name for z in zones if point_in_polygon(cx, cy, z.polygon)]


# --------------------------------------------------------------------------- lines and segments
def cross(a: Point, b: Point, p: Point) -> float:
    """z of (b - a) x (p - a): > 0 when p lies on one side of the directed line a -> b, < 0 on the other, 0 on it.

    With y pointing down (image coordinates), > 0 means p is to the right of a -> b as seen on screen."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when the closed segments p1-p2 and q1-q2 share at least one point (touching counts)."""
    d1, d2 = cross(q1, q2, p1), cross(q1, q2, p2)
    d3, d4 = cross(p1, p2, q1), cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return ((d1 == 0 and _on_segment(q1, q2, p1)) or (d2 == 0 and _on_segment(q1, q2, p2))
            or (d3 == 0 and _on_segment(p1, p2, q1)) or (d4 == 0 and _on_segment(p1, p2, q2)))


def signed_area(polygon: Sequence[Point]) -> float:
    """Shoelace area; its sign tells the vertex order."""
    n = len(polygon)
    return 0.5 * sum(polygon[i][0] * polygon[(i + 1) % n][1] - polygon[(i + 1) % n][0] * polygon[i][1]
                     for i in range(n))


# --------------------------------------------------------------------------- validation
def out_of_range(points: Sequence[Point]) -> str | None:
    """A sentence naming the first vertex outside [0, 1] x [0, 1], or None."""
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return (f"point {i} ({x}, {y}) is outside [0, 1]: use frame-normalized coordinates "
                    "(pixel x / frame width, pixel y / frame height)")
    return None


def checked_zone_polygon(polygon: Sequence[Point], name) -> Sequence[Point]:
    """``polygon`` if it is a usable zone (inside the frame, >= 3 points, edges not crossing), else ValueError
    naming the zone: the validator of every config that declares zones."""
    problem = out_of_range(polygon) or polygon_problem(polygon)
    if problem:
        raise ValueError(f"zone {name!r}: {problem}")
    return polygon


def polygon_problem(polygon: Sequence[Point], min_area: float = 1e-6) -> str | None:
    """Why ``polygon`` cannot be a zone (fewer than 3 vertices, a repeated vertex, edges that cross, no area,
    an edge folding back onto the previous one), or None for a simple polygon. Vertices and edges count from 0;
    edge i joins vertex i to vertex i + 1."""
    n = len(polygon)
    if n < 3:
        return f"a polygon needs at least 3 vertices, got {n}"
    for i in range(n):
        if tuple(polygon[i]) == tuple(polygon[(i + 1) % n]):
            return f"vertices {i} and {(i + 1) % n} are the same point {_fmt(polygon[i])}: remove one"
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n - (1 if i == 0 else 0)):      # non-neighbouring edges only
            if segments_intersect(*edges[i], *edges[j]):
                return (f"edges {i} ({_fmt(edges[i][0])}-{_fmt(edges[i][1])}) and {j} ({_fmt(edges[j][0])}-"
                        f"{_fmt(edges[j][1])}) cross: the polygon intersects itself; list the vertices in order "
                        "around the zone")
    if abs(signed_area(polygon)) < min_area:
        return "the vertices are (nearly) on one line: the polygon has no area"
    for i in range(n):      # neighbours share vertex i + 1; collinear and pointing the same way = a zero-width spike
        a, v, b = polygon[i], polygon[(i + 1) % n], polygon[(i + 2) % n]
        if cross(a, v, b) == 0 and (a[0] - v[0]) * (b[0] - v[0]) + (a[1] - v[1]) * (b[1] - v[1]) > 0:
            return f"edges {i} and {(i + 1) % n} fold back onto each other at vertex {(i + 1) % n} {_fmt(v)}"
    return None


def segment_problem(a: Point, b: Point, min_length: float = 1e-3) -> str | None:
    """Why a-b cannot be a counting line (too short), or None."""
    length = ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5
    if length < min_length:
        return f"the line from {_fmt(a)} to {_fmt(b)} has length {length:.3g} (< {min_length}): give two distinct points"
    return None


def _fmt(p: Point) -> str:
    return f"({p[0]:g}, {p[1]:g})"
