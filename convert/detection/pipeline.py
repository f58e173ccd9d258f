"""tf.data input pipeline for detector training: read -> letterbox (edge.preprocess, as on the device)
-> augmentation -> YOLO targets.

Augmentation (training only): random zoom/translate (affine, padded with 114), horizontal flip, HSV jitter.
Loading and augmentation run in numpy/OpenCV inside ``tf.numpy_function`` so tf.data parallelizes them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from convert.detection.datasets import DetectionDataset, Sample
from convert.detection.targets import encode_targets, pad_boxes, target_shapes
from edge.contract.errors import InputError
from edge.preprocess import letterbox

PAD_VALUE = 114


@dataclass(frozen=True)
class Augment:
    zoom: tuple[float, float] = (0.7, 1.3)
    translate: float = 0.15
    flip: float = 0.5
    hue: float = 6.0         # degrees of OpenCV's 0..180 hue
    saturation: float = 0.35
    value: float = 0.3
    min_visible: float = 0.4  # drop boxes whose visible part falls below this fraction
    # Noisy-Student noise (all off by default): blur probability, sensor noise std (pixel levels),
    # number of grey cutout rectangles and their largest side as a fraction of the image.
    blur: float = 0.0
    noise_std: float = 0.0
    cutouts: int = 0
    cutout_size: float = 0.25


STRONG = Augment(zoom=(0.5, 1.6), translate=0.25, hue=10.0, saturation=0.5, value=0.4, blur=0.3, noise_std=6.0,
                 cutouts=3, cutout_size=0.2)
"""Noisy Student's "strong augmentation" for distillation: wider zoom/shift/colour, blur, sensor noise, cutouts."""


def load_letterboxed(sample: Sample, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H, W, 3) letterboxed exactly like the device does, and the boxes in input pixels."""
    img = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{sample.image}: cannot be read as an image")
    h, w = input_size
    rgb, info = letterbox(img, (w, h), PAD_VALUE, bgr=True)
    scale = np.array([img.shape[1], img.shape[0], img.shape[1], img.shape[0]], np.float32)
    boxes = info.to_input_pixels(sample.boxes / scale) if len(sample.boxes) else np.zeros((0, 4), np.float32)
    return rgb, boxes


def augment(rgb: np.ndarray, boxes: np.ndarray, ids: np.ndarray, rng: np.random.Generator, aug: Augment):
    h, w = rgb.shape[:2]
    z = rng.uniform(*aug.zoom)
    tx, ty = rng.uniform(-aug.translate, aug.translate, 2) * np.array([w, h])
    m = np.array([[z, 0, (1 - z) * w / 2 + tx], [0, z, (1 - z) * h / 2 + ty]], np.float32)
    rgb = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
    if len(boxes):
        b = boxes * z + np.array([m[0, 2], m[1, 2], m[0, 2], m[1, 2]], np.float32)
        clipped = np.clip(b, 0, [w, h, w, h])
        area = np.prod(b[:, 2:] - b[:, :2], 1)
        vis = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), 1)
        keep = (vis >= aug.min_visible * np.maximum(area, 1e-6)) & (clipped[:, 2] - clipped[:, 0] >= 2) \
            & (clipped[:, 3] - clipped[:, 1] >= 2)
        boxes, ids = clipped[keep], ids[keep]
    if rng.random() < aug.flip:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
        if len(boxes):
            boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-aug.hue, aug.hue)) % 180
    hsv[..., 1] *= rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    hsv[..., 2] *= rng.uniform(1 - aug.value, 1 + aug.value)
    rgb = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if aug.blur and rng.random() < aug.blur:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.5, 1.5))
    if aug.noise_std:
        noisy = rgb.astype(np.float32) + rng.normal(0.0, rng.uniform(0, aug.noise_std), rgb.shape).astype(np.float32)
        rgb = np.clip(noisy, 0, 255).astype(np.uint8)
    for _ in range(aug.cutouts):
        cw, ch = (rng.uniform(0.05, aug.cutout_size) * np.array([w, h])).astype(int)
        cx, cy = int(rng.integers(0, max(1, w - cw))), int(rng.integers(0, max(1, h - ch)))
        rgb[cy:cy + ch, cx:cx + cw] = PAD_VALUE
    return rgb, boxes.astype(np.float32), ids


class TrainingData:
    """Turns a DetectionDataset into batches (images, targets per stride, gt boxes)."""

    def __init__(self, dataset: DetectionDataset, input_size: tuple[int, int], strides, anchors,
                 augment_cfg: Augment | None = Augment(), max_boxes: int = 50, seed: int = 0):
        if not dataset.samples:
            raise InputError(f"{dataset.source}: the dataset is empty")
        self.dataset = dataset
        self.input_size = tuple(input_size)
        self.strides = list(strides)
        self.anchors = anchors
        self.aug = augment_cfg
        self.max_boxes = max_boxes
        self.seed = seed
        self._calls = 0

    def example(self, index: int, rng: np.random.Generator | None = None):
        s = self.dataset.samples[int(index)]
        rgb, boxes = load_letterboxed(s, self.input_size)
        ids = s.class_ids.copy()
        if self.aug is not None:
            rgb, boxes, ids = augment(rgb, boxes, ids, rng or np.random.default_rng(), self.aug)
        targets = encode_targets(boxes, ids, self.input_size, self.strides, self.anchors, self.dataset.num_classes)
        return rgb.astype(np.float32), targets, pad_boxes(boxes, self.max_boxes)

    def _numpy_example(self, index):
        self._calls += 1
        rng = np.random.default_rng([self.seed, int(index), self._calls])
        img, targets, gt = self.example(int(index), rng)
        return (img, *targets, gt)

    def tf_dataset(self, batch_size: int, shuffle: bool = True, repeat: bool = False, parallel: int = 2):
        import tensorflow as tf
        n = len(self.dataset.samples)
        h, w = self.input_size
        shapes = target_shapes(self.input_size, self.strides, self.dataset.num_classes)
        ds = tf.data.Dataset.range(n)
        if shuffle:
            ds = ds.shuffle(n, seed=self.seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        tout = [tf.float32] * (2 + len(shapes))

        def load(i):
            out = tf.numpy_function(self._numpy_example, [i], tout)
            out[0].set_shape((h, w, 3))
            for t, shp in zip(out[1:-1], shapes):
                t.set_shape(shp)
            out[-1].set_shape((self.max_boxes, 4))
            return out[0], tuple(out[1:-1]), out[-1]

        ds = ds.map(load, num_parallel_calls=parallel, deterministic=False)
        return ds.batch(batch_size, drop_remainder=True).prefetch(2)

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, len(self.dataset.samples) // batch_size)
