"""export_tflite: convert, check, measure fidelity, write with metadata (the contract in notes/contracts.md)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable

import keras
import numpy as np

from edge.contract.errors import ExportError, OutputError, UsageError
from convert.export import depthwise_form, formulations
from convert.export.calibration_ranges import CALIBRATION_RANGES, RangeFix, own_range_calibration
from convert.export.edgetpu import check_edgetpu_ready, run_compiler
from convert.export.fidelity import fidelity_warnings, measure_fidelity
from convert.export.inspect_model import inspect_flatbuffer
from convert.export.prepare import hard_swish_formulation, input_shape, with_static_batch
from convert.export.report import ExportReport
from convert.export.tflite_convert import check_options, convert_keras
from edge import model_metadata

DEFAULT_HARD_SWISH = formulations.AUTO        # int8: "xnnpack" (one XNNPACK partition), float: "native" (fastest)
DEFAULT_CALIBRATION_RANGES = "own"


def check_writable(out_path: str | Path) -> Path:
    out = Path(out_path)
    if out.suffix != ".tflite":
        raise UsageError(f"output {out} must end in .tflite")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise OutputError(f"cannot write {out}: permission denied; choose another --output")
    return out


def named_outputs(model: keras.Model) -> keras.Model:
    """A single-output model gets its output layer's name in the TFLite signature (instead of output_0)."""
    if isinstance(model.output, dict) or len(model.outputs) != 1:
        return model
    name = model.output_names[0]
    return keras.Model(model.inputs, {name: model.outputs[0]}, name=model.name)


def _metadata(meta: dict, model, inspection, quantization: str, io_dtype: str) -> dict:
    meta = dict(meta)
    _, h, w, c = input_shape(model)
    given = dict(meta.get("input") or {})
    meta["input"] = {"height": int(h), "width": int(w), "channels": int(c), "dtype": inspection.input_dtype,
                     "color": "RGB", "resize": given.get("resize", "stretch"), "pad_value": given.get("pad_value", 114),
                     "normalization": None}
    meta["quantization"] = quantization
    meta["io_dtype"] = io_dtype
    meta.setdefault("created_by", "convert-model")
    if meta.get("task") == "classification":
        cls = dict(meta.get("classification") or {})
        names = list(inspection.output_dtypes)
        cls.setdefault("output", names[0])
        cls.setdefault("activation", "softmax")
        meta["classification"] = cls
    return meta


def convert_model(model, quantization: str, io_dtype: str, calibration, progress: bool, ranges: str):
    """(flatbuffer, RangeFix or None): int8 with each tensor calibrated on its own range unless ranges='tflite'."""
    if quantization != "int8" or ranges == "tflite":
        return convert_keras(model, quantization, io_dtype, calibration, progress)[0], None
    with own_range_calibration(RangeFix()) as fix:
        flatbuffer = convert_keras(model, quantization, io_dtype, calibration, progress)[0]
    return flatbuffer, fix


