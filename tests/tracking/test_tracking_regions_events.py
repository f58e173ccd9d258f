"""Zones, counting lines, events and counts on scripted scenes; bad geometry refused naming the zone or line."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from tracking_helpers import det, run

from edge.config import ConfigError, load
from edge.tracking import (EventBuilder, Regions, Tracker, TrackerConfig, TrackingConfig, ZoneRule, count_changes,
                           object_counts)
from edge.zones import polygon_problem, segments_intersect

LEFT_HALF = {"name": "left-half", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}


def drive(cfg: TrackingConfig, frames, fps: float = 10.0):
    """Tracker -> regions -> events over ``frames``; returns (region events, event bodies, counts) per frame."""
    tracker = Tracker(cfg.tracker)
    regions = Regions(cfg.zones, cfg.lines)
    events = EventBuilder(regions, cfg.score_delta)
    out = []
    for frame in run(tracker, frames, fps):
        region_events = regions.update(frame)
        out.append((region_events, events.update(frame), object_counts(frame, regions)))
    return out


def walk_right(y=0.5, x0=0.2, step=0.025, n=30, **kw):
    """One object walking right; it stops being detected after ``n`` frames (it walked out)."""
    return [[det(x0 + step * i, y, **kw)] for i in range(n)] + [[] for _ in range(6)]


def test_a_scripted_walk_produces_frigate_like_events_in_order():
    cfg = TrackingConfig(zones=[dict(LEFT_HALF, inertia=2)],
                         lines=[{"name": "gate", "start": [0.7, 0.8], "end": [0.7, 0.2]}])
    out = drive(cfg, walk_right())
    region = [(i, e.kind, e.region, e.direction) for i, (evs, _, _) in enumerate(out) for e in evs]
    bodies = [(i, b) for i, (_, bs, _) in enumerate(out) for b in bs]
    # entered once confirmed (3 hits) and inside 2 frames; left 2 frames after the centre passes x = 0.5 (frame 12);
    # crossed when passing x = 0.7 (frame 20), upwards line: moving right goes from its left to its right = "in"
    assert [r[1:] for r in region] == [("entered", "left-half", None), ("left", "left-half", None),
                                       ("crossed", "gate", "in")]
    assert region[0][0] == 3 and 12 <= region[1][0] <= 15 and 19 <= region[2][0] <= 22
    kinds = [(b["type"], tuple(b.get("changed", ()))) for _, b in bodies]
    assert kinds == [("new", ()), ("update", ("zones",)), ("update", ("zones",)), ("update", ("lines",)), ("end", ())]
    new, entered, left, crossed, end = (b for _, b in bodies)
    assert new["label"] == "square" and new["end"] is None and new["zones"] == []
    assert entered["zones"] == ["left-half"] and entered["entered_zones"] == ["left-half"]
    assert left["zones"] == [] and left["entered_zones"] == ["left-half"]
    assert crossed["lines"] == {"gate": {"in": 1, "out": 0}}
    assert end["end"] == pytest.approx(1000.0 + 29 / 10.0) and end["start"] == pytest.approx(1000.0)
    assert end["lines"] == {"gate": {"in": 1, "out": 0}} and end["entered_zones"] == ["left-half"]
    assert len({b["id"] for _, b in bodies}) == 1 and end["id"].endswith(f"-{end['track']}")
    assert end["sigma_mean"] == pytest.approx(0.1) and end["best_score"] == pytest.approx(0.9)
    # the end reports where the object was last seen (x = 0.2 + 0.025 * 29), not where the lost track drifted to
    assert (end["box"][0] + end["box"][2]) / 2 == pytest.approx(0.925, abs=0.005)
    assert all(len(b["box"]) == 4 and len(b["box_sigma"]) == 4 for _, b in bodies)
    json.dumps([b for _, b in bodies])           # plain JSON types only


def test_line_direction_follows_start_to_end():
    cfg = TrackingConfig(lines=[{"name": "gate", "start": [0.7, 0.2], "end": [0.7, 0.8]}])   # pointing down
    out = drive(cfg, walk_right())
    assert [(e.kind, e.direction) for evs, _, _ in out for e in evs] == [("crossed", "out")]


def test_passing_beyond_the_end_of_a_line_is_not_a_crossing():
    cfg = TrackingConfig(lines=[{"name": "gate", "start": [0.7, 0.2], "end": [0.7, 0.8]}])
    assert not [e for evs, _, _ in drive(cfg, walk_right(y=0.9)) for e in evs]


def test_jitter_on_a_line_is_not_counted_back_and_forth():
    frames = [[det(0.7 + (0.003 if i % 2 else -0.003), 0.5, sigma=0.004)] for i in range(40)]
    def crossings(margin):
        cfg = TrackingConfig(lines=[{"name": "gate", "start": [0.7, 0.2], "end": [0.7, 0.8],
                                     "margin_sigmas": margin}])
        return sum(e.kind == "crossed" for evs, _, _ in drive(cfg, frames) for e in evs)
    assert crossings(0.0) > 5, "without the margin the jitter counts (so the guard below is doing the work)"
    assert crossings(1.0) == 0


def test_zone_classes_and_anchor():
    discs_only = dict(LEFT_HALF, name="discs", classes=["disc"])
    cfg = TrackingConfig(zones=[discs_only])
    assert not [e for evs, _, _ in drive(cfg, walk_right()) for e in evs]                  # a square
    assert [e.kind for evs, _, _ in drive(cfg, walk_right(cls=1)) for e in evs] == ["entered", "left"]
    # a band at the bottom of the frame: the centre never enters it, the bottom of the box does
    band = {"name": "floor", "polygon": [[0, 0.84], [1, 0.84], [1, 1], [0, 1]]}
    frames = [[det(0.3, 0.8, h=0.1)] for _ in range(10)]
    centre = drive(TrackingConfig(zones=[band]), frames)
    bottom = drive(TrackingConfig(zones=[dict(band, anchor="bottom")]), frames)
    assert not [e for evs, _, _ in centre for e in evs]
    assert [e.kind for evs, _, _ in bottom for e in evs] == ["entered"]


def test_counts_per_label_and_zone_and_their_changes():
    cfg = TrackingConfig(zones=[dict(LEFT_HALF, inertia=1)])
    frames = [[det(0.2, 0.3, cls=0), det(0.8, 0.3, cls=0), det(0.2, 0.7, cls=1)] for _ in range(5)]
    frames += [[det(0.8, 0.3, cls=0)] for _ in range(40)]               # two objects vanish mid-frame
    out = drive(TrackingConfig(zones=cfg.zones, tracker=TrackerConfig(max_missed=10)), frames)
    counts = [c for _, _, c in out]
    assert counts[4]["objects"] == {"disc": 1, "square": 2}
    assert counts[4]["zones"] == {"left-half": {"disc": 1, "square": 1}}
    assert counts[-1]["objects"] == {"square": 1} and counts[-1]["zones"] == {}
    assert count_changes(None, counts[4]) == {"objects/disc": 1, "objects/square": 2,
                                              "zones/left-half/disc": 1, "zones/left-half/square": 1}
    assert count_changes(counts[4], counts[-1]) == {"objects/disc": 0, "objects/square": 1,
                                                    "zones/left-half/disc": 0, "zones/left-half/square": 0}
    assert count_changes(counts[-1], counts[-1]) == {}


def test_updates_are_sent_only_on_change():
    # the score climbs 0.6 -> 0.9 slowly: an update only each time the best score rose by score_delta
    frames = [[det(0.3, 0.3, score=min(0.9, 0.6 + 0.01 * i))] for i in range(40)]
    bodies = [b for _, bs, _ in drive(TrackingConfig(score_delta=0.1), frames) for b in bs]
    assert [b["type"] for b in bodies] == ["new", "update", "update"]      # 0.9 is not 0.82 + 0.1
    assert [b["best_score"] for b in bodies] == pytest.approx([0.62, 0.72, 0.82])


# ----------------------------------------------------------------------------- geometry refused by name
@pytest.mark.parametrize("zone, message", [
    ({"name": "drive", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}, "zone 'drive': edges 0 .* and 2 .* cross"),
    ({"name": "drive", "polygon": [[0, 0], [1, 1]]}, "zone 'drive': a polygon needs at least 3 vertices, got 2"),
    ({"name": "drive", "polygon": [[0, 0], [1.5, 0], [1, 1]]}, "zone 'drive': point 1 .* is outside"),
    ({"name": "drive", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}, "zone 'drive': .* no area"),
    ({"name": "drive", "polygon": [[0, 0], [1, 0], [1, 0], [0, 1]]}, "zone 'drive': vertices 1 and 2 are the same"),
])
def test_bad_zones_are_refused_naming_the_zone(zone, message):
    with pytest.raises(ValidationError, match=message):
        TrackingConfig(zones=[zone])
    with pytest.raises(ConfigError, match=message):             # the agent's filter zones use the same rules
        load(None, {"device_id": "c", "model.path": "m", "settings.zones": [zone]})


@pytest.mark.parametrize("line, message", [
    ({"name": "gate", "start": [0.5, 0.5], "end": [0.5, 0.5]}, "line 'gate': .* has length 0"),
    ({"name": "gate", "start": [0.5, 0.5], "end": [0.5, 1.2]}, "line 'gate': point 1 .* is outside"),
])
def test_bad_lines_are_refused_naming_the_line(line, message):
    with pytest.raises(ValidationError, match=message):
        TrackingConfig(lines=[line])


def test_duplicate_names_and_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="line 'door': the name is already used by a zone"):
        TrackingConfig(zones=[dict(LEFT_HALF, name="door")],
                       lines=[{"name": "door", "start": [0, 0], "end": [1, 1]}])
    with pytest.raises(ValidationError, match="zone 'a': the name is already used by a zone"):
        TrackingConfig(zones=[dict(LEFT_HALF, name="a"), dict(LEFT_HALF, name="a")])
    with pytest.raises(ValidationError, match="inertai"):
        TrackingConfig(zones=[dict(LEFT_HALF, inertai=3)])


def test_geometry_helpers():
    assert segments_intersect((0, 0), (1, 1), (0, 1), (1, 0))
    assert segments_intersect((0, 0), (1, 0), (1, 0), (2, 1))            # touching counts
    assert not segments_intersect((0, 0), (1, 0), (0, 0.1), (1, 0.1))
    assert polygon_problem([(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.5), (0.1, 0.9)]) is None   # concave is fine


@pytest.mark.parametrize("polygon", [[[0, 0], [0.4, 0], [0.4, 1], [0, 1]],
                                     [[0.7, 0.7], [0.7, 0.3], [0.3, 0.3], [0.3, 0.7]],
                                     [[0.1, 0.2], [0.1, 0.9], [0.8, 0.9], [0.8, 0.2]]])
def test_a_rectangle_zone_answers_what_the_ray_cast_answers(polygon):
    """Axis-parallel rectangles skip the ray cast (edge.tracking.regions._Zone.rect): the same answer everywhere,
    on the edges and corners included, in both vertex orders."""
    import random

    from edge.tracking.regions import _Zone
    from edge.zones import point_in_polygon
    zone = _Zone(ZoneRule(name="z", polygon=polygon))
    assert zone.rect is not None
    rng = random.Random(1)
    points = [(rng.random(), rng.random()) for _ in range(5000)]
    grid = sorted({v for p in polygon for v in p} | {0.0, 0.5, 1.0})
    points += [(x, y) for x in grid for y in grid]
    points += [(vx + e, vy + f) for vx, vy in polygon for e in (-1e-12, 0.0, 1e-12) for f in (-1e-12, 0.0, 1e-12)]
    inside = [zone.contains(x, y) for x, y in points]
    assert inside == [point_in_polygon(x, y, zone.polygon) for x, y in points]
    assert 0 < sum(inside) < len(points)
    assert _Zone(ZoneRule(name="t", polygon=[[0.1, 0.9], [0.5, 0.1], [0.9, 0.9]])).rect is None
