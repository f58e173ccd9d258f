"""The contract for objects: track ids on the wire (older messages unchanged and still valid, the bridge's landing
line unchanged), the events and objects messages against the published schemas (jsonschema and our validator)."""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from edge.contract import schema, wire
from edge.contract.wire import detections_message
from edge.decode import Detection
from edge.event_publisher import event_bytes
from edge.messages import FrameResult
from edge.tracking import EventBuilder, Regions, Tracker, TrackingConfig, object_counts
from stream.landing import to_landing_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))
from tracking_helpers import det

DET = Detection(class_id=1, label="disc", score=0.896, objectness=0.996, box=(0.633, 0.208, 0.855, 0.52),
                sigma=(0.074, 0.082, 0.121, 0.109), sigma_mean=0.097, box_sigma=(0.009, 0.014, 0.027, 0.034))


def message(dets: list[Detection], seq: int = 7) -> dict:
    result = FrameResult(ts=1763900000.123, frame_w=640, frame_h=480, task="detection", detections=dets,
                         latency_ms={"inference": 2.9, "total": 5.8})
    return detections_message(result, device="cam-1", seq=seq, model_hash="a71d8e644a5f" * 2)


def test_track_ids_travel_after_the_zones_and_decode_by_name():
    msg = message([replace(DET, track=17), replace(DET, track=18, zones=("door",)), DET])
    items = msg["detections"]
    assert items[0][wire.ZONES:] == [[], 17] and items[1][wire.ZONES:] == [["door"], 18] and len(items[2]) == 8
    jsonschema.validate(msg, schema.json_schema("detections"))
    decoded = schema.decode(schema.encode(msg), "detections")
    schema.validate_decoded_detections(decoded)
    jsonschema.validate({**decoded, "schema": 1, "model": {"id": "m", "hash": decoded["model"]["hash"]}},
                        schema.json_schema("detections_v1"))
    first, second, third = decoded["detections"]
    assert first["track"] == 17 and "zones" not in first, "no zones set: the [] placeholder does not decode"
    assert second["track"] == 18 and second["zones"] == ["door"]
    assert "track" not in third


def test_messages_without_tracks_are_what_they_were():
    """An agent without tracking (or an old one) sends exactly the bytes it sent before track ids existed."""
    before = {"schema": 2, "device": "cam-1", "seq": 7, "ts": 1763900000.123, "frame": [640, 480],
              "model": "a71d8e644a5f", "latency_ms": [2.9, 5.8],
              "detections": [[1, "disc", 896, 996, [633, 208, 855, 520], [74, 82, 121, 109], 97, [9, 14, 27, 34]]]}
    assert schema.encode(message([DET])) == schema.encode(before)
    assert schema.parse(schema.encode(before), "detections") == before


def test_the_bridge_lands_tracked_messages_with_their_track_ids():
    plain = schema.encode(message([DET, replace(DET, class_id=0, label="square", zones=("door",))]))
    tracked = schema.encode(message([replace(DET, track=3), replace(DET, class_id=0, label="square", zones=("door",),
                                                                     track=4)]))
    a, ok_a, dev_a, _ = to_landing_line("sigmawatch", "sigmawatch/cam-1/detections", plain, 1763900001.0, 65536)
    b, ok_b, dev_b, _ = to_landing_line("sigmawatch", "sigmawatch/cam-1/detections", tracked, 1763900001.0, 65536)
    assert ok_a and ok_b and dev_a == dev_b == "cam-1"
    # the job counts distinct tracks per window: each tracked detection lands with its track id (t), and nothing
    # else of the line changes; untracked detections land without t, byte for byte as before
    tracked_line = json.loads(b)
    assert tracked_line["kind"] == "detections" and [d.pop("t") for d in tracked_line["dets"]] == [3, 4]
    assert tracked_line == json.loads(a) and '"t":' not in a


