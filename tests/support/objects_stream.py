"""A generated stream of tracked objects (cameras whose agents track), and a plain-Python recount of the job's
objects outputs.

Each camera has tracks whose identity, label, lifetime and line crossings the generator knows: every frame while a
track lives carries a detection with its track id (plus now and then an untracked one, an object not yet
confirmed), and the track's events are what an agent publishes (``new`` when it starts, an ``update``,
``crossed`` for a counting line, ``end`` after it was last seen, each with the camera's own events ``seq``), with
the agent's retained object counts whenever they change. Payloads are written by the agent's own code
(``edge.contract.wire`` for detections, ``edge.event_publisher.event_bytes`` for events) and validated by the
contract. The stream also has copies of events (an agent's resend), a short track published after the stream
(late: it revises its windows) and an event two days old (too late: dead-lettered).

:func:`recount_objects` computes, from the published payloads (not from the bridge's landing lines), every
``objects`` and ``present`` payload the job must end with (``edge.contract.outputs``).
"""
from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Optional

from edge.contract import schema
from edge.contract.wire import detections_message
from edge.decode import Detection
from edge.event_publisher import event_bytes
from edge.messages import FrameResult
from tests.support.generate import COUNTED, Event, metrics_msg, window_starts

LABELS = ("person", "car")
LINES = ("gate", "door")


@dataclass(frozen=True)
class Track:
    track: int
    label: str
    start: float            # first detection (capture time)
    end: float              # last detection
    crossing: Optional[tuple[float, str, str]] = None     # (ts, line, direction)

    @property
    def oid(self) -> str:
        return f"{int(round(self.start * 1000))}-{self.track}"


def _body(kind: str, t: Track, ts: float, **extra) -> dict:
    body = {"type": kind, "id": t.oid, "track": t.track, "label": t.label, "class_id": LABELS.index(t.label),
            "ts": round(ts, 3)}
    if kind in ("new", "update", "end"):
        body.update(start=round(t.start, 3), end=round(t.end, 3) if kind == "end" else None, score=0.8,
                    best_score=0.9, box=[0.1, 0.1, 0.3, 0.4], box_sigma=[0.01, 0.01, 0.02, 0.02], sigma_mean=0.1,
                    hits=10, zones=[], entered_zones=[], lines={})
    body.update(extra)
    return body


def _frame(device: str, seq: int, ts: float, tracks: list[Track], untracked: bool) -> dict:
    dets = [Detection(class_id=LABELS.index(t.label), label=t.label, score=0.8, objectness=0.9,
                      box=(0.1, 0.1, 0.3, 0.4), sigma=(0.1, 0.1, 0.1, 0.1), sigma_mean=0.1,
                      box_sigma=(0.01, 0.01, 0.02, 0.02), track=t.track) for t in tracks]
    if untracked:
        dets.append(Detection(class_id=0, label="person", score=0.6, objectness=0.7, box=(0.5, 0.5, 0.6, 0.7),
                              sigma=(0.2, 0.2, 0.2, 0.2), sigma_mean=0.2, box_sigma=(0.02, 0.02, 0.03, 0.03)))
    frame = FrameResult(ts=ts, frame_w=640, frame_h=480, task="detection", detections=dets,
                        latency_ms={"inference": 5.0, "total": 8.0})
    return detections_message(frame, device=device, seq=seq, model_hash="0123456789abcdef")


