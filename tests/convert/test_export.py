"""Export round trips through `convert-model` with a briefly trained classifier, checked with the
interpreter the edge uses (edge.runtime.TFLiteModel)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from convert.cli import main
from convert.data.images import list_images, read_image
from convert.export.inspect_model import inspect_flatbuffer
from convert.models.training import load_trained
from edge import model_metadata
from edge.modelbench import analyze_delegation
from edge.preprocess import stretch
from edge.runtime import TFLiteModel, dequantize, find_runtime


@pytest.fixture(scope="module")
def int8_edgetpu_model(trained_classifier, shapes_dataset, tmp_path_factory, monkeypatch_module):
    """--edgetpu export with no compiler on PATH: full int8, uint8 I/O, instructions, ready model."""
    out = tmp_path_factory.mktemp("int8") / "shapes-int8.tflite"
    monkeypatch_module.setenv("PATH", "/usr/bin:/bin")
    rc = main(["export", "--model", str(trained_classifier), "--calibration", str(shapes_dataset),
               "--edgetpu", "--output", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_int8_round_trip_in_edge_runtime(int8_edgetpu_model, trained_classifier, shapes_dataset, capsys):
    flatbuffer, meta = model_metadata.read_model(int8_edgetpu_model)
    inspection = inspect_flatbuffer(flatbuffer)
    assert not inspection.float_ops, inspection.float_ops
    assert inspection.input_dtype == "uint8" and inspection.input_shape == (1, 64, 64, 3)
    assert meta["quantization"] == "int8" and meta["io_dtype"] == "uint8"
    assert meta["input"]["normalization"] is None and meta["input"]["resize"] == "stretch"
    assert meta["labels"] == ["circle", "square", "stripes"]
    # outputs agree with the Keras float model on every image, read through the agent's runtime
    keras_model, _ = load_trained(trained_classifier)
    tfl = TFLiteModel(int8_edgetpu_model)
    name = meta["classification"]["output"]
    scale, zero = tfl.output_quantization()[name]
    agree, errors = [], []
    for path in list_images(shapes_dataset)[::4]:
        pixels = stretch(read_image(path), (64, 64))[0]
        ref = np.asarray(keras_model(pixels[np.newaxis].astype(np.float32), training=False))[0]
        got = dequantize(tfl.run(pixels)[name], scale, zero)[0]
        agree.append(ref.argmax() == got.argmax())
        errors.append(np.abs(ref - got).max())
    assert ref.max() > 0.5                      # a trained model, not ~uniform outputs
    assert np.mean(agree) >= 0.9, np.mean(agree)
    assert np.median(errors) < 0.05


def test_edgetpu_without_compiler_says_how_to_get_it(int8_edgetpu_model, capsys):
    # the fixture's output was printed by main(); re-run the metadata command to check the sidecar too
    side = json.loads(Path(str(int8_edgetpu_model).replace(".tflite", ".json")).read_text())
    assert side["model_sha256"] == model_metadata.sha256_hex(model_metadata.read_model(int8_edgetpu_model)[0])


def test_export_report_table(trained_classifier, shapes_dataset, tmp_path, capsys):
    """The one table: no float ops, size vs float32, fidelity; --edgetpu instructions when the compiler is missing."""
    out = tmp_path / "m.tflite"
    old = os.environ["PATH"]
    os.environ["PATH"] = "/usr/bin:/bin"
    try:
        rc = main(["export", "--model", str(trained_classifier), "--calibration", str(shapes_dataset),
                   "--edgetpu", "--max-calibration-images", "40", "--output", str(out)])
    finally:
        os.environ["PATH"] = old
    text = capsys.readouterr().out
    assert rc == 0
    assert "ops not in int8       none" in text
    assert "of float32" in text and "top-1 agreement" in text and "SNR" in text
    assert "XNNPACK               1 partition(s)" in text
    assert "edgetpu_compiler is not on PATH" in text and "apt-get install edgetpu-compiler" in text
    assert "WARNING: only 32 calibration images" in text


def test_float16_and_dynamic_exports(trained_classifier, tmp_path):
    for quant in ("float16", "dynamic"):
        out = tmp_path / f"m-{quant}.tflite"
        assert main(["export", "--model", str(trained_classifier), "--quantization", quant,
                     "--output", str(out)]) == 0
        meta = model_metadata.read_metadata(out)
        assert meta["quantization"] == quant and meta["input"]["dtype"] == "float32"
        assert TFLiteModel(out).input_dtype == np.float32


def test_xnnpack_hard_swish_keeps_int8_in_one_partition(trained_classifier, shapes_dataset, tmp_path):
    """The native HARD_SWISH splits the int8 graph; the default formulation is fully delegated."""
    results = {}
    for form in ("native", "xnnpack"):
        out = tmp_path / f"{form}.tflite"
        assert main(["export", "--model", str(trained_classifier), "--calibration", str(shapes_dataset),
                     "--hard-swish", form, "--max-calibration-images", "24", "--output", str(out)]) == 0
        interpreter = find_runtime().module.Interpreter(model_path=str(out), num_threads=1)
        interpreter.allocate_tensors()
        results[form] = analyze_delegation(interpreter)
    assert results["native"].undelegated["HARD_SWISH"] > 0 and results["native"].partitions > 1
    assert results["xnnpack"].partitions == 1
    assert "HARD_SWISH" not in results["xnnpack"].ops


def test_metadata_command_round_trip(int8_edgetpu_model, tmp_path, capsys):
    assert main(["metadata", "--model", str(int8_edgetpu_model)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["task"] == "classification" and shown["architecture"] == "mobilenetv3_small"
    # a model rewritten by another tool (no trailer): --from writes a sidecar that read_model accepts
    bare = tmp_path / "rewritten.tflite"
    bare.write_bytes(model_metadata.read_model(int8_edgetpu_model)[0])
    assert main(["metadata", "--model", str(bare)]) == 3          # no metadata: clear error
    assert "carries no sigmawatch metadata" in capsys.readouterr().err
    assert main(["metadata", "--model", str(bare), "--from", str(int8_edgetpu_model)]) == 0
    _, meta = model_metadata.read_model(bare)
    assert meta["labels"] == shown["labels"] and meta["source_model"] == str(int8_edgetpu_model)
