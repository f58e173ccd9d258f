"""No convert-model option is silently ignored (issue 19, item 4).

The walk: every option of every subcommand, read from the parser itself, must appear either in a run below that
passes it (and the run must read it: the CLI's tracked arguments, strict in the tests, turn a given-but-unread
option into an error) or in a refusal case (exit 2, the message names the option and why). A new option without
either fails ``test_every_option_is_covered``. Runs that train or convert a full network are ``slow``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import DARKNET_SMALL_CFG as SMALL_CFG

from convert.cli import build_parser, main
from convert.cli_options import STRICT_ENV

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "edge" / "models" / "demo-detector-int8.tflite"

# name -> (slow, argv); {ws} is the module's workspace (see ``ws``). Runs of one command share a prefix.
RUNS: dict[str, tuple[bool, list[str]]] = {
    "list": (False, ["list"]),
    "synth": (False, ["synth", "--out", "{ws}/synth2", "--train", "4", "--val", "2", "--test", "2", "--ambiguous",
                      "--size", "64", "--seed", "3", "--label-noise", "0.02", "--max-objects", "2"]),
    "anchors": (False, ["anchors", "--data", "{ws}/synth", "--split", "val", "--input-size", "64", "-k", "6",
                        "--seed", "1"]),
    "metadata-sidecar": (False, ["metadata", "--model", "{ws}/det.tflite", "--write-sidecar"]),
    "metadata-from": (False, ["metadata", "--model", "{ws}/bare.tflite", "--from", "{ws}/det.tflite"]),
    "bench-files": (False, ["bench", "--model", "{ws}/det.tflite", "--threads", "1", "--runs", "2", "--rounds", "1"]),
    "evaluate-tflite": (False, ["evaluate", "--model", "{ws}/det.tflite", "--data", "{ws}/synth", "--split", "val",
                                "--score-threshold", "0.2", "--limit", "2", "--out", "{ws}/eval", "--threads", "1"]),
    "import-darknet": (False, ["import-darknet", "--cfg", "{ws}/small.cfg", "--weights", "{ws}/small.weights",
                               "--names", "{ws}/small.names", "--input-size", "64", "--output", "{ws}/dn.tflite",
                               "--quantization", "int8", "--calib-data", "{ws}/synth", "--calib-images", "4"]),
    "export-model-edgetpu": (False, ["export", "--model", "{ws}/tiny.keras", "--input-size", "32", "--edgetpu",
                                     "--calibration", "{ws}/calib.npz", "--max-calibration-images", "10",
                                     "--model-id", "tiny-tpu", "--output", "{ws}/tpu.tflite"]),
    "export-model-int8": (False, ["export", "--model", "{ws}/tiny.keras", "--quantization", "int8", "--io", "int8",
                                  "--calibration", "{ws}/calib.npz", "--calibration-ranges", "tflite",
                                  "--per-tensor", "--hard-swish", "native", "--resize", "letterbox",
                                  "--labels", "{ws}/labels.txt", "--calibrate-bn", "--output", "{ws}/t8.tflite"]),
    "export-arch-float": (True, ["export", "--arch", "mobilenetv3_small", "--alpha", "0.35", "--minimalistic",
                                 "--input-size", "32", "--num-classes", "3", "--weights", "{ws}/mnv3.weights.h5",
                                 "--quantization", "float16", "--calibration", "{ws}/calib.npz",
                                 "--output", "{ws}/f16.tflite"]),
    "train": (True, ["train", "--data", "{ws}/shapes", "--arch", "mobilenetv3_small", "--alpha", "0.35",
                     "--minimalistic", "--input-size", "32", "--weights", "{ws}/mnv3.weights.h5", "--epochs", "1",
                     "--batch-size", "8", "--lr", "1e-3", "--freeze-backbone", "--freeze-bn", "--val-fraction", "0.25",
                     "--no-augment", "--seed", "1", "--resize", "letterbox", "--output", "{ws}/trained.keras"]),
    "bench-arch": (True, ["bench", "--arch", "mixnet_s", "--input-size", "32", "--calibration", "{ws}/calib.npz",
                          "--threads", "1", "--runs", "2", "--rounds", "1", "--workdir", "{ws}/benchwork"]),
    "train-detector": (True, ["train-detector", "--data", "{ws}/synth", "--out", "{ws}/run", "--backbone",
                              "mobilenetv3_small", "--width", "0.5", "--input-size", "64", "--head", "gaussian",
                              "--layout", "2scale", "--neck-channels", "16", "--anchors", "kmeans", "--epochs", "1",
                              "--batch-size", "2", "--steps-per-epoch", "2", "--lr", "1e-3", "--warmup-steps", "1",
                              "--no-augment", "--seed", "1", "--threads", "1", "--box-weight", "1.5",
                              "--obj-weight", "1.0", "--cls-weight", "1.0", "--clip-factor", "3",
                              "--grad-log-every", "1", "--resume", "--no-progress"]),
    "train-detector-init": (True, ["train-detector", "--data", "{ws}/synth", "--out", "{ws}/run-more", "--init-weights",
                                   "{ws}/run", "--epochs", "1", "--batch-size", "2", "--steps-per-epoch", "1",
                                   "--threads", "1", "--no-progress"]),
    "export-detector": (True, ["export-detector", "--run", "{ws}/run", "--output", "{ws}/run8.tflite",
                               "--quantization", "int8", "--io", "int8", "--calib-data", "{ws}/synth",
                               "--calib-images", "4", "--heldout-images", "2", "--model-id", "tiny-det"]),
    "export-detector-edgetpu": (True, ["export-detector", "--run", "{ws}/run", "--output", "{ws}/runtpu.tflite",
                                       "--edgetpu", "--calib-images", "4", "--heldout-images", "0"]),
    "evaluate-keras": (True, ["evaluate", "--model", "{ws}/run", "--data", "{ws}/synth", "--limit", "2"]),
    "bench-detector": (True, ["bench-detector", "--run", "{ws}/run", "--data", "{ws}/synth", "--out", "{ws}/bd",
                              "--limit", "2", "--calib-images", "4", "--threads", "1", "--score-threshold", "0.2",
                              "--split", "test", "--io", "int8"]),
    "bench-detector-file": (True, ["bench-detector", "--run", "{ws}/run", "--int8", "{ws}/run8.tflite",
                                   "--limit", "2"]),
    "experiment": (True, ["experiment", "--data", "{ws}/synth", "--out", "{ws}/exp", "--backbone",
                          "mobilenetv3_small", "--input-size", "64", "--layout", "2scale", "--epochs", "1",
                          "--steps-per-epoch", "1", "--batch-size", "2", "--lr", "1e-3", "--seeds", "0",
                          "--heads", "gaussian,plain", "--box-weight-gaussian", "1.0", "--box-weight-plain", "1.0",
                          "--split", "val", "--limit", "2", "--resume"]),
    "prune-detector": (True, ["prune", "--run", "{ws}/run", "--data", "{ws}/synth", "--out", "{ws}/pruned",
                              "--ratio", "0.3", "--sparsity", "0.3", "--sparsity-steps", "2", "--finetune-steps",
                              "2", "--lr", "1e-3", "--split", "val", "--threads", "1", "--runs", "2", "--rounds", "1",
                              "--seed", "1", "--baseline", "--distill-weight", "0.5"]),
    "prune-classifier": (True, ["prune", "--model", "{ws}/trained.keras", "--data", "{ws}/shapes", "--output",
                                "{ws}/pruned.keras", "--ratio", "0.3", "--l1", "1e-4", "--sparsity-epochs", "1",
                                "--finetune-epochs", "1", "--threads", "1", "--runs", "2", "--rounds", "1"]),
}

# Each case: argv that must exit 2, the option it is about, a fragment of the reason.
REFUSED: list[tuple[list[str], str, str]] = [
    (["export", "--model", "{ws}/tiny.keras", "--input-size", "96", "--output", "{ws}/x.tflite"],
     "--input-size", "trained at 32x32"),
    (["export", "--model", "{ws}/tiny.keras", "--arch", "mixnet_s", "--output", "{ws}/x.tflite"], "--arch",
     "keeps the architecture"),
    (["export", "--model", "{ws}/tiny.keras", "--num-classes", "3", "--output", "{ws}/x.tflite"], "--num-classes",
     "keeps the architecture"),
    (["export", "--model", "{ws}/tiny.keras", "--width", "0.5", "--output", "{ws}/x.tflite"], "--width",
     "keeps the architecture"),
    (["export", "--arch", "mobilenetv3_small", "--quantization", "float32", "--io", "int8", "--output",
      "{ws}/x.tflite"], "--io", "int8 exports only (this one is float32)"),
    (["export", "--arch", "mobilenetv3_small", "--quantization", "dynamic", "--per-tensor", "--output",
      "{ws}/x.tflite"], "--per-tensor", "int8 exports only"),
    (["export", "--arch", "mobilenetv3_small", "--quantization", "float16", "--calibration-ranges", "tflite",
      "--output", "{ws}/x.tflite"], "--calibration-ranges", "int8 exports only"),
    (["export", "--arch", "mobilenetv3_small", "--quantization", "float32", "--max-calibration-images", "5",
      "--output", "{ws}/x.tflite"], "--max-calibration-images", "none was given"),
    (["export", "--arch", "mixnet_s", "--input-size", "32", "--quantization", "float32", "--hard-swish", "native",
      "--output", "{ws}/x.tflite"], "--hard-swish", "has no hard-swish layers"),
    (["export", "--arch", "mobilenetv3_small", "--input-size", "32", "--quantization", "float32", "--depthwise",
      "direct", "--output", "{ws}/x.tflite"], "--depthwise", "has no depthwise kernel above 25 taps"),
    (["export", "--arch", "mobilenetv3_small", "--input-size", "32", "--width", "0.5", "--quantization", "float32",
      "--output", "{ws}/x.tflite"], "width", "do not apply to mobilenetv3_small"),
    (["train", "--data", "{ws}/shapes", "--arch", "mixnet_s", "--minimalistic", "--input-size", "32",
      "--output", "{ws}/x.keras"], "minimalistic", "do not apply to mixnet_s"),
    (["train", "--data", "{ws}/shapes", "--arch", "mobilenetv3_small", "--width", "0.5", "--input-size", "32",
      "--output", "{ws}/x.keras"], "width", "do not apply to mobilenetv3_small"),
    (["metadata", "--model", "{ws}/bare.tflite", "--from", "{ws}/det.tflite", "--write-sidecar"], "--write-sidecar",
     "--from already writes the sidecar"),
    (["bench", "--model", "{ws}/det.tflite", "--input-size", "64"], "--input-size", "--model files are timed"),
    (["bench", "--model", "{ws}/det.tflite", "--calibration", "{ws}/calib.npz"], "--calibration", "--model files"),
    (["bench", "--model", "{ws}/det.tflite", "--workdir", "{ws}/w"], "--workdir", "--model files"),
    (["import-darknet", "--cfg", "{ws}/small.cfg", "--quantization", "float32"], "--quantization", "no --output"),
    (["import-darknet", "--cfg", "{ws}/small.cfg", "--weights", "{ws}/small.weights", "--output", "{ws}/x.tflite",
      "--quantization", "float32", "--calib-images", "3"], "--calib-images", "int8 exports only"),
    (["import-darknet", "--cfg", "{ws}/small.cfg", "--output", "{ws}/x.tflite", "--quantization", "float32"],
     "--output", "--output needs --weights"),
    (["export-detector", "--run", "{ws}/run", "--output", "{ws}/x.tflite", "--quantization", "float32", "--io",
      "int8"], "--io", "int8 exports only"),
    (["export-detector", "--run", "{ws}/run", "--output", "{ws}/x.tflite", "--quantization", "float16",
      "--heldout-images", "0", "--calib-data", "{ws}/synth"], "--calib-data", "reads no images"),
    (["train-detector", "--data", "{ws}/synth", "--out", "{ws}/r", "--clip-factor", "3", "--clip-norm", "5"],
     "--clip-norm", "--clip-factor replaces the fixed clip"),
    (["train-detector", "--data", "{ws}/synth", "--out", "{ws}/r", "--init-weights", "{ws}/run", "--backbone",
      "darknet53"], "--backbone", "takes the architecture from RUN/detector.json"),
    (["train-detector", "--data", "{ws}/synth", "--out", "{ws}/r", "--init-weights", "{ws}/run", "--resume"],
     "--init-weights", "start a new --out to initialize from another run"),
    (["bench-detector", "--run", "{ws}/run", "--int8", "{ws}/det.tflite", "--io", "int8"], "--io",
     "is used instead of one"),
    (["experiment", "--data", "{ws}/synth", "--out", "{ws}/e", "--heads", "gaussian", "--box-weight-plain", "2"],
     "--box-weight-plain", "trains no plain head"),
    (["distill", "--teacher", "t.tflite", "--footage", "v.avi", "--out", "{ws}/d", "--class-map", "Person=person",
      "--model-id", "x"], "--model-id", "there is no --output"),
    (["distill", "--teacher", "t.tflite", "--footage", "v.avi", "--out", "{ws}/d", "--class-map", "Person=person",
      "--relabel-threshold", "0.3"], "--relabel-threshold", "--rounds is 1"),
    (["distill", "--teacher", "t.tflite", "--footage", "v.avi", "--out", "{ws}/d", "--class-map", "Person=person",
      "--holdout-every", "0", "--holdout-offset", "1"], "--holdout-offset", "holds out no segment"),
    (["distill", "--teacher", "t.tflite", "--footage", "v.avi", "--out", "{ws}/d", "--class-map", "Person=person",
      "--thresholds", "person=0.4", "--threshold", "0.3"], "--threshold", "--thresholds sets every class"),
    (["prune", "--run", "{ws}/run", "--data", "{ws}/synth", "--out", "{ws}/p", "--output", "{ws}/p.keras"],
     "--output", "applies to classifiers"),
    (["prune", "--run", "{ws}/run", "--data", "{ws}/synth", "--out", "{ws}/p", "--sparsity-epochs", "2"],
     "--sparsity-epochs", "applies to classifiers"),
    (["prune", "--run", "{ws}/run", "--data", "{ws}/synth", "--out", "{ws}/p", "--finetune-epochs", "2"],
     "--finetune-epochs", "applies to classifiers"),
    (["prune", "--model", "{ws}/tiny.keras", "--data", "{ws}/shapes", "--output", "{ws}/p.keras", "--out", "{ws}/p"],
     "--out", "applies to detectors"),
    (["prune", "--model", "{ws}/tiny.keras", "--data", "{ws}/shapes", "--output", "{ws}/p.keras", "--split", "test"],
     "--split", "applies to detectors"),
    (["prune", "--model", "{ws}/tiny.keras", "--data", "{ws}/shapes", "--output", "{ws}/p.keras",
      "--sparsity-steps", "5", "--finetune-steps", "5"], "--sparsity-steps", "applies to detectors"),
    (["prune", "--model", "{ws}/tiny.keras", "--data", "{ws}/shapes", "--output", "{ws}/p.keras", "--baseline"],
     "--baseline", "applies to detectors"),
    (["prune", "--model", "{ws}/tiny.keras", "--data", "{ws}/shapes", "--output", "{ws}/p.keras", "--l1", "1e-4",
      "--sparsity", "0.3"], "--sparsity", "--l1 sets the L1 weight directly"),
    (["prune", "--model", "{ws}/tiny.keras", "--data", "{ws}/shapes", "--output", "{ws}/p.keras",
      "--distill-weight", "1"], "--distill-weight", "applies to detectors"),
    (["prune", "--run", "{ws}/run", "--data", "{ws}/synth", "--out", "{ws}/p", "--sparsity-steps", "0", "--l1",
      "1e-4"], "--l1", "--sparsity-steps 0 skips the sparsity phase"),
]

# The distill chain on the real teacher and footage ({teacher}, {video}, {photos}: fetched at setup; slow).
DISTILL_RUNS: dict[str, list[str]] = {
    "distill": ["distill", "--teacher", "{teacher}", "--footage", "{video}", "--out", "{ws}/distill",
                "--class-map", "Person=person,Car=car", "--thresholds", "person=0.4", "--threshold", "0.5", "--tta",
                "--frame-step", "40", "--segment-seconds", "8", "--holdout-every", "5", "--holdout-offset", "2",
                "--gap-seconds", "1", "--backbone", "mobilenetv3_small", "--width", "0.5", "--input-size", "64x96",
                "--neck-channels", "16", "--dropout", "0.1", "--epochs", "1", "--batch-size", "4",
                "--steps-per-epoch", "2", "--lr", "1e-3", "--rounds", "1", "--seed", "1", "--threads", "1",
                "--output", "{ws}/student.tflite", "--model-id", "cli-options-student", "--resume", "--no-progress"],
    "bench-distilled": ["bench-distilled", "--run", "{ws}/distill", "--int8", "{ws}/student.tflite", "--teacher",
                        "{teacher}", "--photos", "{photos}", "--threshold", "0.3", "--out", "{ws}/distill-bench",
                        "--rounds", "1", "--figure-boxes-only"],
    "study-footage": ["study-footage", "--student", "{ws}/student.tflite", "--footage", "{video}", "--teacher",
                      "{teacher}", "--frame-step", "2", "--limit", "2", "--threads", "1", "--out",
                      "{ws}/footage-study.json", "--bootstrap", "20", "--no-progress"],
}


def all_options() -> set[tuple[str, str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {(name, max(a.option_strings, key=len)) for name, p in sub.choices.items() for a in p._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)}


def flags_in(argv: list[str]) -> set[tuple[str, str]]:
    return {(argv[0], a) for a in argv[1:] if a.startswith("-") and not a.lstrip("-").replace(".", "").isdigit()}


def test_every_option_is_covered():
    covered = set()
    for argv in [argv for _, argv in RUNS.values()] + list(DISTILL_RUNS.values()):
        covered |= flags_in(argv)
    covered |= {(argv[0], flag) for argv, flag, _ in REFUSED if flag.startswith("--")}
    # the registry refuses a model option that does not apply by its bare name (``width``, ``minimalistic``)
    covered |= {(argv[0], "--" + flag) for argv, flag, _ in REFUSED if not flag.startswith("-")}
    missing = sorted(all_options() - covered)
    assert not missing, f"options with neither a run that reads them nor a refusal case: {missing}"
    stale = sorted(covered - all_options())
    assert not stale, f"cases for options that do not exist: {stale}"


def test_every_rule_names_options_of_its_command():
    """A misspelt flag in an Applies rule would never match anything: each names an option of its subcommand."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    rules = 0
    for name, p in sub.choices.items():
        flags = {f for a in p._actions for f in a.option_strings}
        for rule in p._defaults.get("applies", ()):
            rules += 1
            assert set(rule.flags) <= flags, (name, sorted(set(rule.flags) - flags))
    assert rules >= 15


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """Inputs for the runs: a small synthetic detection set, the shipped detector (+ a copy without metadata), a
    tiny Keras classifier with hard-swish and its manifest, calibration images, a darknet cfg + weights."""
    import keras
    from synthetic import write_dataset as write_shapes

    from convert.detection.darknet import parse_cfg, plan, write_weights
    from convert.detection.synthetic import write_dataset
    from convert.models.layers import HardSwish
    from edge import model_metadata
    root = tmp_path_factory.mktemp("cli-options")
    write_dataset(root / "synth", train=6, val=3, test=3, width=64, height=64, seed=0)
    write_shapes(root / "shapes", per_class=8, size=32)
    shutil.copy(SHIPPED, root / "det.tflite")
    shutil.copy(SHIPPED.with_suffix(".json"), root / "det.json")
    (root / "bare.tflite").write_bytes(model_metadata.read_model(SHIPPED)[0])
    rng = np.random.default_rng(0)
    np.savez(root / "calib.npz", images=rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8))
    (root / "labels.txt").write_text("a\nb\nc\n")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1 / 64.0, offset=-2.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = HardSwish()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    keras.Model(inputs, outputs, name="tiny").save(root / "tiny.keras")
    (root / "tiny.keras.json").write_text(json.dumps({"architecture": "tiny", "input_size": [32, 32],
                                                      "labels": ["x", "y", "z"], "resize": "stretch"}))
    from convert.models.registry import build_classifier
    build_classifier("mobilenetv3_small", (32, 32), 3, alpha=0.35, minimalistic=True).save_weights(
        root / "mnv3.weights.h5")
    (root / "small.cfg").write_text(SMALL_CFG)
    (root / "small.names").write_text("square\ndisc\n")
    p = plan(parse_cfg(SMALL_CFG))
    values = rng.normal(0, 0.1, p.weight_count).astype(np.float32)
    values[12:16] = np.abs(values[12:16]) + 0.5        # the batch norm's variances (beta, gamma, mean, var, kernel)
    write_weights(root / "small.weights", values)
    (root / "run").mkdir()
    return root


