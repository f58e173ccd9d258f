"""The compact wire format of detections messages (``"schema": 2``): how agents write it, and its decoded
form. Pure Python (no numpy: the server imports this module too).

Why: a detections message is sent for every processed frame. In the version-1 object shape, every
detection repeated eight key names and wrote each number as a decimal fraction (~200 bytes per detection,
~1.1 kB per frame with four objects: 1/50 of the same 640x480 frame as a JPEG). Version 2 writes each
detection as one fixed-order array of integers, every fraction in thousandths (~75 bytes per detection),
and the envelope carries the model's hash prefix only (the retained status message has its id and full
hash). What is rounded away is below what the model resolves: the int8 detector's sigmoid outputs move in
steps of 1/256, and a box coordinate of 1/1000 of the frame is finer than one model input pixel for any
input up to 1000 pixels wide (1/1000 of a 1920-pixel frame is 1.9 pixels; one input pixel of a 416-pixel
model is 4.6).

Version 2 on the wire (:func:`detections_message` writes it from an agent's frame result)::

    {"schema": 2, "device": "cam-1", "seq": 17, "ts": 1763900000.123, "frame": [640, 480],
     "model": "a71d8e644a5f", "latency_ms": [2.9, 5.8],
     "detections": [[1, "disc", 896, 996, [633, 208, 855, 520], [74, 82, 121, 109], 97, [9, 14, 27, 34]],
                    [0, "square", 512, 640, [100, 100, 300, 400], [50, 61, 80, 90], 70, [8, 9, 20, 31], [], 17]]}

Two optional items follow the eight: ``zones`` (the configured filter zones holding the box centre) and the
``track`` id (the agent's tracker, ``edge.objects``: the confirmed track that took this detection). A detection
with a track and no zones writes ``[]`` for the zones; one without a track (tracking off, or an object not yet
confirmed) stops before it, so messages of agents without tracking are what they were.

The positions in a detection's array are named below (``SCORE`` etc.); the server reads them directly.
Decoded (what :func:`edge.contract.schema.decode` returns for consumers that want named fields, the
version-1 object shape; see :func:`expand_detections`)::

    {"schema": 2, "type": "detections", "device": "cam-1", "seq": 17, "ts": 1763900000.123,
     "frame": {"w": 640, "h": 480}, "model": {"hash": "a71d8e644a5f"},
     "task": "detection", "latency_ms": {"inference": 2.9, "total": 5.8},
     "detections": [{"class_id": 1, "label": "disc", "score": 0.896, "objectness": 0.996,
                     "box": [0.633, 0.208, 0.855, 0.52], "sigma": [0.074, 0.082, 0.121, 0.109],
                     "sigma_mean": 0.097, "box_sigma": [0.009, 0.014, 0.027, 0.034]},
                    {..., "class_id": 0, "label": "square", "track": 17}]}
"""
from __future__ import annotations

from typing import Any, Optional

DETECTIONS_VERSION = 2
MODEL_HASH_DIGITS = 12          # 48 bits: identifies the model among a fleet's; the status message has all 64
MILLI = 1000                    # every fraction travels as an integer count of thousandths
LABEL_CHARS = 100
# Positions in a detection's array.
CLASS_ID, LABEL, SCORE, OBJECTNESS, BOX, SIGMA, SIGMA_MEAN, BOX_SIGMA, ZONES, TRACK = range(10)


def fraction(value: float, hi: Optional[float] = 1.0) -> float:
    """A fraction as an agent states it: clamped to [0, ``hi``] (``hi`` None: >= 0), to 1e-4. Agents rounded
    every fraction to 1e-4 before version 2 existed; the step stays, so the thousandths an agent sends (and
    its zones, tested on these values) are exactly what they were."""
    x = max(0.0, float(value))
    if hi is not None:
        x = min(hi, x)
    return round(x, 4)


