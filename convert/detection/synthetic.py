"""A seeded, fast synthetic detection dataset: coloured shapes with exact boxes on cluttered backgrounds.

numpy + OpenCV only (no TensorFlow), so the demo can animate it too:

    scene = sample_scene(rng, 320, 240)                     # or build SynthObject(...) yourself
    frame = render_frame(320, 240, scene, background_seed=7, bgr=True)   # -> RenderedFrame
    cv2.imwrite("f.png", frame.image)                       # frame.boxes are exact (x1, y1, x2, y2) pixels

Moving objects: keep ``background_seed`` fixed and change the objects' ``cx``/``cy`` between frames.

``write_dataset`` writes a YOLO-format folder (images/{train,val}/*.jpg, labels/{train,val}/*.txt with
``class cx cy w h`` normalized, classes.txt, dataset.json describing the generation).
Difficulty knobs: clutter, blur, occlusion, scale range, noise, label noise (box jitter + class flips).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

CLASSES = ("square", "disc", "triangle", "star")


@dataclass(frozen=True)
class SynthObject:
    """One object: centre (cx, cy) and ``size`` (its extent before rotation) in pixels, RGB colour,
    rotation in degrees (squares/triangles/stars), ``aspect`` = width / height of the unrotated shape."""
    class_id: int
    cx: float
    cy: float
    size: float
    color: tuple[int, int, int] = (220, 40, 40)
    angle: float = 0.0
    aspect: float = 1.0


@dataclass(frozen=True)
class SynthConfig:
    """Scene statistics. Sizes are fractions of min(width, height)."""
    classes: tuple[str, ...] = CLASSES
    min_objects: int = 1
    max_objects: int = 6
    min_size: float = 0.08
    max_size: float = 0.45
    clutter: int = 6            # non-object strokes and outlines per image
    blur_prob: float = 0.3      # chance of a Gaussian blur (sigma 0.5-1.5 px)
    occlusion_prob: float = 0.3  # chance per object of an occluder covering up to ~30% of it
    noise: float = 6.0          # pixel noise std
    label_noise: float = 0.0    # box jitter as a fraction of box size (std), and class flip probability / 4
    blur_sigma: tuple[float, float] = (0.5, 1.5)   # range of the blur's sigma (px) when an image is blurred
    occlusion_max: float = 0.5  # an occluder covers 20%..occlusion_max of one side of the object
    border: float = 0.05        # object centres lie in [border, 1 - border] of the frame; < 0 truncates objects

    @classmethod
    def ambiguous(cls, **overrides) -> "SynthConfig":
        """Real localization ambiguity: stronger and more frequent blur (soft edges), larger occluders (the box
        keeps the hidden extent) and objects cut by the frame border (the box is clipped to what is inside)."""
        base = dict(blur_prob=0.6, blur_sigma=(1.0, 3.5), occlusion_prob=0.5, occlusion_max=0.7, border=-0.1)
        return cls(**{**base, **overrides})

    def validate(self) -> "SynthConfig":
        if not self.classes:
            raise ValueError("synthetic config: 'classes' must not be empty")
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown:
            raise ValueError(f"synthetic config: unknown classes {unknown}; available: {', '.join(CLASSES)}")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError("synthetic config: need 0 <= min_objects <= max_objects")
        if not 0 < self.min_size <= self.max_size <= 1:
            raise ValueError("synthetic config: need 0 < min_size <= max_size <= 1")
        if not 0 <= self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError("synthetic config: need 0 <= blur_sigma[0] <= blur_sigma[1]")
        if not 0.2 <= self.occlusion_max <= 1:
            raise ValueError("synthetic config: need 0.2 <= occlusion_max <= 1")
        if not -0.3 <= self.border < 0.5:
            raise ValueError("synthetic config: need -0.3 <= border < 0.5")
        return self


@dataclass
class RenderedFrame:
    image: np.ndarray            # (H, W, 3) uint8, RGB (BGR if rendered with bgr=True)
    boxes: np.ndarray            # (N, 4) float32 x1, y1, x2, y2 in pixels, clipped to the image
    class_ids: np.ndarray        # (N,) int64 (index into the classes the objects were drawn with)
    objects: list[SynthObject] = field(default_factory=list)


# --------------------------------------------------------------------------- shapes
def _rotate(points: np.ndarray, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float64)
    return points @ rot.T


def shape_polygon(obj: SynthObject, shape: str) -> np.ndarray | None:
    """Vertices (K, 2) in pixels for polygon shapes; None for the disc (drawn as an ellipse)."""
    half_w = obj.size / 2 * math.sqrt(obj.aspect)
    half_h = obj.size / 2 / math.sqrt(obj.aspect)
    if shape == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    elif shape == "triangle":
        pts = np.array([[0, -1], [1, 1], [-1, 1]], np.float64)
    elif shape == "star":
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif shape == "disc":
        return None
    else:
        raise ValueError(f"unknown shape {shape!r}; available: {', '.join(CLASSES)}")
    pts = pts * np.array([half_w, half_h])
    return _rotate(pts, obj.angle) + np.array([obj.cx, obj.cy])


def object_box(obj: SynthObject, shape: str) -> np.ndarray:
    """Exact unclipped box (x1, y1, x2, y2) of the drawn shape."""
    poly = shape_polygon(obj, shape)
    if poly is None:
        a = math.radians(obj.angle)
        rx = obj.size / 2 * math.sqrt(obj.aspect)
        ry = obj.size / 2 / math.sqrt(obj.aspect)
        ex = math.sqrt((rx * math.cos(a)) ** 2 + (ry * math.sin(a)) ** 2)
        ey = math.sqrt((rx * math.sin(a)) ** 2 + (ry * math.cos(a)) ** 2)
        return np.array([obj.cx - ex, obj.cy - ey, obj.cx + ex, obj.cy + ey], np.float32)
    return np.array([*poly.min(0), *poly.max(0)], np.float32)


_SHIFT = 4  # sub-pixel drawing precision (1/16 px)


def _draw(img: np.ndarray, obj: SynthObject, shape: str, color) -> None:
    poly = shape_polygon(obj, shape)
    color = tuple(int(c) for c in color)
    if poly is None:
        axes = (obj.size / 2 * math.sqrt(obj.aspect), obj.size / 2 / math.sqrt(obj.aspect))
        center = (int(round((obj.cx - 0.5) * (1 << _SHIFT))), int(round((obj.cy - 0.5) * (1 << _SHIFT))))
        axes_i = (int(round(axes[0] * (1 << _SHIFT))), int(round(axes[1] * (1 << _SHIFT))))
        cv2.ellipse(img, center, axes_i, obj.angle, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)
    else:
        pts = np.round((poly - 0.5) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(img, [pts], color, cv2.LINE_AA, _SHIFT)


# --------------------------------------------------------------------------- background and scenes
def render_background(width: int, height: int, seed: int, clutter: int = 6, noise: float = 6.0) -> np.ndarray:
    """A smooth random gradient with low-frequency blobs, clutter strokes and pixel noise (RGB uint8)."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    gx = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    gy = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    mix = rng.uniform(0.2, 0.8)
    img = c0 + (c1 - c0) * (mix * gx + (1 - mix) * gy)
    low = cv2.resize(rng.normal(0, 18, (4, 4, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img + low, 0, 255).astype(np.uint8)
    s = min(width, height)
    for _ in range(clutter):  # lines and hollow outlines: things that are not objects
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.6:
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, p1, p2, color, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            r = int(rng.uniform(0.03, 0.15) * s)
            cv2.rectangle(img, p1, (p1[0] + r, p1[1] + int(r * rng.uniform(0.3, 2))), color, 1, cv2.LINE_AA)
    if noise > 0:
        img = np.clip(img.astype(np.float32) + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    return img


def _vivid_color(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(150, 256), rng.integers(120, 256)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def sample_scene(rng: np.random.Generator, width: int, height: int, config: SynthConfig = SynthConfig()) -> list[SynthObject]:
    """Random objects with log-uniform sizes, avoiding heavy overlaps between objects."""
    s = min(width, height)
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    placed: list[SynthObject] = []
    boxes: list[np.ndarray] = []
    for _ in range(n * 8):
        if len(placed) >= n:
            break
        size = float(np.exp(rng.uniform(np.log(config.min_size * s), np.log(config.max_size * s))))
        cls = int(rng.integers(0, len(config.classes)))
        lo, hi = config.border, 1.0 - config.border
        obj = SynthObject(class_id=cls, cx=float(rng.uniform(lo, hi) * width), cy=float(rng.uniform(lo, hi) * height),
                          size=size, color=_vivid_color(rng), angle=float(rng.uniform(-30, 30)),
                          aspect=float(np.exp(rng.uniform(-0.4, 0.4))))
        box = object_box(obj, config.classes[cls])
        if boxes and _max_overlap(box, np.stack(boxes)) > 0.3:
            continue
        placed.append(obj)
        boxes.append(box)
    return placed


def _max_overlap(box: np.ndarray, others: np.ndarray) -> float:
    """Largest intersection / smaller-area between ``box`` and ``others``."""
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], 1)
    return float(np.max(inter / np.maximum(np.minimum(area, areas), 1e-6)))


def render_frame(width: int, height: int, objects: Sequence[SynthObject], *, background_seed: int = 0,
                 classes: Sequence[str] = CLASSES, clutter: int = 6, noise: float = 6.0, blur_sigma: float = 0.0,
                 occluders: Sequence[tuple[float, float, float, float]] = (), min_visible: float = 0.4,
                 bgr: bool = False, background: np.ndarray | None = None) -> RenderedFrame:
    """Draw ``objects`` (in order) over the background of ``background_seed``.

    Boxes are exact and clipped to the image; objects less than ``min_visible`` inside the image get no box.
    ``occluders``: grey rectangles (x1, y1, x2, y2) drawn on top (boxes keep the full object extent).
    ``background``: ``render_background(width, height, background_seed, clutter, noise=0.0)`` computed once by the
    caller (animations: the same background for every frame); it is copied, not drawn on.
    """
    if width < 8 or height < 8:
        raise ValueError(f"frame size {width}x{height} is too small (need at least 8x8)")
    if background is not None and background.shape != (height, width, 3):
        raise ValueError(f"background has shape {background.shape}; expected {(height, width, 3)}")
    img = render_background(width, height, background_seed, clutter, noise=0.0) if background is None \
        else background.copy()
    boxes, ids = [], []
    for obj in objects:
        if not 0 <= obj.class_id < len(classes):
            raise ValueError(f"object class_id {obj.class_id} is out of range for {len(classes)} classes")
        shape = classes[obj.class_id]
        _draw(img, obj, shape, obj.color)
        box = object_box(obj, shape)
        clipped = np.clip(box, 0, [width, height, width, height]).astype(np.float32)
        full = np.prod(box[2:] - box[:2])
        vis = np.prod(np.clip(clipped[2:] - clipped[:2], 0, None))
        if full > 0 and vis / full >= min_visible:
            boxes.append(clipped)
            ids.append(obj.class_id)
    for (x1, y1, x2, y2) in occluders:
        g = int(90 + (int(x1 * 7 + y1 * 13) % 80))
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), (g, g, g), -1)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    if noise > 0:
        rng = np.random.default_rng(background_seed + 7919)
        img = np.clip(img.astype(np.float32) + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    if bgr:
        img = np.ascontiguousarray(img[:, :, ::-1])
    return RenderedFrame(image=img, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                         class_ids=np.asarray(ids, np.int64), objects=list(objects))


def random_frame(rng: np.random.Generator, width: int, height: int, config: SynthConfig = SynthConfig()) -> RenderedFrame:
    """One random training image: scene, occluders, blur, noise from ``config``."""
    objects = sample_scene(rng, width, height, config)
    occluders = []
    for obj in objects:
        if rng.random() < config.occlusion_prob:
            b = object_box(obj, config.classes[obj.class_id])
            w, h = b[2] - b[0], b[3] - b[1]
            frac = rng.uniform(0.2, config.occlusion_max)  # covers frac of one side (default: <= ~30% of the area)
            if rng.random() < 0.5:
                x1 = b[0] if rng.random() < 0.5 else b[2] - frac * w
                occluders.append((x1, b[1] + 0.2 * h, x1 + frac * w, b[1] + 0.8 * h))
            else:
                y1 = b[1] if rng.random() < 0.5 else b[3] - frac * h
                occluders.append((b[0] + 0.2 * w, y1, b[0] + 0.8 * w, y1 + frac * h))
    blur = float(rng.uniform(*config.blur_sigma)) if rng.random() < config.blur_prob else 0.0
    return render_frame(width, height, objects, background_seed=int(rng.integers(0, 2**31 - 1)),
                        classes=config.classes, clutter=config.clutter, noise=config.noise, blur_sigma=blur,
                        occluders=occluders)


def _noisy_labels(rng, boxes, ids, width, height, config: SynthConfig):
    if config.label_noise <= 0 or len(boxes) == 0:
        return boxes, ids
    wh = boxes[:, 2:] - boxes[:, :2]
    jitter = rng.normal(0, config.label_noise, boxes.shape) * np.concatenate([wh, wh], 1)
    boxes = np.clip(boxes + jitter, 0, [width, height, width, height]).astype(np.float32)
    flip = rng.random(len(ids)) < config.label_noise / 4
    ids = np.where(flip, rng.integers(0, len(config.classes), len(ids)), ids)
    ok = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
    return boxes[ok], ids[ok]


SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}   # each split draws from its own seeded random stream


