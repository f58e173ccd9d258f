"""Detections go outbox -> paho through a bounded window of unacknowledged publishes.

* ``submit(result)`` stores a detections message in the outbox (assigning its sequence number).
  Frames without detections produce nothing, except one empty message when the scene *becomes*
  empty, so consumers see the transition.
* ``pump()`` hands stored rows to paho in id order while connected, at most ``window`` of them
  unacknowledged (paho itself fails with ERR_QUEUE_SIZE beyond 65,535 outstanding messages). At start
  the window begins at id 0, so whatever a previous process left in the outbox is replayed first.
* ``on_ack(mid)`` is called from paho's thread; it only queues the mid. ``pump`` (publisher thread)
  maps mids to rows and deletes them, so a PUBACK arriving before ``publish`` returned is still matched.
  paho keeps unacknowledged QoS>0 messages across reconnects and resends them, so the window survives
  a broker outage; the outbox covers the process dying.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from edge.messages import FrameResult, detections_bytes
from edge.contract.mqtt import ERR_NO_CONN, ERR_QUEUE_SIZE, SUCCESS, MqttClient
from edge.outbox import Outbox

log = logging.getLogger("edge.publisher")


class Publisher:
    def __init__(self, link: MqttClient, outbox: Outbox, *, topic: str, device: str, model_ref: dict[str, str],
                 qos: int = 1, window: int = 500):
        self.link = link
        self.outbox = outbox
        self.topic = topic
        self.device = device
        self.model_ref = model_ref
        self.qos = qos
        self.window = int(window)
        self._inflight: dict[int, int] = {}      # paho mid -> outbox row id
        self._acks: collections.deque[int] = collections.deque()
        self._last_handed = 0
        self._scene_empty = True
        self.wake = threading.Event()
        self.last_seq: int | None = None
        self.sent = 0
        self.bytes_sent = 0
        self.messages_built = 0
        self.bytes_built = 0

    # paho thread
    def on_ack(self, mid: int) -> None:
        self._acks.append(mid)
        self.wake.set()

    # publisher thread
    def submit(self, result: FrameResult) -> int | None:
        """Store the message for this frame if it needs one; returns its seq (None when nothing is sent)."""
        if result.empty:
            if self._scene_empty:
                return None
            self._scene_empty = True
        else:
            self._scene_empty = False

        size = 0

        def build(seq: int) -> bytes:
            nonlocal size
            data = detections_bytes(result, device=self.device, seq=seq, model_ref=self.model_ref)
            size = len(data)
            return data

        _row, seq = self.outbox.append(self.topic, build)
        self.last_seq = seq
        self.messages_built += 1
        self.bytes_built += size
        return seq

    def _apply_acks(self) -> int:
        # Every mid of an outbox publish is mapped before this runs again (same thread), so a mid that
        # maps to nothing belongs to a status/metrics/config publish and is ignored.
        n = 0
        while self._acks:
            row = self._inflight.pop(self._acks.popleft(), None)
            if row is not None:
                self.outbox.ack(row)
                n += 1
        return n

    def pump(self) -> int:
        """Apply acks, then publish stored rows while the window has room. Returns rows handed to paho."""
        self._apply_acks()
        handed = 0
        while self.link.connected and len(self._inflight) < self.window:
            rows = self.outbox.pending(self._last_handed, min(200, self.window - len(self._inflight)))
            if not rows:
                break
            for row in rows:
                rc, mid = self.link.publish(row.topic, row.payload, qos=self.qos)
                if rc == ERR_QUEUE_SIZE:
                    log.warning("paho refused more messages (queue size); holding back")
                    return handed
                if rc == ERR_NO_CONN and self.qos == 0:   # QoS 0 is not queued by paho: try again later
                    return handed
                if rc not in (SUCCESS, ERR_NO_CONN):
                    log.warning("publish of seq %s failed: rc=%s; retrying later", row.seq, rc)
                    return handed
                self._inflight[mid] = row.id
                self._last_handed = row.id
                self.sent += 1
                self.bytes_sent += len(row.payload)
                handed += 1
                if rc == ERR_NO_CONN:   # queued inside paho, resent on reconnect; stop handing more
                    return handed
        self._apply_acks()
        return handed

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def protect_upto(self) -> int:
        """Rows with id <= this were handed to paho: the bound enforcement must not drop them."""
        return self._last_handed

    def drain(self, timeout: float) -> bool:
        """Publish and wait for acks until the outbox is empty or ``timeout`` passes; True when empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if not self._inflight and self.outbox.depth() == 0:
                return True
            if not self.link.connected:
                return False
            self.wake.wait(0.05)
            self.wake.clear()
        return self.outbox.depth() == 0
