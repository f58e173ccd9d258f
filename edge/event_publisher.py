"""Track events go through their own persistent outbox to ``<prefix>/<device>/events``, like detections.

* ``append(body)`` stores one event (``edge.tracking.events`` body) under the next *events* sequence number, in
  an SQLite outbox of its own (``<outbox>.events.sqlite``, the same ``edge.outbox.Outbox`` as detections): events
  have a counter of their own, so the detections' sequence numbers keep no gaps and a consumer sees a gap in
  either stream as a loss.
* ``pump()`` hands stored rows to paho in order while connected, at most ``window`` without a PUBACK; a row
  leaves the outbox at its PUBACK. Across a broker outage the rows wait in the outbox (paho also keeps what it
  had in flight and resends it); after a crash of the agent they are sent first at the next start.
* ``on_ack(mid)`` is called from paho's thread with every PUBACK of the client (a mid that is not this
  publisher's is ignored); ``pump`` (the publish thread) applies them.

Delivered at the broker's PUBACK: no bridge lands events today (the job reads detections); a consumer that needs
them across a broker *crash* should use a broker with persistence, or events can take the landing confirmations
detections get (issue 14) once a bridge lands them.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from edge.contract.mqtt import ERR_NO_CONN, ERR_QUEUE_SIZE, SUCCESS, MqttClient
from edge.contract.schema import SCHEMA_VERSION, encode
from edge.outbox import Outbox
from edge.publisher import Draining

log = logging.getLogger("edge.events")
BOUNDS_EVERY_S = 2.0


def event_bytes(body: dict, *, device: str, seq: int) -> bytes:
    """One event as published: the contract's envelope (``edge.contract.schema.EVENT``), then the body."""
    rest = {k: v for k, v in body.items() if k != "type"}
    return encode({"schema": SCHEMA_VERSION, "type": body["type"], "device": device, "seq": int(seq), **rest})


class EventPublisher(Draining):
    def __init__(self, link: MqttClient, outbox: Outbox, *, topic: str, device: str, qos: int = 1,
                 window: int = 500):
        self.link = link
        self.outbox = outbox
        self.topic = topic
        self.device = device
        self.qos = qos
        self.window = int(window)
        self._inflight: dict[int, int] = {}      # paho mid -> outbox row id
        self._acks: collections.deque[int] = collections.deque()
        self._last_handed = 0
        self._next_bounds = 0.0
        self.wake = threading.Event()
        self.appended = 0
        self.sent = 0
        self.bytes_sent = 0
        self.last_seq: int | None = None

    # paho thread
    def on_ack(self, mid: int) -> None:
        self._acks.append(mid)
        self.wake.set()

    # publish thread
    def append(self, body: dict) -> int:
        _row, seq = self.outbox.append(self.topic, lambda s: event_bytes(body, device=self.device, seq=s))
        self.appended += 1
        self.last_seq = seq
        return seq

    def _apply_acks(self) -> None:
        while self._acks:
            row = self._inflight.pop(self._acks.popleft(), None)
            if row is not None:
                self.outbox.ack(row)

    def pump(self) -> int:
        """Apply acks, keep the outbox in its bounds, publish stored rows while the window has room."""
        self._apply_acks()
        now = time.monotonic()
        if now >= self._next_bounds:
            self._next_bounds = now + BOUNDS_EVERY_S
            dropped = self.outbox.enforce_bounds(self._last_handed)
            if dropped:
                log.warning("events outbox over its bounds: dropped %d oldest events (total dropped %d)",
                            dropped, self.outbox.dropped)
        handed = 0
        while self.link.connected and len(self._inflight) < self.window:
            rows = self.outbox.pending(self._last_handed, min(200, self.window - len(self._inflight)))
            if not rows:
                break
            for row in rows:
                rc, mid = self.link.publish(row.topic, row.payload, qos=self.qos)
                if rc == ERR_QUEUE_SIZE or (rc == ERR_NO_CONN and self.qos == 0):
                    return handed
                if rc not in (SUCCESS, ERR_NO_CONN):
                    log.warning("publish of event seq %s failed: rc=%s; retrying later", row.seq, rc)
                    return handed
                self._inflight[mid] = row.id
                self._last_handed = row.id
                self.sent += 1
                self.bytes_sent += len(row.payload)
                handed += 1
                if rc == ERR_NO_CONN:      # queued inside paho, resent on reconnect
                    return handed
        self._apply_acks()
        return handed

    @property
    def inflight(self) -> int:
        return len(self._inflight)
