"""False positives the way the Gaussian YOLOv3 paper counts them, and what kind they are.

For a set of images (detections + ground truth), at a match IoU (0.5 or 0.7):
  - every detection is a TP or an FP by greedy per-class matching in score order (each ground truth once);
  - FP at equal recall: how many FPs rank above the TP that reaches recall r (the paper's comparison);
  - FP / TP at a fixed score threshold;
  - each FP's type (Hoiem et al., "Diagnosing error in object detectors"):
      duplicate     same class, IoU >= the match IoU with a ground truth that a higher-scoring detection took;
      mislocalized  same class, 0.1 <= best IoU < the match IoU;
      wrong class   no same-class overlap >= 0.1, but IoU >= 0.1 with a ground truth of another class;
      background    IoU < 0.1 with every ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.decode import box_iou

FP_TYPES = ("duplicate", "mislocalized", "wrong_class", "background")


@dataclass
class Scored:
    """All detections of a set of images, flattened: score, TP flag and FP type per detection."""
    scores: np.ndarray
    tp: np.ndarray
    fp_type: np.ndarray            # index into FP_TYPES, -1 for TPs
    n_gt: int
    sigma_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    best_iou: np.ndarray = field(default_factory=lambda: np.zeros(0))   # with any ground truth

    def order(self) -> np.ndarray:
        return np.argsort(-self.scores, kind="stable")

    def fp_at_recall(self, recall: float) -> int | None:
        need = int(np.ceil(recall * self.n_gt))
        tp_cum = np.cumsum(self.tp[self.order()])
        hit = np.nonzero(tp_cum >= need)[0]
        if need == 0 or hit.size == 0:
            return None
        k = int(hit[0])
        return int(k + 1 - tp_cum[k])

    def max_recall(self) -> float:
        return float(self.tp.sum()) / max(1, self.n_gt)

    def at_threshold(self, threshold: float) -> dict:
        above = self.scores >= threshold
        types = {t: int(np.sum(above & (self.fp_type == i))) for i, t in enumerate(FP_TYPES)}
        return {"tp": int(np.sum(above & self.tp)), "fp": int(np.sum(above & ~self.tp)), "fp_types": types}

    def fp_types_at_recall(self, recall: float) -> dict | None:
        need = int(np.ceil(recall * self.n_gt))
        order = self.order()
        tp_cum = np.cumsum(self.tp[order])
        hit = np.nonzero(tp_cum >= need)[0]
        if hit.size == 0:
            return None
        top = order[:int(hit[0]) + 1]
        return {t: int(np.sum(self.fp_type[top] == i)) for i, t in enumerate(FP_TYPES)}


def match_image(boxes, classes, scores, gt_boxes, gt_classes, iou_threshold: float):
    """(tp flags, fp type per detection, best IoU with any ground truth) for one image."""
    n = len(scores)
    tp = np.zeros(n, bool)
    types = np.full(n, -1, np.int64)
    best = np.zeros(n, np.float32)
    if n == 0:
        return tp, types, best
    if len(gt_boxes) == 0:
        types[:] = FP_TYPES.index("background")
        return tp, types, best
    iou = box_iou(boxes, gt_boxes)
    best = iou.max(1)
    same = classes[:, None] == gt_classes[None, :]
    taken = np.zeros(len(gt_boxes), bool)
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(same[i] & ~taken, iou[i], 0.0)
        j = int(np.argmax(cand))
        if cand[j] >= iou_threshold:
            taken[j], tp[i] = True, True
            continue
        same_best = float(np.max(np.where(same[i], iou[i], 0.0)))
        other_best = float(np.max(np.where(~same[i], iou[i], 0.0)))
        if same_best >= iou_threshold:
            types[i] = FP_TYPES.index("duplicate")
        elif same_best >= 0.1:
            types[i] = FP_TYPES.index("mislocalized")
        elif other_best >= 0.1:
            types[i] = FP_TYPES.index("wrong_class")
        else:
            types[i] = FP_TYPES.index("background")
    return tp, types, best


def score_set(per_image, ground_truth, iou_threshold: float) -> Scored:
    """``per_image``: list of Detections (convert.detection.rescoring); ``ground_truth``: list of (boxes, classes)."""
    scores, tps, types, sig, best = [], [], [], [], []
    n_gt = 0
    for det, (gb, gc) in zip(per_image, ground_truth):
        t, ty, b = match_image(det.boxes, det.classes, det.scores, np.asarray(gb, np.float32).reshape(-1, 4),
                               np.asarray(gc), iou_threshold)
        scores.append(det.scores)
        tps.append(t)
        types.append(ty)
        sig.append(det.sigma_mean)
        best.append(b)
        n_gt += len(gb)
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return Scored(cat(scores, np.float32), cat(tps, bool), cat(types, np.int64), n_gt, cat(sig, np.float32),
                  cat(best, np.float32))
