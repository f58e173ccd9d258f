"""bench-detector (Keras vs float TFLite vs int8 TFLite, side by side) and experiment (Gaussian vs plain head).

Both print the figures they measured in one run; nothing here asserts a number.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from edge.contract.errors import UsageError


def register_bench(subparsers) -> None:
    from convert.detection.commands import _size
    p = subparsers.add_parser("bench-detector", help="Keras vs float32 vs int8 TFLite: mAP, latency, size side by side")
    p.add_argument("--run", required=True, help="run directory from train-detector")
    p.add_argument("--data", default=None, help="dataset (default: the run's training data); its val split is used")
    p.add_argument("--out", default=None, help="folder for the exported models and reports (default RUN/bench)")
    p.add_argument("--int8", default=None, help="use this int8 .tflite instead of exporting one")
    p.add_argument("--limit", type=int, default=None, help="only the first N validation images")
    p.add_argument("--calib-images", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for the latency figures")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.set_defaults(func=cmd_bench)

    p = subparsers.add_parser("experiment", help="Gaussian vs plain YOLOv3 head at the same training budget")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--backbone", default="mobilenetv3_small")
    p.add_argument("--input-size", type=_size, default=(256, 256))
    p.add_argument("--layout", choices=("2scale", "3scale"), default="2scale")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="only the first N validation images")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.add_argument("--resume", action="store_true", help="reuse finished runs in --out")
    p.set_defaults(func=cmd_experiment)


def _keras_predictor(det):
    from convert.detection.evaluate import KerasPredictor
    from edge.decode import DetectionDecoder
    c = det.config
    dec = DetectionDecoder(head=c.head, num_classes=c.num_classes, strides=c.strides, anchors=c.anchors, labels=c.labels)
    return KerasPredictor(det.model, dec, c.input_size)


def cmd_bench(args) -> int:
    from convert.detection.commands import _run_data
    from convert.detection.datasets import load_dataset
    from convert.detection.evaluate import TFLitePredictor, evaluate
    from convert.detection.export import detector_metadata, export_detector, prepared_images
    from convert.detection.model import export_model
    from convert.detection.train import load_trained, set_threads

    run = Path(args.run)
    data = args.data or _run_data(run)
    if data is None:
        raise UsageError("pass --data (the run does not record its dataset)")
    out = Path(args.out) if args.out else run / "bench"
    out.mkdir(parents=True, exist_ok=True)
    set_threads(2)
    det = load_trained(run)
    c = det.config
    val = load_dataset(data, "val")
    models: dict[str, Path] = {}
    single = export_model(det)
    calib = prepared_images(load_dataset(data, "train"), c.input_size, args.calib_images)
    for q in ("float32", "int8"):
        if q == "int8" and args.int8:
            models[q] = Path(args.int8)
            continue
        path = out / f"{run.name}-{q}.tflite"
        meta = detector_metadata(architecture=f"{c.head}-yolov3-{c.backbone}-{c.layout}", model_id=f"{run.name}-{q}",
                                 input_hw=c.input_size, labels=c.labels, detection=c.detection_metadata(),
                                 quantization=q, io_dtype="uint8")
        export_detector(single, path, metadata=meta, quantization=q, calibration=calib if q == "int8" else None)
        models[q] = path
    reports = [evaluate(_keras_predictor(det), val, score_threshold=args.score_threshold, out_dir=out, name="keras",
                        limit=args.limit)]
    sizes = {"keras": None}
    for q, path in models.items():
        pred = TFLitePredictor(path, threads=args.threads)
        reports.append(evaluate(pred, val, score_threshold=args.score_threshold, out_dir=out, name=f"tflite-{q}",
                                limit=args.limit))
        sizes[f"tflite-{q}"] = path.stat().st_size
    print(f"\n{val.summary()}  (latency: batch-8 Keras / TFLite {args.threads} thread(s), this machine, shared CPU)")
    header = f"{'model':<16}{'mAP@0.5':>9}{'mAP@.5:.95':>12}{'TP':>6}{'FP':>6}{'rho(s,IoU)':>12}{'ms/img':>9}{'MB':>8}"
    print(header)
    print("-" * len(header))
    rows = []
    for r in reports:
        size = sizes.get(r.model)
        rho = "n/a" if r.spearman_rho is None else f"{r.spearman_rho:+.3f}"
        print(f"{r.model:<16}{100 * r.map50:9.2f}{100 * r.map50_95:12.2f}{r.tp:6d}{r.fp:6d}{rho:>12}"
              f"{1000 * r.seconds_per_image:9.1f}{'' if size is None else f'{size / 1e6:8.2f}'}")
        rows.append({**r.summary(), "size_bytes": size})
    f, q = reports[1], reports[2]
    delta = 100 * (q.map50 - f.map50)
    print(f"int8 vs float32 TFLite: mAP@0.5 {delta:+.2f} points, mAP@.5:.95 {100 * (q.map50_95 - f.map50_95):+.2f} points, "
          f"size x{sizes['tflite-int8'] / sizes['tflite-float32']:.2f}, latency x{q.seconds_per_image / f.seconds_per_image:.2f}")
    (out / "bench.json").write_text(json.dumps({"rows": rows, "int8_minus_float_map50_points": delta,
                                                "command": "convert-model " + " ".join(map(shlex.quote, sys.argv[1:]))},
                                               indent=1) + "\n")
    return 0


def compare_heads(reports: dict, recall_levels=(0.5, 0.7, 0.8, 0.9)) -> dict:
    """FP counts of each head at recall levels both heads reach (the paper's 'FP at equal recall')."""
    from convert.detection.evaluate import fp_at_recall, max_recall
    g, p = reports["gaussian"], reports["plain"]
    reach = min(max_recall(g.detections, g.ground_truths), max_recall(p.detections, p.ground_truths))
    levels = [lv for lv in recall_levels if lv <= reach]
    common = round(0.95 * reach, 3)
    if common not in levels:
        levels.append(common)
    rows = []
    for lv in sorted(levels):
        fg, fp_ = fp_at_recall(g.detections, g.ground_truths, lv), fp_at_recall(p.detections, p.ground_truths, lv)
        change = None if not fp_ or fg is None else (fg - fp_) / fp_
        rows.append({"recall": lv, "fp_gaussian": fg, "fp_plain": fp_, "fp_change": change})
    return {"max_common_recall": reach, "fp_at_recall": rows}


def cmd_experiment(args) -> int:
    from convert.detection.datasets import load_dataset
    from convert.detection.evaluate import evaluate
    from convert.detection.model import DetectorConfig
    from convert.detection.train import TrainConfig, load_trained, run_dir_files, train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_ds = load_dataset(args.data, "train")
    val = load_dataset(args.data, "val")
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, lr=args.lr,
                       seed=args.seed)
    reports = {}
    for head in ("gaussian", "plain"):
        run = out / head
        cfg = DetectorConfig(backbone=args.backbone, input_size=args.input_size, head=head, layout=args.layout,
                             labels=train_ds.names)
        if not (args.resume and run_dir_files(run)["final"].is_file()):
            train(cfg, tcfg, train_ds, run, resume=args.resume and run_dir_files(run)["state"].is_file())
        det = load_trained(run)
        reports[head] = evaluate(_keras_predictor(det), val, score_threshold=args.score_threshold, out_dir=out,
                                 name=head, limit=args.limit)
    cmp = compare_heads(reports)
    print(f"\n{val.summary()}; budget per head: {args.epochs} epochs x "
          f"{args.steps_per_epoch or len(train_ds.samples) // args.batch_size} steps x batch {args.batch_size}")
    for head in ("gaussian", "plain"):
        print(reports[head].table_row())
    print("false positives at equal recall (IoU 0.5):")
    for row in cmp["fp_at_recall"]:
        ch = "n/a" if row["fp_change"] is None else f"{100 * row['fp_change']:+.1f}%"
        print(f"  recall {row['recall']:.3f}: gaussian {row['fp_gaussian']}  plain {row['fp_plain']}  change {ch}")
    g = reports["gaussian"]
    if g.spearman_rho is not None:
        print(f"Spearman(mean sigma, IoU), gaussian head: {g.spearman_rho:+.3f} (n={g.spearman_n}, p={g.spearman_p:.2g})")
    result = {"command": "convert-model " + " ".join(map(shlex.quote, sys.argv[1:])),
              "reports": {k: v.summary() for k, v in reports.items()}, **cmp}
    (out / "experiment.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0
