"""``convert-model prune``: Network Slimming for classifiers (--model) and detectors (--run).

    convert-model prune --model cls.keras --data DATASET/ --output cls-pruned.keras --ratio 0.5
    convert-model prune --run runs/demo --data data/synth256 --out runs/demo-pruned --ratio 0.5 [--baseline]

Steps: sparsity training (L1 on the BatchNorm scales of prunable channels), removal of the lowest-scale channels
(one global threshold; convert.prune.surgery keeps every layer and equal split sizes), fine-tuning, then the
original and the pruned model side by side: accuracy (classifier, validation split) or mAP@0.5 (detector, int8 as
the device runs it), parameters, and float32/int8 latency measured in one interleaved run. A detector's
``--baseline`` adds the original trained for the same extra steps (the equal-budget comparison).
"""
from __future__ import annotations

from pathlib import Path

from convert.cli_options import Applies
from edge.contract.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("prune", help="channel pruning (Network Slimming) of a classifier or a detector run")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="a classifier .keras from `convert-model train`")
    what.add_argument("--run", help="a detector run directory from `convert-model train-detector`")
    p.add_argument("--data", required=True, help="the training data (image folder for classifiers, dataset for detectors)")
    p.add_argument("--output", help="classifier: the pruned .keras to write")
    p.add_argument("--out", help="detector: the pruned run directory to create")
    p.add_argument("--ratio", type=float, default=0.5, help="share of the prunable channels to remove (default 0.5)")
    p.add_argument("--sparsity", type=float, default=0.5,
                   help="how far an unsupported BatchNorm |gamma| shrinks over the sparsity phase (default 0.5); "
                   "channels the data needs are pushed back by their gradients")
    p.add_argument("--l1", type=float, default=None, help="the L1 weight itself instead of --sparsity: every step "
                   "each |gamma| shrinks by learning rate x L1 (the penalty's proximal step)")
    p.add_argument("--sparsity-epochs", type=int, default=3, help="classifier: epochs with the L1 penalty")
    p.add_argument("--finetune-epochs", type=int, default=3, help="classifier: epochs after pruning")
    p.add_argument("--sparsity-steps", type=int, default=400, help="detector: steps with the L1 penalty (0: no "
                   "sparsity phase; the original's BatchNorm scales choose the channels)")
    p.add_argument("--finetune-steps", type=int, default=600, help="detector: steps after pruning")
    p.add_argument("--distill-weight", type=float, default=None, help="detector: fine-tune with knowledge "
                   "distillation from the unpruned original, this weight x the distillation loss (objectness and "
                   "class KL, boxes and sigmas where the teacher sees objects) added to the training loss")
    p.add_argument("--baseline", action="store_true", help="detector: also train the original for the same "
                   "sparsity + fine-tune steps and schedules (no L1, no pruning) and compare the pruned model with "
                   "it: the equal-budget comparison")
    p.add_argument("--lr", type=float, default=None, help="learning rate (classifier 5e-4, detector 1e-3)")
    p.add_argument("--split", default="val", help="detector: the split the mAP is measured on (default val)")
    p.add_argument("--threads", default="1", help="interpreter threads for the latency columns, e.g. 1 or 1,2")
    p.add_argument("--runs", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_prune, applies=(
        Applies(("--output", "--sparsity-epochs", "--finetune-epochs"), lambda a: bool(a.model),
                "it applies to classifiers (--model); a detector (--run) takes --out, --sparsity-steps, "
                "--finetune-steps"),
        Applies(("--out", "--sparsity-steps", "--finetune-steps", "--split", "--baseline", "--distill-weight"),
                lambda a: bool(a.run),
                "it applies to detectors (--run); a classifier (--model) takes --output, --sparsity-epochs, "
                "--finetune-epochs"),
        Applies(("--sparsity",), lambda a: a.l1 is None, "--l1 sets the L1 weight directly"),
        Applies(("--sparsity", "--l1"), lambda a: not (a.run and a.sparsity_steps == 0),
                "--sparsity-steps 0 skips the sparsity phase (no L1)"),
    ))


def _threads(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"--threads {text!r}: use comma-separated numbers, e.g. 1 or 1,2") from None


def cmd_prune(args) -> int:
    if not 0 < args.ratio < 1:
        raise UsageError(f"--ratio {args.ratio}: the share of channels to remove must be between 0 and 1")
    threads = _threads(args.threads)
    if args.model:
        if not args.output:
            raise UsageError("pruning a classifier (--model) needs --output PRUNED.keras")
        from convert.prune.run_classifier import prune_classifier
        rows = prune_classifier(args, threads)
    else:
        if not args.out:
            raise UsageError("pruning a detector (--run) needs --out PRUNED_RUN_DIR")
        for flag, steps, least in (("--sparsity-steps", args.sparsity_steps, 0),
                                   ("--finetune-steps", args.finetune_steps, 1)):
            if steps < least or (steps > 100 and steps % 100):
                raise UsageError(f"{flag} {steps}: a detector phase runs in epochs of 100 steps; use "
                                 f"{least}-100 or a multiple of 100")
        if args.distill_weight is not None and args.distill_weight <= 0:
            raise UsageError(f"--distill-weight {args.distill_weight}: the distillation weight must be > 0 "
                             "(leave the option out for no distillation)")
        from convert.prune.run_detector import prune_detector
        rows = prune_detector(args, threads)
    print(format_rows(rows, threads))
    if args.model:
        out = Path(args.output)
        print(f"next: convert-model export --model {out} --calibration {args.data} --output {out.with_suffix('.tflite')}")
    else:
        print(f"next: convert-model export-detector --run {args.out} --output {Path(args.out) / 'model-int8.tflite'}")
    return 0


def format_rows(rows: list[dict], threads) -> str:
    """Before/after table; latency ratios are from one interleaved benchmark run. Rows: "original", optionally
    "baseline" (the original trained for the same extra steps as the pruned model), "pruned"."""
    metric = rows[0]["metric"]
    both_maps = all("map50_95" in r for r in rows)
    head = f"{'model':<10}{metric:>12}" + (f"{'mAP@.5:.95':>12}" if both_maps else "") + f"{'params':>12}" + "".join(
        f"{f'fp32 {n}t ms':>13}{f'int8 {n}t ms':>13}{'int8/fp32':>11}" for n in threads)
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['name']:<10}{r['score']:>12.2f}" + (f"{r['map50_95']:>12.2f}" if both_maps else "") + \
            f"{r['params']:>12,}"
        for n in threads:
            f, q = r["float32_ms"][n], r["int8_ms"][n]
            line += f"{f:>13.2f}{q:>13.2f}{q / f:>10.2f}x"
        lines.append(line)
    by_name = {r["name"]: r for r in rows}
    a, b = by_name["original"], by_name["pruned"]
    for n in threads:
        lines.append(f"{n} thread(s): pruned int8 is {a['int8_ms'][n] / b['int8_ms'][n]:.2f}x as fast as the "
                     f"original int8 ({b['int8_ms'][n]:.2f} vs {a['int8_ms'][n]:.2f} ms)")
    refs = [("original", a)] + ([("baseline (same training steps)", by_name["baseline"])] if "baseline" in by_name
                                else [])
    compared = [(metric, "score")] + ([("mAP@.5:.95", "map50_95")] if both_maps else [])
    for what, key in compared:
        lines.append(f"{what}: pruned " + ", ".join(f"{b[key] - r[key]:+.2f} points vs the {label}"
                                                    for label, r in refs))
    lines.append(f"parameters {b['params'] / a['params']:.0%} of the original")
    return "\n".join(lines)


__all__ = ["cmd_prune", "format_rows", "register"]
