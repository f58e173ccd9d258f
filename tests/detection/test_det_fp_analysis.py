"""The study's evaluation pieces: FP types and FP-at-recall on hand-made boxes, and the post-processing variants
(sigma / plain scoring, variance voting) against the device's decoder on hand-made raw outputs."""
from __future__ import annotations

import numpy as np

from convert.detection.fp_analysis import FP_TYPES, match_image, score_set
from convert.detection.rescoring import Detections, decode_variant
from test_det_decode import empty_outputs, identity_info, make_decoder, put


def _fp_types(types):
    return [FP_TYPES[t] if t >= 0 else "tp" for t in types]


def test_fp_types_duplicate_mislocalized_wrong_class_background():
    gt = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    gt_cls = np.array([0, 1])
    boxes = np.array([[0, 0, 10, 10],        # TP (class 0)
                      [0, 0, 10, 11],        # same object again: duplicate
                      [5, 5, 15, 15],        # class 0, IoU 0.14 with gt 0: mislocalized
                      [20, 20, 40, 40],      # class 0 on the class-1 object: wrong class
                      [60, 60, 70, 70]],     # nothing there: background
                     np.float32)
    classes = np.array([0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    tp, types, best = match_image(boxes, classes, scores, gt, gt_cls, 0.5)
    assert _fp_types(types) == ["tp", "duplicate", "mislocalized", "wrong_class", "background"]
    assert tp.tolist() == [True, False, False, False, False]
    # at IoU 0.7 a box with IoU 0.6 is a localization error, not a hit
    tp7, types7, _ = match_image(np.array([[0, 0, 10, 6]], np.float32), np.array([0]), np.array([0.9]),
                                 gt[:1], gt_cls[:1], 0.7)
    assert not tp7[0] and FP_TYPES[types7[0]] == "mislocalized"


def test_fp_at_recall_counts_false_positives_ranked_above_the_needed_tp():
    gt = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 0]))]
    det = Detections(boxes=np.array([[50, 50, 60, 60], [0, 0, 10, 10], [70, 70, 80, 80], [20, 20, 30, 30]], np.float32),
                     classes=np.zeros(4, np.int64), scores=np.array([0.9, 0.8, 0.7, 0.6], np.float32),
                     sigma_mean=np.zeros(4, np.float32))
    s = score_set([det], gt, 0.5)
    assert s.fp_at_recall(0.5) == 1 and s.fp_at_recall(1.0) == 2 and s.max_recall() == 1.0
    assert s.at_threshold(0.75) == {"tp": 1, "fp": 1, "fp_types": {"duplicate": 0, "mislocalized": 0,
                                                                    "wrong_class": 0, "background": 1}}
    assert s.fp_types_at_recall(1.0)["background"] == 2


def _two_overlapping():
    out = empty_outputs()
    # two candidates on one object (cells next to each other at stride 16): the second one is sure of its box
    put(out, 16, 1, 1, 1, mux=0.5, muy=0.5, sig=(0.6, 0.6, 0.6, 0.6), obj=0.9, cls=(0.9, 0.1), lw=0.0, lh=0.0)
    put(out, 16, 1, 1, 0, mux=0.7, muy=0.5, sig=(0.05, 0.05, 0.05, 0.05), obj=0.6, cls=(0.9, 0.1),
        lw=np.log(23 / 10), lh=np.log(27 / 14))
    return out


def test_sigma_variant_is_the_device_decoder():
    out = _two_overlapping()
    dec = make_decoder()
    device = dec.decode(out, None, identity_info(), score_threshold=0.005)
    ours = decode_variant(dec, out, None, identity_info(), "sigma")
    assert len(device) == len(ours.scores)
    np.testing.assert_allclose(ours.scores, [d.score for d in device], rtol=1e-6)
    np.testing.assert_allclose(ours.boxes / 64, [d.box for d in device], atol=1e-6)


def test_scoring_with_and_without_sigma_changes_the_ranking():
    out = _two_overlapping()
    dec = make_decoder()
    sigma = decode_variant(dec, out, None, identity_info(), "sigma")
    plain = decode_variant(dec, out, None, identity_info(), "plain")
    # with (1 - mean sigma) the sure candidate wins NMS (0.6*0.9*0.95 > 0.9*0.9*0.4); without, the unsure one
    assert len(sigma.scores) == len(plain.scores) == 1
    assert abs(sigma.scores[0] - 0.6 * 0.9 * 0.95) < 1e-5 and abs(plain.scores[0] - 0.81) < 1e-5


def test_variance_voting_moves_the_kept_box_towards_the_sure_candidate():
    out = _two_overlapping()
    dec = make_decoder()
    plain = decode_variant(dec, out, None, identity_info(), "plain")
    vote = decode_variant(dec, out, None, identity_info(), "vote")
    sure_cx = (0.7 + 1) * 16
    unsure_cx = (0.5 + 1) * 16
    cx_plain = plain.boxes[0, [0, 2]].mean()
    cx_vote = vote.boxes[0, [0, 2]].mean()
    assert abs(cx_plain - unsure_cx) < 1e-4
    assert abs(cx_vote - sure_cx) < abs(cx_plain - sure_cx) and cx_vote > unsure_cx + 2.0
    assert vote.scores[0] == plain.scores[0]          # voting moves boxes, never rescores


def test_class_agnostic_nms_drops_the_same_object_under_a_second_class():
    out = empty_outputs()
    # one object, two anchors: one says class 0 (sure), the other class 1 (less sure), same box
    put(out, 16, 1, 1, 1, mux=0.5, muy=0.5, sig=(0.1,) * 4, obj=0.9, cls=(0.9, 0.1), lw=0.0, lh=0.0)
    put(out, 16, 1, 1, 2, mux=0.5, muy=0.5, sig=(0.1,) * 4, obj=0.9, cls=(0.1, 0.7), lw=np.log(23 / 37),
        lh=np.log(27 / 58))
    dec = make_decoder()
    aware = decode_variant(dec, out, None, identity_info(), "sigma")
    agnostic = decode_variant(dec, out, None, identity_info(), "sigma_agnostic")
    assert sorted(aware.classes.tolist()) == [0, 1] and agnostic.classes.tolist() == [0]
