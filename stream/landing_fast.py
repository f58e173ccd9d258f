"""The bridge's fast path for the common messages (version-2 detections, metrics): decoded and validated in one
step by msgspec (C) against typed structures that state the contract's bounds, then flattened into the same
landing line as :func:`stream.landing.to_landing_line` makes.

It only ever *accepts*: a payload msgspec cannot decode into these structures (any other kind, version 1, a
field out of bounds, a NaN, a duplicate key, invalid UTF-8, whatever) goes the contract's way
(``stream.landing.to_landing_line``: ``edge.contract.schema.parse``), which lands it or dead-letters it with the
exact reason. So the contract stays the one definition of what is valid, and this module may only be narrower
than it: tests/contracts/test_landing_fast.py checks, over generated payloads (valid, at the bounds, mutated),
that whatever the fast path accepts the contract accepts too, into an equal landing line.

Why: the contract's pure-Python validation and flattening cost 23-29 us per message, and the bridge + job goal
(issue 14) leaves the bridge about 10 us per message for everything; this path takes about 5 us.
"""
from __future__ import annotations

import sys
from typing import Annotated, Iterable, Literal, Optional, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from edge.contract import schema, wire
from edge.contract.validator import python_pattern
from stream.landing import LandingLine, invalid_line, to_landing_line

_FLOAT_MAX = sys.float_info.max          # bounds a float below infinity (JSON's 1e999 decodes to inf)
_NAME = python_pattern(schema.NAME_PATTERN)
Permille = Annotated[int, Meta(ge=0, le=wire.MILLI)]
Count = Annotated[int, Meta(ge=0, le=schema.BIGINT_MAX)]
ClassId = Annotated[int, Meta(ge=0, le=schema.INT_MAX)]
Label = Annotated[str, Meta(max_length=wire.LABEL_CHARS, pattern=_NAME)]
Zone = Annotated[str, Meta(min_length=1, max_length=64, pattern=_NAME)]
Quad = Annotated[list[Permille], Meta(min_length=4, max_length=4)]
NonNegative = Annotated[float, Meta(ge=0.0, le=_FLOAT_MAX)]
# an int stays an int (the landing line writes the number as sent); a float is a finite one in range
CaptureTime = Union[Annotated[int, Meta(ge=0, le=int(schema.TS_MAX))],
                    Annotated[float, Meta(ge=0.0, le=schema.TS_MAX)]]


class Detection(Struct, array_like=True, forbid_unknown_fields=True):
    """``edge.contract.schema.DETECTION_V2``: [class_id, label, score, objectness, box, sigma, sigma_mean,
    box_sigma, zones?, track?]."""
    class_id: ClassId
    label: Label
    score: Permille
    objectness: Permille
    box: Quad
    sigma: Optional[Quad]
    sigma_mean: Optional[Permille]
    box_sigma: Optional[Annotated[list[Count], Meta(min_length=4, max_length=4)]]
    zones: Union[Annotated[list[Zone], Meta(max_length=32)], UnsetType] = UNSET
    track: Union[Count, UnsetType] = UNSET


class Detections(Struct, forbid_unknown_fields=True):
    """``edge.contract.schema.DETECTIONS_V2`` for a detector (no ``classes`` / ``entropy``: a classifier's
    messages take the contract's path)."""
    schema: Literal[2]
    device: Annotated[str, Meta(pattern=python_pattern(schema.DEVICE_ID_PATTERN))]
    seq: Count
    ts: CaptureTime
    frame: Annotated[list[Annotated[int, Meta(ge=1, le=1_000_000)]], Meta(min_length=2, max_length=2)]
    model: Annotated[str, Meta(min_length=8, max_length=80, pattern=python_pattern("^[0-9a-f]+$"))]
    latency_ms: Annotated[list[NonNegative], Meta(min_length=1, max_length=2)]
    detections: Union[Annotated[list[Detection], Meta(max_length=1000)], UnsetType] = UNSET


class _Latency(Struct):
    p50: NonNegative
    p95: NonNegative


class _Frames(Struct):
    captured: Count
    processed: Count
    dropped: Count


class _Outbox(Struct):
    depth: Count
    dropped: Count


class Metrics(Struct, forbid_unknown_fields=True):
    """``edge.contract.schema.METRICS`` (its nested objects allow more keys, as the contract's do)."""
    schema: Literal[1]
    type: Literal["metrics"]
    device: Annotated[str, Meta(pattern=python_pattern(schema.DEVICE_ID_PATTERN))]
    ts: CaptureTime
    fps: Union[Annotated[int, Meta(ge=0, le=2 ** 53)], NonNegative]
    latency_ms: _Latency
    frames: _Frames
    outbox: _Outbox
    uptime_s: Union[NonNegative, UnsetType] = UNSET
    source: Union[dict, UnsetType] = UNSET
    cpu_temp_c: Union[Annotated[float, Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)], None, UnsetType] = UNSET
    last_seq: Union[Count, None, UnsetType] = UNSET


