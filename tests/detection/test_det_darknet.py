"""Darknet import: the official Gaussian YOLOv3 cfgs (layer arithmetic, weight counts, errors) and a small
cfg whose imported Keras model is checked number by number against a numpy darknet forward pass."""
from __future__ import annotations

import numpy as np
import pytest

from convert.detection.darknet import parse_cfg, plan, read_weights, write_weights
from edge.contract.errors import InputError

# YOLOv3 (COCO, 80 classes, 255 head filters) has 62,001,757 values in its weights file (incl. BN statistics).
# With C classes each of the 3 head convolutions (inputs 1024, 512, 256 channels) has 3*(9+C) filters instead.
YOLOV3_COCO_WEIGHTS = 62_001_757


def expected_gaussian_count(classes: int) -> int:
    filters = 3 * (8 + 1 + classes)
    return YOLOV3_COCO_WEIGHTS - (255 - filters) * (1024 + 512 + 256 + 3)


@pytest.mark.parametrize("cfg,names,classes,channels", [
    ("Gaussian_yolov3_BDD.cfg", "bdd.names", 10, 57),
    ("Gaussian_yolov3_KITTI_3cls.cfg", "kitti_3cls.names", 3, 36),
])
def test_official_cfg_layer_arithmetic(gaussian_yolov3_fixtures, cfg, names, classes, channels):
    sections = parse_cfg((gaussian_yolov3_fixtures / cfg).read_text(), cfg)
    p = plan(sections)
    assert p.input_hw == (512, 512)
    assert len(p.convs) == 75
    heads = sorted(p.heads, key=lambda h: h.stride)
    assert [h.stride for h in heads] == [8, 16, 32]
    assert [h.channels for h in heads] == [channels] * 3
    assert all(h.kind == "gaussian_yolo" and h.classes == classes for h in heads)
    assert p.shapes[heads[0].conv_index][:2] == (64, 64)
    assert p.weight_count == expected_gaussian_count(classes)
    n_names = len([x for x in (gaussian_yolov3_fixtures / names).read_text().splitlines() if x.strip()])
    assert n_names == classes
    # at another input size the arithmetic scales, anchors stay in pixels (as darknet does)
    p320 = plan(sections, (320, 320))
    assert p320.shapes[heads[2].conv_index] == (10, 10, channels) and p320.weight_count == p.weight_count
    assert sorted(p320.heads, key=lambda h: h.stride)[0].anchors == heads[0].anchors


@pytest.mark.slow
def test_official_weights_count_truncated_and_oversize(gaussian_yolov3_fixtures, tmp_path):
    """With a full-size (250 MB) weights file for the official KITTI cfg."""
    p = plan(parse_cfg((gaussian_yolov3_fixtures / "Gaussian_yolov3_KITTI_3cls.cfg").read_text()))
    values = np.zeros(p.weight_count, np.float32)
    values[-3:] = [1.5, -2.0, 3.25]
    path = tmp_path / "kitti.weights"
    write_weights(path, values, header=(0, 2, 5, 123456))
    header, read = read_weights(path, p)
    assert header == (0, 2, 5, 123456) and read.size == p.weight_count
    assert read[-3:].tolist() == [1.5, -2.0, 3.25]
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # one 250 MB file, cut and extended in place
        fh.truncate(size - 400)
    with pytest.raises(InputError, match=r"truncated: the cfg needs 61,608,652 weights.*100 missing"):
        read_weights(path, p)
    with open(path, "r+b") as fh:
        fh.truncate(size + 8)
    with pytest.raises(InputError, match="2 extra"):
        read_weights(path, p)
    with open(path, "r+b") as fh:
        fh.truncate(size + 2)
    with pytest.raises(InputError, match="whole number"):
        read_weights(path, p)


def test_small_weights_truncated_and_oversize(tmp_path):
    p = plan(parse_cfg(SMALL_CFG.format(filters=33, kind="Gaussian_yolo")))
    values = np.arange(p.weight_count, dtype=np.float32)
    path = tmp_path / "small.weights"
    write_weights(path, values, header=(0, 2, 0, 99))
    header, read = read_weights(path, p)
    assert header == (0, 2, 0, 99) and np.array_equal(read, values)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(InputError, match=f"truncated: the cfg needs {p.weight_count:,} weights.*3 missing"):
        read_weights(path, p)
    write_weights(path, np.concatenate([values, np.zeros(5, np.float32)]))
    with pytest.raises(InputError, match="5 extra"):
        read_weights(path, p)


