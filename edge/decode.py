"""Raw detector outputs -> detections with uncertainty. numpy only (runs on the Pi and in evaluation).

Per stride ``s`` the model has two outputs (see the contracts and FINDINGS: one concatenated output
quantizes badly):

* ``s{s}_sigmoid`` (1, H/s, W/s, 3*(7+C)) for the Gaussian head, per anchor
  mu_x, mu_y, sigma_x, sigma_y, sigma_w, sigma_h, objectness, class_0..class_{C-1}, all in [0, 1];
  plain YOLOv3 head: 3*(3+C): mu_x, mu_y, objectness, classes.
* ``s{s}_linear`` (1, H/s, W/s, 3*2): mu_w, mu_h per anchor, raw.

Box: bx = (mu_x + cx) * s, by = (mu_y + cy) * s, bw = aw * exp(mu_w), bh = ah * exp(mu_h) in input pixels.
Score: objectness * p(class) * (1 - mean(sigma)) for the Gaussian head, objectness * p(class) for the plain one.
Then class-aware NMS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

HEADS = ("gaussian", "plain")
MAX_LOG_WH = 8.0  # exp(8) ~ 3000x the anchor: clamp so corrupt outputs cannot overflow


@dataclass(frozen=True)
class Detection:
    """One detection. ``box`` is (x1, y1, x2, y2) normalized to the frame; ``sigma`` the model's
    (sigma_x, sigma_y, sigma_w, sigma_h) in [0, 1]; ``box_sigma`` the standard deviation of
    (x_center, y_center, width, height) in frame-normalized units (None for the plain head); ``zones`` the
    names of the configured zones holding the box centre (set by the agent, ``edge.engine``, when zones are
    configured); ``track`` the id of the confirmed track that took it (set by the agent's tracker,
    ``edge.objects``; None when tracking is off or the object is not confirmed yet).
    ``edge.contract.wire.detection_array`` writes it as it travels."""
    class_id: int
    label: str
    score: float
    objectness: float
    box: tuple[float, float, float, float]
    sigma: tuple[float, float, float, float] | None
    sigma_mean: float | None
    box_sigma: tuple[float, float, float, float] | None
    zones: tuple[str, ...] = ()
    track: int | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


# --------------------------------------------------------------------------- geometry + NMS
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) between xyxy boxes."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.45, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS; returns kept indices, highest score first. Ties keep the lower index."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    if order.size <= 512:
        # Few candidates (the live case): one IoU matrix instead of one IoU row per kept box. Same result.
        ranked = boxes[order]
        suppress = box_iou(ranked, ranked) > iou_threshold
        removed = np.zeros(order.size, bool)
        for r in range(order.size):
            if removed[r]:
                continue
            keep.append(int(order[r]))
            if max_keep is not None and len(keep) >= max_keep:
                break
            removed |= suppress[r]
        return np.asarray(keep, dtype=np.int64)
    while order.size:
        i = int(order[0])
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float = 0.45,
                max_keep: int | None = None) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other. Kept indices by score."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return np.zeros((0,), np.int64)
    class_ids = np.asarray(class_ids).reshape(-1)
    # Shift each class to its own region of the plane (torchvision's trick): one NMS pass, no overlap.
    span = float(np.max(boxes) - np.min(boxes)) + 1.0
    offsets = (class_ids.astype(np.float32) * span)[:, None]
    return nms(boxes + offsets, scores, iou_threshold, max_keep)


# --------------------------------------------------------------------------- decoder
def _dequantize(array: np.ndarray, q: tuple[float, int] | None) -> np.ndarray:
    if array.dtype in (np.float32, np.float16, np.float64):
        return array.astype(np.float32, copy=False)
    if q is None or not q[0]:
        raise ValueError(f"output of dtype {array.dtype} needs its (scale, zero_point); none was given")
    scale, zero = q
    return (array.astype(np.float32) - np.float32(zero)) * np.float32(scale)


class DetectionDecoder:
    """Decodes the per-stride outputs of one detector. Build with :meth:`from_metadata`."""

    def __init__(self, *, head: str, num_classes: int, strides: Sequence[int], anchors: Sequence[Sequence[Sequence[float]]],
                 labels: Sequence[str] | None = None, output_names: Mapping[str, Mapping[str, str]] | None = None,
                 input_size: tuple[int, int] | None = None):
        if head not in HEADS:
            raise ValueError(f"detection head {head!r} is unknown; expected one of {HEADS}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if len(anchors) != len(strides):
            raise ValueError(f"need one anchor list per stride: {len(strides)} strides, {len(anchors)} anchor lists")
        self.head = head
        self.num_classes = int(num_classes)
        self.strides = [int(s) for s in strides]
        self.anchors = [np.asarray(a, np.float32).reshape(-1, 2) for a in anchors]
        for s, a in zip(self.strides, self.anchors):
            if a.shape[0] != 3:
                raise ValueError(f"stride {s}: expected 3 anchors (w, h), got {a.shape[0]}")
        self.labels = list(labels) if labels else [str(i) for i in range(self.num_classes)]
        if len(self.labels) != self.num_classes:
            raise ValueError(f"{len(self.labels)} labels for {self.num_classes} classes")
        self.output_names = {str(s): dict((output_names or {}).get(str(s), {})) for s in self.strides}
        for s in self.strides:
            self.output_names[str(s)].setdefault("sigmoid", f"s{s}_sigmoid")
            self.output_names[str(s)].setdefault("linear", f"s{s}_linear")
        self.input_size = input_size  # (w, h), used to find outputs by shape when names are missing
        self.per_anchor = (7 if head == "gaussian" else 3) + self.num_classes

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> "DetectionDecoder":
        det = meta.get("detection")
        if not isinstance(det, Mapping):
            raise ValueError("model metadata has no 'detection' section: this is not a detector export")
        try:
            inp = meta.get("input") or {}
            size = (int(inp["width"]), int(inp["height"])) if "width" in inp and "height" in inp else None
            return cls(head=det["head"], num_classes=int(det["num_classes"]), strides=det["strides"],
                       anchors=det["anchors"], labels=meta.get("labels"), output_names=det.get("outputs"),
                       input_size=size)
        except KeyError as exc:
            raise ValueError(f"model metadata 'detection' section lacks {exc.args[0]!r}") from None

    # -- output lookup
    def _find(self, outputs: Mapping[str, np.ndarray], stride: int, kind: str) -> tuple[str, np.ndarray]:
        name = self.output_names[str(stride)][kind]
        if name in outputs:
            return name, outputs[name]
        # Fallback: match by shape (a model converted without signature names).
        channels = 3 * self.per_anchor if kind == "sigmoid" else 6
        if self.input_size is not None:
            gw, gh = self.input_size[0] // stride, self.input_size[1] // stride
            matches = [(k, v) for k, v in outputs.items()
                       if tuple(np.shape(v)[-3:]) == (gh, gw, channels)]
            if len(matches) == 1:
                return matches[0]
        raise KeyError(f"detector output {name!r} (stride {stride}, {kind}) not found; the model has "
                       f"{sorted(outputs)}. Re-export with convert-model so outputs carry their names")

    def _stride_outputs(self, outputs: Mapping[str, np.ndarray], stride: int) -> tuple[str, np.ndarray, str, np.ndarray]:
        """(sigmoid name, (gh, gw, 3*per_anchor) array, linear name, (gh, gw, 6) array) of one stride, raw."""
        sname, sig = self._find(outputs, stride, "sigmoid")
        lname, lin = self._find(outputs, stride, "linear")
        sig, lin = np.asarray(sig), np.asarray(lin)
        if sig.ndim == 4:
            sig = sig[0]
        if lin.ndim == 4:
            lin = lin[0]
        gh, gw = sig.shape[:2]
        if sig.shape[2] != 3 * self.per_anchor:
            raise ValueError(f"output {sname!r} has {sig.shape[2]} channels; a {self.head} head with {self.num_classes} "
                             f"classes needs {3 * self.per_anchor}")
        if lin.shape != (gh, gw, 6):
            raise ValueError(f"output {lname!r} has shape {lin.shape}; expected {(gh, gw, 6)}")
        return sname, sig, lname, lin

    def raw_predictions(self, outputs: Mapping[str, np.ndarray],
                        quant: Mapping[str, tuple[float, int]] | None = None) -> dict[str, np.ndarray]:
        """All anchors of all strides, before thresholds: boxes_cxcywh (input px), objectness, class_probs,
        sigma (N, 4; zeros for the plain head), stride (N,)."""
        quant = quant or {}
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("cxcywh", "obj", "cls", "sigma", "stride")}
        C = self.num_classes
        for s, anchors in zip(self.strides, self.anchors):
            sname, sig, lname, lin = self._stride_outputs(outputs, s)
            sig = _dequantize(sig, quant.get(sname))
            lin = _dequantize(lin, quant.get(lname))
            gh, gw = sig.shape[:2]
            sig = np.clip(sig.reshape(gh, gw, 3, self.per_anchor), 0.0, 1.0)
            lin = np.clip(lin.reshape(gh, gw, 3, 2), -MAX_LOG_WH, MAX_LOG_WH)
            cy, cx = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
            bx = (sig[..., 0] + cx[..., None]) * s
            by = (sig[..., 1] + cy[..., None]) * s
            bw = anchors[None, None, :, 0] * np.exp(lin[..., 0])
            bh = anchors[None, None, :, 1] * np.exp(lin[..., 1])
            if self.head == "gaussian":
                sigma = sig[..., 2:6]
                obj, cls = sig[..., 6], sig[..., 7:7 + C]
            else:
                sigma = np.zeros(sig.shape[:3] + (4,), np.float32)
                obj, cls = sig[..., 2], sig[..., 3:3 + C]
            parts["cxcywh"].append(np.stack([bx, by, bw, bh], -1).reshape(-1, 4))
            parts["obj"].append(obj.reshape(-1))
            parts["cls"].append(cls.reshape(-1, C))
            parts["sigma"].append(sigma.reshape(-1, 4))
            parts["stride"].append(np.full(obj.size, s, np.float32))
        return {k: np.concatenate(v, 0) for k, v in parts.items()}

    def candidates(self, outputs: Mapping[str, np.ndarray], quant: Mapping[str, tuple[float, int]] | None,
                   objectness_threshold: float) -> dict[str, np.ndarray]:
        """Like :meth:`raw_predictions`, but only for anchors whose objectness exceeds the threshold.

        On a live camera nearly every anchor has a low objectness; dequantizing and decoding all of them
        (960 anchors for a 256x256 two-scale model) costs more than the rest of the decoding. Here only the
        objectness column is dequantized for every anchor, with the same arithmetic as ``raw_predictions``,
        so the selected anchors and their values are exactly those ``raw_predictions`` would give."""
        quant = quant or {}
        C = self.num_classes
        obj_col = 6 if self.head == "gaussian" else 2
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("cxcywh", "obj", "cls", "sigma", "stride")}
        for s, anchors in zip(self.strides, self.anchors):
            sname, sig, lname, lin = self._stride_outputs(outputs, s)
            gw = sig.shape[1]
            rows = sig.reshape(-1, self.per_anchor)                     # (gh*gw*3, per_anchor), anchor-minor
            obj = np.clip(_dequantize(rows[:, obj_col], quant.get(sname)), 0.0, 1.0)
            idx = np.nonzero(obj > objectness_threshold)[0] if objectness_threshold > 0 else np.arange(obj.size)
            sel = np.clip(_dequantize(rows[idx], quant.get(sname)), 0.0, 1.0)
            wh = np.clip(_dequantize(lin.reshape(-1, 2)[idx], quant.get(lname)), -MAX_LOG_WH, MAX_LOG_WH)
            cell, a = np.divmod(idx, 3)
            cy, cx = np.divmod(cell, gw)
            bx = (sel[:, 0] + cx.astype(np.float32)) * s
            by = (sel[:, 1] + cy.astype(np.float32)) * s
            bw = anchors[a, 0] * np.exp(wh[:, 0])
            bh = anchors[a, 1] * np.exp(wh[:, 1])
            if self.head == "gaussian":
                sigma, o, cls = sel[:, 2:6], sel[:, 6], sel[:, 7:7 + C]
            else:
                sigma, o, cls = np.zeros((idx.size, 4), np.float32), sel[:, 2], sel[:, 3:3 + C]
            parts["cxcywh"].append(np.stack([bx, by, bw, bh], -1).reshape(-1, 4).astype(np.float32))
            parts["obj"].append(o.reshape(-1))
            parts["cls"].append(cls.reshape(-1, C))
            parts["sigma"].append(sigma.reshape(-1, 4))
            parts["stride"].append(np.full(idx.size, s, np.float32))
        return {k: np.concatenate(v, 0) for k, v in parts.items()}

    def decode(self, outputs: Mapping[str, np.ndarray], quant: Mapping[str, tuple[float, int]] | None,
               info, score_threshold: float = 0.25, iou_threshold: float = 0.45, max_detections: int = 100,
               classes: Iterable[int] | None = None) -> list[Detection]:
        """Detections sorted by score. ``info`` is the :class:`edge.preprocess.LetterboxInfo` of the frame."""
        # Pre-filter: score <= objectness, so anchors below the threshold on objectness cannot pass.
        p = self.candidates(outputs, quant, score_threshold)
        obj, cls, sigma = p["obj"], p["cls"], p["sigma"]
        cand = np.arange(obj.size)
        if cand.size == 0:
            return []
        sigma_mean = sigma[cand].mean(axis=1)
        certainty = (1.0 - sigma_mean) if self.head == "gaussian" else np.ones_like(sigma_mean)
        cls_scores = obj[cand, None] * cls[cand] * certainty[:, None]
        if classes is not None:
            allowed = np.zeros(self.num_classes, bool)
            allowed[[c for c in classes if 0 <= int(c) < self.num_classes]] = True
            cls_scores = np.where(allowed[None, :], cls_scores, 0.0)
        class_id = np.argmax(cls_scores, axis=1)
        score = cls_scores[np.arange(cand.size), class_id]
        ok = score > score_threshold
        if not np.any(ok):
            return []
        cand, class_id, score, sigma_mean = cand[ok], class_id[ok], score[ok], sigma_mean[ok]
        cxcywh = p["cxcywh"][cand]
        xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
        keep = batched_nms(xyxy, score, class_id, iou_threshold, max_detections)
        boxes_norm = info.to_frame_normalized(xyxy[keep])
        result = []
        for j, k in enumerate(keep):
            i = cand[k]
            if self.head == "gaussian":
                sg = sigma[i]
                # sigma in input pixels: centre offsets scale with the stride, log-size with the size itself
                px = np.array([[sg[0] * p["stride"][i], sg[1] * p["stride"][i]],
                               [cxcywh[k, 2] * sg[2], cxcywh[k, 3] * sg[3]]], np.float32)
                bs = info.lengths_to_frame_normalized(px).reshape(-1)
                sig_t = tuple(float(v) for v in sg)
                box_sigma = tuple(float(v) for v in bs)
                smean = float(sigma_mean[k])
            else:
                sig_t, box_sigma, smean = None, None, None
            result.append(Detection(class_id=int(class_id[k]), label=self.labels[int(class_id[k])],
                                    score=float(score[k]), objectness=float(obj[i]),
                                    box=tuple(float(v) for v in boxes_norm[j]), sigma=sig_t,
                                    sigma_mean=smean, box_sigma=box_sigma))
        return result
