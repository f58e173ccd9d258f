"""Export round trips through `convert-model` with a briefly trained classifier, checked with the
interpreter the edge uses (edge.runtime.TFLiteModel)."""
from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest

from convert.cli import main
from convert.data.calibration import load_calibration
from convert.data.images import list_images, read_image
from convert.export import export_tflite
from convert.export.fidelity import MIN_SNR_DB, MIN_TOP1_AGREEMENT, measure_fidelity
from convert.export.inspect_model import inspect_flatbuffer
from convert.models.training import load_trained
from edge import model_metadata
from edge.modelbench import analyze_delegation
from edge.preprocess import stretch
from edge.runtime import TFLiteModel, dequantize, find_runtime

META = {"task": "classification", "architecture": "mobilenetv3_small", "labels": ["circle", "square", "stripes"]}


@pytest.fixture(scope="module")
def edgetpu_export(trained_classifier, shapes_dataset, tmp_path_factory):
    """`convert-model export --edgetpu` with no edgetpu_compiler on PATH -> (model path, printed table)."""
    out = tmp_path_factory.mktemp("int8") / "shapes-int8.tflite"
    old, buf = os.environ["PATH"], io.StringIO()
    os.environ["PATH"] = "/usr/bin:/bin"
    try:
        with contextlib.redirect_stdout(buf):
            rc = main(["export", "--model", str(trained_classifier), "--calibration", str(shapes_dataset),
                       "--edgetpu", "--output", str(out)])
    finally:
        os.environ["PATH"] = old
    assert rc == 0, buf.getvalue()
    return out, buf.getvalue()


