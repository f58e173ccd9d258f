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


def test_sigma_quality_tells_an_informative_sigma_from_a_useless_one():
    """Detections made from the ground truth with errors drawn from their own sigma: calibrated (error / sigma has
    std 1) and ranked (large sigma, large error); the same errors under shuffled sigmas: no rank correlation."""
    from bench.tracking import sigma_quality
    from edge.decode import Detection
    spec = SceneSpec(seed=3, frames=40, width=320, height=240, objects=4, occluders=0)
    ts = [t for _image, t in SceneGenerator(spec).frames()]
    rng = np.random.default_rng(0)
    scale = np.array([spec.width, spec.height] * 2, np.float64)

    def detections(shuffle: bool):
        frames = []
        for t in ts:
            dets = []
            for box in t.boxes / scale:
                cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
                sig = np.array([w, h, w, h]) * rng.uniform(0.005, 0.08, 4)    # 16x spread of sigma per box size
                e = sig * rng.normal(0, 1, 4)
                if shuffle:
                    sig = np.array([w, h, w, h]) * rng.uniform(0.005, 0.08, 4)
                cx, cy, w, h = cx + e[0], cy + e[1], w + e[2], h + e[3]
                dets.append(Detection(0, "square", 0.9, 0.9, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                                      (0.1,) * 4, 0.1, tuple(sig.tolist())))
            frames.append(dets)
        return frames

    scenes = [(spec, ts)]
    good = sigma_quality(scenes, [detections(False)])
    useless = sigma_quality(scenes, [detections(True)])
    assert good["detections"] == useless["detections"] > 100
    for k in ("cx", "cy", "w", "h"):
        assert good[k]["spearman_per_size"] > 0.4 and 0.8 < good[k]["z_std"] < 1.25, (k, good[k])
        assert abs(useless[k]["spearman_per_size"]) < 0.2, (k, useless[k])
        assert good[k]["nll_sigma"] < good[k]["nll_constant"] - 0.2, (k, good[k])       # sigma is worth nats
        assert useless[k]["nll_sigma"] > useless[k]["nll_constant"], (k, useless[k])


def test_validation_and_test_seeds_are_kept_apart(capsys):
    from bench.tracking import main
    assert main(["--first-seed", "5", "--scenes", "8"]) == 2
    assert "mixes validation seeds" in capsys.readouterr().err
