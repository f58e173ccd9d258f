"""Reading images from folders with errors that name the bad file."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge.contract.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (sorted, so runs are reproducible). Hidden files are skipped."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern)
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return files


def read_image(path: str | Path) -> np.ndarray:
    """BGR uint8 (H, W, 3) as OpenCV delivers frames; InputError naming the file when unreadable."""
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise InputError(f"image {path} does not exist")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"image {path} is corrupt or not an image OpenCV can decode; delete or replace it")
    return image


def iter_images(paths, skip_unreadable: bool = False, on_skip=None) -> Iterator[tuple[Path, np.ndarray]]:
    for path in paths:
        try:
            yield Path(path), read_image(path)
        except InputError as exc:
            if not skip_unreadable:
                raise
            if on_skip:
                on_skip(path, exc)


def class_folders(root: str | Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """An image-folder dataset: one sub-folder per class. Returns (class names, [(image path, class index)])."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist or is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise InputError(f"dataset folder {root} needs one sub-folder per class (at least 2); found "
                         f"{len(classes)}: {classes}")
    items = []
    for index, name in enumerate(classes):
        files = list_images(root / name)
        if not files:
            raise InputError(f"class folder {root / name} contains no images ({', '.join(IMAGE_SUFFIXES)})")
        items += [(f, index) for f in files]
    return classes, items
