"""A small, learnable image-folder dataset written with OpenCV: three classes of shapes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("circle", "square", "stripes")


def draw(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    img = np.full((size, size, 3), rng.integers(0, 90, 3), np.uint8)
    color = [int(c) for c in rng.integers(60, 140, 3)]
    color[CLASSES.index(kind)] = int(rng.integers(200, 256))   # each class also has its own dominant colour
    color = tuple(color)
    cx, cy = (int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
    r = int(rng.integers(size // 8, size // 4))
    if kind == "circle":
        cv2.circle(img, (cx, cy), r, color, -1)
    elif kind == "square":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
    else:
        step = int(rng.integers(6, 12))
        for x in range(int(rng.integers(0, step)), size, step):
            cv2.line(img, (x, 0), (x, size - 1), color, 2)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def write_dataset(root: Path, per_class: int = 20, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(root / kind / f"{i:03d}.png"), draw(kind, rng, size))
    return root


# A darknet cfg small enough to import and export in a second: one BN conv (4 filters; weights file order per
# BN conv: beta, gamma, mean, var, kernel), then a 1x1 head at stride 32 with 2 classes.
DARKNET_SMALL_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[convolutional]
size=1
stride=16
pad=1
filters=33
activation=linear

[Gaussian_yolo]
mask = 0,1,2
anchors = 10,14, 23,27, 37,58
classes=2
num=3
"""
