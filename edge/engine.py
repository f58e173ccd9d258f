"""Model + metadata -> a frame processor. Loads the model through ``edge.runtime``, refuses a model that
does not match the configuration or its own metadata, and turns one BGR frame into a ``FrameResult`` in three stages that the pipeline runs in three threads:
``prepare`` (capture thread), ``run`` (inference thread: the interpreter only), ``finish`` (publish thread).

Detection uses the shared ``edge.preprocess`` and ``edge.decode`` (the same code the converter evaluates
with), then applies the class filter, zones and an optional sigma cap. Classification reports the top-k
and the predictive entropy (``edge.classify``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.classify import entropy, to_probabilities, top_k
from edge.config import ModelConfig, Settings
from edge.contract.errors import InterpreterError, ModelError
from edge.contract.wire import fraction
from edge.decode import Detection
from edge.messages import FrameResult
from edge.model_metadata import ModelMetadataError, read_model
from edge.preprocess import prepare_for_model
from edge.runtime import RuntimeUnavailableError, TFLiteModel, find_runtime, parse_device
from edge.ssd import SSDDecoder, make_decoder
from edge.zones import zones_of

_DTYPES = {"uint8": np.uint8, "int8": np.int8, "float32": np.float32}


@dataclass
class Prepared:
    image: np.ndarray
    info: Any               # edge.preprocess.LetterboxInfo
    ts: float
    frame_w: int
    frame_h: int
    prep_ms: float


@dataclass
class Inferred:
    prepared: Prepared
    outputs: dict[str, np.ndarray]
    infer_ms: float


def load_metadata(path: Path) -> tuple[bytes, dict]:
    try:
        return read_model(path)
    except ModelMetadataError as exc:
        raise ModelError(str(exc)) from None


def check_model(meta: dict, model: TFLiteModel, cfg: ModelConfig, settings: Settings, path: Path) -> None:
    """Refuse a model that does not fit the config or whose metadata does not describe this flatbuffer."""
    task = meta["task"]
    if cfg.task and cfg.task != task:
        raise ModelError(f"{path} is a {task} model but the config expects model.task: {cfg.task}; "
                         "point model.path at a matching export or change model.task")
    labels = meta["labels"]
    if cfg.expect_labels is not None and list(cfg.expect_labels) != list(labels):
        raise ModelError(f"{path} has labels {labels} but model.expect_labels is {cfg.expect_labels}")
    unknown = [c for c in (settings.classes or []) if c not in labels]
    if unknown:
        raise ModelError(f"settings.classes names {unknown}, which the model {path} does not know; "
                         f"its labels are {labels}")
    inp = meta["input"]
    w, h = model.input_size
    if (inp["width"], inp["height"]) != (w, h) or model.input_shape[3] != inp.get("channels", 3):
        raise ModelError(f"{path}: metadata says input {inp['width']}x{inp['height']}x{inp.get('channels', 3)} but "
                         f"the flatbuffer takes {w}x{h}x{model.input_shape[3]}; the metadata belongs to another model")
    want = _DTYPES.get(inp["dtype"])
    if want is not None and np.dtype(model.input_dtype) != np.dtype(want):
        raise ModelError(f"{path}: metadata says input dtype {inp['dtype']} but the flatbuffer takes "
                         f"{np.dtype(model.input_dtype).name}")
    names = set(model.output_names.values())
    if task == "detection":
        det = meta["detection"]
        if len(labels) != int(det.get("num_classes", len(labels))):
            raise ModelError(f"{path}: {len(labels)} labels for detection.num_classes {det.get('num_classes')}")
        if det.get("head") == "ssd":
            try:
                wanted = SSDDecoder.from_metadata(meta).expected_outputs()
            except ValueError as exc:
                raise ModelError(f"{path}: {exc}") from None
            missing = [n for n in wanted if n not in names]
            if missing:
                raise ModelError(f"{path}: SSD output(s) {missing} named in the metadata are missing; the model has "
                                 f"outputs {sorted(names)}")
            return
        for stride in det.get("strides", []):
            for kind in ("sigmoid", "linear"):
                name = det.get("outputs", {}).get(str(stride), {}).get(kind, f"s{stride}_{kind}")
                if name not in names:
                    raise ModelError(f"{path}: detector output {name!r} (stride {stride}) is missing; the model has "
                                     f"outputs {sorted(names)}")
    else:
        out = (meta.get("classification") or {}).get("output")
        if out is not None and out not in names and len(names) != 1:
            raise ModelError(f"{path}: classification output {out!r} not among {sorted(names)}")


def in_zones(dets: list[Detection], zones) -> list[Detection]:
    """The detections whose box centre lies in a zone, each with the names of its zones. The centre is that of
    the box as published (``edge.contract.wire.fraction``)."""
    out = []
    for d in dets:
        inside = zones_of([fraction(v) for v in d.box], zones)
        if inside:
            out.append(replace(d, zones=tuple(inside)))
    return out


class Engine:
    """One loaded model ready to process frames; ``process`` is called from the inference thread only."""

    def __init__(self, cfg: ModelConfig, settings: Settings):
        self.path = Path(cfg.path)
        flatbuffer, self.meta = load_metadata(self.path)
        try:
            parse_device(cfg.device)
            self.runtime = find_runtime(cfg.runtime)
            self.model = TFLiteModel(flatbuffer, device=cfg.device, threads=cfg.threads, runtime=self.runtime)
        except RuntimeUnavailableError as exc:
            raise InterpreterError(str(exc)) from None
        self.device = cfg.device
        check_model(self.meta, self.model, cfg, settings, self.path)
        self.task = self.meta["task"]
        self.labels = list(self.meta["labels"])
        self.quant = self.model.output_quantization()
        norm = self.meta["input"].get("normalization") or {}
        self.mean, self.std = norm.get("mean"), norm.get("std")
        self.decoder = make_decoder(self.meta) if self.task == "detection" else None
        cls = self.meta.get("classification") or {}
        self.cls_output = cls.get("output")
        self.activation = cls.get("activation", "softmax")

    @property
    def model_ref(self) -> dict[str, str]:
        return {"id": str(self.meta.get("model_id") or self.meta.get("architecture") or self.path.stem)[:200],
                "hash": str(self.meta["model_sha256"])}

    def describe(self) -> dict[str, Any]:
        w, h = self.model.input_size
        return {**self.model_ref, "task": self.task, "input": f"{w}x{h}", "labels": len(self.labels),
                "quantization": self.meta.get("quantization"), "device": self.device}

    @property
    def interpreter_name(self) -> str:
        return self.runtime.describe() + (" + Edge TPU delegate" if self.device != "cpu" else "")

    def class_ids(self, settings: Settings) -> list[int] | None:
        return None if settings.classes is None else [self.labels.index(c) for c in settings.classes]

    # -- stages (separately callable so the benchmark can time them)
    def preprocess(self, frame: np.ndarray):
        """Letterbox/stretch a BGR camera frame to the model input (RGB), as ``edge.preprocess`` does everywhere."""
        return prepare_for_model(frame, self.meta["input"], bgr=True)

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self.model.run(image, self.mean, self.std)

    def postprocess(self, outputs: dict[str, np.ndarray], info,
                    settings: Settings) -> tuple[list[Detection], list | None, float | None]:
        if self.task == "detection":
            dets = self.decoder.decode(outputs, self.quant, info, score_threshold=settings.score_threshold,
                                       iou_threshold=settings.iou_threshold, max_detections=settings.max_detections,
                                       classes=self.class_ids(settings))
            if settings.max_sigma is not None:
                dets = [d for d in dets if not (d.sigma_mean is not None and d.sigma_mean > settings.max_sigma)]
            if settings.zones:
                dets = in_zones(dets, settings.zones)
            return dets, None, None
        name = self.cls_output if self.cls_output in outputs else next(iter(outputs))
        raw = outputs[name]
        scale, zero = self.quant.get(name, (0.0, 0))
        values = raw.astype(np.float32) if not scale else (raw.astype(np.float32) - zero) * scale
        probs = to_probabilities(values, self.activation)
        ids = self.class_ids(settings)
        top = top_k(probs, self.labels, settings.top_k, None if ids is None else set(ids))
        return [], top, entropy(probs)

    def prepare(self, frame: np.ndarray, ts: float) -> Prepared:
        """Stage 1 (capture thread): resize/letterbox to the model input."""
        t0 = time.perf_counter()
        image, info = self.preprocess(frame)
        return Prepared(image, info, ts, int(frame.shape[1]), int(frame.shape[0]), (time.perf_counter() - t0) * 1e3)

    def run(self, item: Prepared) -> Inferred:
        """Stage 2 (inference thread): the interpreter, nothing else."""
        t0 = time.perf_counter()
        outputs = self.infer(item.image)
        return Inferred(item, outputs, (time.perf_counter() - t0) * 1e3)

    def finish(self, item: Inferred, settings: Settings) -> tuple[FrameResult, float]:
        """Stage 3 (publish thread): decode, filter, build the result. Returns (result, postprocess ms)."""
        t0 = time.perf_counter()
        p = item.prepared
        dets, classes, ent = self.postprocess(item.outputs, p.info, settings)
        post_ms = (time.perf_counter() - t0) * 1e3
        result = FrameResult(ts=p.ts, frame_w=p.frame_w, frame_h=p.frame_h, task=self.task, detections=dets,
                             classes=classes, entropy=ent,
                             latency_ms={"inference": item.infer_ms, "total": p.prep_ms + item.infer_ms + post_ms})
        return result, post_ms

    def process(self, frame: np.ndarray, ts: float, settings: Settings) -> tuple[FrameResult, dict[str, float]]:
        """All three stages in one call (tests, tools)."""
        prepared = self.prepare(frame, ts)
        inferred = self.run(prepared)
        result, post_ms = self.finish(inferred, settings)
        return result, {"preprocess": prepared.prep_ms, "inference": inferred.infer_ms, "postprocess": post_ms}
