"""Build the MQTT payloads of ``edge.contract.schema`` (detections, status, metrics, config state). Pure functions."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from edge import __version__
from edge.contract.schema import SCHEMA_VERSION, encode
from edge.contract.wire import detections_message
from edge.decode import Detection


@dataclass
class FrameResult:
    """What the inference thread hands the publisher for one processed frame."""
    ts: float                       # capture time (unix seconds)
    frame_w: int
    frame_h: int
    task: str
    detections: list[Detection] = field(default_factory=list)   # with their zones when zones are configured
    classes: Optional[list[dict]] = None                          # classification top-k (edge.classify.top_k)
    entropy: Optional[float] = None
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.detections and not self.classes


def _env(kind: str, device: str) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "type": kind, "device": device}


def detections_bytes(result: FrameResult, *, device: str, seq: int, model_ref: dict[str, str]) -> bytes:
    """The detections message of one frame as published: the version-2 payload (``edge.contract.wire``)."""
    return encode(detections_message(result, device=device, seq=seq, model_hash=model_ref["hash"]))


def status_payload(device: str, state: str, *, model: dict | None = None, interpreter: str | None = None,
                   source: dict | None = None, config: dict | None = None, reason: str | None = None,
                   clock: dict | None = None, delivery: dict | None = None,
                   ts: float | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {**_env("status", device), "state": state, "ts": time.time() if ts is None else ts,
                           "version": __version__}
    for key, value in (("model", model), ("interpreter", interpreter), ("source", source),
                       ("config", config), ("reason", reason), ("clock", clock), ("delivery", delivery)):
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
