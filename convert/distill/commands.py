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

import numpy as np

from convert.cli_options import Applies
from convert.detection.cli_args import size_arg
from edge.contract.errors import InputError, UsageError


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
    p.add_argument("--segment-seconds", type=float, default=8.0, help="length of a time segment, seconds")
    p.add_argument("--holdout-every", type=int, default=5, help="hold out every n-th segment (default 5; 0 = none)")
    p.add_argument("--holdout-offset", type=int, default=2, help="which segment of each n is held out (default 2)")
    p.add_argument("--gap-seconds", type=float, default=1.0, help="frames this close to a held-out segment are unused")
    p.add_argument("--backbone", default="mobilenetv3_small", help="student backbone (mobilenetv3_small, mixnet_s, ...)")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--input-size", type=size_arg, default=(192, 256), help="student input HxW (default 192x256, 4:3)")
    p.add_argument("--neck-channels", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.1, help="dropout before the heads (Noisy-Student noise)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--rounds", type=int, default=1, help="Noisy-Student iterations: later rounds learn the "
                   "previous student's labels (default 1)")
    p.add_argument("--relabel-threshold", type=float, default=0.4,
                   help="rounds > 1: minimum student score for its relabelling (default 0.4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", default=None, help="export the last student to this int8 .tflite")
    p.add_argument("--model-id", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_distill, applies=(
        Applies(("--model-id",), lambda a: bool(a.output), "it names the export, and there is no --output"),
        Applies(("--relabel-threshold",), lambda a: a.rounds > 1,
                "it applies to rounds after the first, and --rounds is {a.rounds}"),
        Applies(("--holdout-offset",), lambda a: a.holdout_every > 0, "--holdout-every 0 holds out no segment"),
    ))
    register_bench(subparsers)
    register_study(subparsers)


def cmd_distill(args) -> int:
    from convert.distill.labeling import LabelConfig, parse_class_map, parse_thresholds
    from convert.distill.run import StudentConfig, distill
    class_map = parse_class_map(args.class_map)
    classes = list(dict.fromkeys(class_map.values()))
    if args.rounds < 1 or args.frame_step < 1:
        raise UsageError("--rounds and --frame-step must be at least 1")
    from convert.cli_options import was_given
    named = {part.partition("=")[0].strip() for part in (args.thresholds or "").split(",") if part.strip()}
    if was_given(args, "threshold") and set(classes) <= named:
        raise UsageError("--threshold has no effect here: --thresholds sets every class "
                         f"({', '.join(classes)}); remove one of them")
    label_cfg = LabelConfig(class_map=class_map, thresholds=parse_thresholds(args.thresholds, classes, args.threshold),
                            tta_flip=args.tta, frame_step=args.frame_step, segment_s=args.segment_seconds,
                            holdout_every=args.holdout_every, holdout_offset=args.holdout_offset,
                            gap_s=args.gap_seconds)
    student = StudentConfig(backbone=args.backbone, width=args.width, input_hw=tuple(args.input_size),
                            neck_channels=args.neck_channels, dropout=args.dropout, epochs=args.epochs,
                            batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, lr=args.lr,
                            seed=args.seed, threads=args.threads, rounds=args.rounds,
                            relabel_threshold=args.relabel_threshold)
    command = "convert-model " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run = distill(teacher_path=Path(args.teacher), sources=[Path(f) for f in args.footage], out=Path(args.out),
                  label_cfg=label_cfg, student=student, resume=args.resume, progress=not args.no_progress,
                  command=command)
    print(f"student: {run}")
    if args.output:
        from convert.next_steps import next_steps
        report = export_student(run, Path(args.out), Path(args.output), args.model_id, command)
        print(report.table())
        print(next_steps(report.path, "detection"))
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


GOALS = {"speed_ratio": 1 / 6, "map_vs_teacher": 0.65, "int8_drop_points": 1.0, "spearman": -0.3}


