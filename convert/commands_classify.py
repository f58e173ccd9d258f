"""``convert-model`` subcommands for classifiers (contract: ``register(subparsers)``; handlers return an exit code).

list       the registered architectures
train      fine-tune a classifier on an image-folder dataset (one sub-folder per class)
export     build or load a classifier and export it to TFLite (float32/float16/dynamic/int8, --edgetpu)
metadata   show a model's metadata; write a sidecar for a model another tool rewrote
bench      float32 vs int8 side by side: latency at 1 and 2 threads, XNNPACK partitions, size
TensorFlow is imported inside the handlers only (``bench`` with --model files needs only a TFLite runtime).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from convert.cli_options import Applies
from edge.contract.errors import InputError, UsageError

INT8_ONLY = "it applies to int8 exports only (this one is {a.quantization})"
BUILT_HERE = ("it applies only when --arch builds the model here; the trained --model {a.model} keeps the "
              "architecture, classes and weights it was trained with")


def _size(text: str) -> tuple[int, int]:
    """'224' or '224x320' (height x width)."""
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text), int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: use N or HxW, e.g. 224 or 224x320") from None


def _command_line(argv0: str = "convert-model") -> str:
    return argv0 + " " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _model_options(args) -> dict:
    opts = {}
    for key in ("alpha", "width"):
        if getattr(args, key, None) is not None:
            opts[key] = getattr(args, key)
    if getattr(args, "minimalistic", False):
        opts["minimalistic"] = True
    return opts


def _add_model_args(p, with_classes: bool = True) -> None:
    p.add_argument("--arch", help="architecture (see `convert-model list`)")
    p.add_argument("--input-size", type=_size, default=None, help="N or HxW (default 224)")
    if with_classes:
        p.add_argument("--num-classes", type=int, default=None, help="classes (default: number of --labels, else 1000)")
    p.add_argument("--weights", default=None, help="'imagenet' (MobileNetV3; downloads once) or a Keras weights file")
    p.add_argument("--alpha", type=float, default=None, help="MobileNetV3 width multiplier")
    p.add_argument("--minimalistic", action="store_true", help="MobileNetV3 minimalistic variant (ReLU, 3x3, no SE)")
    p.add_argument("--width", type=float, default=None, help="MixNet channel multiplier")


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list the registered classifier architectures (and the options each takes)")
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser("train", help="fine-tune a classifier on an image folder (one sub-folder per class)")
    p.add_argument("--data", required=True, help="dataset folder: one sub-folder of images per class")
    _add_model_args(p, with_classes=False)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam)")
    p.add_argument("--freeze-backbone", action="store_true", help="train the classifier head only")
    p.add_argument("--freeze-bn", action="store_true",
                   help="keep BatchNorm in inference mode (small datasets; statistics set from the data first)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--no-augment", action="store_true", help="no random crops, flips or brightness changes")
    p.add_argument("--seed", type=int, default=0, help="weights, data order and augmentation seed")
    p.add_argument("--resize", choices=("stretch", "letterbox"), default="stretch")
    p.add_argument("--output", required=True, help="where to save the model (.keras; a .keras.json manifest goes next to it)")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("export", help="export a classifier to TFLite with metadata")
    p.add_argument("--model", help="a .keras model from `convert-model train` (else --arch builds one)")
    _add_model_args(p)
    p.add_argument("--labels", help="text file with one class name per line (default: from the model's manifest)")
    p.add_argument("--quantization", choices=("float32", "float16", "dynamic", "int8"), default="int8",
                   help="int8 (full integer, for XNNPACK and the Edge TPU), float16, dynamic-range or float32")
    p.add_argument("--io", dest="io_dtype", choices=("uint8", "int8"), default="uint8",
                   help="int8 models: input/output type (uint8 takes camera pixels as they are)")
    p.add_argument("--calibration", help="int8: folder of images, video file, or .npy/.npz array of images; 1 in 5 "
                   "is held out for the fidelity check (any quantization)")
    p.add_argument("--max-calibration-images", type=int, default=300,
                   help="read at most this many images from --calibration, held-out ones included")
    p.add_argument("--resize", choices=("stretch", "letterbox"), default=None,
                   help="how frames are fitted to the input (default: the trained model's, else stretch)")
    p.add_argument("--calibrate-bn", action="store_true",
                   help="set BatchNorm statistics from the calibration images first (untrained models)")
    p.add_argument("--hard-swish", choices=("auto", "xnnpack", "native"), default="auto",
                   help="hard-swish graph: auto (default: int8 'xnnpack', one XNNPACK partition; float 'native', "
                   "the fastest float form), xnnpack, or native HARD_SWISH")
    p.add_argument("--depthwise", choices=("tiled", "direct"), default="tiled",
                   help="depthwise kernels above 25 taps (MixNet's 7x7, 9x9, 11x11): tiled (default: the same "
                   "function as tiles of <= 25 taps, which XNNPACK runs 5-9x faster) or direct (one op each, as built)")
    p.add_argument("--calibration-ranges", choices=("own", "tflite"), default="own",
                   help="int8: calibrate every tensor on its own range (default) or keep TFLite's calibrator "
                   "ranges, which in-place ops widen (see convert/export/calibration_ranges.py)")
    p.add_argument("--per-tensor", action="store_true",
                   help="int8: also print the SNR of every activation vs the float32 conversion (where int8 drifts)")
    p.add_argument("--edgetpu", action="store_true", help="Edge TPU-ready int8 (uint8 I/O); runs edgetpu_compiler if installed")
    p.add_argument("--model-id", help="human-readable id stored in the metadata")
    p.add_argument("--output", required=True, help="output .tflite path (a .json sidecar is written next to it)")
    p.set_defaults(func=cmd_export, applies=(
        Applies(("--arch", "--num-classes", "--weights", "--alpha", "--minimalistic", "--width"),
                lambda a: not a.model, BUILT_HERE),
        Applies(("--io", "--calibration-ranges", "--per-tensor"), lambda a: a.quantization == "int8", INT8_ONLY),
        Applies(("--max-calibration-images",), lambda a: bool(a.calibration),
                "it limits the images read from --calibration, and none was given"),
    ))

    p = subparsers.add_parser("metadata", help="show a model's metadata (or write a sidecar for a rewritten model)")
    p.add_argument("--model", required=True, help=".tflite model")
    p.add_argument("--from", dest="source", help="copy metadata from this exported model into a sidecar for --model")
    p.add_argument("--write-sidecar", action="store_true", help="(re)write <model>.json from the embedded metadata")
    p.set_defaults(func=cmd_metadata, applies=(
        Applies(("--write-sidecar",), lambda a: not a.source,
                "--from already writes the sidecar, from the other model's metadata"),))

    p = subparsers.add_parser("bench", help="float32 vs int8: latency (1 and 2 threads), XNNPACK partitions, size")
    p.add_argument("--model", action="append", default=[], help=".tflite file (repeat; no TensorFlow needed)")
    p.add_argument("--arch", action="append", default=[], help="build, BN-calibrate and export this architecture "
                   "(float32, int8, int8 with native hard-swish; float32 and int8 with direct large depthwise kernels) "
                   "and bench them")
    p.add_argument("--input-size", type=_size, default=(224, 224), help="--arch: input N or HxW")
    p.add_argument("--calibration", help="--arch: images for calibration (default: synthetic images)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--runs", type=int, default=60, help="timed invokes per model, thread count and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (fairer on a busy machine)")
    p.add_argument("--workdir", help="--arch: keep the exported models here (default: a temporary folder)")
    p.set_defaults(func=cmd_bench, applies=(
        Applies(("--input-size", "--calibration", "--workdir"), lambda a: bool(a.arch),
                "it applies to the models --arch builds; --model files are timed as they are"),))


def _list_option(key: str, default) -> str:
    if isinstance(default, bool):
        return f"--{key} ({'on' if default else 'off'})"
    return f"--{key} {default}"


def cmd_list(args) -> int:
    """The architectures with the options `train`/`export --arch` take, in the spelling and with the defaults
    those commands use (the hard-swish default is the one `export --hard-swish` applies)."""
    from convert.export.formulations import AUTO, FLOAT_FORMULATION, INT8_FORMULATION
    from convert.models.registry import MODELS
    for info in MODELS.values():
        opts = ", ".join(_list_option(k, v) for k, v in info.options.items() if k != "hard_swish") or "none"
        line = f"{info.name:<20} {info.description}; options: {opts}; imagenet: {'yes' if info.imagenet else 'no'}"
        if "hard_swish" in info.options:
            line += (f"; hard-swish: export --hard-swish {AUTO} (int8 {INT8_FORMULATION}: one XNNPACK partition; "
                     f"float {FLOAT_FORMULATION}: the fastest float form)")
        print(line)
    return 0


def cmd_train(args) -> int:
    from convert.models.training import TrainConfig, last_metric, train_classifier
    if not args.arch:
        raise UsageError("train needs --arch (see `convert-model list`)")
    cfg = TrainConfig(data=args.data, arch=args.arch, output=args.output, input_size=args.input_size or (224, 224),
                      epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, weights=args.weights,
                      freeze_backbone=args.freeze_backbone, freeze_bn=args.freeze_bn, val_fraction=args.val_fraction, resize=args.resize,
                      seed=args.seed, augment=not args.no_augment, options=_model_options(args))
    manifest = train_classifier(cfg)
    acc = last_metric(manifest, "val_accuracy")
    print(f"saved {args.output} ({len(manifest['labels'])} classes: {', '.join(manifest['labels'][:8])}"
          f"{'...' if len(manifest['labels']) > 8 else ''}); validation accuracy "
          f"{'n/a' if acc is None else f'{acc:.1%}'}")
    print(f"next: convert-model export --model {args.output} --calibration {args.data} --output "
          f"{Path(args.output).with_suffix('.tflite')}")
    return 0


def _read_labels(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"labels file {p} does not exist")
    labels = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    if not labels:
        raise InputError(f"labels file {p} is empty; put one class name per line")
    return labels


def cmd_export(args) -> int:
    from convert.export import check_writable, export_tflite
    check_writable(args.output)                      # fail before any slow work
    if args.edgetpu:
        if args.quantization != "int8" or args.io_dtype != "uint8":
            raise UsageError("--edgetpu needs --quantization int8 and --io uint8")
    labels = _read_labels(args.labels) if args.labels else None
    manifest = None
    if args.model:
        from convert.models.training import read_manifest
        manifest = read_manifest(args.model)
        input_size = tuple(manifest["input_size"])
        if args.input_size is not None and tuple(args.input_size) != input_size:
            h, w = args.input_size
            raise UsageError(f"--input-size {h}x{w}: {args.model} was trained at {input_size[0]}x{input_size[1]} and "
                             "exports at that size (its accuracy is only known there); remove --input-size, or "
                             f"train at the size you need: convert-model train --input-size {h}x{w} ...")
        resize = args.resize or manifest.get("resize", "stretch")
    else:
        if not args.arch:
            raise UsageError("export needs --model (a trained .keras) or --arch (see `convert-model list`)")
        from convert.models.registry import get_info
        get_info(args.arch)
        input_size, resize = args.input_size or (224, 224), args.resize or "stretch"
    calib = heldout = None
    warnings: list[str] = []
    if args.calibration:        # read (and fail on) the data before the slow model work
        from convert.data.calibration import describe_split, load_calibration
        cs = load_calibration(args.calibration, input_size, resize, args.max_calibration_images)
        calib, heldout, warnings = cs.calibration, cs.heldout, cs.warnings
        if args.quantization == "int8":
            print(f"calibration: {describe_split(len(calib), len(heldout), args.calibration)}", flush=True)
        else:      # a float export is not calibrated: every image read serves the fidelity check
            heldout, calib = calib + heldout, []
            warnings = [w for w in warnings if "recommended" not in w]
            print(f"fidelity check: {len(heldout)} images from {args.calibration} (a {args.quantization} export "
                  "needs no calibration)", flush=True)
    elif args.quantization == "int8":
        raise UsageError("int8 export needs --calibration (a folder of images, a video file or a .npy/.npz array)")
    if args.per_tensor and not heldout:
        raise UsageError("--per-tensor compares tensors on held-out images, and --calibration left none (give it "
                         "2 or more images)")
    if args.model:
        from convert.models.training import load_trained
        model, manifest = load_trained(args.model)
        arch, labels = manifest["architecture"], labels or manifest["labels"]
    else:
        from convert.models.registry import build_classifier
        num_classes = args.num_classes or (len(labels) if labels else 1000)
        if labels and len(labels) != num_classes:
            raise UsageError(f"--num-classes {num_classes} but {args.labels} has {len(labels)} labels")
        labels = labels or [f"class_{i}" for i in range(num_classes)]
        model = build_classifier(args.arch, input_size, num_classes, weights=args.weights, **_model_options(args))
        arch = model.name
    shape = tuple(model.inputs[0].shape)
    if labels is not None and int(model.outputs[0].shape[-1]) != len(labels):
        raise UsageError(f"{args.labels or 'the labels'} has {len(labels)} labels but the model has "
                         f"{int(model.outputs[0].shape[-1])} classes; give one label per class")
    _check_hard_swish(args, model, arch)
    _check_depthwise(args, model, arch)
    if args.calibrate_bn:
        if not calib and not heldout:
            raise UsageError("--calibrate-bn needs --calibration images")
        from convert.models.bn_calibration import calibrate_batchnorm
        calibrate_batchnorm(model, calib or heldout)
        warnings.append("BatchNorm statistics were set from the calibration images (--calibrate-bn)")
    meta = {"task": "classification", "architecture": arch, "labels": list(labels),
            "model_id": args.model_id or f"{arch}-{shape[1]}-{args.quantization}",
            "source": _command_line(), "input": {"resize": resize},
            "classification": {"activation": "softmax"}}
    report = export_tflite(model, args.output, quantization=args.quantization, io_dtype=args.io_dtype,
                           calibration=calib, heldout=heldout, metadata=meta, edgetpu=args.edgetpu,
                           hard_swish=args.hard_swish, calibration_ranges=args.calibration_ranges, warnings=warnings,
                           depthwise=args.depthwise)
    print(report.table())
    if args.per_tensor:
        print(_per_tensor(model, report, heldout, calib, args.calibration_ranges))
    from convert.next_steps import next_steps
    print(next_steps(report.path, "classification"))
    return 0


def _check_hard_swish(args, model, arch: str) -> None:
    """--hard-swish given for a model without hard-swish layers (MixNet: swish; minimalistic MobileNetV3: ReLU)."""
    from convert.cli_options import was_given
    from convert.export.prepare import hard_swish_formulation
    if not was_given(args, "hard_swish"):
        return
    with hard_swish_formulation(model, None) as n:
        if n == 0:
            raise UsageError(f"--hard-swish has no effect here: {arch} has no hard-swish layers; remove it")


def _check_depthwise(args, model, arch: str) -> None:
    """--depthwise given for a model without depthwise kernels above 25 taps (MobileNetV3: 3x3 and 5x5)."""
    from convert.cli_options import was_given
    from convert.export.depthwise_form import count_large_kernels
    if was_given(args, "depthwise") and not count_large_kernels(model):
        raise UsageError(f"--depthwise has no effect here: {arch} has no depthwise kernel above 25 taps (only those "
                         "are tiled); remove it")


def _per_tensor(model, report, heldout, calibration, ranges: str) -> str:
    """SNR of every activation of an int8 conversion vs the float32 conversion of the same graph. Both are
    converted here from one model object (tensor names then pair up; the written file has the same graph)."""
    from convert.export import depthwise_form
    from convert.export.exporter import convert_model, named_outputs
    from convert.export.prepare import hard_swish_formulation, with_static_batch
    from convert.export.tensor_fidelity import format_rows, tensor_fidelity
    from convert.export.tflite_convert import convert_keras
    model = named_outputs(with_static_batch(model))
    model, _ = depthwise_form.apply(model, report.depthwise_form)
    with hard_swish_formulation(model, report.hard_swish):
        int8, _ = convert_model(model, "int8", report.io_dtype, calibration, False, ranges)
        float32 = convert_keras(model, "float32", progress=False)[0]
    rows = tensor_fidelity(float32, int8, heldout)
    return f"per-tensor SNR, {len(heldout)} held-out images (graph order):\n" + format_rows(rows)
def cmd_metadata(args) -> int:
    from edge import model_metadata as mm
    if args.source:
        meta = mm.read_metadata(args.source)
        meta = {k: v for k, v in meta.items() if k not in ("model_sha256", "flatbuffer_size")}
        meta["source_model"] = str(args.source)
        written = mm.write_sidecar(args.model, meta)
        print(f"wrote {mm.sidecar_path(args.model)} (sha256 {written['model_sha256'][:12]}...)")
        return 0
    flatbuffer, meta = mm.read_model(args.model)
    if args.write_sidecar:
        mm.sidecar_path(args.model).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        print(f"wrote {mm.sidecar_path(args.model)}")
    print(json.dumps(meta, indent=1, sort_keys=True))
    return 0


def cmd_bench(args) -> int:
    from convert.bench import run_bench
    try:
        threads = tuple(int(t) for t in args.threads.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"--threads {args.threads!r}: use comma-separated numbers, e.g. 1,2") from None
    if not args.model and not args.arch:
        raise UsageError("bench needs --model FILE.tflite (repeat) or --arch NAME")
    print(run_bench(models=args.model, archs=args.arch, input_size=args.input_size, calibration=args.calibration,
                    threads=threads, runs=args.runs, rounds=args.rounds, workdir=args.workdir))
    return 0