@pytest.mark.parametrize("bad", [[[], "7"], [[], -1], [[], 7, 8], [None, 7]])
def test_bad_track_items_are_refused(bad):
    msg = message([DET])
    msg["detections"][0].extend(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(msg, schema.json_schema("detections"))
    with pytest.raises(schema.SchemaError, match=r"detections\.detections\[0\]"):
        schema.validate(msg, "detections")


# --------------------------------------------------------------------------- events and objects
def scripted_events() -> tuple[list[dict], list[dict]]:
    """(events, objects messages) of a disc crossing a line into a zone and leaving the frame, and a square that
    stays, through the real tracker, regions and event builder."""
    cfg = TrackingConfig(zones=[{"name": "right", "polygon": [[0.55, 0], [1, 0], [1, 1], [0.55, 1]]}],
                         lines=[{"name": "gate", "start": [0.5, 1], "end": [0.5, 0]}],
                         tracker={"max_missed": 3})
    tracker, regions = Tracker(cfg.tracker), Regions(cfg.zones, cfg.lines)
    builder = EventBuilder(regions, cfg.score_delta)
    events, counts = [], []
    for i in range(40):
        dets = [det(0.2, 0.2, cls=0, score=0.8 + 0.004 * i)]
        if i < 30:
            dets.append(det(0.1 + 0.8 * i / 29, 0.6, cls=1))
        frame = tracker.update(dets, 1000.0 + i / 10)
        region = regions.update(frame)
        starts = {v.id: v.start_ts for v in (*frame.tracks, *frame.ended)}
        bodies = [*builder.update(frame),
                  *({**e.to_message(), "id": f"{round(starts[e.track_id] * 1000)}-{e.track_id}"}
                    for e in region)]
        events += [json.loads(event_bytes(b, device="cam-1", seq=len(events) + k)) for k, b in enumerate(bodies)]
        counts.append({"schema": 1, "type": "objects", "device": "cam-1", **object_counts(frame, regions)})
    return events, counts


def test_events_and_counts_match_the_published_schemas():
    events, counts = scripted_events()
    kinds = {e["type"] for e in events}
    assert kinds == {"new", "update", "end", "entered", "left", "crossed"}, kinds
    for e in events:
        jsonschema.validate(e, schema.json_schema("events"))
        assert schema.parse(schema.encode(e), "events") == e
    for c in counts:
        jsonschema.validate(c, schema.json_schema("objects"))
        schema.validate(c, "objects")
    end = next(e for e in events if e["type"] == "end")
    assert end["lines"] == {"gate": {"in": 1, "out": 0}} and end["entered_zones"] == ["right"]
    assert {"objects": {"disc": 1, "square": 1}, "zones": {"right": {"disc": 1}}} in \
        [{"objects": c["objects"], "zones": c["zones"]} for c in counts]


EVENT_BAD = [
    ("unknown type", lambda e: e.update(type="moved")),
    ("box of 3", lambda e: e.update(box=[0.1, 0.2, 0.3])),
    ("lines without out", lambda e: e.update(lines={"gate": {"in": 1}})),
    ("lines count negative", lambda e: e.update(lines={"gate": {"in": -1, "out": 0}})),
    ("negative seq", lambda e: e.update(seq=-1)),
    ("unknown field", lambda e: e.update(image="...")),
    ("bad id", lambda e: e.update(id="17")),
    ("no track", lambda e: e.pop("track")),
]


@pytest.mark.parametrize("name, spoil", EVENT_BAD, ids=[n for n, _ in EVENT_BAD])
def test_bad_events_are_refused_by_both_validators(name, spoil):
    events, _ = scripted_events()
    e = copy.deepcopy(next(e for e in events if e["type"] == "end"))
    spoil(e)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(e, schema.json_schema("events"))
    with pytest.raises(schema.SchemaError, match=r"^events"):
        schema.validate(e, "events")


@pytest.mark.parametrize("kind, field", [("crossed", "direction"), ("entered", "zone"), ("end", "end"),
                                         ("update", "changed")])
def test_each_event_type_needs_its_fields(kind, field):
    events, _ = scripted_events()
    e = copy.deepcopy(next(e for e in events if e["type"] == kind))
    schema.validate(e, "events")
    e.pop(field)
    with pytest.raises(schema.SchemaError, match=rf"events\.{field}: required field is missing"):
        schema.validate(e, "events")


def test_objects_counts_are_checked():
    good = {"schema": 1, "type": "objects", "device": "cam-1", "ts": 1.0, "objects": {"person": 3}, "zones": {}}
    schema.validate(good, "objects")
    for bad in ({**good, "objects": {"person": -1}}, {**good, "zones": {"drive": {"person": "3"}}},
                {**good, "objects": {"person": 1.5}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema.json_schema("objects"))
        with pytest.raises(schema.SchemaError):
            schema.validate(bad, "objects")
    assert schema.topic("sigmawatch", "cam-1", "events") == "sigmawatch/cam-1/events"
    assert schema.parse_topic("sigmawatch", "sigmawatch/cam-1/objects") == ("cam-1", "objects")
