"""Generated camera input for the demo: videos of the synthetic classes moving over a fixed background.

Uses the detector's own synthetic renderer (``convert.detection.synthetic``, numpy + OpenCV only) so the
shipped demo detector sees the kind of scene it was trained on. Objects move with constant velocity and
bounce off the frame edges; each device gets its own seed (own background, objects and motion).
Also measures what sending the frames themselves would cost: the mean JPEG size per frame.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

JPEG_QUALITY = 90  # a typical MJPEG camera setting


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frames: int
    mean_jpeg_bytes: float
    classes: tuple[str, ...]

    def to_json(self) -> dict:
        return {**self.__dict__, "path": str(self.path), "classes": list(self.classes)}


def _synthetic():
    try:
        from convert.detection import synthetic  # noqa: PLC0415 (numpy + cv2 only)
    except ImportError as exc:
        raise RuntimeError("the synthetic scene renderer (convert/detection/synthetic.py) is missing, so the demo "
                           f"cannot generate its camera videos ({exc})") from exc
    return synthetic


def write_demo_video(path: Path, seed: int, *, width: int = 320, height: int = 240, fps: float = 10.0,
                     seconds: float = 20.0, objects: int = 3) -> VideoInfo:
    """Write an mp4 (mp4v) of ``objects`` moving synthetic shapes; cached by its parameters."""
    import cv2  # noqa: PLC0415

    path = Path(path)
    meta_path = path.with_suffix(".json")
    params = {"seed": seed, "width": width, "height": height, "fps": fps, "seconds": seconds, "objects": objects,
              "version": 1}
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("params") == params:
            return VideoInfo(path=path, **{k: v for k, v in meta["info"].items() if k != "path"} |
                             {"classes": tuple(meta["info"]["classes"])})

    synth = _synthetic()
    rng = np.random.default_rng(seed)
    short = min(width, height)
    movers = []
    for i in range(objects):
        size = float(rng.uniform(0.22, 0.38) * short)
        obj = synth.SynthObject(class_id=int((seed + i) % len(synth.CLASSES)),
                                cx=float(rng.uniform(size, width - size)), cy=float(rng.uniform(size, height - size)),
                                size=size, color=synth._vivid_color(rng), angle=float(rng.uniform(0, 90)))
        speed = rng.uniform(0.08, 0.2) * short / fps
        direction = rng.uniform(0, 2 * np.pi)
        movers.append([obj, speed * np.cos(direction), speed * np.sin(direction)])

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with the mp4v codec")
    n = int(round(seconds * fps))
    jpeg_total = 0
    try:
        for _ in range(n):
            frame = synth.render_frame(width, height, [m[0] for m in movers], background_seed=seed, bgr=True)
            writer.write(frame.image)
            ok, jpg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            jpeg_total += len(jpg) if ok else 0
            for m in movers:  # move and bounce
                obj, vx, vy = m
                half = obj.size / 2
                if not half <= obj.cx + vx <= width - half:
                    m[1] = vx = -vx
                if not half <= obj.cy + vy <= height - half:
                    m[2] = vy = -vy
                m[0] = replace(obj, cx=obj.cx + vx, cy=obj.cy + vy, angle=obj.angle + 2.0)
    finally:
        writer.release()
    info = VideoInfo(path=path, width=width, height=height, fps=fps, frames=n, mean_jpeg_bytes=jpeg_total / max(n, 1),
                     classes=tuple(synth.CLASSES))
    meta_path.write_text(json.dumps({"params": params, "info": info.to_json()}, indent=1))
    return info
