"""Frame sources and their supervisor.

Adapters (``open``/``read``/``close``): ``OpenCVSource`` for V4L2 devices (index or /dev/videoN),
video files and rtsp/http streams; ``Picamera2Source`` when the ``picamera2`` package is installed.
``read`` returns a BGR frame or None (end of file, lost device, read timeout).

``SourceSupervisor.frames(stop)`` yields ``(frame, capture_ts)`` forever: a source that fails to open,
ends or stops delivering is closed and reopened with exponential backoff (1 s doubling to 10 s by
default), its state ("starting", "open", "reconnecting", "ended") and last error reported through
``on_state`` for the status message. It never raises for a source problem; only ``exit_on_end`` on a
video file ends the iteration.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Callable, Optional

import cv2
import numpy as np

from edge.contract.access import explain
from edge.contract.errors import SourceError

log = logging.getLogger("edge.sources")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


def classify_uri(uri: str) -> tuple[str, object]:
    """('v4l2', index|path) | ('stream', url) | ('picamera2', None) | ('file', path)."""
    u = str(uri).strip()
    if u.lower() in ("picamera2", "picamera", "libcamera"):
        return "picamera2", None
    if u.isdigit():
        return "v4l2", int(u)
    if u.startswith("/dev/video"):
        return "v4l2", u
    if u.lower().startswith(STREAM_SCHEMES):
        return "stream", u
    return "file", u


def check_v4l2_device(target: int | str) -> None:
    """A V4L2 camera that is not there, or that this user may not open, is a SourceError saying which (OpenCV
    only says it could not open it)."""
    path = f"/dev/video{target}" if isinstance(target, int) else str(target)
    if not os.path.exists(path):
        present = sorted(f"/dev/{p}" for p in os.listdir("/dev") if p.startswith("video"))
        there = (f"the cameras here are {', '.join(present)}" if present else
                 "there is no /dev/video* at all: is a camera connected? (the Pi camera module is source.uri: picamera2)")
        raise SourceError(f"camera {path} does not exist: {there}; set source.uri")
    if not os.access(path, os.R_OK | os.W_OK):
        raise SourceError(explain(path, "camera", os.R_OK | os.W_OK)
                          + " (cameras belong to the 'video' group: the service user needs it, "
                            "SupplementaryGroups=video in the systemd unit, or usermod -aG video USER)")


_OPENCV_LEVEL: list[int] = []      # OpenCV's log level before the agent quietened it after a failed open


def _opencv_warnings_once() -> None:
    """OpenCV prints ``[ WARN:0@...]`` lines on every failed open; the agent's own line says what is wrong.
    After the first failed open they are silenced until a source opens again, so a camera that stays away
    does not repeat them on every reconnect (unless $OPENCV_LOG_LEVEL asks for them)."""
    if _OPENCV_LEVEL or "OPENCV_LOG_LEVEL" in os.environ:
        return
    try:
        from cv2.utils import logging as cv_logging
        _OPENCV_LEVEL.append(cv_logging.getLogLevel())
        cv_logging.setLogLevel(cv_logging.LOG_LEVEL_ERROR)
    except (ImportError, AttributeError):
        pass


def _opencv_warnings_back() -> None:
    if _OPENCV_LEVEL:
        from cv2.utils import logging as cv_logging
        cv_logging.setLogLevel(_OPENCV_LEVEL.pop())


class OpenCVSource:
    def __init__(self, uri: str, width: int | None = None, height: int | None = None, fps: float | None = None,
                 timeout_s: float = 10.0):
        self.uri = uri
        self.kind, self.target = classify_uri(uri)
        self.width, self.height, self.req_fps = width, height, fps
        self.timeout_ms = int(timeout_s * 1000)
        self.cap: Optional[cv2.VideoCapture] = None
        self.fps: float | None = None

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    def open(self) -> None:
        if self.kind == "file" and not os.path.isfile(str(self.target)):
            raise SourceError(f"video file {self.target} is a directory" if os.path.isdir(str(self.target))
                              else f"video file {self.target} does not exist")
        if self.kind == "v4l2":
            check_v4l2_device(self.target)
        if self.kind == "stream":
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms])
        elif self.kind == "v4l2":
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(str(self.target))
        if not cap.isOpened():
            cap.release()
            _opencv_warnings_once()
            hint = {"v4l2": "the device exists and this user may open it, but it does not capture video (busy in "
                            "another program, or a metadata/codec node: try the next /dev/videoN; "
                            "v4l2-ctl --list-devices lists them)",
                    "stream": "is the URL reachable and the stream running?",
                    "file": "is it a video file OpenCV can decode (mp4v, MJPG, ...)?"}[self.kind]
            raise SourceError(f"cannot open {self.kind} source {self.uri!r}: {hint}")
        _opencv_warnings_back()
        if self.kind == "v4l2":
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.req_fps:
                cap.set(cv2.CAP_PROP_FPS, self.req_fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self.cap = cap

    def read(self) -> Optional[np.ndarray]:
        if self.cap is None:
            return None
        ok, frame = self.cap.read()
        if not ok or frame is None or frame.size == 0:
            return None
        return frame

    def rewind(self) -> bool:
        return bool(self.cap is not None and self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0))

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class Picamera2Source:
    """Raspberry Pi camera through libcamera's Python binding (``apt install python3-picamera2``)."""
    is_file = False
    kind = "picamera2"

    def __init__(self, width: int | None = None, height: int | None = None, fps: float | None = None):
        self.size = (width or 640, height or 480)
        self.req_fps = fps
        self.fps = fps
        self.cam = None
        self.uri = "picamera2"

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # noqa: PLC0415 - optional, only on a Pi
        except ImportError as exc:
            raise SourceError("source 'picamera2' needs the picamera2 package (on Raspberry Pi OS: "
                              "sudo apt install python3-picamera2, and create the venv with "
                              f"--system-site-packages): {exc}") from None
        try:
            cam = Picamera2()
            controls = {"FrameRate": float(self.req_fps)} if self.req_fps else {}
            # "RGB888" in libcamera is B,G,R byte order in memory: the BGR layout OpenCV uses.
            cam.configure(cam.create_video_configuration(main={"size": self.size, "format": "RGB888"},
                                                         controls=controls))
            cam.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError when no camera is attached
            raise SourceError(f"cannot start the Pi camera: {type(exc).__name__}: {exc}") from None
        self.cam = cam

    def read(self) -> Optional[np.ndarray]:
        if self.cam is None:
            return None
        try:
            frame = self.cam.capture_array("main")
        except Exception as exc:
            log.warning("picamera2 capture failed: %s", exc)
            return None
        return frame[:, :, :3] if frame.ndim == 3 and frame.shape[2] == 4 else frame

    def rewind(self) -> bool:
        return False

    def close(self) -> None:
        if self.cam is not None:
            try:
                self.cam.stop()
                self.cam.close()
            finally:
                self.cam = None


