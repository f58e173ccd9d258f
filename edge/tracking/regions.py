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
from dataclasses import dataclass, field
from typing import Optional, Sequence

from edge.tracking.config import CountingLine, ZoneRule
from edge.tracking.tracker import FrameTracks, TrackView
from edge.zones import cross, point_in_polygon, segments_intersect

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


@dataclass
class _ZoneState:
    inside: bool = False
    streak: int = 0             # consecutive frames whose raw status differs from ``inside``


@dataclass
class _LineState:
    side: int = 0               # -1 left of start -> end, +1 right, 0 not yet known
    point: tuple[float, float] = (0.0, 0.0)   # last point seen clearly on ``side``


@dataclass
class _TrackRegions:
    zones: dict[str, _ZoneState] = field(default_factory=dict)
    lines: dict[str, _LineState] = field(default_factory=dict)
    entered: list[str] = field(default_factory=list)                       # zones ever entered, in order
    crossings: list[tuple[str, str, float]] = field(default_factory=list)  # (line, direction, ts)
    version: int = 0                                                       # +1 on every zone or line change


def anchor_point(view: TrackView, anchor: str) -> tuple[float, float, float, float]:
    """(x, y, std x, std y) of the track's centre or bottom centre."""
    x1, y1, x2, y2 = view.box
    scx, scy, _sw, sh = view.box_sigma
    if anchor == "bottom":
        return (x1 + x2) / 2.0, y2, scx, math.hypot(scy, sh / 2.0)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, scx, scy


class _Zone:
    """A zone rule with what every frame needs precomputed: the vertex list and its bounding rows (a point above
    or below the polygon, or right of it, is outside without the ray cast)."""
    __slots__ = ("name", "polygon", "classes", "anchor", "inertia", "y_min", "y_max", "x_max")

    def __init__(self, rule: ZoneRule):
        self.name, self.anchor, self.inertia = rule.name, rule.anchor, rule.inertia
        self.polygon = [tuple(v) for v in rule.polygon]
        self.classes = None if rule.classes is None else frozenset(rule.classes)
        ys = [v[1] for v in self.polygon]
        self.y_min, self.y_max = min(ys), max(ys)
        self.x_max = max(v[0] for v in self.polygon) + 1e-9

    def contains(self, x: float, y: float) -> bool:
        if y < self.y_min or y > self.y_max or x > self.x_max:
            return False
        return point_in_polygon(x, y, self.polygon)


class _Line:
    __slots__ = ("name", "a", "b", "classes", "anchor", "margin", "length", "nx", "ny")

    def __init__(self, rule: CountingLine):
        self.name, self.anchor, self.margin = rule.name, rule.anchor, rule.margin_sigmas
        self.a, self.b = tuple(rule.start), tuple(rule.end)
        self.classes = None if rule.classes is None else frozenset(rule.classes)
        a, b = self.a, self.b
        self.length = math.hypot(b[0] - a[0], b[1] - a[1])
        self.nx, self.ny = -(b[1] - a[1]) / self.length, (b[0] - a[0]) / self.length   # unit normal


