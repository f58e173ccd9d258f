"""A generated multi-device edge stream, and a plain-Python recount of what the job must output.

Used by the tests and the benchmarks. Detections payloads are what agents publish (version 2, written by the
agent's own code); the recount reads them through ``edge.contract.schema.decode``, not through the bridge's
flattening. The stream has what a real fleet produces: bounded out-of-order
capture timestamps, duplicates (edge replay / at-least-once bridge), metrics heartbeats, a device that
goes silent, a device whose model reports no uncertainty, malformed and schema-invalid payloads, frames that
arrive after their window's first result (late: they revise it), copies of frames that arrive that late too
(dropped), frames later than the allowed lateness (dead-lettered), and devices whose clocks are off.
:func:`recount` computes the expected aggregates from the same messages without Flink.

Every event has ``at``: when it is published, in seconds from the stream's start (``start_ts``). Publish with
``start_ts`` near the current time (:func:`live_start`) and :func:`publish_live` to send the stream as devices
would; :func:`landing_recv_ts` gives the bridge receive times to write it straight into landing files.
"""
from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Optional

from edge.contract import schema
from edge.contract.wire import SCORE, detections_message
from edge.decode import Detection
from edge.messages import FrameResult

LABELS = ("person", "car", "dog")
MODEL = {"id": "gyolo-test", "hash": "0123456789abcdef"}


@dataclass(frozen=True)
class Event:
    topic: str
    payload: bytes
    # valid | dup (a copy, on time) | late (after its window's first result: revises it) | late_dup (a copy that
    # late: dropped) | too_late (beyond the allowed lateness: dead-lettered) | skewed (a device clock off by more
    # than the tolerance) | invalid | flush
    category: str
    device: Optional[str] = None
    kind: Optional[str] = None
    at: float = 0.0        # publish time, seconds after the stream's start_ts


def detections_msg(device: str, seq: int, ts: float, dets: list[tuple[int, float, Optional[float]]]) -> dict:
    """The version-2 payload an agent publishes for a frame with ``dets`` = [(class_id, score, sigma_mean)]
    (sigma_mean None: a model without uncertainty, like an SSD):
    ``edge.decode.Detection`` objects in an ``edge.messages.FrameResult``, written by the agent's
    ``edge.contract.wire.detections_message`` (values travel in thousandths)."""
    found = [Detection(class_id=c, label=LABELS[c], score=score, objectness=min(1.0, score + 0.05),
                       box=(0.1, 0.1, 0.4, 0.5), sigma=None if sig is None else (sig, sig, sig, sig), sigma_mean=sig,
                       box_sigma=None if sig is None else (0.3 * sig, 0.4 * sig, 0.3 * sig, 0.4 * sig))
             for c, score, sig in dets]
    frame = FrameResult(ts=ts, frame_w=640, frame_h=480, task="detection", detections=found,
                        latency_ms={"inference": 12.5, "total": 20.0})
    return detections_message(frame, device=device, seq=seq, model_hash=MODEL["hash"])


def metrics_msg(device: str, ts: float, fps: float, dropped: int, depth: int = 0) -> dict:
    return {"schema": 1, "type": "metrics", "device": device, "ts": ts, "uptime_s": 10.0, "fps": fps,
            "latency_ms": {"p50": 10.0, "p95": 20.0},
            "frames": {"captured": 100, "processed": 100 - dropped, "dropped": dropped},
            "outbox": {"depth": depth, "dropped": 0}}


@dataclass
class Scenario:
    prefix: str = "sigmawatch"
    devices: int = 3
    fps: float = 4.0                 # frames per second of event time per device
    duration_s: float = 40.0         # event-time span of the main stream
    start_ts: float = 1_700_000_000.0
    disorder_s: float = 0.3          # max delay from capture to publish (the job's out_of_orderness covers it)
    dup_every: int = 7               # every n-th frame is published twice
    malformed: int = 6
    late: int = 4                    # new frames of cam-0's first window, published after the stream
    late_dups: int = 2               # copies of cam-0's first frames, published after the stream
    too_late: int = 2                # frames of cam-0 captured two days before the stream, published after it
    # device -> clock offset in seconds (positive: the device clock is ahead), e.g. {"cam-fast": 120.0}
    skewed: dict = field(default_factory=dict)
    silent_device: bool = True       # "cam-silent" sends for the first 2 s of event time only
    spike: bool = True               # cam-0 has a burst of persons and high sigma in one window
    plain_device: bool = True        # "cam-plain" runs a model without uncertainty (SSD): its sigma is null
    window_s: float = 10.0
    seed: int = 7
    metrics_every_s: float = 2.0
    events: list = field(default_factory=list)


