"""Compare detections (and raw int8 outputs) of the emulated Pi against the x86 run of the same model, frames
and requirement set.

Why there is a tolerance, and how big
-------------------------------------
The frames are bit-identical on both sides (the test video is lossless FFV1; OpenCV's resize gives
bit-identical model inputs on x86 and aarch64: the probe checks both), and both sides run the same package
versions, so every difference comes from how the CPU's kernels compute. Integer kernels requantize each
layer's accumulators to int8 with rounding whose implementation differs between instruction sets (NEON vs
AVX paths); one rounding tie resolved differently early in the network perturbs everything downstream, and
MEAN (squeeze-excitation) spreads it over the whole image. Measured on a MobileNetV3 detector: ai-edge-litert
2.3 aarch64 vs x86 was bit-identical on three frames out of four and differed by up to 7 output steps at the
detected cells on the fourth; tflite-runtime 2.14 aarch64 vs x86 by up to 27 steps on every frame.

So a fixed "few steps" is not a bound a deep int8 network respects. The tolerance is instead measured on x86
alone, from the model itself: the same frames with uniform +-1 gray-level noise added (far below any camera's
noise) are run through the same code, and the largest change of each published quantity among the detections
that persist (box coordinates, sigma and objectness, score) is the tolerance ("the Pi may differ from x86 no
more than x86 differs from itself under imperceptible noise"). With that model, +-1 noise moved objectness by
up to 31 steps at the detected cells. A floor of FLOOR_STEPS output steps propagated through decoding keeps
it from being zero for an insensitive model, and CAPS make the test fail as meaningless for a model so
sensitive that the tolerance would hide real errors. Detections whose score is within the score tolerance of
the threshold may appear on one side only; detections pair up only within a class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

ROUNDING = 1e-3 + 1e-9  # the MQTT payload carries thousandths: two roundings differ by at most one step
MIN_IOU = 0.5
FLOOR_STEPS = 2
# The Pi-vs-x86 difference is one more draw of a noise-like perturbation; the largest of six noisy draws is
# about 1.7 standard deviations of roughly normal deviations, so twice it (about 3.4) is exceeded by chance
# with a probability well under 0.1% per quantity.
NOISE_FACTOR = 2.0
# Beyond these a "tolerance" would accept wrong results: the comparison is refused as meaningless.
CAPS = {"box": 0.05, "sigma": 0.2, "score": 0.2}
FIELDS = ("box", "sigma", "score")


@dataclass(frozen=True)
class Tolerance:
    box: float      # |difference| of any box coordinate, frame-normalized
    sigma: float    # |difference| of sigma_x, sigma_y, sigma_w, sigma_h, sigma_mean and objectness
    score: float
    source: str = ""

    @classmethod
    def floor(cls, meta: Mapping[str, Any], quant: Mapping[str, tuple[float, int]], frame_w: int, frame_h: int,
              steps: int = FLOOR_STEPS) -> "Tolerance":
        """``steps`` output-quantization steps propagated through decoding: sigma/objectness steps*s_sig;
        score (three factors <= 1) 3*steps*s_sig; a box corner: centre steps*s_sig*stride input pixels plus half
        of the size change exp(steps*s_lin)-1 of a box half the frame wide, in frame units."""
        sig = max(q[0] for name, q in quant.items() if name.endswith("_sigmoid"))
        lin = max(q[0] for name, q in quant.items() if name.endswith("_linear"))
        inp = meta["input"]
        sx, sy = int(inp["width"]) / frame_w, int(inp["height"]) / frame_h
        scale = min(sx, sy) if inp.get("resize", "letterbox") == "letterbox" else sx
        centre = steps * sig * max(meta["detection"]["strides"]) / (scale * frame_w)
        size = 0.5 * (math.exp(steps * lin) - 1.0) / 2
        return cls(box=centre + size + ROUNDING, sigma=steps * sig + ROUNDING, score=3 * steps * sig + ROUNDING,
                   source=f"floor: {steps} output steps")

    def widened(self, measured: Mapping[str, float], source: str) -> "Tolerance":
        return Tolerance(box=max(self.box, measured["box"] + ROUNDING), sigma=max(self.sigma, measured["sigma"] + ROUNDING),
                         score=max(self.score, measured["score"] + ROUNDING), source=source)

    def too_loose(self) -> list[str]:
        return [f"{f} tolerance {getattr(self, f):.4f} > {CAPS[f]}" for f in FIELDS if getattr(self, f) > CAPS[f]]

    def describe(self) -> str:
        return f"box {self.box:.4f}, sigma/objectness {self.sigma:.4f}, score {self.score:.4f} ({self.source})"


UNLIMITED = Tolerance(box=math.inf, sigma=math.inf, score=math.inf, source="measuring")


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
    max_dev: dict[str, float] = field(default_factory=lambda: {f: 0.0 for f in FIELDS})

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        dev = ", ".join(f"{k} {v:.5f}" for k, v in self.max_dev.items())
        lines = [f"{self.matched} detections matched; largest differences: {dev}"]
        lines += [f"PROBLEM: {p}" for p in self.problems] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def compare_frames(reference: Sequence[Mapping], candidate: Sequence[Mapping], tol: "Tolerance | ToleranceTable",
                   score_threshold: float, names: tuple[str, str] = ("x86", "aarch64")) -> Comparison:
    """Pair detection payloads frame by frame (in seq order) and detections by class + IoU, then check every
    pair within its tolerance (one for all, or per reference detection from a ToleranceTable); a detection
    without a partner is a problem unless its score is near the threshold or +-1 noise makes it come and go."""
    table = tol if isinstance(tol, ToleranceTable) else None
    out = Comparison()
    ref_name, cand_name = names
    if len(reference) != len(candidate):
        out.problems.append(f"{ref_name} published {len(reference)} detection messages, {cand_name} {len(candidate)}")
    for i, (r, c) in enumerate(zip(reference, candidate)):
        if (r["frame"]["w"], r["frame"]["h"]) != (c["frame"]["w"], c["frame"]["h"]):
            out.problems.append(f"frame {i}: frame size {r['frame']} on {ref_name}, {c['frame']} on {cand_name}")
            continue
        unmatched = list(c["detections"])
        for d in sorted(r["detections"], key=lambda d: -d["score"]):
            t, unstable = table.lookup(i, d) if table else (tol, False)
            best, best_iou = None, MIN_IOU
            for e in unmatched:
                if e["class_id"] == d["class_id"] and iou(d["box"], e["box"]) >= best_iou:
                    best, best_iou = e, iou(d["box"], e["box"])
            if best is None:
                _unmatched(out, i, d, ref_name, cand_name, t, score_threshold, unstable)
                continue
            unmatched.remove(best)
            out.matched += 1
            _check_pair(out, i, d, best, t)
        for e in unmatched:
            noise_seen = table.seen_under_noise(i, e) if table else False
            _unmatched(out, i, e, cand_name, ref_name, table.floor if table else tol, score_threshold, noise_seen)
    return out


def _unmatched(out: Comparison, i: int, d: Mapping, on: str, missing_on: str, tol: Tolerance, thr: float,
               unstable: bool = False) -> None:
    text = f"frame {i}: {d['label']} (score {d['score']:.4f}, box {d['box']}) on {on} has no match on {missing_on}"
    if d["score"] < thr + tol.score:
        out.notes.append(text + " (within the score tolerance of the threshold)")
    elif unstable:
        out.notes.append(text + " (+-1 gray-level noise makes it come and go on x86 too)")
    else:
        out.problems.append(text)


def _check_pair(out: Comparison, i: int, d: Mapping, e: Mapping, tol: Tolerance) -> None:
    box_dev = max(abs(a - b) for a, b in zip(d["box"], e["box"]))
    sig_dev = max(abs(a - b) for a, b in zip([*d["sigma"], d["sigma_mean"], d["objectness"]],
                                             [*e["sigma"], e["sigma_mean"], e["objectness"]]))
    score_dev = abs(d["score"] - e["score"])
    for name, dev, limit, what in (("box", box_dev, tol.box, f"box {e['box']} vs {d['box']}"),
                                   ("sigma", sig_dev, tol.sigma, f"sigma {e['sigma']} vs {d['sigma']}, objectness "
                                                                 f"{e['objectness']} vs {d['objectness']}"),
                                   ("score", score_dev, tol.score, f"score {e['score']} vs {d['score']}")):
        out.max_dev[name] = max(out.max_dev[name], dev)
        if dev > limit:
            out.problems.append(f"frame {i} {d['label']}: {what} differ by {dev:.5f} > {limit:.5f}")


def noise_envelope(clean: Sequence[Mapping], noisy_runs: Iterable[Sequence[Mapping]]) -> dict[str, float]:
    """Largest change of each field among detections that persist between ``clean`` and each noisy run."""
    env = {f: 0.0 for f in FIELDS}
    for run in noisy_runs:
        cmp = compare_frames(clean, run, UNLIMITED, score_threshold=1.0)
        for f in FIELDS:
            env[f] = max(env[f], cmp.max_dev[f])
    return env


@dataclass
class ToleranceTable:
    """Per-detection tolerances: for each detection of the clean x86 run, NOISE_FACTOR times the largest change
    of each field over the noisy x86 runs in which it persists (at least ``floor``). A detection that some noisy run loses is
    "unstable": it may be missing on the other side. Detections whose own tolerance exceeds CAPS move too much
    under noise for their numbers to mean anything; ``summary`` counts the ones that are checked tightly."""
    floor: Tolerance
    clean: Sequence[Mapping]
    noisy: Sequence[Sequence[Mapping]]

    def _entry(self, i: int, d: Mapping) -> tuple[Tolerance, bool]:
        dev = {f: 0.0 for f in FIELDS}
        unstable = False
        for run in self.noisy:
            frame = run[i]["detections"] if i < len(run) else []
            best = max((e for e in frame if e["class_id"] == d["class_id"]), key=lambda e: iou(d["box"], e["box"]),
                       default=None)
            if best is None or iou(d["box"], best["box"]) < MIN_IOU:
                unstable = True
                continue
            cmp = Comparison()
            _check_pair(cmp, i, d, best, UNLIMITED)
            dev = {f: max(dev[f], cmp.max_dev[f]) for f in FIELDS}
        dev = {f: NOISE_FACTOR * v for f, v in dev.items()}
        return self.floor.widened(dev, f"{NOISE_FACTOR:g} x this detection's change under +-1 noise"), unstable

    def lookup(self, i: int, d: Mapping) -> tuple[Tolerance, bool]:
        """Tolerance of the clean detection that ``d`` is (same class, IoU >= 0.9); the floor if none is."""
        frame = self.clean[i]["detections"] if i < len(self.clean) else []
        twin = max((e for e in frame if e["class_id"] == d["class_id"]), key=lambda e: iou(d["box"], e["box"]),
                   default=None)
        if twin is None or iou(d["box"], twin["box"]) < 0.9:
            return self.floor, False
        return self._entry(i, twin)

    def seen_under_noise(self, i: int, d: Mapping) -> bool:
        """Whether some noisy x86 run has a detection of this class here (IoU >= MIN_IOU)."""
        return any(e["class_id"] == d["class_id"] and iou(d["box"], e["box"]) >= MIN_IOU
                   for run in self.noisy if i < len(run) for e in run[i]["detections"])

    def summary(self) -> tuple[int, int, dict[str, float]]:
        """(detections, detections checked tightly (stable and within CAPS), their largest tolerance per field)."""
        total, tight, worst = 0, 0, {f: 0.0 for f in FIELDS}
        for i, frame in enumerate(self.clean):
            for d in frame["detections"]:
                total += 1
                t, unstable = self._entry(i, d)
                if not unstable and not t.too_loose():
                    tight += 1
                    worst = {f: max(worst[f], getattr(t, f)) for f in FIELDS}
        return total, tight, worst


# --------------------------------------------------------------------------- raw tensors
def candidate_step_differences(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
                               quant: Mapping[str, tuple[float, int]], per_anchor: int, objectness_index: int,
                               min_objectness: float) -> dict[str, int]:
    """Largest |difference| in output steps, per output name, at the anchors whose reference objectness is at
    least ``min_objectness`` (the cells that can become detections). Keys of the npz: '<frame>/<output>'."""
    out: dict[str, int] = {}
    for key, ref in reference.items():
        frame, _, name = key.partition("/")
        stride = name.split("_")[0]
        sig_key = f"{frame}/{stride}_sigmoid"
        scale, zero = quant[f"{stride}_sigmoid"]
        sig = reference[sig_key].astype(np.int32)
        obj = (sig.reshape(sig.shape[:-1] + (3, per_anchor))[..., objectness_index] - zero) * scale
        mask = obj >= min_objectness
        diff = np.abs(ref.astype(np.int32) - candidate[key].astype(np.int32))
        diff = diff.reshape(diff.shape[:-1] + (3, -1))[mask]
        out[name] = max(out.get(name, 0), int(diff.max()) if diff.size else 0)
    return out


def output_step_differences(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Largest |difference| in quantization steps per output tensor (raw int8/uint8 values), all cells."""
    missing = sorted(set(reference) ^ set(candidate))
    if missing:
        raise KeyError(f"outputs present on one side only: {missing}")
    out: dict[str, int] = {}
    for k in reference:
        name = k.partition("/")[2]
        out[name] = max(out.get(name, 0), int(np.abs(reference[k].astype(np.int32) - candidate[k].astype(np.int32)).max()))
    return out
