"""What the demo's cameras play and which detector the agents run.

By default every demo device plays OpenCV's real sample video ``vtest.avi`` (pedestrians on a forecourt,
768x576, 10 fps, looping) with the detector distilled for that scene, ``edge/models/vtest-distilled-int8.tflite``.
The footage is third-party: ``scripts/setup.sh`` fetches it into the user cache (``convert.realdata``); the demo
never downloads it. When it is not there, the demo stops and says so with the command that fetches it, unless
the user asked for the synthetic fallback. ``--synthetic`` plays generated videos of the synthetic classes with
``edge/models/demo-detector-int8.tflite`` instead (what the fast tests use).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from demo.video import JPEG_QUALITY, VideoInfo
from edge.contract.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
VTEST_MODEL = ROOT / "edge" / "models" / "vtest-distilled-int8.tflite"
SYNTHETIC_MODEL = ROOT / "edge" / "models" / "demo-detector-int8.tflite"
FETCH_COMMAND = ".venv/bin/python -m convert.realdata.fetch videos"
VTEST_THRESHOLD = 0.3        # the distilled detector's operating point (edge/models/README.md)


@dataclass(frozen=True)
class DemoInput:
    """The cameras (one video per device) and what the agents run on them."""
    kind: str                          # "vtest" or "synthetic"
    videos: tuple[VideoInfo, ...]
    model: Path
    agent_sets: tuple[str, ...]        # extra ``--set key=value`` for every agent
    busy_label: str                    # the class the demo's crowd alert counts
    busy_per_frame: float | None       # crowd alert: this many of it per processed frame on average (None: fixed)


def vtest_path() -> Path:
    """The fetched ``vtest.avi``, checked against the sha256 recorded in ``convert.realdata.manifest``.
    InputError (exit 3) naming the file and the fetch command when it is missing or not the recorded file."""
    from convert.realdata.fetch import sha256_file  # noqa: PLC0415 (stdlib only)
    from convert.realdata.manifest import VTEST, package, real_path  # noqa: PLC0415
    path = real_path(VTEST)
    if not path.is_file():
        raise InputError(f"the demo plays OpenCV's sample video vtest.avi, which is not fetched: {path} does not "
                         f"exist. Fetch it with `{FETCH_COMMAND}` (scripts/setup.sh does this; it takes the Debian "
                         "package opencv-doc with apt-get download), or play generated videos instead: "
                         "make demo ARGS=--synthetic")
    want = next(i.sha256 for i in package("videos").items if i.dest == VTEST)
    got = sha256_file(path)
    if got != want:
        raise InputError(f"{path} is not the recorded vtest.avi (sha256 {got}, expected {want}); fetch it again "
                         f"with `{FETCH_COMMAND}` after deleting it")
    return path


def describe_video(path: Path, cache_dir: Path, every: int = 20) -> VideoInfo:
    """Size, rate and frame count of a real video, and the mean JPEG size (q90) of every ``every``-th frame:
    what sending its frames would cost. Cached in ``cache_dir`` by the file's size and mtime."""
    import cv2  # noqa: PLC0415
    stat = path.stat()
    key = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "every": every,
           "quality": JPEG_QUALITY}
    meta = cache_dir / f"{path.stem}.json"
    if meta.is_file():
        cached = json.loads(meta.read_text())
        if cached.get("key") == key:
            return VideoInfo(path=path, **{**cached["info"], "classes": tuple(cached["info"]["classes"])})
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: OpenCV cannot open this video")
    fps, frames, jpeg, sampled = cap.get(cv2.CAP_PROP_FPS) or 10.0, 0, 0, 0
    width = height = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frames % every == 0:
                height, width = frame.shape[:2]
                ok, jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                jpeg += len(jpg) if ok else 0
                sampled += 1
            frames += 1
    finally:
        cap.release()
    if not frames:
        raise InputError(f"{path}: OpenCV decodes no frame from this video")
    info = {"width": width, "height": height, "fps": float(fps), "frames": frames,
            "mean_jpeg_bytes": jpeg / sampled, "classes": ()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"key": key, "info": info}, indent=1))
    return VideoInfo(path=path, **info)


def vtest_input(devices: int, workdir: Path, model: Path | None) -> DemoInput:
    video = describe_video(vtest_path(), workdir / "videos")
    return DemoInput("vtest", (video,) * devices, model or VTEST_MODEL,
                     agent_sets=(f"settings.score_threshold={VTEST_THRESHOLD}",),
                     busy_label="person", busy_per_frame=8.0)


def synthetic_input(devices: int, workdir: Path, model: Path | None, seconds: float) -> DemoInput:
    from demo.video import write_demo_video  # noqa: PLC0415 (needs the synthetic renderer)
    videos = tuple(write_demo_video(workdir / "videos" / f"cam-{i + 1}.mp4", seed=101 + i, seconds=seconds)
                   for i in range(devices))
    return DemoInput("synthetic", videos, model or SYNTHETIC_MODEL, agent_sets=(), busy_label="*",
                     busy_per_frame=None)


def choose_input(args, workdir: Path, say) -> DemoInput:
    """``--synthetic``: generated videos. Otherwise vtest.avi; when it is not fetched, an InputError saying so,
    or with ``--synthetic-if-missing`` the generated videos and a line saying why."""
    if not args.synthetic:
        try:
            return vtest_input(args.devices, workdir, args.model)
        except InputError as exc:
            if not args.synthetic_if_missing:
                raise
            say(f"--> {exc}")
            say("--> --synthetic-if-missing: playing generated videos of the synthetic classes instead")
    return synthetic_input(args.devices, workdir, args.model, args.video_seconds)
