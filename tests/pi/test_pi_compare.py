"""The x86-vs-Pi comparison itself must be able to fail: pure logic, default suite."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pi_compare import ROUNDING, Tolerance, candidate_step_differences, compare_frames, noise_envelope

META = {"input": {"width": 256, "height": 256, "resize": "letterbox"}, "detection": {"strides": [16, 32]}}
QUANT = {"s16_sigmoid": (1 / 256, 0), "s32_sigmoid": (1 / 256, 0), "s16_linear": (0.01, 128), "s32_linear": (0.02, 128)}
TOL = Tolerance(box=0.01, sigma=0.03, score=0.03, source="test")


def det(label="disc", class_id=1, score=0.8, box=(0.1, 0.1, 0.3, 0.3), sigma=(0.1, 0.1, 0.2, 0.2), obj=0.9):
    return {"class_id": class_id, "label": label, "score": score, "objectness": obj, "box": list(box),
            "sigma": list(sigma), "sigma_mean": sum(sigma) / 4}


def frames(*dets_per_frame):
    return [{"frame": {"w": 320, "h": 240}, "detections": list(d)} for d in dets_per_frame]


def test_identical_and_slightly_different_detections_pass():
    ref = frames([det(), det("star", 3, box=(0.5, 0.5, 0.7, 0.8))])
    near = frames([det(score=0.79, box=(0.105, 0.1, 0.3, 0.3)), det("star", 3, box=(0.5, 0.5, 0.7, 0.8))])
    cmp = compare_frames(ref, near, TOL, 0.25)
    assert cmp.ok and cmp.matched == 2
    assert math.isclose(cmp.max_dev["box"], 0.005, abs_tol=1e-9) and math.isclose(cmp.max_dev["score"], 0.01, abs_tol=1e-9)


@pytest.mark.parametrize("change, problem", [
    (dict(box=(0.13, 0.1, 0.33, 0.3)), "box"),
    (dict(sigma=(0.1, 0.1, 0.2, 0.3)), "sigma"),
    (dict(obj=0.8), "objectness"),
    (dict(score=0.7), "score"),
    (dict(label="square", class_id=0), "has no match"),
])
def test_a_deviation_beyond_the_tolerance_fails(change, problem):
    cmp = compare_frames(frames([det()]), frames([det(**change)]), TOL, 0.25)
    assert not cmp.ok and problem in cmp.report()


def test_missing_detections_fail_unless_at_the_threshold():
    cmp = compare_frames(frames([det(), det("star", 3, score=0.27, box=(0.6, 0.6, 0.8, 0.8))]), frames([det()]), TOL, 0.25)
    assert cmp.ok and "within the score tolerance" in cmp.report()
    cmp = compare_frames(frames([det(), det("star", 3, score=0.5, box=(0.6, 0.6, 0.8, 0.8))]), frames([det()]), TOL, 0.25)
    assert not cmp.ok and "star (score 0.5000" in cmp.report()
    cmp = compare_frames(frames([det()], [det()]), frames([det()]), TOL, 0.25)
    assert not cmp.ok and "2 detection messages, aarch64 1" in cmp.report()


def test_noise_envelope_is_the_largest_change_among_persisting_detections():
    clean = frames([det()])
    runs = [frames([det(score=0.78)]), frames([det(box=(0.1, 0.12, 0.3, 0.3), sigma=(0.1, 0.1, 0.2, 0.25))]),
            frames([])]
    env = noise_envelope(clean, runs)
    assert env == pytest.approx({"box": 0.02, "sigma": 0.05, "score": 0.02})


def test_tolerance_floor_propagates_output_steps_and_caps_refuse_meaningless_ones():
    tol = Tolerance.floor(META, QUANT, 320, 240, steps=2)
    # every tolerance also allows one step of the payload's thousandths
    assert tol.sigma == pytest.approx(2 / 256 + ROUNDING, abs=3e-5)
    assert tol.score == pytest.approx(6 / 256 + ROUNDING, abs=3e-5)
    scale = 256 / 320  # letterbox: the wide side decides
    assert tol.box == pytest.approx(2 / 256 * 32 / (scale * 320) + 0.25 * (math.exp(0.04) - 1) + ROUNDING, abs=3e-5)
    wide = tol.widened({"box": 0.002, "sigma": 0.3, "score": 0.01}, "noise")
    assert wide.box == tol.box and wide.sigma == pytest.approx(0.3 + ROUNDING, abs=3e-5) and wide.score == tol.score
    assert wide.too_loose() == ["sigma tolerance 0.3010 > 0.2"]


def test_candidate_step_differences_look_only_at_cells_that_can_detect():
    per = 7 + 1
    sig = np.zeros((1, 2, 2, 3 * per), np.uint8)
    sig[0, 0, 0, 6] = 200                      # anchor 0 of cell (0, 0) is confident
    other = sig.copy()
    other[0, 1, 1, 0] = 50                     # a big change where nothing can be detected: ignored
    other[0, 0, 0, 1] = 3                      # a 3-step change at the confident anchor
    lin = np.full((1, 2, 2, 6), 128, np.uint8)
    ref = {"0/s16_sigmoid": sig, "0/s16_linear": lin}
    cand = {"0/s16_sigmoid": other, "0/s16_linear": lin}
    got = candidate_step_differences(ref, cand, QUANT, per_anchor=per, objectness_index=6, min_objectness=0.1)
    assert got == {"s16_sigmoid": 3, "s16_linear": 0}


def test_tolerance_table_gives_each_detection_twice_its_own_noise_change():
    from pi_compare import ToleranceTable
    floor = Tolerance(box=0.001, sigma=0.001, score=0.001, source="floor")
    steady, jumpy = det(), det("star", 3, box=(0.5, 0.5, 0.7, 0.8))
    clean = frames([steady, jumpy])
    noisy = [frames([det(score=0.79), det("star", 3, box=(0.52, 0.5, 0.7, 0.8))]),
             frames([det(score=0.81)])]                        # the star vanishes under this noise
    table = ToleranceTable(floor=floor, clean=clean, noisy=noisy)
    tol, unstable = table.lookup(0, steady)
    assert not unstable and tol.score == pytest.approx(0.02 + ROUNDING, abs=1e-4)
    assert tol.box == max(floor.box, ROUNDING)   # the box did not change: floor (or one rounding step)
    assert table.lookup(0, jumpy)[1] is True
    assert compare_frames(clean, frames([det(score=0.785), jumpy]), table, 0.25).ok
    assert not compare_frames(clean, frames([det(score=0.75), jumpy]), table, 0.25).ok   # beyond 2 x 0.01
    lost = compare_frames(clean, frames([det()]), table, 0.25)
    assert lost.ok and "come and go" in lost.report()
    assert table.summary()[:2] == (2, 1)
