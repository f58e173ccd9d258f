"""SSD detectors as plain detectors (edge/ssd.py) against a straightforward reference written here:
anchors generated layer by layer, cell by cell, anchor by anchor in plain Python; every box decoded one at a
time; the best class per box by a loop; NMS as the textbook greedy loop. Then the real teacher (when fetched)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.preprocess import prepare
from edge.ssd import SSDDecoder, ssd_anchors

TEACHER_ANCHORS = {
    "num_layers": 6, "min_scale": 0.2, "max_scale": 0.95, "input_size": [300, 300],
    "strides": [16, 32, 64, 128, 256, 512], "aspect_ratios": [1.0, 2.0, 0.5, 3.0, 0.3333],
    "offset": [0.5, 0.5], "reduce_boxes_in_lowest_layer": True, "interpolated_scale_aspect_ratio": 1.0,
}


def reference_anchors(spec):
    """MediaPipe's SSD anchor rules, spelled out one anchor at a time (y, x, h, w)."""
    n = spec["num_layers"]
    lo, hi = spec["min_scale"], spec["max_scale"]
    scale = lambda i: (lo + hi) / 2 if n == 1 else lo + (hi - lo) * i / (n - 1)  # noqa: E731
    out = []
    layer = 0
    while layer < n:
        cell = []
        last = layer
        while last < n and spec["strides"][last] == spec["strides"][layer]:
            if last == 0 and spec.get("reduce_boxes_in_lowest_layer"):
                cell += [(0.1, 1.0), (scale(0), 2.0), (scale(0), 0.5)]
            else:
                for r in spec["aspect_ratios"]:
                    cell.append((scale(last), r))
                if spec.get("interpolated_scale_aspect_ratio", 1.0) > 0:
                    nxt = 1.0 if last == n - 1 else scale(last + 1)
                    cell.append((math.sqrt(scale(last) * nxt), spec.get("interpolated_scale_aspect_ratio", 1.0)))
            last += 1
        rows = math.ceil(spec["input_size"][0] / spec["strides"][layer])
        cols = math.ceil(spec["input_size"][1] / spec["strides"][layer])
        for y in range(rows):
            for x in range(cols):
                for s, r in cell:
                    out.append(((y + 0.5) / rows, (x + 0.5) / cols, s / math.sqrt(r), s * math.sqrt(r)))
        layer = last
    return np.array(out, np.float64)


def reference_decode(enc, logits, anchors, scales, ignore, threshold, iou):
    """One box at a time -> [(class, score, x1, y1, x2, y2)] after per-class greedy NMS, input-normalized."""
    cands = []
    for i in range(enc.shape[0]):
        ty, tx, th, tw = enc[i]
        ya, xa, ha, wa = anchors[i]
        yc = ty / scales[0] * ha + ya
        xc = tx / scales[1] * wa + xa
        h = math.exp(th / scales[2]) * ha
        w = math.exp(tw / scales[3]) * wa
        best, best_c = -1.0, -1
        for c in range(logits.shape[1]):
            if c in ignore:
                continue
            p = 1.0 / (1.0 + math.exp(-logits[i, c]))
            if p > best:
                best, best_c = p, c
        if best > threshold:
            cands.append((best_c, best, xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2))
    cands.sort(key=lambda d: -d[1])
    kept = []
    for d in cands:
        if all(k[0] != d[0] or _iou(k[2:], d[2:]) <= iou for k in kept):
            kept.append(d)
    return kept


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _identity_info(w=300, h=300):
    _, info = prepare(np.zeros((h, w, 3), np.uint8), (w, h), "stretch")
    return info


def test_anchors_equal_reference_and_give_the_teachers_1917_boxes():
    ours = ssd_anchors(TEACHER_ANCHORS)
    ref = reference_anchors(TEACHER_ANCHORS)
    assert ours.shape == (1917, 4) == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    other = dict(TEACHER_ANCHORS, strides=[8, 16, 16, 16], num_layers=4, input_size=[128, 160],
                 reduce_boxes_in_lowest_layer=False, aspect_ratios=[1.0, 2.0])
    np.testing.assert_allclose(ssd_anchors(other), reference_anchors(other), rtol=1e-5, atol=1e-6)


