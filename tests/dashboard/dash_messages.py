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
