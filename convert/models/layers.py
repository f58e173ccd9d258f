"""Layers shared by the architectures: activations (incl. XNNPACK-friendly hard-swish), input
normalization, channel splits, mixed depthwise conv, grouped pointwise conv, squeeze-excitation.

Hard-swish formulations (the same function, different TFLite graphs; none has weights, so ImageNet
weights load into every one):
  "native":      x * relu6(x + 3) / 6. The converter fuses it into one HARD_SWISH op, which XNNPACK
                 does not take in int8: a MobileNetV3 falls apart into ~20 delegate partitions.
  "xnnpack":     (x / 6) * relu6(x + 3). Scaling x first is not a pattern the converter fuses, so it
                 stays MUL + ADD(fused RELU6) + MUL, all taken by XNNPACK in int8 (one partition). Its x/6
                 is only quantized faithfully with the exporter's own-range calibration
                 (convert/export/calibration_ranges.py): TFLite's calibrator records the product's range
                 for it (6x too coarse) because the last MUL runs in place. With own ranges every block
                 output matches the native op's SNR within 0.3 dB (measured on a trained MobileNetV3).
                 Float exports use "native": float XNNPACK has HARD_SWISH and it is the fastest form.
  "relu_diff":   x * (relu(x + 3) - relu(x - 3)) / 6 (FINDINGS' candidate). Not fused either, but when
                 x never exceeds 3 on the calibration images relu(x - 3) calibrates to a ~0 range, its
                 int8 scale degenerates (1e-8) and XNNPACK rejects those SUBs: the graph still splits.
                 This, and untrained (~0) activations, were why a whole MobileNetV3 kept splitting.
  "clip_nested": x * (6 - relu(6 - relu(x + 3))) / 6: no degenerate range, one partition, but more
                 requantizations (measured ~4 dB SNR below native).
Hard-sigmoid (the SE gate) has no fused TFLite op, so relu6(x + 3) / 6 is kept for "xnnpack".
"""
from __future__ import annotations

import keras
from keras import layers, ops

from convert.blocks import split_channels

HARD_SWISH_FORMULATIONS = ("native", "xnnpack", "relu_diff", "clip_nested")


def _clip_0_6(x, formulation: str):
    """clip(x + 3, 0, 6) in the chosen formulation."""
    if formulation == "native":
        return ops.relu6(x + 3.0)
    if formulation == "relu_diff":
        return ops.relu(x + 3.0) - ops.relu(x - 3.0)
    if formulation == "clip_nested":
        return 6.0 - ops.relu(6.0 - ops.relu(x + 3.0))
    return ops.relu6(x + 3.0)


@keras.saving.register_keras_serializable(package="sigmawatch")
class HardSwish(layers.Layer):
    """hard_swish(x) = x * relu6(x + 3) / 6, in one of HARD_SWISH_FORMULATIONS."""

    def __init__(self, formulation: str = "native", **kwargs):
        super().__init__(**kwargs)
        if formulation not in HARD_SWISH_FORMULATIONS:
            raise ValueError(f"hard-swish formulation {formulation!r}; expected one of {HARD_SWISH_FORMULATIONS}")
        self.formulation = formulation

    def call(self, x):
        if self.formulation == "native":
            return x * ops.relu6(x + 3.0) * (1.0 / 6.0)
        # (x / 6) * clip: scaling x first keeps every int8 MUL's scale ratio inside XNNPACK's limits
        return (x * (1.0 / 6.0)) * _clip_0_6(x, self.formulation)

    def get_config(self):
        return {**super().get_config(), "formulation": self.formulation}


