"""An image-folder classification dataset (one sub-folder per class) as a Keras PyDataset that reads
and resizes images per batch (memory stays small), with light augmentation for training."""
from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from convert.data.images import class_folders, read_image
from edge.contract.errors import InputError
from edge.preprocess import prepare


def split_items(items: list[tuple[Path, int]], val_fraction: float, seed: int = 0):
    """Stratified split: about ``val_fraction`` of every class goes to validation (at least 1 if the class has 2+)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({y for _, y in items}):
        cls = [it for it in items if it[1] == label]
        rng.shuffle(cls)
        n_val = int(round(len(cls) * val_fraction)) if len(cls) > 1 else 0
        if val_fraction > 0 and len(cls) > 1:
            n_val = max(1, n_val)
        val += cls[:n_val]
        train += cls[n_val:]
    return train, val


class FolderSequence(keras.utils.PyDataset):
    def __init__(self, items, input_size, batch_size: int = 16, resize: str = "stretch", augment: bool = False,
                 shuffle: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not items:
            raise InputError("no images in this split of the dataset")
        self.items = list(items)
        self.h, self.w = int(input_size[0]), int(input_size[1])
        self.batch_size = int(batch_size)
        self.resize = resize
        self.augment = augment
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(self.items))
        if shuffle:
            self.rng.shuffle(self.order)

    def __len__(self):
        return math.ceil(len(self.items) / self.batch_size)

    def load(self, path: Path) -> np.ndarray:
        image = read_image(path)
        if self.augment:          # random crop of 80-100% of the frame, then flip and brightness
            fh, fw = image.shape[:2]
            s = self.rng.uniform(0.8, 1.0)
            ch, cw = max(1, int(fh * s)), max(1, int(fw * s))
            y0, x0 = self.rng.integers(0, fh - ch + 1), self.rng.integers(0, fw - cw + 1)
            image = image[y0:y0 + ch, x0:x0 + cw]
        rgb = prepare(image, (self.w, self.h), self.resize, 114, bgr=True)[0].astype(np.float32)
        if self.augment:
            if self.rng.random() < 0.5:
                rgb = rgb[:, ::-1]
            rgb = np.clip(rgb * self.rng.uniform(0.8, 1.2) + self.rng.uniform(-20, 20), 0, 255)
        return rgb

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = np.stack([self.load(self.items[i][0]) for i in idx]).astype(np.float32)
        y = np.array([self.items[i][1] for i in idx], np.int32)
        return x, y

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.order)


def load_folder_dataset(root: str | Path, input_size, batch_size: int = 16, val_fraction: float = 0.2,
                        resize: str = "stretch", seed: int = 0, augment: bool = True):
    """-> (class names, training sequence, validation sequence or None)."""
    classes, items = class_folders(root)
    train, val = split_items(items, val_fraction, seed)
    train_seq = FolderSequence(train, input_size, batch_size, resize, augment=augment, shuffle=True, seed=seed)
    val_seq = FolderSequence(val, input_size, batch_size, resize) if val else None
    return classes, train_seq, val_seq
