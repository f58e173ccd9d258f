"""Teacher labelling: held-out time segments and their gaps, class map / thresholds, image folders, TTA."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from convert.distill.labeling import (LabelConfig, iter_frames, parse_class_map, parse_thresholds, split_of,
                                      teacher_detections, yolo_lines)
from edge.contract.errors import InputError, UsageError
from edge.decode import Detection


def cfg(**kw):
    base = dict(class_map={"Person": "person", "Car": "car", "Vehicle": "car"}, thresholds={"person": 0.4, "car": 0.5})
    base.update(kw)
    return LabelConfig(**base)


def test_every_fifth_segment_is_held_out_with_gaps_around_it():
    c = cfg(segment_s=8.0, holdout_every=5, holdout_offset=2, gap_s=1.0)
    times = np.arange(0, 80, 0.1)
    splits = [split_of(t, c) for t in times]
    val = times[[s == "val" for s in splits]]
    assert set(np.round(val, 1)) == set(np.round(np.r_[np.arange(16.0, 24.0, 0.1), np.arange(56.0, 64.0, 0.1)], 1))
    gap = times[[s == "gap" for s in splits]]
    assert set(np.round(gap, 1)) == set(np.round(np.r_[np.arange(15.0, 16.0, 0.1), np.arange(24.0, 25.0, 0.1),
                                                      np.arange(55.0, 56.0, 0.1), np.arange(64.0, 65.0, 0.1)], 1))
    assert split_of(3.0, cfg(holdout_every=0)) == "train"


def test_class_map_and_thresholds_parse_and_name_errors():
    assert parse_class_map("Person=person, Car=car") == {"Person": "person", "Car": "car"}
    assert cfg().classes == ["person", "car"]
    with pytest.raises(UsageError, match="TEACHER_LABEL=student_class"):
        parse_class_map("Person")
    assert parse_thresholds("car=0.6", ["person", "car"], 0.5) == {"person": 0.5, "car": 0.6}
    with pytest.raises(UsageError, match="not a student class"):
        parse_thresholds("dog=0.3", ["person"], 0.5)
    with pytest.raises(UsageError, match=r"\(0, 1\)"):
        parse_thresholds("person=2", ["person"], 0.5)


def test_yolo_lines_drop_tiny_boxes():
    dets = [Detection(0, "person", 0.9, 0.9, (0.1, 0.2, 0.3, 0.6), None, None, None),
            Detection(1, "car", 0.9, 0.9, (0.5, 0.5, 0.501, 0.6), None, None, None)]
    assert yolo_lines(dets, 640, 480, 4.0) == ["0 0.200000 0.400000 0.200000 0.400000"]


def test_image_folder_frames_in_name_order(tmp_path):
    for name in ("b.jpg", "a.png", "notes.txt"):
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), 7, np.uint8))
    frames = list(iter_frames(tmp_path, cfg(image_fps=2.0)))
    assert [(f.index, f.time_s) for f in frames] == [(0, 0.0), (1, 0.5)]
    (tmp_path / "c.jpg").write_bytes(b"broken")
    with pytest.raises(InputError, match="c.jpg"):
        list(iter_frames(tmp_path, cfg()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        list(iter_frames(tmp_path / "empty", cfg()))
    with pytest.raises(InputError, match="does not exist"):
        list(iter_frames(tmp_path / "gone.avi", cfg()))


def test_flip_tta_with_the_real_teacher_keeps_mapped_classes_only(real_data):
    from edge.config import ModelConfig, Settings
    from edge.engine import Engine
    eng = Engine(ModelConfig(path=real_data("teacher/ssd_mobilenetv2_oidv4_fp16.tflite"), threads=1), Settings())
    cap = cv2.VideoCapture(str(real_data("video/vtest.avi")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    plain = teacher_detections(eng, frame, cfg())
    tta = teacher_detections(eng, frame, cfg(tta_flip=True))
    assert plain and all(d.label in ("person", "car") for d in plain + tta)
    assert all(d.score >= {"person": 0.4, "car": 0.5}[d.label] for d in plain + tta)
    # the flip pass adds the mirrored frame's boxes: every plain box is still covered by a TTA box
    from edge.decode import box_iou
    iou = box_iou(np.array([d.box for d in plain]), np.array([d.box for d in tta]))
    assert (iou.max(1) >= 0.5).all() and len(tta) >= len(plain)
