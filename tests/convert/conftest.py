"""Fixtures for the converter tests: low thread counts (2 shared cores), quiet TensorFlow, and one
briefly trained classifier shared by the export tests (trained through `convert-model train`)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_dataset  # noqa: E402

INPUT = 64


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> Path:
    """3 classes x 24 images, 64x64 PNGs."""
    return write_dataset(tmp_path_factory.mktemp("shapes") / "data", per_class=24, size=INPUT)


@pytest.fixture(scope="session")
def trained_classifier(shapes_dataset, tmp_path_factory) -> Path:
    """MobileNetV3-Small (alpha 0.75, 64x64) fine-tuned for a few epochs on the shapes: a model whose
    outputs are far from ~0, so int8-vs-float agreement means something."""
    from convert.cli import main
    out = tmp_path_factory.mktemp("trained") / "shapes.keras"
    rc = main(["train", "--data", str(shapes_dataset), "--arch", "mobilenetv3_small", "--alpha", "0.75",
               "--input-size", str(INPUT), "--epochs", "5", "--batch-size", "8", "--lr", "1e-3", "--freeze-bn",
               "--output", str(out)])
    assert rc == 0 and out.is_file()
    return out
