"""Objects of a (device, window) without Flink: tracked cells, late frames, track events and object counts in;
``objects`` and ``present`` payloads and their revisions out; the bridge's events confirmations."""
from __future__ import annotations

import json

import pytest

from edge.contract import outputs, schema
from stream.confirm import Confirmations
from stream.landing import Batch, confirm_stream, to_landing_line
from stream.windows import OBJECTS_KCODE, PRESENT, DeviceWindow, dwell_stats

from test_windows import cell, late_frame

T = 0.25


def event(ev, label="person", ts=1.0, **kw):
    return {"okind": "object", "device": "cam-1", "kcode": 3, "seq": 1, "ts": ts, "label": label, "ev": ev,
            "es": kw.get("es"), "ee": kw.get("ee"), "xl": kw.get("xl"), "xd": kw.get("xd"), "oc": None}


def counts(ts, objects):
    return {"okind": "object", "device": "cam-1", "kcode": OBJECTS_KCODE, "seq": None, "ts": ts, "label": None,
            "ev": None, "es": None, "ee": None, "xl": None, "xd": None,
            "oc": json.dumps({"objects": objects, "zones": {}}, separators=(",", ":"))}


def test_tracks_events_and_counts_make_objects_payloads_and_late_ones_revise_them():
    w = DeviceWindow(device="cam-1", ws_ms=0, we_ms=10_000)
    # two cells of class 0 (tracks 4 and 5) and one untracked: sums add up, two distinct tracks
    for track, n in ((4, 3), (5, 2), (None, 1)):
        w.add_cell({**cell(0, n=n, ns=n, fc=1, ss=0.5 * n, gs=0.1 * n, gm=0.1, frames=1), "track": track})
    w.add_cell({**cell(0, n=1, ns=1, fc=1, ss=0.5, gs=0.1, gm=0.1, frames=0), "track": 4})       # 4 again
    assert w.add_object(event("new", ts=1.0, es=1.0)) == {"person"}
    assert w.add_object(event("update", ts=1.5)) == set()              # changes no figure
    assert w.add_object(event("crossed", ts=2.0, xl="gate", xd="in")) == {"person"}
    assert w.add_object(event("end", ts=6.0, es=1.0, ee=5.25)) == {"person"}
    assert w.add_object(event("end", ts=7.0, es=2.0, ee=4.0)) == {"person"}
    assert w.add_object(counts(6.0, {"person": 1})) == {PRESENT}
    assert w.add_object(counts(3.0, {"person": 2})) == set()            # older than the latest: no change
    agg = w.payloads(T)
    assert [p["type"] for p in agg] == ["aggregate", "health"] and agg[0]["detections"] == 7
    first = {p["type"]: p for p in w.object_payloads()}
    assert first["objects"] == outputs.validate(first["objects"])
    assert {k: first["objects"][k] for k in ("tracks", "started", "ended", "dwell_mean_s", "dwell_p50_s",
                                              "dwell_max_s", "crossings", "revision")} == {
        "tracks": 2, "started": 1, "ended": 2, "dwell_mean_s": 3.125, "dwell_p50_s": 3.125, "dwell_max_s": 4.25,
        "crossings": {"gate": {"in": 1, "out": 0}}, "revision": 0}
    assert first["objects"]["id"] == "objects/cam-1/person/0"
    assert {k: first["present"][k] for k in ("as_of", "objects", "revision", "id")} == {
        "as_of": 6.0, "objects": {"person": 1}, "revision": 0, "id": "present/cam-1/0"}
    # late: a frame with a new track of a car, a crossing; each revises only its own payload
    labels = w.late_tracks({**late_frame(9, 8.0, [(2, "car", 0.8, 0.1)]),
                            "dets": [{"c": 2, "l": "car", "p": 0.8, "g": 0.1, "t": 9}]})
    assert labels == {"car"}
    car = w.object_payloads(labels)
    assert [(p["label"], p["tracks"], p["revision"]) for p in car] == [("car", 1, 0)]
    w.add_object(event("crossed", ts=8.5, xl="gate", xd="out"))
    again = w.object_payloads({"person"})
    assert [(p["revision"], p["crossings"]) for p in again] == [(1, {"gate": {"in": 1, "out": 1}})]


