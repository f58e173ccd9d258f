"""Network Slimming for the classifiers: sparsity training (L1 on BatchNorm scales), pruning, fine-tuning.

Liu et al., "Learning Efficient Convolutional Networks through Network Slimming" (ICCV 2017): train with
lambda * sum|gamma| added to the loss so unimportant channels' BatchNorm scales go to ~0, remove the channels with
the smallest scales (one global threshold), fine-tune what is left. Here on an image-folder dataset, with the
same data pipeline and BatchNorm handling as ``convert-model train``. With Adam the penalty is applied as its
proximal step after each update (|gamma| shrinks by lr x lambda), decoupled from Adam's normalization like
AdamW's weight decay: added to the loss, Adam rescales it to the size of the data gradient and, measured on the
demo detector, 400 steps at lambda 1e-4 moved the median |gamma| from 1.007 to 0.994 (no sparsity at all).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import keras
import numpy as np

from convert.models.bn_calibration import calibrate_batchnorm


@dataclass
class Phase:
    epochs: int
    lr: float
    l1: float = 0.0


def fit(model: keras.Model, train_seq, phase: Phase, gammas=(), log=print) -> list[float]:
    """Adam on cross-entropy, BatchNorm in training mode; with ``phase.l1`` every step also shrinks each |gamma| of
    ``gammas`` by lr x l1 (the L1 penalty's proximal step, decoupled from Adam: Adam would rescale a penalty
    gradient to the size of the data gradient and the scales would hardly move). Then BatchNorm statistics are
    recomputed from the un-augmented training images. Returns the mean loss per epoch."""
    import tensorflow as tf
    opt = keras.optimizers.Adam(phase.lr)
    ce = keras.losses.SparseCategoricalCrossentropy()
    variables = model.trainable_variables
    gammas = list(gammas)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = ce(y, model(x, training=True))
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        if gammas and phase.l1:   # proximal L1 step on the BatchNorm scales, decoupled from Adam (as in AdamW)
            for g in gammas:
                g.assign(tf.sign(g) * tf.maximum(tf.abs(g) - phase.lr * phase.l1, 0.0))
        return loss

    history = []
    for epoch in range(phase.epochs):
        losses = [float(step(*train_seq[i])) for i in range(len(train_seq))]
        train_seq.on_epoch_end()
        history.append(float(np.mean(losses)))
        log(f"  epoch {epoch + 1}/{phase.epochs}: loss {history[-1]:.4f}" + (f" (+ L1 {phase.l1:g})" if phase.l1 else ""))
    plain = _plain(train_seq)
    calibrate_batchnorm(model, (plain[i][0] for i in range(len(plain))))
    return history


def _plain(seq):
    from convert.data.folder_dataset import FolderSequence
    return FolderSequence(seq.items, (seq.h, seq.w), seq.batch_size, seq.resize)


def accuracy(model: keras.Model, seq) -> float:
    hits = total = 0
    for i in range(len(seq)):
        x, y = seq[i]
        pred = np.argmax(np.asarray(model(x, training=False)), axis=-1)
        hits += int(np.sum(pred == y))
        total += len(y)
    return hits / max(1, total)


def set_bn_momentum(model: keras.Model, momentum: float = 0.9) -> None:
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, momentum)


def progress_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
