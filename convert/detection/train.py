"""Detector training loop: Adam with warmup + cosine decay, progress bars, per-epoch checkpoints, resume.

Run directory layout (``--out RUN``)::

    RUN/detector.json          DetectorConfig (rebuild the model from it)
    RUN/train.json             TrainConfig
    RUN/ckpt/last.weights.h5   model weights after the last finished epoch
    RUN/ckpt/optimizer.npz     optimizer state, RUN/ckpt/state.json: finished epochs, step
    RUN/history.jsonl          one line per epoch: mean losses, gradient norms (total before clipping, share of
                               clipped steps, per loss part every ``grad_log_every`` steps)
    RUN/final.weights.h5       weights when training finished
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convert.detection.datasets import DetectionDataset
from convert.detection.model import Detector, DetectorConfig, build_detector
from convert.detection.pipeline import Augment, TrainingData
from edge.contract.errors import InputError, UsageError


# Default weight of the box loss per head (the objectness and class losses weigh 1). See the README
# ("Gaussian vs plain head"): chosen from the per-part gradient norms and a validation-set comparison.
BOX_WEIGHT = {"gaussian": 1.0, "plain": 1.0}


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(16, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1, description="default: images // batch_size")
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    augment: bool = True
    max_boxes: int = Field(50, ge=1)
    seed: int = 0
    threads: int = Field(2, ge=1, description="TensorFlow intra-op threads (the machine is shared)")
    box_weight: float = Field(1.0, ge=0, description="weight of the box loss in the total")
    obj_weight: float = Field(1.0, ge=0, description="weight of the objectness loss in the total")
    cls_weight: float = Field(1.0, ge=0, description="weight of the class loss in the total")
    clip_norm: float | None = Field(10.0, gt=0, description="fixed global gradient-norm clip (None: none)")
    clip_factor: float | None = Field(None, gt=1, description="adaptive clip: scale a step down when its global "
                                      "norm exceeds this many times the running mean of recent norms (replaces "
                                      "clip_norm); only outliers are clipped, whatever the norms' scale")
    grad_log_every: int = Field(25, ge=0, description="log per-part gradient norms every N steps (0: never)")
    l1_bn: float = Field(0.0, ge=0, description="Network Slimming's L1 on the BatchNorm scales of prunable channels, "
                         "decoupled from Adam: after every step each |gamma| shrinks by learning rate x l1_bn")
    distill_weight: float = Field(0.0, ge=0, description="weight of the knowledge-distillation loss toward a teacher "
                                  "detector's outputs (convert.detection.distill_loss; train(teacher=...)); 0: none")


def set_threads(threads: int) -> None:
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        pass  # already initialized in this process


@keras.saving.register_keras_serializable(package="sigmawatch")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step): linear warmup to ``peak`` then cosine decay to 2% of it at ``total`` steps."""

    def __init__(self, peak: float, warmup: int, total: int):
        self.peak, self.warmup, self.total = float(peak), int(warmup), int(total)

    def __call__(self, step):
        from keras import ops
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / float(max(1, self.warmup))
        progress = ops.clip((step - self.warmup) / float(max(1, self.total - self.warmup)), 0.0, 1.0)
        cos = self.peak * (0.02 + 0.98 * 0.5 * (1.0 + ops.cos(math.pi * progress)))
        return ops.where(step < self.warmup, warm, cos)

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def run_dir_files(out: Path) -> dict[str, Path]:
    return {"detector": out / "detector.json", "train": out / "train.json", "weights": out / "ckpt" / "last.weights.h5",
            "optimizer": out / "ckpt" / "optimizer.npz", "state": out / "ckpt" / "state.json",
            "history": out / "history.jsonl", "final": out / "final.weights.h5"}


def trained_weights(run: str | Path) -> tuple[DetectorConfig, Path]:
    """A run directory's detector config and its trained weights (final weights, else the last checkpoint)."""
    files = run_dir_files(Path(run))
    if not files["detector"].is_file():
        raise InputError(f"{run} is not a training run directory (no detector.json); train with convert-model train-detector")
    cfg = DetectorConfig.model_validate_json(files["detector"].read_text())
    weights = files["final"] if files["final"].is_file() else files["weights"]
    if not weights.is_file():
        raise InputError(f"{run} has no weights yet ({files['final'].name} or ckpt/last.weights.h5)")
    return cfg, weights