@keras.saving.register_keras_serializable(package="sigmawatch")
class HardSigmoid(layers.Layer):
    """relu6(x + 3) / 6 (the MobileNetV3 gate), in one of HARD_SWISH_FORMULATIONS."""

    def __init__(self, formulation: str = "native", **kwargs):
        super().__init__(**kwargs)
        if formulation not in HARD_SWISH_FORMULATIONS:
            raise ValueError(f"hard-sigmoid formulation {formulation!r}; expected one of {HARD_SWISH_FORMULATIONS}")
        self.formulation = formulation

    def call(self, x):
        # no HARD_SIGMOID op exists, so relu6(x + 3) / 6 is never fused into HARD_SWISH: "xnnpack" keeps it as is
        form = "native" if self.formulation == "xnnpack" else self.formulation
        return _clip_0_6(x, form) * (1.0 / 6.0)

    def get_config(self):
        return {**super().get_config(), "formulation": self.formulation}


@keras.saving.register_keras_serializable(package="sigmawatch")
class PixelNormalize(layers.Layer):
    """RGB pixels in [0, 255] -> (x / 255 - mean) / std per channel, inside the graph (one MUL + ADD)."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def call(self, x):
        scale = ops.convert_to_tensor([1.0 / (255.0 * s) for s in self.std], dtype=x.dtype)
        offset = ops.convert_to_tensor([-m / s for m, s in zip(self.mean, self.std)], dtype=x.dtype)
        return x * scale + offset

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="sigmawatch")
class ChannelSplit(layers.Layer):
    """Split the last axis into groups: 2-4 equal groups give one SPLIT op (XNNPACK int8 takes it),
    more equal groups give static slices, unequal ones SPLIT_V (XNNPACK int8 does not take SPLIT_V)."""

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(s) for s in sizes]

    def call(self, x):
        if len(set(self.sizes)) == 1 and len(self.sizes) <= 4:   # XNNPACK's SPLIT takes 2, 3 or 4 outputs
            return ops.split(x, len(self.sizes), axis=-1)
        if len(set(self.sizes)) == 1:                            # more groups: static slices (delegated too)
            n = self.sizes[0]
            return [x[..., i * n:(i + 1) * n] for i in range(len(self.sizes))]
        bounds = [sum(self.sizes[:i + 1]) for i in range(len(self.sizes) - 1)]
        return ops.split(x, bounds, axis=-1)

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[:-1]) + (s,) for s in self.sizes]

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes}


@keras.saving.register_keras_serializable(package="sigmawatch")
class NearestUpsample(layers.Layer):
    """Nearest-neighbour upsampling by an integer factor, as a transposed convolution with a fixed identity
    kernel (each input pixel copied into a factor x factor block): the same function as
    ``UpSampling2D(interpolation="nearest")``, which Keras 3 traces as RESHAPE + TILE. XNNPACK does not take
    TILE (nor RESIZE_NEAREST_NEIGHBOR) in int8, so either would split the graph; TRANSPOSE_CONV is taken by
    XNNPACK and by the Edge TPU, and with an identity kernel its int8 output equals its input. No weights."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        if self.factor < 1:
            raise ValueError(f"upsampling factor {factor!r} must be a positive integer")

    def call(self, x):
        if self.factor == 1:
            return x
        import numpy as np
        channels = int(x.shape[-1])
        kernel = np.zeros((self.factor, self.factor, channels, channels), np.float32)
        kernel[:, :, np.arange(channels), np.arange(channels)] = 1.0
        return ops.conv_transpose(x, ops.convert_to_tensor(kernel, dtype=x.dtype), strides=self.factor,
                                  padding="valid")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h * self.factor, None if w is None else w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def activation(x, name: str, hard_swish: str = "native", layer_name: str | None = None):
    """Apply a named activation: relu, relu6, swish, hard_swish, sigmoid, hard_sigmoid."""
    if name == "relu":
        return layers.ReLU(name=layer_name)(x)
    if name == "relu6":
        return layers.ReLU(6.0, name=layer_name)(x)
    if name == "swish":
        return layers.Activation("swish", name=layer_name)(x)
    if name == "sigmoid":
        return layers.Activation("sigmoid", name=layer_name)(x)
    if name == "hard_swish":
        return HardSwish(hard_swish, name=layer_name)(x)
    if name == "hard_sigmoid":
        return HardSigmoid(hard_swish, name=layer_name)(x)
    raise ValueError(f"unknown activation {name!r}")


