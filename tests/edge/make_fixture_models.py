"""Build tiny int8 models with the project's contract outputs, for the edge-agent tests (run in a subprocess:
it imports TensorFlow, which the agent itself never does). Exported with the project's exporter
(``convert.export.export_tflite``), or the TFLiteConverter directly where that is not installed.

* ``detector-int8.tflite``: input 64x64 RGB uint8, Gaussian head, strides 16 and 32, 2 classes
  ("red", "blue"). Weights are set by hand so its output follows the scene: a cell is an object when
  its mean red (class "red") or blue (class "blue") is high; sigmas are ~0.12. A video with a red square
  gives detections; a black frame gives none.
* ``classifier-int8.tflite``: input 32x32, softmax over ("red", "green", "blue") from the mean colour.

usage: python make_fixture_models.py OUT_DIR
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from edge.model_metadata import write_model  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras = tf.keras
SIZE = 64
LABELS = ["red", "blue"]
ANCHORS = [[[12, 12], [20, 20], [28, 28]], [[24, 24], [40, 40], [56, 56]]]


def _head(pooled, stride: int):
    C = len(LABELS)
    per = 7 + C
    sig = keras.layers.Conv2D(3 * per, 1, activation="sigmoid", name=f"s{stride}_sigmoid")
    lin = keras.layers.Conv2D(6, 1, name=f"s{stride}_linear")
    s_out, l_out = sig(pooled), lin(pooled)
    w = np.zeros((1, 1, 3, 3 * per), np.float32)
    b = np.zeros((3 * per,), np.float32)
    for a in range(3):
        o = a * per
        b[o + 2:o + 6] = -2.0                # sigmas ~0.12
        w[0, 0, 0, o + 6] = 14.0             # objectness: red or blue channel mean (pixels /255)
        w[0, 0, 2, o + 6] = 14.0
        b[o + 6] = -7.0 - (a * 1.0)          # anchors differ a little so NMS has work to do
        w[0, 0, 0, o + 7] = 12.0             # class red
        w[0, 0, 2, o + 7] = -12.0
        w[0, 0, 2, o + 8] = 12.0             # class blue
        w[0, 0, 0, o + 8] = -12.0
    sig.set_weights([w, b])
    lin.set_weights([np.zeros((1, 1, 3, 6), np.float32), np.zeros((6,), np.float32)])
    return s_out, l_out


def build_detector() -> keras.Model:
    x = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    r = keras.layers.Rescaling(1 / 255.0)(x)
    outs = {}
    for stride in (16, 32):
        pooled = keras.layers.AveragePooling2D(stride)(r)
        s_out, l_out = _head(pooled, stride)
        outs[f"s{stride}_sigmoid"], outs[f"s{stride}_linear"] = s_out, l_out
    return keras.Model(x, outs)


def build_classifier() -> keras.Model:
    x = keras.Input((32, 32, 3), batch_size=1, name="image")
    r = keras.layers.Rescaling(1 / 255.0)(x)
    g = keras.layers.GlobalAveragePooling2D()(r)
    d = keras.layers.Dense(3, activation="softmax", name="probs")
    out = d(g)
    d.set_weights([np.eye(3, dtype=np.float32) * 8.0, np.zeros(3, np.float32)])
    return keras.Model(x, {"probs": out})


def calibration(size: int, n: int = 48):
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.zeros((size, size, 3), np.float32)
        if i % 3:
            c = rng.integers(0, 3)
            x0, y0 = rng.integers(0, size // 2, 2)
            img[y0:y0 + size // 2, x0:x0 + size // 2, c] = 255.0
        img += rng.uniform(0, 40, img.shape).astype(np.float32)
        yield [np.clip(img, 0, 255)[None]]


def to_int8(model: keras.Model, size: int) -> bytes:
    """Fallback while convert.export is missing: the TFLiteConverter directly (FINDINGS' recipe)."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: calibration(size)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    return conv.convert()


def export(model: keras.Model, size: int, path: Path, meta: dict) -> str:
    """The project's exporter (convert.export.export_tflite: int8 checks, fidelity, metadata) when present."""
    try:
        from convert.export import export_tflite
    except ImportError:
        write_model(path, to_int8(model, size), meta)
        return "TFLiteConverter"
    images = [batch[0][0] for batch in calibration(size)]
    export_tflite(model, path, quantization="int8", io_dtype="uint8", calibration=images, heldout=images[:8],
                  metadata=meta, progress=False, compare_float32=False, run_edgetpu_compiler=False)
    return "convert.export.export_tflite"


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = "tests/edge/make_fixture_models.py (hand-set weights, int8)"
    how = export(build_detector(), SIZE, out / "detector-int8.tflite", {
        "task": "detection", "architecture": "fixture-colour-detector", "model_id": "fixture-det-64",
        "quantization": "int8", "io_dtype": "uint8", "labels": LABELS, "created_by": "tests", "source": src,
        "input": {"height": SIZE, "width": SIZE, "channels": 3, "dtype": "uint8", "color": "RGB",
                  "resize": "letterbox", "pad_value": 114, "normalization": None},
        "detection": {"head": "gaussian", "num_classes": len(LABELS), "strides": [16, 32], "anchors": ANCHORS,
                      "outputs": {str(s): {"sigmoid": f"s{s}_sigmoid", "linear": f"s{s}_linear"} for s in (16, 32)}},
    })
    export(build_classifier(), 32, out / "classifier-int8.tflite", {
        "task": "classification", "architecture": "fixture-colour-classifier", "model_id": "fixture-cls-32",
        "quantization": "int8", "io_dtype": "uint8", "labels": ["red", "green", "blue"], "created_by": "tests",
        "source": src,
        "input": {"height": 32, "width": 32, "channels": 3, "dtype": "uint8", "color": "RGB",
                  "resize": "stretch", "pad_value": 114, "normalization": None},
        "classification": {"output": "probs", "activation": "softmax"},
    })
    print(f"exported with {how}")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
