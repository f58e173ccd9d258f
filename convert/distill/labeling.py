"""A teacher labels frames of videos / image folders: the pseudo-labelled YOLO dataset a student trains on.

Footage is cut into time segments (``segment_s`` seconds of video, or runs of images in name order); every
``holdout_every``-th segment (starting at ``holdout_offset``) is held out: its frames go to the ``val`` split,
never trained on, and ``gap_s`` seconds on each side of it are dropped so no near-identical neighbour frame
leaks into training. The teacher is any model the agent can run (``edge.engine.Engine``: Gaussian / plain
YOLOv3 or SSD); its labels go through a class map (teacher label -> student class), a confidence threshold per
student class, and optionally horizontal-flip test-time augmentation (boxes of both passes merged by NMS).

Written (YOLO layout, read by ``convert.detection.datasets``)::

    DATA/classes.txt, DATA/images/{train,val}/<source>_<frame>.jpg, DATA/labels/{train,val}/<same>.txt
    DATA/distill.json    teacher (id, sha256), footage (sha256), segments, class map, thresholds, counts

Resumable: a frame whose label file exists is not labelled again (the label file is written last).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge.contract.errors import InputError, UsageError
from edge.decode import Detection, batched_nms

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class LabelConfig:
    class_map: dict[str, str]                 # teacher label -> student class
    thresholds: dict[str, float]              # student class -> minimum teacher score
    iou_threshold: float = 0.5
    tta_flip: bool = False
    frame_step: int = 1                       # label every n-th frame of a video
    segment_s: float = 8.0
    holdout_every: int = 5
    holdout_offset: int = 2
    gap_s: float = 1.0
    image_fps: float = 1.0                    # image folders: images per "second" for segmenting
    jpeg_quality: int = 95
    min_box_px: float = 4.0                   # drop teacher boxes smaller than this (frame pixels)

    @property
    def classes(self) -> list[str]:
        seen: list[str] = []
        for v in self.class_map.values():
            if v not in seen:
                seen.append(v)
        return seen


@dataclass
class Frame:
    source: Path
    index: int
    time_s: float
    image: np.ndarray


@dataclass
class LabelStats:
    frames: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0, "gap": 0})
    boxes: dict[str, dict[str, int]] = field(default_factory=lambda: {"train": {}, "val": {}})


def parse_class_map(text: str) -> dict[str, str]:
    """'Person=person,Car=car' -> {'Person': 'person', 'Car': 'car'}."""
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        if "=" not in part:
            raise UsageError(f"--class-map entry {part!r}: write TEACHER_LABEL=student_class, e.g. Person=person")
        k, v = (s.strip() for s in part.split("=", 1))
        if not k or not v:
            raise UsageError(f"--class-map entry {part!r} has an empty side")
        out[k] = v
    if not out:
        raise UsageError("--class-map is empty: map at least one teacher label to a student class")
    return out


def parse_thresholds(text: str | None, classes: list[str], default: float) -> dict[str, float]:
    """'person=0.4,car=0.5' (student classes) -> a threshold for every class (``default`` for the rest)."""
    out = {c: default for c in classes}
    for part in [p.strip() for p in (text or "").split(",") if p.strip()]:
        k, _, v = part.partition("=")
        if k not in out:
            raise UsageError(f"--thresholds names {k!r}, which is not a student class; classes: {classes}")
        try:
            out[k] = float(v)
        except ValueError:
            raise UsageError(f"--thresholds {part!r}: the value must be a number in (0, 1)") from None
        if not 0.0 < out[k] < 1.0:
            raise UsageError(f"--thresholds {part!r}: the value must be in (0, 1)")
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def iter_frames(source: Path, cfg: LabelConfig) -> Iterator[Frame]:
    """Frames of a video file (every ``frame_step``-th) or the images of a folder in name order."""
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        for i, p in enumerate(images):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"{p}: cannot be read as an image")
            yield Frame(source, i, i / cfg.image_fps, img)
        return
    if not source.is_file():
        raise InputError(f"footage {source} does not exist (a video file or an image folder)")
    if source.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"{source}: not a video ({', '.join(VIDEO_SUFFIXES)}) or an image folder")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise InputError(f"{source}: OpenCV cannot open this video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    i = 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            if i % cfg.frame_step == 0:
                yield Frame(source, i, i / fps, img)
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise InputError(f"{source}: no frame could be decoded")


def split_of(time_s: float, cfg: LabelConfig) -> str:
    """'train', 'val' (held-out segment) or 'gap' (too close to a held-out segment: not used)."""
    seg = int(time_s // cfg.segment_s)
    if cfg.holdout_every > 0 and seg % cfg.holdout_every == cfg.holdout_offset % cfg.holdout_every:
        return "val"
    if cfg.holdout_every > 0:
        for near in (time_s - cfg.gap_s, time_s + cfg.gap_s):
            s = int(max(0.0, near) // cfg.segment_s)
            if s != seg and s % cfg.holdout_every == cfg.holdout_offset % cfg.holdout_every:
                return "gap"
    return "train"


def teacher_detections(engine, frame: np.ndarray, cfg: LabelConfig) -> list[Detection]:
    """The teacher's detections mapped to student classes and thresholded (frame-normalized boxes)."""
    floor = min(cfg.thresholds.values())
    passes = [(frame, False)] + ([(np.ascontiguousarray(frame[:, ::-1]), True)] if cfg.tta_flip else [])
    dets: list[Detection] = []
    for img, flipped in passes:
        image, info = engine.preprocess(img)
        raw = engine.decoder.decode(engine.infer(image), engine.quant, info, score_threshold=floor,
                                    iou_threshold=cfg.iou_threshold, max_detections=300)
        for d in raw:
            student = cfg.class_map.get(d.label)
            if student is None or d.score < cfg.thresholds[student]:
                continue
            box = (1.0 - d.box[2], d.box[1], 1.0 - d.box[0], d.box[3]) if flipped else d.box
            dets.append(Detection(cfg.classes.index(student), student, d.score, d.objectness, box, None, None, None))
    if cfg.tta_flip and dets:
        keep = batched_nms(np.array([d.box for d in dets]), np.array([d.score for d in dets]),
                           np.array([d.class_id for d in dets]), cfg.iou_threshold)
        dets = [dets[int(k)] for k in keep]
    return dets