def register_bench(subparsers) -> None:
    p = subparsers.add_parser("bench-distilled", help="a distilled student on real pixels: held-out segments vs the "
                              "teacher, labelled photos, Spearman(sigma, IoU), speed vs the teacher, sigma figure")
    p.add_argument("--run", required=True, help="the distill --out directory")
    p.add_argument("--int8", required=True, help="the student's int8 export")
    p.add_argument("--teacher", default=None, help="teacher .tflite (default: the one the run was labelled with)")
    p.add_argument("--photos", default=None, help="folder of VOC .jpg + .xml (default: the fetched labelme photos)")
    p.add_argument("--threshold", type=float, default=0.3, help="score threshold for TP/FP/FN and the figure")
    p.add_argument("--out", default=None, help="folder for the JSON report and the PNG (default RUN/bench)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    p.add_argument("--figure-boxes-only", action="store_true",
                   help="draw the sigma figure on a plain canvas of the frame's size, without the frame's pixels "
                        "(for a figure that is published while the footage may not be: third-party video)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    import cv2

    from convert.distill.evaluate_real import (
        Runner,
        heldout,
        invoke_times,
        predict_dataset,
        score,
        sigma_figure,
        voc_dataset,
        write_json,
    )
    from convert.realdata.manifest import PHOTOS, real_path
    run_out = Path(args.run)
    prov_file = run_out / "data" / "distill.json"
    if not prov_file.is_file():
        raise UsageError(f"{run_out} is not a distill run (no data/distill.json)")
    prov = json.loads(prov_file.read_text())
    rec = json.loads((run_out / "distill.json").read_text()) if (run_out / "distill.json").is_file() else None
    student_run = Path(rec["rounds"][-1]["run"]) if rec else run_out / "round1"
    class_map = prov["label_config"]["class_map"]
    teacher_path = Path(args.teacher or prov["teacher"]["path"])
    out = Path(args.out) if args.out else run_out / "bench"
    out.mkdir(parents=True, exist_ok=True)
    th = args.threshold

    val = heldout(run_out)
    print(f"held-out segments: {len(val.samples)} frames, {sum(len(s.boxes) for s in val.samples)} teacher boxes "
          f"(reference = the teacher's labels, thresholds {prov['label_config']['thresholds']})")
    float_student = Runner("student float (Keras)", run=student_run)
    int8_student = Runner("student int8", tflite=Path(args.int8), threads=1)
    teacher = Runner("teacher", tflite=teacher_path, threads=1, class_map=class_map)
    int8_preds = predict_dataset(int8_student, val)
    rows = {"heldout_float": score(float_student.name, predict_dataset(float_student, val), val, th),
            "heldout_int8": score(int8_student.name, int8_preds, val, th)}
    for r in rows.values():
        print("  " + r.row())

    photos_dir = Path(args.photos) if args.photos else real_path(PHOTOS)
    photos = voc_dataset(photos_dir, val.names)
    print(f"labelled photos ({photos_dir}): {len(photos.samples)} images, "
          f"{sum(len(s.boxes) for s in photos.samples)} ground-truth boxes of {val.names}")
    for key, runner in (("photos_teacher", teacher), ("photos_int8", int8_student)):
        rows[key] = score(runner.name, predict_dataset(runner, photos), photos, th)
        print("  " + rows[key].row())

    models = {"teacher": teacher.engine, "student int8": int8_student.engine}   # both on 1 interpreter thread
    rng = np.random.default_rng(0)
    for eng in models.values():
        eng.model.set_input(rng.integers(0, 255, eng.model.input_shape[1:], dtype=np.uint8), eng.mean, eng.std)
    models = {k: eng.model for k, eng in models.items()}
    ms = invoke_times(models, rounds=args.rounds)
    ratio = ms["student int8"] / ms["teacher"]
    print(f"invoke, 1 thread, median of {args.rounds} interleaved rounds: teacher {ms['teacher']:.2f} ms, "
          f"student int8 {ms['student int8']:.2f} ms -> ratio {ratio:.3f} (1/{1 / ratio:.1f})")

    best = max(range(len(val.samples)), key=lambda i: len(val.samples[i].boxes))
    frame = cv2.imread(str(val.samples[best].image), cv2.IMREAD_COLOR)
    fig = sigma_figure(frame, int8_preds[best], teacher.predict(frame), out / "sigma_bands.png",
                       f"{val.samples[best].image.name}: student int8 boxes (red), +-1 sigma bands (orange), "
                       f"teacher (dashed)", th, pixels=not args.figure_boxes_only)
    print(f"figure: {fig}")

    f, q = rows["heldout_float"], rows["heldout_int8"]
    goals = {
        "student int8 invoke <= 1/6 of the teacher's (1 thread)": (ratio, ratio <= GOALS["speed_ratio"]),
        "student mAP@0.5 vs teacher on held-out segments >= 0.65": (q.map50, q.map50 >= GOALS["map_vs_teacher"]),
        "int8 within 1 point of the float student": (100 * (f.map50 - q.map50),
                                                     abs(100 * (f.map50 - q.map50)) <= GOALS["int8_drop_points"]),
        "Spearman(sigma, IoU) <= -0.3 on real frames": (q.spearman_rho,
                                                       q.spearman_rho is not None and q.spearman_rho <= GOALS["spearman"]),
    }
    for k, (v, ok) in goals.items():
        print(f"  {'met' if ok else 'NOT met':8s} {k}: {v if v is None else round(float(v), 3)}")
    write_json(out / "bench.json", {"rows": {k: v.__dict__ for k, v in rows.items()}, "invoke_ms": ms,
                                     "ratio": ratio, "goals": {k: [v, ok] for k, (v, ok) in goals.items()},
                                     "figure": str(fig)})
    return 0


def register_study(subparsers) -> None:
    p = subparsers.add_parser("study-footage", help="a distilled Gaussian student on the held-out frames of its real "
                              "footage, scored against the teacher's boxes: with / without (1 - mean sigma), "
                              "sigma-weighted voting, FP at equal recall, FP types")
    p.add_argument("--student", required=True, help="the student's .tflite (made by convert-model distill)")
    p.add_argument("--footage", required=True, help="the video the student was distilled from (its sha256 is checked)")
    p.add_argument("--teacher", default=None, help="teacher .tflite (default: the fetched MediaPipe SSD in the cache)")
    p.add_argument("--frame-step", type=int, default=1, help="every N-th held-out frame (default 1: all)")
    p.add_argument("--limit", type=int, default=None, help="at most N held-out frames")
    p.add_argument("--threads", type=int, default=2, help="interpreter threads for each model")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap rounds over frames for the "
                   "differences between variants (0: none)")
    p.add_argument("--out", default=None, help="write the report as JSON to this file")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_study_footage)


