"""Zones and counting lines applied to tracks: entered / left / crossed, from the filter's positions.

* A zone reports a track entering once its anchor point (box centre or bottom centre) has been inside for
  ``inertia`` consecutive observed frames, and leaving after as many frames outside (or when the track ends).
* A line reports a crossing when the anchor point changes side and the path from the last point on the old side
  to the new point crosses the segment itself (passing beyond an end is not a crossing). A side only counts
  when the point is farther from the line than ``margin_sigmas`` of its own std (the track's uncertainty along
  the line's normal), so a track jittering on the line does not count back and forth.

Only observed frames move a track here: a lost track's prediction neither enters, leaves nor crosses anything;
when the track is found again on the other side of a line, the crossing is reported then.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from edge.tracking.config import CountingLine, ZoneRule
from edge.tracking.tracker import CONFIRMED, FrameTracks, TrackView
from edge.zones import point_in_polygon, segments_intersect

ENTERED, LEFT, CROSSED = "entered", "left", "crossed"


@dataclass(frozen=True)
class RegionEvent:
    kind: str                   # entered, left or crossed
    region: str                 # zone or line name
    track_id: int
    label: str
    ts: float
    direction: Optional[str] = None   # crossed: "in" (left -> right of start -> end on screen) or "out"

    def to_message(self) -> dict:
        msg = {"type": self.kind, ("line" if self.kind == CROSSED else "zone"): self.region,
               "track": self.track_id, "label": self.label, "ts": round(self.ts, 3)}
        if self.direction is not None:
            msg["direction"] = self.direction
        return msg


class _TrackRegions:
    """One track's zone and line state; lists indexed like the rules."""
    __slots__ = ("inside", "streak", "side", "point", "entered", "crossings", "version")

    def __init__(self, zones: int, lines: int):
        self.inside = [False] * zones     # reported status per zone
        self.streak = [0] * zones         # consecutive frames whose raw status differs from ``inside``
        self.side = [0] * lines           # -1 left of start -> end, +1 right, 0 not yet known
        self.point: list[tuple[float, float]] = [(0.0, 0.0)] * lines   # last point seen clearly on ``side``
        self.entered: list[str] = []      # zones ever entered, in order
        self.crossings: list[tuple[str, str, float]] = []   # (line, direction, ts)
        self.version = 0                  # +1 on every zone or line change


def anchor_point(view: TrackView, anchor: str) -> tuple[float, float, float, float]:
    """(x, y, std x, std y) of the track's centre or bottom centre."""
    x1, y1, x2, y2 = view.box
    scx, scy, _sw, sh = view.box_sigma
    if anchor == "bottom":
        return (x1 + x2) / 2.0, y2, scx, math.hypot(scy, sh / 2.0)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, scx, scy


class _Zone:
    """A zone rule with what every frame needs precomputed: the vertex list and its bounding box (a point outside
    it is outside without the ray cast); for an axis-parallel rectangle, ``rect``: the ray cast's answer is then
    x_min <= x < x_max and y_min <= y < y_max exactly (its horizontal edges never count, its vertical edges cross
    the ray at their own x), so no ray cast at all."""
    __slots__ = ("name", "polygon", "classes", "bottom", "inertia", "x_min", "x_max", "y_min", "y_max", "rect")

    def __init__(self, rule: ZoneRule):
        self.name, self.bottom, self.inertia = rule.name, rule.anchor == "bottom", rule.inertia
        self.polygon = poly = [tuple(v) for v in rule.polygon]
        self.classes = None if rule.classes is None else frozenset(rule.classes)
        xs, ys = [v[0] for v in poly], [v[1] for v in poly]
        self.x_min, self.x_max, self.y_min, self.y_max = min(xs) - 1e-9, max(xs) + 1e-9, min(ys), max(ys)
        edges = list(zip(poly, poly[1:] + poly[:1]))
        parallel = all((a[0] == b[0]) != (a[1] == b[1]) for a, b in edges)      # each edge vertical or horizontal
        self.rect = (min(xs), max(xs), min(ys), max(ys)) if len(poly) == 4 and parallel else None

    def contains(self, x: float, y: float) -> bool:
        if self.rect is not None:
            x0, x1, y0, y1 = self.rect
            return x0 <= x < x1 and y0 <= y < y1
        if y < self.y_min or y > self.y_max or x > self.x_max or x < self.x_min:
            return False
        return point_in_polygon(x, y, self.polygon)


class _Line:
    __slots__ = ("name", "a", "b", "classes", "bottom", "margin", "length", "nx", "ny", "dx", "dy")

    def __init__(self, rule: CountingLine):
        self.name, self.bottom, self.margin = rule.name, rule.anchor == "bottom", rule.margin_sigmas
        self.a, self.b = tuple(rule.start), tuple(rule.end)
        self.classes = None if rule.classes is None else frozenset(rule.classes)
        a, b = self.a, self.b
        self.dx, self.dy = b[0] - a[0], b[1] - a[1]
        self.length = math.hypot(self.dx, self.dy)
        self.nx, self.ny = -self.dy / self.length, self.dx / self.length   # unit normal


