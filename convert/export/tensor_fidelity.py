"""Per-tensor fidelity: where in the graph an int8 model drifts from the float one.

Both flatbuffers (the float32 and the int8 conversion of the same Keras model) run on the same images in
interpreters that keep every tensor (no buffer reuse); tensors are paired by name, the int8 values
dequantized, and each pair gets an SNR (signal power over error power, in dB, over all images). An output
SNR says how far the model drifted; this says where: the stem, a hard-swish, a residual sum.

Tensor names survive conversion for activations (the converter joins the names of fused ops with ';'),
so most activations pair up; constants and the int8 model's extra QUANTIZE tensors are skipped.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class TensorFidelity:
    index: int                 # tensor index in the int8 model (graph order, roughly)
    name: str
    snr_db: float
    float_range: tuple[float, float]
    int8_range: tuple[float, float]   # what the int8 scale/zero point can represent

    def short_name(self, width: int = 70) -> str:
        name = self.name.split(";")[0]
        return name if len(name) <= width else "..." + name[-(width - 3):]


def _activations(flatbuffer: bytes, images: Sequence[np.ndarray]) -> tuple[dict[str, list[np.ndarray]], dict]:
    from ai_edge_litert.interpreter import Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # preserve_all_tensors "is intended for debugging"
        interpreter = Interpreter(model_content=bytes(flatbuffer), num_threads=1,
                                  experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    values: dict[str, list[np.ndarray]] = {}
    for image in images:
        x = np.asarray(image, np.float32)
        if inp["dtype"] in (np.uint8, np.int8):          # the input's own quantization (pixels: scale 1)
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], x[np.newaxis])
        interpreter.invoke()
        for name, d in details.items():
            try:
                v = interpreter.get_tensor(d["index"])
            except ValueError:
                continue
            if v.dtype in (np.int8, np.uint8):
                scale, zero = d["quantization"]
                if not scale:
                    continue
                v = (v.astype(np.float64) - zero) * scale
            elif v.dtype != np.float32:
                continue
            values.setdefault(name, []).append(np.asarray(v, np.float64).copy())
    return values, details


def tensor_fidelity(float_flatbuffer: bytes, int8_flatbuffer: bytes,
                    images: Sequence[np.ndarray]) -> list[TensorFidelity]:
    """SNR of every activation the two models share, in the int8 model's tensor order. ``images``: float32
    arrays of the model's input shape (pixels for the project's models); an int8 model's integer input gets
    them quantized with its own scale and zero point."""
    ref, _ = _activations(float_flatbuffer, images)
    got, details = _activations(int8_flatbuffer, images)
    rows = []
    for name, q in got.items():
        f = ref.get(name)
        if f is None or len(f) != len(q) or f[0].shape != q[0].shape or f[0].ndim < 2:
            continue
        a = np.concatenate([x.ravel() for x in f])
        b = np.concatenate([x.ravel() for x in q])
        if a.size == 0 or not np.any(a):
            continue
        noise = float(np.sum((a - b) ** 2))
        snr = float("inf") if noise == 0 else 10.0 * np.log10(float(np.sum(a * a)) / noise)
        scale, zero = details[name]["quantization"]
        info = np.iinfo(details[name]["dtype"])
        rows.append(TensorFidelity(int(details[name]["index"]), name, snr, (float(a.min()), float(a.max())),
                                   ((info.min - zero) * scale, (info.max - zero) * scale)))
    rows.sort(key=lambda r: r.index)
    return rows


def format_rows(rows: Sequence[TensorFidelity], limit: int | None = None) -> str:
    """One line per tensor: SNR, the float range seen, the range the int8 scale covers, and the name."""
    lines = [f"{'SNR dB':>7}  {'float range':>20}  {'int8 covers':>20}  tensor"]
    for r in rows[:limit] if limit else rows:
        lines.append(f"{r.snr_db:7.1f}  [{r.float_range[0]:8.3f},{r.float_range[1]:8.3f}]  "
                     f"[{r.int8_range[0]:8.3f},{r.int8_range[1]:8.3f}]  {r.short_name()}")
    return "\n".join(lines)
