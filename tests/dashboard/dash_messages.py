"""Valid sigmawatch messages for dashboard tests, built from the real contracts (edge.contract.schema, edge.contract.outputs)."""
from __future__ import annotations

import time

from edge.contract import schema
from edge.contract import outputs

PREFIX = "sigmawatch"
MODEL = {"id": "gyolo-test", "hash": "0123456789abcdef"}


def status(device: str, state: str = "online", ts: float | None = None) -> tuple[str, bytes]:
    body = {"schema": 1, "type": "status", "device": device, "state": state, "ts": time.time() if ts is None else ts}
    return schema.topic(PREFIX, device, "status"), schema.encode(schema.validate(body, "status"))


def metrics(device: str, fps: float, processed: int, dropped: int, depth: int, outbox_dropped: int = 0):
    body = {"schema": 1, "type": "metrics", "device": device, "ts": time.time(), "fps": fps,
            "latency_ms": {"p50": 12.5, "p95": 20.0},
            "frames": {"captured": processed + dropped, "processed": processed, "dropped": dropped},
            "outbox": {"depth": depth, "dropped": outbox_dropped}}
    return schema.topic(PREFIX, device, "metrics"), schema.encode(schema.validate(body, "metrics"))


def detection(label: str, class_id: int, box, sigma_mean: float, score: float = 0.8) -> dict:
    x1, y1, x2, y2 = box
    return {"class_id": class_id, "label": label, "score": score, "objectness": 0.9, "box": list(box),
            "sigma": [sigma_mean] * 4, "sigma_mean": sigma_mean,
            "box_sigma": [sigma_mean * (x2 - x1), sigma_mean * (y2 - y1), sigma_mean * (x2 - x1), sigma_mean * (y2 - y1)]}


def detections(device: str, seq: int, dets: list[dict], ts: float | None = None, frame=(640, 360)):
    body = {"schema": 1, "type": "detections", "device": device, "seq": seq, "ts": ts or time.time(),
            "frame": {"w": frame[0], "h": frame[1]}, "model": MODEL, "task": "detection",
            "latency_ms": {"inference": 7.5, "total": 11.0}, "detections": dets}
    return schema.topic(PREFIX, device, "detections"), schema.encode(schema.validate(body, "detections"))


def aggregate(device: str, label: str, class_id: int, start: float, count: int, sigma_mean: float,
              length: float = 5.0, revision: int = 0):
    body = outputs.build("aggregate", device=device, class_id=class_id, label=label, window_start=start,
                        window_end=start + length, revision=revision, detections=count, frames=count, score_mean=0.8,
                        with_sigma=count,
                        sigma_mean=sigma_mean, sigma_max=sigma_mean * 1.5, high_sigma_share=0.25,
                        high_sigma_threshold=0.15)
    return outputs.topic_for(PREFIX, body), outputs.encode(body)


def alert(device: str, label: str, state: str = "firing", message: str = "too many squares"):
    body = outputs.build("alert", rule="square-count", kind="class_count", severity="warning", state=state,
                        device=device, label=label, since=time.time() - 3, ts=time.time(), value=12.0,
                        threshold=10.0, message=message, revised=False)
    return outputs.topic_for(PREFIX, body), outputs.encode(body)


def health(device: str, start: float, frames: int, state: str = "online"):
    fields = dict(device=device, window_start=start, window_end=start + 5.0, revision=0, last_seen=start + 4.9,
                  frames=frames, late_frames=0, frame_rate=frames / 5.0, fps=frames / 5.0, dropped=0, outbox_depth=0,
                  state=state, clock_offset_s=0.05)
    body = outputs.build("health", **fields)
    return outputs.topic_for(PREFIX, body), outputs.encode(body)


def stats(start: float, dead_letters: int, late: int):
    body = outputs.build("stats", window_start=start, window_end=start + 10.0, dead_letters=dead_letters, too_late=0,
                        late=late, reasons={})
    return outputs.topic_for(PREFIX, body), outputs.encode(body)


# ---------------------------------------------------------------- tracked objects (edge.objects publishes these)
def tracked(label: str, class_id: int, box, track: int | None, sigma: float = 0.05, score: float = 0.8):
    """One detection as the agent's tracking stage hands it to the wire (``edge.contract.wire.detection_array``):
    ``track`` None = not confirmed yet (no 10th item)."""
    from types import SimpleNamespace
    x1, y1, x2, y2 = box
    return SimpleNamespace(class_id=class_id, label=label, score=score, objectness=0.9, box=list(box),
                           sigma=[sigma] * 4, sigma_mean=sigma, zones=[],
                           box_sigma=[sigma * (x2 - x1), sigma * (y2 - y1), sigma * (x2 - x1), sigma * (y2 - y1)],
                           track=track)


def tracked_detections(device: str, seq: int, ts: float, dets: list, frame=(640, 480)):
    """A version-2 detections message (what agents publish) holding ``tracked`` detections."""
    from types import SimpleNamespace
    from edge.contract import wire
    result = SimpleNamespace(ts=ts, frame_w=frame[0], frame_h=frame[1], task="detection", detections=dets,
                             classes=None, entropy=None, latency_ms={"inference": 3.0, "total": 5.0})
    body = wire.detections_message(result, device=device, seq=seq, model_hash=MODEL["hash"])
    return schema.topic(PREFIX, device, "detections"), schema.encode(schema.validate(body, "detections"))


def track_event(device: str, seq: int, kind: str, track: int, label: str, ts: float, *, start: float,
                box=(0.1, 0.1, 0.3, 0.5), box_sigma=(0.01, 0.01, 0.02, 0.02), zones=(), end: float | None = None,
                changed=None, **extra):
    """One ``<prefix>/<device>/events`` message, checked by the contract (``edge.contract.schema.EVENT``)."""
    body = {"schema": 1, "type": kind, "device": device, "seq": seq, "ts": ts, "id": f"{int(start * 1000)}-{track}",
            "track": track, "label": label, "class_id": 0, **extra}
    if kind in ("new", "update", "end"):
        body.update(start=start, end=end if kind == "end" else None, score=0.8, best_score=0.9, box=list(box),
                    box_sigma=list(box_sigma), sigma_mean=0.07, hits=5, zones=list(zones), entered_zones=list(zones),
                    lines={})
        if kind == "update":
            body["changed"] = list(changed or ["zones"])
    return schema.topic(PREFIX, device, "events"), schema.encode(schema.validate(body, "events"))


def objects(device: str, ts: float, counts: dict, zones: dict | None = None):
    """The retained per-camera object counts."""
    body = {"schema": 1, "type": "objects", "device": device, "ts": ts, "objects": counts, "zones": zones or {}}
    return schema.topic(PREFIX, device, "objects"), schema.encode(schema.validate(body, "objects"))
