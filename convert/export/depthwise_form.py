"""Which graph an export gives large depthwise kernels: "tiled" (the default) or "direct".

  direct  one DEPTHWISE_CONV_2D per kernel, as built. Kernels of more than 25 taps (MixNet's 7x7, 9x9, 11x11)
          run on XNNPACK's slow path: 15-20x slower per value than a 5x5, and int8 another 1.5-2x slower than
          float32 there.
  tiled   each such kernel (with the BatchNormalization right after it folded in) as the sum of tiles of <= 25
          taps (convert.models.tiled_depthwise): the same function, all on XNNPACK's fast kernels, float32 and
          int8 alike. Kernels of <= 25 taps are left as they are.

The rewrite happens on a copy of the model for the conversion only: the trained model, its saved file and
its layer names stay as they are, and the export's fidelity is measured against the untouched model.
"""
from __future__ import annotations

from collections import Counter

import keras
import numpy as np

from edge.contract.errors import ExportError
from convert.models.tiled_depthwise import TiledDepthwiseConv2D, needs_tiling

DEPTHWISE_FORMS = ("tiled", "direct")
DEFAULT_DEPTHWISE_FORM = "tiled"


class _FoldedBatchNorm(keras.layers.Layer):
    """Stands in for a BatchNormalization folded into the tiles before it: passes its input through (and
    accepts the BatchNormalization's call arguments, e.g. ``mask``)."""

    def call(self, x, **kwargs):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def _tileable(layer) -> bool:
    return (isinstance(layer, keras.layers.DepthwiseConv2D) and layer.padding == "same"
            and tuple(layer.dilation_rate) == (1, 1) and int(layer.depth_multiplier) == 1
            and layer.activation in (None, keras.activations.linear) and needs_tiling(layer.kernel_size))


def _only_consumer(layer, model: keras.Model):
    """The one layer of ``model`` that reads ``layer``'s output, or None."""
    nodes = [n for n in layer._outbound_nodes if n.operation in model.layers]
    return nodes[0].operation if len(nodes) == 1 else None


def _folded_weights(dw, bn) -> tuple[np.ndarray, np.ndarray]:
    kernel = np.asarray(dw.kernel.numpy(), np.float64)
    bias = np.asarray(dw.bias.numpy(), np.float64) if dw.use_bias else np.zeros(kernel.shape[2])
    if bn is not None:
        var = np.asarray(bn.moving_variance.numpy(), np.float64)
        mean = np.asarray(bn.moving_mean.numpy(), np.float64)
        gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(var)
        beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros_like(var)
        scale = gamma / np.sqrt(var + bn.epsilon)
        kernel = kernel * scale[None, None, :, None]
        bias = (bias - mean) * scale + beta
    return kernel.astype(np.float32), bias.astype(np.float32)


def _is_channel_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, [-1], 3, [3])


def tile_large_depthwise(model: keras.Model) -> tuple[keras.Model, Counter]:
    """A copy of ``model`` computing the same function with every SAME DepthwiseConv2D of more than 25 taps
    (and a BatchNormalization that is its only consumer) replaced by a TiledDepthwiseConv2D; every other layer
    is shared with ``model``. Returns (model, Counter of replaced kernel sizes like '7x7'); the model itself
    when there is nothing to replace."""
    targets = [l for l in model.layers if _tileable(l)]
    nested = [l for l in model.layers if isinstance(l, keras.Model)]
    if not targets and not nested:
        return model, Counter()
    replaced: Counter = Counter()
    folded: dict[int, keras.layers.Layer] = {}
    new_layers: dict[int, keras.layers.Layer] = {}
    for dw in targets:
        bn = _only_consumer(dw, model)
        single_calls = len(dw._inbound_nodes) == 1 and bn is not None and len(bn._inbound_nodes) == 1
        bn = bn if _is_channel_bn(bn) and single_calls else None   # a shared layer keeps its BatchNorm
        tiled = TiledDepthwiseConv2D(dw.kernel_size, dw.strides, name=f"{dw.name}_tiled")
        tiled.build((None, None, None, int(dw.kernel.shape[2])))
        tiled.set_weights(list(_folded_weights(dw, bn)))
        new_layers[id(dw)] = tiled
        if bn is not None:
            folded[id(bn)] = _FoldedBatchNorm(name=f"{bn.name}_folded")
        replaced["x".join(str(k) for k in dw.kernel_size)] += 1
    inner: dict[int, keras.Model] = {}
    for sub in nested:
        copy, counts = tile_large_depthwise(sub)
        if counts:
            inner[id(sub)] = copy
            replaced.update(counts)
    if not replaced:
        return model, Counter()

    def clone(layer):
        return new_layers.get(id(layer)) or folded.get(id(layer)) or inner.get(id(layer)) or layer

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except Exception as exc:   # keras raises several types for graphs it cannot rebuild
        raise ExportError(f"could not rewrite the large depthwise kernels of {model.name} ({type(exc).__name__}: "
                          f"{exc}); export with --depthwise direct") from exc
    return copy, replaced


def count_large_kernels(model: keras.Model) -> Counter:
    """Kernel sizes (like '7x7') of the depthwise convs the tiled form replaces, nested models included."""
    counts = Counter("x".join(str(k) for k in l.kernel_size) for l in model.layers if _tileable(l))
    for sub in model.layers:
        if isinstance(sub, keras.Model):
            counts.update(count_large_kernels(sub))
    return counts


def apply(model: keras.Model, form: str) -> tuple[keras.Model, Counter]:
    """(the model to convert, the large kernels it has) for ``form`` ('tiled' or 'direct')."""
    if form not in DEPTHWISE_FORMS:
        raise ExportError(f"depthwise form {form!r}; choose one of {', '.join(DEPTHWISE_FORMS)}")
    if form == "direct":
        return model, count_large_kernels(model)
    return tile_large_depthwise(model)


def describe(form: str, replaced: Counter) -> str:
    if not replaced:
        return "no depthwise kernel above 25 taps"
    sizes = ", ".join(f"{k} x{v}" for k, v in sorted(replaced.items(), key=lambda kv: int(kv[0].split("x")[0])))
    n = sum(replaced.values())
    kernels = f"{n} kernel{'s' if n != 1 else ''} above 25 taps ({sizes})"
    if form == "tiled":
        return f"{form}: {kernels} as tiles of <= 25 taps"
    return f"{form}: {kernels} on XNNPACK's slow path"
