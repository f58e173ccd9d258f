"""Fine-tuning a registered classifier on an image-folder dataset, saving a .keras model plus a small
manifest (architecture, options, input size, labels) that `convert-model export --model` reads."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from edge.contract.errors import InputError, OutputError
from convert.models.registry import build_classifier, get_info


@dataclass
class TrainConfig:
    data: str
    arch: str
    output: str
    input_size: tuple[int, int] = (224, 224)
    epochs: int = 5
    batch_size: int = 16
    learning_rate: float = 1e-3
    weights: str | None = None
    freeze_backbone: bool = False
    freeze_bn: bool = False
    val_fraction: float = 0.2
    resize: str = "stretch"
    seed: int = 0
    augment: bool = True
    options: dict = field(default_factory=dict)


def manifest_path(model_path: str | Path) -> Path:
    return Path(str(model_path) + ".json")


def read_manifest(model_path: str | Path) -> dict:
    path = manifest_path(model_path)
    if not path.is_file():
        raise InputError(f"{path} is missing: it holds the labels and architecture of {model_path}; "
                         "models trained with `convert-model train` have one")
    return json.loads(path.read_text())


def train_classifier(cfg: TrainConfig, verbose: int | None = None) -> dict:
    """Train and save. Returns the manifest (with the final validation accuracy)."""
    from convert.data.folder_dataset import load_folder_dataset
    out = Path(cfg.output)
    if out.suffix != ".keras":
        raise OutputError(f"output {out} must end in .keras")
    if not out.parent.is_dir():
        raise OutputError(f"output folder {out.parent} does not exist; create it first")
    keras.utils.set_random_seed(cfg.seed)
    classes, train_seq, val_seq = load_folder_dataset(cfg.data, cfg.input_size, cfg.batch_size, cfg.val_fraction,
                                                      cfg.resize, cfg.seed, augment=cfg.augment)
    info = get_info(cfg.arch)
    weights = cfg.weights
    model = build_classifier(info.name, cfg.input_size, len(classes), weights=weights, batch_size=None, **cfg.options)
    from convert.data.folder_dataset import FolderSequence
    from convert.models.bn_calibration import calibrate_batchnorm
    plain = FolderSequence(train_seq.items, cfg.input_size, cfg.batch_size, cfg.resize)
    if weights is None:   # random init: data-dependent BatchNorm statistics first
        calibrate_batchnorm(model, (plain[i][0] for i in range(len(plain))))
    if cfg.freeze_bn:     # small datasets: BN in inference mode, so training and deployment see the same network
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    if cfg.freeze_backbone:
        head = {"logits", "conv_2", "predictions"}
        for layer in model.layers:
            if layer.name not in head:
                layer.trainable = False
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, 0.9)   # short runs: let the moving averages follow
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    if verbose is None:
        verbose = 1 if sys.stderr.isatty() else 2
    history = model.fit(train_seq, validation_data=val_seq, epochs=cfg.epochs, verbose=verbose)
    if not cfg.freeze_backbone and not cfg.freeze_bn:   # precise BN statistics from un-augmented training images
        calibrate_batchnorm(model, (plain[i][0] for i in range(len(plain))))
    final = {}
    if val_seq is not None:
        final = dict(zip(model.metrics_names, model.evaluate(val_seq, verbose=0)))
    try:
        model.save(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from exc
    manifest = {"architecture": info.name, "options": cfg.options, "input_size": list(cfg.input_size),
                "labels": classes, "resize": cfg.resize, "train": {k: v for k, v in asdict(cfg).items()
                                                                   if k not in ("options",)},
                "history": {k: [float(x) for x in v] for k, v in history.history.items()},
                "final_validation": {k: float(v) for k, v in final.items()}}
    manifest_path(out).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_trained(model_path: str | Path) -> tuple[keras.Model, dict]:
    import convert.models.layers  # noqa: F401  (registers the custom layers)
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    manifest = read_manifest(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise InputError(f"{path} cannot be loaded as a Keras model: {exc}") from exc
    return model, manifest


def last_metric(manifest: dict, key: str) -> float | None:
    if key.startswith("val_") and key[4:] in manifest.get("final_validation", {}):
        return float(manifest["final_validation"][key[4:]])
    values = manifest.get("history", {}).get(key)
    return float(values[-1]) if values else None


def random_images(n: int, size, seed: int = 0) -> list[np.ndarray]:
    """Structured synthetic images (blobs and bars) for BN calibration when no data is given."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    out = []
    for _ in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = rng.integers(0, 256, 3)
        for _ in range(6):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(4, max(5, h // 3))),
                       color, -1)
            cv2.rectangle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                          (int(rng.integers(0, w)), int(rng.integers(0, h))), color, -1)
        out.append(img.astype(np.float32))
    return out
