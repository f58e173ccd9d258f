"""Make a Keras model ready for conversion: static batch 1 and the XNNPACK-friendly hard-swish.

The hard-swish switch flips the ``formulation`` of every HardSwish/HardSigmoid layer (also inside
nested models, e.g. a detector's backbone) for the duration of the conversion: the layers have no
weights, the function is the same, only the traced graph changes (see convert.models.layers).
"""
from __future__ import annotations

import contextlib

import keras

from edge.contract.errors import ExportError
from convert.models.layers import HARD_SWISH_FORMULATIONS, HardSigmoid, HardSwish


def _all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


@contextlib.contextmanager
def hard_swish_formulation(model: keras.Model, formulation: str | None):
    """Temporarily set every HardSwish/HardSigmoid layer to ``formulation`` (None: leave as built)."""
    if formulation is not None and formulation not in HARD_SWISH_FORMULATIONS:
        raise ExportError(f"hard-swish formulation {formulation!r}; expected one of {HARD_SWISH_FORMULATIONS}")
    layers = [l for l in _all_layers(model) if isinstance(l, (HardSwish, HardSigmoid))]
    saved = [l.formulation for l in layers]
    try:
        if formulation is not None:
            for l in layers:
                l.formulation = formulation
        yield len(layers)
    finally:
        for l, f in zip(layers, saved):
            l.formulation = f


def input_shape(model: keras.Model) -> tuple:
    if len(model.inputs) != 1:
        raise ExportError(f"{model.name} has {len(model.inputs)} inputs; the project's models take one image")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise ExportError(f"{model.name} input shape {shape} is not (batch, H, W, 3) with a fixed H and W; "
                          "build it with a fixed input size")
    return shape


def with_static_batch(model: keras.Model) -> keras.Model:
    """The same model with batch 1 (the Edge TPU needs static shapes; a dynamic batch adds ops)."""
    shape = input_shape(model)
    if shape[0] == 1:
        return model
    inp = keras.Input(batch_shape=(1,) + shape[1:], name=model.inputs[0].name)
    try:
        clone = keras.models.clone_model(model, input_tensors=inp)
        clone.set_weights(model.get_weights())
    except Exception as exc:
        raise ExportError(f"could not rebuild {model.name} with a static batch of 1 ({exc}); build the model "
                          "with batch_size=1 before exporting") from exc
    return clone
