"""How closely a converted model follows the Keras float model, measured on held-out images with the
interpreter the edge uses (edge.runtime.TFLiteModel): per output SNR (dB) and, for classifier outputs,
top-1 agreement."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge.runtime import TFLiteModel, dequantize


@dataclass
class OutputFidelity:
    name: str
    snr_db: float
    top1_agreement: float | None      # classifier outputs (1, C) only
    max_abs_error: float


def _keras_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    y = model(x, training=False)
    if isinstance(y, dict):
        return {k: np.asarray(v) for k, v in y.items()}
    if isinstance(y, (list, tuple)):
        return {n: np.asarray(v) for n, v in zip(model.output_names, y)}
    return {model.output_names[0]: np.asarray(y)}


def _pair_names(keras_names, tflite_names) -> dict[str, str]:
    """tflite name -> keras name."""
    if set(keras_names) == set(tflite_names):
        return {n: n for n in tflite_names}
    if len(keras_names) == 1 and len(tflite_names) == 1:
        return {tflite_names[0]: keras_names[0]}
    raise ValueError(f"cannot pair outputs: Keras {sorted(keras_names)} vs TFLite {sorted(tflite_names)}")


def measure_fidelity(keras_model, flatbuffer: bytes, images: Sequence[np.ndarray]) -> list[OutputFidelity]:
    """``images``: float32 (H, W, 3) in [0, 255]; both models get the same uint8-rounded pixels."""
    if not images:
        return []
    tfl = TFLiteModel(flatbuffer, threads=1)
    quant = tfl.output_quantization()
    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    agree: dict[str, list[bool]] = {}
    max_err: dict[str, float] = {}
    pairs = None
    for image in images:
        pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
        ref = _keras_outputs(keras_model, pixels.astype(np.float32)[np.newaxis])
        got = tfl.run(pixels)
        pairs = pairs or _pair_names(list(ref), list(got))
        for tname, kname in pairs.items():
            r = ref[kname].astype(np.float64).reshape(-1)
            q = dequantize(got[tname], *quant[tname]).astype(np.float64).reshape(-1)
            signal[tname] = signal.get(tname, 0.0) + float(np.sum(r * r))
            noise[tname] = noise.get(tname, 0.0) + float(np.sum((r - q) ** 2))
            max_err[tname] = max(max_err.get(tname, 0.0), float(np.max(np.abs(r - q))))
            if ref[kname].ndim == 2 and ref[kname].shape[-1] > 1:
                agree.setdefault(tname, []).append(int(np.argmax(r)) == int(np.argmax(q)))
    out = []
    for name in pairs:
        snr = float("inf") if noise[name] == 0 else 10.0 * np.log10(max(signal[name], 1e-30) / noise[name])
        top1 = float(np.mean(agree[name])) if name in agree else None
        out.append(OutputFidelity(name, snr, top1, max_err[name]))
    return out


# Below these a converted model no longer stands in for the float one: noise power above 3 % of the signal, or
# more than one held-out image in seven classified differently.
MIN_SNR_DB = 15.0
MIN_TOP1_AGREEMENT = 0.85


def fidelity_warnings(fidelity: Sequence[OutputFidelity], quantization: str) -> list[str]:
    """One warning per output whose measured fidelity is below MIN_SNR_DB or MIN_TOP1_AGREEMENT: the export is
    written anyway (the numbers are the user's to judge) but never silently."""
    out = []
    for f in fidelity:
        poor = []
        if f.snr_db < MIN_SNR_DB:
            poor.append(f"SNR {f.snr_db:.1f} dB < {MIN_SNR_DB:g} dB")
        if f.top1_agreement is not None and f.top1_agreement < MIN_TOP1_AGREEMENT:
            poor.append(f"top-1 agreement {f.top1_agreement:.1%} < {MIN_TOP1_AGREEMENT:.0%}")
        if poor:
            out.append(f"{quantization} fidelity of output {f.name!r} is poor ({', '.join(poor)} on held-out images): "
                       "the converted model does not behave like the float one; use more and more representative "
                       "calibration images and evaluate this export before deploying it")
    return out
