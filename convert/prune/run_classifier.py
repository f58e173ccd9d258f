"""``convert-model prune --model``: a trained classifier -> sparsity training -> pruning -> fine-tuning -> table."""
from __future__ import annotations

from pathlib import Path

import keras

from edge.contract.errors import OutputError
from convert.prune.classifier import Phase, accuracy, fit, progress_log, set_bn_momentum
from convert.prune.common import bench_pair, check_input, write_json


def prune_classifier(args, threads) -> list[dict]:
    from convert.data.calibration import load_calibration
    from convert.data.folder_dataset import load_folder_dataset
    from convert.export import export_tflite
    from convert.models.training import load_trained, manifest_path, read_manifest
    from convert.prune.channel_graph import analyze
    from convert.prune.surgery import count_params, plan_pruning, prune_model

    check_input(args.model, "model")
    out = Path(args.output)
    if out.suffix != ".keras" or not out.parent.is_dir():
        raise OutputError(f"--output {out} must be a .keras path in an existing folder")
    keras.utils.set_random_seed(args.seed)
    model, manifest = load_trained(args.model)
    size = tuple(manifest["input_size"])
    resize = manifest.get("resize", "stretch")
    _, train_seq, val_seq = load_folder_dataset(args.data, size, 16, 0.2, resize, args.seed, augment=False)
    if val_seq is None:
        raise OutputError("the dataset has no validation images (need 2+ images per class)")
    lr = args.lr or 5e-4
    set_bn_momentum(model)
    base_acc = accuracy(model, val_seq)
    progress_log(f"original: validation accuracy {base_acc:.1%}, {count_params(model):,} parameters")
    graph = analyze(model)
    gammas = [layer.gamma for layer in graph.bn_layers()]
    from convert.prune.common import l1_for
    l1 = args.l1 if args.l1 is not None else l1_for(args.sparsity, [lr] * (args.sparsity_epochs * len(train_seq)))
    progress_log(f"sparsity training ({args.sparsity_epochs} epochs, L1 {l1:.4g} on {len(gammas)} BatchNorm scales)")
    sparse = keras.models.clone_model(model)
    sparse.set_weights(model.get_weights())
    set_bn_momentum(sparse)
    sparse_graph = analyze(sparse)
    fit(sparse, train_seq, Phase(args.sparsity_epochs, lr, l1), [l.gamma for l in sparse_graph.bn_layers()],
        progress_log)
    plan = plan_pruning(analyze(sparse), args.ratio)
    pruned = prune_model(sparse, plan)
    set_bn_momentum(pruned)
    progress_log(f"pruned {plan.removed_channels():,} channels in {len(plan.channel_overrides())} layers; "
                 f"fine-tuning {args.finetune_epochs} epochs")
    fit(pruned, train_seq, Phase(args.finetune_epochs, lr), (), progress_log)
    try:
        pruned.save(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from exc
    manifest = dict(manifest, pruned={"from": str(args.model), "ratio": args.ratio, "l1": l1,
                                      "channels": plan.channel_overrides()})
    import json
    manifest_path(out).write_text(json.dumps(manifest, indent=1) + "\n")
    read_manifest(out)
    cs = load_calibration(args.data, size, resize, max_images=200)
    paths = {}
    for name, m in (("original", model), ("pruned", pruned)):
        paths[name] = {}
        for q in ("float32", "int8"):
            p = out.with_name(f"{out.stem}-{name}-{q}.tflite")
            export_tflite(m, p, quantization=q, calibration=cs.calibration if q == "int8" else None,
                          metadata={"task": "classification", "architecture": manifest["architecture"],
                                    "labels": manifest["labels"], "input": {"resize": resize}},
                          compare_float32=False, progress=False, compare_hard_swish=())
            paths[name][q] = p
    timing = bench_pair(paths, threads, args.runs, args.rounds)
    rows = [{"name": "original", "metric": "val acc %", "score": 100 * base_acc, "params": count_params(model),
             **timing["original"]},
            {"name": "pruned", "metric": "val acc %", "score": 100 * accuracy(pruned, val_seq),
             "params": count_params(pruned), **timing["pruned"]}]
    write_json(out.with_suffix(".prune.json"), rows)
    return rows
