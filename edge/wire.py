"""The compact wire format of detections messages (``"schema": 2``) and its decoded form. Pure Python.

Why: a detections message is sent for every processed frame. In the version-1 object shape, every
detection repeated eight key names and wrote each number as a decimal fraction (~200 bytes per detection,
~1.1 kB per frame with four objects: 1/50 of the same 640x480 frame as a JPEG). Version 2 writes each
detection as one fixed-order array of integers, every fraction in thousandths (~75 bytes per detection),
and the envelope carries the model's hash prefix only (the retained status message has its id and full
hash). What is rounded away is below what the model resolves: the int8 detector's sigmoid outputs move in
steps of 1/256, and a box coordinate of 1/1000 of the frame is finer than one model input pixel for any
input up to 1000 pixels wide (1/1000 of a 1920-pixel frame is 1.9 pixels; one input pixel of a 416-pixel
model is 4.6).

Version 2 on the wire::

    {"schema": 2, "device": "cam-1", "seq": 17, "ts": 1763900000.123, "frame": [640, 480],
     "model": "a71d8e644a5f", "latency_ms": [2.9, 5.8],
     "detections": [[1, "disc", 896, 996, [633, 208, 855, 520], [74, 82, 121, 109], 97, [9, 14, 27, 34]]]}

Decoded (what :func:`edge.schema.decode` returns, the version-1 object shape)::

    {"schema": 2, "type": "detections", "device": "cam-1", "seq": 17, "ts": 1763900000.123,
     "frame": {"w": 640, "h": 480}, "model": {"hash": "a71d8e644a5f"},
     "task": "detection", "latency_ms": {"inference": 2.9, "total": 5.8},
     "detections": [{"class_id": 1, "label": "disc", "score": 0.896, "objectness": 0.996,
                     "box": [0.633, 0.208, 0.855, 0.52], "sigma": [0.074, 0.082, 0.121, 0.109],
                     "sigma_mean": 0.097, "box_sigma": [0.009, 0.014, 0.027, 0.034]}]}
"""
from __future__ import annotations

from typing import Any

MODEL_HASH_DIGITS = 12          # 48 bits: identifies the model among a fleet's; the status message has all 64
_MILLI = 1000                   # every fraction travels as an integer count of thousandths


def _q(value: float, scale: int, hi: int | None) -> int:
    """A value in [0, 1] (or >= 0 when ``hi`` is None) as an integer count of 1/scale."""
    n = int(round(float(value) * scale))
    n = max(0, n)
    return min(hi, n) if hi is not None else n


def _quad(values, scale: int, hi: int | None) -> list[int]:
    return [_q(v, scale, hi) for v in values]


def compact_detection(d: dict[str, Any]) -> list:
    """One decoded detection dict -> its version-2 array."""
    box_sigma = d.get("box_sigma")
    item = [int(d["class_id"]), str(d["label"]), _q(d["score"], _MILLI, _MILLI), _q(d["objectness"], _MILLI, _MILLI),
            _quad(d["box"], _MILLI, _MILLI),
            None if d.get("sigma") is None else _quad(d["sigma"], _MILLI, _MILLI),
            None if d.get("sigma_mean") is None else _q(d["sigma_mean"], _MILLI, _MILLI),
            None if box_sigma is None else _quad(box_sigma, _MILLI, None)]
    if d.get("zones"):
        item.append(list(d["zones"]))
    return item


def expand_detection(item: list) -> dict[str, Any]:
    """One version-2 array (already validated) -> the decoded detection dict."""
    d: dict[str, Any] = {"class_id": item[0], "label": item[1], "score": item[2] / _MILLI,
                         "objectness": item[3] / _MILLI, "box": [v / _MILLI for v in item[4]],
                         "sigma": None if item[5] is None else [v / _MILLI for v in item[5]],
                         "sigma_mean": None if item[6] is None else item[6] / _MILLI}
    if item[7] is not None:
        d["box_sigma"] = [v / _MILLI for v in item[7]]
    if len(item) > 8:
        d["zones"] = list(item[8])
    return d


def compact_detections(msg: dict[str, Any]) -> dict[str, Any]:
    """A decoded detections message (version-1 shape) -> the version-2 wire payload."""
    lat = msg.get("latency_ms") or {}
    out: dict[str, Any] = {
        "schema": 2, "device": msg["device"], "seq": int(msg["seq"]),
        "ts": round(float(msg["ts"]), 3), "frame": [int(msg["frame"]["w"]), int(msg["frame"]["h"])],
        "model": str(msg["model"]["hash"])[:MODEL_HASH_DIGITS].lower(),
        "latency_ms": [round(float(lat.get("inference", 0.0)), 1)]
        + ([round(float(lat["total"]), 1)] if "total" in lat else []),
    }
    if msg.get("task", "detection") == "detection" or msg.get("detections"):
        out["detections"] = [compact_detection(d) for d in msg.get("detections", [])]
    if msg.get("classes") is not None:
        out["classes"] = [[int(c["class_id"]), str(c["label"]), _q(c["score"], _MILLI, _MILLI)]
                          for c in msg["classes"]]
    if msg.get("entropy") is not None:
        out["entropy"] = round(float(msg["entropy"]), 4)
    return out


def expand_detections(wire: dict[str, Any]) -> dict[str, Any]:
    """A validated version-2 payload -> the decoded form (version-1 shape, ``schema`` stays 2)."""
    lat = wire["latency_ms"]
    msg: dict[str, Any] = {
        "schema": wire["schema"], "type": "detections", "device": wire["device"], "seq": wire["seq"],
        "ts": wire["ts"], "frame": {"w": wire["frame"][0], "h": wire["frame"][1]},
        "model": {"hash": wire["model"]},
        "task": "classification" if "classes" in wire and "detections" not in wire else "detection",
        "latency_ms": {"inference": lat[0], **({"total": lat[1]} if len(lat) > 1 else {})},
        "detections": [expand_detection(item) for item in wire.get("detections", [])],
    }
    if "classes" in wire:
        msg["classes"] = [{"class_id": c[0], "label": c[1], "score": c[2] / _MILLI} for c in wire["classes"]]
    if "entropy" in wire:
        msg["entropy"] = wire["entropy"]
    return msg
