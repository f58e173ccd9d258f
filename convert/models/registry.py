"""Registry of named classifiers and the two entry points every other part uses:

    build_classifier(name, input_size=(h, w), num_classes=1000, weights=None|"imagenet"|path, **options)
    build_features(name, input_size=(h, w), width=1.0, weights=None) -> keras.Model with 3 outputs
                                                                        at strides 8, 16, 32

Every model takes RGB pixels in [0, 255] (float32) of static shape (batch, H, W, 3), batch 1 by default;
normalization is inside the graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras

from edge.contract.errors import ConfigError, InputError
from convert.models import mixnet, mobilenetv3
from convert.models.layers import HARD_SWISH_FORMULATIONS, image_input

FEATURE_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str                     # "mobilenetv3" | "mixnet"
    variant: str
    description: str
    default_input: tuple[int, int] = (224, 224)
    options: dict = field(default_factory=dict)   # option -> default
    imagenet: bool = False          # Keras publishes ImageNet weights for (some configurations of) it


MODELS: dict[str, ModelInfo] = {
    "mobilenetv3_small": ModelInfo("mobilenetv3_small", "mobilenetv3", "small",
                                   "MobileNetV3-Small (Keras reference layout)",
                                   options={"alpha": 1.0, "minimalistic": False, "hard_swish": "native"},
                                   imagenet=True),
    "mobilenetv3_large": ModelInfo("mobilenetv3_large", "mobilenetv3", "large",
                                   "MobileNetV3-Large (Keras reference layout)",
                                   options={"alpha": 1.0, "minimalistic": False, "hard_swish": "native"},
                                   imagenet=True),
    "mixnet_s": ModelInfo("mixnet_s", "mixnet", "s", "MixNet-S (mixed depthwise conv, block strings)",
                          options={"width": 1.0}),
    "mixnet_m": ModelInfo("mixnet_m", "mixnet", "m", "MixNet-M (mixed depthwise conv, block strings)",
                          options={"width": 1.0}),
}
# Short names accepted on the command line.
ALIASES = {"mnv3s": "mobilenetv3_small", "mnv3l": "mobilenetv3_large", "mixnet-s": "mixnet_s", "mixnet-m": "mixnet_m"}


def get_info(name: str) -> ModelInfo:
    key = ALIASES.get(name, name)
    if key not in MODELS:
        raise ConfigError(f"unknown architecture {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[key]


def _options(info: ModelInfo, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to {info.name}; "
                          f"its options are: {', '.join(info.options) or 'none'}")
    merged = {**info.options, **{k: v for k, v in options.items() if v is not None}}
    if "hard_swish" in merged and merged["hard_swish"] not in HARD_SWISH_FORMULATIONS:
        raise ConfigError(f"hard_swish={merged['hard_swish']!r}; expected one of {HARD_SWISH_FORMULATIONS}")
    for key in ("alpha", "width"):
        if key in merged and not (0.1 <= float(merged[key]) <= 4.0):
            raise ConfigError(f"{key}={merged[key]!r} is out of range (0.1 .. 4.0)")
    return merged


def _check_size(input_size, multiple_of_32: bool = False) -> tuple[int, int]:
    try:
        h, w = (int(input_size[0]), int(input_size[1]))
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"input_size {input_size!r} must be (height, width)") from None
    if h < 32 or w < 32:
        raise ConfigError(f"input size {h}x{w}: height and width must be at least 32 (the networks downsample by 32)")
    if multiple_of_32 and (h % 32 or w % 32):
        raise ConfigError(f"input size {h}x{w}: feature extractors need multiples of 32 so the stride-8/16/32 "
                          "maps line up, e.g. 256x256 or 320x320")
    return h, w


def _trunk(info: ModelInfo, inputs, opts: dict[str, Any]):
    if info.family == "mobilenetv3":
        cfg = mobilenetv3.MobileNetV3Config(info.variant, float(opts["alpha"]), bool(opts["minimalistic"]),
                                            opts["hard_swish"])
        x, taps = mobilenetv3.build_trunk(inputs, cfg)
        return cfg, x, taps
    cfg = mixnet.MixNetConfig(info.variant, float(opts["width"]))
    x, taps = mixnet.build_trunk(inputs, cfg)
    return cfg, x, taps


def build_classifier(name: str, input_size=(224, 224), num_classes: int = 1000, weights: str | Path | None = None,
                     *, batch_size: int | None = 1, dropout: float = 0.2, activation: str = "softmax",
                     **options) -> keras.Model:
    """A classifier whose output layer is named 'predictions' (softmax probabilities by default)."""
    info = get_info(name)
    opts = _options(info, options)
    h, w = _check_size(input_size)
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes={num_classes!r} must be at least 1")
    inputs = image_input((h, w), batch_size)
    cfg, x, _ = _trunk(info, inputs, opts)
    trunk = keras.Model(inputs, x, name=f"{info.name}_trunk")
    if info.family == "mobilenetv3":
        out = mobilenetv3.build_head(x, cfg, int(num_classes), dropout, activation)
    else:
        out = mixnet.build_head(x, int(num_classes), dropout, activation)
    model = keras.Model(inputs, out, name=info.name)
    if weights is not None:
        if str(weights) == "imagenet":
            load_imagenet(info, cfg, model if int(num_classes) == 1000 else trunk, include_top=int(num_classes) == 1000)
        else:
            load_weights_file(model, weights)
    return model


def build_features(name: str, input_size=(256, 256), width: float = 1.0, weights: str | Path | None = None,
                   *, batch_size: int | None = 1, **options) -> keras.Model:
    """Backbone with a list of three outputs at strides 8, 16, 32 (for a YOLO neck).
    Stride 32 is the full trunk output (what the 'no top' ImageNet weights cover)."""
    info = get_info(name)
    key = "alpha" if info.family == "mobilenetv3" else "width"
    opts = _options(info, {key: width, **options})
    h, w = _check_size(input_size, multiple_of_32=True)
    inputs = image_input((h, w), batch_size)
    cfg, x, taps = _trunk(info, inputs, opts)
    missing = [s for s in FEATURE_STRIDES if s not in taps]
    if missing:
        raise ConfigError(f"{info.name} has no feature map at stride(s) {missing}")
    model = keras.Model(inputs, [taps[s] for s in FEATURE_STRIDES], name=f"{info.name}_features")
    if weights is not None:
        if str(weights) == "imagenet":
            load_imagenet(info, cfg, keras.Model(inputs, x), include_top=False)
        else:
            load_weights_file(model, weights)
    return model


def feature_maps(name: str, inputs, width: float = 1.0, **options) -> list:
    """The backbone built directly on ``inputs`` (no nested model): tensors at strides 8, 16, 32. A detector
    built this way is one flat graph, which channel pruning (convert.prune) walks layer by layer."""
    info = get_info(name)
    key = "alpha" if info.family == "mobilenetv3" else "width"
    opts = _options(info, {key: width, **options})
    _check_size(tuple(inputs.shape[1:3]), multiple_of_32=True)
    _, _, taps = _trunk(info, inputs, opts)
    missing = [s for s in FEATURE_STRIDES if s not in taps]
    if missing:
        raise ConfigError(f"{info.name} has no feature map at stride(s) {missing}")
    return [taps[s] for s in FEATURE_STRIDES]


def load_weights_file(model: keras.Model, path: str | Path) -> None:
    """A local Keras weights file (.weights.h5 from model.save_weights, or a legacy .h5)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist; pass an existing Keras weights file "
                         "(.weights.h5 or .h5), 'imagenet', or leave --weights out for random initialization")
    try:
        model.load_weights(str(path))
    except Exception as exc:  # keras raises ValueError/KeyError/OSError variously
        raise InputError(f"weights file {path} does not fit {model.name}: {type(exc).__name__}: {exc}. "
                         "Build the same architecture/options (and number of classes) the weights were "
                         "saved from") from exc


def load_imagenet(info: ModelInfo, cfg, model: keras.Model, include_top: bool) -> None:
    """Download (or take from ~/.keras/models) Keras' ImageNet weights and load them."""
    if not info.imagenet:
        raise ConfigError(f"no ImageNet weights are published for {info.name} in a Keras layout; use random "
                          "initialization (no --weights) and fine-tune, or a local weights file")
    try:
        file_name, file_hash = mobilenetv3.imagenet_weights_file(cfg, include_top)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    url = mobilenetv3.imagenet_base_url() + file_name
    try:
        path = keras.utils.get_file(file_name, url, cache_subdir="models", file_hash=file_hash)
    except Exception as exc:
        raise InputError(f"could not download ImageNet weights {url} ({type(exc).__name__}: {exc}). This needs "
                         f"network access once (the file is then cached in ~/.keras/models/{file_name}); offline, "
                         "copy that file there or pass --weights PATH to a local weights file") from exc
    load_weights_file(model, path)
