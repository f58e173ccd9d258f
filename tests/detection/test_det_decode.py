"""edge.decode: hand-computed boxes, the uncertainty-aware score, NMS, quantized vs float outputs."""
from __future__ import annotations

import numpy as np
import pytest

from edge.decode import DetectionDecoder, batched_nms, box_iou, nms
from edge.preprocess import LetterboxInfo, letterbox, stretch
from edge.contract.schema import validate
from edge.contract.wire import BOX_SIGMA, SIGMA, SIGMA_MEAN, detection_array, detections_message
from edge.messages import FrameResult

C = 2
ANCHORS = [[[10, 14], [23, 27], [37, 58]], [[81, 82], [135, 169], [344, 319]]]


def identity_info(w=64, h=64) -> LetterboxInfo:
    return LetterboxInfo(frame_w=w, frame_h=h, input_w=w, input_h=h, scale_x=1.0, scale_y=1.0, pad_x=0.0, pad_y=0.0)


def make_decoder(head="gaussian") -> DetectionDecoder:
    return DetectionDecoder(head=head, num_classes=C, strides=[16, 32], anchors=ANCHORS, labels=["square", "disc"],
                            input_size=(64, 64))


def empty_outputs(head="gaussian", fill_sigma=0.5):
    per = (7 if head == "gaussian" else 3) + C
    out = {}
    for s in (16, 32):
        g = 64 // s
        sig = np.zeros((1, g, g, 3 * per), np.float32)
        if head == "gaussian":
            for a in range(3):
                sig[..., a * per + 2:a * per + 6] = fill_sigma
        out[f"s{s}_sigmoid"] = sig
        out[f"s{s}_linear"] = np.zeros((1, g, g, 6), np.float32)
    return out


def put(outputs, stride, cy, cx, anchor, *, mux, muy, sig, obj, cls, lw, lh, head="gaussian"):
    per = (7 if head == "gaussian" else 3) + C
    v = outputs[f"s{stride}_sigmoid"][0, cy, cx]
    base = anchor * per
    if head == "gaussian":
        v[base:base + per] = [mux, muy, *sig, obj, *cls]
    else:
        v[base:base + per] = [mux, muy, obj, *cls]
    outputs[f"s{stride}_linear"][0, cy, cx, anchor * 2:anchor * 2 + 2] = [lw, lh]


def test_decodes_hand_computed_box_score_and_sigma():
    out = empty_outputs()
    # stride 16, cell (row 1, col 2), anchor 1 (23x27): centre ((0.25+2)*16, (0.5+1)*16) = (36, 24)
    put(out, 16, 1, 2, 1, mux=0.25, muy=0.5, sig=(0.1, 0.2, 0.3, 0.4), obj=0.9, cls=(0.2, 0.8),
        lw=np.log(2.0), lh=0.0)
    dets = make_decoder().decode(out, None, identity_info(), score_threshold=0.1)
    assert len(dets) == 1
    d = dets[0]
    w, h = 46.0, 27.0
    expected = np.array([36 - w / 2, 24 - h / 2, 36 + w / 2, 24 + h / 2]) / 64
    np.testing.assert_allclose(d.box, expected, atol=1e-6)
    assert d.class_id == 1 and d.label == "disc"
    assert d.score == pytest.approx(0.9 * 0.8 * (1 - 0.25), rel=1e-5)
    assert d.objectness == pytest.approx(0.9)
    assert d.sigma_mean == pytest.approx(0.25)
    np.testing.assert_allclose(d.box_sigma, [0.1 * 16 / 64, 0.2 * 16 / 64, 0.3 * w / 64, 0.4 * h / 64], rtol=1e-5)
    frame = FrameResult(ts=1.0, frame_w=64, frame_h=64, task="detection", detections=dets, latency_ms={"inference": 1.0})
    validate(detections_message(frame, device="d1", seq=0, model_hash="0" * 64), "detections")