def load_trained(run: str | Path, batch_size: int | None = None) -> Detector:
    """Rebuild a trained detector from a run directory (final weights, else the last checkpoint)."""
    cfg, weights = trained_weights(run)
    det = build_detector(cfg, batch_size)
    det.train_model.load_weights(str(weights))
    return det


def train(detector_cfg: DetectorConfig, train_cfg: TrainConfig, dataset: DetectionDataset, out: str | Path,
          *, resume: bool = False, progress: bool = True, log=print, augment_cfg: Augment | None = None,
          init_weights: str | Path | None = None, teacher: Detector | None = None) -> Detector:
    """Train (or continue training) a detector on ``dataset``; returns it with the final weights loaded.
    ``augment_cfg`` replaces the default augmentation (e.g. ``pipeline.STRONG`` for distillation);
    ``init_weights`` starts a new run from these weights instead of the random initialization;
    ``teacher`` (with ``train_cfg.distill_weight`` > 0) adds distill_weight x the distillation loss toward the
    teacher's outputs on the same (augmented) images (convert.detection.distill_loss)."""
    import tensorflow as tf
    from convert.console import progress as progress_bar

    from convert.detection.loss import YoloLoss

    set_threads(train_cfg.threads)
    out = Path(out)
    files = run_dir_files(out)
    if dataset.names != detector_cfg.labels:
        raise UsageError(f"dataset classes {dataset.names} differ from the detector's labels {detector_cfg.labels}")
    if (teacher is not None) != (train_cfg.distill_weight > 0):
        raise UsageError("distillation needs both a teacher detector and distill_weight > 0 "
                         f"(got teacher={'yes' if teacher is not None else 'none'}, "
                         f"distill_weight={train_cfg.distill_weight})")
    if teacher is not None and (teacher.config.head, teacher.config.labels, teacher.config.strides,
                                teacher.config.input_size) != (detector_cfg.head, detector_cfg.labels,
                                                               detector_cfg.strides, detector_cfg.input_size):
        raise UsageError("the teacher's head, labels, strides or input size differ from the student's; "
                         "distillation needs the same output contract")
    if files["state"].is_file() and not resume:
        raise UsageError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    if resume and files["detector"].is_file():
        saved = DetectorConfig.model_validate_json(files["detector"].read_text())
        if saved != detector_cfg:
            log(f"resume: using the run's own detector config from {files['detector']}")
        detector_cfg = saved
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    files["detector"].write_text(detector_cfg.model_dump_json(indent=1) + "\n")
    files["train"].write_text(train_cfg.model_dump_json(indent=1) + "\n")
    keras.utils.set_random_seed(train_cfg.seed)

    det = build_detector(detector_cfg, batch_size=None)
    data = TrainingData(dataset, detector_cfg.input_size, detector_cfg.strides, detector_cfg.anchors,
                        (augment_cfg or Augment()) if train_cfg.augment else None, train_cfg.max_boxes, train_cfg.seed)
    steps = train_cfg.steps_per_epoch or data.steps_per_epoch(train_cfg.batch_size)
    total = steps * train_cfg.epochs
    fixed_clip = None if train_cfg.clip_factor else train_cfg.clip_norm
    opt = keras.optimizers.AdamW(learning_rate=WarmupCosine(train_cfg.lr, train_cfg.warmup_steps, total),
                                 weight_decay=train_cfg.weight_decay, global_clipnorm=fixed_clip)
    opt.build(det.train_model.trainable_variables)
    loss_fn = YoloLoss(detector_cfg.head, detector_cfg.num_classes, detector_cfg.strides, detector_cfg.anchors,
                       weights=(train_cfg.box_weight, train_cfg.obj_weight, train_cfg.cls_weight))

    start_epoch = 0
    if init_weights is not None and not (resume and files["state"].is_file()):
        det.train_model.load_weights(str(init_weights))
        log(f"initialized from {init_weights}")
    if resume and files["state"].is_file():
        state = json.loads(files["state"].read_text())
        det.train_model.load_weights(str(files["weights"]))
        saved = np.load(files["optimizer"])
        for i, var in enumerate(opt.variables):
            var.assign(saved[f"v{i}"])
        start_epoch = int(state["epochs_done"])
        log(f"resumed {out} after epoch {start_epoch} (step {int(opt.iterations.numpy())})")
    if start_epoch >= train_cfg.epochs:
        log(f"{out}: all {train_cfg.epochs} epochs are done")

    model = det.train_model

    weights = {"box": train_cfg.box_weight, "obj": train_cfg.obj_weight, "cls": train_cfg.cls_weight}
    distill = None
    if teacher is not None:
        from convert.detection.distill_loss import DistillLoss
        distill = DistillLoss(detector_cfg.head, detector_cfg.num_classes)
        teacher_model = teacher.train_model
    gammas = []
    if train_cfg.l1_bn:
        from convert.prune.channel_graph import analyze
        gammas = [layer.gamma for layer in analyze(model).bn_layers()]
    clip_factor = train_cfg.clip_factor
    running_norm = tf.Variable(0.0, trainable=False, dtype=tf.float32)   # mean of recent (clipped) norms

    def make_step(with_parts: bool):
        @tf.function(reduce_retracing=True)
        def step(images, targets, gt):
            # the teacher's outputs are targets: computed outside the tape, which would otherwise record its
            # forward pass (and, persistent, keep its activations) for no gradient
            teacher_outs = teacher_model(images, training=False) if distill is not None else None
            with tf.GradientTape(persistent=with_parts) as tape:
                outs = model(images, training=True)
                parts = loss_fn(outs, list(targets), gt)
                objective = parts["total"]
                if gammas:
                    parts["l1"] = tf.add_n([tf.reduce_sum(tf.abs(g)) for g in gammas])
                if distill is not None:
                    parts["distill"] = distill(outs, teacher_outs)["total"]
                    objective = objective + train_cfg.distill_weight * parts["distill"]
            variables = model.trainable_variables
            grads = tape.gradient(objective, variables)
            norm = tf.linalg.global_norm(grads)
            out = dict(parts, grad_norm=norm)   # before clipping
            if with_parts:   # what each (weighted) part alone pulls: the balance between box, obj and cls
                for k, w in weights.items():
                    g = [x for x in tape.gradient(parts[k], variables) if x is not None]
                    out[f"grad_{k}"] = w * tf.linalg.global_norm(g)
            if clip_factor:
                limit = tf.where(running_norm > 0, clip_factor * running_norm, norm)
                scale = tf.minimum(1.0, limit / tf.maximum(norm, 1e-12))
                grads = [g * scale for g in grads]
                kept = tf.minimum(norm, limit)
                running_norm.assign(tf.where(running_norm > 0, 0.95 * running_norm + 0.05 * kept, kept))
                out["clip_limit"] = limit
            opt.apply_gradients(zip(grads, variables))
            if gammas:   # proximal L1 step (soft threshold), decoupled like AdamW's weight decay
                shrink = tf.cast(opt.learning_rate, tf.float32) * train_cfg.l1_bn
                for g in gammas:
                    g.assign(tf.sign(g) * tf.maximum(tf.abs(g) - shrink, 0.0))
            return out
        return step

    step_plain, step_logged = make_step(False), make_step(True)

    it = iter(data.tf_dataset(train_cfg.batch_size, shuffle=True, repeat=True))
    for epoch in range(start_epoch, train_cfg.epochs):
        sums = {"total": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0, **({"l1": 0.0} if gammas else {}),
                **({"distill": 0.0} if distill is not None else {})}
        t0 = time.time()
        bar = progress_bar(range(steps), desc=f"epoch {epoch + 1}/{train_cfg.epochs}", unit="step", enabled=progress)
        norms, limits, part_norms = [], [], {"box": [], "obj": [], "cls": []}
        for i in bar:
            images, targets, gt = next(it)
            logged = train_cfg.grad_log_every and (epoch * steps + i) % train_cfg.grad_log_every == 0
            parts = (step_logged if logged else step_plain)(images, targets, gt)
            vals = {k: float(v) for k, v in parts.items()}
            if not math.isfinite(vals["total"]):
                raise FloatingPointError(f"loss became {vals['total']} at epoch {epoch + 1} step {i + 1}; lower --lr")
            for k in sums:
                sums[k] += vals[k]
            norms.append(vals["grad_norm"])
            limits.append(vals.get("clip_limit", train_cfg.clip_norm or float("inf")))
            if logged:
                for k in part_norms:
                    part_norms[k].append(vals[f"grad_{k}"])
            bar.set_postfix({k: f"{v / (i + 1):.3f}" for k, v in sums.items()})
        means = {k: v / steps for k, v in sums.items()}
        record = {"epoch": epoch + 1, **{k: round(v, 5) for k, v in means.items()},
                  "lr": float(keras.ops.convert_to_numpy(opt.learning_rate)),
                  "seconds": round(time.time() - t0, 1), **gradient_summary(norms, part_norms, limits)}
        with open(files["history"], "a") as fh:
            fh.write(json.dumps(record) + "\n")
        _checkpoint(model, opt, files, epoch + 1)
        ratio = record.get("grad_box_over_obj")
        log(f"epoch {epoch + 1}/{train_cfg.epochs}  loss {means['total']:.3f} (box {means['box']:.3f} obj {means['obj']:.3f} "
            f"cls {means['cls']:.3f})" + (f" distill {means['distill']:.3f}" if distill is not None else "")
            + f"  grad norm median {record['grad_norm_median']:.1f}, clipped "
            f"{100 * record['clipped_share']:.0f}% of steps"
            + (f", box/obj gradient {ratio[1]:.2f} (min {ratio[0]:.2f}, max {ratio[2]:.2f})" if ratio else "")
            + f"  {record['seconds']:.0f}s")
    model.save_weights(str(files["final"]))
    return det