def write_dataset(out_dir: str | Path, *, train: int = 800, val: int = 200, test: int = 0, width: int = 256,
                  height: int = 256, seed: int = 0, config: SynthConfig = SynthConfig(), progress=None) -> Path:
    """Write a YOLO-format dataset: train, val (for choices: thresholds, epochs, variants) and optionally test
    (for the figures one reports; its own random stream, so no image or scene is shared with val). Validation
    and test labels never get label noise. Returns ``out_dir``."""
    config.validate()
    out = Path(out_dir)
    for split, count in (("train", train), ("val", val), ("test", test)):
        if split == "test" and count == 0:
            continue
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
        for i in range(count):
            frame = random_frame(rng, width, height, config)
            boxes, ids = frame.boxes, frame.class_ids
            if split == "train":
                boxes, ids = _noisy_labels(rng, boxes, ids, width, height, config)
            name = f"{split}_{i:06d}"
            cv2.imwrite(str(out / "images" / split / f"{name}.jpg"), frame.image[:, :, ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines = []
            for (x1, y1, x2, y2), c in zip(boxes, ids):
                lines.append(f"{int(c)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                             f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
            (out / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            if progress is not None:
                progress(split, i + 1, count)
    (out / "classes.txt").write_text("\n".join(config.classes) + "\n")
    (out / "dataset.json").write_text(json.dumps({
        "generator": "sigmawatch synthetic", "seed": seed, "width": width, "height": height,
        "train": train, "val": val, "test": test, "config": asdict(config)}, indent=1) + "\n")
    return out
