"""Standard SSD detectors as plain detectors (no sigma). numpy only: runs on the Pi and in evaluation.

Two output conventions, chosen by the model metadata's ``detection.box_coding``:

* ``"anchors"``: the raw SSD head, as MediaPipe runs its SSD models (e.g. the Objectron package's SSD MobileNetV2
  trained on Open Images V4). Outputs: box encodings (1, N, 4) and class logits (1, N, C). Anchors come from
  MediaPipe's SSD anchor settings (``ssd_anchors``); each encoding (ty, tx, th, tw) is decoded against its anchor
  (ya, xa, ha, wa), all normalized to the input:
  y = ty / sy * ha + ya, x = tx / sx * wa + xa, h = exp(th / sh) * ha, w = exp(tw / sw) * wa.
  Scores are sigmoid(logit) (or the raw values), background classes are ignored, the best class wins.
* ``"postprocess"``: models whose graph ends in ``TFLite_Detection_PostProcess`` (Coral's and Frigate's SSDs):
  four outputs, boxes (1, K, 4) as normalized (ymin, xmin, ymax, xmax), classes (1, K), scores (1, K), count (1,).

Both give :class:`edge.decode.Detection` objects with ``sigma``, ``sigma_mean`` and ``box_sigma`` None: such a
model has no idea of its own localization uncertainty, and none is invented for it.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from edge.decode import Detection, _dequantize, batched_nms

BOX_CODINGS = ("anchors", "postprocess")
_ANCHOR_KEYS = {"num_layers", "min_scale", "max_scale", "input_size", "strides", "aspect_ratios", "offset",
                "reduce_boxes_in_lowest_layer", "interpolated_scale_aspect_ratio", "fixed_anchor_size"}


def _layer_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) / 2.0
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def ssd_anchors(spec: Mapping[str, Any]) -> np.ndarray:
    """(N, 4) anchors as (y_center, x_center, h, w), normalized to the input, in the model's output order.

    ``spec`` holds MediaPipe's SSD anchor options: ``num_layers``, ``min_scale``, ``max_scale``,
    ``input_size`` [h, w], ``strides`` (one per layer), ``aspect_ratios``, ``offset`` [y, x] (default 0.5),
    ``reduce_boxes_in_lowest_layer`` (the first layer gets 3 anchors: ratio 1 at scale 0.1, ratios 2 and 0.5 at
    the layer scale), ``interpolated_scale_aspect_ratio`` (default 1.0: one more anchor per cell at the geometric
    mean of this layer's and the next layer's scale; 0 turns it off), ``fixed_anchor_size`` (w = h = 1).
    Layers with equal strides share one feature map and their anchors are interleaved per cell."""
    unknown = set(spec) - _ANCHOR_KEYS
    if unknown:
        raise ValueError(f"SSD anchor spec: unknown key(s) {sorted(unknown)}; known: {sorted(_ANCHOR_KEYS)}")
    try:
        layers = int(spec["num_layers"])
        lo, hi = float(spec["min_scale"]), float(spec["max_scale"])
        in_h, in_w = (int(v) for v in spec["input_size"])
        strides = [int(s) for s in spec["strides"]]
        ratios = [float(r) for r in spec["aspect_ratios"]]
    except KeyError as exc:
        raise ValueError(f"SSD anchor spec lacks {exc.args[0]!r}") from None
    if len(strides) != layers:
        raise ValueError(f"SSD anchor spec: {layers} layers but {len(strides)} strides")
    off_y, off_x = (float(v) for v in spec.get("offset", (0.5, 0.5)))
    reduce_lowest = bool(spec.get("reduce_boxes_in_lowest_layer", False))
    interp = float(spec.get("interpolated_scale_aspect_ratio", 1.0))
    fixed = bool(spec.get("fixed_anchor_size", False))
    out: list[np.ndarray] = []
    layer = 0
    while layer < layers:
        shapes: list[tuple[float, float]] = []   # (scale, aspect ratio) per anchor of a cell
        last = layer
        while last < layers and strides[last] == strides[layer]:
            scale = _layer_scale(lo, hi, last, layers)
            if last == 0 and reduce_lowest:
                shapes += [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
            else:
                shapes += [(scale, r) for r in ratios]
                if interp > 0:
                    nxt = 1.0 if last == layers - 1 else _layer_scale(lo, hi, last + 1, layers)
                    shapes.append((math.sqrt(scale * nxt), interp))
            last += 1
        fh, fw = math.ceil(in_h / strides[layer]), math.ceil(in_w / strides[layer])
        hw = np.array([(1.0, 1.0) if fixed else (s / math.sqrt(r), s * math.sqrt(r)) for s, r in shapes], np.float32)
        ys = (np.arange(fh, dtype=np.float32) + off_y) / fh
        xs = (np.arange(fw, dtype=np.float32) + off_x) / fw
        yy, xx, aa = np.meshgrid(ys, xs, np.arange(len(shapes)), indexing="ij")   # cell-major, anchor-minor
        out.append(np.stack([yy.ravel(), xx.ravel(), hw[aa.ravel(), 0], hw[aa.ravel(), 1]], 1))
        layer = last
    return np.concatenate(out, 0).astype(np.float32)


def _finish(boxes_norm_input: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, labels: Sequence[str], info,
            score_threshold: float, iou_threshold: float, max_detections: int, nms: bool) -> list[Detection]:
    """Threshold, (class-aware NMS), map input-normalized xyxy boxes to the frame; plain detections."""
    ok = scores > score_threshold
    if not np.any(ok):
        return []
    boxes_norm_input, scores, class_ids = boxes_norm_input[ok], scores[ok], class_ids[ok]
    px = boxes_norm_input * np.array([info.input_w, info.input_h, info.input_w, info.input_h], np.float32)
    if nms:
        keep = batched_nms(px, scores, class_ids, iou_threshold, max_detections)
    else:
        keep = np.argsort(-scores, kind="stable")[:max_detections]
    frame = info.to_frame_normalized(px[keep])
    return [Detection(class_id=int(class_ids[k]), label=labels[int(class_ids[k])], score=float(scores[k]),
                      objectness=float(scores[k]), box=tuple(float(v) for v in frame[j]),
                      sigma=None, sigma_mean=None, box_sigma=None)
            for j, k in enumerate(keep)]


class SSDDecoder:
    """Decoder for ``detection.head == "ssd"`` models. Build with :meth:`from_metadata`."""

    head = "ssd"

    def __init__(self, *, box_coding: str, labels: Sequence[str], outputs: Mapping[str, str] | None = None,
                 anchors: Mapping[str, Any] | None = None, box_scale: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
                 score_activation: str = "sigmoid", ignore_classes: Iterable[int] = (), label_offset: int = 0):
        if box_coding not in BOX_CODINGS:
            raise ValueError(f"detection.box_coding {box_coding!r} is unknown; expected one of {BOX_CODINGS}")
        if score_activation not in ("sigmoid", "none"):
            raise ValueError(f"detection.score_activation {score_activation!r}: expected 'sigmoid' or 'none'")
        self.box_coding = box_coding
        self.labels = list(labels)
        self.num_classes = len(self.labels)
        self.outputs = dict(outputs or {})
        self.box_scale = np.asarray(box_scale, np.float32)
        if self.box_scale.shape != (4,) or np.any(self.box_scale <= 0):
            raise ValueError(f"detection.box_scale must be 4 positive numbers (y, x, h, w), got {list(box_scale)}")
        self.score_activation = score_activation
        self.ignore = sorted({int(c) for c in ignore_classes})
        self.label_offset = int(label_offset)
        self.anchors = None
        if box_coding == "anchors":
            if anchors is None:
                raise ValueError("detection.anchors (MediaPipe SSD anchor options) is required for box_coding 'anchors'")
            self.anchors = ssd_anchors(anchors)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> "SSDDecoder":
        det = meta.get("detection")
        if not isinstance(det, Mapping):
            raise ValueError("model metadata has no 'detection' section: this is not a detector export")
        try:
            return cls(box_coding=det["box_coding"], labels=meta["labels"], outputs=det.get("outputs"),
                       anchors=det.get("anchors"), box_scale=det.get("box_scale", (10.0, 10.0, 5.0, 5.0)),
                       score_activation=det.get("score_activation", "sigmoid"),
                       ignore_classes=det.get("ignore_classes", ()), label_offset=det.get("label_offset", 0))
        except KeyError as exc:
            raise ValueError(f"model metadata 'detection' section lacks {exc.args[0]!r}") from None

    # -- outputs
    def _output(self, outputs: Mapping[str, np.ndarray], role: str, fallback: int) -> tuple[str, np.ndarray]:
        name = self.outputs.get(role)
        if name is not None:
            if name not in outputs:
                raise KeyError(f"SSD output {name!r} ({role}) not found; the model has {sorted(outputs)}")
            return name, np.asarray(outputs[name])
        names = list(outputs)
        if fallback >= len(names):
            raise KeyError(f"SSD model has {len(names)} outputs, no {role!r} output; name it in detection.outputs")
        return names[fallback], np.asarray(outputs[names[fallback]])

    def expected_outputs(self) -> list[str]:
        """Output names the metadata promises (checked against the flatbuffer when the model is loaded)."""
        roles = ("boxes", "scores") if self.box_coding == "anchors" else ("boxes", "classes", "scores", "count")
        return [self.outputs[r] for r in roles if r in self.outputs]

    def raw(self, outputs: Mapping[str, np.ndarray], quant: Mapping[str, tuple[float, int]] | None = None):
        """Anchor models: (boxes (N, 4) as input-normalized xyxy, per-class scores (N, C) after the activation)."""
        quant = quant or {}
        bname, enc = self._output(outputs, "boxes", 0)
        sname, logits = self._output(outputs, "scores", 1)
        enc = _dequantize(enc, quant.get(bname)).reshape(-1, 4)
        logits = _dequantize(logits, quant.get(sname)).reshape(enc.shape[0], -1)
        if enc.shape[0] != self.anchors.shape[0]:
            raise ValueError(f"SSD output {bname!r} has {enc.shape[0]} boxes but the anchor settings give "
                             f"{self.anchors.shape[0]}; the metadata's detection.anchors do not belong to this model")
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"SSD output {sname!r} has {logits.shape[1]} classes but the metadata has "
                             f"{self.num_classes} labels")
        a = self.anchors
        t = enc / self.box_scale
        yc = t[:, 0] * a[:, 2] + a[:, 0]
        xc = t[:, 1] * a[:, 3] + a[:, 1]
        h = np.exp(np.clip(t[:, 2], -10, 10)) * a[:, 2]
        w = np.exp(np.clip(t[:, 3], -10, 10)) * a[:, 3]
        boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], 1)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30))) if self.score_activation == "sigmoid" else logits
        return boxes.astype(np.float32), scores.astype(np.float32)

    def decode(self, outputs: Mapping[str, np.ndarray], quant: Mapping[str, tuple[float, int]] | None, info,
               score_threshold: float = 0.5, iou_threshold: float = 0.5, max_detections: int = 100,
               classes: Iterable[int] | None = None) -> list[Detection]:
        """Plain detections sorted by score; ``info`` maps the model input back to the frame."""
        allowed = np.ones(self.num_classes, bool)
        allowed[[c for c in self.ignore if 0 <= c < self.num_classes]] = False
        if classes is not None:
            only = np.zeros(self.num_classes, bool)
            only[[c for c in classes if 0 <= int(c) < self.num_classes]] = True
            allowed &= only
        if self.box_coding == "anchors":
            boxes, scores = self.raw(outputs, quant)
            scores = np.where(allowed[None, :], scores, -np.inf)
            class_ids = np.argmax(scores, 1)
            best = scores[np.arange(scores.shape[0]), class_ids]
            return _finish(boxes, best, class_ids, self.labels, info, score_threshold, iou_threshold,
                           max_detections, nms=True)
        quant = quant or {}
        parts = {}
        for i, role in enumerate(("boxes", "classes", "scores", "count")):
            name, arr = self._output(outputs, role, i)
            parts[role] = _dequantize(arr, quant.get(name)) if arr.dtype.kind in "iu" and role != "count" \
                and quant.get(name, (0, 0))[0] else np.asarray(arr, np.float32)
        n = int(np.asarray(parts["count"]).reshape(-1)[0])
        yxyx = parts["boxes"].reshape(-1, 4)[:n]
        class_ids = np.rint(parts["classes"].reshape(-1)[:n]).astype(np.int64) + self.label_offset
        scores = parts["scores"].reshape(-1)[:n].astype(np.float32)
        valid = (class_ids >= 0) & (class_ids < self.num_classes)
        valid[valid] &= allowed[class_ids[valid]]
        boxes = np.clip(yxyx[:, [1, 0, 3, 2]], 0.0, 1.0)
        return _finish(boxes[valid], scores[valid], class_ids[valid], self.labels, info, score_threshold,
                       iou_threshold, max_detections, nms=False)


def make_decoder(meta: Mapping[str, Any]):
    """The decoder a detector's metadata asks for: Gaussian / plain YOLOv3 or SSD."""
    from edge.decode import DetectionDecoder
    det = meta.get("detection") or {}
    if det.get("head") == "ssd":
        return SSDDecoder.from_metadata(meta)
    return DetectionDecoder.from_metadata(meta)
