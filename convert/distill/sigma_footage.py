"""What the Gaussian head's sigma is good for on real footage (``convert-model study-footage``).

The footage has no human box labels. The reference is the **teacher's** boxes (the stronger model the student
was distilled from, mapped through the run's class map and per-class thresholds): a pseudo ground truth, not
human labels. A student box the teacher did not report counts as a false positive even when a person is there
(a faint figure the teacher scored below its threshold), and a teacher error the student copies counts as a TP.

Only the frames of the **held-out segments** are scored (the student never trained on them): the student's
metadata (``distillation.label_config``) holds the segmenting it was distilled with, and ``split_of`` picks the
same frames as the distillation did. Teacher and student see the same decoded video frame.

The student's raw outputs of each frame go once through every post-processing variant of
``convert.detection.rescoring`` (with / without (1 - mean sigma), variance voting, class-agnostic NMS), then
``convert.detection.study.score_variants`` scores them as the synthetic study does: mAP, FP at equal recall at
match IoU 0.5 and 0.7, TP/FP at the fixed 0.5 threshold, FP types, Spearman(mean sigma, IoU).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.detection.datasets import DetectionDataset, Sample, to_coco
from convert.detection.rescoring import decode_variant
from convert.detection.study import (
    VariantResult,
    bootstrap_differences,
    bootstrap_table,
    score_variants,
    summary_table,
)
from convert.distill.labeling import Frame, LabelConfig, iter_frames, split_of, teacher_detections
from edge.contract.errors import InputError, UsageError

# The class-agnostic variants are left out: on vtest.avi they gave the same detections as the class-aware ones
# (no person and car box of one object; the student reports no FP of the wrong class at all).
FOOTAGE_VARIANTS = ("sigma", "plain", "vote", "sigma_vote")
BOOTSTRAP_PAIRS = (("sigma", "plain"), ("vote", "plain"), ("sigma_vote", "sigma"))


@dataclass
class FootageStudy:
    """The result: per variant one :class:`VariantResult`, and what was scored."""
    results: dict[str, VariantResult]
    frames: list[str]                  # "<video>#<frame index>" of every scored frame
    reference_boxes: dict[str, int]    # student class -> teacher boxes used as reference
    label_config: dict
    bootstrap: dict[str, dict]         # "a - b" -> metric -> (difference, 2.5th, 97.5th percentile)

    def table(self) -> str:
        out = summary_table({f"student/{v}": [r] for v, r in self.results.items()})
        return out + ("\n\n" + bootstrap_table(self.bootstrap) if self.bootstrap else "")

    def to_json(self) -> dict:
        return {"reference": "the teacher's boxes (pseudo ground truth from a stronger model, not human labels)",
                "frames": self.frames, "reference_boxes": self.reference_boxes, "label_config": self.label_config,
                "results": {v: r.__dict__ for v, r in self.results.items()}, "bootstrap": self.bootstrap}


def label_config_of(meta: dict, path: Path) -> LabelConfig:
    """The segmenting and teacher thresholds a distilled student was made with (its metadata)."""
    dist = meta.get("distillation")
    if not dist or "label_config" not in dist:
        raise UsageError(f"{path} has no distillation section in its metadata: study-footage needs a student made by "
                         "`convert-model distill` (its held-out segments and the teacher's class map)")
    rec = dict(dist["label_config"])
    labels = list(meta.get("labels", []))
    unknown = sorted(set(rec["class_map"].values()) - set(labels))
    if unknown:
        raise InputError(f"{path}: its class map names {unknown}, which are not among the student's labels {labels}")
    # the metadata stores the map with sorted keys: order it by the student's labels (class ids follow that order)
    rec["class_map"] = dict(sorted(rec["class_map"].items(), key=lambda kv: labels.index(kv[1])))
    return LabelConfig(**rec)


def check_footage(meta: dict, footage: Path) -> None:
    """Refuse footage other than the one the student was distilled from: its 'held-out' frames would mean nothing."""
    known = {f["name"]: f.get("sha256") for f in meta["distillation"].get("footage", [])}
    if footage.name not in known:
        raise InputError(f"{footage}: the student was distilled from {sorted(known)}, not from this file; its "
                         "held-out segments exist only in that footage")
    h = hashlib.sha256()
    with open(footage, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if known[footage.name] and h.hexdigest() != known[footage.name]:
        raise InputError(f"{footage}: sha256 {h.hexdigest()[:12]}... differs from the {known[footage.name][:12]}... "
                         "the student was distilled from; fetch the original (python -m convert.realdata.fetch)")


def heldout_frames(footage: Path, cfg: LabelConfig, *, frame_step: int = 1, limit: int | None = None) -> Iterator[Frame]:
    """Every ``frame_step``-th frame of the held-out segments (``split_of(...) == "val"``), at most ``limit``."""
    if frame_step < 1:
        raise UsageError(f"--frame-step {frame_step}: use 1 or more")
    n = 0
    for i, fr in enumerate(f for f in iter_frames(footage, cfg) if split_of(f.time_s, cfg) == "val"):
        if i % frame_step:
            continue
        if limit is not None and n >= limit:
            return
        n += 1
        yield fr


def reference(teacher, frame: np.ndarray, cfg: LabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's boxes for one frame (frame pixels x1, y1, x2, y2; student class ids), filtered as the
    distillation labels are (class map, per-class threshold, ``min_box_px``)."""
    h, w = frame.shape[:2]
    boxes, ids = [], []
    for d in teacher_detections(teacher, frame, cfg):
        b = np.asarray(d.box, np.float32) * np.array([w, h, w, h], np.float32)
        if b[2] - b[0] < cfg.min_box_px or b[3] - b[1] < cfg.min_box_px:
            continue
        boxes.append(b)
        ids.append(d.class_id)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64)


