"""Calibration sources for int8 export: a folder of images (searched recursively, so a class-per-folder
dataset works too), a video file, or a .npy/.npz array of images. Every image goes through the
model's own preprocessing (edge.preprocess: stretch or letterbox to the input size, BGR -> RGB),
so calibration sees exactly what the device feeds the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.data.images import IMAGE_SUFFIXES, list_images, read_image
from convert.data.video import VIDEO_SUFFIXES, video_frames
from edge.contract.errors import InputError
from edge.preprocess import prepare

RECOMMENDED_IMAGES = 100      # below this, int8 ranges are often poorly estimated
DEFAULT_MAX_IMAGES = 300


@dataclass
class CalibrationSet:
    calibration: list[np.ndarray]   # float32 (H, W, 3) in [0, 255]
    heldout: list[np.ndarray]
    source: str
    warnings: list[str]


def _from_array(path: Path) -> list[np.ndarray]:
    try:
        data = np.load(path)
        if isinstance(data, np.lib.npyio.NpzFile):
            key = "images" if "images" in data.files else data.files[0]
            data = data[key]
    except Exception as exc:
        raise InputError(f"array file {path} cannot be read: {exc}") from exc
    data = np.asarray(data)
    if data.ndim != 4 or data.shape[-1] != 3:
        raise InputError(f"array file {path} holds shape {data.shape}; expected (N, H, W, 3) RGB images")
    return [img[..., ::-1] for img in data]   # to BGR like files/frames, so one code path follows


def load_calibration(source: str | Path, input_size: tuple[int, int], resize: str = "stretch",
                     max_images: int = DEFAULT_MAX_IMAGES, heldout_fraction: float = 0.2,
                     pad_value: int = 114) -> CalibrationSet:
    """Read and preprocess calibration images. ``input_size`` is (height, width).
    A corrupt image file is an error naming it (not silently skipped: it may be a truncated copy)."""
    path = Path(source)
    h, w = int(input_size[0]), int(input_size[1])
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise InputError(f"calibration folder {path} contains no images ({', '.join(IMAGE_SUFFIXES)}); "
                             "put a few hundred typical camera frames there, or pass a video file")
        if len(files) > max_images:      # spread the sample over the whole folder
            files = [files[i] for i in np.linspace(0, len(files) - 1, max_images).astype(int)]
        frames = (read_image(f) for f in files)
    elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        frames = video_frames(path, max_images)
    elif path.is_file() and path.suffix.lower() in (".npy", ".npz"):
        frames = iter(_from_array(path)[:max_images])
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        frames = iter([read_image(path)])
    elif not path.exists():
        raise InputError(f"calibration source {path} does not exist; pass a folder of images, a video file "
                         f"({', '.join(VIDEO_SUFFIXES)}) or a .npy/.npz array of images")
    else:
        raise InputError(f"calibration source {path} is not a folder, video ({', '.join(VIDEO_SUFFIXES)}), "
                         ".npy/.npz array or image file")
    images = [prepare(f, (w, h), resize, pad_value, bgr=True)[0].astype(np.float32) for f in frames]
    if not images:
        raise InputError(f"calibration source {path} yielded no images")
    return split_heldout(images, str(path), heldout_fraction)


def split_heldout(images: list[np.ndarray], source: str, heldout_fraction: float = 0.2) -> CalibrationSet:
    """Every k-th image is held out for the fidelity check (at least 1 when there are 2+ images). The warnings are
    returned, not logged: the export report prints them once."""
    warnings = []
    n_held = int(round(len(images) * heldout_fraction)) if len(images) > 1 else 0
    n_held = max(1 if len(images) > 1 else 0, n_held)
    held_idx = set(np.linspace(0, len(images) - 1, n_held).astype(int).tolist()) if n_held else set()
    calibration = [im for i, im in enumerate(images) if i not in held_idx]
    heldout = [im for i, im in enumerate(images) if i in held_idx]
    if len(calibration) < RECOMMENDED_IMAGES:
        need = RECOMMENDED_IMAGES + (-(-RECOMMENDED_IMAGES * len(heldout) // max(1, len(calibration))) if heldout else 0)
        warnings.append(f"{describe_split(len(calibration), len(heldout), source)}: fewer than the "
                        f"{RECOMMENDED_IMAGES} calibration images recommended (pass about {need} or more), so int8 "
                        "ranges may be poorly estimated and accuracy may drop")
    if not heldout:
        warnings.append("no held-out images left for the int8 fidelity check (need 2+ images)")
    return CalibrationSet(calibration, heldout, source, warnings)


def describe_split(calibration: int, heldout: int, source: str = "") -> str:
    """'80 of 100 images from X used for calibration, 20 held out for the fidelity check'."""
    total = calibration + heldout
    origin = f" from {source}" if source else ""
    if not heldout:
        return f"{calibration} image(s){origin} used for calibration, none held out"
    return (f"{calibration} of {total} images{origin} used for calibration, {heldout} held out for the int8 "
            "fidelity check")