def tracks_of(device_index: int, start_ts: float, duration_s: float, rng: random.Random, n: int = 7) -> list[Track]:
    """``n`` tracks within [start_ts, start_ts + duration_s): short and long ones (up to 1.5 windows of 10 s),
    every other one crossing a line."""
    out = []
    for i in range(n):
        start = round(start_ts + rng.uniform(0.0, duration_s - 4.0), 3)
        end = round(min(start + rng.uniform(1.0, 15.0), start_ts + duration_s - 1.5), 3)
        crossing = None
        if i % 2 == 0:
            crossing = (round(rng.uniform(start, end), 3), LINES[i % 4 // 2], rng.choice(("in", "out")))
        out.append(Track(track=10 * device_index + i + 1, label=LABELS[i % 3 == 2], start=start, end=end,
                         crossing=crossing))
    return out


def _camera(prefix: str, device: str, tracks: list[Track], start_ts: float, duration_s: float, fps: float,
            rng: random.Random, disorder_s: float) -> tuple[list[Event], int]:
    """One camera's frames, events, counts and heartbeats (publish order not yet sorted); and its next events seq."""
    timed: list[tuple[float, str, dict]] = []       # (capture ts, kind, payload body)
    frame_ts = [round(start_ts + k / fps, 3) for k in range(int(duration_s * fps))]
    # tracks are seen on the frames within their lifetime: their start and end are frame times
    tracks = [Track(t.track, t.label, min(x for x in frame_ts if x >= t.start),
                    max(x for x in frame_ts if x <= t.end), t.crossing) for t in tracks]
    seq = 0
    for k, ts in enumerate(frame_ts):
        alive = [t for t in tracks if t.start <= ts <= t.end]
        untracked = rng.random() < 0.1
        if alive or untracked:
            timed.append((ts, "detections", _frame(device, seq, ts, alive, untracked)))
            seq += 1
    events: list[tuple[float, dict]] = []
    for t in tracks:
        events.append((t.start, _body("new", t, t.start)))
        events.append((round(t.start + 0.5, 3), _body("update", t, t.start + 0.5, changed=["best_score"])))
        if t.crossing is not None:
            c_ts, line, direction = t.crossing
            c_ts = min(max(c_ts, t.start), t.end)
            events.append((c_ts, _body("crossed", t, c_ts, line=line, direction=direction)))
        events.append((round(t.end + 0.75, 3), _body("end", t, t.end + 0.75)))
    events.sort(key=lambda e: (e[0], e[1]["type"] != "new"))
    live: dict[str, int] = {}
    eseq = 0
    for ts, body in events:
        timed.append((ts, "events", json.loads(event_bytes(body, device=device, seq=eseq))))
        eseq += 1
        if body["type"] in ("new", "end"):
            live[body["label"]] = live.get(body["label"], 0) + (1 if body["type"] == "new" else -1)
            counts = {"schema": 1, "type": "objects", "device": device, "ts": ts,
                      "objects": {k: v for k, v in sorted(live.items()) if v}, "zones": {}}
            timed.append((ts, "objects", counts))
    t = start_ts
    while t < start_ts + duration_s:
        timed.append((round(t, 3), "metrics", metrics_msg(device, round(t, 3), fps, 0)))
        t += 2.0
    out = []
    for ts, kind, body in timed:
        payload = schema.encode(body)
        schema.parse(payload, kind)               # every message is valid by the contract
        out.append(Event(schema.topic(prefix, device, kind), payload, "valid", device, kind,
                         ts - start_ts + rng.uniform(0.0, disorder_s)))
    return out, eseq


def generate_objects(start_ts: float, duration_s: float = 30.0, devices: Iterable[str] = ("trk-1", "trk-2"),
                     fps: float = 4.0, seed: int = 11, prefix: str = "sigmawatch", disorder_s: float = 0.3,
                     late_after_s: Optional[float] = None, too_late: bool = True) -> list[Event]:
    """Events in publish order: the cameras' live stream, copies of every fifth event, then (published
    ``late_after_s`` after the start, default: after the stream's last window closed) a short track of the first
    camera inside its first window (late: new, crossed, end and their counts) and, with ``too_late``, an event
    captured two days before."""
    rng = random.Random(seed)
    devices = list(devices)
    events: list[Event] = []
    next_seq: dict[str, int] = {}
    for i, dev in enumerate(devices):
        cam, next_seq[dev] = _camera(prefix, dev, tracks_of(i + 1, start_ts, duration_s, rng), start_ts, duration_s,
                                     fps, rng, disorder_s)
        events += cam
        evs = [e for e in cam if e.kind == "events"]
        events += [Event(e.topic, e.payload, "dup", e.device, e.kind, e.at + rng.uniform(0.5, 2.0))
                   for e in evs[::5]]
    events.sort(key=lambda e: e.at)
    after = duration_s + 12.0 if late_after_s is None else late_after_s
    dev = devices[0]
    late = Track(track=999, label="car", start=round(start_ts + 1.0, 3), end=round(start_ts + 3.0, 3),
                 crossing=(round(start_ts + 2.0, 3), "gate", "out"))
    tail = []
    seq = next_seq[dev]
    for ts, body in ((late.start, _body("new", late, late.start)),
                     (late.crossing[0], _body("crossed", late, late.crossing[0], line="gate", direction="out")),
                     (late.end + 0.75, _body("end", late, late.end + 0.75))):
        tail.append(Event(schema.topic(prefix, dev, "events"), event_bytes(body, device=dev, seq=seq), "late", dev,
                          "events", after))
        seq += 1
    if too_late:
        old = Track(track=998, label="person", start=start_ts - 2 * 86_400.0, end=start_ts - 2 * 86_400.0 + 1)
        tail.append(Event(schema.topic(prefix, dev, "events"),
                          event_bytes(_body("new", old, old.start), device=dev, seq=seq), "too_late", dev, "events",
                          after))
    return events + [Event(**{**e.__dict__, "at": after + 0.05 * i}) for i, e in enumerate(tail)]


def recount_objects(events: Iterable[Event], window_s: float) -> dict[str, dict]:
    """The final ``objects`` and ``present`` payload fields the job must publish, keyed by payload id, from the
    published payloads: each (device, seq) of detections and of events once; per device, label and window (of
    the capture time ``ts``): the distinct track ids on the detections, ``new`` and ``end`` events, the dwell
    (end - start) of the ended tracks (mean, median, max), crossings per line and direction; per device and
    window the latest object counts (by capture time)."""
    items = []
    for ev in events:
        if ev.category not in COUNTED or ev.kind not in ("detections", "events", "objects"):
            continue
        msg = schema.decode(ev.payload, ev.kind)
        if ev.kind == "detections":
            items.append(("detections", msg["device"], msg["seq"], msg["ts"],
                          [(d["label"], d["track"]) for d in msg["detections"] if d.get("track") is not None]))
        elif ev.kind == "events":
            items.append(("events", msg["device"], msg["seq"], msg["ts"], msg))
        else:
            items.append(("objects", msg["device"], None, msg["ts"], msg))
    return _recount(items, window_s)


def recount_objects_landed(lines: Iterable[dict], window_s: float,
                           allowed_lateness_s: float = 86_400.0) -> dict[str, dict]:
    """:func:`recount_objects` from landing lines (``tests.support.bridges.landed``): for real agents, whose
    messages the test did not write. Lines received more than the allowed lateness after their capture are
    left out (the job dead-letters them)."""
    items = []
    for x in lines:
        if "ts" in x and x["recv_ts"] - x["ts"] > allowed_lateness_s:
            continue
        if x["kind"] == "detections":
            items.append(("detections", x["device"], x["seq"], x["ts"],
                          [(d["l"], d["t"]) for d in x["dets"] if d.get("t") is not None]))
        elif x["kind"] == "events":
            ob = x["ob"]
            msg = {"type": ob["ev"], "label": ob["el"], "start": ob.get("es"), "end": ob.get("ee"),
                   "line": ob.get("xl"), "direction": ob.get("xd")}
            items.append(("events", x["device"], x["seq"], x["ts"], msg))
        elif x["kind"] == "objects":
            items.append(("objects", x["device"], None, x["ts"], json.loads(x["ob"]["oc"])))
    return _recount(items, window_s)


def _recount(items, window_s: float) -> dict[str, dict]:
    size = int(round(window_s * 1000))
    seen: set = set()
    cells: dict[tuple, dict] = {}
    present: dict[tuple, tuple] = {}

    def cell(dev, label, ws):
        return cells.setdefault((dev, label, ws), {"tracks": set(), "started": 0, "ended": 0, "dwell": [],
                                                   "crossings": {}})
    for kind, device, seq, ts, body in items:
        if kind != "objects":
            if (kind, device, seq) in seen:
                continue
            seen.add((kind, device, seq))
        ts_ms = int(round(ts * 1000))
        for ws in window_starts(ts_ms, size, size):
            if kind == "detections":
                for label, track in body:
                    cell(device, label, ws)["tracks"].add(track)
            elif kind == "objects":
                mine = (ts, json.dumps({"objects": body["objects"], "zones": body["zones"]}, separators=(",", ":")),
                        body)
                if (device, ws) not in present or mine[:2] > present[(device, ws)][:2]:
                    present[(device, ws)] = mine
            elif body["type"] == "new":
                cell(device, body["label"], ws)["started"] += 1
            elif body["type"] == "end":
                c = cell(device, body["label"], ws)
                c["ended"] += 1
                c["dwell"].append(body["end"] - body["start"])
            elif body["type"] == "crossed":
                lines = cell(device, body["label"], ws)["crossings"]
                lines.setdefault(body["line"], {"in": 0, "out": 0})[body["direction"]] += 1
    out: dict[str, dict] = {}
    for (dev, label, ws), c in cells.items():
        dw = sorted(c["dwell"])
        n = len(dw)
        out[f"objects/{dev}/{label}/{ws}"] = {
            "type": "objects", "device": dev, "label": label, "window_start": ws / 1000,
            "window_end": (ws + size) / 1000, "tracks": len(c["tracks"]), "started": c["started"],
            "ended": c["ended"], "dwell_mean_s": sum(dw) / n if n else None,
            "dwell_p50_s": (dw[n // 2] if n % 2 else (dw[n // 2 - 1] + dw[n // 2]) / 2) if n else None,
            "dwell_max_s": dw[-1] if n else None, "crossings": c["crossings"]}
    for (dev, ws), (ts, _, body) in present.items():
        out[f"present/{dev}/{ws}"] = {"type": "present", "device": dev, "window_start": ws / 1000,
                                      "window_end": (ws + size) / 1000, "as_of": ts, "objects": body["objects"],
                                      "zones": body["zones"]}
    return out


def tracked_ids(events: Iterable[Event]) -> dict[str, set]:
    """Per device, the track ids its published detections carry (what the generator's tracks are)."""
    out: dict[str, set] = defaultdict(set)
    for ev in events:
        if ev.kind == "detections" and ev.category in COUNTED:
            msg = schema.decode(ev.payload, "detections")
            out[msg["device"]] |= {d["track"] for d in msg["detections"] if d.get("track") is not None}
    return dict(out)