def test_old_header_stores_seen_as_int32(tmp_path):
    p = plan(parse_cfg(SMALL_CFG.format(filters=33, kind="Gaussian_yolo")))
    path = tmp_path / "old.weights"
    write_weights(path, np.ones(p.weight_count, np.float32), header=(0, 1, 0, 7))
    assert path.stat().st_size == 16 + 4 * p.weight_count
    assert read_weights(path, p)[0] == (0, 1, 0, 7)
    with pytest.raises(InputError, match="does not exist"):
        read_weights(tmp_path / "nope.weights", p)


@pytest.mark.parametrize("text,match", [
    ("[convolutional]\nfilters=3\n", "must start with a \\[net\\]"),
    ("[net]\nwidth=64\nheight=64\n[convolutional\nfilters=3", "malformed section header"),
    ("[net]\nwidth=64\nheight=64\n[lstm]\n", "unsupported section \\[lstm\\]"),
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters three\n", "expected 'key=value'"),
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=x\nsize=1\n", "filters='x' is not a valid int"),
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=4\nsize=1\nactivation=mish\n", "activation 'mish'"),
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=4\nsize=1\n", "no \\[yolo\\] or \\[Gaussian_yolo\\]"),
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=30\nsize=1\nstride=32\n[Gaussian_yolo]\nmask=0,1,2\n"
     "anchors=1,1,2,2,3,3\nclasses=2\n", "needs 33 input channels"),
    ("[net]\nwidth=64\nheight=64\n[route]\nlayers=-3\n", "refers to layer -3"),
    ("[net]\nwidth=60\nheight=64\n", "multiples of 32"),
])
def test_malformed_cfg_errors(text, match):
    with pytest.raises(InputError, match=match):
        plan(parse_cfg(text))


SMALL_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[convolutional]
size=1
stride=16
pad=1
filters={filters}
activation=linear