def generate(sc: Scenario) -> list[Event]:
    """Events in publish order. The last is a 'flush' heartbeat far enough ahead to close every window."""
    rng = random.Random(sc.seed)
    p = sc.prefix
    timed: list[tuple[float, Event]] = []
    devices = ([f"cam-{i}" for i in range(sc.devices)] + (["cam-silent"] if sc.silent_device else [])
               + (["cam-plain"] if sc.plain_device else []) + sorted(sc.skewed))
    spike_lo = sc.start_ts + 2 * sc.window_s
    for dev in devices:
        span = 2.0 if dev == "cam-silent" else sc.duration_s
        n = int(span * sc.fps)
        skew = sc.skewed.get(dev, 0.0)
        kind_of = "skewed" if dev in sc.skewed else "valid"
        for seq in range(n):
            true_ts = sc.start_ts + seq / sc.fps + rng.uniform(0, 0.05)
            ts = round(true_ts + skew, 3)
            in_spike = sc.spike and dev == "cam-0" and spike_lo <= ts < spike_lo + sc.window_s
            dets = []
            for _ in range(rng.randint(0, 3) + (4 if in_spike else 0)):
                cid = 0 if in_spike else rng.randrange(len(LABELS))
                sig = round(rng.uniform(0.6, 0.9) if in_spike else rng.uniform(0.02, 0.3), 4)
                sig = None if dev == "cam-plain" else sig
                dets.append((cid, round(rng.uniform(0.3, 0.99), 4), sig))
            msg = detections_msg(dev, seq, ts, dets)
            at = true_ts - sc.start_ts + rng.uniform(0, sc.disorder_s)
            ev = Event(schema.topic(p, dev, "detections"), schema.encode(msg), kind_of, dev, "detections", at)
            timed.append(ev)
            if sc.dup_every and seq % sc.dup_every == 3:
                timed.append(Event(ev.topic, ev.payload, "dup" if kind_of == "valid" else kind_of, dev, "detections",
                                   true_ts - sc.start_ts + rng.uniform(0, sc.disorder_s)))
        t = sc.start_ts
        while t < sc.start_ts + span:
            k = int((t - sc.start_ts) // sc.metrics_every_s)      # fps and outbox depth vary per heartbeat
            m = metrics_msg(dev, round(t + skew, 3), round(sc.fps - (k % 3) * 0.25, 3), int((t - sc.start_ts) // 5),
                            k % 4)
            timed.append(Event(schema.topic(p, dev, "metrics"), schema.encode(m), kind_of, dev, "metrics",
                               t - sc.start_ts + rng.uniform(0, sc.disorder_s)))
            t += sc.metrics_every_s
    timed.sort(key=lambda e: e.at)
    events = timed
    bad = _malformed(p, sc.start_ts)
    for i in range(sc.malformed):
        j = rng.randrange(1, len(events))
        events.insert(j, Event(**{**bad[i % len(bad)].__dict__, "at": events[j - 1].at}))
    end = sc.duration_s + sc.window_s + 1.0       # after the stream's last window had its first result
    cam0_first = [e for e in events if e.device == "cam-0" and e.kind == "detections" and e.category == "valid"]
    tail = []
    for i in range(sc.late):       # new frames of cam-0's first window: they revise its result
        m = detections_msg("cam-0", 100_000 + i, sc.start_ts + 1.0 + i * 0.1, [(1, 0.5, 0.1)])
        tail.append(Event(schema.topic(p, "cam-0", "detections"), schema.encode(m), "late", "cam-0", "detections"))
    for e in cam0_first[:sc.late_dups]:      # copies of frames long counted: dropped, however late
        tail.append(Event(e.topic, e.payload, "late_dup", "cam-0", "detections"))
    for i in range(sc.too_late):   # captured two days before the stream: beyond the allowed lateness
        m = detections_msg("cam-0", 200_000 + i, sc.start_ts - 2 * 86_400.0 + i * 0.1, [(1, 0.5, 0.1)])
        tail.append(Event(schema.topic(p, "cam-0", "detections"), schema.encode(m), "too_late", "cam-0", "detections"))
    return events + [Event(**{**e.__dict__, "at": end + 0.05 * i}) for i, e in enumerate(tail)]


def live_start(window_s: float, lead_s: float = 1.0) -> float:
    """A ``start_ts`` for a stream published now: the next window boundary at least ``lead_s`` ahead."""
    t = time.time() + lead_s
    return (int(t // window_s) + 1) * window_s


def publish_live(publisher, events: Iterable[Event], start_ts: float, speed: float = 1.0) -> None:
    """Publish each event when the wall clock reaches ``start_ts + at / speed``, as devices would."""
    for ev in events:
        delay = start_ts + ev.at / speed - time.time()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(ev.topic, ev.payload)


def landing_recv_ts(sc: Scenario, ev: Event) -> float:
    """The bridge's receive time of ``ev`` when the stream is written straight into landing files."""
    return sc.start_ts + ev.at + 0.02


def flush_event(sc: Scenario, out_of_orderness_s: float, after_ts: Optional[float] = None) -> Event:
    """A metrics heartbeat from cam-0 whose ts (and publish time) closes every window of the stream."""
    ts = (after_ts or sc.start_ts + sc.duration_s) + 2 * sc.window_s + out_of_orderness_s + 1
    return Event(schema.topic(sc.prefix, "cam-0", "metrics"), schema.encode(metrics_msg("cam-0", ts, sc.fps, 0)),
                 "flush", "cam-0", "metrics", ts - sc.start_ts)


def health_recount(events: Iterable[Event], window_s: float, slide_s: Optional[float] = None) -> dict[str, dict]:
    """Expected health fields per ``<device>/<window_start_ms>``: frames (distinct seq), last_seen, the fps and
    outbox depth of the window's latest metrics (by capture time), the maximum dropped count."""
    size_ms, slide_ms = int(round(window_s * 1000)), int(round((slide_s or window_s) * 1000))
    frames: dict[str, set] = defaultdict(set)
    last: dict[str, int] = defaultdict(int)
    latest: dict[str, tuple] = {}
    for ev in events:
        if ev.category not in COUNTED + ("flush",):
            continue
        msg = json.loads(ev.payload)
        ts_ms = int(msg["ts"] * 1000)
        for ws in window_starts(ts_ms, size_ms, slide_ms):
            key = f"{msg['device']}/{ws}"
            last[key] = max(last[key], ts_ms)
            if ev.kind == "detections":
                frames[key].add(msg["seq"])
            elif ev.kind == "metrics":
                prev = latest.get(key)
                dropped = max(msg["frames"]["dropped"], prev[3] if prev else 0)
                if prev is None or ts_ms > prev[0]:
                    latest[key] = (ts_ms, msg["fps"], msg["outbox"]["depth"], dropped)
                else:
                    latest[key] = (*prev[:3], dropped)
    out = {}
    for k in last:
        m = latest.get(k)
        out[k] = {"frames": len(frames[k]), "last_seen": last[k] / 1000, "fps": m[1] if m else None,
                  "outbox_depth": m[2] if m else None, "dropped": m[3] if m else None}
    return out


def _malformed(p: str, ts: float) -> list[Event]:
    ok = detections_msg("cam-0", 999_999, ts, [(0, 0.5, 0.1)])
    bad_score = json.loads(json.dumps(ok))
    bad_score["detections"][0][SCORE] = 1500
    no_seq = {k: v for k, v in ok.items() if k != "seq"}
    other_dev = {**ok, "device": "cam-1"}
    return [
        Event(f"{p}/cam-0/detections", b"{not json", "invalid", "cam-0"),
        Event(f"{p}/cam-0/detections", schema.encode(bad_score), "invalid", "cam-0"),
        Event(f"{p}/cam-0/detections", schema.encode(no_seq), "invalid", "cam-0"),
        Event(f"{p}/cam-0/detections", schema.encode(other_dev), "invalid", "cam-0"),
        Event(f"{p}/cam-0/metrics", b'{"schema":1,"type":"metrics"}', "invalid", "cam-0"),
        Event(f"{p}/bad.device/status", b'{"schema":1}', "invalid", None),
    ]


# --------------------------------------------------------------------------- recount
# what the job aggregates (copies are counted once: the recount dedups by (device, seq) as the job must)
COUNTED = ("valid", "dup", "late", "late_dup")

def window_starts(ts_ms: int, size_ms: int, slide_ms: int) -> list[int]:
    last = ts_ms - ts_ms % slide_ms
    return [s for s in range(last - size_ms + slide_ms, last + 1, slide_ms) if s <= ts_ms < s + size_ms]


def recount(events: Iterable[Event], window_s: float, slide_s: Optional[float] = None,
            high_sigma: float = 0.25) -> dict[str, dict]:
    """Expected aggregate and fleet payload fields keyed by payload id: the final result of every window, late
    frames included, each (device, seq) once."""
    size_ms, slide_ms = int(round(window_s * 1000)), int(round((slide_s or window_s) * 1000))
    seen: set[tuple[str, int]] = set()
    cells: dict[tuple, list] = defaultdict(list)
    for ev in events:
        if ev.category not in COUNTED or ev.kind != "detections":
            continue
        msg = schema.decode(ev.payload, "detections")     # named fields, at the precision that was sent
        key = (msg["device"], msg["seq"])
        if key in seen:
            continue
        seen.add(key)
        ts_ms = int(msg["ts"] * 1000)
        for ws in window_starts(ts_ms, size_ms, slide_ms):
            for d in msg["detections"]:
                cells[("aggregate", msg["device"], d["class_id"], d["label"], ws)].append((msg["seq"], d))
                cells[("fleet", None, d["class_id"], d["label"], ws)].append(((msg["device"], msg["seq"]), d))
    out = {}
    for (kind, dev, cid, label, ws), rows in cells.items():
        dets = [d for _, d in rows]
        n = len(dets)
        sig = [d["sigma_mean"] for d in dets if d["sigma_mean"] is not None]
        fields = {"class_id": cid, "label": label, "window_start": ws / 1000, "window_end": (ws + size_ms) / 1000,
                  "detections": n, "frames": len({f for f, _ in rows}),
                  "score_mean": sum(d["score"] for d in dets) / n,
                  # over the detections whose model reported sigma (null when none did)
                  "with_sigma": len(sig), "sigma_mean": sum(sig) / len(sig) if sig else None,
                  "sigma_max": max(sig) if sig else None,
                  "high_sigma_share": sum(g >= high_sigma for g in sig) / len(sig) if sig else None}
        if kind == "aggregate":
            fields["device"] = dev
            key = f"{dev}/{label}/{ws}"
        else:
            fields["devices"] = len({f[0] for f, _ in rows})
            key = f"_fleet/{label}/{ws}"
        out[key] = fields
    return out


def write_landing(directory, sc: Scenario, events: Iterable[Event], per_file: int = 100) -> int:
    """Land ``events`` as the bridge would have (its line format and file writer), received at
    :func:`landing_recv_ts`, ``per_file`` messages per file; returns the number of files."""
    from stream.landing import LandingWriter, to_landing_line
    writer = LandingWriter(directory, "gen", fsync=False)
    for i, ev in enumerate(events, 1):
        recv = landing_recv_ts(sc, ev)
        line, valid, device, _seq = to_landing_line(sc.prefix, ev.topic, ev.payload, recv, 1 << 20)
        writer.add(line, device if valid else None, recv)
        if i % per_file == 0:
            writer.roll()
    writer.roll()
    return writer.files_written
