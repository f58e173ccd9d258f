"""`convert-model bench`: float32 and int8 side by side in one run -- median latency at 1 and 2 threads,
XNNPACK partitions (and which ops stayed out), size. With --model files it needs only a TFLite runtime
(the timing core is edge.modelbench); with --arch it builds, BN-calibrates and exports the models first:
float32 (native HARD_SWISH, the default float export), float32 with the XNNPACK-friendly hard-swish (to show
why it is not the float default), int8 with the XNNPACK-friendly hard-swish (the default int8 export) and int8
with the native HARD_SWISH. A model with depthwise kernels above 25 taps (MixNet) gets float32 and int8 with
those kernels tiled (the default export, convert.export.depthwise_form) and with them direct (as built).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from edge.modelbench import bench_interleaved, format_table


def export_variants(arch: str, input_size, calibration: str | None, workdir: Path) -> list[tuple[str, Path]]:
    from convert.export import export_tflite
    from convert.export.depthwise_form import count_large_kernels
    from convert.models.bn_calibration import calibrate_batchnorm
    from convert.models.registry import build_classifier, get_info
    from convert.models.training import random_images
    info = get_info(arch)
    if calibration:
        from convert.data.calibration import load_calibration
        images = load_calibration(calibration, input_size, "stretch", max_images=64, heldout_fraction=0).calibration
    else:
        images = random_images(32, input_size)
    model = build_classifier(info.name, input_size, 1000)
    calibrate_batchnorm(model, images[:16])      # realistic activation ranges for an untrained model
    meta = {"task": "classification", "architecture": info.name, "labels": [f"class_{i}" for i in range(1000)],
            "source": "convert-model bench"}
    tiled = "tiled"
    variants = [("float32", "float32", "native", tiled)]
    if "hard_swish" in info.options:   # float: native is the default (fastest); int8: xnnpack (one partition)
        variants += [("float32-xnnpack-hswish", "float32", "xnnpack", tiled), ("int8", "int8", "xnnpack", tiled),
                     ("int8-native-hswish", "int8", "native", tiled)]
    else:
        variants += [("int8", "int8", None, tiled)]
    if count_large_kernels(model):     # the depthwise kernels above 25 taps as built, float and int8
        variants += [("float32-direct-dw", "float32", "auto", "direct"), ("int8-direct-dw", "int8", "auto", "direct")]
    out = []
    h, w = input_size
    for label, quant, hswish, depthwise in variants:
        path = workdir / f"{info.name}-{h}x{w}-{label}.tflite"
        export_tflite(model, path, quantization=quant, calibration=images, metadata=meta, hard_swish=hswish,
                      compare_float32=False, progress=False, depthwise=depthwise)
        out.append((f"{info.name} {label}", path))
    return out


def run_bench(models=(), archs=(), input_size=(224, 224), calibration=None, threads=(1, 2), runs: int = 60,
              rounds: int = 3, workdir: str | None = None) -> str:
    entries = [(Path(m).name, Path(m)) for m in models]
    tmp = None
    if archs:
        if workdir:
            base = Path(workdir)
            base.mkdir(parents=True, exist_ok=True)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="sigmawatch-bench-")
            base = Path(tmp.name)
        for arch in archs:
            entries += export_variants(arch, input_size, calibration, base)
    try:
        for _, path in entries:
            if not path.is_file():
                from edge.contract.errors import InputError
                raise InputError(f"model file {path} does not exist")
        results = bench_interleaved([p for _, p in entries], threads, runs=runs, rounds=rounds)
        table = format_table(results, [label for label, _ in entries], threads)
        lines = [table, ""]
        by_label = dict(zip([label for label, _ in entries], results))
        for label, r in by_label.items():
            if label.endswith(" float32-xnnpack-hswish"):
                ref = by_label.get(label[:-len("-xnnpack-hswish")])
                if ref:
                    ratios = ", ".join(f"{n} thr {r.latency_ms[n] / ref.latency_ms[n]:.2f}x" for n in threads)
                    lines.append(f"{label}: latency vs float32 with the native HARD_SWISH {ratios}")
            for int8, float32 in ((" int8", " float32"), (" int8-direct-dw", " float32-direct-dw")):
                ref = by_label.get(label[:-len(int8)] + float32) if label.endswith(int8) else None
                if ref:
                    ratios = ", ".join(f"{n} thr {r.latency_ms[n] / ref.latency_ms[n]:.2f}x" for n in threads)
                    lines.append(f"{label}: latency vs{float32} {ratios}; size {r.size_bytes / ref.size_bytes:.0%}")
            for precision in ("float32", "int8"):
                direct = f" {precision}-direct-dw"
                new = by_label.get(label[:-len("-direct-dw")]) if label.endswith(direct) else None
                if new:
                    ratios = ", ".join(f"{n} thr {new.latency_ms[n] / r.latency_ms[n]:.2f}x" for n in threads)
                    lines.append(f"{label[:-len(direct)]}: tiled large depthwise kernels vs direct, "
                                 f"{precision} latency {ratios}")
        return "\n".join(lines).rstrip()
    finally:
        if tmp is not None:
            tmp.cleanup()
