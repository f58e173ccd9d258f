"""The running agent: wires config, model, source, outbox, MQTT and the pipeline threads together.

``Agent(cfg).run()`` loads everything (errors raise before anything starts), connects to the broker in
the background (the agent detects and queues while the broker is away), starts the threads, tells
systemd READY=1, then the main loop pings the watchdog while the workers are healthy, reports source
stalls and waits for the one stop event (SIGTERM/SIGINT, a worker failure, or the end of a video
with ``exit_on_end``). Shutdown drains outstanding acks for a few seconds, publishes the retained
``offline`` status and closes the outbox; whatever was not acknowledged stays there for the next start.
"""
from __future__ import annotations

import json
import logging
import queue
import signal
import sqlite3
import threading
import time
from typing import Any

from edge import messages, objects
from edge.config import AgentConfig, Settings, updated_settings
from edge.contract.errors import EXIT_INTERRUPTED, ConfigError
from edge.contract.mqtt import MqttClient
from edge.contract.schema import SchemaError, decode, encode, parse, topic
from edge.clock import clock_status
from edge.engine import Engine
from edge.outbox import Outbox
from edge.pipeline import CaptureWorker, InferenceWorker, NewestSlot, PublishWorker
from edge.publisher import Publisher
from edge.contract.sdnotify import Notifier
from edge.sources import SourceSupervisor, classify_uri
from edge.stats import Stats, cpu_temperature_c

log = logging.getLogger("edge.agent")