def test_a_window_of_events_only_has_no_health_and_dwell_is_order_free():
    w = DeviceWindow(device="cam-9", ws_ms=10_000, we_ms=20_000)
    w.add_object(event("end", ts=12.0, es=0.1, ee=11.0))
    assert w.payloads(T) == []               # the health is about frames and beats
    assert [p["type"] for p in w.object_payloads()] == ["objects"]
    durations = [0.1, 0.7, 0.2, 1e-9, 3.3]
    assert dwell_stats(sorted(durations)) == dwell_stats(sorted(reversed(durations)))
    assert dwell_stats([1.0, 2.0, 4.0, 10.0]) == {"dwell_mean_s": 4.25, "dwell_p50_s": 3.0, "dwell_max_s": 10.0}
    assert dwell_stats([]) == {"dwell_mean_s": None, "dwell_p50_s": None, "dwell_max_s": None}


def test_objects_payloads_name_what_is_wrong():
    good = dict(device="cam-1", label="person", window_start=0.0, window_end=10.0, revision=0, tracks=1, started=1,
                ended=0, dwell_mean_s=None, dwell_p50_s=None, dwell_max_s=None, crossings={})
    p = outputs.build("objects", **good)
    assert outputs.topic_for("sigmawatch", p) == "sigmawatch/agg/objects/cam-1/person"
    assert outputs.parse_output_topic("sigmawatch", "sigmawatch/agg/present/cam-1") == {"kind": "present",
                                                                                       "device": "cam-1"}
    with pytest.raises(outputs.PayloadError, match=r"objects\.tracks: expected int"):
        outputs.build("objects", **{**good, "tracks": 1.5})
    with pytest.raises(outputs.PayloadError, match=r"objects\.crossings: required field is missing"):
        outputs.build("objects", **{k: v for k, v in good.items() if k != "crossings"})


def test_events_are_confirmed_per_device_as_their_own_stream():
    """A file holding detections and events of one camera: two confirmations, the detections' without a stream
    field (what agents before events read), the events' with ``"stream": "events"``; both valid by the contract."""
    batch = Batch()
    ev = {"schema": 1, "type": "crossed", "device": "cam-1", "seq": 3, "ts": 5.0, "id": "5000-1", "track": 1,
          "label": "person", "line": "gate", "direction": "in"}
    for topic, payload in (("sigmawatch/cam-1/detections", schema.encode({
            "schema": 2, "device": "cam-1", "seq": 3, "ts": 5.0, "frame": [640, 480], "model": "0123456789ab",
            "latency_ms": [1.0], "detections": []})), ("sigmawatch/cam-1/events", schema.encode(ev))):
        line, valid, device, seq = to_landing_line("sigmawatch", topic, payload, 6.0, 1 << 20)
        assert valid and seq == 3
        batch.add(line, device, 6.0, seq, valid, confirm_stream(topic))
    assert batch.seqs == {("cam-1", "detections"): [3], ("cam-1", "events"): [3]}
    assert json.loads(batch.lines[1]) == {"kind": "events", "device": "cam-1", "recv_ts": 6.0, "seq": 3, "ts": 5.0,
                                          "ob": {"ev": "crossed", "el": "person", "xl": "gate", "xd": "in"}}
    c = Confirmations("sigmawatch", "b1", 1.0)
    c.add(batch.seqs)
    sent = [(t, json.loads(p)) for t, p in c.take(now=0.0, ts=7.0)]
    assert [t for t, _ in sent] == ["sigmawatch/cam-1/landed"] * 2
    by_stream = {p.get("stream", "detections"): p for _, p in sent}
    assert by_stream["detections"] == {"schema": 1, "type": "landed", "device": "cam-1", "bridge": "b1", "ts": 7.0,
                                       "seqs": [[3, 3]]}
    assert by_stream["events"]["stream"] == "events" and by_stream["events"]["seqs"] == [[3, 3]]
    for _, p in sent:
        schema.validate(p, "landed")
    with pytest.raises(schema.SchemaError, match=r"landed\.stream"):
        schema.validate({**by_stream["events"], "stream": "metrics"}, "landed")
