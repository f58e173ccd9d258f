"""The flat landing line format the bridge writes, and the job's aggregation formulas over it (no Flink).

The job computes frames per class as ``SUM(f)``, frames per device as the rows with ``h`` plus frames without
detections, means as ``sum / count`` and fleet totals as sums of the per-device cells; here the same
formulas, in plain Python over the bridge's lines, must equal the straightforward recount of the decoded
messages (``tests.support.generate.recount``: distinct seqs, per-detection means).
"""
from __future__ import annotations

import json
from collections import defaultdict

from edge.contract import schema
from stream.landing import NAME_RE, LandingWriter, to_landing_line
from tests.support.generate import Scenario, generate, health_recount, recount, window_starts

PREFIX = "sigmawatch"


def _lines(events, recv0=1_700_000_100.0):
    return [to_landing_line(PREFIX, e.topic, e.payload, recv0 + i * 0.001, 1 << 20)[:3] for i, e in enumerate(events)]


def test_valid_messages_land_flat_with_what_the_job_reads():
    events = generate(Scenario(devices=2, duration_s=10, malformed=0, late=0))
    for ev, (line, valid, device) in zip(events, _lines(events)):
        rec, msg = json.loads(line), schema.decode(ev.payload, ev.kind)
        assert valid and device == msg["device"] == rec["device"] and rec["kind"] == ev.kind
        # no topic: the job rebuilds it from prefix, device and kind for the lines it dead-letters
        assert "topic" not in rec and schema.topic(PREFIX, rec["device"], rec["kind"]) == ev.topic
        assert "msg" not in rec and "raw_payload" not in rec
        if ev.kind == "detections":
            assert (rec["seq"], rec["ts"]) == (msg["seq"], msg["ts"])
            assert [(d["c"], d["l"], d["p"], d["g"]) for d in rec["dets"]] == [
                (d["class_id"], d["label"], d["score"], d["sigma_mean"]) for d in msg["detections"]]
            firsts = [d["c"] for d in rec["dets"] if d["f"]]
            assert sorted(firsts) == sorted({d["class_id"] for d in msg["detections"]})
            assert [i for i, d in enumerate(rec["dets"]) if d.get("h")] == ([0] if rec["dets"] else [])
        else:
            assert (rec["ts"], rec["fps"], rec["dropped"], rec["depth"]) == (
                msg["ts"], msg["fps"], msg["frames"]["dropped"], msg["outbox"]["depth"])


def test_invalid_messages_keep_reason_and_raw_payload():
    events = [e for e in generate(Scenario(devices=1, duration_s=2)) if e.category == "invalid"]
    assert len(events) == 6
    for ev, (line, valid, _) in zip(events, _lines(events)):
        rec = json.loads(line)
        assert not valid and rec["kind"] == "invalid" and rec["reason"]
        assert rec["raw_payload"] == ev.payload.decode("utf-8", "replace")


def _v1(**over) -> dict:
    """A version-1 detections payload (old agents, outbox replays): two cars and a person."""
    det = {"objectness": 0.9, "box": [0.1, 0.2, 0.3, 0.4], "sigma": [0.1, 0.1, 0.1, 0.1]}
    msg = {"schema": 1, "type": "detections", "device": "cam-1", "seq": 42, "ts": 1700000000.5,
           "frame": {"w": 640, "h": 480}, "model": {"id": "m", "hash": "ab" * 32}, "task": "detection",
           "latency_ms": {"inference": 3.0},
           "detections": [{**det, "class_id": 1, "label": "car", "score": 0.7, "sigma_mean": 0.125},
                          {**det, "class_id": 0, "label": "person", "score": 0.25, "sigma_mean": 0.5},
                          {**det, "class_id": 1, "label": "car", "score": 0.875, "sigma_mean": 0.0}]}
    msg.update(over)
    return msg


# the documented line (module docstring of stream.landing) of _v1()'s frame, received at 1700000001.25
V1_LINE = ('{"kind":"detections","device":"cam-1","recv_ts":1700000001.25,"seq":42,"ts":1700000000.5,"dets":['
           '{"c":1,"l":"car","p":0.7,"g":0.125,"f":1,"h":1},{"c":0,"l":"person","p":0.25,"g":0.5,"f":1},'
           '{"c":1,"l":"car","p":0.875,"g":0.0,"f":0}]}')


def test_version_1_payloads_are_validated_and_land_like_version_2():
    line, valid, device, _ = to_landing_line(PREFIX, "sigmawatch/cam-1/detections", schema.encode(_v1()),
                                          1700000001.25, 1 << 20)
    assert (line, valid, device) == (V1_LINE, True, "cam-1")
    # the same frame as an agent sends it today (version 2) lands as the same line
    v2 = {"schema": 2, "device": "cam-1", "seq": 42, "ts": 1700000000.5, "frame": [640, 480],
          "model": "abababababab", "latency_ms": [3.0],
          "detections": [[c, label, p, 900, [100, 200, 300, 400], [100] * 4, g, None]
                         for c, label, p, g in ((1, "car", 700, 125), (0, "person", 250, 500), (1, "car", 875, 0))]}
    assert to_landing_line(PREFIX, "sigmawatch/cam-1/detections", schema.encode(v2), 1700000001.25,
                           1 << 20)[:2] == (V1_LINE, True)
    bad = _v1()
    bad["detections"][1]["score"] = 1.5
    line, valid, _, _ = to_landing_line(PREFIX, "sigmawatch/cam-1/detections", schema.encode(bad), 1.0, 1 << 20)
    rec = json.loads(line)
    assert not valid and rec["kind"] == "invalid" and "detections[1].score" in rec["reason"]
    # a version-1 payload must be complete version 1: its detections are required there
    no_dets = {k: v for k, v in _v1().items() if k != "detections"}
    assert not to_landing_line(PREFIX, "sigmawatch/cam-1/detections", schema.encode(no_dets), 1.0, 1 << 20)[1]