class Agent:
    def __init__(self, cfg: AgentConfig, notifier: Notifier | None = None):
        self.cfg = cfg
        self.device = cfg.device_id
        self._settings = cfg.settings
        self.engine = Engine(cfg.model, cfg.settings)
        self.notifier = notifier or Notifier()
        self.stop_event = threading.Event()
        self.stats = Stats()
        prefix = cfg.mqtt.topic_prefix
        self.topics = {k: topic(prefix, self.device, k)
                       for k in ("detections", "status", "metrics", "config/set", "config/state", "landed")}
        try:
            self.outbox = Outbox(cfg.outbox_path, cfg.outbox.max_messages, cfg.outbox.max_age_s)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"outbox {cfg.outbox_path} cannot be opened for writing ({exc}); check state_dir and "
                              "its owner (systemd: StateDirectory=edge-agent)") from None
        m = cfg.mqtt
        self.link = MqttClient(
            m, client_id=m.client_id or f"edge-{self.device}",
            subscriptions=[(self.topics["config/set"], 1)], optional_subscriptions=[(self.topics["landed"], 1)],
            on_optional_refused=lambda topic, reason: self._confirmations_refused(reason),
            will=(self.topics["status"], messages.will_payload(self.device)),
            on_ack=self._on_ack, on_message=self._on_message, on_connected=self._on_connected,
            on_state=self._on_link_state, max_inflight=100, reconnect_min_s=m.reconnect_min_s,
            reconnect_max_s=m.reconnect_max_s)
        self.publisher = Publisher(self.link, self.outbox, topic=self.topics["detections"], device=self.device,
                                   model_ref=self.engine.model_ref, qos=cfg.mqtt.qos, window=cfg.mqtt.inflight_window,
                                   delivery=m.delivery, confirm_timeout_s=m.confirm_timeout_s,
                                   on_mode=lambda mode: self._status_dirty.set())
        self._status_dirty = threading.Event()
        self.supervisor = SourceSupervisor(cfg.source, on_state=lambda s: self._status_dirty.set())
        self.objects = objects.build(cfg, self.engine, self.link, self.publisher, self.stats,   # None: no tracking
                                     self.supervisor.source, on_mode=lambda mode: self._status_dirty.set())
        kind, _ = classify_uri(cfg.source.uri)
        lossless = kind == "file" and not cfg.source.realtime
        self.slot = NewestSlot()
        self.results: queue.Queue = queue.Queue(maxsize=64)
        get_settings = lambda: self._settings  # noqa: E731 - read once per frame, swapped atomically
        self.inference = InferenceWorker(self.engine.run, self.slot, self.results, self.stop_event, self.stats,
                                         get_settings)
        self.capture = CaptureWorker(self.supervisor, self.slot, self.stop_event, self.stats, lossless,
                                     on_end=self.inference.source_done.set, prepare=self.engine.prepare)
        self.publish_worker = PublishWorker(self.objects or self.publisher, self.results, self.stop_event, self.stats,
                                            self.objects.finish if self.objects else self.engine.finish,
                                            get_settings, self._tick)
        self._next_metrics = 0.0
        self._next_bounds = 0.0
        self._link_down_since: float | None = None
        self._link_logged: tuple[str, int, float] | None = None     # reason, retry delay, when: the last line
        self._signal: int | None = None
        self._stopping = False
        self._clock: dict | None = None
        self._check_clock()
        self._next_clock = time.monotonic() + 60.0

    # ------------------------------------------------------------------ settings
    @property
    def settings(self) -> Settings:
        return self._settings

    def apply_settings(self, changes: Any) -> Settings:
        new = updated_settings(self._settings, changes)
        unknown = [c for c in (new.classes or []) if c not in self.engine.labels]
        if unknown:
            raise ConfigError(f"classes {unknown} are not labels of the model ({self.engine.labels})")
        self._settings = new   # one reference swap: the inference thread picks it up on its next frame
        return new

    # ------------------------------------------------------------------ MQTT callbacks (paho thread)
    LINK_REMINDER_S = 300.0

    def _on_link_state(self, connected: bool, reason: str) -> None:
        """Broker unreachable or refusing: one line with the reason, when paho retries and how many messages
        wait in the outbox; again only when the reason changes, the backoff grows a step, or every
        LINK_REMINDER_S at the longest step. Back: one line with the outage's length."""
        now = time.monotonic()
        url = self.cfg.mqtt.url
        if connected:
            if self._link_down_since is not None:
                log.info("MQTT broker %s reachable again after %.0f s; %d messages in the outbox are sent now",
                         url, now - self._link_down_since, self.outbox.depth())
            self._link_down_since, self._link_logged = None, None
            return
        if self._stopping:
            return
        first = self._link_down_since is None
        if first:
            self._link_down_since = now
        retry = self.link.retry_in_s
        last = self._link_logged
        if not (last is None or reason != last[0] or retry > last[1] or now - last[2] >= self.LINK_REMINDER_S):
            return
        self._link_logged = (reason, retry, now)
        down = "" if first else f" (down {now - self._link_down_since:.0f} s, {self.link.failed_attempts} attempts)"
        log.warning("MQTT: %s%s; next attempt in %d s (backoff doubles up to %d s); %d messages wait in the "
                    "outbox %s, detection goes on", reason or f"cannot reach {url}", down, retry,
                    max(1, int(self.cfg.mqtt.reconnect_max_s)), self.outbox.depth(), self.cfg.outbox_path)

    def _on_ack(self, mid: int) -> None:
        self.publisher.on_ack(mid)
        if self.objects is not None:
            self.objects.on_ack(mid)

    def _on_connected(self, session_present: bool) -> None:
        self._publish_status()
        self._publish_config_state(ok=True, request_id=None, error=None)
        if self.objects is not None:
            self.objects.on_connected()

    def _on_message(self, message) -> None:
        if message.topic == self.topics["landed"]:
            self._on_landed(bytes(message.payload))
            return
        if message.topic != self.topics["config/set"]:
            return
        payload = bytes(message.payload)
        request_id = None
        try:
            msg = decode(payload, "config_set")
            request_id = msg.get("request_id")
            new = self.apply_settings(msg["set"])
            log.info("remote config applied (request %s): %s", request_id, msg["set"])
            self._publish_config_state(ok=True, request_id=request_id, error=None, config=new)
        except (SchemaError, ConfigError) as exc:
            if request_id is None:
                try:
                    rid = json.loads(payload).get("request_id")
                    request_id = rid if isinstance(rid, str) else None
                except (ValueError, AttributeError):
                    pass
            log.warning("remote config rejected (request %s): %s", request_id, exc)
            self._publish_config_state(ok=False, request_id=request_id, error=str(exc)[:2000])

    def _on_landed(self, payload: bytes) -> None:
        try:
            msg = parse(payload, "landed")
            if msg["device"] != self.device:
                raise SchemaError(f"landed.device: {msg['device']!r} is not this device ({self.device!r})")
        except SchemaError as exc:
            log.warning("ignored a landing confirmation: %s", exc)
            return
        if msg.get("stream", "detections") == "events":      # the events' own sequence numbers
            if self.objects is not None:
                self.objects.events.on_landed(msg["seqs"])
            return
        self.publisher.on_landed(msg["seqs"])

    def _confirmations_refused(self, reason: str) -> None:
        self.publisher.confirmations_refused(reason)
        if self.objects is not None:
            self.objects.events.confirmations_refused(reason)

    def delivery_status(self) -> dict:
        p = self.publisher
        status = {"mode": p.mode, **({"reason": p.mode_reason[:500]} if p.mode_reason else {})}
        if self.objects is not None:        # the events' delivery is their own (a bridge may not land events)
            e = self.objects.events
            status["events"] = {"mode": e.mode, **({"reason": e.mode_reason[:500]} if e.mode_reason else {})}
        return status

    # ------------------------------------------------------------------ publishing helpers
    def status_payload(self, state: str = "online", reason: str | None = None) -> dict:
        return messages.status_payload(self.device, state, model=self.engine.describe(),
                                       interpreter=self.engine.interpreter_name, source=self.supervisor.status(),
                                       config=self.cfg.summary() | {"settings": self._settings.summary()},
                                       reason=reason, clock=self._clock, delivery=self.delivery_status())

    def _check_clock(self) -> None:
        """Frames are stamped with this device's clock: say so when it is not synchronized (a Pi has no RTC)."""
        now = clock_status()
        if now["synchronized"] is False and (self._clock is None or self._clock["synchronized"] is not False):
            log.warning("the system clock is not synchronized (no NTP yet; max error %s s): frames are stamped with "
                        "it anyway. The stream job dead-letters frames whose time is ahead of its own by more than its "
                        "tolerance; enable systemd-timesyncd or chrony", now["max_error_s"])
        elif now["synchronized"] and self._clock is not None and self._clock["synchronized"] is False:
            log.info("the system clock is synchronized now (est. error %s s)", now["est_error_s"])
        changed = self._clock is not None and now["synchronized"] != self._clock["synchronized"]
        self._clock = now
        if changed:
            self._status_dirty.set()

    def _publish_status(self, state: str = "online", reason: str | None = None) -> None:
        self.link.publish(self.topics["status"], encode(self.status_payload(state, reason)), qos=1, retain=True)

    def _publish_config_state(self, *, ok: bool, request_id, error, config: Settings | None = None) -> None:
        payload = messages.config_state_payload(self.device, ok=ok, request_id=request_id, error=error,
                                                config=(config or self._settings).summary())
        self.link.publish(self.topics["config/state"], encode(payload), qos=1, retain=True)

    def metrics_payload(self) -> dict:
        s = self.stats
        return messages.metrics_payload(
            self.device, uptime_s=s.uptime(), fps=s.fps(),
            latency={**s.latency_summary("inference"), "stages": s.stage_table()},
            frames={"captured": s.captured, "processed": s.processed, "dropped": s.dropped, "published": s.published},
            outbox={"depth": self.outbox.depth(), "dropped": self.outbox.dropped, "inflight": self.publisher.inflight,
                    "acked": self.outbox.acked, "awaiting": self.publisher.awaiting, "resent": self.publisher.resent,
                    "confirmed": self.publisher.confirmed, "delivery": self.publisher.mode},
            source=self.supervisor.status(), cpu_temp_c=cpu_temperature_c(), last_seq=self.publisher.last_seq)

    def _tick(self) -> None:
        """Publisher thread, every loop: bounds, metrics, status changes."""
        now = time.monotonic()
        if now >= self._next_clock:
            self._next_clock = now + 60.0
            self._check_clock()
        if now >= self._next_bounds:
            self._next_bounds = now + 2.0
            dropped = self.outbox.enforce_bounds(self.publisher.protect_upto)
            if dropped:
                log.warning("outbox over its bounds: dropped %d oldest messages (total dropped %d)",
                            dropped, self.outbox.dropped)
        if not self.link.connected:
            return
        if now >= self._next_metrics:
            self._next_metrics = now + self.cfg.mqtt.metrics_interval_s
            self.link.publish(self.topics["metrics"], encode(self.metrics_payload()), qos=0)
        if self._status_dirty.is_set():
            self._status_dirty.clear()
            self._publish_status()

    # ------------------------------------------------------------------ lifecycle
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self._signal = signum
        self.stop_event.set()

    def run(self) -> int:
        self._install_signals()
        self.link.start()
        workers = (self.capture, self.inference, self.publish_worker)
        for w in workers:
            w.start()
        self.notifier.ready(f"running {self.engine.model_ref['id']} on {self.cfg.source.uri}")
        log.info("edge-agent %s running: model %s (%s), source %s, broker %s:%s, outbox %s (%d pending), "
                 "delivery %s", self.device, self.engine.model_ref["id"], self.engine.interpreter_name,
                 self.cfg.source.uri, self.cfg.mqtt.host, self.cfg.mqtt.port, self.cfg.outbox_path,
                 self.outbox.depth(), self.publisher.mode)
        ping_every = (self.notifier.watchdog_s or 10.0) / 2.0
        healthy_within = max(self.notifier.watchdog_s or 30.0, 5.0)
        next_ping = 0.0
        while not self.stop_event.wait(0.25):
            if self.publish_worker.finished.is_set():
                break
            now = time.monotonic()
            self.supervisor.check_stall()
            healthy = all(w.is_alive() for w in workers) and all(
                now - w.heartbeat < healthy_within for w in (self.inference, self.publish_worker))
            if self.cfg.watchdog and healthy and now >= next_ping:
                self.notifier.watchdog()
                next_ping = now + ping_every
        return self.shutdown()

    def _stop_objects(self) -> None:
        """Every live track ends (events, counts to zero); the events outbox drains like the detections'."""
        ended = self.objects.close()
        if not self.objects.drain(self.cfg.outbox.drain_timeout_s):
            log.info("%d events not yet acknowledged stay in the events outbox; they are sent first on the next "
                     "start", self.objects.events.outbox.depth())
        self.objects.events.outbox.close()
        log.debug("tracking stopped: %d live tracks ended", ended)

    def shutdown(self) -> int:
        """Stop the threads, wait ``drain_timeout_s`` for outstanding acks, say ``offline``. Exit code 0 after
        SIGTERM or the end of a video (``exit_on_end``), 130 after SIGINT (the table's "interrupted"), 1 when
        a worker thread failed."""
        self._stopping = True
        self.notifier.stopping()
        self.stop_event.set()
        self.slot.close()
        for w in (self.capture, self.inference, self.publish_worker):
            w.join(timeout=10)
        drained = self.publisher.drain(self.cfg.outbox.drain_timeout_s)
        if self.objects is not None:
            self._stop_objects()
        left = self.outbox.depth()
        if not drained:      # by design, not a problem: the outbox keeps them
            log.info("%d messages not yet acknowledged by the broker stay in the outbox %s; they are sent first on "
                     "the next start", left, self.cfg.outbox_path)
        final = (self.topics["status"], encode(self.status_payload("offline", "stopped")))
        self.link.stop(final=final)
        self.outbox.close()
        failed = [w for w in (self.capture, self.inference, self.publish_worker) if w.error is not None]
        if failed:
            log.error("stopped because the %s thread failed: %r", failed[0].name, failed[0].error)
            return 1
        why = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}.get(self._signal, "end of the source")
        log.info("edge-agent %s stopped (%s)", self.device, why)
        return EXIT_INTERRUPTED if self._signal == signal.SIGINT else 0
