"""Detection dataset readers: YOLO txt folders and COCO JSON. No TensorFlow.

Both produce a :class:`DetectionDataset`: class names and samples (image path, boxes in pixels
x1, y1, x2, y2, class ids). Problems are reported as :class:`edge.contract.errors.InputError` naming the
file and how to fix it: no images, images without label files, boxes out of range or empty, unknown
class ids, unreadable JSON.

YOLO layout (what ``convert-model synth`` writes)::

    ROOT/classes.txt                 one class name a line (or data.yaml with `names:`)
    ROOT/images/<split>/*.jpg|png    ROOT/labels/<split>/<same stem>.txt: "class cx cy w h", normalized
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.contract.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
TOLERANCE = 1e-3  # normalized coordinates may exceed [0, 1] by rounding only


@dataclass
class Sample:
    image: Path
    width: int
    height: int
    boxes: np.ndarray      # (N, 4) float32 pixels x1, y1, x2, y2
    class_ids: np.ndarray  # (N,) int64


@dataclass
class DetectionDataset:
    names: list[str]
    samples: list[Sample]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def box_sizes(self, input_size: tuple[int, int] | None = None, letterbox: bool = True) -> np.ndarray:
        """(N, 2) box widths/heights, in pixels of ``input_size`` (w, h) after letterboxing when given."""
        out = []
        for s in self.samples:
            wh = s.boxes[:, 2:] - s.boxes[:, :2]
            if input_size is not None:
                if letterbox:
                    r = min(input_size[0] / s.width, input_size[1] / s.height)
                    wh = wh * r
                else:
                    wh = wh * np.array([input_size[0] / s.width, input_size[1] / s.height], np.float32)
            out.append(wh)
        return np.concatenate(out, 0) if out else np.zeros((0, 2), np.float32)

    def summary(self) -> str:
        n_boxes = sum(len(s.boxes) for s in self.samples)
        return f"{self.source}: {len(self.samples)} images, {n_boxes} boxes, {self.num_classes} classes"


def read_names(root: Path) -> list[str]:
    for name in ("classes.txt", "obj.names", "classes.names"):
        p = root / name
        if p.is_file():
            names = [line.strip() for line in p.read_text().splitlines() if line.strip()]
            if names:
                return names
    p = root / "data.yaml"
    if p.is_file():
        import yaml
        data = yaml.safe_load(p.read_text()) or {}
        names = data.get("names")
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names)]
        if isinstance(names, list) and names:
            return [str(n) for n in names]
    raise InputError(f"{root}: no class names found; write classes.txt (one class name a line) or data.yaml "
                     "with a 'names:' list")


def _image_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: cannot be read as an image (corrupt or unsupported format)")
    return img.shape[1], img.shape[0]


def parse_yolo_label(path: Path, num_classes: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse one label file; errors name the file and line."""
    boxes, ids = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{lineno}"
        if len(parts) != 5:
            raise InputError(f"{where}: expected 'class cx cy w h' (5 numbers), got {len(parts)} fields: {line.strip()!r}")
        try:
            c = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise InputError(f"{where}: not numbers: {line.strip()!r}") from None
        if not 0 <= c < num_classes:
            raise InputError(f"{where}: class id {c} is out of range; classes.txt lists {num_classes} classes (0..{num_classes - 1})")
        if w <= 0 or h <= 0:
            raise InputError(f"{where}: box has width {w} / height {h}; both must be > 0")
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        if min(x1, y1) < -TOLERANCE or max(x2, y2) > 1 + TOLERANCE:
            raise InputError(f"{where}: box [{x1:.4f}, {y1:.4f}, {x2:.4f}, {y2:.4f}] lies outside the image; YOLO labels are "
                             "normalized to [0, 1] (divide pixel coordinates by the image width/height)")
        boxes.append([max(0, x1) * width, max(0, y1) * height, min(1, x2) * width, min(1, y2) * height])
        ids.append(c)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64)


