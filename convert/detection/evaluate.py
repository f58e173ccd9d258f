"""Detector evaluation, the same way for Keras, float TFLite and int8 TFLite models.

Every model sees frames prepared by ``edge.preprocess`` and its outputs decoded by ``edge.decode`` (for
TFLite through ``edge.runtime.TFLiteModel``): what is measured is what the device runs.

Reported: COCO mAP@0.5 and mAP@[.5:.95] (pycocotools), TP/FP/FN at a score threshold, and for the
Gaussian head the Spearman correlation between the mean predicted sigma and the IoU with the ground
truth (negative = uncertainty falls as localization improves), with a scatter plot.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from convert.detection.datasets import DetectionDataset, to_coco
from edge.contract.errors import InputError
from edge.decode import DetectionDecoder, box_iou
from edge.preprocess import prepare

EVAL_SCORE_FLOOR = 0.005  # detections kept for mAP (the PR curve needs the low-score tail)


class KerasPredictor:
    """A Keras detector (``Detector.model`` with named dict outputs), batched."""

    def __init__(self, model, decoder: DetectionDecoder, input_size_hw: tuple[int, int], resize: str = "letterbox",
                 batch_size: int = 8):
        self.model, self.decoder, self.batch_size, self.resize = model, decoder, batch_size, resize
        self.size = (input_size_hw[1], input_size_hw[0])
        self.name = "keras"

    def raw_outputs(self, images: list[np.ndarray]) -> list[tuple[dict, None]]:
        results = []
        for i in range(0, len(images), self.batch_size):
            batch = np.stack(images[i:i + self.batch_size]).astype(np.float32)
            out = self.model.predict_on_batch(batch)  # compiled once; much faster than eager calls
            out = {k: np.asarray(v) for k, v in out.items()}
            for j in range(batch.shape[0]):
                results.append(({k: v[j:j + 1] for k, v in out.items()}, None))
        return results


class TFLitePredictor:
    """A .tflite detector exported by convert-model, run by edge.runtime like on the device."""

    def __init__(self, path: str | Path, threads: int = 2):
        from edge.model_metadata import read_model
        from edge.runtime import TFLiteModel
        flatbuffer, meta = read_model(path)
        if meta.get("task") != "detection":
            raise InputError(f"{path} is a {meta.get('task')} model, not a detector")
        self.meta = meta
        self.model = TFLiteModel(flatbuffer, threads=threads)
        from edge.ssd import make_decoder
        self.decoder = make_decoder(meta)
        self.size = self.model.input_size
        self.resize = meta["input"].get("resize", "letterbox")
        self.quant = self.model.output_quantization()
        self.name = f"tflite-{meta.get('quantization')}"

    def raw_outputs(self, images: list[np.ndarray]) -> list[tuple[dict, dict]]:
        norm = self.meta["input"].get("normalization") or {}
        return [(self.model.run(img, norm.get("mean"), norm.get("std")), self.quant) for img in images]


@dataclass
class EvalReport:
    model: str
    images: int
    ground_truths: int
    map50: float
    map50_95: float
    score_threshold: float
    tp: int
    fp: int
    fn: int
    spearman_rho: float | None
    spearman_p: float | None
    spearman_n: int
    seconds_per_image: float
    scatter_png: str | None = None
    # all detections above the floor: (score, is_tp at IoU 0.5, best IoU with any GT, sigma_mean)
    detections: list[tuple[float, bool, float, float]] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("detections")
        return d

    def table_row(self) -> str:
        rho = "n/a" if self.spearman_rho is None else f"{self.spearman_rho:+.3f}"
        return (f"{self.model:<16} mAP@0.5 {100 * self.map50:6.2f}  mAP@.5:.95 {100 * self.map50_95:6.2f}  "
                f"TP {self.tp:5d} FP {self.fp:5d} FN {self.fn:5d} @score>={self.score_threshold:.2f}  "
                f"Spearman(sigma,IoU) {rho}  {1000 * self.seconds_per_image:.1f} ms/img")


def _match(dets_xyxy, det_cls, det_scores, gt_xyxy, gt_cls, iou_thr=0.5):
    """Greedy per-class matching in score order. Returns (is_tp, best IoU with any ground-truth box) per
    detection -- sigma describes localization, so its relation to IoU is measured class-agnostically."""
    n = len(det_scores)
    is_tp = np.zeros(n, bool)
    best = np.zeros(n, np.float32)
    if n == 0 or len(gt_xyxy) == 0:
        return is_tp, best
    any_iou = box_iou(dets_xyxy, gt_xyxy)
    best = any_iou.max(1)
    ious = np.where(det_cls[:, None] == gt_cls[None, :], any_iou, 0.0)
    taken = np.zeros(len(gt_xyxy), bool)
    for i in np.argsort(-det_scores, kind="stable"):
        cand = np.where(~taken, ious[i], 0.0)
        j = int(np.argmax(cand))
        if cand[j] >= iou_thr:
            taken[j] = True
            is_tp[i] = True
    return is_tp, best


def coco_map(gt: dict, results: list[dict]) -> tuple[float, float]:
    if not results:
        return 0.0, 0.0
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(max(ev.stats[1], 0.0)), float(max(ev.stats[0], 0.0))


def evaluate(predictor, dataset: DetectionDataset, *, score_threshold: float = 0.3, nms_iou: float = 0.45,
             out_dir: str | Path | None = None, name: str | None = None, limit: int | None = None,
             progress: bool = False) -> EvalReport:
    from scipy.stats import spearmanr
    from convert.console import progress as progress_bar

    samples = dataset.samples[:limit] if limit else dataset.samples
    if not samples:
        raise InputError(f"{dataset.source}: nothing to evaluate (empty dataset)")
    gt = to_coco(DetectionDataset(dataset.names, samples, dataset.source))
    results, rows = [], []
    n_gt, elapsed = 0, 0.0
    chunk = 32
    for start in progress_bar(range(0, len(samples), chunk), desc=name or predictor.name, unit="batch",
                              enabled=progress):
        part = samples[start:start + chunk]
        frames = []
        for s in part:
            img = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"{s.image}: cannot be read as an image")
            frames.append(prepare(img, predictor.size, predictor.resize, 114, bgr=True))
        t0 = time.perf_counter()
        raw = predictor.raw_outputs([f[0] for f in frames])
        elapsed += time.perf_counter() - t0
        for k, (s, (_, info), (outputs, quant)) in enumerate(zip(part, frames, raw)):
            dets = predictor.decoder.decode(outputs, quant, info, score_threshold=EVAL_SCORE_FLOOR,
                                            iou_threshold=nms_iou, max_detections=100)
            image_id = start + k
            scale = np.array([s.width, s.height, s.width, s.height], np.float32)
            boxes = np.array([d.box for d in dets], np.float32).reshape(-1, 4) * scale
            cls = np.array([d.class_id for d in dets], np.int64)
            scores = np.array([d.score for d in dets], np.float32)
            for b, c, sc in zip(boxes, cls, scores):
                results.append({"image_id": image_id, "category_id": int(c), "score": float(sc),
                                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
            is_tp, best = _match(boxes, cls, scores, s.boxes, s.class_ids)
            sig = [d.sigma_mean if d.sigma_mean is not None else float("nan") for d in dets]
            rows += list(zip(scores.tolist(), is_tp.tolist(), best.tolist(), sig))
            n_gt += len(s.boxes)
    map50, map_all = coco_map(gt, results)
    above = [r for r in rows if r[0] >= score_threshold]
    tp = sum(1 for r in above if r[1])
    fp = len(above) - tp
    corr = [(r[3], r[2]) for r in above if r[2] > 0 and np.isfinite(r[3])]
    rho = p = None
    if len(corr) >= 3:
        res = spearmanr([c[0] for c in corr], [c[1] for c in corr])
        rho, p = float(res.statistic), float(res.pvalue)
        if not np.isfinite(rho):
            rho = p = None
    report = EvalReport(model=name or predictor.name, images=len(samples), ground_truths=n_gt, map50=map50,
                        map50_95=map_all, score_threshold=score_threshold, tp=tp, fp=fp, fn=n_gt - tp,
                        spearman_rho=rho, spearman_p=p, spearman_n=len(corr),
                        seconds_per_image=elapsed / len(samples), detections=rows)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        tag = (name or predictor.name).replace("/", "_").replace(" ", "_")
        if corr:
            report.scatter_png = str(save_scatter(corr, rho, out_dir / f"sigma_vs_iou_{tag}.png", tag))
        (out_dir / f"eval_{tag}.json").write_text(json.dumps(report.summary(), indent=1) + "\n")
    return report


def save_scatter(pairs, rho, path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = np.array([p[0] for p in pairs])
    iou = np.array([p[1] for p in pairs])
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.scatter(iou, s, s=6, alpha=0.4)
    ax.set_xlabel("IoU with ground truth")
    ax.set_ylabel("mean predicted sigma")
    ax.set_title(f"{title}: Spearman rho = {rho:+.3f}" if rho is not None else title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def fp_at_recall(detections, n_gt: int, recall: float) -> int | None:
    """False positives among the highest-scoring detections needed to reach ``recall`` (None if never reached)."""
    need = int(np.ceil(recall * n_gt))
    tp = fp = 0
    for score, is_tp, *_ in sorted(detections, key=lambda r: -r[0]):
        if is_tp:
            tp += 1
        else:
            fp += 1
        if tp >= need:
            return fp
    return None


def max_recall(detections, n_gt: int) -> float:
    return sum(1 for r in detections if r[1]) / max(1, n_gt)
