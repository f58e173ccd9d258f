"""Synthetic camera scenes whose generator knows every object's identity and box in every frame.

Shapes of the shipped detector's classes (``convert.detection.synthetic``) move over a fixed cluttered
background: objects enter at the edges and leave at the far side, turn slowly, sometimes stop for a while, cross
each other (drawn in order, so the later one hides the earlier), and pass behind grey bars. A fixed number of
objects is kept on screen by spawning a new identity whenever one has left.

Ground truth per frame: identity, class, box (the full object extent clipped to the frame, pixels) and visible
fraction (pixels drawn unoccluded inside the frame / pixels of the whole shape), from a label image rasterized
like the frame. The benchmark scores objects at least ``min_visible`` visible and ignores the rest (neither a
miss when hidden nor a false positive when a tracker still reports them).

The frames go through a real MJPG video file (``cv2.VideoWriter``), read back by the agent's own source.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from convert.detection.synthetic import CLASSES, SynthObject, object_box, render_background, render_frame, shape_polygon


@dataclass(frozen=True)
class SceneSpec:
    seed: int
    frames: int = 200
    width: int = 640
    height: int = 480
    fps: float = 10.0
    objects: int = 20               # kept on screen
    min_size: float = 0.12          # of the frame height
    max_size: float = 0.20
    min_speed: float = 3.0          # px per frame
    max_speed: float = 9.0
    pause_prob: float = 0.01        # per object and frame: stop for 10-30 frames
    occluders: int = 2              # vertical grey bars


@dataclass
class Truth:
    ids: np.ndarray          # (K,) identities
    class_ids: np.ndarray    # (K,)
    boxes: np.ndarray        # (K, 4) x1, y1, x2, y2 pixels, clipped to the frame
    visible: np.ndarray      # (K,) visible fraction


@dataclass
class _Actor:
    gid: int
    obj: SynthObject
    vx: float
    vy: float
    turn: float = 0.0
    pause: int = 0
    entered: bool = False


class SceneGenerator:
    def __init__(self, spec: SceneSpec):
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.background_seed = int(self.rng.integers(0, 2**31 - 1))
        # the same background and sensor noise in every frame, computed once (render_frame's own noise is static too)
        self.background = render_background(spec.width, spec.height, self.background_seed, noise=0.0)
        self.noise = np.random.default_rng(self.background_seed + 7919).normal(0, 6.0, self.background.shape)
        w, h = spec.width, spec.height
        self.occluders = []
        for i in range(spec.occluders):
            cx = w * (i + 1) / (spec.occluders + 1) + self.rng.uniform(-0.05, 0.05) * w
            bw, top = 0.05 * w, self.rng.uniform(0.05, 0.3) * h
            self.occluders.append((cx - bw / 2, top, cx + bw / 2, top + 0.55 * h))
        self.next_id = 1
        self.actors: list[_Actor] = [self._spawn(inside=True) for _ in range(spec.objects)]

    def _spawn(self, inside: bool) -> _Actor:
        s, rng = self.spec, self.rng
        w, h = s.width, s.height
        size = float(rng.uniform(s.min_size, s.max_size) * h)
        speed = float(rng.uniform(s.min_speed, s.max_speed))
        if inside:
            x, y = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
            heading = rng.uniform(0, 2 * math.pi)
        else:   # just outside one edge, heading for a point on the far half of the frame
            edge = int(rng.integers(0, 4))
            t = rng.uniform(0.1, 0.9)
            x, y = [(-size / 2, t * h), (w + size / 2, t * h), (t * w, -size / 2), (t * w, h + size / 2)][edge]
            tx, ty = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
            heading = math.atan2(ty - y, tx - x)
        obj = SynthObject(class_id=int(rng.integers(0, len(CLASSES))), cx=float(x), cy=float(y), size=size,
                          color=_vivid_color(rng), angle=float(rng.uniform(-30, 30)),
                          aspect=float(np.exp(rng.uniform(-0.3, 0.3))))
        actor = _Actor(self.next_id, obj, speed * math.cos(heading), speed * math.sin(heading), entered=inside)
        self.next_id += 1
        return actor

    def _step(self) -> None:
        s, rng = self.spec, self.rng
        for a in self.actors:
            if a.pause > 0:
                a.pause -= 1
                continue
            if rng.random() < s.pause_prob:
                a.pause = int(rng.integers(10, 31))
            a.turn = float(np.clip(a.turn + rng.normal(0, 0.004), -0.03, 0.03))
            c, sn = math.cos(a.turn), math.sin(a.turn)
            a.vx, a.vy = a.vx * c - a.vy * sn, a.vx * sn + a.vy * c
            a.obj = replace(a.obj, cx=a.obj.cx + a.vx, cy=a.obj.cy + a.vy)
        keep = []
        for a in self.actors:
            box = object_box(a.obj, CLASSES[a.obj.class_id])
            inside = box[2] > 0 and box[0] < s.width and box[3] > 0 and box[1] < s.height
            a.entered = a.entered or inside
            if inside or not a.entered:
                keep.append(a)
        self.actors = keep
        if len(self.actors) < s.objects:
            self.actors.append(self._spawn(inside=False))

    def frames(self):
        """Yields (BGR image, Truth) for every frame of the scene."""
        s = self.spec
        for i in range(s.frames):
            if i:
                self._step()
            objs = [a.obj for a in self.actors]
            rendered = render_frame(s.width, s.height, objs, background_seed=self.background_seed,
                                    occluders=self.occluders, noise=0.0, background=self.background)
            image = np.clip(rendered.image + self.noise, 0, 255).astype(np.uint8)[:, :, ::-1]
            yield np.ascontiguousarray(image), self._truth()

    def _truth(self) -> Truth:
        s = self.spec
        label = np.full((s.height, s.width), -1, np.int32)
        full = np.zeros(len(self.actors))
        for k, a in enumerate(self.actors):
            _fill(label, a.obj, k)
            full[k] = _shape_pixels(a.obj)
        for (x1, y1, x2, y2) in self.occluders:
            cv2.rectangle(label, (int(x1), int(y1)), (int(x2), int(y2)), -1, -1)
        counts = np.bincount(label[label >= 0].ravel(), minlength=len(self.actors))
        boxes = np.array([object_box(a.obj, CLASSES[a.obj.class_id]) for a in self.actors], np.float64).reshape(-1, 4)
        boxes = np.clip(boxes, 0, [s.width, s.height, s.width, s.height])
        return Truth(ids=np.array([a.gid for a in self.actors], np.int64),
                     class_ids=np.array([a.obj.class_id for a in self.actors], np.int64),
                     boxes=boxes, visible=counts / np.maximum(full, 1.0))


def _vivid_color(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(150, 256), rng.integers(120, 256)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _fill(img: np.ndarray, obj: SynthObject, value: int) -> None:
    poly = shape_polygon(obj, CLASSES[obj.class_id])
    if poly is None:
        axes = (obj.size / 2 * math.sqrt(obj.aspect), obj.size / 2 / math.sqrt(obj.aspect))
        cv2.ellipse(img, (int(round(obj.cx)), int(round(obj.cy))), (int(round(axes[0])), int(round(axes[1]))),
                    obj.angle, 0, 360, int(value), -1)
    else:
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], int(value))


def _shape_pixels(obj: SynthObject) -> float:
    """Pixels the shape covers when drawn whole (rasterized like ``_fill``, on its own canvas)."""
    pad = int(obj.size) + 4
    local = replace(obj, cx=obj.cx - round(obj.cx) + pad, cy=obj.cy - round(obj.cy) + pad)
    canvas = np.zeros((2 * pad, 2 * pad), np.uint8)
    _fill(canvas, local, 1)
    return float(canvas.sum())


def write_scene(spec: SceneSpec, path: Path) -> list[Truth]:
    """Render the scene into an MJPG video at ``path``; returns the ground truth of every frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {path} with MJPG")
    truths = []
    for image, truth in SceneGenerator(spec).frames():
        writer.write(image)
        truths.append(truth)
    writer.release()
    return truths
