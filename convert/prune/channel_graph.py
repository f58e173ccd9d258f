"""Which channels of a Keras functional model can be removed together (the dependency graph of channel pruning).

Every output channel of a convolution or dense layer gets an id. Element-wise layers (BatchNorm, activations,
depthwise convolutions, padding, pooling, upsampling, dropout) pass their input's ids through; a residual Add and
a squeeze-excitation Multiply tie channel i of their inputs together (union-find); Concatenate joins id lists,
ChannelSplit slices them. A *unit* is one union-find class: channels that live or die together. Removing a unit
deletes an output channel of every convolution that produces one of its ids and the matching input slice of
every layer that reads it, which leaves the function of the rest of the network intact.

A unit is prunable only if its ids are produced by convolutions, at least one of them is normalized by
BatchNorm (Network Slimming's importance is that BatchNorm's |gamma|; a squeeze-excitation's expand convolution
has none but is tied to the channels it gates), and it never reaches a model input or output or a layer this
module does not understand. Its importance is the largest |gamma| among its BatchNorm channels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers

from convert.models.layers import ChannelSplit, HardSigmoid, HardSwish, NearestUpsample, PixelNormalize

# layers whose output channel i depends only on input channel i (ids pass through)
ELEMENTWISE = (layers.BatchNormalization, layers.ReLU, layers.Activation, layers.LeakyReLU, layers.DepthwiseConv2D,
               layers.ZeroPadding2D, layers.GlobalAveragePooling2D, layers.Dropout, layers.Flatten, HardSwish,
               HardSigmoid, NearestUpsample, layers.Rescaling, PixelNormalize)
TIES = (layers.Add, layers.Multiply)


class _UnionFind:
    def __init__(self):
        self.parent: list[int] = []

    def make(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Unit:
    """Channels removed together."""
    root: int
    ids: list[int] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)          # layers producing one of its ids
    gammas: list[float] = field(default_factory=list)       # |gamma| of its BatchNorm channels
    blocked: str | None = None                             # why it cannot be pruned

    @property
    def importance(self) -> float:
        return max(self.gammas) if self.gammas else float("inf")

    @property
    def prunable(self) -> bool:
        return self.blocked is None and bool(self.gammas)


@dataclass
class ChannelGraph:
    model: keras.Model
    tensor_ids: dict[int, list[int]]           # id(KerasTensor) -> channel ids
    layer_io: dict[str, tuple[list[list[int]], list[list[int]]]]   # layer name -> (input id lists, output id lists)
    units: dict[int, Unit]                     # root -> unit
    uf: _UnionFind

    def unit_of(self, channel_id: int) -> Unit:
        return self.units[self.uf.find(channel_id)]

    def prunable_units(self) -> list[Unit]:
        return [u for u in self.units.values() if u.prunable]

    def bn_layers(self) -> list[layers.BatchNormalization]:
        """BatchNorm layers with at least one channel in a prunable unit (their gammas get the L1 penalty)."""
        out = []
        for layer in self.model.layers:
            if isinstance(layer, layers.BatchNormalization):
                ids = self.layer_io[layer.name][1][0]
                if any(self.unit_of(i).prunable for i in ids):
                    out.append(layer)
        return out


def _nodes(model: keras.Model):
    """The model's nodes in execution order."""
    by_depth = model._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def analyze(model: keras.Model) -> ChannelGraph:
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        raise ValueError(f"{model.name} contains a nested model; build it flat to prune it "
                         "(convert.models.registry.feature_maps builds a backbone inline)")
    uf = _UnionFind()
    tensor_ids: dict[int, list[int]] = {}
    layer_io: dict[str, tuple[list[list[int]], list[list[int]]]] = {}
    blocked: dict[int, str] = {}            # channel id -> reason
    sources: dict[int, str] = {}
    bn_of: dict[int, list[float]] = {}

    def fresh(n: int, source: str | None = None) -> list[int]:
        ids = [uf.make() for _ in range(n)]
        for i in ids:
            if source:
                sources[i] = source
        return ids

    for x in model.inputs:
        tensor_ids[id(x)] = fresh(int(x.shape[-1]))
        for i in tensor_ids[id(x)]:
            blocked[i] = "model input"
    for node in _nodes(model):
        layer = node.operation
        ins = [tensor_ids[id(t)] for t in node.input_tensors]
        outs_t = node.outputs
        if isinstance(layer, (layers.Conv2D, layers.Dense)) and not isinstance(layer, layers.DepthwiseConv2D):
            if isinstance(layer, layers.Conv2D) and getattr(layer, "groups", 1) != 1:
                outs = [fresh(int(outs_t[0].shape[-1]))]
                for i in ins[0] + outs[0]:
                    blocked[i] = f"grouped convolution {layer.name}"
            else:
                outs = [fresh(int(outs_t[0].shape[-1]), layer.name)]
        elif isinstance(layer, layers.Conv2DTranspose):
            outs = [fresh(int(outs_t[0].shape[-1]))]
            for i in ins[0] + outs[0]:
                blocked[i] = f"transposed convolution {layer.name}"
        elif isinstance(layer, ELEMENTWISE):
            outs = [list(ins[0])]
            if isinstance(layer, layers.BatchNormalization):
                gamma = np.abs(np.asarray(layer.gamma.numpy() if layer.gamma is not None else np.ones(len(ins[0]))))
                for i, g in zip(ins[0], gamma):
                    bn_of.setdefault(i, []).append(float(g))
        elif isinstance(layer, TIES):
            width = int(outs_t[0].shape[-1])
            full = [ids for ids in ins if len(ids) == width]
            for ids in full[1:]:
                for a, b in zip(full[0], ids):
                    uf.union(a, b)
            outs = [list(full[0])]
        elif isinstance(layer, layers.Concatenate):
            if layer.axis not in (-1, 3):
                raise ValueError(f"{layer.name}: only channel concatenation is supported")
            outs = [[i for ids in ins for i in ids]]
        elif isinstance(layer, ChannelSplit):
            outs, start = [], 0
            for size in layer.sizes:
                outs.append(ins[0][start:start + size])
                start += size
        else:
            outs = [fresh(int(t.shape[-1])) for t in outs_t]
            for i in [i for ids in ins for i in ids] + [i for ids in outs for i in ids]:
                blocked[i] = f"layer {layer.name} ({type(layer).__name__}) is not understood by the pruner"
        for t, ids in zip(outs_t, outs):
            if int(t.shape[-1]) != len(ids):
                raise ValueError(f"{layer.name}: channel bookkeeping failed ({len(ids)} ids, {t.shape[-1]} channels)")
            tensor_ids[id(t)] = ids
        layer_io[layer.name] = (ins, outs)
    for y in model.outputs:
        for i in tensor_ids[id(y)]:
            blocked[i] = "model output"
    units: dict[int, Unit] = {}
    for i in range(len(uf.parent)):
        root = uf.find(i)
        unit = units.setdefault(root, Unit(root))
        unit.ids.append(i)
        if i in sources:
            unit.sources.add(sources[i])
        else:
            unit.blocked = unit.blocked or "channel not produced by a convolution"
        unit.gammas += bn_of.get(i, [])
        if i in blocked:
            unit.blocked = blocked[i]
    return ChannelGraph(model, tensor_ids, layer_io, units, uf)
