"""End to end through the CLI on a tiny synthetic set: synth -> train (+ resume) -> int8 export -> evaluate,
and the exported model run by edge.runtime + edge.decode like the device."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from convert.cli import main
from edge.decode import DetectionDecoder
from edge.model_metadata import read_model
from edge.preprocess import letterbox
from edge.runtime import TFLiteModel
from edge.contract.schema import validate
from edge.contract.wire import detections_message
from edge.messages import FrameResult

TRAIN = ["--backbone", "darknet_small", "--input-size", "64", "--neck-channels", "16", "--batch-size", "4",
         "--steps-per-epoch", "3", "--warmup-steps", "2", "--threads", "2", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data, run = root / "data", root / "run"
    assert main(["synth", "--out", str(data), "--train", "16", "--val", "6", "--size", "64", "--seed", "1"]) == 0
    assert main(["train-detector", "--data", str(data), "--out", str(run), "--epochs", "1", *TRAIN]) == 0
    return data, run


def test_resume_continues_and_refuses_to_overwrite(trained, capsys):
    data, run = trained
    assert main(["train-detector", "--data", str(data), "--out", str(run), "--epochs", "1", *TRAIN]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train-detector", "--data", str(data), "--out", str(run), "--epochs", "2", "--resume", *TRAIN]) == 0
    history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert json.loads((run / "ckpt/state.json").read_text()) == {"epochs_done": 2, "step": 6}


# a continuation: no architecture options (they come from the --init-weights run), a learning rate too small to move
# the weights, so the new run must hold the source run's weights
CONTINUE = ["--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "1", "--lr", "1e-9", "--warmup-steps", "0",
            "--threads", "2", "--no-progress"]


def _max_weight_change(run_a, run_b) -> float:
    from convert.detection.train import load_trained
    a, b = load_trained(run_a).train_model, load_trained(run_b).train_model
    assert [w.shape for w in a.trainable_weights] == [w.shape for w in b.trainable_weights]
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
               for x, y in zip(a.trainable_weights, b.trainable_weights))


def test_init_weights_continues_from_a_trained_run(trained, tmp_path, capsys):
    """`train-detector --init-weights RUN`: a new run (fresh optimizer and schedule) that starts from RUN's trained
    weights and architecture; the same command without it starts from the random initialization."""
    data, run = trained
    cont, fresh = tmp_path / "continued", tmp_path / "fresh"
    assert main(["train-detector", "--data", str(data), "--out", str(cont), "--init-weights", str(run), *CONTINUE]) == 0
    assert json.loads((cont / "detector.json").read_text()) == json.loads((run / "detector.json").read_text())
    assert json.loads((cont / "ckpt/state.json").read_text()) == {"epochs_done": 1, "step": 1}   # its own schedule
    assert main(["train-detector", "--data", str(data), "--out", str(fresh), *TRAIN[:6], *CONTINUE, "--seed", "1"]) == 0
    assert _max_weight_change(run, cont) < 1e-5
    assert _max_weight_change(run, fresh) > 1e-2


def test_init_weights_refuses_what_it_cannot_honour(trained, tmp_path, capsys):
    data, run = trained
    out = str(tmp_path / "r")
    assert main(["train-detector", "--data", str(data), "--out", out, "--init-weights", str(run),
                 "--backbone", "mobilenetv3_small", *CONTINUE]) == 2
    err = capsys.readouterr().err
    assert "--backbone" in err and "detector.json" in err
    assert main(["train-detector", "--data", str(data), "--out", out, "--init-weights", str(run), "--resume",
                 *CONTINUE]) == 2
    assert "--init-weights" in capsys.readouterr().err
    assert main(["train-detector", "--data", str(data), "--out", out, "--init-weights", str(tmp_path),
                 *CONTINUE]) == 3
    assert "no detector.json" in capsys.readouterr().err
    other = tmp_path / "other-classes"
    shutil.copytree(data, other)
    names = (other / "classes.txt").read_text().split()
    (other / "classes.txt").write_text("\n".join(reversed(names)) + "\n")
    assert main(["train-detector", "--data", str(other), "--out", out, "--init-weights", str(run), *CONTINUE]) == 2
    assert "same classes" in capsys.readouterr().err


def test_int8_export_runs_like_the_device(trained, capsys):
    data, run = trained
    out = run / "det-int8.tflite"
    assert main(["export-detector", "--run", str(run), "--output", str(out), "--quantization", "int8",
                 "--calib-images", "8", "--heldout-images", "3"]) == 0
    _, meta = read_model(out)
    assert meta["task"] == "detection" and meta["input"]["dtype"] == "uint8" and meta["input"]["resize"] == "letterbox"
    assert meta["detection"]["strides"] == [16, 32] and meta["detection"]["head"] == "gaussian"
    assert meta["labels"] == ["square", "disc", "triangle", "star"]
    model = TFLiteModel(out, threads=1)
    assert model.input_dtype == np.uint8
    assert sorted(model.output_names.values()) == ["s16_linear", "s16_sigmoid", "s32_linear", "s32_sigmoid"]
    frame = cv2.imread(str(sorted((data / "images/val").iterdir())[0]))
    rgb, info = letterbox(frame, model.input_size)
    raw = model.run(rgb)
    assert all(v.dtype == np.uint8 for v in raw.values())
    # int8 outputs, dequantized, agree with the Keras model on the same pixels
    from convert.detection.train import load_trained
    det = load_trained(run)
    ref = {k: np.asarray(v) for k, v in det.model(rgb[None].astype(np.float32)).items()}
    decoder = DetectionDecoder.from_metadata(meta)
    quant = model.output_quantization()
    from edge.runtime import dequantize
    for name, value in raw.items():
        err = np.abs(dequantize(value, *quant[name]) - ref[name])
        span = float(ref[name].max() - ref[name].min()) + 1e-6
        assert err.mean() < 0.05 * span, (name, err.mean(), span)
    dets = decoder.decode(raw, quant, info, score_threshold=0.0, max_detections=5)
    assert 0 < len(dets) <= 5
    frame = FrameResult(ts=1.0, frame_w=64, frame_h=64, task="detection", detections=dets, latency_ms={"inference": 1.0})
    validate(detections_message(frame, device="cam1", seq=1, model_hash=meta["model_sha256"]), "detections")

    assert main(["evaluate", "--model", str(out), "--data", str(data), "--out", str(run / "ev")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["images"] == 6 and summary["model"] == "tflite-int8"
    # a model this undertrained scores near 0, so check what must hold whatever it scores: every ground truth
    # is either found or missed, and mAP@0.5 bounds mAP@[.5:.95] (an IoU of 0.5 is the most lenient threshold)
    assert summary["ground_truths"] > 0 and summary["tp"] + summary["fn"] == summary["ground_truths"], summary
    assert 0.0 <= summary["map50_95"] <= summary["map50"] <= 1.0, summary
    assert (run / "ev" / "eval_tflite-int8.json").is_file()


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["train-detector", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 3
    assert "not found" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(tmp_path)]) == 3
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=4\nsize=1\n")
    assert main(["import-darknet", "--cfg", str(cfg)]) == 3
    assert "no [yolo]" in capsys.readouterr().err
