"""Data-dependent BatchNorm statistics: run images through the model in training mode with the
moving averages set to the running mean of per-image batch statistics. Gives an untrained network
realistic activation ranges (outputs not ~0), which int8 calibration and fidelity checks need;
also useful after changing the input size of a trained model."""
from __future__ import annotations

from typing import Iterable

import keras
import numpy as np


def calibrate_batchnorm(model: keras.Model, images: Iterable[np.ndarray]) -> int:
    """``images``: float32 (H, W, 3) images or (N, H, W, 3) batches in [0, 255] at the model's input size
    (batches need a model built with a free batch size). Returns how many items were used."""
    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    n = 0
    try:
        for n, image in enumerate(images, start=1):
            for layer in bns:
                layer.momentum = 1.0 - 1.0 / n     # cumulative average over images
            x = np.asarray(image, np.float32)
            model(x if x.ndim == 4 else x[np.newaxis], training=True)
    finally:
        for layer, momentum in zip(bns, saved):
            layer.momentum = momentum
    if n == 0:
        raise ValueError("no images to calibrate BatchNorm statistics with")
    return n
