"""edge.tracking.Tracker (arrays, batched filter and costs, fast paths in the solver) gives what the straightforward
per-track reference (tests/tracking/reference_tracker.py: one 8 x 8 matrix filter per track, pair-by-pair costs,
SciPy's assignment) gives, frame by frame, on random sequences: crossings, misses, duplicates under two classes,
class flips, false positives, detections without sigma, dropped frames."""
from __future__ import annotations

import numpy as np
import pytest
from reference_tracker import ReferenceTracker
from tracking_helpers import LABELS

from edge.decode import Detection
from edge.tracking import Tracker, TrackerConfig


def random_sequence(seed: int, frames: int = 70, objects: int = 8):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0.15, 0.85, (objects, 2))
    vel = rng.normal(0, 0.12, (objects, 2))                   # frame units per second: they cross each other
    size = rng.uniform(0.05, 0.15, (objects, 2))
    cls = rng.integers(0, len(LABELS), objects)
    ts, t, out = [], 0.0, []
    for _ in range(frames):
        dt = 0.1 if rng.random() < 0.8 else 0.3               # dropped frames: uneven steps
        t += dt
        pos += vel * dt
        vel += rng.normal(0, 0.05, vel.shape)
        vel[(pos < 0.1) | (pos > 0.9)] *= -1                  # most stay in view; some leave for a while
        dets = []
        for k in range(objects):
            if rng.random() < 0.15 or not (0 < pos[k, 0] < 1 and 0 < pos[k, 1] < 1):
                continue                                      # missed, or outside the frame
            sigma = None if rng.random() < 0.1 else tuple(rng.uniform(0.002, 0.03, 4).tolist())
            jitter = rng.normal(0, 0.01, 4)
            cx, cy = pos[k] + jitter[:2]
            w, h = size[k] * (1 + jitter[2:])
            c = int(cls[k]) if rng.random() > 0.1 else int(rng.integers(0, len(LABELS)))
            dets.append(_det(cx, cy, w, h, float(rng.uniform(0.05, 1.0)), c, sigma))
            if rng.random() < 0.1:                            # the same object under another class
                dets.append(_det(cx + 0.002, cy, w, h, float(rng.uniform(0.05, 1.0)), (c + 1) % len(LABELS), sigma))
        for _ in range(rng.poisson(0.7)):                     # false positives
            dets.append(_det(*rng.uniform(0.1, 0.9, 2), *rng.uniform(0.03, 0.1, 2), float(rng.uniform(0.05, 0.8)),
                             int(rng.integers(0, len(LABELS))), tuple(rng.uniform(0.005, 0.05, 4).tolist())))
        order = rng.permutation(len(dets))
        out.append([dets[i] for i in order])
        ts.append(t)
    return ts, out


def _det(cx, cy, w, h, score, c, sigma):
    return Detection(class_id=c, label=LABELS[c], score=score, objectness=score,
                     box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), sigma=None if sigma is None else (0.1,) * 4,
                     sigma_mean=None if sigma is None else float(np.mean(sigma)), box_sigma=sigma)


def as_dicts(views):
    return [v._asdict() for v in views]


def assert_same(got: list[dict], want: list[dict], where: str):
    assert [v["id"] for v in got] == [v["id"] for v in want], where
    for g, w in zip(got, want):
        for key in ("class_id", "label", "state", "hits", "missed", "start_ts", "last_seen_ts", "score", "best_score"):
            assert g[key] == w[key], f"{where}: track {g['id']} {key}"
        for key in ("box", "box_sigma", "velocity"):
            assert list(g[key]) == pytest.approx(w[key], rel=1e-7, abs=1e-10), f"{where}: track {g['id']} {key}"
        assert (g["sigma_mean"] is None) == (w["sigma_mean"] is None), where
        if w["sigma_mean"] is not None:
            assert g["sigma_mean"] == pytest.approx(w["sigma_mean"], rel=1e-12), where


CONFIGS = {
    "sigma": TrackerConfig(),
    "constant": TrackerConfig(noise="constant", constant_noise=(0.07, 0.15)),
    "iou": TrackerConfig(association="iou", noise="constant"),
    "class-aware, no duplicate check, confirmed at once": TrackerConfig(class_aware=True, duplicate_iou=None,
                                                                       confirm_hits=1),
    "few tracks, short memory, tight gate": TrackerConfig(max_tracks=5, max_missed=2, gate=9.0, sigma_scale=1.5),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_tracker_equals_the_per_track_reference(name, seed):
    cfg = CONFIGS[name]
    ts, frames = random_sequence(seed)
    fast, ref = Tracker(cfg), ReferenceTracker(cfg)
    matched = 0
    for i, (t, dets) in enumerate(zip(ts, frames)):
        got = fast.update(dets, t)
        views, det_tracks, ended = ref.update(dets, t)
        where = f"{name}, seed {seed}, frame {i}"
        assert_same(as_dicts(got.tracks), views, where)
        assert_same(as_dicts(got.ended), ended, where + " (ended)")
        assert got.detection_tracks == det_tracks, where
        matched += sum(v["state"] == "confirmed" for v in views)
    assert matched > 100, "the sequence must exercise the tracker (confirmed tracks matched over the frames)"