def test_letterbox_mapping_applies_to_boxes_and_sigmas():
    # A 128x64 frame letterboxed into 64x64: scale 0.5, pad_y 16.
    frame = np.zeros((64, 128, 3), np.uint8)
    img, info = letterbox(frame, (64, 64))
    assert img.shape == (64, 64, 3) and info.pad_y == 16 and info.scale_x == 0.5
    out = empty_outputs()
    put(out, 32, 1, 1, 0, mux=0.0, muy=0.0, sig=(0.5, 0.5, 0.5, 0.5), obj=1.0, cls=(1.0, 0.0), lw=0.0, lh=0.0)
    d = make_decoder().decode(out, None, info, score_threshold=0.1)[0]
    # centre (32, 32) in input px -> frame (64, 32) px of 128x64; anchor 81x82 clipped to the frame
    cx_frame = (32 - 0) / 0.5 / 128
    np.testing.assert_allclose(d.box[0], max(0.0, cx_frame - 81 / 0.5 / 128 / 2), atol=1e-6)
    np.testing.assert_allclose(d.box_sigma[0], 0.5 * 32 / 0.5 / 128, rtol=1e-5)
    np.testing.assert_allclose(d.box_sigma[1], 0.5 * 32 / 0.5 / 64, rtol=1e-5)


def test_uncertainty_lowers_score_and_threshold_applies():
    out = empty_outputs()
    put(out, 16, 0, 0, 0, mux=0.5, muy=0.5, sig=(0.8, 0.8, 0.8, 0.8), obj=1.0, cls=(1.0, 0.0), lw=0, lh=0)
    put(out, 16, 3, 3, 0, mux=0.5, muy=0.5, sig=(0.0, 0.0, 0.0, 0.0), obj=1.0, cls=(1.0, 0.0), lw=0, lh=0)
    dets = make_decoder().decode(out, None, identity_info(), score_threshold=0.25)
    assert len(dets) == 1 and dets[0].score == pytest.approx(1.0)
    dets = make_decoder().decode(out, None, identity_info(), score_threshold=0.1)
    assert [round(d.score, 4) for d in dets] == [1.0, 0.2]


def test_plain_head_score_has_no_sigma_factor():
    out = empty_outputs("plain")
    put(out, 32, 0, 1, 2, mux=0.5, muy=0.5, sig=None, obj=0.5, cls=(0.0, 0.6), lw=0, lh=0, head="plain")
    d = make_decoder("plain").decode(out, None, identity_info(), score_threshold=0.1)[0]
    assert d.score == pytest.approx(0.3) and d.sigma is None and d.box_sigma is None
    item = detection_array(d)
    assert item[SIGMA] is None and item[SIGMA_MEAN] is None and item[BOX_SIGMA] is None  # no invented sigma


def test_quantized_outputs_match_float():
    out = empty_outputs()
    put(out, 16, 2, 1, 2, mux=0.75, muy=0.25, sig=(0.1, 0.1, 0.2, 0.2), obj=0.95, cls=(0.9, 0.1),
        lw=-0.5, lh=0.7)
    ref = make_decoder().decode(out, None, identity_info(), score_threshold=0.2)
    for dtype, zero in ((np.int8, -128), (np.uint8, 0)):
        q, quant = {}, {}
        for name, arr in out.items():
            scale = 1 / 256 if "sigmoid" in name else 0.02
            z = zero if "sigmoid" in name else (0 if dtype == np.int8 else 128)
            info = np.iinfo(dtype)
            q[name] = np.clip(np.round(arr / scale + z), info.min, info.max).astype(dtype)
            quant[name] = (scale, z)
        got = make_decoder().decode(q, quant, identity_info(), score_threshold=0.2)
        assert len(got) == len(ref) == 1
        np.testing.assert_allclose(got[0].box, ref[0].box, atol=0.02)
        assert got[0].score == pytest.approx(ref[0].score, abs=0.02)
    with pytest.raises(ValueError, match="scale, zero_point"):
        make_decoder().decode(q, None, identity_info())