def _per(total, n):
    return total / n if n else None


def _job_formulas(lines, window_s, slide_s=None, high=0.25):
    """The SQL's cells and their cascade, in Python: keep-first dedup, then sums per (window, device, class)."""
    size_ms, slide_ms = int(window_s * 1000), int((slide_s or window_s) * 1000)
    seen, cells = set(), defaultdict(lambda: {"n": 0, "frames_c": 0, "ps": 0.0, "ns": 0, "gs": 0.0, "gm": 0.0, "hi": 0,
                                              "label": None, "frames": 0, "last": 0})
    for line, valid, _ in lines:
        rec = json.loads(line)
        if not valid or rec["kind"] != "detections" or (rec["device"], rec["seq"]) in seen:
            continue
        seen.add((rec["device"], rec["seq"]))
        ts_ms = int(rec["ts"] * 1000)
        for ws in window_starts(ts_ms, size_ms, slide_ms):
            for d in rec["dets"] or [None]:
                c = cells[(ws, rec["device"], d and d["c"])]
                c["frames"] += 1 if d is None else d.get("h", 0)
                c["last"] = max(c["last"], ts_ms)
                if d is not None:
                    c["n"] += 1
                    c["frames_c"] += d["f"]
                    c["ps"] += d["p"]
                    if d["g"] is not None:             # a model without sigma: not in the sigma statistics
                        c["ns"] += 1
                        c["gs"] += d["g"]
                        c["gm"] = max(c["gm"], d["g"])
                        c["hi"] += d["g"] >= high
                    c["label"] = max(c["label"] or "", d["l"])
    out, fleet, health = {}, defaultdict(list), defaultdict(list)
    for (ws, dev, cid), c in cells.items():
        health[(dev, ws)].append(c)
        if cid is None:
            continue
        fleet[(ws, cid)].append(c)
        out[f"{dev}/{c['label']}/{ws}"] = {"detections": c["n"], "frames": c["frames_c"], "score_mean": c["ps"] / c["n"],
                                           "with_sigma": c["ns"], "sigma_mean": _per(c["gs"], c["ns"]),
                                           "sigma_max": c["gm"] if c["ns"] else None,
                                           "high_sigma_share": _per(c["hi"], c["ns"]), "device": dev}
    for (ws, cid), cs in fleet.items():
        n = sum(c["n"] for c in cs)
        out[f"_fleet/{cs[0]['label']}/{ws}"] = {
            "detections": n, "frames": sum(c["frames_c"] for c in cs), "score_mean": sum(c["ps"] for c in cs) / n,
            "with_sigma": sum(c["ns"] for c in cs), "sigma_mean": _per(sum(c["gs"] for c in cs), sum(c["ns"] for c in cs)),
            "sigma_max": max((c["gm"] for c in cs if c["ns"]), default=None),
            "high_sigma_share": _per(sum(c["hi"] for c in cs), sum(c["ns"] for c in cs)), "devices": len(cs)}
    frames = {f"{dev}/{ws}": sum(c["frames"] for c in cs) for (dev, ws), cs in health.items()}
    return out, frames


def test_job_formulas_over_flat_lines_equal_the_recount():
    for slide in (None, 5.0):
        sc = Scenario(devices=3, duration_s=30, too_late=0)   # (the job dead-letters those by the watermark)
        events = generate(sc)
        got, frames = _job_formulas(_lines(events), 10.0, slide)
        expected = recount(events, 10.0, slide)
        assert set(got) == set(expected)
        for key, fields in expected.items():
            for f, v in got[key].items():
                assert abs(fields[f] - v) < 1e-9 if isinstance(v, float) else fields[f] == v, (key, f)
        if slide is None:   # health frames of detections: distinct seqs per device and window
            exp = {k: v["frames"] for k, v in health_recount(events, 10.0).items() if v["frames"]}
            assert {k: v for k, v in frames.items() if v} == exp


def test_writer_trailer_lists_records_and_live_devices(tmp_path):
    events = generate(Scenario(devices=2, duration_s=3))
    w = LandingWriter(tmp_path, "bz", fsync=False)
    lines = _lines(events)
    for i, (line, valid, device) in enumerate(lines):
        w.add(line, device if valid else None, 1_700_000_100.0 + i * 0.001)
    path = w.roll()
    *body, eof = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(body) == len(events) == eof["records"] == int(NAME_RE.match(path.name)["n"])
    assert eof["kind"] == "eof"
    valid_devices = [d for _, v, d in lines if v]
    assert {d["d"]: d["m"] for d in eof["devices"]} == {d: valid_devices.count(d) for d in set(valid_devices)}