def test_int8_round_trip_in_edge_runtime(edgetpu_export, trained_classifier, shapes_dataset):
    path, text = edgetpu_export
    flatbuffer, meta = model_metadata.read_model(path)
    inspection = inspect_flatbuffer(flatbuffer)
    assert not inspection.float_ops, inspection.float_ops
    assert inspection.input_dtype == "uint8" and inspection.input_shape == (1, 96, 96, 3)
    assert meta["quantization"] == "int8" and meta["io_dtype"] == "uint8"
    assert meta["input"]["normalization"] is None and meta["input"]["resize"] == "stretch"
    assert meta["labels"] == ["circle", "square", "stripes"]
    keras_model, _ = load_trained(trained_classifier)
    tfl = TFLiteModel(path)
    name = meta["classification"]["output"]
    scale, zero = tfl.output_quantization()[name]
    refs, gots = [], []
    for p in list_images(shapes_dataset)[::3]:
        pixels = stretch(read_image(p), (96, 96))[0]
        refs.append(np.asarray(keras_model(pixels[np.newaxis].astype(np.float32), training=False))[0])
        gots.append(dequantize(tfl.run(pixels)[name], scale, zero)[0])
    refs, gots = np.array(refs), np.array(gots)
    # a trained model: confident, and not one class for everything
    assert refs.max(axis=1).mean() > 0.5 and len(set(refs.argmax(axis=1))) >= 2
    snr = 10 * np.log10(np.sum(refs ** 2) / np.sum((refs - gots) ** 2))
    agree = refs.argmax(axis=1) == gots.argmax(axis=1)
    top2 = np.sort(refs, axis=1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= 0.3
    assert confident.sum() >= len(refs) // 2
    # the exporter's own bar (noise power under 3% of the signal, top-1 agreement >= 85%), measured independently
    assert snr > MIN_SNR_DB, snr
    assert agree.mean() >= MIN_TOP1_AGREEMENT and agree[confident].all(), agree
    assert "is poor" not in text


def test_export_table_and_edgetpu_instructions(edgetpu_export):
    path, text = edgetpu_export
    assert "ops not in int8       none" in text
    assert "of float32" in text and "top-1 agreement" in text and "SNR" in text
    assert "XNNPACK               1 partition(s)" in text and "[hard-swish: xnnpack]" in text
    # the report states what each hard-swish formulation measured on the held-out images
    row = [line for line in text.splitlines() if line.startswith("hard-swish")][0]
    assert "xnnpack (this export): 1 partition(s), SNR" in row and "native: " in row, row
    native_partitions = int(row.split("native: ")[1].split(" partition")[0])
    assert native_partitions > 1, row                   # native HARD_SWISH is left out of int8 XNNPACK
    assert "own ranges for all" in text
    assert "Edge TPU ops check    ops outside the Edge TPU table: none" in text
    assert "edgetpu_compiler is not on PATH" in text and "apt-get install edgetpu-compiler" in text
    # 96 images, 1 in 5 held out: said in the calibration row and in the one warning about too few images
    assert "calibration           77 of 96 images, 19 held out for the fidelity check" in text
    assert "WARNING: 77 of 96 images from" in text and "fewer than the 100 calibration images" in text
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["model_sha256"] == model_metadata.sha256_hex(model_metadata.read_model(path)[0])


def test_edgetpu_compiler_is_run_when_present(edgetpu_export, tmp_path, monkeypatch):
    """Up to the hardware boundary: a stand-in compiler on PATH (the real one cannot be installed here)
    is called the way Coral documents it; its summary is parsed; the compiled model gets a sidecar."""
    from convert.export.edgetpu import run_compiler
    model = tmp_path / "m.tflite"
    model.write_bytes(edgetpu_export[0].read_bytes())
    fake = tmp_path / "bin" / "edgetpu_compiler"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n# args: -s -o OUTDIR MODEL\necho \"$@\" > \"$3/args.txt\"\n"
                    "cp \"$4\" \"$3/$(basename \"$4\" .tflite)_edgetpu.tflite\"\n"
                    "echo 'Number of operations that will run on Edge TPU: 97'\n"
                    "echo 'Number of operations that will run on CPU: 3'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    result = run_compiler(model, [])
    assert (tmp_path / "args.txt").read_text().split() == ["-s", "-o", str(tmp_path), str(model)]
    assert (result.mapped, result.unmapped) == (97, 3)
    assert result.compiled_path == tmp_path / "m_edgetpu.tflite"


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["float16", "dynamic"])
def test_float16_and_dynamic_exports(quant, trained_classifier, shapes_dataset, tmp_path):
    model, _ = load_trained(trained_classifier)
    held = load_calibration(shapes_dataset, (96, 96), max_images=12).calibration
    out = tmp_path / f"m-{quant}.tflite"
    report = export_tflite(model, out, quantization=quant, heldout=held, metadata=META, compare_float32=False,
                           progress=False)
    meta = model_metadata.read_metadata(out)
    assert meta["quantization"] == quant and meta["input"]["dtype"] == "float32" and meta["io_dtype"] == "float32"
    assert TFLiteModel(out).input_dtype == np.float32
    assert report.fidelity[0].snr_db > 20 and report.fidelity[0].top1_agreement >= 0.9


@pytest.mark.slow
def test_xnnpack_hard_swish_keeps_int8_in_one_partition(trained_classifier, shapes_dataset, tmp_path):
    """Native HARD_SWISH splits the int8 graph under XNNPACK; the default formulation is fully delegated
    and computes the same outputs."""
    model, _ = load_trained(trained_classifier)
    cs = load_calibration(shapes_dataset, (96, 96), max_images=30)
    results, snr = {}, {}
    for form in ("native", "xnnpack"):
        out = tmp_path / f"{form}.tflite"
        export_tflite(model, out, quantization="int8", calibration=cs.calibration, metadata=META,
                      hard_swish=form, compare_float32=False, progress=False)
        interpreter = find_runtime().module.Interpreter(model_path=str(out), num_threads=1)
        interpreter.allocate_tensors()
        results[form] = analyze_delegation(interpreter)
        snr[form] = measure_fidelity(model, model_metadata.read_model(out)[0], cs.heldout)[0].snr_db
    assert results["native"].undelegated["HARD_SWISH"] > 0 and results["native"].partitions > 1
    assert results["xnnpack"].partitions == 1 and "HARD_SWISH" not in results["xnnpack"].ops
    # no real accuracy cost: within 2 dB of the native int8 HARD_SWISH (measured: about 1 dB)
    assert snr["xnnpack"] > snr["native"] - 2.0, snr


