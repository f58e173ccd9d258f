"""The agent writes the version-2 message from Detection objects directly (``edge.contract.wire``). The bytes of
a frame are those of the former path, kept below as the reference: Detection.to_message(digits=4) (+ zones of
that rounded box) -> version-1 message -> compact_detections, as of commit 2e10e42."""
from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from edge.contract import schema
from edge.contract.wire import ZONES, detection_array, detections_message, expand_detection
from edge.decode import Detection
from edge.engine import in_zones
from edge.messages import FrameResult, detections_bytes
from edge.zones import zones_of


# --------------------------------------------------------------------------- the former path (reference)
def _old_to_message(d: Detection, digits: int = 4) -> dict:
    def r(x, lo=0.0, hi=1.0):
        x = max(lo, float(x))
        if hi is not None:
            x = min(hi, x)
        return round(x, digits)
    msg = {"class_id": int(d.class_id), "label": str(d.label)[:100], "score": r(d.score),
           "objectness": r(d.objectness), "box": [r(v) for v in d.box],
           # a model without sigma: null since 2026-12-07 (issue 16), where the former path wrote zeros
           "sigma": None if d.sigma is None else [r(v) for v in d.sigma],
           "sigma_mean": None if d.sigma_mean is None else r(d.sigma_mean)}
    if d.box_sigma is not None:
        msg["box_sigma"] = [r(v, hi=None) for v in d.box_sigma]
    return msg


def _old_engine_dicts(dets, zones) -> list[dict]:
    out = []
    for d in dets:
        m = _old_to_message(d)
        if zones:
            inside = zones_of(m["box"], zones)
            if not inside:
                continue
            m["zones"] = inside
        out.append(m)
    return out


def _old_q(value, scale, hi):
    n = max(0, int(round(float(value) * scale)))
    return min(hi, n) if hi is not None else n


def _old_compact_detection(d: dict) -> list:
    box_sigma = d.get("box_sigma")
    item = [int(d["class_id"]), str(d["label"]), _old_q(d["score"], 1000, 1000), _old_q(d["objectness"], 1000, 1000),
            [_old_q(v, 1000, 1000) for v in d["box"]],
            None if d["sigma"] is None else [_old_q(v, 1000, 1000) for v in d["sigma"]],
            None if d["sigma_mean"] is None else _old_q(d["sigma_mean"], 1000, 1000),
            None if box_sigma is None else [_old_q(v, 1000, None) for v in box_sigma]]
    if d.get("zones"):
        item.append(list(d["zones"]))
    return item


def _old_bytes(result, dicts, *, device, seq, model_ref) -> bytes:
    lat = {k: round(float(v), 2) for k, v in result.latency_ms.items()}
    msg = {"ts": round(result.ts, 3), "task": result.task, "detections": dicts, "classes": result.classes,
           "entropy": None if result.entropy is None else round(float(result.entropy), 6)}
    out = {"schema": 2, "device": device, "seq": int(seq), "ts": round(float(msg["ts"]), 3),
           "frame": [int(result.frame_w), int(result.frame_h)], "model": str(model_ref["hash"])[:12].lower(),
           "latency_ms": [round(float(lat.get("inference", 0.0)), 1)]
           + ([round(float(lat["total"]), 1)] if "total" in lat else [])}
    if msg["task"] == "detection" or dicts:
        out["detections"] = [_old_compact_detection(d) for d in dicts]
    if msg["classes"] is not None:
        out["classes"] = [[int(c["class_id"]), str(c["label"]), _old_q(c["score"], 1000, 1000)] for c in msg["classes"]]
    if msg["entropy"] is not None:
        out["entropy"] = round(float(msg["entropy"]), 4)
    return schema.encode(out)


