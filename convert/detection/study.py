"""The Gaussian-vs-plain study (``convert-model experiment``): several seeds per head, evaluated the paper's way.

For every trained run: one pass over the evaluation split (raw outputs once per image), then every
post-processing variant (convert.detection.rescoring) on the same outputs: COCO mAP@0.5 and mAP@[.5:.95]
(pycocotools), FPs at equal recall at IoU 0.5 and 0.7, TP/FP at a fixed score threshold, FP types, and
Spearman(mean sigma, IoU). Aggregated over seeds as mean and standard deviation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from convert.detection.datasets import DetectionDataset, to_coco
from convert.detection.evaluate import coco_map
from convert.detection.fp_analysis import FP_TYPES, score_set
from convert.detection.rescoring import decode_variant
from edge.contract.errors import InputError
from edge.preprocess import prepare

RECALLS = (0.5, 0.7, 0.8, 0.9)
MATCH_IOUS = (0.5, 0.7)
FIXED_THRESHOLD = 0.5
TYPES_RECALL = 0.5          # FP types among the detections needed to reach this recall (every run here reaches it)


@dataclass
class VariantResult:
    variant: str
    map50: float
    map50_95: float
    fp_at_recall: dict[str, dict[str, int | None]]       # match IoU -> recall -> FPs
    at_threshold: dict                                   # TP, FP and FP types at FIXED_THRESHOLD (IoU 0.5)
    fp_types_at_recall: dict | None                      # FP types among the detections up to TYPES_RECALL
    max_recall: dict[str, float]
    spearman: float | None = None
    extra: dict = field(default_factory=dict)


def analyze(predictor, dataset: DetectionDataset, variants, limit: int | None = None) -> dict[str, VariantResult]:
    """One pass of ``predictor`` over ``dataset`` (or its first ``limit`` images), every variant scored."""
    samples = dataset.samples[:limit] if limit else dataset.samples
    if not samples:
        raise InputError(f"{dataset.source}: nothing to evaluate")
    gt_coco = to_coco(DetectionDataset(dataset.names, samples, dataset.source))
    per_variant = {v: [] for v in variants}
    ground = []
    for start in range(0, len(samples), 32):
        part = samples[start:start + 32]
        frames = []
        for s in part:
            img = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"{s.image}: cannot be read as an image")
            frames.append(prepare(img, predictor.size, predictor.resize, 114, bgr=True))
        raw = predictor.raw_outputs([f[0] for f in frames])
        for s, (_, info), (outputs, quant) in zip(part, frames, raw):
            ground.append((s.boxes, s.class_ids))
            for v in variants:
                per_variant[v].append(decode_variant(predictor.decoder, outputs, quant, info, v))
    return score_variants(per_variant, ground, gt_coco, predictor.decoder.head)


def score_variants(per_variant: dict[str, list], ground: list, gt_coco: dict, head: str) -> dict[str, VariantResult]:
    """Score every post-processing variant's detections (``per_variant``: variant -> one
    ``rescoring.Detections`` per image) against ``ground`` (one (boxes, class ids) per image, frame pixels;
    ``gt_coco`` the same as a COCO dict). ``head``: "gaussian" adds Spearman(mean sigma, IoU)."""
    from scipy.stats import spearmanr
    out = {}
    for v, dets in per_variant.items():
        results = [{"image_id": i, "category_id": int(c), "score": float(sc),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
                   for i, d in enumerate(dets) for b, c, sc in zip(d.boxes, d.classes, d.scores)]
        map50, map_all = coco_map(gt_coco, results)
        fp, reach = {}, {}
        scored05 = None
        for t in MATCH_IOUS:
            scored = score_set(dets, ground, t)
            scored05 = scored05 or scored
            fp[str(t)] = {str(r): scored.fp_at_recall(r) for r in RECALLS}
            reach[str(t)] = scored.max_recall()
        rho = None
        sel = (scored05.scores >= 0.3) & (scored05.best_iou > 0)
        if head == "gaussian" and sel.sum() >= 3:
            rho = float(spearmanr(scored05.sigma_mean[sel], scored05.best_iou[sel]).statistic)
        out[v] = VariantResult(v, map50, map_all, fp, scored05.at_threshold(FIXED_THRESHOLD),
                               scored05.fp_types_at_recall(TYPES_RECALL), reach, rho)
    return out


def _mean_sd(values, signed: bool = False):
    vals = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not vals:
        return "n/a"
    fmt = "+.1f" if signed else ".1f"
    if len(vals) < len(values):
        return f"{np.mean(vals):{fmt}}*"          # some seeds never reach it
    return f"{np.mean(vals):{fmt}}" + (f"±{np.std(vals, ddof=1):.1f}" if len(vals) > 1 else "")


def _rho(runs) -> str:
    vals = [r.spearman for r in runs if r.spearman is not None]
    if not vals:
        return "n/a"
    return f"{np.mean(vals):+.2f}" + (f"±{np.std(vals, ddof=1):.2f}" if len(vals) > 1 else "")


def summary_table(results: dict[str, list[VariantResult]]) -> str:
    """``results``: row label ('gaussian/sigma', 'plain/plain', ...) -> one VariantResult per seed."""
    lines = []
    head = (f"{'head / scoring':<24}{'mAP@.5':>11}{'mAP@.5:.95':>11}"
            + "".join(f"{f'FP@R{r}':>13}" for r in RECALLS) + f"{'Rmax':>6}{'TP@0.5':>12}{'FP@0.5':>12}{'rho':>12}")
    for t in MATCH_IOUS:
        lines.append(f"match IoU {t}: FP@Rr = false positives ranked above the TP that reaches recall r "
                     "(mean±sd over seeds; * = not every seed reaches it); Rmax = lowest recall any seed reaches; "
                     f"TP/FP at score >= {FIXED_THRESHOLD}; rho = Spearman(mean sigma, IoU), score >= 0.3")
        lines.append(head)
        lines.append("-" * len(head))
        for label, runs in results.items():
            lines.append(f"{label:<24}{_mean_sd([100 * r.map50 for r in runs]):>11}"
                         f"{_mean_sd([100 * r.map50_95 for r in runs]):>11}"
                         + "".join(f"{_mean_sd([r.fp_at_recall[str(t)][str(rc)] for r in runs]):>13}" for rc in RECALLS)
                         + f"{min(r.max_recall[str(t)] for r in runs):>6.2f}"
                         f"{_mean_sd([r.at_threshold['tp'] for r in runs]):>12}"
                         f"{_mean_sd([r.at_threshold['fp'] for r in runs]):>12}"
                         f"{_rho(runs):>12}")
        lines.append("")
    lines.append(f"FP types (IoU 0.5): at score >= {FIXED_THRESHOLD} | among the detections up to recall {TYPES_RECALL}")
    for label, runs in results.items():
        at = "  ".join(f"{t} {_mean_sd([r.at_threshold['fp_types'][t] for r in runs])}" for t in FP_TYPES)
        rec = "  ".join(f"{t} {_mean_sd([(r.fp_types_at_recall or {}).get(t) for r in runs])}" for t in FP_TYPES)
        lines.append(f"  {label:<22} {at} | {rec}")
    pairs = [(a, b) for a, b in PAIRS if a in results and b in results]
    if pairs:
        lines.append("")
        lines.append("paired, same model (a - b per seed, mean±sd over seeds; * = not every seed reaches that recall):")
        for t in MATCH_IOUS:
            for a, b in pairs:
                diffs = {f"FP@R{rc}": [_diff(x.fp_at_recall[str(t)][str(rc)], y.fp_at_recall[str(t)][str(rc)])
                                       for x, y in zip(results[a], results[b])] for rc in RECALLS}
                if t == MATCH_IOUS[0]:
                    diffs["TP@0.5"] = [x.at_threshold["tp"] - y.at_threshold["tp"] for x, y in zip(results[a], results[b])]
                    diffs["FP@0.5"] = [x.at_threshold["fp"] - y.at_threshold["fp"] for x, y in zip(results[a], results[b])]
                diffs["mAP@.5:.95"] = [100 * (x.map50_95 - y.map50_95) for x, y in zip(results[a], results[b])]
                lines.append(f"  IoU {t}  {a} - {b}: " + "  ".join(f"{k} {_mean_sd(v, signed=True)}"
                                                                    for k, v in diffs.items()))
    return "\n".join(lines)


# Same model, two post-processings: the pairs the paired differences are printed for.
PAIRS = (("gaussian/sigma", "gaussian/plain"), ("gaussian/vote", "gaussian/plain"),
         ("gaussian/sigma_vote", "gaussian/sigma"),
         ("student/sigma", "student/plain"), ("student/vote", "student/plain"), ("student/sigma_vote", "student/sigma"))


def _diff(x, y):
    return None if x is None or y is None else x - y


def bootstrap_differences(per_variant: dict[str, list], ground: list, a: str, b: str, *, rounds: int = 1000,
                          seed: int = 0) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Variant ``a`` minus variant ``b`` on the same images, with a paired bootstrap over images (each round
    resamples the images with replacement and scores both variants on that sample): metric -> (observed
    difference, 2.5th and 97.5th percentile). Metrics: FP at recall r at each match IoU, and TP / FP at
    FIXED_THRESHOLD (IoU 0.5). For one model on one footage, where there are no seeds to vary."""
    from convert.detection.fp_analysis import Scored
    parts = {v: {t: [score_set([d], [g], t) for d, g in zip(per_variant[v], ground)] for t in MATCH_IOUS}
             for v in (a, b)}

    def metrics(v: str, idx: np.ndarray) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for t in MATCH_IOUS:
            sel = [parts[v][t][i] for i in idx]
            s = Scored(np.concatenate([p.scores for p in sel]), np.concatenate([p.tp for p in sel]),
                       np.concatenate([p.fp_type for p in sel]), int(sum(p.n_gt for p in sel)))
            out.update({f"IoU {t} FP@R{r}": s.fp_at_recall(r) for r in RECALLS})
            if t == MATCH_IOUS[0]:
                at = s.at_threshold(FIXED_THRESHOLD)
                out[f"TP@{FIXED_THRESHOLD}"], out[f"FP@{FIXED_THRESHOLD}"] = at["tp"], at["fp"]
        return out

    n = len(ground)
    everything = np.arange(n)
    ma, mb = metrics(a, everything), metrics(b, everything)
    observed = {k: _diff(ma[k], mb[k]) for k in ma}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in observed}
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        ra, rb = metrics(a, idx), metrics(b, idx)
        for k, vals in samples.items():
            d = _diff(ra[k], rb[k])
            if d is not None:
                vals.append(d)
    out = {}
    for k, d in observed.items():
        vals = samples[k]
        if d is None or len(vals) < 0.95 * rounds:      # the recall is not reached in most resamples
            out[k] = (d, None, None)
        else:
            out[k] = (d, float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5)))
    return out