def cmd_study_footage(args) -> int:
    from convert.console import progress as progress_bar
    from convert.distill.sigma_footage import study_footage
    from convert.realdata.manifest import TEACHER_MODEL, real_path
    from edge.config import ModelConfig, Settings
    from edge.engine import Engine

    teacher_path = Path(args.teacher) if args.teacher else real_path(TEACHER_MODEL)
    for what, path in (("--student", Path(args.student)), ("teacher", teacher_path), ("--footage", Path(args.footage))):
        if not path.is_file():
            hint = " (fetch it: python -m convert.realdata.fetch)" if what != "--student" else ""
            raise InputError(f"{what} {path} does not exist{hint}")
    student = Engine(ModelConfig(path=Path(args.student), threads=args.threads, task="detection"), Settings())
    teacher = Engine(ModelConfig(path=teacher_path, threads=args.threads, task="detection"), Settings())
    bar = progress_bar(desc="held-out frames", unit="frame", enabled=not args.no_progress)
    study = study_footage(student, teacher, Path(args.footage), frame_step=args.frame_step, limit=args.limit,
                          bootstrap_rounds=args.bootstrap, progress=lambda n: bar.update(n))
    bar.close()
    cfg = study.label_config
    print(f"{Path(args.student).name} on {len(study.frames)} held-out frames of {Path(args.footage).name} "
          f"(segments of {cfg['segment_s']} s, every {cfg['holdout_every']}-th from {cfg['holdout_offset']}); "
          f"reference: the teacher {teacher_path.name} ({study.reference_boxes}, thresholds {cfg['thresholds']}) - a "
          "pseudo ground truth from a stronger model, not human labels")
    print(study.table().replace("mean±sd over seeds; * = not every seed reaches it", "one student")
          .replace("lowest recall any seed reaches", "highest recall reached")
          .replace("a - b per seed, mean±sd over seeds; * = not every seed reaches that recall", "a - b"))
    if args.out:
        Path(args.out).write_text(json.dumps(study.to_json(), indent=1, default=str) + "\n")
        print(f"report: {args.out}")
    return 0