def yolo_lines(dets: list[Detection], w: int, h: int, min_px: float) -> list[str]:
    lines = []
    for d in dets:
        x1, y1, x2, y2 = d.box
        if (x2 - x1) * w < min_px or (y2 - y1) * h < min_px:
            continue
        lines.append(f"{d.class_id} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return lines


def label_footage(teacher, sources: list[Path], out: Path, cfg: LabelConfig, *, teacher_path: Path,
                  progress: bool = True, log=print) -> LabelStats:
    """Label every frame of ``sources`` with the ``teacher`` (an ``edge.engine.Engine``) into ``out``."""
    from convert.console import progress as progress_bar
    out = Path(out)
    manifest = out / "distill.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("label_config") != _config_record(cfg):
            raise UsageError(f"{out} was labelled with other settings ({manifest}); choose another --data-dir "
                             "or delete it")
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("\n".join(cfg.classes) + "\n")
    stats = LabelStats()
    record_sources = []
    for src in sources:
        src = Path(src)
        tag = src.stem if src.is_file() else src.name
        total = int(cv2.VideoCapture(str(src)).get(cv2.CAP_PROP_FRAME_COUNT)) if src.is_file() else None
        bar = progress_bar(iter_frames(src, cfg), total=total and -(-total // cfg.frame_step), desc=f"teacher {tag}",
                           unit="frame", enabled=progress, leave=True)
        for fr in bar:
            split = split_of(fr.time_s, cfg)
            stats.frames[split] += 1
            if split == "gap":
                continue
            stem = f"{tag}_{fr.index:06d}"
            label_file = out / "labels" / split / f"{stem}.txt"
            if label_file.is_file():
                lines = [ln for ln in label_file.read_text().splitlines() if ln.strip()]
            else:
                h, w = fr.image.shape[:2]
                lines = yolo_lines(teacher_detections(teacher, fr.image, cfg), w, h, cfg.min_box_px)
                img_file = out / "images" / split / f"{stem}.jpg"
                cv2.imwrite(str(img_file), fr.image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
                tmp = label_file.with_suffix(".tmp")
                tmp.write_text("\n".join(lines) + ("\n" if lines else ""))
                os.replace(tmp, label_file)
            for ln in lines:
                name = cfg.classes[int(ln.split()[0])]
                stats.boxes[split][name] = stats.boxes[split].get(name, 0) + 1
        record_sources.append({"path": str(src.resolve()), "name": src.name,
                               "sha256": sha256_file(src) if src.is_file() else None})
    meta = teacher.meta
    manifest.write_text(json.dumps({
        "teacher": {"model_id": meta.get("model_id"), "architecture": meta.get("architecture"),
                    "sha256": meta.get("model_sha256"), "path": str(Path(teacher_path).resolve())},
        "footage": record_sources, "label_config": _config_record(cfg),
        "frames": stats.frames, "boxes": stats.boxes}, indent=1) + "\n")
    log(f"labelled {stats.frames['train']} training and {stats.frames['val']} held-out frames "
        f"({stats.frames['gap']} gap frames unused): boxes {stats.boxes}")
    return stats


def _config_record(cfg: LabelConfig) -> dict:
    from dataclasses import asdict
    return json.loads(json.dumps(asdict(cfg)))


def heldout_segments(data: Path) -> dict:
    """The provenance record written by :func:`label_footage`."""
    p = Path(data) / "distill.json"
    if not p.is_file():
        raise InputError(f"{data} has no distill.json: label it with convert-model distill first")
    return json.loads(p.read_text())