def test_raw_ssd_decoding_equals_reference():
    rng = np.random.default_rng(3)
    n, c = 1917, 6
    enc = rng.normal(0, 2.0, (n, 4)).astype(np.float32)
    logits = rng.normal(-4, 2.0, (n, c)).astype(np.float32)
    labels = ["bg", "a", "b", "c", "d", "e"]
    dec = SSDDecoder(box_coding="anchors", labels=labels, anchors=TEACHER_ANCHORS, ignore_classes=[0],
                     outputs={"boxes": "enc", "scores": "cls"})
    got = dec.decode({"enc": enc[None], "cls": logits[None]}, None, _identity_info(), score_threshold=0.5,
                     iou_threshold=0.5, max_detections=10_000)
    ref = reference_decode(enc.astype(np.float64), logits.astype(np.float64), reference_anchors(TEACHER_ANCHORS),
                           (10, 10, 5, 5), {0}, 0.5, 0.5)
    assert len(got) == len(ref) > 20
    for d, r in zip(got, ref):
        assert d.class_id == r[0] and d.label == labels[r[0]]
        assert d.score == pytest.approx(r[1], abs=1e-5)
        np.testing.assert_allclose(d.box, np.clip(r[2:], 0, 1), atol=1e-4)
        assert d.sigma is None and d.sigma_mean is None and d.box_sigma is None


def test_postprocess_outputs_decode_to_frame_boxes():
    """TFLite_Detection_PostProcess: (ymin, xmin, ymax, xmax) normalized, class ids, scores, count."""
    boxes = np.array([[[0.1, 0.2, 0.5, 0.4], [0.3, 0.3, 0.9, 0.8], [0.0, 0.0, 0.1, 0.1], [0, 0, 0, 0]]], np.float32)
    classes = np.array([[0, 2, 1, 0]], np.float32)
    scores = np.array([[0.9, 0.6, 0.3, 0.0]], np.float32)
    count = np.array([3], np.float32)
    dec = SSDDecoder(box_coding="postprocess", labels=["person", "bicycle", "car"])
    frame = np.zeros((480, 640, 3), np.uint8)
    _, info = prepare(frame, (320, 320), "stretch")
    got = dec.decode({"a": boxes, "b": classes, "c": scores, "d": count}, None, info, score_threshold=0.5)
    assert [(d.label, round(d.score, 3)) for d in got] == [("person", 0.9), ("car", 0.6)]
    np.testing.assert_allclose(got[0].box, (0.2, 0.1, 0.4, 0.5), atol=1e-6)
    only_car = dec.decode({"a": boxes, "b": classes, "c": scores, "d": count}, None, info, score_threshold=0.5,
                          classes=[2])
    assert [d.label for d in only_car] == ["car"]


def test_bad_metadata_is_refused_with_the_key():
    with pytest.raises(ValueError, match="box_coding"):
        SSDDecoder(box_coding="yolo", labels=["a"])
    with pytest.raises(ValueError, match="anchors"):
        SSDDecoder(box_coding="anchors", labels=["a"])
    with pytest.raises(ValueError, match="unknown key"):
        ssd_anchors(dict(TEACHER_ANCHORS, stride=[1]))
    dec = SSDDecoder(box_coding="anchors", labels=["a", "b"], anchors=dict(TEACHER_ANCHORS, num_layers=5,
                                                                            strides=[16, 32, 64, 128, 256]))
    with pytest.raises(ValueError, match="anchor settings give"):
        dec.decode({"x": np.zeros((1, 1917, 4), np.float32), "y": np.zeros((1, 1917, 2), np.float32)}, None,
                   _identity_info())


def test_real_teacher_through_the_agent_engine_equals_reference(real_data):
    """The fetched teacher, run by the agent's Engine on a real vtest.avi frame: its raw outputs decoded by the
    reference give the same persons as the Engine's decoder, and there are persons."""
    import cv2

    from edge.config import ModelConfig, Settings
    from edge.engine import Engine
    teacher = real_data("teacher/ssd_mobilenetv2_oidv4_fp16.tflite")
    video = real_data("video/vtest.avi")
    eng = Engine(ModelConfig(path=teacher, threads=1), Settings())
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    assert ok
    image, info = eng.preprocess(frame)
    outputs = eng.infer(image)
    got = eng.decoder.decode(outputs, eng.quant, info, score_threshold=0.4, iou_threshold=0.5, max_detections=300)
    enc = outputs["raw_outputs/box_encodings"][0].astype(np.float64)
    logits = outputs["raw_outputs/class_predictions"][0].astype(np.float64)
    ref = reference_decode(enc, logits, reference_anchors(TEACHER_ANCHORS), (10, 10, 5, 5), {0}, 0.4, 0.5)
    assert [(d.class_id, round(d.score, 4)) for d in got] == [(r[0], round(r[1], 4)) for r in ref]
    persons = [d for d in got if d.label == "Person"]
    assert len(persons) >= 4
    # stretch: input-normalized boxes are frame-normalized boxes
    for d, r in zip(got, ref):
        np.testing.assert_allclose(d.box, np.clip(r[2:], 0, 1), atol=1e-4)