class Regions:
    """Zone and line state of every track of one camera; ``update`` once per tracker frame."""

    def __init__(self, zones: Sequence[ZoneRule] = (), lines: Sequence[CountingLine] = ()):
        self.zones = list(zones)
        self.lines = list(lines)
        self._zone_rules = [_Zone(z) for z in self.zones]
        self._line_rules = [_Line(line) for line in self.lines]
        # what update reads per track and rule, one tuple per rule (one unpacking instead of a dozen attributes)
        self._zone_terms = [(k, z.classes, z.rect, z.bottom, z.inertia, z.name, z)
                            for k, z in enumerate(self._zone_rules)]
        self._line_terms = [(k, ln.classes, ln.bottom, ln.a[0], ln.a[1], ln.dx, ln.dy, ln.length, ln.margin, ln.nx,
                             ln.ny, ln.a, ln.b, ln.name) for k, ln in enumerate(self._line_rules)]
        self._tracks: dict[int, _TrackRegions] = {}
        self._ended: dict[int, _TrackRegions] = {}     # tracks that ended at the last update (kept one frame)

    def update(self, frame: FrameTracks) -> list[RegionEvent]:
        """Region events of one tracker frame. One pass per matched track with the anchor points computed once
        and the zone and line tests written out (no call per rule and track)."""
        events: list[RegionEvent] = []
        zones, lines = self._zone_rules, self._line_rules
        if zones or lines:
            tracks = self._tracks
            ts = frame.ts
            hypot = math.hypot
            zone_terms, line_terms = self._zone_terms, self._line_terms
            for view in frame.tracks:
                if view.state != CONFIRMED:
                    continue
                state = tracks.get(view.id)
                if state is None:
                    state = tracks[view.id] = _TrackRegions(len(zones), len(lines))
                label = view.label
                x1, y1, x2, y2 = view.box
                scx, scy, _sw, sh = view.box_sigma
                x = (x1 + x2) / 2.0
                y = (y1 + y2) / 2.0
                bottom_std = None
                for k, classes, rect, bottom, inertia, name, zone in zone_terms:
                    applies = classes is None or label in classes
                    if rect is None:
                        raw = applies and zone.contains(x, y2 if bottom else y)
                    else:                               # zone.contains written out for a rectangle
                        py = y2 if bottom else y
                        raw = applies and rect[0] <= x < rect[1] and rect[2] <= py < rect[3]
                    inside = state.inside
                    if raw == inside[k]:
                        state.streak[k] = 0
                        continue
                    state.streak[k] += 1
                    if state.streak[k] >= inertia or not applies:
                        inside[k], state.streak[k] = raw, 0
                        state.version += 1
                        events.append(RegionEvent(ENTERED if raw else LEFT, name, view.id, label, ts))
                        if raw and name not in state.entered:
                            state.entered.append(name)
                for k, classes, bottom, ax, ay, dx, dy, length, margin, nx, ny, a, b, name in line_terms:
                    if classes is not None and label not in classes:
                        continue
                    if bottom:
                        py = y2
                        if bottom_std is None:
                            bottom_std = hypot(scy, sh / 2.0)
                        sy = bottom_std
                    else:
                        py, sy = y, scy
                    distance = (dx * (py - ay) - dy * (x - ax)) / length                # > 0 right of a -> b
                    if abs(distance) <= margin * hypot(nx * scx, ny * sy) or distance == 0.0:
                        continue                                                # too close to tell the side
                    side = 1 if distance > 0 else -1
                    before = state.side[k]
                    if before != 0 and side != before and segments_intersect(state.point[k], (x, py), a, b):
                        direction = "in" if side > 0 else "out"
                        events.append(RegionEvent(CROSSED, name, view.id, label, ts, direction))
                        state.crossings.append((name, direction, ts))
                        state.version += 1
                    state.side[k], state.point[k] = side, (x, py)
        self._ended = {}
        for view in frame.ended:
            state = self._tracks.pop(view.id, None)
            if state is None:
                continue
            for k, inside in enumerate(state.inside):
                if inside:
                    state.inside[k] = False
                    state.version += 1
                    events.append(RegionEvent(LEFT, zones[k].name, view.id, view.label, view.last_seen_ts))
            self._ended[view.id] = state
        return events

    def version(self, track_id: int) -> int:
        """A number that changes whenever the track's zones or crossings change (0 before any)."""
        state = self._tracks.get(track_id) or self._ended.get(track_id)
        return 0 if state is None else state.version

    def summary(self, track_id: int) -> tuple[int, tuple[str, ...], int]:
        """(version, zones now, crossings so far) of a track; the version changes whenever either changes."""
        state = self._state(track_id)
        if state is None:
            return 0, (), 0
        return state.version, tuple(self._current(state)), len(state.crossings)

    def _state(self, track_id: int) -> _TrackRegions | None:
        return self._tracks.get(track_id) or self._ended.get(track_id)

    def current_zones(self, track_id: int) -> list[str]:
        """Zones the track is in now (none once it has ended)."""
        state = self._state(track_id)
        return [] if state is None else self._current(state)

    def _current(self, state: _TrackRegions) -> list[str]:
        return [zone.name for zone, inside in zip(self._zone_rules, state.inside) if inside]

    def entered_zones(self, track_id: int) -> list[str]:
        """Zones the track has entered so far, first entry first (still known in the frame the track ends)."""
        state = self._state(track_id)
        return [] if state is None else list(state.entered)

    def crossings(self, track_id: int) -> list[tuple[str, str, float]]:
        """(line, direction, ts) of every crossing so far (still known in the frame the track ends)."""
        state = self._state(track_id)
        return [] if state is None else list(state.crossings)
