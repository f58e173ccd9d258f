"""YOLOv3 losses: the Gaussian YOLOv3 negative log-likelihood (Choi et al., ICCV 2019) and the plain baseline.

Gaussian box loss, as in the official darknet code (``src/gaussian_yolo_layer.c``, ``delta_gaussian_yolo_box``),
per coordinate k in (x, y, w, h) of an assigned anchor:

    N_k = exp(-(t_k - mu_k)^2 / (2 sigma_k^2)) / (sqrt(2 pi) * (sigma_k + 0.3))
    L_k = -0.5 * scale * log(N_k + 1e-9),        scale = 2 - w * h (box size relative to the input)

(the official code writes the gradient of exactly this; SIGMA_CONST = 0.3 only in the density's
denominator, EPSILON = 1e-9 inside the log). Plain head: 0.5 * scale * (t_k - mu_k)^2.
Objectness: binary cross-entropy, target 1 at assigned anchors, 0 elsewhere, except anchors whose predicted
box overlaps any ground truth with IoU > ignore_thresh (0.5), which get no objectness loss.
Classes: binary cross-entropy at assigned anchors. Everything is summed per image and averaged over the batch.
The total is box_weight * box + obj_weight * obj + cls_weight * cls ('box', 'obj', 'cls' are reported unweighted).
Here gradients flow through the sigmoids by autodiff (darknet applies the output deltas to the logits).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from convert.detection.model import HEAD_ENTRIES
from convert.detection.targets import TARGET_ENTRIES

SIGMA_CONST = 0.3
EPSILON = 1e-9
IGNORE_THRESH = 0.5
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_nll(t, mu, sigma):
    """-log(N(t; mu, sigma) + 1e-9) with the official sigma + 0.3 denominator, computed stably (log-sum-exp)."""
    sigma_safe = tf.maximum(sigma, 1e-6)
    z = (t - mu) / sigma_safe
    log_n = -0.5 * tf.square(z) - _LOG_SQRT_2PI - tf.math.log(sigma + SIGMA_CONST)
    log_eps = tf.constant(math.log(EPSILON), log_n.dtype)
    m = tf.maximum(log_n, log_eps)
    return -(m + tf.math.log(tf.exp(log_n - m) + tf.exp(log_eps - m)))


def _iou_pred_gt(pred_xyxy, gt):
    """pred (B, H, W, A, 4), gt (B, M, 4) -> (B, H, W, A, M)."""
    p = pred_xyxy[..., None, :]
    g = gt[:, None, None, None, :, :]
    lt = tf.maximum(p[..., :2], g[..., :2])
    rb = tf.minimum(p[..., 2:], g[..., 2:])
    inter = tf.reduce_prod(tf.maximum(rb - lt, 0.0), -1)
    area_p = tf.reduce_prod(tf.maximum(p[..., 2:] - p[..., :2], 0.0), -1)
    area_g = tf.reduce_prod(tf.maximum(g[..., 2:] - g[..., :2], 0.0), -1)
    return inter / tf.maximum(area_p + area_g - inter, 1e-9)


class YoloLoss:
    """Callable on (train outputs, targets, gt boxes) -> dict of scalar losses ('total', 'box', 'obj', 'cls')."""

    def __init__(self, head: str, num_classes: int, strides, anchors, ignore_thresh: float = IGNORE_THRESH,
                 weights: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        if head not in HEAD_ENTRIES:
            raise ValueError(f"unknown head {head!r}")
        if len(weights) != 3 or min(weights) < 0:
            raise ValueError(f"loss weights (box, obj, cls) must be three non-negative numbers, got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.head = head
        self.num_classes = int(num_classes)
        self.strides = list(strides)
        self.anchors = [np.asarray(a, np.float32).reshape(3, 2) for a in anchors]
        self.ignore_thresh = float(ignore_thresh)
        self.per = HEAD_ENTRIES[head] + self.num_classes

    def level(self, logits, linear, target, gt_boxes, stride: int, anchors: np.ndarray):
        shape = tf.shape(logits)
        b, gh, gw = shape[0], shape[1], shape[2]
        logits = tf.reshape(logits, [b, gh, gw, 3, self.per])
        linear = tf.reshape(linear, [b, gh, gw, 3, 2])
        mu_xy = tf.sigmoid(logits[..., 0:2])
        mu_wh = linear
        obj_logit = logits[..., HEAD_ENTRIES[self.head] - 1]
        cls_logit = logits[..., HEAD_ENTRIES[self.head]:]
        # predicted boxes (input pixels) for the ignore mask
        gy, gx = tf.meshgrid(tf.range(gh, dtype=tf.float32), tf.range(gw, dtype=tf.float32), indexing="ij")
        grid = tf.stack([gx, gy], -1)[None, :, :, None, :]
        centre = (mu_xy + grid) * float(stride)
        size = tf.constant(anchors)[None, None, None] * tf.exp(tf.clip_by_value(mu_wh, -8.0, 8.0))
        pred = tf.concat([centre - size / 2, centre + size / 2], -1)
        best_iou = tf.reduce_max(_iou_pred_gt(tf.stop_gradient(pred), gt_boxes), -1)
        t_xy, t_wh = target[..., 0:2], target[..., 2:4]
        obj_mask = target[..., 4]
        scale = target[..., 5]
        t_cls = target[..., TARGET_ENTRIES:]
        if self.head == "gaussian":
            sigma = tf.sigmoid(logits[..., 2:6])
            nll = gaussian_nll(tf.concat([t_xy, t_wh], -1), tf.concat([mu_xy, mu_wh], -1), sigma)
            box = 0.5 * tf.reduce_sum(nll, -1)
        else:
            box = 0.5 * tf.reduce_sum(tf.square(tf.concat([t_xy - mu_xy, t_wh - mu_wh], -1)), -1)
        box = tf.reduce_sum(obj_mask * scale * box)
        bce_obj = tf.nn.sigmoid_cross_entropy_with_logits(labels=obj_mask, logits=obj_logit)
        noobj_mask = (1.0 - obj_mask) * tf.cast(best_iou <= self.ignore_thresh, tf.float32)
        obj = tf.reduce_sum((obj_mask + noobj_mask) * bce_obj)
        bce_cls = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=t_cls, logits=cls_logit), -1)
        cls = tf.reduce_sum(obj_mask * bce_cls)
        return box, obj, cls

    def __call__(self, train_outputs, targets, gt_boxes) -> dict:
        """``train_outputs``: [logits_s, linear_s, ...] in stride order; ``targets``: one per stride."""
        batch = tf.cast(tf.shape(gt_boxes)[0], tf.float32)
        parts = {"box": 0.0, "obj": 0.0, "cls": 0.0}
        for i, (stride, anchors) in enumerate(zip(self.strides, self.anchors)):
            box, obj, cls = self.level(train_outputs[2 * i], train_outputs[2 * i + 1], targets[i], gt_boxes, stride, anchors)
            parts["box"] += box
            parts["obj"] += obj
            parts["cls"] += cls
        parts = {k: v / batch for k, v in parts.items()}
        wb, wo, wc = self.weights
        parts["total"] = wb * parts["box"] + wo * parts["obj"] + wc * parts["cls"]
        return parts
