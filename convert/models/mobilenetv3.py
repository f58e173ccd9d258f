"""MobileNetV3-Small/-Large, layer for layer as keras.applications defines them (same layer names,
same order of weighted layers), so Keras' ImageNet weight files load into these models.

Differences from keras.applications, none of which touches a weight:
  - hard-swish/hard-sigmoid are HardSwish/HardSigmoid layers with a selectable formulation
    (``hard_swish="xnnpack"`` keeps an int8 model in one XNNPACK partition, see layers.py);
  - static batch (1 by default), and the builder also returns the feature maps at strides 8/16/32.
Input: RGB pixels in [0, 255]; the Rescaling layer maps them to [-1, 1] in the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

from keras import layers

from convert.models.layers import HardSigmoid, activation as act_layer

BN = dict(epsilon=1e-3, momentum=0.999)


def depth(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of 8, never more than 10% down (tensorflow/models slim rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# (expansion, out channels, kernel ("k" = 5, or 3 when minimalistic), stride, SE, activation ("hs" = model act))
SMALL = [
    (1, 16, 3, 2, True, "relu"), (72 / 16, 24, 3, 2, False, "relu"), (88 / 24, 24, 3, 1, False, "relu"),
    (4, 40, "k", 2, True, "hs"), (6, 40, "k", 1, True, "hs"), (6, 40, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"), (3, 48, "k", 1, True, "hs"), (6, 96, "k", 2, True, "hs"),
    (6, 96, "k", 1, True, "hs"), (6, 96, "k", 1, True, "hs"),
]
LARGE = [
    (1, 16, 3, 1, False, "relu"), (4, 24, 3, 2, False, "relu"), (3, 24, 3, 1, False, "relu"),
    (3, 40, "k", 2, True, "relu"), (3, 40, "k", 1, True, "relu"), (3, 40, "k", 1, True, "relu"),
    (6, 80, 3, 2, False, "hs"), (2.5, 80, 3, 1, False, "hs"), (2.3, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"), (6, 112, 3, 1, True, "hs"), (6, 112, 3, 1, True, "hs"),
    (6, 160, "k", 2, True, "hs"), (6, 160, "k", 1, True, "hs"), (6, 160, "k", 1, True, "hs"),
]
LAST_POINT = {"small": 1024, "large": 1280}


@dataclass(frozen=True)
class MobileNetV3Config:
    variant: str = "small"          # "small" | "large"
    alpha: float = 1.0
    minimalistic: bool = False
    hard_swish: str = "native"      # "native" | "xnnpack"


def _correct_pad(size, kernel: int):
    adjust = (1 - size[0] % 2, 1 - size[1] % 2)
    c = kernel // 2
    return ((c - adjust[0], c), (c - adjust[1], c))


def _se_block(x, filters: int, prefix: str, hard_swish: str):
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(x)
    s = layers.Conv2D(depth(filters * 0.25), 1, padding="same", name=f"{prefix}squeeze_excite_conv")(s)
    s = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(s)
    s = layers.Conv2D(filters, 1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(s)
    s = HardSigmoid(hard_swish, name=f"{prefix}squeeze_excite_gate")(s)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([x, s])


def _inverted_res_block(x, expansion, filters, kernel, stride, se, act, block_id, hard_swish):
    shortcut = x
    prefix = "expanded_conv_"
    infilters = int(x.shape[-1])
    if block_id:
        prefix = f"expanded_conv_{block_id}_"
        x = layers.Conv2D(depth(infilters * expansion), 1, padding="same", use_bias=False, name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(name=f"{prefix}expand_bn", **BN)(x)
        x = act_layer(x, act, hard_swish)
    if stride == 2:
        x = layers.ZeroPadding2D(_correct_pad(x.shape[1:3], kernel), name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(name=f"{prefix}depthwise_bn", **BN)(x)
    x = act_layer(x, act, hard_swish)
    if se:
        x = _se_block(x, depth(infilters * expansion), prefix, hard_swish)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(name=f"{prefix}project_bn", **BN)(x)
    if stride == 1 and infilters == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def build_trunk(inputs, cfg: MobileNetV3Config):
    """Input -> (final feature map, {stride: last tensor at that stride}). The final feature map is
    what keras.applications returns with include_top=False (the 'no_top' weights cover exactly it)."""
    if cfg.variant not in LAST_POINT:
        raise ValueError(f"MobileNetV3 variant {cfg.variant!r}; expected 'small' or 'large'")
    kernel, model_act, se_on = (3, "relu", False) if cfg.minimalistic else (5, "hard_swish", True)
    x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="conv")(x)
    x = layers.BatchNormalization(name="conv_bn", **BN)(x)
    x = act_layer(x, model_act, cfg.hard_swish)
    stride, taps = 2, {}
    table = SMALL if cfg.variant == "small" else LARGE
    for block_id, (exp, ch, k, s, se, act) in enumerate(table):
        if s == 2:
            taps[stride] = x
            stride *= 2
        x = _inverted_res_block(x, exp, depth(ch * cfg.alpha), kernel if k == "k" else k, s, se and se_on,
                                model_act if act == "hs" else act, block_id, cfg.hard_swish)
    x = layers.Conv2D(depth(int(x.shape[-1]) * 6), 1, padding="same", use_bias=False, name="conv_1")(x)
    x = layers.BatchNormalization(name="conv_1_bn", **BN)(x)
    x = act_layer(x, model_act, cfg.hard_swish)
    taps[stride] = x
    return x, taps


def build_head(x, cfg: MobileNetV3Config, num_classes: int, dropout: float = 0.2, activation: str = "softmax"):
    """keras.applications' top: pool -> conv_2 -> act -> dropout -> logits conv -> flatten -> predictions."""
    last_point = LAST_POINT[cfg.variant]
    if cfg.alpha > 1.0:
        last_point = depth(last_point * cfg.alpha)
    model_act = "relu" if cfg.minimalistic else "hard_swish"
    x = layers.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
    x = layers.Conv2D(last_point, 1, padding="same", use_bias=True, name="conv_2")(x)
    x = act_layer(x, model_act, cfg.hard_swish)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Conv2D(num_classes, 1, padding="same", name="logits")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Activation(activation or "linear", name="predictions")(x)


def imagenet_weights_file(cfg: MobileNetV3Config, include_top: bool) -> tuple[str, str]:
    """(file name, md5) of Keras' ImageNet weights for this configuration; ValueError if none exist."""
    from keras.src.applications import mobilenet_v3 as ref
    key = f"{cfg.variant}{'_minimalistic' if cfg.minimalistic else ''}_224_{cfg.alpha}_float"
    if key not in ref.WEIGHTS_HASHES:
        raise ValueError(f"Keras has no ImageNet weights for MobileNetV3 {cfg.variant} alpha={cfg.alpha} "
                         f"minimalistic={cfg.minimalistic}; available: alpha 0.75 or 1.0, minimalistic only at 1.0")
    if include_top:
        return f"weights_mobilenet_v3_{key}.h5", ref.WEIGHTS_HASHES[key][0]
    return f"weights_mobilenet_v3_{key}_no_top_v2.h5", ref.WEIGHTS_HASHES[key][1]


def imagenet_base_url() -> str:
    from keras.src.applications import mobilenet_v3 as ref
    return ref.BASE_WEIGHT_PATH
