"""YOLOv3-style detectors: backbone (Darknet-53 or a registry backbone) -> neck -> per-stride heads.

Outputs per stride s (contract, FINDINGS): ``s{s}_sigmoid`` (mu_x, mu_y, 4 sigmas, objectness, classes per
anchor after sigmoid; plain head: mu_x, mu_y, objectness, classes) and ``s{s}_linear`` (mu_w, mu_h per anchor).
Two quantize-friendly convolutions instead of one concatenated head.

``build_detector(cfg, batch_size)`` returns :class:`Detector` with two views of the same layers:
``train_model`` (outputs: per stride the pre-sigmoid logits and the linear output, for a stable loss) and
``model`` (the exported one: dict of named outputs, sigmoid applied).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
from keras import layers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from convert.detection.anchors import ANCHORS_PER_SCALE, default_anchors, strides_for

HEAD_ENTRIES = {"gaussian": 7, "plain": 3}  # sigmoid entries per anchor before the classes


class DetectorConfig(BaseModel):
    """Everything needed to rebuild a detector (stored next to checkpoints and in export metadata)."""
    model_config = ConfigDict(extra="forbid")
    backbone: str = Field("mobilenetv3_small", description="darknet53, darknet_small, or a convert.models registry name")
    width: float = Field(1.0, description="backbone width multiplier")
    input_size: tuple[int, int] = Field((256, 256), description="(height, width), multiples of 32")
    head: Literal["gaussian", "plain"] = "gaussian"
    layout: Literal["2scale", "3scale"] = Field("2scale", description="2scale: strides 16/32, 3scale: 8/16/32")
    labels: list[str] = Field(..., min_length=1)
    anchors: list[list[list[float]]] | None = Field(None, description="per stride, 3 (w, h) pairs in input pixels")
    anchors_from: str = Field("synth", description="default anchor set when 'anchors' is not given")
    neck_channels: int = Field(96, ge=8, description="channels of the coarsest neck level (halved per finer level)")
    neck_activation: Literal["relu6", "leaky"] = "relu6"
    backbone_options: dict = Field(default_factory=dict, description="extra registry options, e.g. hard_swish")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before each head (training only; Noisy-Student noise)")
    channels: dict[str, int | list[int]] = Field(default_factory=dict, description="pruned widths (set by "
                                                 "convert-model prune): conv layer -> filters, split -> sizes")

    @field_validator("input_size")
    @classmethod
    def _size(cls, v):
        if v[0] % 32 or v[1] % 32 or min(v) < 64:
            raise ValueError(f"input_size {v} must be multiples of 32 and at least 64")
        return v

    @model_validator(mode="after")
    def _anchors(self):
        strides = self.strides
        if self.anchors is None:
            self.anchors = default_anchors(self.anchors_from, (self.input_size[1], self.input_size[0]), strides)
        if len(self.anchors) != len(strides) or any(len(a) != ANCHORS_PER_SCALE for a in self.anchors):
            raise ValueError(f"anchors: need {len(strides)} lists of {ANCHORS_PER_SCALE} (w, h) pairs for layout {self.layout}")
        return self

    @property
    def strides(self) -> tuple[int, ...]:
        return strides_for(self.layout)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def output_names(self) -> dict[str, dict[str, str]]:
        return {str(s): {"sigmoid": f"s{s}_sigmoid", "linear": f"s{s}_linear"} for s in self.strides}

    def detection_metadata(self) -> dict:
        """The metadata 'detection' section (contract)."""
        return {"head": self.head, "num_classes": self.num_classes, "strides": list(self.strides),
                "anchors": self.anchors, "outputs": self.output_names()}


@dataclass
class Detector:
    config: DetectorConfig
    model: keras.Model        # image -> {s16_sigmoid, s16_linear, ...}
    train_model: keras.Model  # image -> [s16_logits, s16_linear, s32_logits, s32_linear, ...]


# --------------------------------------------------------------------------- building blocks
def conv_bn(x, filters: int, kernel: int, name: str, stride: int = 1, act: str = "leaky"):
    if stride == 2:  # darknet pads 1 px on top/left and takes windows from -1: same result as (1,0) padding + valid
        x = layers.ZeroPadding2D(((1, 0), (1, 0)), name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, kernel, strides=2, padding="valid", use_bias=False, name=name)(x)
    else:
        x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=1e-3, name=f"{name}_bn")(x)
    if act == "leaky":
        return layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act")(x)
    if act == "relu6":
        return layers.ReLU(max_value=6.0, name=f"{name}_act")(x)
    if act == "linear":
        return x
    raise ValueError(f"unknown activation {act!r}")


DARKNET_DEPTHS = {"darknet53": ((1, 2, 8, 8, 4), 1.0), "darknet_small": ((1, 1, 2, 2, 1), 0.25)}


def darknet_backbone(inputs, depths=(1, 2, 8, 8, 4), width: float = 1.0):
    """Darknet-53 (YOLOv3's backbone): returns feature maps at strides 8, 16, 32. Pixels /255 in the graph."""
    ch = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731
    x = layers.Rescaling(1.0 / 255.0, name="dn_scale")(inputs)
    x = conv_bn(x, ch(32), 3, "dn_conv0")
    feats = []
    for stage, (n, c) in enumerate(zip(depths, (64, 128, 256, 512, 1024))):
        x = conv_bn(x, ch(c), 3, f"dn_down{stage}", stride=2)
        for r in range(n):
            y = conv_bn(x, ch(c) // 2, 1, f"dn_s{stage}_r{r}_a")
            y = conv_bn(y, ch(c), 3, f"dn_s{stage}_r{r}_b")
            x = layers.Add(name=f"dn_s{stage}_r{r}_add")([x, y])
        if stage >= 2:
            feats.append(x)
    return feats


def backbone_features(cfg: DetectorConfig, inputs) -> list:
    """[C3, C4, C5] at strides 8, 16, 32."""
    if cfg.backbone in DARKNET_DEPTHS:
        depths, default_width = DARKNET_DEPTHS[cfg.backbone]
        return darknet_backbone(inputs, depths, default_width * cfg.width)
    from convert.models.registry import feature_maps
    return feature_maps(cfg.backbone, inputs, width=cfg.width, **cfg.backbone_options)


def _conv_set(x, c: int, name: str, act: str, n: int):
    """YOLOv3's 1x1 / 3x3 alternation (n=5 in the paper; 3 in the light neck)."""
    for i in range(n):
        x = conv_bn(x, c if i % 2 == 0 else 2 * c, 1 if i % 2 == 0 else 3, f"{name}_{i}", act=act)
    return x


def _head(x, stride: int, cfg: DetectorConfig, c: int, act: str):
    y = conv_bn(x, 2 * c, 3, f"head{stride}_conv", act=act)
    if cfg.dropout:
        y = layers.SpatialDropout2D(cfg.dropout, name=f"head{stride}_dropout")(y)
    per = HEAD_ENTRIES[cfg.head] + cfg.num_classes
    logits = layers.Conv2D(ANCHORS_PER_SCALE * per, 1, name=f"s{stride}_logits")(y)
    linear = layers.Conv2D(ANCHORS_PER_SCALE * 2, 1, name=f"s{stride}_linear", kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))(y)
    return logits, linear


def build_detector(cfg: DetectorConfig, batch_size: int | None = None) -> Detector:
    from convert.models.layers import NearestUpsample, image_input
    inputs = image_input(cfg.input_size, batch_size)
    c3, c4, c5 = backbone_features(cfg, inputs)
    heavy = cfg.backbone in DARKNET_DEPTHS and cfg.backbone == "darknet53"
    n_set = 5 if heavy else 3
    act = cfg.neck_activation
    c = cfg.neck_channels
    strides = cfg.strides
    levels = {32: c5, 16: c4, 8: c3}
    outputs_train, outputs = [], {}
    x = _conv_set(c5, c, "neck32", act, n_set)
    heads = {32: (x, c)}
    for s in (16, 8):
        if s not in strides:
            break
        c_next = max(8, c // 2)
        up = conv_bn(x, c_next, 1, f"neck{s}_lat", act=act)
        up = NearestUpsample(2, name=f"neck{s}_up")(up)   # not UpSampling2D: its TILE splits int8 XNNPACK
        x = layers.Concatenate(name=f"neck{s}_cat")([up, levels[s]])
        x = _conv_set(x, c_next, f"neck{s}", act, n_set)
        heads[s] = (x, c_next)
        c = c_next
    for s in strides:
        logits, linear = _head(heads[s][0], s, cfg, heads[s][1], act)
        outputs_train += [logits, linear]
        outputs[f"s{s}_sigmoid"] = layers.Activation("sigmoid", name=f"s{s}_sigmoid")(logits)
        outputs[f"s{s}_linear"] = linear
    if cfg.channels:   # a pruned detector: the same graph with fewer channels (convert.prune)
        from convert.prune.surgery import apply_overrides
        names = list(outputs)
        both = apply_overrides(keras.Model(inputs, outputs_train + [outputs[n] for n in names]), cfg.channels)
        inputs, outs = both.inputs[0], list(both.outputs)
        outputs_train, outputs = outs[:len(outputs_train)], dict(zip(names, outs[len(outputs_train):]))
    train_model = keras.Model(inputs, outputs_train, name=f"gyolo_{cfg.backbone}_train")
    model = keras.Model(inputs, outputs, name=f"gyolo_{cfg.backbone}")
    _init_biases(train_model, cfg)
    set_bn_momentum(train_model, BN_MOMENTUM)
    return Detector(cfg, model, train_model)


BN_MOMENTUM = 0.97  # Keras MobileNetV3 uses 0.999: far too slow for moving statistics over a short training run


def set_bn_momentum(model: keras.Model, momentum: float) -> int:
    n = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
            n += 1
    return n


def _init_biases(model: keras.Model, cfg: DetectorConfig, prior: float = 0.01) -> None:
    """Objectness starts at a low prior (so the first steps are not dominated by background), sigmas at ~0.5."""
    per = HEAD_ENTRIES[cfg.head] + cfg.num_classes
    obj = HEAD_ENTRIES[cfg.head] - 1
    for s in cfg.strides:
        layer = model.get_layer(f"s{s}_logits")
        bias = np.zeros(ANCHORS_PER_SCALE * per, np.float32)
        bias[obj::per] = math.log(prior / (1 - prior))
        layer.bias.assign(bias)


def export_model(detector: Detector) -> keras.Model:
    """A batch-1 copy of ``detector.model`` with the same weights (static shapes for TFLite/Edge TPU)."""
    single = build_detector(detector.config, batch_size=1)
    single.train_model.set_weights(detector.train_model.get_weights())
    return single.model