@pytest.fixture(autouse=True)
def strict(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")


def fill(argv: list[str], ws: Path) -> list[str]:
    return [a.replace("{ws}", str(ws)) for a in argv]


@pytest.mark.parametrize("argv,flag,why", REFUSED, ids=[f"{a[0]}{f}" for a, f, _ in REFUSED])
def test_option_that_cannot_apply_is_refused(argv, flag, why, ws, capsys):
    assert main(fill(argv, ws)) == 2
    err = capsys.readouterr().err
    assert flag in err and why in err, err
    assert "Traceback" not in err


FAST = [name for name, (slow, _) in RUNS.items() if not slow]


@pytest.mark.parametrize("name", FAST)
def test_run_reads_every_option_it_is_given(name, ws, capsys):
    """Strict tracking: an option given and never read would be exit 1 ("... did not use it")."""
    assert main(fill(RUNS[name][1], ws)) == 0, capsys.readouterr().err
    assert "did not use" not in capsys.readouterr().err


SLOW = [name for name, (slow, _) in RUNS.items() if slow]


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_slow_run_reads_every_option_it_is_given(name, ws, capsys):
    """The runs that train or convert full networks, in dependency order (train-detector before its export,
    train before prune-classifier): a run whose input an earlier one failed to make fails too."""
    rc = main(fill(RUNS[name][1], ws))
    err = capsys.readouterr().err
    assert rc == 0, err[-3000:]
    assert "did not use" not in err, err


@pytest.mark.slow
def test_distill_runs_read_every_option_they_are_given(ws, real_data, capsys):
    paths = {"{teacher}": str(real_data("teacher/ssd_mobilenetv2_oidv4_fp16.tflite")),
             "{video}": str(real_data("video/vtest.avi")),
             "{photos}": str(real_data("photos/2011_000003.jpg").parent)}
    for name, argv in DISTILL_RUNS.items():
        argv = [paths.get(a, a) for a in fill(argv, ws)]
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 0, (name, err[-3000:])
        assert "did not use" not in err, (name, err)


def test_strict_tracking_catches_an_ignored_option(ws, monkeypatch, capsys):
    """The safety net itself: a handler that never reads an option it was given is reported (here: a command
    whose handler is swapped for one that reads nothing)."""
    from convert import commands_classify
    monkeypatch.setattr(commands_classify, "cmd_metadata", lambda args: 0)
    monkeypatch.delenv(STRICT_ENV)
    assert main(["metadata", "--model", str(ws / "det.tflite"), "--write-sidecar"]) == 0
    err = capsys.readouterr().err
    assert "--model, --write-sidecar were given but this run did not use them" in err, err
    monkeypatch.setenv(STRICT_ENV, "1")
    assert main(["metadata", "--model", str(ws / "det.tflite")]) == 1


def test_export_with_the_trained_size_is_accepted(ws, capsys):
    """--input-size equal to the trained size is honoured (the export is at that size), not refused."""
    from convert.export.inspect_model import inspect_flatbuffer
    from edge.model_metadata import read_model
    out = ws / "same.tflite"
    assert main(["export", "--model", str(ws / "tiny.keras"), "--input-size", "32", "--quantization", "float32",
                 "--output", str(out)]) == 0, capsys.readouterr().err
    assert inspect_flatbuffer(read_model(out)[0]).input_shape == (1, 32, 32, 3)


if os.environ.get("SIGMAWATCH_LIST_OPTIONS"):      # a reading aid: python -m pytest ... -s
    print(sorted(all_options()))
