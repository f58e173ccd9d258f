"""bench-detector (Keras vs float TFLite vs int8 TFLite, side by side) and experiment (Gaussian vs plain head).

Both print the figures they measured in one run; nothing here asserts a number.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from convert.cli_options import Applies
from convert.detection.cli_args import run_data, size_arg
from edge.contract.errors import UsageError


def register_bench(subparsers) -> None:
    p = subparsers.add_parser("bench-detector", help="Keras vs float32 vs int8 TFLite: mAP, latency, size side by side")
    p.add_argument("--run", required=True, help="run directory from train-detector")
    p.add_argument("--data", default=None, help="dataset (default: the run's training data); its val split is used")
    p.add_argument("--out", default=None, help="folder for the exported models and reports (default RUN/bench)")
    p.add_argument("--int8", default=None, help="use this int8 .tflite instead of exporting one")
    p.add_argument("--limit", type=int, default=None, help="only the first N validation images")
    p.add_argument("--calib-images", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for the latency figures")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.add_argument("--split", default="val", help="the split to measure on (default val; report figures on test)")
    p.add_argument("--io", dest="io_dtype", choices=("uint8", "int8"), default="uint8",
                   help="int8 model input/output type (int8: no QUANTIZE outside XNNPACK)")
    p.set_defaults(func=cmd_bench, applies=(
        Applies(("--io", "--calib-images"), lambda a: not a.int8,
                "they shape the int8 export, and --int8 {a.int8} is used instead of one"),))

    p = subparsers.add_parser("experiment", help="Gaussian vs plain YOLOv3 head: seeds x heads, FP analysis on a "
                              "held-out split")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--backbone", default="mobilenetv3_small")
    p.add_argument("--input-size", type=size_arg, default=(256, 256))
    p.add_argument("--layout", choices=("2scale", "3scale"), default="2scale")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2")
    p.add_argument("--heads", default="gaussian,plain")
    p.add_argument("--box-weight-gaussian", type=float, default=None, help="default: the training default")
    p.add_argument("--box-weight-plain", type=float, default=None, help="default: the training default")
    p.add_argument("--split", default="test", help="the split the figures are measured on (default test; "
                   "choose settings on val)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    p.add_argument("--resume", action="store_true", help="reuse finished runs in --out")
    p.set_defaults(func=cmd_experiment, applies=(
        Applies(("--box-weight-gaussian",), lambda a: "gaussian" in a.heads.split(","),
                "--heads {a.heads} trains no Gaussian head"),
        Applies(("--box-weight-plain",), lambda a: "plain" in a.heads.split(","),
                "--heads {a.heads} trains no plain head"),
    ))


def _keras_predictor(det):
    from convert.detection.evaluate import KerasPredictor
    from edge.decode import DetectionDecoder
    c = det.config
    dec = DetectionDecoder(head=c.head, num_classes=c.num_classes, strides=c.strides, anchors=c.anchors, labels=c.labels)
    return KerasPredictor(det.model, dec, c.input_size)


def cmd_bench(args) -> int:
    from convert.detection.datasets import load_dataset
    from convert.detection.evaluate import TFLitePredictor, evaluate
    from convert.detection.export import detector_metadata, export_detector, prepared_images
    from convert.detection.model import export_model
    from convert.detection.train import load_trained, set_threads

    run = Path(args.run)
    data = args.data or run_data(run)
    if data is None:
        raise UsageError("pass --data (the run does not record its dataset)")
    out = Path(args.out) if args.out else run / "bench"
    out.mkdir(parents=True, exist_ok=True)
    set_threads(2)
    det = load_trained(run)
    c = det.config
    val = load_dataset(data, args.split)
    models: dict[str, Path] = {}
    single = export_model(det)
    calib = None if args.int8 else prepared_images(load_dataset(data, "train"), c.input_size, args.calib_images)
    for q in ("float32", "int8"):
        if q == "int8" and args.int8:
            models[q] = Path(args.int8)
            continue
        path = out / f"{run.name}-{q}.tflite"
        meta = detector_metadata(architecture=f"{c.head}-yolov3-{c.backbone}-{c.layout}", model_id=f"{run.name}-{q}",
                                 input_hw=c.input_size, labels=c.labels, detection=c.detection_metadata(),
                                 quantization=q, io_dtype=args.io_dtype)
        export_detector(single, path, metadata=meta, quantization=q, io_dtype=args.io_dtype if q == "int8" else "uint8",
                        calibration=calib if q == "int8" else None)
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


def cmd_experiment(args) -> int:
    from convert.detection.datasets import load_dataset
    from convert.detection.model import DetectorConfig
    from convert.detection.rescoring import VARIANTS
    from convert.detection.study import analyze, summary_table
    from convert.detection.train import BOX_WEIGHT, TrainConfig, load_trained, run_dir_files, train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--seeds {args.seeds!r}: use comma-separated integers, e.g. 0,1,2") from None
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    if not seeds or not set(heads) <= {"gaussian", "plain"} or not heads:
        raise UsageError("--seeds needs at least one seed and --heads a subset of gaussian,plain")
    train_ds = load_dataset(args.data, "train")
    split = load_dataset(args.data, args.split)
    weights = {"gaussian": args.box_weight_gaussian, "plain": args.box_weight_plain}
    results: dict[str, list] = {}
    runs = {}
    for seed in seeds:
        for head in heads:
            run = out / f"{head}-s{seed}"
            tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
                               lr=args.lr, seed=seed,
                               box_weight=weights[head] if weights[head] is not None else BOX_WEIGHT[head])
            cfg = DetectorConfig(backbone=args.backbone, input_size=args.input_size, head=head, layout=args.layout,
                                 labels=train_ds.names)
            if not (args.resume and run_dir_files(run)["final"].is_file()):
                train(cfg, tcfg, train_ds, run, resume=args.resume and run_dir_files(run)["state"].is_file(),
                      progress=False)
            det = load_trained(run)
            variants = VARIANTS if head == "gaussian" else ("plain", "plain_agnostic")
            for variant, res in analyze(_keras_predictor(det), split, variants, args.limit).items():
                results.setdefault(f"{head}/{variant}", []).append(res)
                runs.setdefault(str(run), {})[variant] = res.__dict__
    print(f"\n{split.summary()}; per head and seed: {args.epochs} epochs x "
          f"{args.steps_per_epoch or len(train_ds.samples) // args.batch_size} steps x batch {args.batch_size}, "
          f"input {args.input_size[0]}x{args.input_size[1]}, seeds {seeds}")
    print(summary_table(results))
    (out / "experiment.json").write_text(json.dumps({"command": "convert-model " + " ".join(map(shlex.quote,
                                                     sys.argv[1:])), "split": args.split, "runs": runs},
                                                    indent=1, default=str) + "\n")
    return 0