[{kind}]
mask = 0,1,2
anchors = 10,14, 23,27, 37,58
classes=2
num=3
"""


def numpy_darknet(x, values, kind):
    """Reference forward pass of SMALL_CFG in plain numpy, darknet conventions."""
    c1 = 4
    off = 0
    beta, gamma, mean, var = (values[off + i * c1: off + (i + 1) * c1] for i in range(4))
    off += 4 * c1
    k1 = values[off:off + c1 * 3 * 9].reshape(c1, 3, 3, 3)
    off += c1 * 27
    xp = np.pad(x / 255.0, ((1, 1), (1, 1), (0, 0)))
    y = np.zeros((32, 32, c1))
    for i in range(32):
        for j in range(32):
            win = xp[2 * i:2 * i + 3, 2 * j:2 * j + 3, :]  # (kh, kw, in)
            y[i, j] = np.einsum("hwc,ochw->o", win, k1)
    y = gamma * (y - mean) / (np.sqrt(var) + 1e-6) + beta
    y = np.where(y > 0, y, 0.1 * y)
    f2 = len(values) - off - 0
    per = (8 if kind == "Gaussian_yolo" else 4) + 1 + 2
    bias = values[off:off + 3 * per]
    off += 3 * per
    k2 = values[off:off + 3 * per * c1].reshape(3 * per, c1)
    assert off + 3 * per * c1 == len(values), f2
    out = y[::16, ::16] @ k2.T + bias  # (2, 2, 3*per) -- 1x1 conv, stride 16
    return out.reshape(2, 2, 3, per)


@pytest.mark.parametrize("kind", ["Gaussian_yolo", "yolo"])
def test_small_cfg_matches_numpy_darknet(tmp_path, kind):
    from convert.detection.darknet_keras import import_darknet
    per = (8 if kind == "Gaussian_yolo" else 4) + 1 + 2
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG.format(filters=3 * per, kind=kind))
    p = plan(parse_cfg(cfg.read_text()))
    rng = np.random.default_rng(1)
    values = rng.standard_normal(p.weight_count).astype(np.float32)
    values[12:16] = np.abs(values[12:16]) + 0.5  # variances must be positive
    write_weights(tmp_path / "small.weights", values)
    imp = import_darknet(cfg, tmp_path / "small.weights", ["a", "b"])
    x = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    out = {k: np.asarray(v)[0] for k, v in imp.model(x[None]).items()}
    ref = numpy_darknet(x.astype(np.float64), values.astype(np.float64), kind)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    if kind == "Gaussian_yolo":
        expect_sig = sig(ref[..., [0, 2, 1, 3, 5, 7, 8, 9, 10]])
        expect_lin = ref[..., [4, 6]]
        assert imp.head == "gaussian"
    else:
        expect_sig = sig(ref[..., [0, 1, 4, 5, 6]])
        expect_lin = ref[..., [2, 3]]
        assert imp.head == "plain"
    np.testing.assert_allclose(out["s32_sigmoid"].reshape(2, 2, 3, -1), expect_sig, atol=2e-4)
    np.testing.assert_allclose(out["s32_linear"].reshape(2, 2, 3, 2), expect_lin, atol=2e-3)
    meta = imp.detection_metadata()
    assert meta["strides"] == [32] and meta["anchors"] == [[[10, 14], [23, 27], [37, 58]]]


def _export_and_compare(imp, tmp_path, size, n_calib=8):
    from convert.detection.export import detector_metadata, export_detector
    from edge.model_metadata import read_model
    from edge.runtime import TFLiteModel, dequantize
    rng = np.random.default_rng(2)
    calib = [rng.uniform(0, 255, (size, size, 3)).astype(np.float32) for _ in range(n_calib)]
    meta = detector_metadata(architecture="darknet-test", model_id="darknet-test", input_hw=(size, size),
                             labels=imp.labels, detection=imp.detection_metadata(), quantization="int8", io_dtype="uint8")
    out = tmp_path / "imported-int8.tflite"
    export_detector(imp.model, out, metadata=meta, quantization="int8", calibration=calib)
    _, meta = read_model(out)
    model = TFLiteModel(out, threads=1)
    x = calib[0].astype(np.uint8)
    raw = model.run(x)
    ref = {k: np.asarray(v)[0] for k, v in imp.model(x[None].astype(np.float32)).items()}
    quant = model.output_quantization()
    for name, value in raw.items():
        err = np.abs(dequantize(value, *quant[name])[0] - ref[name])
        span = float(ref[name].max() - ref[name].min()) + 1e-6
        assert err.mean() < 0.05 * span, (name, err.mean(), span)
    return meta


def test_imported_model_exports_to_int8(tmp_path):
    from convert.detection.darknet_keras import import_darknet
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG.format(filters=33, kind="Gaussian_yolo"))
    p = plan(parse_cfg(cfg.read_text()))
    values = np.random.default_rng(3).standard_normal(p.weight_count).astype(np.float32) * 0.3
    values[12:16] = 1.0
    write_weights(tmp_path / "small.weights", values)
    imp = import_darknet(cfg, tmp_path / "small.weights", ["a", "b"])
    meta = _export_and_compare(imp, tmp_path, 64)
    assert meta["detection"]["head"] == "gaussian" and meta["input"]["dtype"] == "uint8"


@pytest.mark.slow
def test_official_bdd_cfg_imports_and_exports_int8_at_reduced_size(gaussian_yolov3_fixtures, tmp_path):
    """The full Darknet-53 Gaussian YOLOv3 (62M weights) from a weights file written here, int8 at 128x128."""
    from convert.detection.darknet_keras import import_darknet
    cfg = gaussian_yolov3_fixtures / "Gaussian_yolov3_BDD.cfg"
    p = plan(parse_cfg(cfg.read_text()), (128, 128))
    rng = np.random.default_rng(4)
    values = np.empty(p.weight_count, np.float32)
    off = 0
    for spec in p.convs:  # BN stats that keep activations bounded: beta 0, gamma 1, mean 0, var 1
        f = spec.filters
        if spec.batch_normalize:
            values[off:off + 4 * f] = np.concatenate([np.zeros(f), np.ones(f), np.zeros(f), np.ones(f)])
            off += 4 * f
        else:
            values[off:off + f] = 0
            off += f
        n = f * spec.in_channels * spec.size ** 2
        values[off:off + n] = rng.standard_normal(n).astype(np.float32) * np.sqrt(1.0 / (spec.in_channels * spec.size ** 2))
        off += n
    write_weights(tmp_path / "bdd.weights", values)
    names = [x for x in (gaussian_yolov3_fixtures / "bdd.names").read_text().splitlines() if x.strip()]
    imp = import_darknet(cfg, tmp_path / "bdd.weights", names, input_hw=(128, 128))
    meta = _export_and_compare(imp, tmp_path, 128, n_calib=4)
    assert meta["detection"]["strides"] == [8, 16, 32] and meta["labels"] == names