def test_metadata_command_round_trip(edgetpu_export, tmp_path, capsys):
    path = edgetpu_export[0]
    assert main(["metadata", "--model", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["task"] == "classification" and shown["architecture"] == "mobilenetv3_small"
    assert shown["source"].startswith("convert-model") or "export" in shown["source"]
    bare = tmp_path / "rewritten.tflite"          # as another tool would rewrite it: no trailer
    bare.write_bytes(model_metadata.read_model(path)[0])
    assert main(["metadata", "--model", str(bare)]) == 3
    err = capsys.readouterr().err
    assert "without sigmawatch metadata" in err and "rewritten.json does not exist" in err, err
    assert main(["metadata", "--model", str(bare), "--from", str(path)]) == 0
    _, meta = model_metadata.read_model(bare)
    assert meta["labels"] == shown["labels"] and meta["source_model"] == str(path)


def test_bench_command_on_exported_models(edgetpu_export, capsys):
    """`convert-model bench --model ...` needs only the TFLite runtime: latency columns, partitions, size."""
    path = str(edgetpu_export[0])
    assert main(["bench", "--model", path, "--runs", "5", "--rounds", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("shapes-int8.tflite")][0].split()
    # model, io, size, "MB", latency at 1 thread, XNNPACK partitions, ops left out
    assert row[1] == "uint8" and row[3] == "MB" and row[5] == "1"
    assert float(row[4]) > 0 and row[6] == "QUANTIZEx2,"


def test_bench_missing_model_is_an_input_error(tmp_path, capsys):
    assert main(["bench", "--model", str(tmp_path / "nope.tflite")]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_fidelity_warnings_name_the_output_and_what_is_poor():
    from convert.export.fidelity import OutputFidelity, fidelity_warnings
    good = OutputFidelity("predictions", snr_db=22.0, top1_agreement=0.97, max_abs_error=0.05)
    assert fidelity_warnings([good], "int8") == []
    low_snr = OutputFidelity("s16_linear", snr_db=12.5, top1_agreement=None, max_abs_error=0.4)
    disagree = OutputFidelity("predictions", snr_db=16.0, top1_agreement=0.70, max_abs_error=0.3)
    warned = fidelity_warnings([good, low_snr, disagree], "int8")
    assert len(warned) == 2
    assert "'s16_linear'" in warned[0] and "SNR 12.5 dB < 15 dB" in warned[0] and "agreement" not in warned[0]
    assert "'predictions'" in warned[1] and "top-1 agreement 70.0% < 85%" in warned[1] and "SNR" not in warned[1]


@pytest.mark.slow
def test_per_tensor_report_names_every_hard_swish_tensor(trained_classifier, shapes_dataset, tmp_path, capsys):
    """`export --per-tensor`: one SNR per activation; with own-range calibration the hard-swish's x/6 is
    quantized on its own range (its int8 scale covers about what the float tensor takes, not the product's 6x)."""
    out = tmp_path / "m.tflite"
    assert main(["export", "--model", str(trained_classifier), "--calibration", str(shapes_dataset), "--per-tensor",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "per-tensor SNR" in text
    rows = [line for line in text.splitlines() if "hard_swish" in line and line.rstrip().endswith("/mul")]
    assert len(rows) >= 10, text[-2000:]
    for line in rows:
        f_lo, f_hi, q_lo, q_hi = (float(v) for v in
                                  line.replace("[", " ").replace("]", " ").replace(",", " ").split()[1:5])
        assert (q_hi - q_lo) < 2.0 * (max(f_hi, 0) - min(f_lo, 0)) + 0.05, line
