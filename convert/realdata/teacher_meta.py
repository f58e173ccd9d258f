"""The sigmawatch metadata (sidecar) of the teacher, MediaPipe's SSD MobileNetV2 trained on Open Images V4.

How MediaPipe runs this model (its public Objectron graph ``object_detection_oid_v4_cpu.pbtxt``): the whole
frame stretched to 300x300 (aspect ratio not kept), RGB scaled to [-1, 1]; SSD anchors with 6 layers, scales
0.2..0.95, strides 16..512, aspect ratios 1, 2, 0.5, 3, 0.3333, the lowest layer reduced to 3 boxes; box coder
scales y, x = 10 and h, w = 5 with exponential sizes; sigmoid scores over 24 classes where class 0 (``???``) is
the background; detections kept above 0.5 and suppressed at IoU 0.5. Those settings are data here, read by
``edge.ssd`` like any other model's metadata.
"""
from __future__ import annotations

from typing import Any

TEACHER_ID = "mediapipe-ssd-mobilenetv2-oidv4-fp16"

ANCHORS = {
    "num_layers": 6, "min_scale": 0.2, "max_scale": 0.95, "input_size": [300, 300],
    "strides": [16, 32, 64, 128, 256, 512], "aspect_ratios": [1.0, 2.0, 0.5, 3.0, 0.3333],
    "offset": [0.5, 0.5], "reduce_boxes_in_lowest_layer": True, "interpolated_scale_aspect_ratio": 1.0,
}


def teacher_metadata(labels: list[str]) -> dict[str, Any]:
    if len(labels) != 24 or labels[0] != "???":
        raise ValueError(f"the Open Images V4 label map should hold '???' + 23 classes, got {len(labels)} lines")
    return {
        "task": "detection", "architecture": "ssd-mobilenetv2-oidv4", "model_id": TEACHER_ID,
        "quantization": "float16", "labels": labels, "created_by": "sigmawatch convert.realdata (sidecar only)",
        "licence": "Apache-2.0 (MediaPipe, npm @mediapipe/objectron 0.4.1675468480)",
        "input": {"height": 300, "width": 300, "channels": 3, "dtype": "float32", "resize": "stretch",
                  "color": "RGB", "normalization": {"mean": 127.5, "std": 127.5}},
        "detection": {"head": "ssd", "box_coding": "anchors", "num_classes": 24, "anchors": ANCHORS,
                      "box_scale": [10.0, 10.0, 5.0, 5.0], "score_activation": "sigmoid", "ignore_classes": [0],
                      "default_score_threshold": 0.5, "default_iou_threshold": 0.5,
                      "outputs": {"boxes": "raw_outputs/box_encodings", "scores": "raw_outputs/class_predictions"}},
    }
