"""Compact block strings (timm style) decoded in pure Python: no TensorFlow import, testable alone.

A block string is underscore-separated tokens, the first naming the block type:

    ir_r1_k3.5.7_a1.1_p1.1_s2_e6_c40_se0.5_nsw

    ds | ir      block type: depthwise-separable, inverted residual (MBConv)
    r<int>       repeats (the stride applies to the first repeat only)
    k<k.k...>    depthwise kernel sizes; several = mixed depthwise conv (equal channel groups)
    a<1.1...>    expansion 1x1 conv split into that many groups (grouped pointwise conv)
    p<1.1...>    projection 1x1 conv split into that many groups
    s<int>       stride of the first repeat
    e<float>     expansion ratio
    c<int>       output channels
    se<float>    squeeze-excitation ratio, relative to the block's input width
    n<act>       activation: nre (ReLU), nr6 (ReLU6), nsw (swish), nhs (hard-swish); default: the model's
    noskip       no residual connection even when shapes allow one

Unknown or malformed tokens raise ``ValueError`` naming the token and the block string.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

BLOCK_TYPES = ("ds", "ir")
ACTIVATIONS = {"re": "relu", "r6": "relu6", "sw": "swish", "hs": "hard_swish"}


@dataclass(frozen=True)
class BlockSpec:
    block_type: str
    out_channels: int
    kernel_sizes: tuple[int, ...] = (3,)
    stride: int = 1
    expansion: float = 1.0
    repeats: int = 1
    expand_groups: int = 1
    project_groups: int = 1
    se_ratio: float | None = None
    activation: str | None = None   # None: the model's default activation
    skip: bool = True

    def repeated(self) -> list["BlockSpec"]:
        """One spec per repeat: the first keeps the stride, the others have stride 1."""
        first = replace(self, repeats=1)
        return [first] + [replace(first, stride=1) for _ in range(self.repeats - 1)]


def _error(token: str, block: str, why: str) -> ValueError:
    return ValueError(f"bad token {token!r} in block string {block!r}: {why}")


def _int(token: str, text: str, block: str, minimum: int = 1) -> int:
    if not re.fullmatch(r"\d+", text):
        raise _error(token, block, "expected a whole number after the letter")
    value = int(text)
    if value < minimum:
        raise _error(token, block, f"must be at least {minimum}")
    return value


def _float(token: str, text: str, block: str) -> float:
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        raise _error(token, block, "expected a number like 6 or 0.25 after the letters")
    value = float(text)
    if value <= 0:
        raise _error(token, block, "must be positive")
    return value


def _int_list(token: str, text: str, block: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\d+(\.\d+)*", text):
        raise _error(token, block, "expected sizes separated by dots, e.g. k3.5.7")
    values = tuple(int(v) for v in text.split("."))
    if any(v < 1 for v in values):
        raise _error(token, block, "sizes must be at least 1")
    return values


def parse_block(block: str) -> BlockSpec:
    """Decode one block string into a BlockSpec."""
    if not isinstance(block, str) or not block.strip():
        raise ValueError(f"empty block string {block!r}")
    tokens = block.strip().split("_")
    block_type = tokens[0]
    if block_type not in BLOCK_TYPES:
        raise _error(block_type, block, f"unknown block type, expected one of {', '.join(BLOCK_TYPES)}")
    fields: dict = {}
    seen: set[str] = set()
    for token in tokens[1:]:
        if not token:
            raise _error(token, block, "empty token (two underscores in a row?)")
        # Longest prefixes first so 'se0.5' is not read as 's' + 'e0.5'.
        if token == "noskip":
            key, fields["skip"] = "noskip", False
        elif token.startswith("se"):
            key, fields["se_ratio"] = "se", _float(token, token[2:], block)
        elif token.startswith("n"):
            key = "n"
            act = ACTIVATIONS.get(token[1:])
            if act is None:
                raise _error(token, block, "unknown activation, expected one of "
                             + ", ".join("n" + k for k in ACTIVATIONS))
            fields["activation"] = act
        elif token[0] == "r":
            key, fields["repeats"] = "r", _int(token, token[1:], block)
        elif token[0] == "k":
            key, fields["kernel_sizes"] = "k", _int_list(token, token[1:], block)
            if any(k % 2 == 0 for k in fields["kernel_sizes"]):
                raise _error(token, block, "kernel sizes must be odd")
        elif token[0] == "a":
            key, fields["expand_groups"] = "a", _groups(token, block)
        elif token[0] == "p":
            key, fields["project_groups"] = "p", _groups(token, block)
        elif token[0] == "s":
            key, fields["stride"] = "s", _int(token, token[1:], block)
            if fields["stride"] > 2:
                raise _error(token, block, "stride must be 1 or 2")
        elif token[0] == "e":
            key, fields["expansion"] = "e", _float(token, token[1:], block)
        elif token[0] == "c":
            key, fields["out_channels"] = "c", _int(token, token[1:], block)
        else:
            raise _error(token, block, "unknown option (known: r, k, a, p, s, e, c, se, n.., noskip)")
        if key in seen:
            raise _error(token, block, "option given twice")
        seen.add(key)
    if "out_channels" not in fields:
        raise ValueError(f"block string {block!r} has no output channels token (e.g. c40)")
    if block_type == "ds" and fields.get("expansion", 1.0) != 1.0:
        raise _error(f"e{fields['expansion']:g}", block, "a ds block has no expansion; use e1 or an ir block")
    return BlockSpec(block_type=block_type, **fields)


def _groups(token: str, block: str) -> int:
    sizes = _int_list(token, token[1:], block)
    if any(s != 1 for s in sizes):
        raise _error(token, block, "grouped pointwise convs take 1x1 kernels only, e.g. a1.1")
    return len(sizes)


def decode_arch(stages: Sequence[Iterable[str]]) -> list[list[BlockSpec]]:
    """A list of stages, each a list of block strings -> a list of stages of BlockSpecs (repeats expanded)."""
    if not stages:
        raise ValueError("an architecture needs at least one stage of block strings")
    decoded = []
    for i, stage in enumerate(stages):
        if isinstance(stage, str):
            raise ValueError(f"stage {i} is a string ({stage!r}); each stage must be a list of block strings")
        blocks = [spec for s in stage for spec in parse_block(s).repeated()]
        if not blocks:
            raise ValueError(f"stage {i} has no blocks")
        decoded.append(blocks)
    return decoded


def split_channels(channels: int, groups: int) -> list[int]:
    """Channel counts per group: equal when divisible (one SPLIT op), else the first group takes the rest."""
    if groups < 1 or channels < groups:
        raise ValueError(f"cannot split {channels} channels into {groups} groups")
    sizes = [channels // groups] * groups
    sizes[0] += channels - sum(sizes)
    return sizes
