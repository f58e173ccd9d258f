"""The tracking benchmark's own parts: ground truth of the scene generator and the scoring glue around motmetrics."""
from __future__ import annotations

import numpy as np
import pytest

from bench.tracking import accumulate, score
from bench.tracking_scenes import SceneGenerator, SceneSpec
from tests.conftest import require_module

require_module("motmetrics")
SPEC = SceneSpec(seed=1, frames=12, width=320, height=240, objects=4, occluders=1)


def truths():
    return [t for _image, t in SceneGenerator(SPEC).frames()]


def perfect(ts, swap_after=None):
    """Hypotheses equal to the ground truth (normalized boxes); from ``swap_after`` on, objects 1 and 2 (in view
    in every frame of this seed) trade ids."""
    scale = np.array([SPEC.width, SPEC.height] * 2, np.float64)
    out = []
    for i, t in enumerate(ts):
        keep = t.visible >= 0.5
        ids = t.ids[keep].copy()
        if swap_after is not None and i >= swap_after:
            a, b = 1, 2
            ids = np.where(ids == a, b, np.where(ids == b, a, ids))
        out.append((ids, t.boxes[keep] / scale))
    return out


def test_ground_truth_identities_boxes_and_visibility():
    gen = SceneGenerator(SPEC)
    ts = [t for _image, t in gen.frames()]
    assert all(len(t.ids) == SPEC.objects for t in ts)            # kept on screen
    alone = 0
    for t in ts:
        assert np.all((t.visible >= 0) & (t.visible <= 1.0 + 1e-9))
        seen = t.visible > 0
        assert np.all(t.boxes[seen, 2] > t.boxes[seen, 0]) and np.all(t.boxes[seen, 3] > t.boxes[seen, 1])
        assert np.all((t.boxes >= 0) & (t.boxes <= [SPEC.width, SPEC.height] * 2))
        others = np.vstack([t.boxes, np.array(gen.occluders).reshape(-1, 4)])
        for k, box in enumerate(t.boxes):
            overlaps = [j for j, o in enumerate(others) if j != k and o[0] < box[2] and box[0] < o[2]
                        and o[1] < box[3] and box[1] < o[3]]
            inside = box[0] > 0 and box[1] > 0 and box[2] < SPEC.width and box[3] < SPEC.height
            if inside and not overlaps:                      # nothing can hide it: fully visible
                assert t.visible[k] == pytest.approx(1.0, abs=0.02)
                alone += 1
    assert alone > 0


def test_scoring_counts_a_swap_and_nothing_for_a_perfect_tracker():
    ts = truths()
    assert all({1, 2} <= set(t.ids[t.visible >= 0.5].tolist()) for t in ts)
    good = score([accumulate(ts, perfect(ts), SPEC, 0.5)], ["s"])
    assert good["mota"] == pytest.approx(1.0) and good["num_switches"] == 0 and good["idf1"] == pytest.approx(1.0)
    swapped = score([accumulate(ts, perfect(ts, swap_after=6), SPEC, 0.5)], ["s"])
    assert swapped["num_switches"] == 2 and swapped["switches_per_scene"] == [2] and swapped["idf1"] < 1.0