def _milli(value: float, hi: Optional[int] = MILLI) -> int:
    """A fraction as an integer count of thousandths, clamped to [0, ``hi``]."""
    n = max(0, int(round(float(value) * MILLI)))
    return n if hi is None else min(hi, n)


def _unit(value: float) -> int:
    return _milli(fraction(value))


def detection_array(d: Any) -> list:
    """One detection as its version-2 array. ``d`` has the attributes of ``edge.decode.Detection`` (class_id,
    label, score, objectness, box, sigma, sigma_mean, box_sigma, zones). A model that predicts no uncertainty
    (plain YOLOv3 head, SSD) has sigma None: it travels as null, never as an invented certainty. A ``track``
    attribute (the tracker's id, None without one) is written after the zones."""
    box_sigma = d.box_sigma
    item = [int(d.class_id), str(d.label)[:LABEL_CHARS], _unit(d.score), _unit(d.objectness),
            [_unit(v) for v in d.box], None if d.sigma is None else [_unit(v) for v in d.sigma],
            None if d.sigma_mean is None else _unit(d.sigma_mean),
            None if box_sigma is None else [_milli(fraction(v, None), None) for v in box_sigma]]
    track = getattr(d, "track", None)
    if d.zones or track is not None:
        item.append(list(d.zones))
    if track is not None:
        item.append(int(track))
    return item


def detections_message(result: Any, *, device: str, seq: int, model_hash: str) -> dict[str, Any]:
    """The version-2 payload of one processed frame, as the agent publishes it. ``result`` has the attributes
    of ``edge.messages.FrameResult`` (ts, frame_w, frame_h, task, detections, classes, entropy, latency_ms).
    Latencies and the entropy go through the roundings the version-1 message applied first (0.01 ms, 1e-6),
    like the fractions (:func:`fraction`), so a frame's bytes are what they were."""
    lat = result.latency_ms
    out: dict[str, Any] = {
        "schema": DETECTIONS_VERSION, "device": device, "seq": int(seq), "ts": round(float(result.ts), 3),
        "frame": [int(result.frame_w), int(result.frame_h)], "model": str(model_hash)[:MODEL_HASH_DIGITS].lower(),
        "latency_ms": [_ms(lat.get("inference", 0.0))] + ([_ms(lat["total"])] if "total" in lat else []),
    }
    if result.task == "detection" or result.detections:
        out["detections"] = [detection_array(d) for d in result.detections]
    if result.classes is not None:
        out["classes"] = [[int(c["class_id"]), str(c["label"]), _milli(c["score"])] for c in result.classes]
    if result.entropy is not None:
        out["entropy"] = round(round(float(result.entropy), 6), 4)
    return out


def _ms(value: float) -> float:
    return round(round(float(value), 2), 1)


# --------------------------------------------------------------------------- decoded form
def expand_detection(item: list) -> dict[str, Any]:
    """One version-2 array (already validated) -> the decoded detection dict."""
    d: dict[str, Any] = {"class_id": item[CLASS_ID], "label": item[LABEL], "score": item[SCORE] / MILLI,
                         "objectness": item[OBJECTNESS] / MILLI, "box": [v / MILLI for v in item[BOX]],
                         "sigma": None if item[SIGMA] is None else [v / MILLI for v in item[SIGMA]],
                         "sigma_mean": None if item[SIGMA_MEAN] is None else item[SIGMA_MEAN] / MILLI}
    if item[BOX_SIGMA] is not None:
        d["box_sigma"] = [v / MILLI for v in item[BOX_SIGMA]]
    if len(item) > ZONES and (item[ZONES] or len(item) == ZONES + 1):
        d["zones"] = list(item[ZONES])
    if len(item) > TRACK:
        d["track"] = item[TRACK]
    return d


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
        msg["classes"] = [{"class_id": c[0], "label": c[1], "score": c[2] / MILLI} for c in wire["classes"]]
    if "entropy" in wire:
        msg["entropy"] = wire["entropy"]
    return msg
