"""Objects, not detections: the agent's tracking stage (``edge.tracking`` on every processed frame).

It sits in the publish thread between the engine's decode and the publishers (``edge.agent`` hands it to the
``PublishWorker`` in place of the detections publisher)::

    result, ms = stage.finish(inferred, settings)   # decode, track, give each detection its track id
    stage.submit(result)                            # detections (unless events_only), events, object counts
    stage.pump()                                    # both outboxes -> MQTT

* The tracker sees the detections from its own ``low_score`` up (ByteTrack's second pass keeps half-hidden
  objects on their tracks), the decoder is asked for those; what is published is cut at the configured
  ``settings.score_threshold`` as before, so detections messages hold what they held, plus track ids.
* Events (``<prefix>/<device>/events``): new / update / end per confirmed track and entered / left / crossed for
  the configured zones and lines, through their own outbox (``edge.event_publisher``). Updates only on change.
* Object counts (``<prefix>/<device>/objects``, retained): the objects present per label and per zone, published
  when they change and again after every reconnect (the latest value is what matters, not the history).
* On a clean stop every live track ends (end events, left zones, counts back to zero), so consumers are not left
  with objects nobody tracks any more.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import replace
from typing import Callable

from edge.config import AgentConfig, Settings
from edge.contract.errors import ConfigError
from edge.contract.mqtt import MqttClient
from edge.contract.schema import SCHEMA_VERSION, encode, topic
from edge.event_publisher import EventPublisher
from edge.messages import FrameResult
from edge.outbox import Outbox
from edge.tracking import EventBuilder, FrameTracks, Regions, Tracker, TrackingConfig, object_counts
from edge.tracking.events import END, NEW, UPDATE, event_id

log = logging.getLogger("edge.objects")


def check_model(cfg: TrackingConfig, task: str, labels: list[str]) -> None:
    """Refuse what the model cannot serve: zones, lines or events_only with a classifier; zone and line classes the
    model does not have (a typo would silently never fire)."""
    if task != "detection" and (cfg.zones or cfg.lines or cfg.publish == "events_only"):
        raise ConfigError(f"tracking: a {task} model has no objects to track; zones, lines and events_only need a "
                          "detection model (or set tracking.enabled: false)")
    for kind, items in (("zones", cfg.zones), ("lines", cfg.lines)):
        for i, item in enumerate(items):
            unknown = [c for c in (item.classes or []) if c not in labels]
            if unknown:
                raise ConfigError(f"tracking.{kind}.{i}.classes: {kind[:-1]} {item.name!r} names {unknown}, which are "
                                  f"not labels of the model; its labels are {labels}")


def events_outbox_path(cfg: AgentConfig):
    p = cfg.outbox_path
    return p.with_name(f"{p.stem}.events.sqlite")


class ObjectsStage:
    """Tracker, zones and lines, events and counts of one camera; every method runs in the publish thread except
    ``on_ack`` and ``on_connected`` (paho's thread)."""

    def __init__(self, cfg: TrackingConfig, *, device: str, prefix: str, link: MqttClient, detections,
                 events: EventPublisher, engine_finish: Callable, stats=None,
                 frame_interval: Callable[[], float | None] | None = None):
        self.cfg = cfg
        self.device = device
        self.link = link
        self.detections = detections           # edge.publisher.Publisher
        self.events = events
        self.engine_finish = engine_finish
        self.stats = stats
        self.frame_interval = frame_interval     # a file read as fast as processed: the step is its frame interval
        self.objects_topic = topic(prefix, device, "objects")
        self.tracker = Tracker(cfg.tracker)
        self.regions = Regions(cfg.zones, cfg.lines)
        self.builder = EventBuilder(self.regions, cfg.score_delta)
        self._last: FrameTracks | None = None
        self._pending: list[dict] = []
        self._counts: dict | None = None           # objects + zones last published
        self._counts_bytes: bytes | None = None    # the retained message, republished after a reconnect
        self._counts_lock = threading.Lock()
        self._settings: tuple[Settings | None, Settings | None] = (None, None)
        self.closed = False

    # ------------------------------------------------------------------ per frame (publish thread)
    def _tracker_settings(self, settings: Settings) -> Settings:
        """``settings`` with the score threshold lowered to the tracker's ``low_score`` (cached per object)."""
        given, lowered = self._settings
        if given is not settings:
            low = min(settings.score_threshold, self.cfg.tracker.low_score)
            lowered = settings if low >= settings.score_threshold else settings.model_copy(
                update={"score_threshold": low})
            self._settings = (settings, lowered)
        return lowered

    def finish(self, inferred, settings: Settings) -> tuple[FrameResult, float]:
        """Decode (engine), track, keep what reaches the published threshold, each with its track id."""
        result, post_ms = self.engine_finish(inferred, self._tracker_settings(settings))
        t0 = time.perf_counter()
        step = self.frame_interval() if self.frame_interval is not None else None
        frame = self.tracker.update(result.detections, result.ts, dt=step)
        keep = settings.score_threshold
        result.detections = [d if t is None else replace(d, track=t)
                             for d, t in zip(result.detections, frame.detection_tracks) if d.score >= keep]
        self._pending.extend(self._frame_events(frame))
        self._last = frame
        ms = (time.perf_counter() - t0) * 1e3
        if self.stats is not None:
            self.stats.add_latency("tracking", ms)
        return result, post_ms + ms

    def _frame_events(self, frame: FrameTracks) -> list[dict]:
        """Event bodies of one tracker frame, in the order things happened: new tracks, their zones and lines,
        updates, then ends (a track leaves its zones before it ends)."""
        region = self.regions.update(frame)
        bodies = self.builder.update(frame)
        regional = []
        if region:          # event ids only for the frames that have region events (most have none)
            ids = {v.id: event_id(v) for v in (*frame.tracks, *frame.ended)}
            regional = [{**e.to_message(), "id": ids[e.track_id]} for e in region if e.track_id in ids]
        by_type = {NEW: [], UPDATE: [], END: []}
        for b in bodies:
            by_type[b["type"]].append(b)
        counts = object_counts(frame, self.regions)
        self._count(counts)
        return by_type[NEW] + regional + by_type[UPDATE] + by_type[END]

    def submit(self, result: FrameResult) -> int | None:
        """Store this frame's detections message (unless ``events_only``) and its events; returns the
        detections' seq (None when no detections message was stored)."""
        seq = self.detections.submit(result) if self.cfg.publish == "both" else None
        for body in self._pending:
            self.events.append(body)
        self._pending.clear()
        return seq

    def pump(self) -> int:
        return self.detections.pump() + self.events.pump()

    # ------------------------------------------------------------------ counts
    def _count(self, counts: dict) -> None:
        now = {"objects": counts["objects"], "zones": counts["zones"]}
        if now == self._counts:
            return
        self._counts = now
        data = encode({"schema": SCHEMA_VERSION, "type": "objects", "device": self.device, **counts})
        with self._counts_lock:
            self._counts_bytes = data
        if self.link.connected:
            self.link.publish(self.objects_topic, data, qos=1, retain=True)

    # ------------------------------------------------------------------ paho thread
    def on_ack(self, mid: int) -> None:
        self.events.on_ack(mid)

    def on_connected(self) -> None:
        """Retained counts again after a (re)connect: those published while the broker was away never arrived."""
        with self._counts_lock:
            data = self._counts_bytes
        if data is not None:
            self.link.publish(self.objects_topic, data, qos=1, retain=True)

    # ------------------------------------------------------------------ stop
    def close(self) -> int:
        """End every live track (after the publish thread stopped): end events and left zones go into the events
        outbox, the counts fall to zero. Returns how many tracks ended."""
        if self.closed:
            return 0
        self.closed = True
        last = self._last
        if last is None or not last.tracks:
            return 0
        final = FrameTracks(ts=last.ts, tracks=[], detection_tracks=[], ended=list(last.tracks))
        for body in self._frame_events(final):
            self.events.append(body)
        return len(last.tracks)

    def drain(self, timeout: float) -> bool:
        return self.events.drain(timeout)


def build(cfg: AgentConfig, engine, link: MqttClient, detections, stats=None, source=None,
          on_mode: Callable[[str], None] | None = None) -> ObjectsStage | None:
    """The tracking stage of an agent, or None (tracking off, or a classification model without zones/lines).
    ``source``: the agent's frame source; a video file read with ``realtime: false`` (every frame, as fast as
    processed) gets capture times that do not follow the scene, so the filter steps by the file's frame interval.
    ``on_mode``: called with the events' delivery mode when it changes (the agent republishes its status)."""
    t = cfg.tracking
    if not t.enabled:
        return None
    check_model(t, engine.task, engine.labels)
    if engine.task != "detection":
        return None
    path = events_outbox_path(cfg)
    try:
        outbox = Outbox(path, cfg.outbox.max_messages, cfg.outbox.max_age_s)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"events outbox {path} cannot be opened for writing ({exc}); check state_dir and its "
                          "owner") from None
    prefix = cfg.mqtt.topic_prefix
    events = EventPublisher(link, outbox, topic=topic(prefix, cfg.device_id, "events"), device=cfg.device_id,
                            qos=max(1, cfg.mqtt.qos), window=cfg.mqtt.inflight_window, delivery=cfg.mqtt.delivery,
                            confirm_timeout_s=cfg.mqtt.confirm_timeout_s, on_mode=on_mode)
    log.info("tracking on: %s association, %s noise; publishing %s; %d zone(s), %d line(s); events outbox %s "
             "(%d pending)", t.tracker.association, t.tracker.noise,
             "events and object counts only" if t.publish == "events_only" else "detections with track ids, events",
             len(t.zones), len(t.lines), path, outbox.depth())
    frame_interval = None
    if source is not None and getattr(source, "is_file", False) and not cfg.source.realtime:
        frame_interval = lambda: 1.0 / source.fps if source.fps else None
    return ObjectsStage(t, device=cfg.device_id, prefix=prefix, link=link, detections=detections, events=events,
                        engine_finish=engine.finish, stats=stats, frame_interval=frame_interval)
