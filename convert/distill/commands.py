"""``convert-model distill``: a teacher labels footage, a Gaussian YOLOv3 student learns it, int8 export.

    convert-model distill --teacher TEACHER.tflite --footage vtest.avi [--footage FRAMES/ ...] --out RUN \\
        --class-map Person=person,Car=car --thresholds person=0.4 --output student-int8.tflite

Everything after labelling is a normal detector run (``RUN/round1``), so ``evaluate``, ``export-detector`` and
``bench-detector`` work on it too; ``--resume`` continues an interrupted run (labels are kept, training goes on
from its last epoch).
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from convert.errors import UsageError


def _size(text: str) -> tuple[int, int]:
    from convert.detection.commands import _size as size
    return size(text)


def register(subparsers) -> None:
    p = subparsers.add_parser("distill", help="train a Gaussian YOLOv3 for a camera's scene from a teacher, without labels")
    p.add_argument("--teacher", required=True, help="teacher .tflite with sigmawatch metadata (embedded or sidecar)")
    p.add_argument("--footage", action="append", required=True, help="video file or image folder (repeatable)")
    p.add_argument("--out", required=True, help="run directory (labels, student runs)")
    p.add_argument("--class-map", required=True, help="teacher label -> student class, e.g. Person=person,Car=car")
    p.add_argument("--thresholds", default=None, help="per student class minimum teacher score, e.g. person=0.4")
    p.add_argument("--threshold", type=float, default=0.5, help="default minimum teacher score (default 0.5)")
    p.add_argument("--tta", action="store_true", help="teacher test-time augmentation: horizontal flip, merged by NMS")
    p.add_argument("--frame-step", type=int, default=1, help="label every n-th video frame (default 1)")
    p.add_argument("--segment-seconds", type=float, default=8.0, help="length of a time segment (default 8 s)")
    p.add_argument("--holdout-every", type=int, default=5, help="hold out every n-th segment (default 5; 0 = none)")
    p.add_argument("--holdout-offset", type=int, default=2, help="which segment of each n is held out (default 2)")
    p.add_argument("--gap-seconds", type=float, default=1.0, help="frames this close to a held-out segment are unused")
    p.add_argument("--backbone", default="mobilenetv3_small", help="student backbone (mobilenetv3_small, mixnet_s, ...)")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--input-size", type=_size, default=(192, 256), help="student input HxW (default 192x256, 4:3)")
    p.add_argument("--neck-channels", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.1, help="dropout before the heads (Noisy-Student noise)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--rounds", type=int, default=1, help="Noisy-Student iterations: later rounds learn the "
                   "previous student's labels (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", default=None, help="export the last student to this int8 .tflite")
    p.add_argument("--model-id", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_distill)


def cmd_distill(args) -> int:
    from convert.distill.labeling import LabelConfig, parse_class_map, parse_thresholds
    from convert.distill.run import StudentConfig, distill
    class_map = parse_class_map(args.class_map)
    classes = list(dict.fromkeys(class_map.values()))
    if args.rounds < 1 or args.frame_step < 1:
        raise UsageError("--rounds and --frame-step must be at least 1")
    label_cfg = LabelConfig(class_map=class_map, thresholds=parse_thresholds(args.thresholds, classes, args.threshold),
                            tta_flip=args.tta, frame_step=args.frame_step, segment_s=args.segment_seconds,
                            holdout_every=args.holdout_every, holdout_offset=args.holdout_offset,
                            gap_s=args.gap_seconds)
    student = StudentConfig(backbone=args.backbone, width=args.width, input_hw=tuple(args.input_size),
                            neck_channels=args.neck_channels, dropout=args.dropout, epochs=args.epochs,
                            batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, lr=args.lr,
                            seed=args.seed, threads=args.threads, rounds=args.rounds)
    command = "convert-model " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run = distill(teacher_path=Path(args.teacher), sources=[Path(f) for f in args.footage], out=Path(args.out),
                  label_cfg=label_cfg, student=student, resume=args.resume, progress=not args.no_progress,
                  command=command)
    print(f"student: {run}")
    if args.output:
        report = export_student(run, Path(args.out), Path(args.output), args.model_id, command)
        print(report.table())
    return 0


def export_student(run: Path, out: Path, output: Path, model_id: str | None, command: str):
    """int8 export of a distilled student; its metadata names the teacher and the footage it was made from."""
    from convert.detection.datasets import load_dataset
    from convert.detection.export import detector_metadata, export_detector, prepared_images
    from convert.detection.model import export_model
    from convert.detection.train import load_trained
    det = load_trained(run)
    cfg = det.config
    prov = json.loads((out / "data" / "distill.json").read_text())
    data = out / "data"
    calib = prepared_images(load_dataset(data, "train"), cfg.input_size, 200, seed=0)
    held = prepared_images(load_dataset(data, "val"), cfg.input_size, 20, seed=1)
    footage = [{"name": f["name"], "sha256": f["sha256"]} for f in prov["footage"]]
    meta = detector_metadata(
        architecture=f"{cfg.head}-yolov3-{cfg.backbone}-{cfg.layout}", model_id=model_id or f"distilled-{out.name}",
        input_hw=cfg.input_size, labels=cfg.labels, detection=cfg.detection_metadata(), quantization="int8",
        io_dtype="uint8", source=command,
        extra={"distillation": {"teacher": {k: prov["teacher"][k] for k in ("model_id", "architecture", "sha256")},
                                "footage": footage, "label_config": prov["label_config"],
                                "specialized_to": ", ".join(f["name"] for f in footage)},
               "training_command": command})
    return export_detector(export_model(det), output, metadata=meta, quantization="int8", io_dtype="uint8",
                           calibration=calib, heldout=held)
