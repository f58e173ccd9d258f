"""Ground truth -> YOLOv3 training targets (numpy, runs inside the tf.data pipeline).

Each box goes to the one anchor (over all strides) whose shape matches best (IoU of centred boxes),
in the grid cell holding its centre, as in YOLOv3. Per stride the target has shape
(H/s, W/s, 3, 6 + C): tx, ty (centre offset in the cell, [0, 1)), tw, th (log(box / anchor)),
objectness (1 where assigned), box loss scale (2 - w*h, w and h relative to the input), one-hot class.
"""
from __future__ import annotations

import numpy as np

from convert.detection.anchors import wh_iou

TARGET_ENTRIES = 6  # tx, ty, tw, th, obj, scale (then classes)


def target_shapes(input_size: tuple[int, int], strides, num_classes: int) -> list[tuple[int, int, int, int]]:
    h, w = input_size
    return [(h // s, w // s, 3, TARGET_ENTRIES + num_classes) for s in strides]


def encode_targets(boxes: np.ndarray, class_ids: np.ndarray, input_size: tuple[int, int], strides,
                   anchors, num_classes: int) -> list[np.ndarray]:
    """``boxes``: (N, 4) x1, y1, x2, y2 in input pixels; ``anchors``: per stride 3 (w, h). One array per stride."""
    h, w = input_size
    out = [np.zeros(shape, np.float32) for shape in target_shapes(input_size, strides, num_classes)]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return out
    flat = np.asarray(anchors, np.float32).reshape(-1, 2)
    wh = boxes[:, 2:] - boxes[:, :2]
    best = wh_iou(wh, flat).argmax(1)
    for (x1, y1, x2, y2), (bw, bh), c, k in zip(boxes, wh, class_ids, best):
        if bw <= 0 or bh <= 0:
            continue
        si, ai = divmod(int(k), 3)
        s = strides[si]
        t = out[si]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        gx = min(int(cx // s), t.shape[1] - 1)
        gy = min(int(cy // s), t.shape[0] - 1)
        aw, ah = flat[k]
        t[gy, gx, ai, :TARGET_ENTRIES] = [cx / s - gx, cy / s - gy, np.log(bw / aw), np.log(bh / ah), 1.0,
                                          2.0 - (bw / w) * (bh / h)]
        t[gy, gx, ai, TARGET_ENTRIES:] = 0.0
        t[gy, gx, ai, TARGET_ENTRIES + int(c)] = 1.0
    return out


def pad_boxes(boxes: np.ndarray, max_boxes: int) -> np.ndarray:
    """(max_boxes, 4) ground-truth boxes for the ignore mask; zero rows are padding."""
    out = np.zeros((max_boxes, 4), np.float32)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)[:max_boxes]
    out[:len(b)] = b
    return out
