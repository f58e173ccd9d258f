"""Synthetic generator, YOLO/COCO readers (and their errors), anchors, target encoding."""
from __future__ import annotations

import json

import numpy as np
import pytest

from convert.detection.anchors import default_anchors, kmeans_anchors, split_by_stride, wh_iou
from convert.detection.datasets import load_dataset, read_coco, read_yolo, to_coco
from convert.detection.synthetic import (CLASSES, SynthConfig, SynthObject, object_box, render_frame, write_dataset)
from convert.detection.targets import encode_targets
from edge.contract.errors import InputError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("synth"), train=12, val=4, width=96, height=64, seed=3)


def test_render_frame_boxes_are_exact():
    objs = [SynthObject(0, 30, 20, 16), SynthObject(1, 60, 40, 20, color=(0, 200, 0)), SynthObject(2, 80, 15, 12, angle=0)]
    f = render_frame(96, 64, objs, background_seed=1, clutter=0, noise=0)
    np.testing.assert_allclose(f.boxes[0], [22, 12, 38, 28], atol=1e-4)
    np.testing.assert_allclose(f.boxes[1], [50, 30, 70, 50], atol=1e-4)
    # the pixels really are there: the disc's colour fills its box centre, not outside the box
    assert tuple(f.image[40, 60]) == (0, 200, 0)
    assert tuple(f.image[40, 75]) != (0, 200, 0)
    assert f.class_ids.tolist() == [0, 1, 2]


def test_render_is_deterministic_and_moving_objects_keep_background():
    a = render_frame(64, 64, [SynthObject(3, 20, 20, 16)], background_seed=5)
    b = render_frame(64, 64, [SynthObject(3, 20, 20, 16)], background_seed=5)
    c = render_frame(64, 64, [SynthObject(3, 40, 20, 16)], background_seed=5, bgr=True)
    assert np.array_equal(a.image, b.image)
    assert c.boxes[0, 0] == pytest.approx(a.boxes[0, 0] + 20, abs=1e-4)
    assert np.abs(a.image[50:, :].astype(int) - c.image[50:, :, ::-1].astype(int)).max() == 0


def test_objects_mostly_outside_get_no_box():
    f = render_frame(64, 64, [SynthObject(0, -5, 30, 20), SynthObject(0, 62, 30, 8)], background_seed=0)
    assert len(f.boxes) == 1 and f.boxes[0, 2] == 64


def test_write_and_read_yolo(synth):
    train = read_yolo(synth, "train")
    assert train.names == list(CLASSES) and len(train.samples) == 12
    s = train.samples[0]
    assert (s.width, s.height) == (96, 64)
    assert np.all(s.boxes[:, 2] > s.boxes[:, 0]) and np.all(s.boxes <= [96, 64, 96, 64])
    assert json.loads((synth / "dataset.json").read_text())["seed"] == 3
    again = write_dataset(synth.parent / "again", train=12, val=4, width=96, height=64, seed=3)
    assert (again / "labels/train/train_000005.txt").read_text() == (synth / "labels/train/train_000005.txt").read_text()