def test_outputs_found_by_shape_and_missing_named():
    out = empty_outputs()
    put(out, 32, 0, 0, 0, mux=0.5, muy=0.5, sig=(0, 0, 0, 0), obj=1.0, cls=(1, 0), lw=0, lh=0)
    renamed = {f"output_{i}": v for i, v in enumerate(out.values())}
    assert len(make_decoder().decode(renamed, None, identity_info())) == 1
    with pytest.raises(KeyError, match="s16_sigmoid"):
        make_decoder().decode({"x": out["s16_linear"]}, None, identity_info())


def test_nms_suppresses_overlaps_and_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, 0.99).tolist() == [0, 1, 2]
    assert batched_nms(boxes, scores, np.array([0, 0, 0, 1]), 0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5, max_keep=1).tolist() == [0]
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0)).tolist() == []
    iou = box_iou(boxes[:1], boxes[1:2])[0, 0]
    assert iou == pytest.approx(81 / 119)


def test_decode_nms_and_max_detections():
    out = empty_outputs()
    # the same object predicted by two neighbouring anchors, and a third far away
    put(out, 16, 1, 1, 1, mux=0.5, muy=0.5, sig=(0, 0, 0, 0), obj=0.9, cls=(1, 0), lw=0, lh=0)
    put(out, 16, 1, 1, 0, mux=0.6, muy=0.5, sig=(0, 0, 0, 0), obj=0.8, cls=(1, 0), lw=np.log(23 / 10), lh=np.log(27 / 14))
    put(out, 16, 3, 3, 1, mux=0.5, muy=0.5, sig=(0, 0, 0, 0), obj=0.7, cls=(0, 1), lw=0, lh=0)
    dec = make_decoder()
    dets = dec.decode(out, None, identity_info(), score_threshold=0.1)
    assert [d.class_id for d in dets] == [0, 1]
    assert len(dec.decode(out, None, identity_info(), score_threshold=0.1, max_detections=1)) == 1
    assert [d.class_id for d in dec.decode(out, None, identity_info(), score_threshold=0.1, classes=[1])] == [1]


def test_from_metadata_and_errors():
    meta = {"labels": ["a", "b"], "input": {"width": 64, "height": 64},
            "detection": {"head": "gaussian", "num_classes": 2, "strides": [16, 32], "anchors": ANCHORS,
                          "outputs": {"16": {"sigmoid": "s16_sigmoid", "linear": "s16_linear"}}}}
    dec = DetectionDecoder.from_metadata(meta)
    assert dec.labels == ["a", "b"] and dec.output_names["32"]["linear"] == "s32_linear"
    with pytest.raises(ValueError, match="detection"):
        DetectionDecoder.from_metadata({"labels": ["a"]})
    with pytest.raises(ValueError, match="anchor"):
        DetectionDecoder(head="gaussian", num_classes=2, strides=[16], anchors=ANCHORS)
    with pytest.raises(ValueError, match="channels"):
        out = empty_outputs()
        out["s16_sigmoid"] = out["s16_sigmoid"][..., :-1]
        dec.decode(out, None, identity_info())


def test_stretch_and_bad_frames():
    frame = np.zeros((30, 40, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    img, info = stretch(frame, (20, 10))
    assert img.shape == (10, 20, 3) and img[0, 0, 2] == 255 and img[0, 0, 0] == 0
    np.testing.assert_allclose(info.to_frame_normalized([[0, 0, 20, 10]]), [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="channels"):
        letterbox(np.zeros((4, 4, 2), np.uint8), (8, 8))
    with pytest.raises(ValueError, match="width, height"):
        letterbox(frame, (8,))
    img, info = letterbox(np.zeros((10, 10), np.uint8), (20, 40))
    assert img.shape == (40, 20, 3) and img[0, 0, 0] == 114 and info.pad_y == 10
    boxes = np.array([[0.1, 0.2, 0.5, 0.9]], np.float32)
    np.testing.assert_allclose(info.to_frame_normalized(info.to_input_pixels(boxes)), boxes, atol=1e-6)
