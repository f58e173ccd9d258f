"""Track events go through their own persistent outbox to ``<prefix>/<device>/events``, delivered like detections.

* ``append(body)`` stores one event (``edge.tracking.events`` body) under the next *events* sequence number, in
  an SQLite outbox of its own (``<outbox>.events.sqlite``, the same ``edge.outbox.Outbox`` as detections): events
  have a counter of their own, so the detections' sequence numbers keep no gaps and a consumer sees a gap in
  either stream as a loss.
* Delivery is the detections publisher's (``edge.publisher.Publisher``, ``mqtt.delivery``): a bridge that lands
  events durably confirms them on ``<prefix>/<device>/landed`` with ``"stream": "events"`` (``stream.confirm``),
  and an event leaves the outbox only when a confirmation covers it; one PUBACKed and not confirmed within
  ``confirm_timeout_s`` is sent again (2x, 4x, at most 8x the timeout while none comes), so a broker crash or a
  dead bridge costs a copy, which the job's (device, events seq) dedup drops, never the event.
* Bridges that do not land events (before they did) never confirm one: with ``mqtt.delivery: auto`` the events
  then leave the outbox at the broker's PUBACK after the first timeout, and the agent says so (its log and the
  ``delivery.events`` of its status), switching to ``landed`` at the first events confirmation. The events'
  mode is their own: a bridge may confirm detections and not (yet) events.
* ``on_ack(mid)`` / ``on_landed(ranges)`` are called from paho's thread and only queue; ``pump`` (the publish
  thread) applies them. Across a broker outage the rows wait in the outbox; after a crash of the agent they are
  sent first at the next start.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from edge.contract.mqtt import MqttClient
from edge.contract.schema import SCHEMA_VERSION, encode
from edge.outbox import Outbox
from edge.publisher import Publisher

log = logging.getLogger("edge.events")
BOUNDS_EVERY_S = 2.0


def event_bytes(body: dict, *, device: str, seq: int) -> bytes:
    """One event as published: the contract's envelope (``edge.contract.schema.EVENT``), then the body."""
    rest = {k: v for k, v in body.items() if k != "type"}
    return encode({"schema": SCHEMA_VERSION, "type": body["type"], "device": device, "seq": int(seq), **rest})


class EventPublisher(Publisher):
    """The events' outbox publisher: :class:`edge.publisher.Publisher`'s delivery (landed confirmations, resends,
    PUBACK fallback) with events in place of frames."""

    def __init__(self, link: MqttClient, outbox: Outbox, *, topic: str, device: str, qos: int = 1,
                 window: int = 500, delivery: str = "auto", confirm_timeout_s: float = 10.0,
                 on_mode: Optional[Callable[[str], None]] = None):
        super().__init__(link, outbox, topic=topic, device=device, model_ref={}, qos=qos, window=window,
                         delivery=delivery, confirm_timeout_s=confirm_timeout_s, on_mode=on_mode)
        self._next_bounds = 0.0
        self.appended = 0

    def submit(self, result):  # noqa: D401 - a frame result is not an event
        raise TypeError("EventPublisher.append takes event bodies; frames go to edge.publisher.Publisher.submit")

    def append(self, body: dict) -> int:
        _row, seq = self.outbox.append(self.topic, lambda s: event_bytes(body, device=self.device, seq=s))
        self.appended += 1
        self.last_seq = seq
        return seq

    def _set_mode(self, mode: str, reason: str) -> None:
        """As the detections', logged as the events' delivery."""
        if mode != self.mode:
            self.mode, self.mode_reason = mode, reason.replace("message", "event")
            (log.warning if mode == "puback" else log.info)("events delivery: %s (%s)", mode, self.mode_reason)
            if self._on_mode is not None:
                self._on_mode(mode)

    def pump(self) -> int:
        """Keep the outbox in its bounds (never dropping what was handed to paho), then the detections
        publisher's pump: acks and confirmations applied, overdue events resent, stored events published."""
        now = time.monotonic()
        if now >= self._next_bounds:
            self._next_bounds = now + BOUNDS_EVERY_S
            dropped = self.outbox.enforce_bounds(self.protect_upto)
            if dropped:
                log.warning("events outbox over its bounds: dropped %d oldest events (total dropped %d)",
                            dropped, self.outbox.dropped)
        return super().pump()
