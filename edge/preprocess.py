"""Frame -> model input, and model input pixels -> frame coordinates. numpy + OpenCV only.

Every sigmawatch model takes RGB uint8-range pixels of a fixed (width, height). Two ways to get
there from a camera frame of any size:

* ``letterbox``: scale by one factor so the whole frame fits, centre it, pad the rest with
  ``pad_value`` (114, as YOLO does). Aspect ratio kept; what detectors are trained with.
* ``stretch``: resize to the input size, aspect ratio changed; what classifiers use.

Both return the model input and a :class:`LetterboxInfo` that maps boxes in input pixels back to
frame-normalized ``[0, 1]`` coordinates, so the decoder never needs to know which one was used.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RESIZE_MODES = ("letterbox", "stretch")


@dataclass(frozen=True)
class LetterboxInfo:
    """How a frame of ``frame_w`` x ``frame_h`` was placed into the ``input_w`` x ``input_h`` input:
    input_x = frame_x * scale_x + pad_x (likewise y)."""
    frame_w: int
    frame_h: int
    input_w: int
    input_h: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_frame_normalized(self, boxes_xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """(N, 4) boxes [x1, y1, x2, y2] in input pixels -> frame-normalized [0, 1] (clipped by default)."""
        b = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        out = np.empty_like(b)
        out[:, [0, 2]] = (b[:, [0, 2]] - self.pad_x) / (self.scale_x * self.frame_w)
        out[:, [1, 3]] = (b[:, [1, 3]] - self.pad_y) / (self.scale_y * self.frame_h)
        return np.clip(out, 0.0, 1.0) if clip else out

    def lengths_to_frame_normalized(self, lengths_xy: np.ndarray) -> np.ndarray:
        """(N, 2) lengths (dx, dy) in input pixels -> frame-normalized lengths (no offset, no clip)."""
        d = np.asarray(lengths_xy, dtype=np.float32).reshape(-1, 2)
        return d / np.array([self.scale_x * self.frame_w, self.scale_y * self.frame_h], np.float32)

    def to_input_pixels(self, boxes_norm: np.ndarray) -> np.ndarray:
        """Inverse of ``to_frame_normalized`` (without clipping): frame-normalized -> input pixels."""
        b = np.asarray(boxes_norm, dtype=np.float32).reshape(-1, 4)
        out = np.empty_like(b)
        out[:, [0, 2]] = b[:, [0, 2]] * self.scale_x * self.frame_w + self.pad_x
        out[:, [1, 3]] = b[:, [1, 3]] * self.scale_y * self.frame_h + self.pad_y
        return out


def _three_channels(frame: np.ndarray, bgr: bool) -> tuple[np.ndarray, bool]:
    """Check the frame; return (3-channel uint8 image, whether its channels are still in BGR order).

    The channel swap is left to the caller so it can be done on the small resized image: resizing and
    padding work per channel, so swapping after them gives the same pixels at a fraction of the cost."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {frame.shape}")
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating) and frame.size and (frame.min() < 0 or frame.max() > 255):
            raise ValueError(f"float image values must lie in [0, 255]; got [{frame.min()}, {frame.max()}]")
        frame = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    channels = frame.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(frame, 3, axis=2)), False
    if channels == 3:
        return np.ascontiguousarray(frame), bgr
    if channels == 4:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB), False
    raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (width, height).

    Upscaling is bilinear. Downscaling needs an area (box) filter against aliasing, but OpenCV's INTER_AREA is
    fast only for a factor of 2 (a vectorized 2x2 mean: 0.3 ms for 1280x720 on one x86 core, while a one-step
    1280x720 -> 256x144, factor 5, takes 1.4 ms and 640x480 -> 256x192, factor 2.5, 1.3 ms: most of the agent's
    per-frame CPU time beside the interpreter). So: halve with 2x2 means while the result is still at least the
    wanted size; then, if an odd side stopped the halving, the largest integer factor k that divides both sides
    (a k x k box mean); then the remaining factor, which is < 2 by then, bilinearly. 640x480 -> 256x192 costs
    0.3 ms this way, 1280x720 -> 256x144 0.66 ms, and both stay within a third of sensor noise of a one-step
    INTER_AREA (tests/detection/test_det_preprocess_resize.py).
    Bilinear steps use INTER_LINEAR_EXACT: plain INTER_LINEAR rounds differently on aarch64 (NEON) than on x86,
    and the Pi must see exactly the model input that x86 evaluation saw (tests/pi checks this bit for bit).
    Training, calibration, evaluation and the agent all resize through here.
    """
    fh, fw = image.shape[:2]
    w, h = size
    if (w, h) == (fw, fh):
        return image
    if w > fw or h > fh:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR_EXACT)
    while fw % 2 == 0 and fh % 2 == 0 and fw // 2 >= w and fh // 2 >= h:
        image = cv2.resize(image, (fw // 2, fh // 2), interpolation=cv2.INTER_AREA)
        fh, fw = image.shape[:2]
    if (w, h) == (fw, fh):
        return image
    k = int(min(fw / w, fh / h))
    while k >= 2 and (fw % k or fh % k):
        k -= 1
    if k >= 2:
        image = cv2.resize(image, (fw // k, fh // k), interpolation=cv2.INTER_AREA)
        fh, fw = image.shape[:2]
        if (w, h) == (fw, fh):
            return image
    interp = cv2.INTER_LINEAR_EXACT if max(fw / w, fh / h) < 2 else cv2.INTER_AREA
    return cv2.resize(image, (w, h), interpolation=interp)


def _check_size(size) -> tuple[int, int]:
    try:
        w, h = (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return w, h


def letterbox(frame: np.ndarray, size: tuple[int, int], pad_value: int = 114,
              bgr: bool = True) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize keeping the aspect ratio, centred, padded with ``pad_value``.

    ``frame``: (H, W, 3) uint8 (BGR as OpenCV delivers it when ``bgr``), ``size``: (width, height).
    Returns (RGB uint8 array of shape (height, width, 3), LetterboxInfo).
    """
    w, h = _check_size(size)
    image, swap = _three_channels(frame, bgr)
    fh, fw = image.shape[:2]
    r = min(w / fw, h / fh)
    nw, nh = max(1, int(round(fw * r))), max(1, int(round(fh * r)))
    resized = resize(image, (nw, nh))
    left, top = (w - nw) // 2, (h - nh) // 2
    out = np.full((h, w, 3), int(pad_value), dtype=np.uint8)
    out[top:top + nh, left:left + nw] = resized
    if swap:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    info = LetterboxInfo(frame_w=fw, frame_h=fh, input_w=w, input_h=h,
                         scale_x=nw / fw, scale_y=nh / fh, pad_x=float(left), pad_y=float(top))
    return out, info


