"""``convert-model`` subcommands for detectors (contract: ``register(subparsers)``, handlers return an exit code).

synth             write a synthetic YOLO-format dataset
anchors           k-means anchors from a dataset's boxes
train-detector    train a Gaussian (or plain) YOLOv3 detector; checkpoints, --resume
export-detector   export a trained run (or an imported darknet model) to TFLite with metadata
evaluate          mAP@0.5, mAP@[.5:.95], TP/FP, Spearman(sigma, IoU) for a run directory or a .tflite file
import-darknet    read a darknet .cfg + .weights; optionally export it
bench-detector    Keras vs float TFLite vs int8 TFLite: mAP, latency, size side by side
experiment        Gaussian vs plain head at the same budget (the paper's claims)
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from convert.cli_options import Applies
from convert.detection.cli_args import run_data, size_arg, write_run_data
from edge.contract.errors import InputError, UsageError


def _command_line() -> str:
    return "convert-model " + " ".join(shlex.quote(a) for a in sys.argv[1:])


# train-detector options that define the network; --init-weights RUN takes them from RUN/detector.json instead
_ARCHITECTURE_FLAGS = ("--backbone", "--width", "--input-size", "--head", "--layout", "--neck-channels", "--anchors")


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="write a synthetic detection dataset (YOLO format)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train", type=int, default=2000, help="training images (default 2000)")
    p.add_argument("--val", type=int, default=300, help="validation images, for choices (default 300)")
    p.add_argument("--test", type=int, default=0, help="test images, for the figures you report (own random "
                   "stream; default 0 = none)")
    p.add_argument("--ambiguous", action="store_true", help="real localization ambiguity: strong blur, large "
                   "occluders, objects cut by the border")
    p.add_argument("--size", type=size_arg, default=(256, 256), help="image size N or HxW (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-noise", type=float, default=0.0, help="box jitter std as a fraction of box size (train only)")
    p.add_argument("--max-objects", type=int, default=6)
    p.set_defaults(func=cmd_synth)

    p = subparsers.add_parser("anchors", help="k-means anchors (1 - IoU distance) from a dataset's boxes")
    p.add_argument("--data", required=True, help="YOLO folder or COCO .json")
    p.add_argument("--split", default="train")
    p.add_argument("--input-size", type=size_arg, default=(256, 256), help="model input N or HxW; boxes are letterboxed to it")
    p.add_argument("-k", type=int, default=9, help="number of anchors (9 for three scales, 6 for two)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_anchors)

    p = subparsers.add_parser("train-detector", help="train a Gaussian YOLOv3 (or plain) detector")
    p.add_argument("--data", required=True, help="YOLO folder (images/train, labels/train) or COCO .json")
    p.add_argument("--out", required=True, help="run directory (checkpoints, config, history)")
    p.add_argument("--backbone", default="mobilenetv3_small", help="darknet53, darknet_small or a registry name (mobilenetv3_small, mixnet_s, ...)")
    p.add_argument("--width", type=float, default=1.0, help="backbone width multiplier")
    p.add_argument("--input-size", type=size_arg, default=(256, 256))
    p.add_argument("--head", choices=("gaussian", "plain"), default="gaussian")
    p.add_argument("--layout", choices=("2scale", "3scale"), default="2scale")
    p.add_argument("--neck-channels", type=int, default=96)
    p.add_argument("--anchors", default="synth", help="default anchor set (synth, coco, bdd, kitti) or 'kmeans'")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--box-weight", type=float, default=None, help="weight of the box loss (default: per head, "
                   "convert.detection.train.BOX_WEIGHT)")
    p.add_argument("--obj-weight", type=float, default=1.0, help="weight of the objectness loss")
    p.add_argument("--cls-weight", type=float, default=1.0, help="weight of the class loss")
    p.add_argument("--clip-norm", type=float, default=10.0, help="fixed global gradient-norm clip; 0 = none")
    p.add_argument("--clip-factor", type=float, default=None,
                   help="adaptive clip instead: only steps whose norm exceeds this many times the running mean")
    p.add_argument("--grad-log-every", type=int, default=25,
                   help="log the gradient norm of each loss part every N steps (0 = never)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--init-weights", metavar="RUN", default=None,
                   help="start a new run from the trained weights of this run directory (its final weights, else "
                   "its last checkpoint) with a fresh optimizer and schedule; the architecture (pruned widths "
                   "included) is RUN's detector.json")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train, applies=(
        Applies(("--clip-norm",), lambda a: a.clip_factor is None, "--clip-factor replaces the fixed clip"),
        Applies(_ARCHITECTURE_FLAGS, lambda a: a.init_weights is None,
                "--init-weights RUN takes the architecture from RUN/detector.json; leave the architecture "
                "options out"),
        Applies(("--init-weights",), lambda a: not a.resume, "--resume continues the run in --out from its own "
                "checkpoint; start a new --out to initialize from another run"),
    ))

    p = subparsers.add_parser("export-detector", help="export a trained detector run to TFLite (+ metadata)")
    p.add_argument("--run", required=True, help="run directory from train-detector")
    p.add_argument("--output", required=True, help="output .tflite")
    p.add_argument("--quantization", choices=("int8", "float32", "float16", "dynamic"), default="int8")
    p.add_argument("--io", dest="io_dtype", choices=("uint8", "int8"), default="uint8",
                   help="int8 input/output type (int8: nothing left outside XNNPACK; uint8: camera pixels as they are)")
    p.add_argument("--calib-data", help="dataset for int8 calibration (its train split) and the fidelity check (its "
                   "val split) (default: the run's training data)")
    p.add_argument("--calib-images", type=int, default=200, help="int8 calibration images")
    p.add_argument("--heldout-images", type=int, default=20, help="validation images for the fidelity check (0: none)")
    p.add_argument("--model-id", default=None, help="id stored in the metadata (default: gyolo-BACKBONE-SIZE-RUN)")
    p.add_argument("--edgetpu", action="store_true", help="Edge TPU-ready int8 (uint8 I/O); runs edgetpu_compiler "
                   "if installed")
    p.set_defaults(func=cmd_export, applies=(
        Applies(("--io", "--calib-images"), lambda a: a.quantization == "int8",
                "it applies to int8 exports only (this one is {a.quantization})"),
        Applies(("--calib-data",), lambda a: a.quantization == "int8" or a.heldout_images > 0,
                "a {a.quantization} export with --heldout-images 0 reads no images"),
    ))

    p = subparsers.add_parser("evaluate", help="mAP, TP/FP and Spearman(sigma, IoU) of a run directory or .tflite")
    p.add_argument("--model", required=True, help="run directory (Keras) or .tflite file")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--out", default=None, help="folder for the scatter PNG and JSON (default: next to the model)")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("import-darknet", help="import a darknet .cfg + .weights (YOLOv3 / Gaussian YOLOv3)")
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights", default=None, help="darknet .weights (omit to check the cfg only)")
    p.add_argument("--names", default=None, help="class names file, one a line")
    p.add_argument("--input-size", type=size_arg, default=None, help="override the cfg's input size")
    p.add_argument("--output", default=None, help="export to this .tflite")
    p.add_argument("--quantization", choices=("int8", "float32", "float16", "dynamic"), default="int8",
                   help="--output: the export's quantization")
    p.add_argument("--calib-data", default=None, help="images for int8 calibration (YOLO folder)")
    p.add_argument("--calib-images", type=int, default=100, help="int8 calibration images")
    p.set_defaults(func=cmd_import_darknet, applies=(
        Applies(("--quantization", "--calib-data", "--calib-images"), lambda a: bool(a.output),
                "it applies to the export, and there is no --output"),
        Applies(("--calib-data", "--calib-images"), lambda a: a.quantization == "int8",
                "it applies to int8 exports only (this one is {a.quantization})"),
    ))

    from convert.detection.bench import register_bench
    register_bench(subparsers)


# --------------------------------------------------------------------------- handlers
def cmd_synth(args) -> int:
    from convert.console import progress as progress_bar
    from convert.detection.synthetic import SynthConfig, write_dataset
    make = SynthConfig.ambiguous if args.ambiguous else SynthConfig
    try:
        cfg = make(label_noise=args.label_noise, max_objects=args.max_objects).validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    bar = progress_bar(desc="synth", total=args.train + args.val + args.test, unit="img")
    out = write_dataset(args.out, train=args.train, val=args.val, test=args.test, width=args.size[1],
                        height=args.size[0], seed=args.seed, config=cfg, progress=lambda *_: bar.update(1))
    bar.close()
    test = f" + {args.test} test" if args.test else ""
    print(f"wrote {args.train} train + {args.val} val{test} images to {out} (classes: {', '.join(cfg.classes)}"
          f"{'; ambiguous localization' if args.ambiguous else ''})")
    print(f"next: convert-model train-detector --data {shlex.quote(str(out))} --out runs/NAME --input-size "
          f"{args.size[0]}x{args.size[1]}")
    return 0


def cmd_anchors(args) -> int:
    from convert.detection.anchors import kmeans_anchors
    from convert.detection.datasets import load_dataset
    ds = load_dataset(args.data, args.split)
    wh = ds.box_sizes((args.input_size[1], args.input_size[0]))
    anchors, iou = kmeans_anchors(wh, args.k, args.seed)
    print(f"{ds.summary()}; input {args.input_size[0]}x{args.input_size[1]}")
    print("anchors (w,h): " + ", ".join(f"{w:.0f},{h:.0f}" for w, h in anchors))
    print(f"mean best IoU: {iou:.3f}")
    return 0


def _detector_config(args, ds):
    from convert.detection.anchors import kmeans_anchors, split_by_stride, strides_for
    from convert.detection.model import DetectorConfig
    anchors = None
    if args.anchors == "kmeans":
        strides = strides_for(args.layout)
        a, _ = kmeans_anchors(ds.box_sizes((args.input_size[1], args.input_size[0])), 3 * len(strides), args.seed)
        anchors = split_by_stride(a, strides)
    try:
        return DetectorConfig(backbone=args.backbone, width=args.width, input_size=args.input_size, head=args.head,
                              layout=args.layout, labels=ds.names, anchors=anchors,
                              anchors_from=args.anchors if anchors is None else "synth",
                              neck_channels=args.neck_channels)
    except ValueError as exc:
        from edge.contract.errors import ConfigError
        raise ConfigError(f"detector config: {exc}") from exc


def cmd_train(args) -> int:
    from convert.detection.datasets import load_dataset
    from convert.detection.train import BOX_WEIGHT, TrainConfig, train
    ds = load_dataset(args.data, "train")
    print(ds.summary())
    init = None
    if args.init_weights:
        from convert.detection.train import trained_weights
        cfg, init = trained_weights(Path(args.init_weights))
        if cfg.labels != ds.names:
            raise UsageError(f"--init-weights {args.init_weights} was trained on the classes {cfg.labels}, --data "
                             f"{args.data} has {ds.names}; use a dataset with the same classes in the same order")
        print(f"architecture from {Path(args.init_weights) / 'detector.json'}")
    else:
        cfg = _detector_config(args, ds)
    head = cfg.head
    try:
        tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
                           lr=args.lr, warmup_steps=args.warmup_steps, augment=not args.no_augment, seed=args.seed,
                           threads=args.threads, obj_weight=args.obj_weight,
                           box_weight=BOX_WEIGHT[head] if args.box_weight is None else args.box_weight,
                           cls_weight=args.cls_weight, clip_norm=args.clip_norm or None, clip_factor=args.clip_factor,
                           grad_log_every=args.grad_log_every)
    except ValueError as exc:
        from edge.contract.errors import ConfigError
        raise ConfigError(f"training config: {exc}") from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "command.txt").write_text(_command_line() + "\n")
    write_run_data(out, args.data)
    train(cfg, tcfg, ds, out, resume=args.resume, progress=not args.no_progress, init_weights=init)
    print(f"trained: {out / 'final.weights.h5'}")
    run = shlex.quote(str(out))
    print(f"next:\n  measure it:  convert-model evaluate --model {run} --data {shlex.quote(str(args.data))} --split val\n"
          f"  export it:   convert-model export-detector --run {run} --output {shlex.quote(str(out / 'model-int8.tflite'))}")
    return 0


def cmd_export(args) -> int:
    from convert.detection.datasets import load_dataset
    from convert.detection.export import detector_metadata, export_detector, prepared_images
    from convert.detection.model import export_model
    from convert.detection.train import load_trained
    run = Path(args.run)
    det = load_trained(run)
    cfg = det.config
    calib_src = args.calib_data or run_data(run)
    calib = held = None
    if args.quantization == "int8" or args.heldout_images:
        if calib_src is None:
            raise UsageError("pass --calib-data (the run does not record its training data)")
        train_ds = load_dataset(calib_src, "train")
        if args.quantization == "int8":
            calib = prepared_images(train_ds, cfg.input_size, args.calib_images, seed=0)
        try:
            val_ds = load_dataset(calib_src, "val")
        except InputError:
            val_ds = train_ds
        held = prepared_images(val_ds, cfg.input_size, args.heldout_images, seed=1) if args.heldout_images else None
    model_id = args.model_id or f"gyolo-{cfg.backbone}-{cfg.input_size[0]}-{run.name}"
    meta = detector_metadata(architecture=f"{cfg.head}-yolov3-{cfg.backbone}-{cfg.layout}", model_id=model_id,
                             input_hw=cfg.input_size, labels=cfg.labels, detection=cfg.detection_metadata(),
                             quantization=args.quantization, io_dtype=args.io_dtype, source=_command_line(),
                             extra={"training_command": (run / "command.txt").read_text().strip()
                                    if (run / "command.txt").is_file() else None})
    report = export_detector(export_model(det), args.output, metadata=meta, quantization=args.quantization,
                             io_dtype=args.io_dtype, calibration=calib, heldout=held, edgetpu=args.edgetpu)
    print(report.table())
    from convert.next_steps import next_steps
    print(next_steps(report.path, "detection"))
    return 0


def cmd_evaluate(args) -> int:
    from convert.detection.datasets import load_dataset
    from convert.detection.evaluate import KerasPredictor, TFLitePredictor, evaluate
    from convert.detection.train import load_trained, set_threads
    from edge.decode import DetectionDecoder
    ds = load_dataset(args.data, args.split)
    model = Path(args.model)
    if model.suffix == ".tflite":
        predictor = TFLitePredictor(model, threads=args.threads)
        out = Path(args.out) if args.out else model.parent / f"{model.stem}_eval"
    else:
        set_threads(args.threads)
        det = load_trained(model)
        c = det.config
        dec = DetectionDecoder(head=c.head, num_classes=c.num_classes, strides=c.strides, anchors=c.anchors,
                               labels=c.labels)
        predictor = KerasPredictor(det.model, dec, c.input_size)
        out = Path(args.out) if args.out else model / "eval"
    report = evaluate(predictor, ds, score_threshold=args.score_threshold, out_dir=out, limit=args.limit, progress=True)
    print(ds.summary())
    print(report.table_row())
    if report.spearman_rho is not None:
        print(f"Spearman(mean sigma, IoU) = {report.spearman_rho:+.3f} (p={report.spearman_p:.2g}, n={report.spearman_n}); "
              f"scatter: {report.scatter_png}")
    print(json.dumps(report.summary()))
    return 0


def cmd_import_darknet(args) -> int:
    from convert.detection.darknet_keras import import_darknet
    names = None
    if args.names:
        p = Path(args.names)
        if not p.is_file():
            raise InputError(f"names file {p} does not exist")
        names = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    imp = import_darknet(args.cfg, args.weights, names, args.input_size)
    p = imp.plan
    print(f"{args.cfg}: input {p.input_hw[0]}x{p.input_hw[1]}, {len(p.convs)} convolutions, {p.weight_count:,} weights, "
          f"{imp.head} head")
    for h in sorted(p.heads, key=lambda h: h.stride):
        print(f"  stride {h.stride:2d}: {h.channels} channels ({h.classes} classes), anchors {h.anchors}")
    if args.weights:
        print(f"weights header {imp.header}: {p.weight_count:,} values read (matches the cfg)")
    if args.output:
        if not args.weights:
            raise UsageError("--output needs --weights (an untrained import is not worth exporting)")
        from convert.detection.datasets import load_dataset
        from convert.detection.export import detector_metadata, export_detector, prepared_images
        calib = None
        if args.quantization == "int8":
            if not args.calib_data:
                raise UsageError("int8 export needs --calib-data (a YOLO image folder)")
            calib = prepared_images(load_dataset(args.calib_data, "train"), p.input_hw, args.calib_images)
        meta = detector_metadata(architecture=f"darknet-{imp.head}-yolov3", model_id=Path(args.cfg).stem,
                                 input_hw=p.input_hw, labels=imp.labels, detection=imp.detection_metadata(),
                                 quantization=args.quantization, io_dtype="uint8", source=_command_line())
        report = export_detector(imp.model, args.output, metadata=meta, quantization=args.quantization,
                                 calibration=calib)
        print(report.table())
        from convert.next_steps import next_steps
        print(next_steps(report.path, "detection"))
    return 0
