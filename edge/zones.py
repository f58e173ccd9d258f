"""Polygon zones: keep a detection when its box centre lies inside at least one zone (frame-normalized)."""
from __future__ import annotations

from typing import Sequence


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