class _LandingDetection(Struct, omit_defaults=True):
    """One entry of a landing line's ``dets`` (``stream.landing._flat_dets``); ``h`` only on the frame's first,
    ``t`` only with a track."""
    c: int
    l: str  # noqa: E741 - the landing format's key
    p: float
    g: Optional[float]
    f: int
    h: int = 0
    t: Optional[int] = None     # the detection's track id (absent without one)


class _LandingDetections(Struct):
    """A detections landing line (``stream.landing.message_line``): encoding a Struct costs less than a dict."""
    kind: str
    device: str
    recv_ts: float
    seq: int
    ts: Union[int, float]
    dets: list[_LandingDetection]


_decode = msgspec.json.Decoder(Detections).decode
_decode_metrics = msgspec.json.Decoder(Metrics).decode
_encode = msgspec.json.Encoder().encode
_MILLI = float(wire.MILLI)
_new_tuple = tuple.__new__
_TOPICS_KEPT = 100_000          # parsed topics remembered (one per device and kind)


class LandingConverter:
    """:func:`stream.landing.to_landing_line` with the fast path in front and the topics remembered (a fleet has
    one per device and kind). ``convert_batch`` is the bridge's: many messages of one read, one receive time."""

    def __init__(self, prefix: str, max_bytes: int):
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.topics: dict = {}  # raw or str topic -> (topic name, device or None, kind or None)
        self.fast = 0           # messages the fast path took

    def _topic(self, topic) -> tuple[str, Optional[str], Optional[str]]:
        if isinstance(topic, (bytes, bytearray)):
            try:
                name = bytes(topic).decode("utf-8")
            except UnicodeDecodeError:          # brokers check topics are UTF-8; never trust it here
                name = bytes(topic).decode("utf-8", "replace")
        else:
            name = topic
        try:
            device, kind = schema.parse_topic(self.prefix, name)
        except (schema.SchemaError, TypeError, ValueError):
            return name, None, None
        if len(self.topics) >= _TOPICS_KEPT:
            self.topics.clear()
        self.topics[bytes(topic) if isinstance(topic, bytearray) else topic] = entry = (name, device, kind)
        return entry

    def convert(self, topic, payload: bytes, recv_ts: float) -> LandingLine:
        """The landing line of one message; ``topic`` as str or as the raw bytes."""
        return self.convert_batch(((topic, payload),), recv_ts)[0]

    def convert_batch(self, messages: Iterable, recv_ts: float) -> list[LandingLine]:
        """The landing line of each ``(topic, payload, ...)`` in ``messages``, all received at ``recv_ts``. Never
        raises: a failure of this code itself lands the message as ``invalid`` with the reason."""
        recv = round(recv_ts, 6)
        topics, max_bytes, out = self.topics, self.max_bytes, []
        append = out.append
        fast = 0
        for item in messages:
            topic, payload = item[0], item[1]
            try:
                entry = topics.get(topic)
                name, device, kind = entry if entry is not None else self._topic(topic)
                if kind == "detections" and len(payload) <= max_bytes:
                    try:
                        msg = _decode(payload)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        msg = None
                    if msg is not None and msg.device == device:
                        # the fields and their order of stream.landing.message_line
                        dets = []
                        seen = set()
                        for d in msg.detections or ():
                            c = d.class_id
                            g = d.sigma_mean
                            track = d.track
                            dets.append(_LandingDetection(c, d.label, d.score / _MILLI,
                                                          None if g is None else g / _MILLI,
                                                          0 if c in seen else 1, 0 if dets else 1,
                                                          None if track is UNSET else track))
                            seen.add(c)
                        line = _encode(_LandingDetections("detections", device, recv, msg.seq, msg.ts, dets)).decode()
                        # tuple.__new__: a LandingLine without its generated __new__ (a third of a us each)
                        append(_new_tuple(LandingLine, (line, True, device, msg.seq)))
                        fast += 1
                        continue
                elif kind == "metrics" and len(payload) <= max_bytes:
                    try:
                        met = _decode_metrics(payload)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        met = None
                    if met is not None and met.device == device:
                        line = _encode({"kind": "metrics", "device": device, "recv_ts": recv, "ts": met.ts,
                                        "fps": met.fps, "dropped": met.frames.dropped,
                                        "depth": met.outbox.depth}).decode()
                        append(_new_tuple(LandingLine, (line, True, device, None)))
                        fast += 1
                        continue
                append(to_landing_line(self.prefix, name, payload, recv_ts, max_bytes))
            except Exception as exc:  # noqa: BLE001 - a payload must never stop the bridge: dead-letter it
                name = bytes(topic).decode("utf-8", "replace") if isinstance(topic, (bytes, bytearray)) else str(topic)
                append(LandingLine(invalid_line(name, None, recv_ts, f"the bridge failed on this message: {exc!r}",
                                                "(not kept)"), False, None, None))
        self.fast += fast
        return out
