"""The live-path shortcuts of edge.decode give exactly what the straightforward computation gives."""
from __future__ import annotations

import numpy as np
import pytest

from edge.decode import DetectionDecoder, box_iou, nms

ANCHORS = [[[10, 14], [23, 27], [37, 58]], [[81, 82], [135, 169], [344, 319]]]


def quantized_outputs(head: str, classes: int, rng) -> tuple[dict, dict]:
    per = (7 if head == "gaussian" else 3) + classes
    out, quant = {}, {}
    for s in (16, 32):
        g = 128 // s
        # objectness mostly low, a few anchors high, like a real frame
        sig = rng.integers(0, 60, (1, g, g, 3 * per)).astype(np.uint8)
        hot = rng.random((1, g, g, 3)) < 0.15
        obj_col = 6 if head == "gaussian" else 2
        for a in range(3):
            col = a * per + obj_col
            sig[..., col] = np.where(hot[..., a], rng.integers(100, 256, (1, g, g)), sig[..., col])
            sig[..., a * per:a * per + 2] = rng.integers(0, 256, (1, g, g, 2))
        lin = rng.integers(0, 256, (1, g, g, 6)).astype(np.uint8)
        out[f"s{s}_sigmoid"], out[f"s{s}_linear"] = sig, lin
        quant[f"s{s}_sigmoid"], quant[f"s{s}_linear"] = (1 / 256, 0), (0.006, 140)
    return out, quant


@pytest.mark.parametrize("head", ["gaussian", "plain"])
@pytest.mark.parametrize("threshold", [0.0, 0.25, 0.6])
def test_candidates_equal_the_filtered_full_decoding(head, threshold):
    rng = np.random.default_rng(7)
    dec = DetectionDecoder(head=head, num_classes=3, strides=[16, 32], anchors=ANCHORS, input_size=(128, 128))
    outputs, quant = quantized_outputs(head, 3, rng)
    full = dec.raw_predictions(outputs, quant)
    keep = full["obj"] > threshold if threshold > 0 else np.ones(full["obj"].size, bool)
    fast = dec.candidates(outputs, quant, threshold)
    assert 0 < int(keep.sum()) == fast["obj"].size
    for key in full:
        np.testing.assert_array_equal(fast[key], full[key][keep], err_msg=key)


def greedy_reference(boxes, scores, thr, max_keep=None):
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if max_keep and len(keep) >= max_keep:
            break
        order = [j for j in order if box_iou(boxes[i:i + 1], boxes[j:j + 1])[0, 0] <= thr]
    return keep


@pytest.mark.parametrize("n", [40, 600])        # the matrix path (<= 512 boxes) and the row-by-row path
def test_nms_matches_the_textbook_greedy(n):
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
    wh = rng.uniform(5, 30, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.choice(np.linspace(0.1, 1, 25), n).astype(np.float32)   # ties on purpose
    assert list(nms(boxes, scores, 0.45)) == greedy_reference(boxes, scores, 0.45)
    assert list(nms(boxes, scores, 0.3, max_keep=5)) == greedy_reference(boxes, scores, 0.3, 5)