def make_source(cfg) -> OpenCVSource | Picamera2Source:
    kind, _ = classify_uri(cfg.uri)
    if kind == "picamera2":
        return Picamera2Source(cfg.width, cfg.height, cfg.fps)
    return OpenCVSource(cfg.uri, cfg.width, cfg.height, cfg.fps, timeout_s=min(cfg.stall_timeout_s, 30.0))


class SourceSupervisor:
    def __init__(self, cfg, *, on_state: Callable[[dict], None] = lambda s: None, source_factory=make_source):
        self.cfg = cfg
        self.on_state = on_state
        self.source = source_factory(cfg)
        self.state = "starting"
        self.error: str | None = None
        self.reconnects = 0
        self.frames_read = 0
        self.last_frame_at: float | None = None
        self._lock = threading.Lock()

    def status(self) -> dict:
        with self._lock:
            s = {"uri": self.cfg.uri, "state": self.state, "reconnects": self.reconnects,
                 "frames": self.frames_read}
            if self.error:
                s["error"] = self.error
            if self.last_frame_at:
                s["last_frame_age_s"] = round(time.time() - self.last_frame_at, 3)
        return s

    def _set(self, state: str, error: str | None = None) -> None:
        with self._lock:
            changed = (state, error) != (self.state, self.error)
            self.state, self.error = state, error
        if changed:
            (log.warning if error else log.info)("source %s: %s%s", self.cfg.uri, state, f" ({error})" if error else "")
            self.on_state(self.status())

    def _backoff(self, stop: threading.Event, delay: float) -> float:
        stop.wait(delay)
        return min(delay * 2, self.cfg.backoff_max_s)

    def frames(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, float]]:
        delay = self.cfg.backoff_initial_s
        src = self.source
        while not stop.is_set():
            try:
                src.open()
            except SourceError as exc:
                self._set("reconnecting", str(exc))
                self.reconnects += 1
                delay = self._backoff(stop, delay)
                continue
            self._set("open")
            pace = src.fps if (src.is_file and self.cfg.realtime and src.fps) else None
            t0, n = time.monotonic(), 0
            reason = None
            while not stop.is_set():
                frame = src.read()
                if frame is None and src.is_file and self.cfg.loop and n > 0 and src.rewind():
                    t0, n = time.monotonic(), 0
                    frame = src.read()
                if frame is None:
                    reason = "end of video file" if src.is_file else "no frame from the source"
                    break
                now = time.time()
                self.frames_read += 1
                self.last_frame_at = now
                delay = self.cfg.backoff_initial_s
                if self.state != "open":   # recovered from a stall
                    self._set("open")
                yield frame, now
                n += 1
                if pace:
                    ahead = t0 + n / pace - time.monotonic()
                    if ahead > 0:
                        stop.wait(ahead)
            src.close()
            if stop.is_set():
                break
            if src.is_file and self.cfg.exit_on_end and reason == "end of video file":
                self._set("ended", None)
                return
            self._set("reconnecting", reason if n else f"{reason} (no frame decoded: corrupt or empty file?)")
            self.reconnects += 1
            delay = self._backoff(stop, delay)
        src.close()

    def check_stall(self) -> bool:
        """Mark an open source that delivered nothing for ``stall_timeout_s`` as stalled (status); True if so.
        The blocked read itself returns through OpenCV's read timeout and the source is then reopened."""
        last = self.last_frame_at
        if self.state == "open" and last is not None and time.time() - last > self.cfg.stall_timeout_s:
            self._set("stalled", f"no frame for {time.time() - last:.0f} s")
        return self.state == "stalled"

    @staticmethod
    def describe(uri: str) -> str:
        kind, target = classify_uri(uri)
        return f"{kind} {target if target is not None else ''}".strip()


def probe(cfg, timeout_frames: int = 30) -> tuple[int, int]:
    """Open the source once and read one frame: (width, height). Raises SourceError (for ``check``)."""
    src = make_source(cfg)
    src.open()
    try:
        for _ in range(timeout_frames):
            frame = src.read()
            if frame is not None:
                return int(frame.shape[1]), int(frame.shape[0])
        raise SourceError(f"source {cfg.uri!r} opened but delivered no frame")
    finally:
        src.close()

