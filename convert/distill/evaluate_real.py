"""Evaluation of a distilled student on real pixels (``convert-model bench-distilled``).

1. Held-out time segments (the run's ``data/images/val``: never trained on): the float student (Keras) and its
   int8 export against the teacher's boxes as reference: mAP@0.5, TP/FP/FN per class at a score threshold,
   Spearman(mean sigma, IoU with the teacher's box).
2. The real labelled photos (labelme's 3 PASCAL VOC photos, GPL-3.0, fetched into the cache): student and
   teacher against the human ground truth, for the student's classes.
3. Invoke time of the int8 student and the teacher, one interpreter thread, interleaved rounds (median).
4. A PNG of a held-out frame with the student's boxes and their +-1 sigma bands (on the frame, or on a plain canvas
   of its size when the footage's pixels may not be published).

Every model goes through ``edge.preprocess`` and the agent's decoders; predictions are compared by class *name*
(the teacher's labels go through the run's class map), so teacher and student are scored the same way.
"""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from convert.detection.datasets import DetectionDataset, Sample, load_dataset, to_coco
from convert.detection.evaluate import EVAL_SCORE_FLOOR, _match, coco_map
from edge.contract.errors import InputError
from edge.preprocess import prepare

# one prediction: (class name, score, frame-normalized xyxy box, sigma_mean or None, box_sigma or None)
Pred = tuple


@dataclass
class Scored:
    name: str
    images: int
    map50: float
    per_class: dict           # class -> {"ap50", "tp", "fp", "fn", "gt"}
    spearman_rho: float | None
    spearman_n: int

    def row(self) -> str:
        pc = "  ".join(f"{c}: AP {100 * v['ap50']:.1f} TP {v['tp']} FP {v['fp']} FN {v['fn']}"
                       for c, v in self.per_class.items())
        rho = "n/a" if self.spearman_rho is None else f"{self.spearman_rho:+.3f} (n={self.spearman_n})"
        return f"{self.name:<22} mAP@0.5 {100 * self.map50:6.2f}  {pc}  Spearman(sigma,IoU) {rho}"


class Runner:
    """A model as the agent runs it: a .tflite with metadata (``edge.engine.Engine``) or a Keras student."""

    def __init__(self, name: str, *, tflite: Path | None = None, run: Path | None = None, threads: int = 1,
                 class_map: dict[str, str] | None = None):
        self.name, self.class_map = name, class_map
        if tflite is not None:
            from edge.config import ModelConfig, Settings
            from edge.engine import Engine
            self.engine = Engine(ModelConfig(path=tflite, threads=threads), Settings())
            self.keras = None
            self.decoder, self.quant = self.engine.decoder, self.engine.quant
            inp = self.engine.meta["input"]
            self.input_meta = inp
        else:
            from convert.detection.train import load_trained
            from edge.decode import DetectionDecoder
            det = load_trained(run)
            c = det.config
            self.keras, self.engine, self.quant = det.model, None, None
            self.decoder = DetectionDecoder(head=c.head, num_classes=c.num_classes, strides=c.strides,
                                            anchors=c.anchors, labels=c.labels)
            self.input_meta = {"width": c.input_size[1], "height": c.input_size[0], "resize": "letterbox"}

    def predict(self, frame_bgr: np.ndarray, floor: float = EVAL_SCORE_FLOOR) -> list[Pred]:
        size = (int(self.input_meta["width"]), int(self.input_meta["height"]))
        image, info = prepare(frame_bgr, size, self.input_meta.get("resize", "letterbox"), 114, bgr=True)
        if self.engine is not None:
            outputs = self.engine.infer(image)
        else:
            outputs = {k: np.asarray(v) for k, v in self.keras.predict_on_batch(image[None].astype(np.float32)).items()}
        dets = self.decoder.decode(outputs, self.quant, info, score_threshold=floor, iou_threshold=0.45,
                                   max_detections=100)
        out = []
        for d in dets:
            name = self.class_map.get(d.label) if self.class_map is not None else d.label
            if name is not None:
                out.append((name, d.score, d.box, d.sigma_mean, d.box_sigma))
        return out