def study_footage(student, teacher, footage: Path, *, frame_step: int = 1, limit: int | None = None,
                  variants=FOOTAGE_VARIANTS, bootstrap_rounds: int = 1000, progress=None) -> FootageStudy:
    """``student`` and ``teacher``: ``edge.engine.Engine`` objects (the student a Gaussian YOLOv3 with distillation
    metadata). Scores the student's variants on the held-out frames of ``footage`` against the teacher."""
    if getattr(student.decoder, "head", None) not in ("gaussian", "plain"):
        raise UsageError("the student must be a YOLOv3 detector (Gaussian or plain head): the post-processing "
                         "variants re-score its raw candidates")
    footage = Path(footage)
    cfg = label_config_of(student.meta, footage)
    check_footage(student.meta, footage)
    if list(student.meta["labels"]) != cfg.classes:
        raise InputError(f"the student's labels {student.meta['labels']} are not all in its class map {cfg.class_map}")
    per_variant: dict[str, list] = {v: [] for v in variants}
    ground, samples, names = [], [], []
    for fr in heldout_frames(footage, cfg, frame_step=frame_step, limit=limit):
        gb, gc = reference(teacher, fr.image, cfg)
        ground.append((gb, gc))
        h, w = fr.image.shape[:2]
        samples.append(Sample(Path(f"{footage.name}#{fr.index:06d}"), w, h, gb, gc))
        names.append(f"{footage.name}#{fr.index}")
        image, info = student.preprocess(fr.image)
        outputs = student.infer(image)
        for v in variants:
            per_variant[v].append(decode_variant(student.decoder, outputs, student.quant, info, v))
        if progress:
            progress(1)
    if not samples:
        raise InputError(f"{footage}: no frame of a held-out segment (segments of {cfg.segment_s} s, every "
                         f"{cfg.holdout_every}-th from {cfg.holdout_offset}): is it the whole video?")
    gt = to_coco(DetectionDataset(cfg.classes, samples, str(footage)))
    results = score_variants(per_variant, ground, gt, student.decoder.head)
    counts = {c: int(sum(int(np.sum(g[1] == i)) for g in ground)) for i, c in enumerate(cfg.classes)}
    boot = {f"{a} - {b}": bootstrap_differences(per_variant, ground, a, b, rounds=bootstrap_rounds)
            for a, b in BOOTSTRAP_PAIRS if a in per_variant and b in per_variant} if bootstrap_rounds else {}
    return FootageStudy(results, names, counts, json.loads(json.dumps(student.meta["distillation"]["label_config"])),
                        boot)

