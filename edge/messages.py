"""Build the MQTT payloads of ``edge.contract.schema`` (detections, status, metrics, config state). Pure functions."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from edge import __version__
from edge.contract.schema import DETECTIONS_SCHEMA_VERSION, SCHEMA_VERSION, encode
from edge.contract.wire import compact_detections, expand_detections


@dataclass
class FrameResult:
    """What the inference thread hands the publisher for one processed frame."""
    ts: float                       # capture time (unix seconds)
    frame_w: int
    frame_h: int
    task: str
    detections: list[dict] = field(default_factory=list)   # Detection.to_message() dicts (+ "zones")
    classes: Optional[list[dict]] = None                     # classification top-k
    entropy: Optional[float] = None
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.detections and not self.classes


def _env(kind: str, device: str) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "type": kind, "device": device}


def _detections_v1_shape(result: FrameResult, *, device: str, seq: int, model_ref: dict[str, str]) -> dict[str, Any]:
    msg = {"schema": DETECTIONS_SCHEMA_VERSION, "type": "detections", "device": device, "seq": int(seq),
           "ts": round(result.ts, 3), "frame": {"w": int(result.frame_w), "h": int(result.frame_h)},
           "model": dict(model_ref), "task": result.task,
           "latency_ms": {k: round(float(v), 2) for k, v in result.latency_ms.items()},
           "detections": list(result.detections)}
    if result.classes is not None:
        msg["classes"] = result.classes
    if result.entropy is not None:
        msg["entropy"] = round(float(result.entropy), 6)
    return msg


def detections_wire(result: FrameResult, *, device: str, seq: int, model_ref: dict[str, str]) -> dict[str, Any]:
    """The version-2 payload as published (``edge.contract.wire``)."""
    return compact_detections(_detections_v1_shape(result, device=device, seq=seq, model_ref=model_ref))


def detections_payload(result: FrameResult, *, device: str, seq: int, model_ref: dict[str, str]) -> dict[str, Any]:
    """The decoded form a subscriber gets from ``edge.contract.schema.decode`` for this result (values at wire precision)."""
    return expand_detections(detections_wire(result, device=device, seq=seq, model_ref=model_ref))


def detections_bytes(result: FrameResult, *, device: str, seq: int, model_ref: dict[str, str]) -> bytes:
    return encode(detections_wire(result, device=device, seq=seq, model_ref=model_ref))


def status_payload(device: str, state: str, *, model: dict | None = None, interpreter: str | None = None,
                   source: dict | None = None, config: dict | None = None, reason: str | None = None,
                   ts: float | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {**_env("status", device), "state": state, "ts": time.time() if ts is None else ts,
                           "version": __version__}
    for key, value in (("model", model), ("interpreter", interpreter), ("source", source),
                       ("config", config), ("reason", reason)):
        if value is not None:
            msg[key] = value
    return msg


def will_payload(device: str) -> bytes:
    """The last will: published by the broker when the agent vanishes without a clean disconnect."""
    return encode({**_env("status", device), "state": "offline", "reason": "connection lost (last will)"})


def metrics_payload(device: str, *, uptime_s: float, fps: float, latency: dict[str, float], frames: dict[str, int],
                    outbox: dict[str, int], source: dict, cpu_temp_c: float | None, last_seq: int | None,
                    ts: float | None = None) -> dict[str, Any]:
    return {**_env("metrics", device), "ts": time.time() if ts is None else ts, "uptime_s": round(uptime_s, 3),
            "fps": round(fps, 3), "latency_ms": latency, "frames": frames, "outbox": outbox, "source": source,
            "cpu_temp_c": cpu_temp_c, "last_seq": last_seq}


def config_state_payload(device: str, *, ok: bool, config: dict, request_id: str | None = None,
                         error: str | None = None, ts: float | None = None) -> dict[str, Any]:
    return {**_env("config_state", device), "ts": time.time() if ts is None else ts, "request_id": request_id,
            "ok": bool(ok), "error": error, "config": config}