def export_tflite(model: keras.Model, out_path: str | Path, *, quantization: str, io_dtype: str = "uint8",
                  calibration: Iterable[np.ndarray] | None = None, heldout: Iterable[np.ndarray] | None = None,
                  metadata: dict, edgetpu: bool = False, hard_swish: str | None = DEFAULT_HARD_SWISH,
                  calibration_ranges: str = DEFAULT_CALIBRATION_RANGES,
                  compare_hard_swish: tuple[str, ...] = formulations.COMPARE_WITH,
                  compare_float32: bool = True, progress: bool = True, warnings: list[str] | None = None,
                  run_edgetpu_compiler: bool = True,
                  depthwise: str = depthwise_form.DEFAULT_DEPTHWISE_FORM) -> ExportReport:
    """Convert ``model``, check it, measure its fidelity on ``heldout`` and write it with ``metadata``.

    ``hard_swish``: 'auto' (int8: 'xnnpack', float: 'native'), a formulation, or None (as built).
    ``depthwise``: 'tiled' (depthwise kernels above 25 taps as tiles XNNPACK runs fast) or 'direct' (as built).
    ``calibration_ranges``: 'own' (every int8 tensor calibrated on its own range) or 'tflite' (the calibrator's).
    ``compare_hard_swish``: for int8 with held-out images, also convert with these formulations and report
    their partitions and fidelity next to the exported one's."""
    t0 = time.perf_counter()
    out = check_writable(out_path)
    if edgetpu:
        if quantization != "int8" or io_dtype != "uint8":
            raise UsageError("--edgetpu needs full int8 with uint8 input/output (drop --quantization/--io or use "
                             "int8/uint8)")
    io_dtype = check_options(quantization, io_dtype)
    if calibration_ranges not in CALIBRATION_RANGES:
        raise UsageError(f"calibration ranges {calibration_ranges!r}; choose one of {', '.join(CALIBRATION_RANGES)}")
    hard_swish = formulations.resolve(hard_swish, quantization)
    calibration = list(calibration or [])
    heldout = list(heldout or [])
    model = named_outputs(with_static_batch(model))
    converted, large_kernels = depthwise_form.apply(model, depthwise)   # shares every other layer with model
    with hard_swish_formulation(model, hard_swish) as n_hswish:
        flatbuffer, range_fix = convert_model(converted, quantization, io_dtype, calibration, progress,
                                              calibration_ranges)
        float32_size = None
        if compare_float32 and quantization != "float32":
            float32_size = len(convert_keras(converted, "float32", progress=False)[0])
    inspection = inspect_flatbuffer(flatbuffer)
    if quantization == "int8" and inspection.float_ops:
        raise ExportError("int8 export left float ops: " + ", ".join(f"{k} x{v}" for k, v in
                          sorted(inspection.float_ops.items())) + f"; {out} was not written")
    unsupported = check_edgetpu_ready(inspection) if edgetpu else []
    fidelity = measure_fidelity(model, flatbuffer, heldout) if heldout else []
    compared = []
    if n_hswish and hard_swish and quantization == "int8" and heldout and compare_hard_swish:
        compared.append(formulations.FormulationResult(hard_swish, True, inspection.delegation, fidelity))
        for other in dict.fromkeys(compare_hard_swish):
            if other == hard_swish:
                continue
            with hard_swish_formulation(model, formulations.resolve(other, quantization)):
                alt, _ = convert_model(converted, quantization, io_dtype, calibration, False, calibration_ranges)
            compared.append(formulations.FormulationResult(other, False, inspect_flatbuffer(alt).delegation,
                                                           measure_fidelity(model, alt, heldout)))
    meta = _metadata(metadata, model, inspection, quantization, io_dtype)
    try:
        final = model_metadata.write_model(out, flatbuffer, meta)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from exc
    except model_metadata.ModelMetadataError as exc:
        raise ExportError(f"metadata for {out} is incomplete: {exc}") from exc
    edgetpu_result = None
    if edgetpu:
        if run_edgetpu_compiler:
            edgetpu_result = run_compiler(out, unsupported)
        else:
            from convert.export.edgetpu import EdgeTPUResult, HOW_TO_GET
            edgetpu_result = EdgeTPUResult(compiler=None, unsupported_ops=unsupported, message=HOW_TO_GET)
        if edgetpu_result.compiled_path is not None:
            model_metadata.write_sidecar(edgetpu_result.compiled_path,
                                         {k: v for k, v in final.items() if k not in ("model_sha256", "flatbuffer_size")}
                                         | {"compiled_for": "edgetpu"})
    return ExportReport(path=out, quantization=quantization, io_dtype=io_dtype, size_bytes=len(flatbuffer),
                        float32_size_bytes=float32_size, inspection=inspection, fidelity=fidelity,
                        calibration_images=len(calibration), heldout_images=len(heldout),
                        seconds=time.perf_counter() - t0, hard_swish=hard_swish if n_hswish else None,
                        hard_swish_compared=compared, range_fix=range_fix,
                        depthwise=depthwise_form.describe(depthwise, large_kernels) if large_kernels else None,
                        depthwise_form=depthwise,
                        metadata=final, edgetpu=edgetpu_result,
                        warnings=list(warnings or []) + fidelity_warnings(fidelity, quantization))
