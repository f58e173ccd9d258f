"""The camera stand-in: a short video of the synthetic classes the demo detector was trained on, written
with OpenCV on the host (convert.detection.synthetic renders the frames: numpy + OpenCV only)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from convert.detection.synthetic import SynthObject, render_frame

# Few, large, well-separated objects (one per class) that drift a little between frames: every frame has
# confident detections, so the x86 and the emulated run publish one message per frame and line up.
SCENE = (
    SynthObject(class_id=0, cx=70.0, cy=70.0, size=62.0, color=(230, 40, 40), angle=5.0, aspect=1.0),
    SynthObject(class_id=1, cx=240.0, cy=75.0, size=60.0, color=(40, 200, 60), angle=0.0, aspect=1.0),
    SynthObject(class_id=2, cx=90.0, cy=180.0, size=66.0, color=(40, 80, 230), angle=-8.0, aspect=1.0),
    SynthObject(class_id=3, cx=245.0, cy=175.0, size=64.0, color=(240, 200, 30), angle=10.0, aspect=1.0),
)


def scene_at(i: int) -> list[SynthObject]:
    return [SynthObject(class_id=o.class_id, cx=o.cx + 3.0 * i, cy=o.cy + 2.0 * ((i + o.class_id) % 3), size=o.size,
                        color=o.color, angle=o.angle, aspect=o.aspect) for o in SCENE]


def write_video(path: Path, frames: int = 4, size: tuple[int, int] = (320, 240), fps: float = 5.0,
                fourcc: str = "MJPG", background_seed: int = 11) -> list[np.ndarray]:
    """Write ``frames`` BGR frames; returns them as rendered (before compression)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video to {path}")
    images = []
    for i in range(frames):
        img = render_frame(w, h, scene_at(i), background_seed=background_seed, bgr=True).image
        writer.write(img)
        images.append(img)
    writer.release()
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise RuntimeError(f"OpenCV wrote no video to {path}")
    return images
