"""A detector exported with int8 input/output runs in one XNNPACK partition with nothing outside (no TILE from the
neck's upsampling, no uint8<->int8 QUANTIZE at the edges), and camera pixels reach its int8 input exactly."""
from __future__ import annotations

import numpy as np
import pytest

from convert.detection.export import detector_metadata
from convert.detection.model import DetectorConfig, build_detector
from convert.export import export_tflite
from convert.models.bn_calibration import calibrate_batchnorm
from convert.models.training import random_images
from edge.runtime import TFLiteModel


@pytest.fixture(scope="module")
def int8_detector(tmp_path_factory):
    cfg = DetectorConfig(backbone="mobilenetv3_small", input_size=(96, 96), labels=["a", "b"], neck_channels=32)
    det = build_detector(cfg, batch_size=1)
    images = random_images(12, (96, 96))
    images[0][:] = 0.0
    images[1][:] = 255.0          # the calibration covers the whole pixel range: input scale 1, zero point -128
    calibrate_batchnorm(det.model, images[:6])
    paths = {}
    for io in ("int8", "uint8"):
        meta = detector_metadata(architecture="gaussian-yolov3-test", model_id="t", input_hw=(96, 96),
                                 labels=cfg.labels, detection=cfg.detection_metadata(), quantization="int8",
                                 io_dtype=io)
        out = tmp_path_factory.mktemp(io) / f"det-{io}.tflite"
        paths[io] = (export_tflite(det.model, out, quantization="int8", io_dtype=io, calibration=images,
                                   metadata=meta, compare_float32=False, progress=False), out)
    return paths


def test_int8_io_detector_is_one_partition_with_nothing_outside(int8_detector):
    report, _ = int8_detector["int8"]
    d = report.inspection.delegation
    assert d.partitions == 1 and not d.undelegated, d.describe()
    assert "TILE" not in report.inspection.ops and report.inspection.ops["TRANSPOSE_CONV"] == 1
    # with uint8 I/O only the QUANTIZE ops at the edges stay out; the graph itself is still one partition
    report8, _ = int8_detector["uint8"]
    assert report8.inspection.delegation.partitions == 1
    assert set(report8.inspection.delegation.undelegated) == {"QUANTIZE"}


def test_pixels_reach_the_int8_input_exactly(int8_detector):
    _, path = int8_detector["int8"]
    model = TFLiteModel(path, threads=1)
    assert model.input_dtype == np.int8
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (96, 96, 3)).astype(np.uint8)
    model.set_input(pixels)
    got = model.interpreter.get_tensor(model.input["index"])[0]
    np.testing.assert_array_equal(got.astype(np.int16), pixels.astype(np.int16) - 128)
    # the same as the general quantization path (float pixels take it)
    model.set_input(pixels.astype(np.float32))
    np.testing.assert_array_equal(model.interpreter.get_tensor(model.input["index"])[0], got)
