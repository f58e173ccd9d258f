"""Distillation without labels (knowledge distillation + Noisy Student): teacher labels -> noised student -> int8.

Run directory (``--out RUN``)::

    RUN/data/            the teacher's pseudo-labelled frames (``labeling``), held-out segments in val/
    RUN/round1/          train-detector run of the first student (checkpoints, --resume)
    RUN/data_round2/     the same frames relabelled by round 1's student (``--rounds 2``), and so on
    RUN/round2/ ...
    RUN/distill.json     what was done: teacher, footage, rounds, the command

The student is a Gaussian YOLOv3 (``convert.detection``) trained with Noisy-Student noise: the strong
augmentation ``pipeline.STRONG`` (zoom, shift, colour, blur, sensor noise, cutouts) and dropout before the heads.
Later rounds start from the previous student's weights and learn from its relabelling of the training frames
(the held-out frames keep the teacher's labels: they are the reference the evaluation compares with).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from convert.distill.labeling import LabelConfig, label_footage, yolo_lines
from edge.contract.errors import InputError, UsageError


@dataclass(frozen=True)
class StudentConfig:
    backbone: str = "mobilenetv3_small"
    width: float = 1.0
    input_hw: tuple[int, int] = (192, 256)
    layout: str = "2scale"
    neck_channels: int = 64
    dropout: float = 0.1
    epochs: int = 20
    batch_size: int = 16
    steps_per_epoch: int | None = None
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    rounds: int = 1
    relabel_threshold: float = 0.4


def load_teacher(path: Path, threads: int):
    """The teacher as the agent runs it (``edge.engine.Engine``): any detector with sigmawatch metadata."""
    from edge.config import ModelConfig, Settings
    from edge.contract.errors import SigmawatchError
    from edge.engine import Engine
    try:
        engine = Engine(ModelConfig(path=path, threads=threads, task="detection"), Settings())
    except SigmawatchError as exc:
        raise InputError(f"teacher {path}: {exc}") from None
    return engine


def student_detector_config(cfg: StudentConfig, labels: list[str], dataset):
    from convert.detection.anchors import kmeans_anchors, split_by_stride, strides_for
    from convert.detection.model import DetectorConfig
    strides = strides_for(cfg.layout)
    wh = dataset.box_sizes((cfg.input_hw[1], cfg.input_hw[0]))
    if len(wh) < 3 * len(strides):
        raise InputError(f"the teacher found only {len(wh)} boxes in the training frames; lower --thresholds or "
                         "give more footage")
    anchors, _ = kmeans_anchors(wh, 3 * len(strides), cfg.seed)
    return DetectorConfig(backbone=cfg.backbone, width=cfg.width, input_size=cfg.input_hw, head="gaussian",
                          layout=cfg.layout, labels=labels, anchors=split_by_stride(anchors, strides),
                          neck_channels=cfg.neck_channels, dropout=cfg.dropout)


def relabel_with_student(run: Path, src: Path, dst: Path, threshold: float, log=print) -> None:
    """Copy ``src``'s dataset to ``dst`` with the training labels replaced by the student's detections."""
    from convert.detection.train import load_trained
    from edge.decode import DetectionDecoder
    from edge.preprocess import letterbox
    det = load_trained(run)
    c = det.config
    dec = DetectionDecoder(head=c.head, num_classes=c.num_classes, strides=c.strides, anchors=c.anchors, labels=c.labels)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    files = sorted((dst / "images" / "train").glob("*.jpg"))
    boxes = 0
    for i in range(0, len(files), 16):
        batch = files[i:i + 16]
        frames = [cv2.imread(str(f), cv2.IMREAD_COLOR) for f in batch]
        prepared = [letterbox(f, (c.input_size[1], c.input_size[0])) for f in frames]
        outs = det.model.predict_on_batch(np.stack([p[0] for p in prepared]).astype(np.float32))
        for j, (f, fr, (_, info)) in enumerate(zip(batch, frames, prepared)):
            one = {k: np.asarray(v)[j:j + 1] for k, v in outs.items()}
            dets = dec.decode(one, None, info, score_threshold=threshold, iou_threshold=0.45)
            lines = yolo_lines(dets, fr.shape[1], fr.shape[0], 4.0)
            boxes += len(lines)
            (dst / "labels" / "train" / f"{f.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    if boxes == 0:
        raise InputError(f"the student of {run} finds no object at score >= {threshold} in its {len(files)} training "
                         "frames, so it cannot relabel them: train that round longer (--epochs) or lower "
                         "--relabel-threshold")
    log(f"relabelled {len(files)} training frames with the student of {run}: {boxes} boxes")


def distill(*, teacher_path: Path, sources: list[Path], out: Path, label_cfg: LabelConfig, student: StudentConfig,
            resume: bool = False, progress: bool = True, command: str = "", log=print) -> Path:
    """Label, train ``student.rounds`` rounds; returns the run directory of the last student."""
    from convert.detection.datasets import load_dataset
    from convert.detection.pipeline import STRONG
    from convert.detection.train import TrainConfig, train
    out = Path(out)
    if (out / "distill.json").is_file() and not resume:
        raise UsageError(f"{out} already holds a distillation run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    teacher = load_teacher(teacher_path, student.threads)
    unknown = [t for t in label_cfg.class_map if t not in teacher.labels]
    if unknown:
        raise UsageError(f"--class-map names teacher label(s) {unknown} that the teacher does not have; its labels: "
                         f"{teacher.labels}")
    data = out / "data"
    label_footage(teacher, sources, data, label_cfg, teacher_path=teacher_path, progress=progress, log=log)
    ds = load_dataset(data, "train")
    det_cfg = student_detector_config(student, label_cfg.classes, ds)
    tcfg = TrainConfig(epochs=student.epochs, batch_size=student.batch_size, steps_per_epoch=student.steps_per_epoch,
                       lr=student.lr, warmup_steps=100, augment=True, seed=student.seed, threads=student.threads)
    record = {"command": command, "teacher": str(Path(teacher_path).resolve()), "student": student.__dict__,
              "rounds": []}
    train_data = data
    run = out / "round1"
    for r in range(1, student.rounds + 1):
        run = out / f"round{r}"
        run.mkdir(parents=True, exist_ok=True)
        (run / "command.txt").write_text(command + "\n")
        (run / "data.txt").write_text(str(train_data.resolve()) + "\n")
        ds_r = load_dataset(train_data, "train")
        if r > 1 and not (run / "ckpt" / "state.json").is_file():
            _init_from(out / f"round{r - 1}", run)
        log(f"round {r}/{student.rounds}: {ds_r.summary()}")
        init = run / "init.weights.h5"
        train(det_cfg, tcfg, ds_r, run, resume=(run / "ckpt" / "state.json").is_file(), progress=progress,
              log=log, augment_cfg=STRONG, init_weights=init if init.is_file() else None)
        record["rounds"].append({"round": r, "data": str(train_data), "run": str(run)})
        if r < student.rounds:
            nxt = out / f"data_round{r + 1}"
            if not (nxt / "classes.txt").is_file() or not resume:
                relabel_with_student(run, data, nxt, student.relabel_threshold, log=log)
            train_data = nxt
    (out / "distill.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    return run


def _init_from(prev: Path, run: Path) -> None:
    """Start a later round from the previous student's final weights (as a fresh run: new optimizer)."""
    from convert.detection.train import run_dir_files
    src = run_dir_files(prev)["final"]
    if not src.is_file():
        raise InputError(f"{prev} has no final weights; finish that round first (--resume)")
    (run / "init.weights.h5").write_bytes(src.read_bytes())
