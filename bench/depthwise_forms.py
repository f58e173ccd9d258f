"""``python -m bench.depthwise_forms``: a trained classifier with large depthwise kernels (MixNet) exported with
those kernels direct (as built) and tiled (the default export, convert/models/tiled_depthwise.py), float32 and
int8: accuracy on a labelled image folder, fidelity vs the Keras model, and latency from one interleaved run.

    python -m bench.depthwise_forms --model mixnet_s.keras --calibration shapes224 --data shapes224-test

1. The four exports go through ``convert.export.export_tflite`` (own-range int8 calibration, as `convert-model
   export` does), calibrated on ``--calibration`` (all of its images; give a set other than ``--data``).
2. Accuracy: every image of ``--data`` (one sub-folder per class, the training class order) through the
   Keras model and through each export in ``edge.runtime.TFLiteModel`` (the agent's interpreter); fidelity: SNR
   and top-1 agreement of each export vs the Keras model on the same images (``measure_fidelity``).
3. Latency: the four files in alternating rounds (A B C D A B C D ...), each figure the median over rounds of the
   median of ``--runs`` invokes at ``--threads`` threads, as the thread's CPU time (1 thread: the stable figure
   on a shared machine; with more threads it counts the calling thread only, so read the wall column) and wall
   time. Ratios are printed from that one run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

FORMS = (("float32", "direct"), ("float32", "tiled"), ("int8", "direct"), ("int8", "tiled"))


def _images(root: str, classes: list[str], size, resize: str) -> tuple[list[np.ndarray], np.ndarray]:
    from convert.data.folder_dataset import FolderSequence
    from convert.data.images import class_folders
    found, items = class_folders(root)
    if list(found) != list(classes):
        raise SystemExit(f"error: {root} has classes {found}, the model was trained on {classes}")
    seq = FolderSequence(items, size, 1, resize)
    return [seq.load(p) for p, _ in items], np.array([y for _, y in items])


def _accuracy_tflite(path: Path, images, labels) -> float:
    from edge.runtime import TFLiteModel
    tfl = TFLiteModel(path, threads=1)
    hits = 0
    for image, label in zip(images, labels):
        out = next(iter(tfl.run(np.clip(np.round(image), 0, 255).astype(np.uint8)).values()))
        hits += int(np.argmax(out.reshape(-1)) == label)
    return hits / len(labels)


def _accuracy_keras(model, images, labels) -> float:
    pixels = np.clip(np.round(np.stack(images)), 0, 255).astype(np.float32)
    probs = np.concatenate([np.asarray(model(pixels[i:i + 16], training=False)) for i in range(0, len(pixels), 16)])
    return float(np.mean(np.argmax(probs, axis=-1) == labels))


def time_interleaved(paths: list[Path], threads: int, rounds: int, runs: int) -> list[tuple[float, float]]:
    """(CPU ms, wall ms) per model: medians over alternating rounds of per-round medians."""
    from bench.model_ops import interpreter_for, time_invokes
    interpreters = [interpreter_for(None, str(p), threads) for p in paths]
    samples = [([], []) for _ in paths]
    for _ in range(rounds):
        for it, (cpu, wall) in zip(interpreters, samples):
            c, w = time_invokes(it, runs)
            cpu.append(c)
            wall.append(w)
    return [(statistics.median(c), statistics.median(w)) for c, w in samples]


def run(model_path: str, calibration: str, data: str, workdir: Path, threads: int, rounds: int, runs: int) -> str:
    from convert.data.calibration import load_calibration
    from convert.export import export_tflite
    from convert.models.training import load_trained
    model, manifest = load_trained(model_path)
    size = tuple(int(v) for v in model.inputs[0].shape[1:3])
    resize = manifest.get("resize", "stretch")
    calib = load_calibration(calibration, size, resize, heldout_fraction=0).calibration
    images, labels = _images(data, manifest["labels"], size, resize)
    meta = {"task": "classification", "architecture": manifest["architecture"], "labels": manifest["labels"],
            "source": "bench.depthwise_forms"}
    rows, paths = [], []
    for quant, form in FORMS:
        path = workdir / f"{Path(model_path).stem}-{quant}-{form}.tflite"
        report = export_tflite(model, path, quantization=quant, calibration=calib if quant == "int8" else None,
                               heldout=images, metadata=meta, depthwise=form, compare_hard_swish=(),
                               compare_float32=False, progress=False)
        fid = report.fidelity[0]
        rows.append([quant, form, _accuracy_tflite(path, images, labels), fid.top1_agreement, fid.snr_db,
                     report.inspection.delegation.partitions])
        paths.append(path)
    times = time_interleaved(paths, threads, rounds, runs)
    keras_acc = _accuracy_keras(model, images, labels)
    lines = [f"{model_path}: Keras float accuracy {keras_acc:.2%} on {len(labels)} images of {data}; "
             f"int8 calibrated on {len(calib)} images of {calibration}",
             f"{'export':<18}{'accuracy':>9}{'top-1 agr':>10}{'SNR dB':>8}{'partitions':>11}"
             f"{f'{threads}t ms CPU':>12}{f'{threads}t ms wall':>13}"]
    for (quant, form, acc, agree, snr, parts), (cpu, wall) in zip(rows, times):
        lines.append(f"{quant + ' ' + form:<18}{acc:>9.2%}{agree:>10.1%}{snr:>8.1f}{parts:>11}{cpu:>12.2f}{wall:>13.2f}")
    t = {(q, f): v for (q, f), v in zip(FORMS, times)}
    for kind, i in (("CPU", 0), ("wall", 1)):
        lines.append(f"{kind}: int8/float32 tiled {t['int8', 'tiled'][i] / t['float32', 'tiled'][i]:.2f}x, direct "
                     f"{t['int8', 'direct'][i] / t['float32', 'direct'][i]:.2f}x; int8 tiled / float32 direct "
                     f"{t['int8', 'tiled'][i] / t['float32', 'direct'][i]:.2f}x; tiled/direct float32 "
                     f"{t['float32', 'tiled'][i] / t['float32', 'direct'][i]:.2f}x, int8 "
                     f"{t['int8', 'tiled'][i] / t['int8', 'direct'][i]:.2f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.depthwise_forms", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a trained .keras classifier (convert-model train)")
    ap.add_argument("--calibration", required=True, help="int8 calibration images (folder, video or array)")
    ap.add_argument("--data", required=True, help="labelled image folder to evaluate on (one sub-folder per class)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--workdir", help="keep the exports here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        print(run(args.model, args.calibration, args.data, Path(args.workdir), args.threads, args.rounds, args.runs))
        return 0
    with tempfile.TemporaryDirectory(prefix="sigmawatch-dwforms-") as tmp:
        print(run(args.model, args.calibration, args.data, Path(tmp), args.threads, args.rounds, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
