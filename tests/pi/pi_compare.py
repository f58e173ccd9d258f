"""Compare detections (or raw int8 outputs) of the emulated Pi against the x86 run of the same model and frames.

Why there is a tolerance, and how big
-------------------------------------
The frames are bit-identical on both sides (the test video is lossless FFV1, and OpenCV's resize gave
bit-identical model inputs on x86 and aarch64, OpenCV 5.0 and 4.10 alike: the probe checks it), so every
difference comes from the interpreter. Integer kernels are exact, but each layer requantizes its int32
accumulators to int8 with a rounding step whose implementation differs between kernel builds (XNNPACK's
NEON vs AVX paths, TFLite 2.14's kernels vs LiteRT 2.3's); a half-step rounding difference in one layer can
move the final output by a step or two. Measured on this machine: ai-edge-litert 2.3 aarch64 (Cortex-A72
model) vs x86 was bit-identical; tflite-runtime 2.14 aarch64 vs ai-edge-litert 2.3 x86 differed by up to
3 output steps on a few percent of the elements (and tflite-runtime 2.14 x86 vs aarch64 by at most 1).

So the tolerance is K output-quantization steps (K = 2 for the same runtime, 4 across runtime versions),
propagated through the decoding (edge.decode), per detection:
  * sigma_i, objectness:       K * s_sig                     (s_sig: scale of the s*_sigmoid outputs)
  * score = obj * cls * (1 - mean sigma): each factor <= 1 moves by <= K * s_sig  ->  3 * K * s_sig
  * box centre: mu_x moves K * s_sig cells of the largest stride -> K * s_sig * stride input pixels
  * box size:   w = anchor * exp(mu_w) -> relative change exp(K * s_lin) - 1  (s_lin: scale of s*_linear)
  * a corner moves by centre + size/2, converted to frame-normalized units by the letterbox scale
plus 2e-5 for the 5-digit rounding of the MQTT payload. A wrong architecture build, a numpy 1/2 ABI mix-up
or a broken kernel shifts values by far more than that; K steps is far below what would change a result
anyone looks at (for the demo detector, 4 steps of 1/256 move a box by well under a pixel of a 320 px frame).
Detections whose score lies within the score tolerance of the threshold may appear on one side only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

ROUNDING = 2e-5
# Tolerance in output quantization steps against the x86 ai-edge-litert run: same runtime (ai-edge-litert on
# aarch64) / older runtime (tflite-runtime 2.14, different kernels).
STEPS = {"edge": 2, "edge-legacy": 4}
MIN_IOU = 0.5


@dataclass(frozen=True)
class Tolerance:
    steps: int
    sigmoid_scale: float
    linear_scale: float
    max_stride: int
    input_w: int
    input_h: int
    resize: str = "letterbox"

    @classmethod
    def for_model(cls, meta: Mapping[str, Any], quant: Mapping[str, tuple[float, int]], steps: int) -> "Tolerance":
        det = meta["detection"]
        sig = [q[0] for name, q in quant.items() if name.endswith("_sigmoid")]
        lin = [q[0] for name, q in quant.items() if name.endswith("_linear")]
        if not sig or not lin:
            raise ValueError(f"model outputs {sorted(quant)} lack s*_sigmoid / s*_linear quantization")
        return cls(steps=steps, sigmoid_scale=max(sig), linear_scale=max(lin), max_stride=max(det["strides"]),
                   input_w=int(meta["input"]["width"]), input_h=int(meta["input"]["height"]),
                   resize=meta["input"].get("resize", "letterbox"))

    @property
    def sigma(self) -> float:
        return self.steps * self.sigmoid_scale + ROUNDING

    @property
    def score(self) -> float:
        return 3 * self.steps * self.sigmoid_scale + ROUNDING

    def scales(self, frame_w: int, frame_h: int) -> tuple[float, float]:
        """Input pixels per frame pixel (x, y), as edge.preprocess places the frame."""
        sx, sy = self.input_w / frame_w, self.input_h / frame_h
        if self.resize == "letterbox":
            sx = sy = min(sx, sy)
        return sx, sy

    def box(self, box: Sequence[float], frame_w: int, frame_h: int) -> tuple[float, float]:
        """Allowed |difference| of x and y corners (frame-normalized) for a box of this size."""
        sx, sy = self.scales(frame_w, frame_h)
        centre_px = self.steps * self.sigmoid_scale * self.max_stride
        grow = math.exp(self.steps * self.linear_scale) - 1.0
        w_px, h_px = (box[2] - box[0]) * frame_w * sx, (box[3] - box[1]) * frame_h * sy
        tx = (centre_px + w_px * grow / 2) / (sx * frame_w)
        ty = (centre_px + h_px * grow / 2) / (sy * frame_h)
        return tx + ROUNDING, ty + ROUNDING


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Comparison:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    matched: int = 0
    max_dev: dict[str, float] = field(default_factory=lambda: {"box": 0.0, "sigma": 0.0, "score": 0.0})

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        dev = ", ".join(f"{k} {v:.5f}" for k, v in self.max_dev.items())
        lines = [f"{self.matched} detections matched; largest differences: {dev}"]
        lines += [f"PROBLEM: {p}" for p in self.problems] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def compare_frames(reference: Sequence[Mapping], candidate: Sequence[Mapping], tol: Tolerance,
                   score_threshold: float, names: tuple[str, str] = ("x86", "aarch64")) -> Comparison:
    """Pair detection payloads frame by frame (in seq order) and detections by class + IoU."""
    out = Comparison()
    ref_name, cand_name = names
    if len(reference) != len(candidate):
        out.problems.append(f"{ref_name} published {len(reference)} detection messages, {cand_name} {len(candidate)}")
    for i, (r, c) in enumerate(zip(reference, candidate)):
        fw, fh = int(r["frame"]["w"]), int(r["frame"]["h"])
        if (fw, fh) != (int(c["frame"]["w"]), int(c["frame"]["h"])):
            out.problems.append(f"frame {i}: size {fw}x{fh} on {ref_name}, {c['frame']['w']}x{c['frame']['h']} on {cand_name}")
            continue
        unmatched = list(c["detections"])
        for d in sorted(r["detections"], key=lambda d: -d["score"]):
            best, best_iou = None, MIN_IOU
            for e in unmatched:
                if e["class_id"] == d["class_id"] and iou(d["box"], e["box"]) >= best_iou:
                    best, best_iou = e, iou(d["box"], e["box"])
            if best is None:
                _unmatched(out, i, d, ref_name, cand_name, tol, score_threshold)
                continue
            unmatched.remove(best)
            out.matched += 1
            _check_pair(out, i, d, best, tol, fw, fh)
        for e in unmatched:
            _unmatched(out, i, e, cand_name, ref_name, tol, score_threshold)
    return out


def _unmatched(out: Comparison, i: int, d: Mapping, on: str, missing_on: str, tol: Tolerance, thr: float) -> None:
    text = f"frame {i}: {d['label']} (score {d['score']:.4f}, box {d['box']}) on {on} has no match on {missing_on}"
    if d["score"] < thr + tol.score:
        out.notes.append(text + " (within the score tolerance of the threshold)")
    else:
        out.problems.append(text)


def _check_pair(out: Comparison, i: int, d: Mapping, e: Mapping, tol: Tolerance, fw: int, fh: int) -> None:
    tx, ty = tol.box(d["box"], fw, fh)
    box_dev = [abs(a - b) for a, b in zip(d["box"], e["box"])]
    out.max_dev["box"] = max(out.max_dev["box"], *box_dev)
    if any(dv > (tx if k % 2 == 0 else ty) for k, dv in enumerate(box_dev)):
        out.problems.append(f"frame {i} {d['label']}: box {e['box']} differs from {d['box']} by more than "
                            f"({tx:.5f}, {ty:.5f})")
    sig_dev = max(abs(a - b) for a, b in zip(list(d["sigma"]) + [d["sigma_mean"], d["objectness"]],
                                             list(e["sigma"]) + [e["sigma_mean"], e["objectness"]]))
    out.max_dev["sigma"] = max(out.max_dev["sigma"], sig_dev)
    if sig_dev > tol.sigma:
        out.problems.append(f"frame {i} {d['label']}: sigma/objectness differ by {sig_dev:.5f} > {tol.sigma:.5f} "
                            f"({d['sigma']} vs {e['sigma']})")
    score_dev = abs(d["score"] - e["score"])
    out.max_dev["score"] = max(out.max_dev["score"], score_dev)
    if score_dev > tol.score:
        out.problems.append(f"frame {i} {d['label']}: score {e['score']} vs {d['score']} differs by more than {tol.score:.5f}")


def output_step_differences(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Largest |difference| in quantization steps per output tensor (raw int8/uint8 values)."""
    missing = sorted(set(reference) ^ set(candidate))
    if missing:
        raise KeyError(f"outputs present on one side only: {missing}")
    return {k: int(np.abs(reference[k].astype(np.int32) - candidate[k].astype(np.int32)).max()) for k in reference}