def stretch(frame: np.ndarray, size: tuple[int, int], pad_value: int = 114,
            bgr: bool = True) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize to exactly ``size`` (aspect ratio not kept). ``pad_value`` is accepted and unused so both
    functions share one signature."""
    del pad_value
    w, h = _check_size(size)
    image, swap = _three_channels(frame, bgr)
    fh, fw = image.shape[:2]
    out = resize(image, (w, h))
    out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if swap else np.ascontiguousarray(out)
    info = LetterboxInfo(frame_w=fw, frame_h=fh, input_w=w, input_h=h,
                         scale_x=w / fw, scale_y=h / fh, pad_x=0.0, pad_y=0.0)
    return out, info


def prepare(frame: np.ndarray, size: tuple[int, int], resize: str = "letterbox", pad_value: int = 114,
            bgr: bool = True) -> tuple[np.ndarray, LetterboxInfo]:
    """Dispatch on the metadata's ``input.resize`` ("letterbox" or "stretch")."""
    if resize == "letterbox":
        return letterbox(frame, size, pad_value, bgr)
    if resize == "stretch":
        return stretch(frame, size, pad_value, bgr)
    raise ValueError(f"unknown resize mode {resize!r}; expected one of {', '.join(RESIZE_MODES)}")


def prepare_for_model(frame: np.ndarray, input_meta: dict, bgr: bool = True) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize a frame as the model's metadata ``input`` section says."""
    size = (int(input_meta["width"]), int(input_meta["height"]))
    pad = input_meta.get("pad_value")
    return prepare(frame, size, input_meta.get("resize", "letterbox"), 114 if pad is None else int(pad), bgr)