def test_coco_reader_roundtrip(synth, tmp_path):
    ds = read_yolo(synth, "val")
    coco = to_coco(ds)
    for img, s in zip(coco["images"], ds.samples):
        img["file_name"] = str(s.image)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco))
    back = read_coco(path, images_dir="/")
    assert back.names == ds.names
    for a, b in zip(back.samples, ds.samples):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        assert a.class_ids.tolist() == b.class_ids.tolist()
    coco["annotations"][0]["bbox"] = [90, 10, 20, 5]
    path.write_text(json.dumps(coco))
    with pytest.raises(InputError, match="does not fit image"):
        read_coco(path, images_dir="/")


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_bad_yolo_datasets(synth, tmp_path):
    d = _copy(synth, tmp_path / "missing")
    (d / "labels/train/train_000003.txt").unlink()
    with pytest.raises(InputError, match="1 of 12 images have no label file.*train_000003"):
        read_yolo(d, "train")
    d = _copy(synth, tmp_path / "range")
    (d / "labels/train/train_000002.txt").write_text("0 0.95 0.5 0.2 0.2\n")
    with pytest.raises(InputError, match=r"train_000002.txt:1: box .* outside the image"):
        read_yolo(d, "train")
    (d / "labels/train/train_000002.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InputError, match="class id 7 is out of range"):
        read_yolo(d, "train")
    (d / "labels/train/train_000002.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(InputError, match="expected 'class cx cy w h'"):
        read_yolo(d, "train")
    d = _copy(synth, tmp_path / "nolabels")
    for p in (d / "labels/train").iterdir():
        p.write_text("")
    with pytest.raises(InputError, match="no boxes"):
        read_yolo(d, "train")
    empty = tmp_path / "empty"
    (empty / "images/train").mkdir(parents=True)
    (empty / "classes.txt").write_text("a\n")
    with pytest.raises(InputError, match="empty"):
        read_yolo(empty, "train")
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "nonames/images/train").mkdir(parents=True)
    with pytest.raises(InputError, match="classes.txt"):
        read_yolo(tmp_path / "nonames", "train")


def test_kmeans_recovers_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 10], [30, 60], [80, 40]], np.float32)
    wh = np.concatenate([c * rng.uniform(0.95, 1.05, (200, 2)) for c in centres])
    anchors, iou = kmeans_anchors(wh, 3)
    np.testing.assert_allclose(anchors, centres, rtol=0.06)
    assert iou > 0.9
    with pytest.raises(ValueError, match="at least 9 boxes"):
        kmeans_anchors(wh[:5], 9)


def test_default_anchors_split_per_stride():
    a = default_anchors("coco", (416, 416), (8, 16, 32))
    assert a[0][0] == [10, 13] and a[2][2] == [373, 326]
    a2 = default_anchors("coco", (208, 208), (16, 32))
    assert len(a2) == 2 and a2[1][2] == [186.5, 163.0]
    assert split_by_stride([[5, 5]] * 6, (16, 32))[0] == [[5, 5]] * 3
    with pytest.raises(ValueError, match="no default anchors"):
        default_anchors("nope", (256, 256), (16, 32))


def test_encode_targets_assigns_best_anchor_and_cell():
    anchors = [[[10, 10], [20, 20], [30, 30]], [[60, 60], [90, 90], [120, 120]]]
    boxes = np.array([[40, 8, 60, 30], [0, 0, 95, 90]], np.float32)
    t16, t32 = encode_targets(boxes, np.array([2, 0]), (64, 128), (16, 32), anchors, 3)
    assert t16.shape == (4, 8, 3, 9) and t32.shape == (2, 4, 3, 9)
    # box 0: 20x22 -> anchor (20, 20) at stride 16, centre (50, 19) -> cell (x=3, y=1)
    v = t16[1, 3, 1]
    np.testing.assert_allclose(v[:6], [50 / 16 - 3, 19 / 16 - 1, np.log(20 / 20), np.log(22 / 20), 1, 2 - 20 * 22 / (128 * 64)], rtol=1e-5)
    assert v[6:].tolist() == [0, 0, 1]
    assert t32[1, 1, 1, 4] == 1 and t16[..., 4].sum() == 1 and t32[..., 4].sum() == 1
    assert wh_iou([[10, 10]], [[10, 10], [20, 5]]).tolist()[0][0] == pytest.approx(1.0)


def test_synth_config_validation():
    with pytest.raises(ValueError, match="unknown classes"):
        SynthConfig(classes=("hexagon",)).validate()
    with pytest.raises(ValueError, match="class_id"):
        render_frame(32, 32, [SynthObject(9, 5, 5, 5)])
    assert object_box(SynthObject(1, 10, 10, 10, angle=90, aspect=4), "disc").tolist() == pytest.approx([7.5, 0, 12.5, 20], abs=1e-4)