# --------------------------------------------------------------------------- inputs that probe every rounding
def _value(rng: random.Random, lo: float = 0.0, hi: float = 1.0) -> float:
    """A fraction as the decoder makes them (float32), or one on a rounding tie of 1e-4 or 1e-3 (a hair either
    side, or exactly), or just outside [lo, hi] (clamping)."""
    kind = rng.randrange(6)
    if kind == 0:
        return float(np.float32(rng.uniform(lo, hi)))
    if kind == 1:
        return rng.randrange(int(lo * 20000), int(hi * 20000)) / 20000 + rng.choice((-1e-12, 0.0, 1e-12))
    if kind == 2:
        return rng.randrange(int(lo * 2000), int(hi * 2000)) / 2000 + rng.choice((-1e-12, 0.0, 1e-12))
    if kind == 3:
        return rng.choice((lo - 0.01, hi + 0.02, lo, hi))
    return rng.uniform(lo, hi)


def _detection(rng: random.Random) -> Detection:
    if rng.random() < 0.2:                      # plain head: no sigma
        sigma, sigma_mean, box_sigma = None, None, None
    else:
        sigma = tuple(_value(rng) for _ in range(4))
        sigma_mean, box_sigma = _value(rng), tuple(_value(rng, 0.0, 1.5) for _ in range(4))
    label = rng.choice(("person", "car", "x" * 120))
    return Detection(class_id=rng.randrange(3), label=label, score=_value(rng), objectness=_value(rng),
                     box=tuple(_value(rng) for _ in range(4)), sigma=sigma, sigma_mean=sigma_mean, box_sigma=box_sigma)


def _latency(rng: random.Random) -> float:
    return rng.choice((rng.uniform(0, 50), rng.randrange(0, 5000) / 100 + 0.005, rng.randrange(0, 500) / 20))


def _frames(n: int, seed: int = 5):
    rng = random.Random(seed)
    # zones whose edges pass within 1e-4 of box centres, where the box's precision decides
    zones = [SimpleNamespace(name="left", polygon=[(0, 0), (0.50005, 0), (0.50005, 1), (0, 1)]),
             SimpleNamespace(name="top", polygon=[(0, 0), (1, 0), (1, 0.49995), (0, 0.49995)])]
    for i in range(n):
        dets = [_detection(rng) for _ in range(rng.randrange(0, 5))]
        if rng.random() < 0.3:
            # centres at 0.50005 +- 1e-5 (x) and 0.49995 +- 1e-5 (y)
            x, y = 0.50005 + rng.choice((-1, 0, 1)) * 1e-5, 0.49995 + rng.choice((-1, 0, 1)) * 1e-5
            dets.append(Detection(class_id=0, label="edge", score=0.5, objectness=0.6, box=(x - 0.1, y - 0.1, x + 0.1, y + 0.1),
                                  sigma=(0.1,) * 4, sigma_mean=0.1, box_sigma=(0.01,) * 4))
        task = "classification" if i % 10 == 9 else "detection"
        classes = entropy = None
        if task == "classification":
            dets = []
            classes = [{"class_id": c, "label": f"c{c}", "score": round(_value(rng), 6)} for c in range(3)]
            entropy = rng.choice((rng.uniform(0, 3), rng.randrange(0, 30000) / 10000 + 0.00005))
        latency = {"inference": _latency(rng)} | ({"total": _latency(rng)} if rng.random() < 0.8 else {})
        yield (FrameResult(ts=1_763_900_000 + rng.uniform(0, 1e5), frame_w=640, frame_h=480, task=task,
                           detections=dets, classes=classes, entropy=entropy, latency_ms=latency),
               zones if rng.random() < 0.3 else None)


# --------------------------------------------------------------------------- tests
def test_a_frame_has_the_bytes_of_the_former_path():
    ref = {"id": "m", "hash": "0123456789ABCDEF" * 4}
    compared = 0
    for seq, (frame, zones) in enumerate(_frames(3000)):
        old = _old_bytes(frame, _old_engine_dicts(frame.detections, zones), device="cam-1", seq=seq, model_ref=ref)
        if zones:
            frame.detections = in_zones(frame.detections, zones)
        new = detections_bytes(frame, device="cam-1", seq=seq, model_ref=ref)
        assert new == old, (seq, frame)
        schema.parse(new, "detections")
        compared += len(frame.detections)
    assert compared > 3000


