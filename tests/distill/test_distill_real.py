"""A short ``convert-model distill`` run on real vtest.avi frames labelled by the real teacher: the student
learns (its loss on the held-out segment falls well below its untrained start, and it finds the teacher's
persons on frames it trained on, which the untrained start does not); provenance lands in the int8 export."""
from __future__ import annotations

import json

import pytest

from convert.cli import main


def heldout_loss(det, ds) -> float:
    """Mean YOLO loss of ``det`` over a dataset, no augmentation (the training objective, measured)."""
    from convert.detection.loss import YoloLoss
    from convert.detection.pipeline import TrainingData
    c = det.config
    data = TrainingData(ds, c.input_size, c.strides, c.anchors, None, 50, 0)
    loss = YoloLoss(c.head, c.num_classes, c.strides, c.anchors)
    total, n = 0.0, 0
    for images, targets, gt in data.tf_dataset(8, shuffle=False):
        total += float(loss(det.train_model(images, training=False), list(targets), gt)["total"]) * int(images.shape[0])
        n += int(images.shape[0])
    return total / n


def heldout_map50(det, ds) -> float:
    """mAP@0.5 (pycocotools, every score down to the evaluation floor) against the teacher's held-out labels."""
    from convert.detection.evaluate import KerasPredictor, evaluate
    from edge.decode import DetectionDecoder
    c = det.config
    dec = DetectionDecoder(head=c.head, num_classes=c.num_classes, strides=c.strides, anchors=c.anchors, labels=c.labels)
    return evaluate(KerasPredictor(det.model, dec, c.input_size), ds).map50


@pytest.mark.slow
def test_short_distill_run_improves_over_its_untrained_start(tmp_path, real_data):
    import keras

    from convert.detection.datasets import load_dataset
    from convert.detection.model import DetectorConfig, build_detector
    from convert.detection.train import load_trained
    from edge.model_metadata import read_metadata
    teacher = real_data("teacher/ssd_mobilenetv2_oidv4_fp16.tflite")
    video = real_data("video/vtest.avi")
    out = tmp_path / "run"
    rc = main(["distill", "--teacher", str(teacher), "--footage", str(video), "--out", str(out),
               "--class-map", "Person=person", "--thresholds", "person=0.4", "--frame-step", "8",
               "--segment-seconds", "10", "--holdout-every", "4", "--holdout-offset", "1",
               "--input-size", "128x160", "--neck-channels", "32", "--epochs", "10", "--steps-per-epoch", "40",
               "--batch-size", "8", "--lr", "3e-3", "--threads", "2", "--no-progress",
               "--output", str(tmp_path / "student.tflite"), "--model-id", "test-student"])
    assert rc == 0
    prov = json.loads((out / "data" / "distill.json").read_text())
    assert prov["frames"]["train"] > 50 and prov["frames"]["val"] > 10 and prov["boxes"]["val"]["person"] > 30
    train_ds, val_ds = load_dataset(out / "data", "train"), load_dataset(out / "data", "val")
    # held-out frames never trained on: no val image name among the training images
    assert not {s.image.name for s in train_ds.samples} & {s.image.name for s in val_ds.samples}

    trained = load_trained(out / "round1")
    cfg = DetectorConfig.model_validate_json((out / "round1" / "detector.json").read_text())
    keras.utils.set_random_seed(0)                        # the run's seed: its exact untrained start
    start = build_detector(cfg)
    # 400 steps of batch 8 at 128x160 from scratch (the shipped run took 2800 steps of 16 at 192x256): measured
    # on the shared machine, held-out loss 50.5 -> 28.3 and held-out mAP@0.5 0.0 -> 2.2 %. Far from a usable
    # detector, but clearly learning the teacher's persons on frames it never saw.
    before, after = heldout_loss(start, val_ds), heldout_loss(trained, val_ds)
    assert after < 0.75 * before, (before, after)
    map_before, map_after = heldout_map50(start, val_ds), heldout_map50(trained, val_ds)
    assert map_before < 0.001 and map_after > 0.01, (map_before, map_after)

    meta = read_metadata(tmp_path / "student.tflite")
    dist = meta["distillation"]
    assert dist["teacher"]["model_id"] == "mediapipe-ssd-mobilenetv2-oidv4-fp16"
    assert dist["footage"][0]["name"] == "vtest.avi" and len(dist["footage"][0]["sha256"]) == 64
    assert meta["labels"] == ["person"] and meta["quantization"] == "int8"


def test_bad_class_map_names_the_teacher_labels(tmp_path, real_data, capsys):
    teacher = real_data("teacher/ssd_mobilenetv2_oidv4_fp16.tflite")
    video = real_data("video/vtest.avi")
    rc = main(["distill", "--teacher", str(teacher), "--footage", str(video), "--out", str(tmp_path / "r"),
               "--class-map", "Pedestrian=person", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Pedestrian" in err and "Person" in err


def test_missing_footage_is_an_input_error(tmp_path, real_data, capsys):
    teacher = real_data("teacher/ssd_mobilenetv2_oidv4_fp16.tflite")
    rc = main(["distill", "--teacher", str(teacher), "--footage", str(tmp_path / "none.avi"), "--out",
               str(tmp_path / "r"), "--class-map", "Person=person", "--no-progress"])
    assert rc == 3 and "none.avi" in capsys.readouterr().err


def test_class_map_syntax_errors_are_usage_errors(capsys):
    rc = main(["distill", "--teacher", "t.tflite", "--footage", "v.avi", "--out", "o", "--class-map", "Person"])
    assert rc == 2 and "TEACHER_LABEL=student_class" in capsys.readouterr().err
