"""Runtime-level probe, run unchanged by the host's Python (x86) and the emulated Pi's Python (aarch64).

    python pi_probe.py MODEL VIDEO OUT.npz [--threads N] [--score-threshold T]

Reads every frame of VIDEO with OpenCV (optionally adding +-1 gray-level noise: ``--noise-seed``), prepares it as the model's metadata says (edge.preprocess), runs
edge.runtime.TFLiteModel and decodes with edge.decode, exactly the device's code path below the agent.
Writes the raw output tensors (per frame) to OUT.npz and prints one JSON line: platform, interpreter,
numpy/OpenCV versions, SHA-256 of each decoded frame and of each model input (so a difference can be
traced to video decoding, resizing or inference), and the decoded detections.
Imports only what a Pi has (numpy, cv2, edge.*).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys

import cv2
import numpy as np

from edge.decode import DetectionDecoder
from edge.model_metadata import read_model
from edge.preprocess import prepare_for_model
from edge.runtime import TFLiteModel


def record(d) -> dict:
    """A decoded detection with the keys of a decoded detections message (``edge.contract.schema.decode``), at
    1e-5: finer than the thousandths an agent publishes, so the tolerances measured from it are the model's.
    A head without sigma reports zeros, as agents do."""
    def r(x: float, hi: float | None = 1.0) -> float:
        x = max(0.0, float(x))
        return round(x if hi is None else min(hi, x), 5)
    rec = {"class_id": int(d.class_id), "label": str(d.label), "score": r(d.score), "objectness": r(d.objectness),
           "box": [r(v) for v in d.box], "sigma": [r(v) for v in d.sigma or (0.0, 0.0, 0.0, 0.0)],
           "sigma_mean": r(d.sigma_mean or 0.0)}
    if d.box_sigma is not None:
        rec["box_sigma"] = [r(v, None) for v in d.box_sigma]
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("video")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--score-threshold", type=float, default=0.25)
    ap.add_argument("--noise-seed", type=int, default=None,
                    help="add uniform {-1, 0, +1} gray-level noise to every decoded frame (seeded per frame)")
    args = ap.parse_args(argv)

    flatbuffer, meta = read_model(args.model)
    model = TFLiteModel(flatbuffer, threads=args.threads)
    decoder = DetectionDecoder.from_metadata(meta) if meta["task"] == "detection" else None
    quant = model.output_quantization()
    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened():
        print(f"cannot open video {args.video}", file=sys.stderr)
        return 2
    tensors: dict[str, np.ndarray] = {}
    frames, inputs, detections = [], [], []
    frame_size = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        i = len(frames)
        frame_size = frame_size or [int(frame.shape[1]), int(frame.shape[0])]
        frames.append(hashlib.sha256(frame.tobytes()).hexdigest()[:16])
        if args.noise_seed is not None:
            rng = np.random.default_rng([args.noise_seed, i])
            frame = np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255).astype(np.uint8)
        rgb, info = prepare_for_model(frame, meta["input"])
        inputs.append(hashlib.sha256(rgb.tobytes()).hexdigest()[:16])
        outputs = model.run(rgb)
        for name, value in outputs.items():
            tensors[f"{i}/{name}"] = value
        if decoder is not None:
            dets = decoder.decode(outputs, quant, info, score_threshold=args.score_threshold)
            detections.append([record(d) for d in dets])
    cap.release()
    np.savez(args.out, **tensors)
    print(json.dumps({
        "machine": platform.machine(), "interpreter": model.runtime.describe(), "numpy": np.__version__,
        "opencv": cv2.__version__, "frame_size": frame_size, "frames": frames, "inputs": inputs, "quantization": quant,
        "detections": detections}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