def bootstrap_table(diffs: dict[str, dict[str, tuple]]) -> str:
    """``diffs``: 'a - b' -> :func:`bootstrap_differences`'s result."""
    lines = ["paired bootstrap over images (a - b; 95 % interval):"]
    for pair, d in diffs.items():
        cells = []
        for k, (obs, lo, hi) in d.items():
            if obs is None:
                continue
            cells.append(f"{k} {obs:+.0f}" + (f" [{lo:+.0f}, {hi:+.0f}]" if lo is not None else ""))
        lines.append(f"  {pair}: " + "  ".join(cells))
    return "\n".join(lines)


def results_from_json(path) -> dict[str, list[VariantResult]]:
    """The per-seed results an ``experiment`` run wrote (``OUT/experiment.json``), keyed like
    :func:`summary_table` wants them ('gaussian/sigma', ...), in the order the runs were made (seed order)."""
    import json
    from pathlib import Path
    data = json.loads(Path(path).read_text())
    out: dict[str, list[VariantResult]] = {}
    for run, variants in data["runs"].items():
        head = Path(run).name.split("-")[0]
        for v, rec in variants.items():
            out.setdefault(f"{head}/{v}", []).append(VariantResult(**rec))
    return out


def main(argv=None) -> int:
    """``python -m convert.detection.study OUT/experiment.json``: the summary table again, without re-evaluating."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m convert.detection.study", description=main.__doc__)
    p.add_argument("experiment_json")
    args = p.parse_args(argv)
    print(summary_table(results_from_json(args.experiment_json)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
