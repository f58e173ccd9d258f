"""Post-processing variants of a Gaussian YOLOv3's raw outputs, for the experiments that ask what sigma is good for.

Each variant turns the decoder's candidates (``edge.decode.DetectionDecoder.candidates``: every anchor above an
objectness floor, with its box, class probabilities and the four sigmas) into final detections:

  "sigma"      score = objectness * p(class) * (1 - mean sigma), class-aware NMS: what the device runs
               (edge.decode) and what the paper proposes;
  "plain"      score = objectness * p(class), NMS: the same model with sigma ignored at scoring;
  "vote"       "plain" scoring and NMS, then every kept box is replaced by the variance-weighted mean of the
               same-class candidates that overlap it (IoU > 0.5), each coordinate weighted by 1/sigma^2 and by
               exp(-(1 - IoU)^2 / 0.05) (variance voting, He et al., CVPR 2019): sigma refines *where*;
  "sigma_vote" "sigma" scoring, then the same voting;
  "sigma_agnostic", "plain_agnostic"
               that scoring with class-agnostic NMS (a box of another class that overlaps a higher-scoring one is
               suppressed too): not about sigma, but it measures the FP type the study found dominant (the same
               object reported twice, under two classes).

All variants keep the edge decoder's box and sigma arithmetic (the candidates come from it) and its NMS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.decode import DetectionDecoder, batched_nms, box_iou, nms

VARIANTS = ("sigma", "plain", "vote", "sigma_vote", "sigma_agnostic", "plain_agnostic")
VOTE_IOU = 0.5
VOTE_TAU = 0.05


@dataclass
class Detections:
    """One image's final detections, boxes in frame pixels."""
    boxes: np.ndarray        # (N, 4) x1, y1, x2, y2
    classes: np.ndarray      # (N,)
    scores: np.ndarray       # (N,)
    sigma_mean: np.ndarray   # (N,) mean of the four sigmas (zeros for a plain head)


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    return np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)


def _pixel_sigmas(cand: dict, idx: np.ndarray) -> np.ndarray:
    """sigma of (cx, cy, w, h) in input pixels, as edge.decode computes box_sigma (centre: stride units,
    size: log-space, so proportional to the size)."""
    s = cand["sigma"][idx]
    stride = cand["stride"][idx]
    wh = cand["cxcywh"][idx, 2:]
    return np.stack([s[:, 0] * stride, s[:, 1] * stride, s[:, 2] * wh[:, 0], s[:, 3] * wh[:, 1]], 1)


def _vote(cand: dict, keep_idx: np.ndarray, pool_idx: np.ndarray, classes: np.ndarray,
          pool_classes: np.ndarray) -> np.ndarray:
    """Variance voting: refined (cx, cy, w, h) for each kept candidate from the pool of same-class candidates."""
    boxes = cand["cxcywh"]
    kept = boxes[keep_idx]
    if len(pool_idx) == 0:
        return kept
    iou = box_iou(_xyxy(kept), _xyxy(boxes[pool_idx]))
    sig = np.maximum(_pixel_sigmas(cand, pool_idx), 1e-3)
    out = kept.copy()
    for k in range(len(keep_idx)):
        near = (iou[k] > VOTE_IOU) & (pool_classes == classes[k])
        if not np.any(near):
            continue
        w = np.exp(-(1.0 - iou[k, near]) ** 2 / VOTE_TAU)[:, None] / sig[near] ** 2
        out[k] = np.sum(w * boxes[pool_idx[near]], 0) / np.sum(w, 0)
    return out


def decode_variant(decoder: DetectionDecoder, outputs, quant, info, variant: str, score_floor: float = 0.005,
                   iou_threshold: float = 0.45, max_detections: int = 100) -> Detections:
    """Final detections of one image under ``variant`` (see the module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"post-processing variant {variant!r}; expected one of {VARIANTS}")
    cand = decoder.candidates(outputs, quant, score_floor)
    n = cand["obj"].size
    if n == 0:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32),
                          np.zeros(0, np.float32))
    sigma_mean = cand["sigma"].mean(1)
    gaussian = decoder.head == "gaussian"
    certainty = (1.0 - sigma_mean) if gaussian and variant.startswith("sigma") else np.ones(n, np.float32)
    cls_scores = cand["obj"][:, None] * cand["cls"] * certainty[:, None]
    classes = np.argmax(cls_scores, 1)
    scores = cls_scores[np.arange(n), classes]
    ok = np.nonzero(scores > score_floor)[0]
    if ok.size == 0:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32),
                          np.zeros(0, np.float32))
    boxes = _xyxy(cand["cxcywh"][ok])
    if variant.endswith("_agnostic"):
        keep = nms(boxes, scores[ok], iou_threshold, max_detections)
    else:
        keep = batched_nms(boxes, scores[ok], classes[ok], iou_threshold, max_detections)
    idx = ok[keep]
    final = cand["cxcywh"][idx]
    if variant in ("vote", "sigma_vote") and gaussian:
        final = _vote(cand, idx, ok, classes[idx], classes[ok])
    frame = info.to_frame_normalized(_xyxy(final))
    frame = frame * np.array([info.frame_w, info.frame_h, info.frame_w, info.frame_h], np.float32)
    return Detections(frame.astype(np.float32), classes[idx].astype(np.int64), scores[idx].astype(np.float32),
                      sigma_mean[idx].astype(np.float32))