def test_rounding_ties_are_those_of_the_former_path():
    """Fractions are clamped, rounded to 1e-4 first, then to thousandths (half to even): 0.00149 -> 0.0015 -> 2
    (directly it would be 1); box_sigma may exceed 1; a head without sigma reports null (no invented zeros)."""
    d = Detection(class_id=2, label="car", score=0.00149, objectness=0.0015, box=(-0.2, 0.0005, 0.9996, 1.3),
                  sigma=None, sigma_mean=None, box_sigma=None)
    assert detection_array(d) == [2, "car", 2, 2, [0, 0, 1000, 1000], None, None, None]
    g = Detection(class_id=0, label="p", score=0.5, objectness=0.5, box=(0.1, 0.1, 0.2, 0.2), sigma=(0.1,) * 4,
                  sigma_mean=0.1, box_sigma=(1.5, 0.0, 0.00149, -0.1), zones=("door",))
    assert detection_array(g)[7:] == [[1500, 0, 2, 0], ["door"]]


def test_zones_are_tested_on_the_published_box():
    zone = SimpleNamespace(name="left", polygon=[(0, 0), (0.50004, 0), (0.50004, 1), (0, 1)])
    # raw centre 0.500035 is left of the zone's edge; the published box (0.4001, 0.6) has its centre at 0.50005
    d = Detection(class_id=0, label="p", score=0.5, objectness=0.5, box=(0.40006, 0.1, 0.60001, 0.2),
                  sigma=None, sigma_mean=None, box_sigma=None)
    assert zones_of(d.box, [zone]) == ["left"] and in_zones([d], [zone]) == []
    assert [x.zones for x in in_zones([replace(d, box=(0.3, 0.1, 0.5, 0.2))], [zone])] == [("left",)]


def test_wire_function_takes_plain_attributes_and_decodes_back():
    det = SimpleNamespace(class_id=1, label="disc", score=0.8961, objectness=0.9958, box=(0.633, 0.208, 0.855, 0.52),
                          sigma=(0.074, 0.082, 0.121, 0.109), sigma_mean=0.0965, box_sigma=(0.009, 0.014, 0.027, 0.034),
                          zones=("door",))
    frame = SimpleNamespace(ts=1763900000.1234, frame_w=640, frame_h=480, task="detection", detections=[det],
                            classes=None, entropy=None, latency_ms={"inference": 2.94, "total": 5.85})
    msg = detections_message(frame, device="cam-1", seq=17, model_hash="A71D8E644A5F0011")
    assert msg == {"schema": 2, "device": "cam-1", "seq": 17, "ts": 1763900000.123, "frame": [640, 480],
                   "model": "a71d8e644a5f", "latency_ms": [2.9, 5.8],
                   "detections": [[1, "disc", 896, 996, [633, 208, 855, 520], [74, 82, 121, 109], 96, [9, 14, 27, 34],
                                   ["door"]]]}
    back = schema.decode(schema.encode(msg), "detections")
    schema.validate_decoded_detections(back)
    assert back["detections"] == [expand_detection(msg["detections"][0])]
    assert back["detections"][0]["zones"] == ["door"] and back["detections"][0]["score"] == 0.896
    assert msg["detections"][0][ZONES] == ["door"]


@pytest.mark.parametrize("task", ["detection", "classification"])
def test_an_empty_frame_keeps_its_shape(task):
    frame = FrameResult(ts=1.0, frame_w=64, frame_h=48, task=task, latency_ms={"inference": 1.0})
    msg = detections_message(frame, device="d", seq=0, model_hash="0" * 64)
    assert ("detections" in msg) == (task == "detection") and "classes" not in msg
