"""Keras model -> TFLite flatbuffer for each quantization mode (TFLiteConverter.from_keras_model)."""
from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from typing import Sequence

import numpy as np

from edge.contract.errors import ExportError, UsageError

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
IO_DTYPES = ("uint8", "int8", "float32")


def check_options(quantization: str, io_dtype: str) -> str:
    if quantization not in QUANTIZATIONS:
        raise UsageError(f"quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if io_dtype not in IO_DTYPES:
        raise UsageError(f"io dtype {io_dtype!r}; choose one of {', '.join(IO_DTYPES)}")
    if quantization != "int8":
        return "float32"       # only full-integer models take integer input/output
    return io_dtype


def _representative(images: Sequence[np.ndarray], progress: bool):
    """The calibration images as TFLite's representative dataset, with a progress bar per pass (the calibrator
    reads them once; the own-range recalibration, convert.export.calibration_ranges, reads them again)."""
    from convert.console import progress as bar
    passes = [0]

    def gen():
        passes[0] += 1
        desc = "int8 calibration" if passes[0] == 1 else "int8 calibration (own ranges)"
        for image in bar(images, desc=desc, unit="img", enabled=progress):
            yield [np.asarray(image, np.float32)[np.newaxis]]
    return gen


def convert_keras(model, quantization: str, io_dtype: str = "uint8", calibration: Sequence[np.ndarray] | None = None,
                  progress: bool = True) -> tuple[bytes, float]:
    """Return (flatbuffer, seconds)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    io_dtype = check_options(quantization, io_dtype)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if not calibration:
            raise UsageError("int8 export needs calibration images (--calibration FOLDER|VIDEO|ARRAY)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(list(calibration), progress)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)
    t0 = time.perf_counter()
    chatter = io.StringIO()   # the Keras exporter prints its saved-artifact summary to stdout
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*structure of `inputs`.*")
            warnings.filterwarnings("ignore", message=".*Statistics for quantized inputs.*")
            flatbuffer = converter.convert()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"TFLite conversion ({quantization}) failed: {first}") from exc
    return bytes(flatbuffer), time.perf_counter() - t0
