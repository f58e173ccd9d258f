"""Detections go outbox -> paho through a bounded window, and leave the outbox when they are delivered.

* ``submit(result)`` stores a detections message in the outbox (assigning its sequence number).
  Frames without detections produce nothing, except one empty message when the scene *becomes*
  empty, so consumers see the transition.
* ``pump()`` hands stored rows to paho in id order while connected, at most ``window`` of them not yet
  delivered (paho itself fails with ERR_QUEUE_SIZE beyond 65,535 outstanding messages). At start the window
  begins at id 0, so whatever a previous process left in the outbox is sent first.
* ``on_ack(mid)`` (PUBACK) and ``on_landed(ranges)`` (a bridge's confirmation) are called from paho's thread;
  they only queue. ``pump`` (publisher thread) applies them, so a PUBACK arriving before ``publish``
  returned is still matched.

Delivery (``mqtt.delivery``), why: mosquitto does not persist before its PUBACK, so a broker crash loses
messages it had acknowledged. A bridge that lands a message durably confirms it on ``<prefix>/<device>/landed``
(``stream.confirm``); then:

* ``landed``: a row leaves the outbox only when a confirmation covers it. A row with a PUBACK and no
  confirmation after ``confirm_timeout_s`` is sent again (then after 2x, 4x, at most 8x the timeout while
  none comes): a lost broker, a dead bridge or a lost confirmation costs a copy, which the job's (device, seq)
  dedup absorbs, never the message.
* ``puback``: a row leaves at the broker's PUBACK (old bridges without confirmations).
* ``auto`` (default): ``landed`` once any bridge has confirmed a message of this outbox (remembered across
  restarts); until then rows wait for a confirmation up to the timeout and, if none ever came, the agent falls
  back to ``puback`` and says so (log, status ``delivery``), switching to ``landed`` at the first confirmation.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable, Optional

from edge.contract.mqtt import ERR_NO_CONN, ERR_QUEUE_SIZE, SUCCESS, MqttClient
from edge.messages import FrameResult, detections_bytes
from edge.outbox import Outbox, Row

log = logging.getLogger("edge.publisher")
MAX_BACKOFF = 8          # a row is resent after at most 8x the confirmation timeout

PUBACK_FALLBACK = ("no bridge has confirmed any message within {t:g} s: messages leave the outbox at the broker's "
                   "PUBACK (an old bridge without landing confirmations; a broker crash can lose them)")


class Draining:
    """``drain`` for an outbox publisher with ``pump()``, ``_inflight``, ``outbox``, ``link`` and ``wake``."""

    def drain(self, timeout: float) -> bool:
        """Publish and wait for delivery until the outbox is empty or ``timeout`` passes; True when empty."""
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


class Publisher(Draining):
    def __init__(self, link: MqttClient, outbox: Outbox, *, topic: str, device: str, model_ref: dict[str, str],
                 qos: int = 1, window: int = 500, delivery: str = "auto", confirm_timeout_s: float = 10.0,
                 on_mode: Optional[Callable[[str], None]] = None):
        self.link = link
        self.outbox = outbox
        self.topic = topic
        self.device = device
        self.model_ref = model_ref
        self.qos = qos
        self.window = int(window)
        self.delivery = delivery
        self.confirm_timeout_s = float(confirm_timeout_s)
        self._on_mode = on_mode
        self._inflight: dict[int, tuple[int, int]] = {}    # paho mid -> (outbox row id, resends): no PUBACK yet
        self._awaiting: collections.OrderedDict[int, tuple[float, int]] = collections.OrderedDict()
        # ^ row id -> (resend at, attempts): PUBACKed, waiting for a landing confirmation; oldest first
        self._acks: collections.deque[int] = collections.deque()
        self._landed: collections.deque[list[list[int]]] = collections.deque()
        self._refused: collections.deque[str] = collections.deque()
        self._last_handed = 0
        self._scene_empty = True
        self.wake = threading.Event()
        self.last_seq: int | None = None
        self.sent = 0
        self.resent = 0
        self.confirmed = 0
        self.bytes_sent = 0
        self.messages_built = 0
        self.bytes_built = 0
        if delivery == "puback" or qos == 0:
            self.mode = "puback"
        elif delivery == "landed" or outbox.landed_seen:
            self.mode = "landed"
        else:
            self.mode = "pending"               # auto, no bridge has confirmed anything yet
        self.mode_reason = ("configured (mqtt.delivery: puback)" if delivery == "puback" else
                            "QoS 0" if qos == 0 else "")

    # paho thread
    def on_ack(self, mid: int) -> None:
        self._acks.append(mid)
        self.wake.set()

    def confirmations_refused(self, reason: str) -> None:
        """The broker refused the subscription to this device's landing confirmations (an ACL from before
        them): none can come, so PUBACK delivery, said in the log and the status."""
        self._refused.append(reason)
        self.wake.set()

    def on_landed(self, ranges: list[list[int]]) -> None:
        self._landed.append(ranges)
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

    def _set_mode(self, mode: str, reason: str) -> None:
        if mode != self.mode:
            self.mode, self.mode_reason = mode, reason
            (log.warning if mode == "puback" else log.info)("delivery: %s (%s)", mode, reason)
            if self._on_mode is not None:
                self._on_mode(mode)

    def _apply_acks(self) -> int:
        # Every mid of an outbox publish is mapped before this runs again (same thread), so a mid that
        # maps to nothing belongs to a status/metrics/config publish and is ignored.
        n = 0
        while self._refused:
            reason = self._refused.popleft()
            if self.mode != "puback":
                for row in list(self._awaiting):        # PUBACKed: delivered as far as this broker can tell
                    self._awaiting.pop(row)
                    self.outbox.ack(row)
                self._set_mode("puback", f"no landing confirmations can reach this agent: {reason}; messages leave "
                                         "the outbox at the broker's PUBACK (add 'pattern read <prefix>/%u/landed' "
                                         "to the broker's ACL)")
        while self._landed:
            ids = self.outbox.confirm(self._landed.popleft())
            self.confirmed += len(ids)
            for row in ids:
                self._awaiting.pop(row, None)
            if self.mode != "landed" and self.delivery != "puback":
                self._set_mode("landed", "a bridge confirms landed messages: each stays in the outbox until then")
        now = time.monotonic()
        while self._acks:
            sent = self._inflight.pop(self._acks.popleft(), None)
            if sent is None:
                continue
            row, resends = sent
            if self.mode == "puback":
                self.outbox.ack(row)
            else:
                self._awaiting[row] = (now + self.confirm_timeout_s * min(2 ** resends, MAX_BACKOFF), resends)
            n += 1
        return n

    def _expired(self, now: float, room: int) -> list[int]:
        """Rows whose confirmation is overdue (at most ``room``), oldest first."""
        due = [row for row, (at, _) in self._awaiting.items() if at <= now]
        return due[:room]

    def _resend_overdue(self) -> int:
        now = time.monotonic()
        room = self.window - len(self._inflight)
        due = self._expired(now, room) if room > 0 else []
        if not due:
            return 0
        if self.mode == "pending":          # auto: no bridge ever confirmed -> an old bridge: PUBACK delivery
            for row in due:
                self._awaiting.pop(row)
                self.outbox.ack(row)
            self._set_mode("puback", PUBACK_FALLBACK.format(t=self.confirm_timeout_s))
            for row in list(self._awaiting):     # the rest were PUBACKed too
                self._awaiting.pop(row)
                self.outbox.ack(row)
            return 0
        resends = {row: self._awaiting.pop(row)[1] + 1 for row in due}
        handed = 0
        for row in self.outbox.rows(due):         # rows confirmed meanwhile are gone from the outbox
            taken, go_on = self._hand(row, resends.pop(row.id))
            handed += taken
            if not go_on:
                break
        for row, n in resends.items():           # not handed (paho full): due again on the next turn
            if self.outbox.rows([row]):
                self._awaiting[row] = (now, n - 1)
        return handed

    def _hand(self, row: Row, resends: int = 0) -> tuple[bool, bool]:
        """Publish one row: (taken by paho, go on handing more)."""
        rc, mid = self.link.publish(row.topic, row.payload, qos=self.qos)
        if rc == ERR_QUEUE_SIZE:
            log.warning("paho refused more messages (queue size); holding back")
            return False, False
        if rc == ERR_NO_CONN and self.qos == 0:   # QoS 0 is not queued by paho: try again later
            return False, False
        if rc not in (SUCCESS, ERR_NO_CONN):
            log.warning("publish of seq %s failed: rc=%s; retrying later", row.seq, rc)
            return False, False
        self._inflight[mid] = (row.id, resends)
        if resends:
            self.resent += 1
        else:
            self._last_handed = max(self._last_handed, row.id)
            self.sent += 1
        self.bytes_sent += len(row.payload)
        return True, rc == SUCCESS              # NO_CONN: queued inside paho, resent on reconnect; stop handing

    def pump(self) -> int:
        """Apply acks and confirmations, resend overdue rows, then publish stored rows while the window has
        room. Returns rows handed to paho."""
        self._apply_acks()
        handed = self._resend_overdue() if self.link.connected else 0
        while self.link.connected and self.outstanding < self.window:
            rows = self.outbox.pending(self._last_handed, min(200, self.window - self.outstanding))
            if not rows:
                break
            for row in rows:
                taken, go_on = self._hand(row)
                handed += taken
                if not go_on:
                    return handed
        self._apply_acks()
        return handed

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def awaiting(self) -> int:
        """Rows the broker acknowledged that no bridge has confirmed yet."""
        return len(self._awaiting)

    @property
    def outstanding(self) -> int:
        return len(self._inflight) + len(self._awaiting)

    @property
    def protect_upto(self) -> int:
        """Rows with id <= this were handed to paho: the bound enforcement must not drop them."""
        return self._last_handed
