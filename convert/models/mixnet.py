"""MixNet-S / MixNet-M (Tan & Le, "MixConv", 2019) built from block strings.

Follows the reference implementation's structure (tensorflow/tpu mixnet, as re-expressed in timm):
stem conv 3x3/2 -> BN -> ReLU; blocks; head conv 1x1 -> 1536 -> BN -> ReLU; pool; dropout; dense.
  - mixed depthwise conv with equal channel groups per kernel size (one SPLIT op);
  - grouped pointwise convs ('a' expansion, 'p' projection) as split -> convs -> concat;
  - BatchNorm per channel group before each concat (same function; lets the converter fold it);
  - squeeze-excitation sized on the block's *input* width (round(in * se)), with the block's activation
    and a sigmoid gate;
  - ReLU in the early stages, swish where the block string says nsw.
Input: RGB pixels in [0, 255], normalized with the ImageNet mean/std inside the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

from keras import layers

from convert.blocks import BlockSpec, decode_arch
from convert.models.layers import (PixelNormalize, activation, batch_norm, grouped_pointwise, mixed_depthwise,
                                   squeeze_excite)

MIXNET_S = [
    ["ds_r1_k3_s1_e1_c16"],
    ["ir_r1_k3_a1.1_p1.1_s2_e6_c24", "ir_r1_k3_a1.1_p1.1_s1_e3_c24"],
    ["ir_r1_k3.5.7_s2_e6_c40_se0.5_nsw", "ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw"],
    ["ir_r1_k3.5.7_p1.1_s2_e6_c80_se0.25_nsw", "ir_r2_k3.5_p1.1_s1_e6_c80_se0.25_nsw"],
    ["ir_r1_k3.5.7_a1.1_p1.1_s1_e6_c120_se0.5_nsw", "ir_r2_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw"],
    ["ir_r1_k3.5.7.9.11_s2_e6_c200_se0.5_nsw", "ir_r2_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw"],
]
MIXNET_M = [
    ["ds_r1_k3_s1_e1_c24"],
    ["ir_r1_k3.5.7_a1.1_p1.1_s2_e6_c32", "ir_r1_k3_a1.1_p1.1_s1_e3_c32"],
    ["ir_r1_k3.5.7.9_s2_e6_c40_se0.5_nsw", "ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw"],
    ["ir_r1_k3.5.7_s2_e6_c80_se0.25_nsw", "ir_r3_k3.5.7.9_a1.1_p1.1_s1_e6_c80_se0.25_nsw"],
    ["ir_r1_k3_s1_e6_c120_se0.5_nsw", "ir_r3_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw"],
    ["ir_r1_k3.5.7.9_s2_e6_c200_se0.5_nsw", "ir_r3_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw"],
]
VARIANTS = {"s": (MIXNET_S, 16), "m": (MIXNET_M, 24)}
NUM_FEATURES = 1536


@dataclass(frozen=True)
class MixNetConfig:
    variant: str = "s"              # "s" | "m"
    width: float = 1.0              # channel multiplier
    default_activation: str = "relu"


def round_channels(channels: int, multiplier: float, divisor: int = 8) -> int:
    if multiplier == 1.0:
        return channels
    v = channels * multiplier
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _block(x, spec: BlockSpec, out_channels: int, name: str, default_act: str):
    act = spec.activation or default_act
    in_ch = int(x.shape[-1])
    shortcut = x
    if spec.block_type == "ir":
        mid = int(round(in_ch * spec.expansion))
        x = grouped_pointwise(x, mid, spec.expand_groups, f"{name}_expand", act=act)
    x = mixed_depthwise(x, spec.kernel_sizes, spec.stride, f"{name}_dw", act=act)
    if spec.se_ratio:
        x = squeeze_excite(x, max(1, int(round(in_ch * spec.se_ratio))), f"{name}_se", act=act)
    x = grouped_pointwise(x, out_channels, spec.project_groups, f"{name}_project")
    if spec.skip and spec.stride == 1 and in_ch == out_channels:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def build_trunk(inputs, cfg: MixNetConfig, arch=None):
    """Input -> (head feature map (1536 ch), {stride: last tensor at that stride})."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"MixNet variant {cfg.variant!r}; expected one of {sorted(VARIANTS)}")
    stages, stem = VARIANTS[cfg.variant]
    stages = decode_arch(arch or stages)
    x = PixelNormalize(name="normalize")(inputs)
    x = layers.Conv2D(round_channels(stem, cfg.width), 3, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = batch_norm(x, "stem_bn")
    x = activation(x, cfg.default_activation)
    stride, taps = 2, {}
    for si, stage in enumerate(stages):
        for bi, spec in enumerate(stage):
            if spec.stride == 2:
                taps[stride] = x
                stride *= 2
            x = _block(x, spec, round_channels(spec.out_channels, cfg.width), f"s{si}b{bi}", cfg.default_activation)
    x = layers.Conv2D(round_channels(NUM_FEATURES, cfg.width) if cfg.width > 1.0 else NUM_FEATURES, 1,
                      padding="same", use_bias=False, name="head_conv")(x)
    x = batch_norm(x, "head_bn")
    x = activation(x, cfg.default_activation)
    taps[stride] = x
    return x, taps


def build_head(x, num_classes: int, dropout: float = 0.2, activation_name: str = "softmax"):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation(activation_name or "linear", name="predictions")(x)
