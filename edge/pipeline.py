"""Three threads joined by bounded queues, one stop event.

capture + preprocess --(NewestSlot: 1 frame, newest wins, stale frames dropped and counted)--> inference
inference (interpreter only) --(queue.Queue(maxsize), blocking put: results are never dropped)--> publish
publish: decode + filter + outbox + MQTT window + periodic metrics/status

Splitting the work this way keeps the interpreter busy while the other threads resize the next frame and
decode the previous one (OpenCV, numpy and the interpreter release the GIL for their heavy parts).

A video file read with ``realtime: false`` blocks capture instead of dropping (every frame processed
once: benchmarks and tests). Every loop waits with a timeout so it notices the stop event; each worker
records a heartbeat the main loop checks before pinging the systemd watchdog.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Optional

from edge.stats import Stats

log = logging.getLogger("edge.pipeline")


class NewestSlot:
    """A one-item mailbox: ``put`` replaces an unread item (returns True when it dropped one)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self.closed = False

    def put(self, item, block: bool = False, stop: Optional[threading.Event] = None) -> bool:
        with self._cond:
            if block:
                while self._item is not None and not self.closed and not (stop and stop.is_set()):
                    self._cond.wait(0.1)
            dropped = self._item is not None
            self._item = item
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float):
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Worker(threading.Thread):
    def __init__(self, name: str, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.stop_event = stop
        self.heartbeat = time.monotonic()
        self.error: BaseException | None = None

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def run(self) -> None:
        try:
            self.loop()
        except BaseException as exc:  # a bug in a worker stops the agent (systemd restarts it)
            self.error = exc
            log.exception("%s thread failed; stopping the agent", self.name)
            self.stop_event.set()

    def loop(self) -> None:
        raise NotImplementedError


class CaptureWorker(Worker):
    def __init__(self, supervisor, slot: NewestSlot, stop: threading.Event, stats: Stats, lossless: bool,
                 on_end: Callable[[], None], prepare: Callable):
        super().__init__("capture", stop)
        self.supervisor, self.slot, self.stats, self.lossless, self.on_end = supervisor, slot, stats, lossless, on_end
        self.prepare = prepare

    def loop(self) -> None:
        last = time.perf_counter()
        for frame, ts in self.supervisor.frames(self.stop_event):
            now = time.perf_counter()
            self.stats.add_latency("capture", (now - last) * 1e3)
            self.stats.captured += 1
            item = self.prepare(frame, ts)
            self.stats.add_latency("preprocess", item.prep_ms)
            if self.slot.put(item, block=self.lossless, stop=self.stop_event):
                self.stats.dropped += 1
            self.beat()
            last = time.perf_counter()
        if not self.stop_event.is_set():
            self.on_end()   # exit_on_end: let inference finish the last frame, then stop


class InferenceWorker(Worker):
    def __init__(self, run: Callable, slot: NewestSlot, results: queue.Queue, stop: threading.Event, stats: Stats,
                 settings: Callable):
        super().__init__("inference", stop)
        self.run_model, self.slot, self.results, self.stats, self.settings = run, slot, results, stats, settings
        self.source_done = threading.Event()

    def loop(self) -> None:
        next_at = 0.0
        while not self.stop_event.is_set():
            self.beat()
            fps = self.settings().fps
            if fps:
                wait = next_at - time.monotonic()
                if wait > 0:
                    self.stop_event.wait(min(wait, 0.2))
                    continue
            item = self.slot.get(timeout=0.2)
            if item is None:
                if self.source_done.is_set():
                    break
                continue
            inferred = self.run_model(item)
            self.stats.add_latency("inference", inferred.infer_ms)
            if fps:
                next_at = max(next_at + 1.0 / fps, time.monotonic())
            while not self.stop_event.is_set():
                try:
                    self.results.put(inferred, timeout=0.2)
                    break
                except queue.Full:
                    self.beat()
            self.stats.frame_done()
        self.results.put(None)  # tells the publisher no more results will come


class PublishWorker(Worker):
    """Decodes results (``finish``), stores them in the outbox, pumps the window, runs ``tick`` (metrics, status)."""

    def __init__(self, publisher, results: queue.Queue, stop: threading.Event, stats: Stats,
                 finish: Callable, settings: Callable, tick: Callable[[], None]):
        super().__init__("publish", stop)
        self.publisher, self.results, self.stats, self.tick = publisher, results, stats, tick
        self.finish, self.settings = finish, settings
        self.finished = threading.Event()

    def _handle(self, inferred) -> None:
        result, post_ms = self.finish(inferred, self.settings())
        self.stats.add_latency("postprocess", post_ms)
        t0 = time.perf_counter()
        if self.publisher.submit(result) is not None:
            self.stats.published += 1
        self.stats.add_latency("publish", (time.perf_counter() - t0) * 1e3)

    def loop(self) -> None:
        while not self.stop_event.is_set():
            self.beat()
            try:
                inferred = self.results.get(timeout=0.05)
            except queue.Empty:
                inferred = False
            if inferred is None:      # inference ended (exit_on_end)
                self.finished.set()
                break
            if inferred is not False:
                self._handle(inferred)
            self.publisher.pump()
            self.tick()
        # store what inference already produced: results must not be lost on a clean stop
        while True:
            try:
                inferred = self.results.get_nowait()
            except queue.Empty:
                break
            if inferred is not None:
                self._handle(inferred)
        self.finished.set()
