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


def anchor_point(view: TrackView, anchor: str) -> tuple[float, float, float, float]:
    """(x, y, std x, std y) of the track's centre or bottom centre."""
    x1, y1, x2, y2 = view.box
    scx, scy, _sw, sh = view.box_sigma
    if anchor == "bottom":
        return (x1 + x2) / 2.0, y2, scx, math.hypot(scy, sh / 2.0)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, scx, scy


class Regions:
    """Zone and line state of every track of one camera; ``update`` once per tracker frame."""

    def __init__(self, zones: Sequence[ZoneRule] = (), lines: Sequence[CountingLine] = ()):
        self.zones = list(zones)
        self.lines = list(lines)
        self._tracks: dict[int, _TrackRegions] = {}
        self._ended: dict[int, _TrackRegions] = {}     # tracks that ended at the last update (kept one frame)

    def update(self, frame: FrameTracks) -> list[RegionEvent]:
        events: list[RegionEvent] = []
        for view in frame.tracks:
            if view.matched:
                state = self._tracks.setdefault(view.id, _TrackRegions())
                self._zones(view, state, frame.ts, events)
                self._lines(view, state, frame.ts, events)
        self._ended = {}
        for view in frame.ended:
            state = self._tracks.pop(view.id, None)
            if state is None:
                continue
            for name, z in state.zones.items():
                if z.inside:
                    z.inside = False
                    events.append(RegionEvent(LEFT, name, view.id, view.label, view.last_seen_ts))
            self._ended[view.id] = state
        return events

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
    def _zones(self, view: TrackView, state: _TrackRegions, ts: float, events: list[RegionEvent]) -> None:
        for zone in self.zones:
            z = state.zones.setdefault(zone.name, _ZoneState())
            applies = zone.classes is None or view.label in zone.classes
            x, y, _sx, _sy = anchor_point(view, zone.anchor)
            raw = applies and point_in_polygon(x, y, zone.polygon)
            if raw == z.inside:
                z.streak = 0
                continue
            z.streak += 1
            if z.streak >= zone.inertia or not applies:
                z.inside, z.streak = raw, 0
                events.append(RegionEvent(ENTERED if raw else LEFT, zone.name, view.id, view.label, ts))
                if raw and zone.name not in state.entered:
                    state.entered.append(zone.name)

    def _lines(self, view: TrackView, state: _TrackRegions, ts: float, events: list[RegionEvent]) -> None:
        for line in self.lines:
            if line.classes is not None and view.label not in line.classes:
                continue
            a, b = line.start, line.end
            x, y, sx, sy = anchor_point(view, line.anchor)
            length = math.hypot(b[0] - a[0], b[1] - a[1])
            distance = cross(a, b, (x, y)) / length                     # signed, > 0 right of a -> b
            nx, ny = -(b[1] - a[1]) / length, (b[0] - a[0]) / length   # unit normal
            std = math.hypot(nx * sx, ny * sy)
            if abs(distance) <= line.margin_sigmas * std or distance == 0.0:
                continue                                                # too close to tell the side
            side = 1 if distance > 0 else -1
            s = state.lines.setdefault(line.name, _LineState())
            if s.side != 0 and side != s.side and segments_intersect(s.point, (x, y), a, b):
                direction = "in" if side > 0 else "out"
                events.append(RegionEvent(CROSSED, line.name, view.id, view.label, ts, direction))
                state.crossings.append((line.name, direction, ts))
            s.side, s.point = side, (x, y)
