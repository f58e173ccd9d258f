"""Build a Keras model from a darknet plan and load darknet weights into it.

The result has the contract's outputs (``s{s}_sigmoid`` / ``s{s}_linear``), so it exports, evaluates and
runs on the device like any model trained here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from convert.detection.darknet import (LINEAR_ENTRIES, SIGMOID_ENTRIES, BOX_ENTRIES, Plan, parse_cfg, plan, read_weights,
                                       split_conv_weights)
from convert.models.layers import NearestUpsample
from edge.contract.errors import InputError

BN_EPSILON = 1e-6  # darknet divides by sqrt(var) + .000001


@dataclass
class ImportedDetector:
    model: keras.Model
    plan: Plan
    labels: list[str]
    head: str                  # "gaussian" | "plain"
    header: tuple | None       # weights file header, None when built without weights

    def detection_metadata(self) -> dict:
        strides = [h.stride for h in sorted(self.plan.heads, key=lambda h: h.stride)]
        by_stride = {h.stride: h for h in self.plan.heads}
        return {"head": self.head, "num_classes": self.plan.heads[0].classes, "strides": strides,
                "anchors": [by_stride[s].anchors for s in strides],
                "outputs": {str(s): {"sigmoid": f"s{s}_sigmoid", "linear": f"s{s}_linear"} for s in strides}}


def _activation(x, act: str, name: str):
    if act == "leaky":
        return layers.LeakyReLU(negative_slope=0.1, name=f"{name}_leaky")(x)
    if act == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)
    if act == "logistic":
        return layers.Activation("sigmoid", name=f"{name}_sigmoid")(x)
    return x


def head_filter_order(kind: str, classes: int) -> tuple[list[int], list[int]]:
    """Darknet filter indices of the sigmoid and linear outputs, in contract order."""
    per = BOX_ENTRIES[kind] + 1 + classes
    sig = [a * per + e for a in range(3) for e in SIGMOID_ENTRIES[kind] + list(range(BOX_ENTRIES[kind] + 1, per))]
    lin = [a * per + e for a in range(3) for e in LINEAR_ENTRIES[kind]]
    return sig, lin


def build_keras(sections, p: Plan, batch_size: int | None = 1) -> keras.Model:
    h, w = p.input_hw
    inputs = keras.Input((h, w, 3), batch_size=batch_size, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="dn_scale")(inputs)
    outs: list = []
    outputs = {}
    convs = {c.index: c for c in p.convs}
    head_by_conv = {hd.conv_index: hd for hd in p.heads}
    for i, sec in enumerate(sections[1:]):
        name = f"layer{i:03d}"
        if sec.kind == "convolutional":
            spec = convs[i]
            size, stride = spec.size, sec.get("stride", 1)
            pad = size // 2 if sec.get("pad", 0) else sec.get("padding", 0)
            y = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x) if pad else x
            if i in head_by_conv:
                hd = head_by_conv[i]
                sig_idx, lin_idx = head_filter_order(hd.kind, hd.classes)
                logits = layers.Conv2D(len(sig_idx), size, strides=stride, name=f"s{hd.stride}_logits")(y)
                outputs[f"s{hd.stride}_sigmoid"] = layers.Activation("sigmoid", name=f"s{hd.stride}_sigmoid")(logits)
                outputs[f"s{hd.stride}_linear"] = layers.Conv2D(len(lin_idx), size, strides=stride,
                                                               name=f"s{hd.stride}_linear")(y)
                x = None  # a detection conv's output is not a feature map anyone may route to
            else:
                y = layers.Conv2D(spec.filters, size, strides=stride, use_bias=not spec.batch_normalize,
                                  name=f"{name}_conv")(y)
                if spec.batch_normalize:
                    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(y)
                x = _activation(y, sec.get("activation", "logistic", str), name)
        elif sec.kind == "shortcut":
            j = i + sec.get("from") if sec.get("from") < 0 else sec.get("from")
            x = layers.Add(name=f"{name}_add")([outs[j], x])
        elif sec.kind == "route":
            refs = [i + v if v < 0 else v for v in sec.ints("layers")]
            if any(outs[j] is None for j in refs):
                raise InputError(f"cfg line {sec.line}: [route] refers to a detection layer's output, which is not supported")
            x = outs[refs[0]] if len(refs) == 1 else layers.Concatenate(name=f"{name}_route")([outs[j] for j in refs])
        elif sec.kind == "upsample":
            x = NearestUpsample(sec.get("stride", 2), name=f"{name}_up")(x)
        elif sec.kind == "maxpool":
            x = layers.MaxPooling2D(sec.get("size", 2), sec.get("stride", 2), padding="same", name=f"{name}_pool")(x)
        elif sec.kind in ("yolo", "gaussian_yolo"):
            x = None
        outs.append(x)
    order = sorted(outputs)
    return keras.Model(inputs, {k: outputs[k] for k in order}, name="darknet_import")


def load_darknet_weights(model: keras.Model, p: Plan, values: np.ndarray) -> None:
    off = 0
    head_by_conv = {hd.conv_index: hd for hd in p.heads}
    for spec in p.convs:
        n = spec.weight_count
        parts = split_conv_weights(spec, values[off:off + n])
        off += n
        name = f"layer{spec.index:03d}"
        if spec.index in head_by_conv:
            hd = head_by_conv[spec.index]
            sig_idx, lin_idx = head_filter_order(hd.kind, hd.classes)
            bias = parts.get("bias")
            if bias is None:  # a BN head conv is unusual; fold BN into a bias
                scale = parts["gamma"] / (np.sqrt(parts["var"]) + BN_EPSILON)
                parts["kernel"] = parts["kernel"] * scale
                bias = parts["beta"] - parts["mean"] * scale
            model.get_layer(f"s{hd.stride}_logits").set_weights([parts["kernel"][..., sig_idx], bias[sig_idx]])
            model.get_layer(f"s{hd.stride}_linear").set_weights([parts["kernel"][..., lin_idx], bias[lin_idx]])
            continue
        conv = model.get_layer(f"{name}_conv")
        if spec.batch_normalize:
            conv.set_weights([parts["kernel"]])
            model.get_layer(f"{name}_bn").set_weights([parts["gamma"], parts["beta"], parts["mean"], parts["var"]])
        else:
            conv.set_weights([parts["kernel"], parts["bias"]])
    assert off == values.size, "weight count was checked against the plan"


def import_darknet(cfg_path: str | Path, weights_path: str | Path | None, names: list[str] | None = None,
                   input_hw: tuple[int, int] | None = None, batch_size: int | None = 1) -> ImportedDetector:
    cfg_path = Path(cfg_path)
    if not cfg_path.is_file():
        raise InputError(f"cfg file {cfg_path} does not exist")
    sections = parse_cfg(cfg_path.read_text(), str(cfg_path))
    p = plan(sections, input_hw)
    classes = p.heads[0].classes
    if names is None:
        names = [f"class{i}" for i in range(classes)]
    if len(names) != classes:
        raise InputError(f"{len(names)} class names given, the cfg has classes={classes}")
    header = None
    values = None
    if weights_path is not None:
        header, values = read_weights(weights_path, p)  # checks the count before building anything
    model = build_keras(sections, p, batch_size)
    if values is not None:
        load_darknet_weights(model, p, values)
    head = "gaussian" if p.heads[0].kind == "gaussian_yolo" else "plain"
    return ImportedDetector(model, p, list(names), head, header)