def score(name: str, preds: list[list[Pred]], dataset: DetectionDataset, threshold: float) -> Scored:
    """mAP@0.5 (pycocotools) over the dataset's classes, TP/FP/FN per class at ``threshold``, Spearman."""
    from scipy.stats import spearmanr
    names = dataset.names
    gt = to_coco(dataset)
    results, per = [], {c: {"tp": 0, "fp": 0, "fn": 0, "gt": 0} for c in names}
    pairs = []
    for i, (s, ps) in enumerate(zip(dataset.samples, preds)):
        ps = [p for p in ps if p[0] in names]
        scale = np.array([s.width, s.height, s.width, s.height], np.float32)
        boxes = np.array([p[2] for p in ps], np.float32).reshape(-1, 4) * scale
        cls = np.array([names.index(p[0]) for p in ps], np.int64)
        sc = np.array([p[1] for p in ps], np.float32)
        for b, c, v in zip(boxes, cls, sc):
            results.append({"image_id": i, "category_id": int(c), "score": float(v),
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
        keep = sc >= threshold
        is_tp, best = _match(boxes[keep], cls[keep], sc[keep], s.boxes, s.class_ids)
        for c, t in zip(cls[keep], is_tp):
            per[names[c]]["tp" if t else "fp"] += 1
        for c in s.class_ids:
            per[names[c]]["gt"] += 1
        sig = [p[3] for p, k in zip(ps, keep) if k]
        pairs += [(g, b) for g, b in zip(sig, best) if g is not None and b > 0]
    for c in names:
        per[c]["fn"] = per[c]["gt"] - per[c]["tp"]
    map50, _ = coco_map(gt, results)
    for ci, c in enumerate(names):
        sub = {**gt, "annotations": [a for a in gt["annotations"] if a["category_id"] == ci]}
        per[c]["ap50"] = coco_map(sub, [r for r in results if r["category_id"] == ci])[0] if sub["annotations"] else 0.0
    rho = None
    if len(pairs) >= 3:
        r = spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
        rho = float(r) if np.isfinite(r) else None
    return Scored(name, len(dataset.samples), map50, per, rho, len(pairs))


def predict_dataset(runner: Runner, dataset: DetectionDataset) -> list[list[Pred]]:
    out = []
    for s in dataset.samples:
        img = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{s.image}: cannot be read as an image")
        out.append(runner.predict(img))
    return out


def voc_dataset(folder: Path, names: list[str]) -> DetectionDataset:
    """The labelme VOC photos (``NAME.jpg`` + ``NAME.xml``) restricted to ``names`` (other objects are ignored)."""
    samples = []
    for xml in sorted(Path(folder).glob("*.xml")):
        root = ET.parse(xml).getroot()
        img = xml.with_suffix(".jpg")
        w, h = int(root.findtext("size/width")), int(root.findtext("size/height"))
        boxes, ids = [], []
        for obj in root.iter("object"):
            name = obj.findtext("name")
            if name in names:
                bb = obj.find("bndbox")
                boxes.append([float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
                ids.append(names.index(name))
        samples.append(Sample(img, w, h, np.array(boxes, np.float32).reshape(-1, 4), np.array(ids, np.int64)))
    if not samples:
        raise InputError(f"{folder}: no VOC .xml files; fetch them with python -m convert.realdata.fetch photos")
    return DetectionDataset(list(names), samples, str(folder))


def invoke_times(models: dict[str, "object"], rounds: int = 5, runs: int = 20) -> dict[str, float]:
    """Median ms per invoke of each ``edge.runtime.TFLiteModel``, rounds interleaved so load hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():
        m.invoke()
    for _ in range(rounds):
        for k, m in models.items():
            t0 = time.perf_counter()
            for _ in range(runs):
                m.invoke()
            times[k].append((time.perf_counter() - t0) / runs * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


FOOTAGE_OMITTED = ("footage pixels omitted (third-party video): boxes only, on a plain canvas of the frame's "
                   "{w}x{h} extent")


def _edge_sigmas(box_sigma, w: int, h: int) -> tuple[float, float]:
    """Pixel sigma of a vertical / horizontal box edge: x1 = cx - w/2, so sigma(x1) = sqrt(s_cx^2 + (s_w/2)^2)."""
    return float(np.hypot(box_sigma[0], box_sigma[2] / 2) * w), float(np.hypot(box_sigma[1], box_sigma[3] / 2) * h)


def sigma_figure(frame_bgr: np.ndarray, preds: list[Pred], teacher: list[Pred], path: Path, title: str,
                 threshold: float, *, pixels: bool = True) -> Path:
    """The student's boxes with a shaded +-1 sigma band per edge (wide band = unsure where the edge is) and the
    teacher's boxes dashed for reference, each student box labelled with its class, score and mean sigma.

    ``pixels=False`` draws no pixel of the frame: a plain dark canvas of the frame's size with a caption saying
    the footage is omitted, so the figure can be published when the footage's pixels may not be (third-party
    video). Only the frame's shape is read then."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt
    h, w = frame_bgr.shape[:2]
    fig, ax = plt.subplots(figsize=(w / 80, h / 80), dpi=100)
    if pixels:
        ax.imshow(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
    else:
        ax.imshow(np.full((h, w, 3), 28, np.uint8))
        ax.text(w / 2, h - 6, FOOTAGE_OMITTED.format(w=w, h=h), color="0.8", fontsize=7, ha="center", va="bottom")
        fig.patch.set_facecolor("0.06")
    for _name, sc, box, _, _ in teacher:
        if sc >= threshold:
            x1, y1, x2, y2 = np.array(box) * [w, h, w, h]
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ls="--", ec="white", lw=0.8))
    for name, sc, box, sm, bs in preds:
        if sc < threshold or bs is None:
            continue
        x1, y1, x2, y2 = np.array(box) * [w, h, w, h]
        sx, sy = _edge_sigmas(bs, w, h)
        outer = patches.Rectangle((x1 - sx, y1 - sy), x2 - x1 + 2 * sx, y2 - y1 + 2 * sy, fc=(1, 0.5, 0, 0.25), ec="none")
        inner_w, inner_h = max(0.0, x2 - x1 - 2 * sx), max(0.0, y2 - y1 - 2 * sy)
        ax.add_patch(outer)
        ax.add_patch(patches.Rectangle((x1 + sx, y1 + sy), inner_w, inner_h, fill=False, ec=(1, 0.5, 0, 0.9), lw=0.6))
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="red", lw=1.2))
        ax.text(x1, y1 - 2, f"{name} {sc:.2f} mean \u03c3 {sm:.2f}", color="yellow", fontsize=6,
                bbox={"fc": "black", "alpha": 0.5, "pad": 1, "ec": "none"})
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title(title, fontsize=8, color="black" if pixels else "0.9")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, facecolor=fig.get_facecolor())
    plt.close(fig)
    return path


def heldout(run_out: Path) -> DetectionDataset:
    return load_dataset(Path(run_out) / "data", "val")


def write_json(path: Path, report: dict) -> None:
    path.write_text(json.dumps(report, indent=1, default=lambda o: o.__dict__) + "\n")