def batch_norm(x, name: str, epsilon: float = 1e-3, momentum: float = 0.99):
    return layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)(x)


FUSABLE = ("relu", "relu6")   # the converter fuses these into the conv; XNNPACK int8 leaves a standalone RELU out


def _finish(outs, name: str, act: str | None):
    """Concat the groups; a fusable activation was applied per group (same function, elementwise)."""
    y = layers.Concatenate(name=f"{name}_concat")(outs)
    return activation(y, act) if act and act not in FUSABLE else y


def grouped_pointwise(x, filters: int, groups: int, name: str, use_bias: bool = False, bn: bool = True,
                      act: str | None = None):
    """1x1 conv (+ BatchNorm); with groups > 1 the input and output channels are split into equal groups,
    one conv each. BN is per channel, so applying it per group before the concat is the same function and
    lets the converter fold it into each conv (after a concat it would stay as int8 MUL + ADD)."""
    if groups == 1:
        y = layers.Conv2D(filters, 1, padding="same", use_bias=use_bias, name=name)(x)
        y = batch_norm(y, f"{name}_bn") if bn else y
        return activation(y, act) if act else y
    in_sizes = split_channels(int(x.shape[-1]), groups)
    out_sizes = split_channels(filters, groups)
    parts = ChannelSplit(in_sizes, name=f"{name}_split")(x)
    outs = []
    for i, (p, o) in enumerate(zip(parts, out_sizes)):
        y = layers.Conv2D(o, 1, padding="same", use_bias=use_bias, name=f"{name}_g{i}")(p)
        y = batch_norm(y, f"{name}_g{i}_bn") if bn else y
        outs.append(activation(y, act) if act in FUSABLE else y)
    return _finish(outs, name, act)


def mixed_depthwise(x, kernel_sizes, stride: int, name: str, bn: bool = True, act: str | None = None):
    """Mixed depthwise conv (MixConv) (+ BatchNorm per group, see grouped_pointwise): channels split into
    equal groups, one kernel size each."""
    if len(kernel_sizes) == 1:
        y = layers.DepthwiseConv2D(kernel_sizes[0], strides=stride, padding="same", use_bias=False, name=name)(x)
        y = batch_norm(y, f"{name}_bn") if bn else y
        return activation(y, act) if act else y
    sizes = split_channels(int(x.shape[-1]), len(kernel_sizes))
    parts = ChannelSplit(sizes, name=f"{name}_split")(x)
    outs = []
    for p, k in zip(parts, kernel_sizes):
        y = layers.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False, name=f"{name}_k{k}")(p)
        y = batch_norm(y, f"{name}_k{k}_bn") if bn else y
        outs.append(activation(y, act) if act in FUSABLE else y)
    return _finish(outs, name, act)


def squeeze_excite(x, reduced: int, name: str, act: str = "relu", gate: str = "sigmoid", hard_swish: str = "native"):
    """Global average pool -> 1x1 conv (reduced) -> act -> 1x1 conv -> gate -> multiply the input."""
    channels = int(x.shape[-1])
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = layers.Conv2D(reduced, 1, padding="same", name=f"{name}_reduce")(s)
    s = activation(s, act, hard_swish)
    s = layers.Conv2D(channels, 1, padding="same", name=f"{name}_expand")(s)
    s = activation(s, gate, hard_swish)
    return layers.Multiply(name=f"{name}_mul")([x, s])


def image_input(input_size, batch_size: int | None = 1, name: str = "image"):
    """RGB pixels in [0, 255]; static batch 1 for export, None for training."""
    h, w = int(input_size[0]), int(input_size[1])
    return keras.Input(shape=(h, w, 3), batch_size=batch_size, name=name)