def read_yolo(root: str | Path, split: str = "train", names: list[str] | None = None) -> DetectionDataset:
    root = Path(root)
    img_dir, lbl_dir = root / "images" / split, root / "labels" / split
    if not img_dir.is_dir():
        raise InputError(f"{root}: no '{split}' image folder at {img_dir}; expected the YOLO layout "
                         f"images/{split}/ and labels/{split}/ (create one with: convert-model synth --out DIR)")
    names = names or read_names(root)
    images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"{img_dir}: the dataset is empty (no {', '.join(IMAGE_SUFFIXES)} images)")
    missing = [p for p in images if not (lbl_dir / f"{p.stem}.txt").is_file()]
    if missing:
        raise InputError(f"{lbl_dir}: {len(missing)} of {len(images)} images have no label file (first: "
                         f"{missing[0].name} -> expected {lbl_dir / (missing[0].stem + '.txt')}); images without "
                         "objects need an empty .txt file")
    samples = []
    for p in images:
        w, h = _image_size(p)
        boxes, ids = parse_yolo_label(lbl_dir / f"{p.stem}.txt", len(names), w, h)
        samples.append(Sample(p, w, h, boxes, ids))
    if sum(len(s.boxes) for s in samples) == 0:
        raise InputError(f"{lbl_dir}: no boxes in any of the {len(samples)} label files: nothing to train or evaluate on")
    return DetectionDataset(names, samples, f"{root} [{split}]")


def read_coco(annotations: str | Path, images_dir: str | Path | None = None) -> DetectionDataset:
    """COCO JSON: ``images`` (id, file_name, width, height), ``annotations`` (image_id, category_id,
    bbox [x, y, w, h] pixels), ``categories`` (id, name). Category ids map to 0..C-1 in id order."""
    path = Path(annotations)
    if not path.is_file():
        raise InputError(f"COCO annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(f"{path}: COCO files need a '{key}' list")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    if not cats:
        raise InputError(f"{path}: 'categories' is empty")
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    images_dir = Path(images_dir) if images_dir else path.parent
    per_image: dict[int, list] = {img["id"]: [] for img in data["images"]}
    for k, ann in enumerate(data["annotations"]):
        if ann.get("iscrowd"):
            continue
        if ann.get("image_id") not in per_image:
            raise InputError(f"{path}: annotations[{k}] refers to image_id {ann.get('image_id')!r}, which is not in 'images'")
        if ann.get("category_id") not in cat_index:
            raise InputError(f"{path}: annotations[{k}] has category_id {ann.get('category_id')!r}, which is not in 'categories'")
        per_image[ann["image_id"]].append(ann)
    samples = []
    for img in data["images"]:
        p = images_dir / img["file_name"]
        if not p.is_file():
            raise InputError(f"{path}: image {p} listed in 'images' does not exist (pass --images DIR if they live elsewhere)")
        w, h = int(img.get("width") or 0), int(img.get("height") or 0)
        if not w or not h:
            w, h = _image_size(p)
        boxes, ids = [], []
        for ann in per_image[img["id"]]:
            x, y, bw, bh = (float(v) for v in ann["bbox"])
            if bw <= 0 or bh <= 0 or x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1:
                raise InputError(f"{path}: annotation id {ann.get('id')} bbox {ann['bbox']} does not fit image "
                                 f"{img['file_name']} ({w}x{h}); COCO bboxes are [x, y, width, height] in pixels")
            boxes.append([max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)])
            ids.append(cat_index[ann["category_id"]])
        samples.append(Sample(p, w, h, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64)))
    if not samples:
        raise InputError(f"{path}: the dataset is empty (no images)")
    if sum(len(s.boxes) for s in samples) == 0:
        raise InputError(f"{path}: no annotations: nothing to train or evaluate on")
    return DetectionDataset([str(c["name"]) for c in cats], samples, str(path))


def load_dataset(data: str | Path, split: str = "train", images_dir: str | Path | None = None) -> DetectionDataset:
    """A YOLO folder, or a COCO .json file."""
    data = Path(data)
    if data.suffix.lower() == ".json":
        return read_coco(data, images_dir)
    if data.is_dir():
        return read_yolo(data, split)
    raise InputError(f"dataset {data} not found: pass a YOLO folder (images/, labels/, classes.txt) or a COCO .json file")


def to_coco(dataset: DetectionDataset) -> dict:
    """Ground truth as a COCO dict (for pycocotools): image ids are sample indices, category ids = class ids."""
    images, anns = [], []
    for i, s in enumerate(dataset.samples):
        images.append({"id": i, "file_name": s.image.name, "width": s.width, "height": s.height})
        for b, c in zip(s.boxes, s.class_ids):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "bbox": [float(b[0]), float(b[1]), w, h],
                         "area": w * h, "iscrowd": 0})
    return {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": n} for i, n in enumerate(dataset.names)]}
