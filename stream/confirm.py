"""The bridge's landing confirmations: which detections and events each device has in durable landing files.

After every landing file is fsynced, renamed and its directory fsynced, the bridge adds the sequence numbers
it holds to :class:`Confirmations`; every ``confirm_interval_s`` it publishes one ``landed`` message per device
(``<prefix>/<device>/landed``, ``edge.contract.schema.LANDED``) with the numbers as merged inclusive ranges,
``{"schema":1,"type":"landed","device":"cam-1","bridge":"b1","ts":...,"seqs":[[40,57],[59,61]]}``.
Events have a sequence counter of their own (``<prefix>/<device>/events``): their confirmations are separate
messages on the same topic that say so, ``"stream":"events"``; detections confirmations carry no ``stream``
field, byte for byte what agents before events understood.
An agent deletes a message from its outbox only when a confirmation covers it, and sends it again when none
came within its timeout: a confirmation lost with a crashed broker or bridge costs a duplicate, which the
job's (device, seq) dedup absorbs, never a loss. Confirmations are QoS 1 and never retained.

Coalescing over an interval keeps the confirmations a fraction of the traffic: at 4 frames/s per camera and a
1 s interval, one confirmation per four detections messages, whatever the number of cameras.
"""
from __future__ import annotations

import time
from typing import Iterator, Optional

from edge.contract import schema


class Confirmations:
    """Sequence numbers landed per device, waiting to be published."""

    def __init__(self, prefix: str, bridge: str, interval_s: float):
        self.prefix = prefix
        self.bridge = bridge
        self.interval_s = interval_s
        self.waiting: dict[tuple[str, str], list[int]] = {}      # (device, stream) -> sequence numbers
        self.next_at = 0.0
        self.sent = 0            # confirmation messages published
        self.confirmed = 0       # sequence numbers they covered

    def add(self, seqs: dict[tuple[str, str], list[int]]) -> None:
        """``{(device, stream): [seq, ...]}`` of one durable landing file (``stream.landing.Batch.seqs``)."""
        for key, numbers in seqs.items():
            self.waiting.setdefault(key, []).extend(numbers)

    def due(self, now: Optional[float] = None) -> bool:
        now = time.monotonic() if now is None else now
        return bool(self.waiting) and now >= self.next_at

    def take(self, now: Optional[float] = None, ts: Optional[float] = None) -> Iterator[tuple[str, bytes]]:
        """(topic, payload) of every confirmation waiting; the waiting set is emptied."""
        now = time.monotonic() if now is None else now
        self.next_at = now + self.interval_s
        waiting, self.waiting = self.waiting, {}
        ts = round(time.time() if ts is None else ts, 3)
        for (device, stream), numbers in waiting.items():
            ranges = schema.landed_ranges(numbers)
            self.confirmed += len(set(numbers))
            for i in range(0, len(ranges), schema.LANDED_MAX_RANGES):
                self.sent += 1
                yield (schema.topic(self.prefix, device, "landed"),
                       schema.encode(landed_payload(device, self.bridge, ranges[i:i + schema.LANDED_MAX_RANGES], ts,
                                                    stream)))


def landed_payload(device: str, bridge: str, ranges: list[list[int]], ts: float, stream: str = "detections") -> dict:
    """One confirmation; ``stream`` "detections" writes no ``stream`` field (what agents before events read)."""
    return {"schema": schema.SCHEMA_VERSION, "type": "landed", "device": device, "bridge": bridge, "ts": ts,
            "seqs": ranges, **({} if stream == "detections" else {"stream": stream})}
