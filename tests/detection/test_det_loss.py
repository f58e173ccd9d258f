"""Loss: the official Gaussian NLL constants, the ignore mask, finite gradients and a tiny overfit."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import require_module

tf = require_module("tensorflow")

from convert.detection.loss import EPSILON, SIGMA_CONST, YoloLoss, gaussian_nll  # noqa: E402
from convert.detection.model import DetectorConfig, build_detector  # noqa: E402
from convert.detection.targets import encode_targets, pad_boxes  # noqa: E402


def reference_nll(t, mu, sigma):
    """The official darknet density, in float64: -log(N + 1e-9) with sigma + 0.3 in the denominator."""
    n = math.exp(-((t - mu) / sigma) ** 2 / 2) / (math.sqrt(2 * math.pi) * (sigma + 0.3))
    return -math.log(n + 1e-9)


def test_constants_are_the_official_ones():
    assert SIGMA_CONST == 0.3 and EPSILON == 1e-9


@pytest.mark.parametrize("t,mu,sigma", [(0.5, 0.4, 0.2), (0.1, 0.9, 0.05), (2.0, -1.0, 0.5), (0.3, 0.3, 1e-3),
                                        (5.0, 0.0, 0.01)])
def test_gaussian_nll_matches_reference(t, mu, sigma):
    got = float(gaussian_nll(tf.constant(t), tf.constant(mu), tf.constant(sigma)))
    assert got == pytest.approx(reference_nll(t, mu, sigma), rel=1e-4, abs=1e-4)


def test_nll_is_bounded_and_gradients_finite_at_extremes():
    t = tf.constant([0.0, 0.0, 1.0, 3.0])
    mu = tf.Variable([0.0, 5.0, 0.99, -3.0])
    s_logit = tf.Variable([-30.0, -30.0, 0.0, 10.0])
    with tf.GradientTape() as tape:
        loss = gaussian_nll(t, mu, tf.sigmoid(s_logit))
    grads = tape.gradient(loss, [mu, s_logit])
    assert np.all(np.isfinite(loss.numpy())) and all(np.all(np.isfinite(g.numpy())) for g in grads)
    assert float(loss[1]) == pytest.approx(-math.log(EPSILON), rel=1e-5)  # density underflows: the epsilon bounds it


def _level_inputs(obj_logit_at_00: float):
    """Grid 2x2 at stride 32, one GT box assigned to cell (1, 1) anchor 0; anchor 1 of cell (0, 0) predicts
    a box overlapping the GT by IoU > 0.5 without being assigned."""
    anchors = np.array([[40, 40], [40, 40], [8, 8]], np.float32)
    per = 7 + 1
    logits = np.full((1, 2, 2, 3 * per), -2.0, np.float32)
    linear = np.full((1, 2, 2, 6), -3.0, np.float32)  # every other anchor predicts a tiny box (IoU ~ 0)
    linear[0, 0, 0, 2:4] = 0.0
    logits[0, 0, 0, 1 * per + 0:1 * per + 2] = 10.0  # mu_x, mu_y -> ~1.0: centre (32, 32)
    logits[0, 0, 0, 1 * per + 6] = obj_logit_at_00
    gt = np.array([[14, 14, 54, 54]], np.float32)  # centre (34, 34) -> cell (1, 1)
    target = encode_targets(gt, np.array([0]), (64, 64), [32], [anchors.tolist()], 1)[0]
    return logits, linear, target[None], pad_boxes(gt, 4)[None], anchors


def test_ignore_threshold_skips_good_unassigned_anchors():
    losses = []
    for thresh in (0.5, 1.01):
        lf = YoloLoss("gaussian", 1, [32], [[[40, 40], [40, 40], [8, 8]]], ignore_thresh=thresh)
        logits, linear, target, gt, anchors = _level_inputs(obj_logit_at_00=3.0)
        _, obj, _ = lf.level(tf.constant(logits), tf.constant(linear), tf.constant(target), tf.constant(gt), 32, anchors)
        losses.append(float(obj))
    bce_negative = math.log1p(math.exp(3.0))  # BCE(target 0, logit 3) that the ignore mask removes
    assert losses[1] - losses[0] == pytest.approx(bce_negative, rel=1e-4)


def test_plain_head_box_loss_is_scaled_squared_error():
    lf = YoloLoss("plain", 1, [32], [[[40, 40], [40, 40], [8, 8]]])
    per = 3 + 1
    logits = np.zeros((1, 2, 2, 3 * per), np.float32)  # mu_x = mu_y = 0.5
    linear = np.zeros((1, 2, 2, 6), np.float32)
    gt = np.array([[14, 14, 54, 54]], np.float32)
    target = encode_targets(gt, np.array([0]), (64, 64), [32], [[[40, 40], [40, 40], [8, 8]]], 1)[0][None]
    box, _, _ = lf.level(tf.constant(logits), tf.constant(linear), tf.constant(target), tf.constant(pad_boxes(gt, 4)[None]),
                         32, np.array([[40, 40], [40, 40], [8, 8]], np.float32))
    t = target[0, 1, 1, 0]
    scale = 2 - (40 / 64) ** 2
    expected = 0.5 * scale * ((t[0] - 0.5) ** 2 + (t[1] - 0.5) ** 2 + t[2] ** 2 + t[3] ** 2)
    assert float(box) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("head", ["gaussian", pytest.param("plain", marks=pytest.mark.slow)])
def test_tiny_overfit_loss_decreases_with_finite_gradients(head):
    tf.random.set_seed(0)
    cfg = DetectorConfig(backbone="darknet_small", input_size=(64, 64), head=head, layout="2scale", labels=["a", "b"],
                         anchors=[[[8, 8], [12, 12], [16, 16]], [[24, 24], [32, 32], [48, 48]]], neck_channels=16)
    det = build_detector(cfg)
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    boxes = [np.array([[4, 4, 20, 20], [30, 30, 62, 62]], np.float32), np.array([[10, 30, 40, 50]], np.float32)]
    classes = [np.array([0, 1]), np.array([1])]
    targets = [encode_targets(b, c, (64, 64), cfg.strides, cfg.anchors, 2) for b, c in zip(boxes, classes)]
    targets = [tf.constant(np.stack([t[i] for t in targets])) for i in range(2)]
    gt = tf.constant(np.stack([pad_boxes(b, 8) for b in boxes]))
    lf = YoloLoss(head, 2, cfg.strides, cfg.anchors)
    import keras
    opt = keras.optimizers.Adam(3e-3)
    model = det.train_model
    history = []

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            parts = lf(model(img, training=True), targets, gt)
        grads = tape.gradient(parts["total"], model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return parts["total"], tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

    for _ in range(30):
        loss, finite = step()
        assert bool(finite)
        history.append(float(loss))
    assert np.all(np.isfinite(history))
    assert np.mean(history[-5:]) < 0.5 * np.mean(history[:3]), history


def test_loss_weights_weigh_the_total_and_leave_the_parts_alone():
    rng = np.random.default_rng(1)
    anchors = [[[40, 40], [30, 30], [8, 8]]]
    logits = tf.constant(rng.normal(0, 1, (1, 2, 2, 3 * (7 + 1))).astype(np.float32))
    linear = tf.constant(rng.normal(0, 0.3, (1, 2, 2, 6)).astype(np.float32))
    target = [tf.constant(encode_targets(np.array([[4, 4, 40, 40]], np.float32), np.array([0]), (64, 64), [32],
                                         anchors, 1)[0][None])]
    gt = tf.constant(pad_boxes(np.array([[4, 4, 40, 40]], np.float32), 4)[None])
    plain = YoloLoss("gaussian", 1, [32], anchors)([logits, linear], target, gt)
    weighted = YoloLoss("gaussian", 1, [32], anchors, weights=(0.1, 2.0, 0.5))([logits, linear], target, gt)
    for k in ("box", "obj", "cls"):
        assert float(weighted[k]) == pytest.approx(float(plain[k]))
    expected = 0.1 * float(plain["box"]) + 2.0 * float(plain["obj"]) + 0.5 * float(plain["cls"])
    assert float(weighted["total"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="non-negative"):
        YoloLoss("gaussian", 1, [32], anchors, weights=(1.0, -1.0, 1.0))


def test_gradient_summary_reports_clipping_and_the_part_balance():
    from convert.detection.train import gradient_summary
    out = gradient_summary([5.0, 20.0, 40.0, 8.0], {"box": [3.0, 6.0], "obj": [1.0, 2.0], "cls": []},
                           [10.0, 10.0, 10.0, 10.0])
    assert out["clipped_share"] == 0.5 and out["grad_norm_median"] == 14.0 and out["grad_norm_max"] == 40.0
    assert out["grad_box_over_obj"] == [3.0, 3.0, 3.0] and "grad_cls_median" not in out
