"""Detector export glue: metadata + calibration data, then ``convert.export.export_tflite`` (the one exporter).

Calibration and fidelity images are prepared with ``edge.preprocess`` exactly as the device prepares frames.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from convert.detection.datasets import DetectionDataset
from edge.contract.errors import InputError

CREATED_BY = "sigmawatch convert-model"


def prepared_images(dataset: DetectionDataset, input_hw: tuple[int, int], count: int, seed: int = 0,
                    resize: str = "letterbox") -> list[np.ndarray]:
    """``count`` images of the dataset (seeded choice) as float32 (H, W, 3) in [0, 255], letterboxed."""
    from edge.preprocess import prepare
    if not dataset.samples:
        raise InputError(f"{dataset.source}: no images for calibration")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(dataset.samples))[:count]
    out = []
    for i in idx:
        img = cv2.imread(str(dataset.samples[int(i)].image), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{dataset.samples[int(i)].image}: cannot be read as an image")
        rgb, _ = prepare(img, (input_hw[1], input_hw[0]), resize, 114, bgr=True)
        out.append(rgb.astype(np.float32))
    return out


def detector_metadata(*, architecture: str, model_id: str, input_hw: tuple[int, int], labels: list[str],
                      detection: dict, quantization: str, io_dtype: str, source: str | None = None,
                      extra: dict | None = None) -> dict:
    """The contract's metadata for a detector export."""
    meta = {
        "task": "detection",
        "architecture": architecture,
        "model_id": model_id,
        "input": {"height": int(input_hw[0]), "width": int(input_hw[1]), "channels": 3,
                  "dtype": io_dtype if quantization == "int8" else "float32", "color": "RGB", "resize": "letterbox",
                  "pad_value": 114, "normalization": None},
        "quantization": quantization,
        "io_dtype": io_dtype if quantization == "int8" else "float32",
        "labels": list(labels),
        "created_by": CREATED_BY,
        "source": source or " ".join(["convert-model", *sys.argv[1:]]),
        "detection": detection,
    }
    if extra:
        meta.update(extra)
    return meta


def export_detector(model, out_path: str | Path, *, metadata: dict, quantization: str = "int8",
                    io_dtype: str = "uint8", calibration: list[np.ndarray] | None = None,
                    heldout: list[np.ndarray] | None = None, edgetpu: bool = False):
    """Export through the classifier engineer's ``convert.export.export_tflite`` (contract)."""
    try:
        from convert.export import export_tflite
    except ImportError as exc:  # pragma: no cover - only while the exporter is missing
        from edge.contract.errors import ToolMissingError
        raise ToolMissingError(f"convert.export.export_tflite is not available ({exc})") from exc
    if quantization == "int8" and not calibration:
        raise InputError("int8 export needs calibration images: pass --calib-data (a dataset folder)")
    return export_tflite(model, Path(out_path), quantization=quantization, io_dtype=io_dtype,
                         calibration=calibration, heldout=heldout, metadata=metadata, edgetpu=edgetpu)


def iter_batches(images: list[np.ndarray]) -> Iterator[np.ndarray]:
    for img in images:
        yield img
