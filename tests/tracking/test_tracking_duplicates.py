"""edge.tracking.tracker.duplicates (a sweep over the boxes sorted by left edge that stops where no overlap above the
limit is possible) against every pair checked, on random boxes with many pairs right at the limit."""
from __future__ import annotations

import numpy as np
import pytest

from edge.tracking.tracker import duplicates


def every_pair(boxes, score, iou):
    """The same rule with no sweep: every pair, the same IoU arithmetic (inter > iou x union), then greedy by score
    (ties: the lower index first) like NMS."""
    near = {}
    for i, (ax1, ay1, ax2, ay2) in enumerate(boxes):
        for j, (bx1, by1, bx2, by2) in enumerate(boxes):
            if j <= i:
                continue
            w = min(ax2, bx2) - max(ax1, bx1)
            h = min(ay2, by2) - max(ay1, by1)
            if w <= 0.0 or h <= 0.0:
                continue
            inter = w * h
            if inter > iou * ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter):
                near.setdefault(i, []).append(j)
                near.setdefault(j, []).append(i)
    twin = [-1] * len(boxes)
    for d in sorted(near, key=lambda i: (-score[i], i)):
        if twin[d] < 0:
            for o in sorted(near[d]):
                if twin[o] < 0 and score[o] <= score[d]:
                    twin[o] = d
    return twin


def boxes_at_the_limit(rng, n, iou):
    """Random boxes, and for most a partner shifted (and resized) so that their IoU is the limit give or take a
    rounding error: the pairs the sweep's stopping rule must not lose."""
    boxes = []
    for _ in range(n):
        x1, y1 = rng.uniform(0, 0.8, 2)
        w, h = rng.uniform(0.01, 0.2, 2)
        boxes.append((x1, y1, x1 + w, y1 + h))
        kind = rng.integers(0, 5)
        if kind == 0:                                   # same size, shifted right: IoU = (w - dx) / (w + dx)
            dx = w * (1 - iou) / (1 + iou) * (1 + rng.choice([-1e-12, 0.0, 1e-12]))
            boxes.append((x1 + dx, y1, x1 + dx + w, y1 + h))
        elif kind == 1:                                 # narrower and taller, starting inside
            boxes.append((x1 + w * (1 - iou), y1 - h * 0.2, x1 + w, y1 + h * 1.2))
        elif kind == 2:                                 # the same left edge (a tie in the sort)
            boxes.append((x1, y1 + h * rng.uniform(0, 0.6), x1 + w * rng.uniform(0.3, 1.5), y1 + h))
        elif kind == 3:                                 # inside, right-aligned, just wide enough: the one case
            wb = w * iou * (1 + rng.choice([1e-9, 1e-7, 1e-5, 1e-3]))  # where the stopping rule is tight
            boxes.append((x1 + w - wb, y1, x1 + w, y1 + h))
        # kind 4: alone
    if rng.random() < 0.3:
        boxes.append((0.5, 0.5, 0.5, 0.6))              # zero width
    return boxes


@pytest.mark.parametrize("iou", [0.1, 0.4, 0.7, 1.0])
def test_the_sweep_finds_what_every_pair_finds(iou):
    rng = np.random.default_rng(int(iou * 10))
    found = 0
    for trial in range(300):
        boxes = [tuple(float(v) for v in b) for b in boxes_at_the_limit(rng, int(rng.integers(1, 12)), iou)]
        order = rng.permutation(len(boxes))
        boxes = [boxes[k] for k in order]
        score = [float(v) for v in (np.round(rng.uniform(0, 1, len(boxes)), 1) if trial % 2 else
                                    rng.uniform(0, 1, len(boxes)))]                  # ties on even trials
        want = every_pair(boxes, score, iou)
        assert duplicates(boxes, score, iou) == want, (boxes, score)
        assert duplicates(boxes, score, iou, [(b[0], j) for j, b in enumerate(boxes)]) == want
        found += sum(t >= 0 for t in want)
    if iou < 1.0:
        assert found > 100, "the boxes must overlap above the limit often"
