"""Anchors and strides, in one place.

An anchor set is a list per stride of three (w, h) pairs in input pixels (the metadata layout).
Defaults exist per dataset (stated at their reference input size and scaled to the model's), and
``kmeans_anchors`` derives a set from a dataset's boxes with the YOLO 1 - IoU distance.
"""
from __future__ import annotations

import numpy as np

ANCHORS_PER_SCALE = 3
THREE_SCALE = (8, 16, 32)
TWO_SCALE = (16, 32)
LAYOUTS = {"3scale": THREE_SCALE, "2scale": TWO_SCALE}

# (reference input size, 9 anchors small -> large as w, h). YOLOv3 COCO (darknet yolov3.cfg, 416),
# the official Gaussian YOLOv3 cfgs (512), and k-means on this project's synthetic set at 256
# (k-means, `convert-model anchors`, on 2000 images of `convert-model synth --seed 0`; mean best IoU 0.84).
DEFAULT_ANCHORS: dict[str, tuple[int, list[tuple[float, float]]]] = {
    "coco": (416, [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326)]),
    "bdd": (512, [(7, 10), (14, 24), (27, 43), (32, 97), (57, 64), (92, 109), (73, 175), (141, 178), (144, 291)]),
    "kitti": (512, [(13, 30), (23, 53), (17, 102), (45, 76), (27, 172), (67, 116), (49, 240), (82, 170), (118, 206)]),
    "synth": (256, [(23, 23), (27, 29), (34, 33), (37, 42), (46, 47), (57, 55), (63, 70), (82, 78), (98, 104)]),
}
# Two-scale models get their own k=6 set where one exists (mean best IoU 0.81 on the synthetic set).
DEFAULT_ANCHORS_2SCALE: dict[str, tuple[int, list[tuple[float, float]]]] = {
    "synth": (256, [(23, 24), (31, 32), (41, 43), (55, 55), (72, 75), (98, 99)]),
}


def strides_for(layout: str) -> tuple[int, ...]:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown scale layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return LAYOUTS[layout]


def sort_by_area(anchors) -> np.ndarray:
    a = np.asarray(anchors, np.float32).reshape(-1, 2)
    return a[np.argsort(a[:, 0] * a[:, 1], kind="stable")]


def split_by_stride(anchors, strides) -> list[list[list[float]]]:
    """Sorted anchors -> one list of 3 per stride (small anchors to the finest stride).
    Given 9 anchors and 2 strides, the 6 largest are used (two-scale models see no tiny objects)."""
    a = sort_by_area(anchors)
    need = ANCHORS_PER_SCALE * len(strides)
    if a.shape[0] < need:
        raise ValueError(f"{len(strides)} strides need {need} anchors, got {a.shape[0]}")
    a = a[-need:]
    return [[[round(float(w), 2), round(float(h), 2)] for w, h in a[i * 3:(i + 1) * 3]] for i in range(len(strides))]


def default_anchors(dataset: str, input_size: tuple[int, int], strides) -> list[list[list[float]]]:
    """Default anchors for ``dataset`` scaled to ``input_size`` (w, h), split over ``strides``."""
    if dataset not in DEFAULT_ANCHORS:
        raise ValueError(f"no default anchors for {dataset!r}; known: {', '.join(DEFAULT_ANCHORS)} "
                         "(or compute them: convert-model anchors --data DIR)")
    ref, anchors = DEFAULT_ANCHORS[dataset]
    if len(strides) == 2 and dataset in DEFAULT_ANCHORS_2SCALE:
        ref, anchors = DEFAULT_ANCHORS_2SCALE[dataset]
    a = np.asarray(anchors, np.float32) * (np.asarray(input_size, np.float32) / ref)
    return split_by_stride(a, strides)


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes and anchors aligned at their centres: (N, K)."""
    wh = np.asarray(wh, np.float32).reshape(-1, 2)
    anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh[:, None, 0] * wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter
    return inter / np.maximum(union, 1e-9)


def kmeans_anchors(wh: np.ndarray, k: int = 9, seed: int = 0, iterations: int = 300) -> tuple[np.ndarray, float]:
    """k-means with distance 1 - IoU (k-means++ init). Returns (anchors sorted by area, mean best IoU)."""
    wh = np.asarray(wh, np.float32).reshape(-1, 2)
    wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
    if wh.shape[0] < k:
        raise ValueError(f"k-means needs at least {k} boxes, the dataset has {wh.shape[0]}")
    rng = np.random.default_rng(seed)
    centers = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = 1 - wh_iou(wh, np.stack(centers)).max(1)
        p = d ** 2
        centers.append(wh[rng.choice(len(wh), p=p / p.sum()) if p.sum() > 0 else rng.integers(len(wh))])
    centers = np.stack(centers)
    for _ in range(iterations):
        assign = wh_iou(wh, centers).argmax(1)
        new = np.stack([np.median(wh[assign == i], 0) if np.any(assign == i) else centers[i] for i in range(k)])
        if np.allclose(new, centers):
            break
        centers = new
    centers = sort_by_area(centers)
    return centers, float(wh_iou(wh, centers).max(1).mean())