def gradient_summary(norms: list[float], part_norms: dict[str, list[float]], limits: list[float]) -> dict:
    """Per-epoch gradient statistics: global norm before clipping (median, max), the share of steps the clip
    scaled down (``limits``: each step's clip limit), and the median norm each weighted loss part pulls with on
    its own (sampled steps)."""
    out = {"grad_norm_median": round(float(np.median(norms)), 3), "grad_norm_max": round(float(np.max(norms)), 3),
           "clipped_share": round(float(np.mean([n > lim for n, lim in zip(norms, limits)])), 3)}
    for k, v in part_norms.items():
        if v:
            out[f"grad_{k}_median"] = round(float(np.median(v)), 3)
    if part_norms.get("box") and part_norms.get("obj"):
        ratio = np.asarray(part_norms["box"]) / np.maximum(np.asarray(part_norms["obj"]), 1e-12)
        out["grad_box_over_obj"] = [round(float(np.min(ratio)), 3), round(float(np.median(ratio)), 3),
                                    round(float(np.max(ratio)), 3)]
    return out


def _checkpoint(model, opt, files, epochs_done: int) -> None:
    """Write weights + optimizer state + state.json; state.json last (atomically) so a crash mid-write
    leaves the previous checkpoint usable."""
    tmp_w = files["weights"].with_name("tmp.weights.h5")
    model.save_weights(str(tmp_w))
    os.replace(tmp_w, files["weights"])
    tmp_o = files["optimizer"].with_name("optimizer.tmp.npz")
    np.savez(tmp_o, **{f"v{i}": v.numpy() for i, v in enumerate(opt.variables)})
    os.replace(tmp_o, files["optimizer"])
    tmp_s = files["state"].with_suffix(".tmp")
    tmp_s.write_text(json.dumps({"epochs_done": epochs_done, "step": int(opt.iterations.numpy())}) + "\n")
    os.replace(tmp_s, files["state"])
