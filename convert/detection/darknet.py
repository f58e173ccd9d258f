"""Import darknet models (.cfg + .weights): YOLOv3 and the official Gaussian YOLOv3 release.

Supported sections: [net], [convolutional] (batch_normalize, filters, size, stride, pad, groups=1,
activation leaky|linear|relu|logistic), [shortcut] (from, activation linear), [route] (layers), [upsample]
(stride), [maxpool], [yolo], [Gaussian_yolo]. The convolution before each [yolo]/[Gaussian_yolo] becomes
the contract's two outputs (``s{s}_sigmoid`` with channels reordered to mu_x, mu_y, sigma_x, sigma_y,
sigma_w, sigma_h, objectness, classes, and ``s{s}_linear`` with mu_w, mu_h) by splitting its filters.

Weights file: int32 major, minor, revision; ``seen`` as int64 when major*10+minor >= 2 (else int32); then per
convolution in cfg order: BN beta, gamma, rolling mean, rolling variance (or the bias without BN), then the
kernel as (filters, in_channels, size, size) float32.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.contract.errors import InputError

SECTIONS = {"net", "convolutional", "shortcut", "route", "upsample", "maxpool", "yolo", "gaussian_yolo"}
ACTIVATIONS = {"leaky", "linear", "relu", "logistic"}
# darknet entry indices per anchor -> contract order
SIGMOID_ENTRIES = {"gaussian_yolo": [0, 2, 1, 3, 5, 7, 8], "yolo": [0, 1, 4]}
LINEAR_ENTRIES = {"gaussian_yolo": [4, 6], "yolo": [2, 3]}
BOX_ENTRIES = {"gaussian_yolo": 8, "yolo": 4}


@dataclass
class Section:
    kind: str
    options: dict[str, str]
    line: int

    def get(self, key: str, default=None, cast=int):
        if key not in self.options:
            if default is None:
                raise InputError(f"cfg line {self.line}: [{self.kind}] needs '{key}='")
            return default
        try:
            return cast(self.options[key])
        except ValueError:
            raise InputError(f"cfg line {self.line}: [{self.kind}] {key}={self.options[key]!r} is not a valid "
                             f"{cast.__name__}") from None

    def ints(self, key: str) -> list[int]:
        try:
            return [int(v) for v in self.options[key].split(",") if v.strip()]
        except KeyError:
            raise InputError(f"cfg line {self.line}: [{self.kind}] needs '{key}='") from None
        except ValueError:
            raise InputError(f"cfg line {self.line}: [{self.kind}] {key}={self.options[key]!r} must be "
                             "comma-separated integers") from None


def parse_cfg(text: str, source: str = "cfg") -> list[Section]:
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise InputError(f"{source}:{lineno}: malformed section header {raw.strip()!r}")
            kind = line[1:-1].strip().lower()
            if kind not in SECTIONS:
                raise InputError(f"{source}:{lineno}: unsupported section [{line[1:-1]}]; supported: "
                                 f"{', '.join(sorted(SECTIONS))}")
            sections.append(Section(kind, {}, lineno))
            continue
        if "=" not in line:
            raise InputError(f"{source}:{lineno}: expected 'key=value', got {raw.strip()!r}")
        if not sections:
            raise InputError(f"{source}:{lineno}: option before the first [section]")
        key, value = (p.strip() for p in line.split("=", 1))
        sections[-1].options[key] = value
    if not sections or sections[0].kind != "net":
        raise InputError(f"{source}: a darknet cfg must start with a [net] section")
    return sections


@dataclass
class ConvSpec:
    index: int            # layer index (after [net])
    filters: int
    size: int
    in_channels: int
    batch_normalize: bool
    head_kind: str | None = None   # "yolo" / "gaussian_yolo" when it feeds a detection layer

    @property
    def weight_count(self) -> int:
        n = self.filters * (4 if self.batch_normalize else 1)
        return n + self.filters * self.in_channels * self.size * self.size


@dataclass
class HeadSpec:
    kind: str
    stride: int
    anchors: list[list[float]]
    classes: int
    conv_index: int
    channels: int


@dataclass
class Plan:
    """Shapes of every layer, the convolutions in weight order and the heads (no TensorFlow needed)."""
    input_hw: tuple[int, int]
    convs: list[ConvSpec] = field(default_factory=list)
    heads: list[HeadSpec] = field(default_factory=list)
    shapes: list[tuple[int, int, int]] = field(default_factory=list)  # (h, w, c) per layer

    @property
    def weight_count(self) -> int:
        return sum(c.weight_count for c in self.convs)


def _ref(sec: Section, i: int, value: int, n_done: int) -> int:
    j = i + value if value < 0 else value
    if not 0 <= j < n_done:
        raise InputError(f"cfg line {sec.line}: [{sec.kind}] refers to layer {value}, which does not exist before layer {i}")
    return j


def plan(sections: list[Section], input_hw: tuple[int, int] | None = None) -> Plan:
    net = sections[0]
    h = input_hw[0] if input_hw else net.get("height", 416)
    w = input_hw[1] if input_hw else net.get("width", 416)
    c = net.get("channels", 3)
    if h % 32 or w % 32:
        raise InputError(f"input size {h}x{w}: darknet YOLO models need multiples of 32")
    p = Plan((h, w))
    layers = sections[1:]
    for i, sec in enumerate(layers):
        if sec.kind == "convolutional":
            filters, size, stride = sec.get("filters"), sec.get("size", 1), sec.get("stride", 1)
            pad = size // 2 if sec.get("pad", 0) else sec.get("padding", 0)
            if sec.get("groups", 1) != 1:
                raise InputError(f"cfg line {sec.line}: grouped convolutions (groups>1) are not supported")
            act = sec.get("activation", "logistic", str)
            if act not in ACTIVATIONS:
                raise InputError(f"cfg line {sec.line}: activation {act!r} is not supported ({', '.join(sorted(ACTIVATIONS))})")
            nxt = layers[i + 1].kind if i + 1 < len(layers) else None
            head = nxt if nxt in ("yolo", "gaussian_yolo") else None
            p.convs.append(ConvSpec(i, filters, size, c, bool(sec.get("batch_normalize", 0)), head))
            h, w, c = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1, filters
        elif sec.kind == "shortcut":
            j = _ref(sec, i, sec.get("from"), i)
            if p.shapes[j] != (h, w, c):
                raise InputError(f"cfg line {sec.line}: [shortcut] adds {p.shapes[j]} to {(h, w, c)}: shapes differ")
        elif sec.kind == "route":
            refs = [_ref(sec, i, v, i) for v in sec.ints("layers")]
            hw = {p.shapes[j][:2] for j in refs}
            if len(hw) != 1:
                raise InputError(f"cfg line {sec.line}: [route] joins layers of different sizes {sorted(hw)}")
            h, w = hw.pop()
            c = sum(p.shapes[j][2] for j in refs)
        elif sec.kind == "upsample":
            s = sec.get("stride", 2)
            h, w = h * s, w * s
        elif sec.kind == "maxpool":
            size, stride = sec.get("size", 2), sec.get("stride", 2)
            h, w = (h + stride - 1) // stride, (w + stride - 1) // stride
        elif sec.kind in ("yolo", "gaussian_yolo"):
            if i == 0 or layers[i - 1].kind != "convolutional":
                raise InputError(f"cfg line {sec.line}: [{sec.kind}] must follow a [convolutional] layer")
            classes = sec.get("classes")
            mask = sec.ints("mask")
            flat = sec.ints("anchors")
            if len(flat) % 2:
                raise InputError(f"cfg line {sec.line}: anchors must be w,h pairs")
            pairs = [flat[k:k + 2] for k in range(0, len(flat), 2)]
            if len(mask) != 3 or any(not 0 <= m < len(pairs) for m in mask):
                raise InputError(f"cfg line {sec.line}: mask {mask} must pick 3 of the {len(pairs)} anchors")
            need = 3 * (BOX_ENTRIES[sec.kind] + 1 + classes)
            if c != need:
                raise InputError(f"cfg line {sec.line}: [{sec.kind}] with {classes} classes needs {need} input channels "
                                 f"(3 x ({BOX_ENTRIES[sec.kind]} + 1 + {classes})); the convolution before it has filters={c}")
            # anchors are input pixels at any network size (darknet divides them by the current net w/h)
            p.heads.append(HeadSpec(sec.kind, p.input_hw[0] // h, [[float(v) for v in pairs[m]] for m in mask],
                                    classes, i - 1, c))
        p.shapes.append((h, w, c))
    if not p.heads:
        raise InputError("the cfg has no [yolo] or [Gaussian_yolo] layer: it is not a detector")
    if len({hd.kind for hd in p.heads}) != 1 or len({hd.classes for hd in p.heads}) != 1:
        raise InputError("all detection layers must be of one kind with one class count")
    if len({hd.stride for hd in p.heads}) != len(p.heads):
        raise InputError("two detection layers share a stride; the contract keys outputs by stride")
    return p


def read_weights(path: str | Path, p: Plan) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """(header (major, minor, revision, seen), all weights as float32), checking the count against the plan."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    data = path.read_bytes()
    if len(data) < 12:
        raise InputError(f"{path}: too short for a darknet header ({len(data)} bytes)")
    major, minor, revision = np.frombuffer(data[:12], np.int32)
    wide = (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
    off = 20 if wide else 16
    if len(data) < off:
        raise InputError(f"{path}: too short for a darknet header ({len(data)} bytes)")
    seen = int(np.frombuffer(data[12:off], np.int64 if wide else np.int32)[0])
    body = data[off:]
    if len(body) % 4:
        raise InputError(f"{path}: {len(body)} bytes after the header is not a whole number of float32 values")
    values = np.frombuffer(body, np.float32)
    need = p.weight_count
    if values.size < need:
        raise InputError(f"{path} is truncated: the cfg needs {need:,} weights, the file holds {values.size:,} "
                         f"({need - values.size:,} missing); re-download it or check that cfg and weights belong together")
    if values.size > need:
        raise InputError(f"{path} holds {values.size:,} weights but the cfg needs {need:,} ({values.size - need:,} extra): "
                         "the weights belong to a different cfg (other class count or layers)")
    return (int(major), int(minor), int(revision), seen), values


def write_weights(path: str | Path, values: np.ndarray, header=(0, 2, 0, 0)) -> None:
    """Write a darknet weights file (major, minor, revision, seen as int64, then float32 values)."""
    major, minor, revision, seen = header
    with open(path, "wb") as fh:
        fh.write(np.array([major, minor, revision], np.int32).tobytes())
        fh.write(np.array([seen], np.int64 if (major * 10 + minor) >= 2 else np.int32).tobytes())
        fh.write(np.asarray(values, np.float32).tobytes())


def split_conv_weights(spec: ConvSpec, values: np.ndarray) -> dict[str, np.ndarray]:
    """One convolution's slice of the weights file -> named arrays (kernel in Keras (k, k, in, out) layout)."""
    f, k = spec.filters, spec.size
    off = 0
    out = {}
    names = ("beta", "gamma", "mean", "var") if spec.batch_normalize else ("bias",)
    for name in names:
        out[name] = values[off:off + f]
        off += f
    kernel = values[off:off + f * spec.in_channels * k * k].reshape(f, spec.in_channels, k, k)
    out["kernel"] = kernel.transpose(2, 3, 1, 0)
    return out
