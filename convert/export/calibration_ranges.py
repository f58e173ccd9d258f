"""Every activation tensor calibrated on its own range (a fix for TFLite's calibrator).

What goes wrong: TFLite's post-training calibrator runs the float model in an interpreter whose kernels are
wrapped by a logger. The wrapper logs each op's inputs, invokes the kernel, and logs the inputs *again* (for
LSTM state tensors) before logging the outputs. Since TFLite 2.14 element-wise ops (ADD, MUL, SUB, ...) may
compute in place: when an input has one consumer and the output's size, the arena gives the output that
input's buffer. The second log then reads the op's output under the input's name, so that input is calibrated
on the union of its own range and the output's range. Measured with TF 2.20 on MobileNetV3:

  - the x/6 of the XNNPACK-friendly hard-swish ``(x/6) * relu6(x+3)`` gets [-1.09, 5.99] instead of
    [-1.09, 1.00] (the product's range): 6x too coarse, every hard-swish;
  - the projection of every residual block gets the range of the sum (up to 2.3x too coarse);
  - reordering the factors only moves the damage to the other factor (relu6(x+3) then gets [-0.37, 8.95]).

The fix here: let the converter calibrate as usual, then measure every activation tensor's min/max again on
the same representative images with an interpreter that keeps every tensor in its own buffer
(``experimental_preserve_all_tensors``: no in-place sharing), write those ranges into the calibrated model and
let the converter quantize it. Nothing else changes (same quantizer, same options); the ranges are exactly
what the calibrator would record without the in-place artefact (global min/max over the images).

It hooks ``tensorflow.lite.python.optimize.calibrator.Calibrator.calibrate`` for the duration of one
conversion; the same private pieces (calibrate, then the MLIR quantizer) back TensorFlow's public
``tf.lite.experimental.QuantizationDebugger``. If a TensorFlow release moves them, the export fails with a
message saying so and how to export with the calibrator's own ranges instead.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from edge.contract.errors import ExportError

CALIBRATION_RANGES = ("own", "tflite")   # "tflite": the calibrator's ranges as they are (with the artefact)


# XNNPACK takes an int8 ADD/SUB only if input scale / output scale is in [1/1024, 256) for each input, and an
# int8 MUL only if input1 scale * input2 scale / output scale is in [1/65536, 256) (xnnpack_delegate.cc).
ADD_RATIO_MAX = 256.0
MUL_RATIO_MAX = 256.0
INT8_STEPS = 255.0


@dataclass
class RangeFix:
    """What the recalibration changed: tensors whose recorded range was wider than their own, and by how much."""
    tensors: int = 0                       # activation tensors with a calibrated range
    widened: list[tuple[str, float]] = field(default_factory=list)   # (tensor name, recorded width / own width)
    kept_for_xnnpack: list[str] = field(default_factory=list)        # outputs kept wider than their own range

    def describe(self) -> str:
        if not self.widened:
            text = f"own ranges for all {self.tensors} activation tensors (the calibrator's were already right)"
        else:
            worst = max(w for _, w in self.widened)
            text = (f"own ranges for all {self.tensors} activation tensors; TFLite's calibrator had widened "
                    f"{len(self.widened)} of them (up to {worst:.1f}x) through in-place ops")
        if self.kept_for_xnnpack:
            text += (f"; {len(self.kept_for_xnnpack)} output(s) kept wider so XNNPACK's int8 scale ratios hold "
                     "(activations > ~700 feed a [0, 6] output)")
        return text


def measure_ranges(model_content: bytes, samples) -> dict[int, tuple[float, float]]:
    """tensor index -> (min, max) of every float32 activation over ``samples`` (lists of input arrays), each
    tensor in its own buffer."""
    from ai_edge_litert.interpreter import Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # "preserve_all_tensors is intended for debugging"
        interpreter = Interpreter(model_content=bytes(model_content), num_threads=1,
                                  experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    details = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.float32]
    low: dict[int, float] = {}
    high: dict[int, float] = {}
    for sample in samples:
        for detail, value in zip(inputs, sample):
            interpreter.set_tensor(detail["index"], np.asarray(value, detail["dtype"]))
        interpreter.invoke()
        for d in details:
            try:
                value = interpreter.get_tensor(d["index"])
            except ValueError:                   # tensors without data (constants folded away, scratch)
                continue
            if value.size == 0:
                continue
            i = d["index"]
            low[i] = min(low.get(i, np.inf), float(value.min()))
            high[i] = max(high.get(i, -np.inf), float(value.max()))
    return {i: (low[i], high[i]) for i in low}


def _width(r: tuple[float, float]) -> float:
    return max(r[1], 0.0) - min(r[0], 0.0)          # int8 ranges always include 0


def keep_xnnpack_ratios(model, ranges: dict[int, tuple[float, float]]) -> list[int]:
    """Widen (never narrow) the outputs of ADD/SUB/MUL whose own ranges would break XNNPACK's int8 scale-ratio
    limits: an untrained or badly scaled network can feed activations of +-1000 into relu6(x + 3), whose [0, 6]
    output would then be 700x finer than its input and the op left to the reference kernels. Returns the
    tensors widened. TFLite's calibrator avoided this by accident: its in-place artefact widens such outputs."""
    from tensorflow.lite.python import schema_py_generated as schema
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    widened = []
    for op in model.subgraphs[0].operators:
        code = codes[op.opcodeIndex]
        if code not in (schema.BuiltinOperator.ADD, schema.BuiltinOperator.SUB, schema.BuiltinOperator.MUL):
            continue
        out = int(op.outputs[0])
        ins = [int(i) for i in op.inputs if int(i) in ranges]
        if out not in ranges or not ins:
            continue
        if code == schema.BuiltinOperator.MUL:
            if len(ins) < 2:
                continue
            need = _width(ranges[ins[0]]) * _width(ranges[ins[1]]) / (INT8_STEPS * MUL_RATIO_MAX)
        else:
            need = max(_width(ranges[i]) for i in ins) / ADD_RATIO_MAX
        need *= 1.01
        lo, hi = ranges[out]
        width = _width((lo, hi))
        if width >= need or width <= 0:
            continue
        grow = need / width
        ranges[out] = (min(lo, 0.0) * grow, max(hi, 0.0) * grow)
        widened.append(out)
    return widened


