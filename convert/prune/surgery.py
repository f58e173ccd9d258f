"""Choose the channels to remove and build the smaller model with the surviving weights.

Selection is Network Slimming's: one global threshold on the importance (BatchNorm |gamma| after L1-sparsity
training) over all prunable units, so layers whose scales the sparsity penalty drove to ~0 lose the most.
Two constraints are then restored from the removed set, most important first:
  - every producing convolution keeps at least ``min_keep`` of its channels (no layer vanishes);
  - every ChannelSplit keeps equal group sizes: XNNPACK takes int8 SPLIT with equal parts, SPLIT_V (unequal)
    would split the graph (MixNet's mixed depthwise and grouped pointwise convolutions).

The pruned model is a clone of the original with smaller ``filters`` / split sizes and sliced weights; every
other layer is the same. ``channel_overrides`` is the recipe (layer name -> filters or split sizes) that a
builder can re-apply (a detector stores it in its config).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from convert.models.layers import ChannelSplit
from convert.prune.channel_graph import ChannelGraph, analyze


@dataclass
class PrunePlan:
    graph: ChannelGraph
    removed: set[int]                 # unit roots

    def keep(self, ids: list[int]) -> list[int]:
        """Positions in ``ids`` that survive."""
        return [k for k, i in enumerate(ids) if self.graph.uf.find(i) not in self.removed]

    def channel_overrides(self) -> dict[str, int | list[int]]:
        out: dict[str, int | list[int]] = {}
        for layer in self.graph.model.layers:
            ins, outs = self.graph.layer_io.get(layer.name, ([], []))
            if isinstance(layer, ChannelSplit):
                sizes = [len(self.keep(ids)) for ids in outs]
                if sizes != list(layer.sizes):
                    out[layer.name] = sizes
            elif isinstance(layer, (layers.Conv2D, layers.Dense)) and not isinstance(layer, layers.DepthwiseConv2D):
                n = len(self.keep(outs[0]))
                if n != len(outs[0]):
                    out[layer.name] = n
        return out

    def removed_channels(self) -> int:
        return sum(len(self.graph.units[r].ids) for r in self.removed)


def plan_pruning(graph: ChannelGraph, ratio: float, min_keep: float = 0.25, min_channels: int = 8) -> PrunePlan:
    """Remove the ``ratio`` least important prunable units (global threshold), then restore what the
    constraints need."""
    if not 0 < ratio < 1:
        raise ValueError(f"prune ratio {ratio!r} must be between 0 and 1")
    units = sorted(graph.prunable_units(), key=lambda u: u.importance)
    if not units:
        raise ValueError(f"{graph.model.name} has no prunable channels (convolutions followed by BatchNorm)")
    removed = {u.root for u in units[:int(round(ratio * len(units)))]}
    plan = PrunePlan(graph, removed)
    importance = {u.root: u.importance for u in units}

    def restore(candidates: list[int], count: int) -> bool:
        best = sorted((r for r in set(candidates) if r in plan.removed), key=lambda r: -importance[r])[:count]
        plan.removed.difference_update(best)
        return bool(best)

    for _ in range(100):
        changed = False
        for layer in graph.model.layers:
            ins, outs = graph.layer_io.get(layer.name, ([], []))
            if isinstance(layer, (layers.Conv2D, layers.Dense)) and not isinstance(layer, layers.DepthwiseConv2D):
                ids = outs[0]
                need = min(len(ids), max(min_channels, math.ceil(min_keep * len(ids))))
                have = len(plan.keep(ids))
                if have < need:
                    changed |= restore([graph.uf.find(i) for i in ids], need - have)
            elif isinstance(layer, ChannelSplit):
                sizes = [len(plan.keep(ids)) for ids in outs]
                top = max(sizes)
                for ids, n in zip(outs, sizes):
                    if n < top:
                        changed |= restore([graph.uf.find(i) for i in ids], top - n)
        if not changed:
            return plan
    raise ValueError("could not satisfy the pruning constraints (equal split sizes, minimum channels per layer)")


def _slice_weights(layer, plan: PrunePlan, ins, outs) -> list[np.ndarray]:
    weights = [np.asarray(w) for w in layer.get_weights()]
    if not weights:
        return weights
    keep_in = plan.keep(ins[0]) if ins else []
    if isinstance(layer, layers.DepthwiseConv2D):
        return [weights[0][:, :, keep_in]] + [b[keep_in] for b in weights[1:]]
    if isinstance(layer, layers.Conv2D):
        keep_out = plan.keep(outs[0])
        return [weights[0][:, :, keep_in][..., keep_out]] + [b[keep_out] for b in weights[1:]]
    if isinstance(layer, layers.Dense):
        keep_out = plan.keep(outs[0])
        return [weights[0][keep_in][:, keep_out]] + [b[keep_out] for b in weights[1:]]
    if isinstance(layer, layers.BatchNormalization):
        return [w[keep_in] for w in weights]
    if all(len(plan.keep(ids)) == len(ids) for ids in ins):
        return weights                      # untouched by the pruning (e.g. a layer on the input)
    raise ValueError(f"cannot slice the weights of {layer.name} ({type(layer).__name__})")


def apply_overrides(model: keras.Model, overrides: dict) -> keras.Model:
    """A clone of ``model`` whose Conv2D/Dense layers named in ``overrides`` get that many filters/units and whose
    ChannelSplit layers get those sizes (fresh weights)."""
    def clone(layer):
        config = layer.get_config()
        if layer.name in overrides:
            if isinstance(layer, ChannelSplit):
                config["sizes"] = list(overrides[layer.name])
            elif isinstance(layer, layers.Dense):
                config["units"] = int(overrides[layer.name])
            else:
                config["filters"] = int(overrides[layer.name])
        return layer.__class__.from_config(config)
    return keras.models.clone_model(model, clone_function=clone)


def prune_model(model: keras.Model, plan: PrunePlan) -> keras.Model:
    """The pruned model with the surviving weights of ``model``."""
    pruned = apply_overrides(model, plan.channel_overrides())
    for layer in model.layers:
        if not layer.weights:
            continue
        ins, outs = plan.graph.layer_io.get(layer.name, ([], []))
        pruned.get_layer(layer.name).set_weights(_slice_weights(layer, plan, ins, outs))
    return pruned


def count_params(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def prune(model: keras.Model, ratio: float, **kwargs) -> tuple[keras.Model, PrunePlan]:
    plan = plan_pruning(analyze(model), ratio, **kwargs)
    return prune_model(model, plan), plan