class Regions:
    """Zone and line state of every track of one camera; ``update`` once per tracker frame."""

    def __init__(self, zones: Sequence[ZoneRule] = (), lines: Sequence[CountingLine] = ()):
        self.zones = list(zones)
        self.lines = list(lines)
        self._zone_rules = [_Zone(z) for z in self.zones]
        self._line_rules = [_Line(line) for line in self.lines]
        self._tracks: dict[int, _TrackRegions] = {}
        self._ended: dict[int, _TrackRegions] = {}     # tracks that ended at the last update (kept one frame)

    def update(self, frame: FrameTracks) -> list[RegionEvent]:
        events: list[RegionEvent] = []
        if self._zone_rules or self._line_rules:
            tracks = self._tracks
            for view in frame.tracks:
                if view.matched:
                    state = tracks.get(view.id)
                    if state is None:
                        state = tracks[view.id] = _TrackRegions()
                    anchors = {}
                    if self._zone_rules:
                        self._zones(view, state, frame.ts, events, anchors)
                    if self._line_rules:
                        self._lines(view, state, frame.ts, events, anchors)
        self._ended = {}
        for view in frame.ended:
            state = self._tracks.pop(view.id, None)
            if state is None:
                continue
            for name, z in state.zones.items():
                if z.inside:
                    z.inside = False
                    state.version += 1
                    events.append(RegionEvent(LEFT, name, view.id, view.label, view.last_seen_ts))
            self._ended[view.id] = state
        return events

    def summary(self, track_id: int) -> tuple[int, tuple[str, ...], int]:
        """(version, zones now, crossings so far) of a track; the version changes whenever either changes."""
        state = self._state(track_id)
        if state is None:
            return 0, (), 0
        return state.version, tuple(n for n, z in state.zones.items() if z.inside), len(state.crossings)

    def _state(self, track_id: int) -> _TrackRegions | None:
        return self._tracks.get(track_id) or self._ended.get(track_id)

    def current_zones(self, track_id: int) -> list[str]:
        """Zones the track is in now (none once it has ended)."""
        state = self._state(track_id)
        return [] if state is None else [n for n, z in state.zones.items() if z.inside]

    def entered_zones(self, track_id: int) -> list[str]:
        """Zones the track has entered so far, first entry first (still known in the frame the track ends)."""
        state = self._state(track_id)
        return [] if state is None else list(state.entered)

    def crossings(self, track_id: int) -> list[tuple[str, str, float]]:
        """(line, direction, ts) of every crossing so far (still known in the frame the track ends)."""
        state = self._state(track_id)
        return [] if state is None else list(state.crossings)

    # ------------------------------------------------------------------
    def _zones(self, view: TrackView, state: _TrackRegions, ts: float, events: list[RegionEvent],
               anchors: dict) -> None:
        zones = state.zones
        for zone in self._zone_rules:
            z = zones.get(zone.name)
            if z is None:
                z = zones[zone.name] = _ZoneState()
            applies = zone.classes is None or view.label in zone.classes
            if applies:
                point = anchors.get(zone.anchor)
                if point is None:
                    point = anchors[zone.anchor] = anchor_point(view, zone.anchor)
                raw = zone.contains(point[0], point[1])
            else:
                raw = False
            if raw == z.inside:
                z.streak = 0
                continue
            z.streak += 1
            if z.streak >= zone.inertia or not applies:
                z.inside, z.streak = raw, 0
                state.version += 1
                events.append(RegionEvent(ENTERED if raw else LEFT, zone.name, view.id, view.label, ts))
                if raw and zone.name not in state.entered:
                    state.entered.append(zone.name)

    def _lines(self, view: TrackView, state: _TrackRegions, ts: float, events: list[RegionEvent],
               anchors: dict) -> None:
        for line in self._line_rules:
            if line.classes is not None and view.label not in line.classes:
                continue
            a, b = line.a, line.b
            point = anchors.get(line.anchor)
            if point is None:
                point = anchors[line.anchor] = anchor_point(view, line.anchor)
            x, y, sx, sy = point
            distance = cross(a, b, (x, y)) / line.length                 # signed, > 0 right of a -> b
            std = math.hypot(line.nx * sx, line.ny * sy)
            if abs(distance) <= line.margin * std or distance == 0.0:
                continue                                                # too close to tell the side
            side = 1 if distance > 0 else -1
            s = state.lines.get(line.name)
            if s is None:
                s = state.lines[line.name] = _LineState()
            if s.side != 0 and side != s.side and segments_intersect(s.point, (x, y), a, b):
                direction = "in" if side > 0 else "out"
                events.append(RegionEvent(CROSSED, line.name, view.id, view.label, ts, direction))
                state.crossings.append((line.name, direction, ts))
                state.version += 1
            s.side, s.point = side, (x, y)
