"""``convert-model study-footage``: the shipped distilled student on held-out frames of the real vtest.avi, scored
against the real teacher's boxes. The frames are the distillation's held-out segments, and the "sigma" variant's
TP/FP at the fixed threshold equal what the agent's own decoder reports on those frames, matched here by a
straightforward greedy matcher against the teacher's boxes (decoded here, not by the code under test)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from convert.cli import main
from convert.detection.study import FIXED_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]
STUDENT = ROOT / "edge" / "models" / "vtest-distilled-int8.tflite"
DEMO = ROOT / "edge" / "models" / "demo-detector-int8.tflite"    # a detector without a distillation section


def _engine(path: Path):
    from edge.config import ModelConfig, Settings
    from edge.engine import Engine
    return Engine(ModelConfig(path=path, threads=1), Settings())


def test_heldout_frames_are_the_distillations_held_out_segments(real_data):
    from convert.distill.sigma_footage import heldout_frames, label_config_of
    video = real_data("video/vtest.avi")
    student = _engine(STUDENT)
    cfg = label_config_of(student.meta, STUDENT)
    assert (cfg.segment_s, cfg.holdout_every, cfg.holdout_offset) == (8.0, 5, 2)
    assert cfg.classes == list(student.meta["labels"])     # class ids follow the student's labels
    # vtest.avi: 10 fps, 795 frames -> 8 s segments of 80 frames; every 5th from the 3rd: segments 2 and 7
    indices = [f.index for f in heldout_frames(video, cfg)]
    assert indices == list(range(160, 240)) + list(range(560, 640))
    # the step runs over the held-out frames in order (the 0th, 30th, 60th and 90th of them)
    assert [f.index for f in heldout_frames(video, cfg, frame_step=30, limit=4)] == [160, 190, 220, 570]


def _greedy_tp_fp(boxes, classes, scores, gt_boxes, gt_classes, iou_min=0.5):
    """Textbook greedy matching in score order, each teacher box taken once."""
    taken = [False] * len(gt_boxes)
    tp = fp = 0
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        best, best_j = iou_min, -1
        for j, g in enumerate(gt_boxes):
            if taken[j] or gt_classes[j] != classes[i]:
                continue
            b = boxes[i]
            iw = max(0.0, min(b[2], g[2]) - max(b[0], g[0]))
            ih = max(0.0, min(b[3], g[3]) - max(b[1], g[1]))
            inter = iw * ih
            iou = inter / ((b[2] - b[0]) * (b[3] - b[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter)
            if iou >= best:
                best, best_j = iou, j
        if best_j >= 0:
            taken[best_j] = True
            tp += 1
        else:
            fp += 1
    return tp, fp


def test_sigma_scoring_on_footage_is_what_the_agent_reports(real_data):
    from convert.distill.sigma_footage import study_footage
    from edge.config import Settings
    video = real_data("video/vtest.avi")
    teacher_path = real_data("teacher/ssd_mobilenetv2_oidv4_fp16.tflite")
    student, teacher = _engine(STUDENT), _engine(teacher_path)
    study = study_footage(student, teacher, video, frame_step=20, limit=4)
    assert study.frames == [f"vtest.avi#{i}" for i in (160, 180, 200, 220)]

    wanted = {int(name.split("#")[1]) for name in study.frames}
    cap = cv2.VideoCapture(str(video))
    frames, i = {}, 0
    while len(frames) < len(wanted):
        ok, img = cap.read()
        assert ok
        if i in wanted:
            frames[i] = img
        i += 1
    cap.release()
    tp = fp = n_ref = 0
    for img in frames.values():
        h, w = img.shape[:2]
        scale = np.array([w, h, w, h], np.float32)
        t_img, t_info = teacher.preprocess(img)
        ref = [d for d in teacher.decoder.decode(teacher.infer(t_img), teacher.quant, t_info, score_threshold=0.4,
                                                 iou_threshold=0.5, max_detections=300)
               if d.label in ("Person", "Car")]
        ref_boxes = [np.asarray(d.box, np.float32) * scale for d in ref]
        keep = [k for k, b in enumerate(ref_boxes) if b[2] - b[0] >= 4 and b[3] - b[1] >= 4]
        ref_boxes = [ref_boxes[k] for k in keep]
        ref_classes = [{"Person": 0, "Car": 1}[ref[k].label] for k in keep]
        n_ref += len(ref_boxes)
        s_img, s_info = student.preprocess(img)
        dets, _, _ = student.postprocess(student.infer(s_img), s_info, Settings(score_threshold=FIXED_THRESHOLD))
        t, f = _greedy_tp_fp([np.asarray(d.box, np.float32) * scale for d in dets], [d.class_id for d in dets],
                             [d.score for d in dets], ref_boxes, ref_classes)
        tp, fp = tp + t, fp + f
    assert n_ref > 10 and sum(study.reference_boxes.values()) == n_ref
    sigma = study.results["sigma"]
    assert (sigma.at_threshold["tp"], sigma.at_threshold["fp"]) == (tp, fp)
    assert sum(sigma.at_threshold["fp_types"].values()) == fp
    # the student learnt the teacher's scene: it finds most of the teacher's boxes on frames it never trained on
    # (all 160 held-out frames: recall 0.91 at IoU 0.5; these 4 frames: 0.85)
    assert sigma.max_recall["0.5"] > 0.6, sigma.max_recall


def _write_video(path: Path, frames: int = 3) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert out.isOpened()
    for k in range(frames):
        out.write(np.full((48, 64, 3), 40 * k, np.uint8))
    out.release()
    return path


@pytest.mark.parametrize("case", ["other_name", "other_content"])
def test_footage_the_student_was_not_distilled_from_is_refused(tmp_path, case, capsys):
    name = "tree.avi" if case == "other_name" else "vtest.avi"     # a same-named file with other content
    video = _write_video(tmp_path / name)
    rc = main(["study-footage", "--student", str(STUDENT), "--teacher", str(DEMO), "--footage", str(video),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 3
    assert ("distilled from ['vtest.avi']" in err) if case == "other_name" else ("sha256" in err and "fetch" in err)


def test_a_student_without_distillation_metadata_is_refused(tmp_path, capsys):
    video = _write_video(tmp_path / "vtest.avi")
    rc = main(["study-footage", "--student", str(DEMO), "--teacher", str(DEMO), "--footage", str(video),
               "--no-progress"])
    assert rc == 2 and "distillation" in capsys.readouterr().err


def test_missing_files_are_named(tmp_path, capsys):
    rc = main(["study-footage", "--student", str(tmp_path / "none.tflite"), "--teacher", str(DEMO),
               "--footage", str(tmp_path / "v.avi"), "--no-progress"])
    assert rc == 3 and "none.tflite" in capsys.readouterr().err