def rewrite_ranges(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> tuple[bytes, RangeFix]:
    """Write ``ranges`` into the min/max statistics of a calibrated model's activation tensors."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    fix = RangeFix()
    with_stats = {i for i, t in enumerate(model.subgraphs[0].tensors)
                  if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1}
    ranges = {i: r for i, r in ranges.items() if i in with_stats}
    kept = keep_xnnpack_ratios(model, ranges)
    fix.kept_for_xnnpack = [model.subgraphs[0].tensors[i].name.decode() if isinstance(
        model.subgraphs[0].tensors[i].name, bytes) else str(model.subgraphs[0].tensors[i].name) for i in kept]
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        q = tensor.quantization
        if q is None or q.min is None or q.max is None or len(q.min) != 1 or index not in ranges:
            continue
        fix.tensors += 1
        lo, hi = ranges[index]
        old_lo, old_hi = float(q.min[0]), float(q.max[0])
        own = max(hi, 0.0) - min(lo, 0.0)          # int8 ranges always include 0
        recorded = max(old_hi, 0.0) - min(old_lo, 0.0)
        if own > 0 and recorded > own * 1.01:
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            fix.widened.append((name, recorded / own))
        q.min = np.array([lo], np.float32)
        q.max = np.array([hi], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), fix


@contextlib.contextmanager
def own_range_calibration(fix: RangeFix):
    """While active, every TFLite int8 conversion in this process calibrates each tensor on its own range;
    ``fix`` collects what changed."""
    try:
        from tensorflow.lite.python.optimize import calibrator
        original = calibrator.Calibrator.calibrate
    except (ImportError, AttributeError) as exc:
        import tensorflow as tf
        raise ExportError(f"TensorFlow {tf.__version__} has no Calibrator.calibrate to hook ({exc}); export with "
                          "--calibration-ranges tflite (the calibrator's ranges, see convert/export/"
                          "calibration_ranges.py)") from exc

    def calibrate(self, dataset_gen):
        calibrated = original(self, dataset_gen)
        samples = [list(s) if isinstance(s, (list, tuple)) else [s] for s in dataset_gen()]
        fixed, result = rewrite_ranges(calibrated, measure_ranges(calibrated, samples))
        fix.tensors, fix.widened, fix.kept_for_xnnpack = result.tensors, result.widened, result.kept_for_xnnpack
        return fixed

    calibrator.Calibrator.calibrate = calibrate
    try:
        yield fix
    finally:
        calibrator.Calibrator.calibrate = original
