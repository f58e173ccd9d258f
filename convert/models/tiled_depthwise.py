"""Large depthwise kernels as tiles that XNNPACK runs on its fast kernels (the same function).

Measured with ai-edge-litert 2.3.0 on x86 (AVX-512), 1 thread: XNNPACK's depthwise convolution has fast
kernels for up to 9 and up to 25 taps (3x3, 5x5, 3x7, 7x3, 1x7 ...: 0.4-1.3 ns per output value); a kernel of
more taps (5x7, 6x6, 7x7, 9x9, 11x11) takes a path 15-20x slower per value in float32 and another 1.5-2x slower
in int8 (7x7 on 28x28x120: float32 1.9 ms, int8 3.0 ms; 5x5: 0.13 / 0.12 ms). MixNet's 7x7, 9x9 and 11x11
groups took 9 of the 14.5 ms of the whole int8 MixNet-S at 224x224, which is why its int8 model was no faster
than float32.

A SAME depthwise conv with a k x k kernel is the sum, over a tiling of the kernel into rectangles of <= 25 taps,
of VALID depthwise convs with each tile as kernel, each on the input padded (or cropped) so that the tile's
taps read the pixels they read in the whole kernel. In TFLite: PAD (zero = the int8 zero point), at most one
STRIDED_SLICE per tile where a tile lies wholly on one side of the kernel's centre, DEPTHWISE_CONV_2D per tile,
ADD to sum them -- all taken by XNNPACK in int8 and on the Edge TPU's op table. The bias (and a folded
BatchNorm) goes into the first tile, where the converter fuses it into the convolution.

Pure-Python planning (``plan_tiles``, ``tile_padding``) is separate from the Keras layer so it can be tested alone.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import keras
from keras import ops

FAST_TAPS = (9, 25)          # XNNPACK's fast depthwise kernel sizes (taps); anything larger takes the slow path
TILE_COST = 8                # per-tile overhead (PAD, ADD) in tap-equivalents of compute, from the measurements


@dataclass(frozen=True)
class Tile:
    rows: tuple[int, int]    # [start, stop) of the kernel's rows
    cols: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows[1] - self.rows[0], self.cols[1] - self.cols[0]


def needs_tiling(kernel_size) -> bool:
    kh, kw = kernel_size
    return kh * kw > FAST_TAPS[-1]


def _cost(tiles: list[Tile]) -> int:
    total = 0
    for t in tiles:
        taps = t.shape[0] * t.shape[1]
        total += next(f for f in FAST_TAPS if taps <= f) + TILE_COST
    return total


def _grid(k: int, step: int) -> list[tuple[int, int]]:
    return [(a, min(a + step, k)) for a in range(0, k, step)]


def plan_tiles(kernel_size) -> list[Tile]:
    """The cheapest grid tiling of a (kh, kw) kernel into tiles of <= 25 taps (by the cost model above;
    7x7: 7x3 + 7x3 + 7x1, 9x9: 5x5 + 5x4 + 4x5 + 4x4, 11x11: 11x2 x5 + 11x1). A kernel of <= 25 taps is one tile."""
    kh, kw = (int(v) for v in kernel_size)
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel size {kernel_size!r} must be positive")
    if not needs_tiling((kh, kw)):
        return [Tile((0, kh), (0, kw))]
    best = None
    for a, b in itertools.product(range(1, kh + 1), range(1, kw + 1)):
        if a * b > FAST_TAPS[-1]:
            continue
        tiles = [Tile(r, c) for r in _grid(kh, a) for c in _grid(kw, b)]
        key = (_cost(tiles), len(tiles))
        if best is None or key < best[0]:
            best = (key, tiles)
    return best[1]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, padding before) of TensorFlow's SAME padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


def tile_padding(size: int, kernel: int, stride: int, start: int, stop: int) -> tuple[int, int]:
    """Padding (before, after) of one axis for a VALID conv of kernel taps [start, stop) to give the same outputs
    as those taps inside a SAME conv of the whole kernel; a negative value means crop that many pixels."""
    if not 0 <= start < stop <= kernel:
        raise ValueError(f"tile [{start}, {stop}) is not inside a kernel of {kernel}")
    out, before = same_padding(size, kernel, stride)
    pad_before = before - start
    pad_after = stride * (out - 1) + (stop - start) - size - pad_before
    return pad_before, pad_after


def tile_reads_input(size: int, kernel: int, stride: int, start: int, stop: int) -> bool:
    """False when taps [start, stop) only ever fall on SAME padding (a kernel larger than a small input):
    such a tile adds zero and is left out."""
    out, before = same_padding(size, kernel, stride)
    first, last = start - before, stride * (out - 1) + stop - 1 - before
    return first <= size - 1 and last >= 0


@keras.saving.register_keras_serializable(package="sigmawatch")
class TiledDepthwiseConv2D(keras.layers.Layer):
    """A SAME depthwise conv (depth multiplier 1, with bias) computed as the sum of its kernel's tiles
    (``plan_tiles``): the same function as ``DepthwiseConv2D(kernel_size, strides, padding="same")``."""

    def __init__(self, kernel_size, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = tuple(int(v) for v in (kernel_size if isinstance(kernel_size, (tuple, list))
                                                  else (kernel_size, kernel_size)))
        self.strides = tuple(int(v) for v in (strides if isinstance(strides, (tuple, list)) else (strides, strides)))
        self.tiles = plan_tiles(self.kernel_size)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(shape=self.kernel_size + (channels, 1), name="kernel", initializer="zeros")
        self.bias = self.add_weight(shape=(channels,), name="bias", initializer="zeros")

    def _tile_input(self, x, tile: Tile):
        h, w = int(x.shape[1]), int(x.shape[2])
        (t, b), (l, r) = (tile_padding(h, self.kernel_size[0], self.strides[0], *tile.rows),
                          tile_padding(w, self.kernel_size[1], self.strides[1], *tile.cols))
        if min(t, b, l, r) < 0:
            x = x[:, max(0, -t):h - max(0, -b), max(0, -l):w - max(0, -r), :]
        if max(t, b, l, r) > 0:
            x = ops.pad(x, [[0, 0], [max(0, t), max(0, b)], [max(0, l), max(0, r)], [0, 0]])
        return x

    def _reads_input(self, x, tile: Tile) -> bool:
        h, w = int(x.shape[1]), int(x.shape[2])
        return (tile_reads_input(h, self.kernel_size[0], self.strides[0], *tile.rows)
                and tile_reads_input(w, self.kernel_size[1], self.strides[1], *tile.cols))

    def call(self, x):
        if x.shape[1] is None or x.shape[2] is None:
            raise ValueError(f"{self.name}: a tiled depthwise conv needs a fixed input height and width, got "
                             f"{tuple(x.shape)}; build the model with a fixed input size")
        y = None
        for tile in filter(lambda t: self._reads_input(x, t), self.tiles):
            kernel = self.kernel[tile.rows[0]:tile.rows[1], tile.cols[0]:tile.cols[1]]
            part = ops.depthwise_conv(self._tile_input(x, tile), kernel, strides=self.strides, padding="valid")
            y = part + self.bias if y is None else y + part     # bias in the first tile: fused into its conv
        return y

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else -(-h // self.strides[0]), None if w is None else -(-w // self.strides[1]), c)

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size), "strides": list(self.strides)}
