"""Detector topology: output names and shapes per layout/head/backbone, batch-1 export copy, config errors."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tests.conftest import require_module

require_module("tensorflow")

from convert.detection.model import DetectorConfig, build_detector, export_model  # noqa: E402


@pytest.mark.parametrize("backbone,layout,head,size", [
    ("mobilenetv3_small", "2scale", "gaussian", (64, 96)),
    ("darknet_small", "3scale", "plain", (64, 64)),
])
def test_outputs_follow_the_contract(backbone, layout, head, size):
    cfg = DetectorConfig(backbone=backbone, layout=layout, head=head, input_size=size, labels=["a", "b", "c"],
                         neck_channels=16)
    det = build_detector(cfg)
    per = (7 if head == "gaussian" else 3) + 3
    expected = {}
    for s in cfg.strides:
        expected[f"s{s}_sigmoid"] = (size[0] // s, size[1] // s, 3 * per)
        expected[f"s{s}_linear"] = (size[0] // s, size[1] // s, 6)
    shapes = {k: tuple(v.shape[1:]) for k, v in det.model.output.items()}
    assert shapes == expected
    meta = cfg.detection_metadata()
    assert meta["strides"] == list(cfg.strides) and len(meta["anchors"]) == len(cfg.strides)
    assert meta["outputs"][str(cfg.strides[0])]["sigmoid"] == f"s{cfg.strides[0]}_sigmoid"
    x = np.random.default_rng(0).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    out = det.model(x)
    sig = np.asarray(out[f"s{cfg.strides[-1]}_sigmoid"])
    assert sig.min() >= 0 and sig.max() <= 1
    # objectness starts near the 1% prior, so early training is not swamped by background
    assert np.median(sig.reshape(-1, per)[:, per - 4]) < 0.05
    single = export_model(det)
    assert single.input.shape[0] == 1
    ref = det.model(x)
    for k, v in single(x).items():
        np.testing.assert_allclose(np.asarray(v), np.asarray(ref[k]), atol=1e-5)


@pytest.mark.slow
def test_darknet53_three_scales_at_416():
    cfg = DetectorConfig(backbone="darknet53", layout="3scale", input_size=(416, 416), labels=["x"] * 10,
                         anchors_from="bdd", neck_activation="leaky", neck_channels=512)
    det = build_detector(cfg, batch_size=1)
    assert {k: tuple(v.shape[1:3]) for k, v in det.model.output.items() if "sigmoid" in k} == \
        {"s8_sigmoid": (52, 52), "s16_sigmoid": (26, 26), "s32_sigmoid": (13, 13)}
    assert det.model.output["s8_sigmoid"].shape[-1] == 3 * (7 + 10)
    assert det.train_model.count_params() > 55_000_000  # the Darknet-53 trunk alone holds ~40M


def test_config_errors_name_the_key():
    with pytest.raises(ValidationError, match="bogus"):
        DetectorConfig(labels=["a"], bogus=1)
    with pytest.raises(ValidationError, match="multiples of 32"):
        DetectorConfig(labels=["a"], input_size=(100, 100))
    with pytest.raises(ValidationError, match="anchors"):
        DetectorConfig(labels=["a"], anchors=[[[1, 1], [2, 2]], [[3, 3]]])
    with pytest.raises(ValidationError, match="labels"):
        DetectorConfig(labels=[])
