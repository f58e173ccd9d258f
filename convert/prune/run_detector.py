"""``convert-model prune --run``: a trained detector run -> sparsity fine-tune -> pruning -> fine-tune -> table.

Every phase is an ordinary training run directory (OUT/sparse, OUT itself for the pruned detector), so it can be
evaluated, exported and resumed like any other; the pruned run's detector.json carries the channel widths.
``--sparsity-steps 0`` skips the sparsity phase (the original's own BatchNorm scales choose the channels);
``--distill-weight W`` adds knowledge distillation from the unpruned original to the fine-tune
(convert.detection.distill_loss).

``--baseline`` adds the equal-budget comparison: the original trained on through the same two phases (same steps,
schedules and seed, no L1, no pruning; OUT/baseline-phase1, OUT/baseline), so the pruned model's extra training is
not counted as the pruning's gain. Exports are int8 with int8 input/output, as the shipped detector (uint8 I/O adds
a QUANTIZE per tensor outside XNNPACK's partition).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from convert.detection.cli_args import write_run_data
from edge.contract.errors import OutputError, UsageError
from convert.prune.classifier import progress_log
from convert.prune.common import bench_pair, check_input, write_json


def _train_cfg(base: Path, steps: int, lr: float, l1: float, seed: int):
    from convert.detection.train import TrainConfig, run_dir_files
    saved = run_dir_files(base)["train"]
    cfg = TrainConfig.model_validate_json(saved.read_text()) if saved.is_file() else TrainConfig()
    return cfg.model_copy(update={"epochs": max(1, steps // 100), "steps_per_epoch": min(100, steps), "lr": lr,
                                  "warmup_steps": min(50, steps // 10), "l1_bn": l1, "distill_weight": 0.0,
                                  "seed": seed})


def _export_pair(det, data: str, out_dir: Path, name: str) -> dict[str, Path]:
    from convert.detection.datasets import load_dataset
    from convert.detection.export import detector_metadata, export_detector, prepared_images
    from convert.detection.model import export_model
    c = det.config
    calib = prepared_images(load_dataset(data, "train"), c.input_size, 200)
    paths = {}
    for q in ("float32", "int8"):
        path = out_dir / f"{name}-{q}.tflite"
        meta = detector_metadata(architecture=f"{c.head}-yolov3-{c.backbone}-{c.layout}", model_id=f"{name}-{q}",
                                 input_hw=c.input_size, labels=c.labels, detection=c.detection_metadata(),
                                 quantization=q, io_dtype="int8")
        export_detector(export_model(det), path, metadata=meta, quantization=q, io_dtype="int8",
                        calibration=calib if q == "int8" else None)
        paths[q] = path
    return paths


def prune_detector(args, threads) -> list[dict]:
    import keras

    from convert.detection.datasets import load_dataset
    from convert.detection.evaluate import TFLitePredictor, evaluate
    from convert.detection.train import load_trained, set_threads, train, trained_weights
    from convert.prune.channel_graph import analyze
    from convert.prune.surgery import count_params, plan_pruning, prune_model

    base = check_input(args.run, "run")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise OutputError(f"--out {out} already exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    set_threads(2)
    original = load_trained(base)
    cfg = original.config
    train_ds = load_dataset(args.data, "train")
    if train_ds.names != cfg.labels:
        raise UsageError(f"--data classes {train_ds.names} differ from the run's labels {cfg.labels}")
    lr = args.lr or 1e-3
    original_weights = trained_weights(base)[1]
    sparse_dir = out / "sparse"
    from convert.detection.train import WarmupCosine
    from convert.prune.common import l1_for
    finetune_cfg = _train_cfg(base, args.finetune_steps, lr, 0.0, args.seed)
    run_dirs = [out]
    if args.sparsity_steps:
        sparse_cfg = _train_cfg(base, args.sparsity_steps, lr, 0.0, args.seed)
        steps = sparse_cfg.epochs * sparse_cfg.steps_per_epoch
        schedule = WarmupCosine(lr, sparse_cfg.warmup_steps, steps)
        l1 = args.l1 if args.l1 is not None else l1_for(args.sparsity,
                                                        [float(schedule(i)) for i in range(1, steps + 1)])
        progress_log(f"sparsity fine-tune: {steps} steps, L1 {l1:.4g} on the BatchNorm scales")
        sparse = train(cfg, sparse_cfg.model_copy(update={"l1_bn": l1}), train_ds, sparse_dir,
                       progress=False, log=progress_log, init_weights=original_weights)
        run_dirs.append(sparse_dir)
    else:
        progress_log("no sparsity phase (--sparsity-steps 0): the original's BatchNorm scales choose the channels")
        sparse = original
    plan = plan_pruning(analyze(sparse.train_model), args.ratio)
    pruned_model = prune_model(sparse.train_model, plan)
    pruned_cfg = cfg.model_copy(update={"channels": plan.channel_overrides()})
    init = out / "pruned-init.weights.h5"
    from convert.detection.model import build_detector
    shell = build_detector(pruned_cfg)
    for layer in pruned_model.layers:
        if layer.weights:
            shell.train_model.get_layer(layer.name).set_weights(layer.get_weights())
    shell.train_model.save_weights(str(init))
    distill = args.distill_weight or 0.0
    progress_log(f"pruned {plan.removed_channels():,} channels in {len(plan.channel_overrides())} layers; fine-tuning "
                 f"{args.finetune_steps} steps" + (f", distilling from the original (weight {distill:g})"
                                                   if distill else ""))
    pruned = train(pruned_cfg, finetune_cfg.model_copy(update={"distill_weight": distill}), train_ds, out,
                   progress=False, log=progress_log, init_weights=init, teacher=original if distill else None)
    models = {"original": original}
    if args.baseline:
        progress_log(f"equal-budget baseline: the original trained {args.sparsity_steps} + {args.finetune_steps} "
                     "steps more with the same schedules, without L1, pruning or distillation")
        start = original_weights
        if args.sparsity_steps:
            phase1 = out / "baseline-phase1"
            train(cfg, sparse_cfg, train_ds, phase1, progress=False, log=progress_log, init_weights=original_weights)
            start = trained_weights(phase1)[1]
            run_dirs.append(phase1)
        models["baseline"] = train(cfg, finetune_cfg, train_ds, out / "baseline", progress=False, log=progress_log,
                                   init_weights=start)
        run_dirs.append(out / "baseline")
    models["pruned"] = pruned
    command = "convert-model " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for run in run_dirs:   # what reproduces each run directory, and the data its exports calibrate on
        (run / "command.txt").write_text(command + "\n")
        write_run_data(run, args.data)
    split = load_dataset(args.data, args.split)
    paths = {name: _export_pair(det, args.data, out, name) for name, det in models.items()}
    timing = bench_pair(paths, threads, args.runs, args.rounds)
    rows = []
    for name, det in models.items():
        report = evaluate(TFLitePredictor(paths[name]["int8"], threads=2), split, out_dir=out / "eval",
                          name=f"{name}-int8")
        rows.append({"name": name, "metric": f"mAP@.5 {args.split}", "score": 100 * report.map50,
                     "map50_95": 100 * report.map50_95, "params": count_params(det.train_model), **timing[name]})
    keras.backend.clear_session()
    write_json(out / "prune.json", rows)
    return rows
