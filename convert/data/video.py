"""Frames from a video file (calibration from footage of the scene the camera will see)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge.contract.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg")


def video_frames(path: str | Path, max_frames: int, stride: int | None = None) -> Iterator[np.ndarray]:
    """Up to ``max_frames`` BGR frames spread over the whole video (every ``stride``-th frame; by default
    the stride that spreads max_frames over the clip)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video file {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"video file {path} cannot be opened (corrupt, or a codec OpenCV lacks)")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if stride is None:
            stride = max(1, total // max(1, max_frames)) if total > 0 else 1
        index = produced = 0
        while produced < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if index % stride == 0:
                produced += 1
                yield frame
            index += 1
        if produced == 0:
            raise InputError(f"video file {path} yielded no frames (empty or unreadable)")
    finally:
        cap.release()
