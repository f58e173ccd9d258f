"""The MQTT message contract between edge agents, the stream job and dashboards.

Dependency-free on purpose: the edge agent (numpy + paho only), the PyFlink job and the
dashboard server all import this one module. Every payload is a JSON object with
``"schema": SCHEMA_VERSION`` and a ``"type"``. The JSON Schemas below are published as files
under ``edge/contract/schemas/`` (``python -m edge.contract.schema --write``) and a test keeps them in sync.

``validate(payload, kind)`` checks the small subset of JSON Schema these schemas use
(type, required, properties, additionalProperties, enum, minimum/maximum, minItems/maxItems,
items, prefixItems, minLength, maxLength, pattern; ``edge.contract.validator`` compiles each schema once), so the
edge and the server can check messages without the ``jsonschema`` package; the tests cross-check it against
``jsonschema``.

Topics: ``<prefix>/<device>/<kind>`` with kind one of ``detections``, ``status``, ``metrics``,
``config/set``, ``config/state`` and ``landed`` (a bridge's confirmation to the agent that these sequence
numbers, of its detections or, with ``"stream": "events"``, of its events, are in durable landing files: ``LANDED``). A bridge's own health is ``<prefix>/_bridge/<bridge>/status``
(``BRIDGE_STATUS``). Device ids are restricted to ``[A-Za-z0-9_-]`` so that they are always one topic level
and can be used in file names and SQL keys.

Bounds: every field the stream job stores is bounded here (``BIGINT_MAX``, ``INT_MAX``, ``TS_MAX``, the name
alphabet ``NAME_PATTERN``), because Flink's JSON format turns a value its column type cannot hold into NULL
without an error; what the job could not represent is refused at the bridge, with a reason.

Tracking agents (``edge.objects``) add two topic kinds: ``events`` (the tracker's new / update / end and entered /
left / crossed, ``EVENT``) and ``objects`` (retained: the objects present now, ``OBJECTS``).

Detections have two wire versions (see ``edge.contract.wire`` for the compact one agents publish):
``"schema": 2`` (compact: one fixed-order array of integers per detection, every fraction in thousandths;
less than half the bytes) and ``"schema": 1`` (one object per detection,
still accepted so agents can be upgraded one by one and old outbox entries replay). :func:`parse` checks
either and returns it as sent (the bridge flattens it from there, ``stream.landing``); :func:`decode` turns
both into the same *decoded* form, the version-1 object shape, which is what the dashboard, the demo and the
tests work with; the decoded form of a version-2 message keeps ``"schema": 2``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from edge.contract.validator import Invalid, python_pattern, validator
from edge.contract.wire import DETECTIONS_VERSION, expand_detections

SCHEMA_VERSION = 1
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_DEVICE_RE = re.compile(python_pattern(DEVICE_ID_PATTERN))

TOPIC_KINDS = ("detections", "status", "metrics", "config/set", "config/state", "landed", "events", "objects")
BRIDGE_TOPIC_LEVEL = "_bridge"      # <prefix>/_bridge/<bridge client id>/status: a bridge's own health

# Bounds of what the stream job stores (Flink SQL types of its landing table, ``stream.sql``): a value outside
# them would not become an error there but a NULL (Flink's JSON format with ignore-parse-errors), so the
# contract refuses it here, where the bridge can dead-letter it with a reason.
BIGINT_MAX = 2 ** 63 - 1            # seq, counters (BIGINT)
INT_MAX = 2 ** 31 - 1               # class ids (INT)
TS_MAX = 1e10                       # capture times (s; before the year 2286): the job multiplies them into ms
# Names that travel into the job and into output topics (labels, zone names, model ids): no NUL or other
# control characters, no lone surrogates (not UTF-8), no MQTT topic wildcards or level separators.
NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\ud800-\\udfff/+#]*$"


class SchemaError(ValueError):
    """A payload does not match its schema. ``str()`` names the offending field path."""


def check_device_id(device: str) -> str:
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise SchemaError(
            f"device id {device!r} is invalid: use 1-64 characters from A-Z a-z 0-9 _ - "
            "(it becomes one MQTT topic level)"
        )
    return device


def topic(prefix: str, device: str, kind: str) -> str:
    """``<prefix>/<device>/<kind>``; raises SchemaError for a bad device id or kind."""
    if kind not in TOPIC_KINDS:
        raise SchemaError(f"unknown topic kind {kind!r}; expected one of {', '.join(TOPIC_KINDS)}")
    prefix = prefix.strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise SchemaError(f"MQTT topic prefix {prefix!r} must be non-empty and contain no + or #")
    return f"{prefix}/{check_device_id(device)}/{kind}"


def bridge_status_topic(prefix: str, bridge: str) -> str:
    """``<prefix>/_bridge/<bridge>/status``: a bridge's retained health message (not a device topic)."""
    return f"{prefix.strip('/')}/{BRIDGE_TOPIC_LEVEL}/{check_device_id(bridge)}/status"


def landed_ranges(seqs) -> list[list[int]]:
    """Sorted, merged inclusive ranges ``[[first, last], ...]`` of the sequence numbers ``seqs``."""
    ranges: list[list[int]] = []
    for s in sorted(set(seqs)):
        if ranges and s == ranges[-1][1] + 1:
            ranges[-1][1] = s
        else:
            ranges.append([s, s])
    return ranges


def parse_topic(prefix: str, topic_name: str) -> tuple[str, str]:
    """Inverse of :func:`topic`: returns ``(device, kind)`` or raises SchemaError."""
    prefix = prefix.strip("/")
    if not topic_name.startswith(prefix + "/"):
        raise SchemaError(f"topic {topic_name!r} is not under prefix {prefix!r}")
    rest = topic_name[len(prefix) + 1:]
    device, _, kind = rest.partition("/")
    if kind not in TOPIC_KINDS:
        raise SchemaError(f"topic {topic_name!r} has unknown kind {kind!r}")
    return check_device_id(device), kind


# --------------------------------------------------------------------------- schemas
_NUM = {"type": "number"}
_UNIT = {"type": "number", "minimum": 0.0, "maximum": 1.0}
_NONNEG = {"type": "number", "minimum": 0.0}
_COUNT = {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX}
_CLASS_ID = {"type": "integer", "minimum": 0, "maximum": INT_MAX}
_SEQ = {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX,
        "description": "per-device, strictly increasing, survives restarts"}
_LABEL = {"type": "string", "maxLength": 100, "pattern": NAME_PATTERN}
_ZONE = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NAME_PATTERN}
_PIXELS = {"type": "integer", "minimum": 1, "maximum": 1_000_000}
_DEVICE = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": DEVICE_ID_PATTERN}
_TS = {"type": "number", "minimum": 0.0, "maximum": TS_MAX, "description": "Unix time in seconds (float)"}


def _obj(properties: dict, required: list[str], *, extra: bool = False, **kw) -> dict:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": extra, **kw}


def _envelope(kind: str) -> dict:
    return {
        "schema": {"type": "integer", "enum": [SCHEMA_VERSION]},
        "type": {"type": "string", "enum": [kind]},
        "device": _DEVICE,
    }


MODEL_REF = _obj({
    "id": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN},
    "hash": {"type": "string", "minLength": 8, "maxLength": 80, "pattern": "^[0-9a-fA-F]+$",
             "description": "sha256 of the model flatbuffer, hex"},
}, ["id", "hash"])

DETECTION = _obj({
    "class_id": _CLASS_ID,
    "label": _LABEL,
    "score": _UNIT,
    "objectness": _UNIT,
    "box": {"type": "array", "items": _UNIT, "minItems": 4, "maxItems": 4,
            "description": "[x_min, y_min, x_max, y_max], normalized to the frame"},
    "sigma": {"type": ["array", "null"], "items": _UNIT, "minItems": 4, "maxItems": 4,
              "description": "the model's sigma_x, sigma_y, sigma_w, sigma_h (each in [0,1]); null for a model "
                             "that predicts no uncertainty (plain YOLOv3 head, SSD)"},
    "sigma_mean": {**_UNIT, "type": ["number", "null"], "description": "mean of the four sigmas; null without sigma"},
    "box_sigma": {"type": "array", "items": _NONNEG, "minItems": 4, "maxItems": 4,
                  "description": "sigma of x_center, y_center, width, height in frame-normalized units"},
    "zones": {"type": "array", "items": _ZONE, "maxItems": 32,
              "description": "names of the configured zones containing the box centre (only when zones are set)"},
    "track": {**_COUNT, "description": "id of the agent's confirmed track that took this detection (absent: "
                                       "tracking off or the object not confirmed yet)"},
}, ["class_id", "label", "score", "objectness", "box", "sigma", "sigma_mean"])

CLASSIFICATION = _obj({
    "class_id": _CLASS_ID,
    "label": _LABEL,
    "score": _UNIT,
}, ["class_id", "label", "score"])

DETECTIONS = _obj({
    **_envelope("detections"),
    "seq": _SEQ,
    "ts": _TS,
    "frame": _obj({"w": _PIXELS, "h": _PIXELS}, ["w", "h"]),
    "model": MODEL_REF,
    "task": {"type": "string", "enum": ["detection", "classification"]},
    "latency_ms": _obj({"inference": _NONNEG, "total": _NONNEG}, ["inference"]),
    "detections": {"type": "array", "items": DETECTION, "maxItems": 1000},
    "classes": {"type": "array", "items": CLASSIFICATION, "maxItems": 100},
    "entropy": _NONNEG,
}, ["schema", "type", "device", "seq", "ts", "frame", "model", "task", "latency_ms", "detections"])

DETECTIONS_SCHEMA_VERSION = DETECTIONS_VERSION
_PERMILLE = {"type": "integer", "minimum": 0, "maximum": 1000}


def _quad(item: dict, description: str) -> dict:
    return {"type": "array", "items": item, "minItems": 4, "maxItems": 4, "description": description}


DETECTION_V2 = {
    "type": "array", "minItems": 8, "maxItems": 10, "items": False,
    "description": "one detection, fixed order: [class_id, label, score, objectness, box, sigma, sigma_mean, "
                   "box_sigma, zones?, track?]; every fraction as an integer count of thousandths",
    # each item's title names it in validation errors (detections[0][2:score]); the order is edge.contract.wire's
    "prefixItems": [
        {**_CLASS_ID, "title": "class_id", "description": "class id"},
        {**_LABEL, "title": "label", "description": "class name"},
        {**_PERMILLE, "title": "score",
         "description": "score = objectness x p(class) x (1 - sigma_mean), thousandths"},
        {**_PERMILLE, "title": "objectness", "description": "objectness, thousandths"},
        {**_quad(_PERMILLE, "[x_min, y_min, x_max, y_max], thousandths of the frame width/height"), "title": "box"},
        {**_quad(_PERMILLE, "the model's sigma_x, sigma_y, sigma_w, sigma_h, thousandths; null for a model that "
                            "predicts no uncertainty (plain YOLOv3 head, SSD)"), "type": ["array", "null"],
         "title": "sigma"},
        {**_PERMILLE, "type": ["integer", "null"], "title": "sigma_mean",
         "description": "mean of the four sigmas, thousandths; null without sigma"},
        {"type": ["array", "null"], "items": _COUNT, "minItems": 4, "maxItems": 4, "title": "box_sigma",
         "description": "sigma of x_center, y_center, width, height in thousandths of the frame "
                        "(null for a head without sigma)"},
        {"type": "array", "items": _ZONE, "maxItems": 32,
         "title": "zones",
         "description": "names of the configured zones containing the box centre (only when zones are set)"},
        {**_COUNT, "title": "track",
         "description": "id of the agent's confirmed track that took this detection (absent: tracking off or the "
                        "object not confirmed yet; the zones before it are then [] when none are set)"},
    ],
}

CLASSIFICATION_V2 = {
    "type": "array", "minItems": 3, "maxItems": 3, "items": False,
    "description": "[class_id, label, probability in thousandths]",
    "prefixItems": [{**_CLASS_ID, "title": "class_id"}, {**_LABEL, "title": "label"},
                    {**_PERMILLE, "title": "score"}],
}

DETECTIONS_V2 = _obj({
    "schema": {"type": "integer", "enum": [DETECTIONS_SCHEMA_VERSION]},
    "device": _DEVICE,
    "seq": _SEQ,
    "ts": _TS,
    "frame": {"type": "array", "items": _PIXELS, "minItems": 2, "maxItems": 2,
              "description": "[width, height] in pixels"},
    "model": {"type": "string", "minLength": 8, "maxLength": 80, "pattern": "^[0-9a-f]+$",
              "description": "the first 12 hex digits of the model's sha256 (the status message has its id and "
                             "the full hash)"},
    "latency_ms": {"type": "array", "items": _NONNEG, "minItems": 1, "maxItems": 2,
                   "description": "[inference, total] milliseconds"},
    "detections": {"type": "array", "items": DETECTION_V2, "maxItems": 1000,
                   "description": "present for a detector (empty when the scene became empty)"},
    "classes": {"type": "array", "items": CLASSIFICATION_V2, "maxItems": 100,
                "description": "present for a classifier: the top-k"},
    "entropy": {**_NONNEG, "description": "classifier's predictive entropy, nats"},
}, ["schema", "device", "seq", "ts", "frame", "model", "latency_ms"])

STATUS = _obj({
    **_envelope("status"),
    "state": {"type": "string", "enum": ["online", "offline"]},
    "ts": _TS,
    "version": {"type": "string"},
    "model": {"type": "object"},
    "interpreter": {"type": "string"},
    "source": {"type": "object"},
    "config": {"type": "object"},
    "reason": {"type": "string"},
    "clock": _obj({
        "synchronized": {"type": ["boolean", "null"],
                         "description": "the kernel says an NTP daemon disciplines the clock (null: unknown)"},
        "max_error_s": {"type": ["number", "null"]}, "est_error_s": {"type": ["number", "null"]},
        "how": {"type": "string"}}, ["synchronized"],
        description="the device clock that stamps every frame: synchronized or not"),
    "delivery": _obj({
        "mode": {"type": "string", "enum": ["landed", "puback", "pending"],
                 "description": "landed: a message leaves the outbox when a bridge confirms it landed durably; "
                                "puback: at the broker's PUBACK (no bridge confirms: a broker crash can lose it); "
                                "pending: no bridge has confirmed anything yet (mqtt.delivery auto)"},
        "reason": {"type": "string", "maxLength": 500},
        "events": _obj({"mode": {"type": "string", "enum": ["landed", "puback", "pending"]},
                        "reason": {"type": "string", "maxLength": 500}}, ["mode"],
                       description="the track events' own delivery (a bridge may land detections and not events): "
                                   "the same modes, decided by the events' confirmations (\"stream\": \"events\")"),
    }, ["mode"], extra=True),
}, ["schema", "type", "device", "state"])

METRICS = _obj({
    **_envelope("metrics"),
    "ts": _TS,
    "uptime_s": _NONNEG,
    "fps": _NONNEG,
    "latency_ms": _obj({"p50": _NONNEG, "p95": _NONNEG}, ["p50", "p95"], extra=True),
    "frames": _obj({"captured": _COUNT, "processed": _COUNT, "dropped": _COUNT}, ["captured", "processed", "dropped"], extra=True),
    "outbox": _obj({"depth": _COUNT, "dropped": _COUNT}, ["depth", "dropped"], extra=True),
    "source": {"type": "object"},
    "cpu_temp_c": {"type": ["number", "null"]},
    "last_seq": {**_SEQ, "type": ["integer", "null"]},
}, ["schema", "type", "device", "ts", "fps", "latency_ms", "frames", "outbox"])

CONFIG_SET = _obj({
    "request_id": {"type": "string", "minLength": 1, "maxLength": 100},
    "set": {"type": "object"},
}, ["set"])

CONFIG_STATE = _obj({
    **_envelope("config_state"),
    "ts": _TS,
    "request_id": {"type": ["string", "null"]},
    "ok": {"type": "boolean"},
    "error": {"type": ["string", "null"]},
    "config": {"type": "object"},
}, ["schema", "type", "device", "ts", "ok", "config"])

_BRIDGE_ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]{1,64}$",
              "description": "the bridge's MQTT client id"}
LANDED_MAX_RANGES = 1000
# The streams a confirmation can cover, each with its own per-device sequence counter. A detections confirmation
# carries no ``stream`` field (byte for byte what agents before events understood); an events confirmation says
# ``"stream": "events"`` (an agent that does not know the field ignores it with a warning: its events then leave
# their outbox at the broker's PUBACK, as they did).
LANDED_STREAMS = ("detections", "events")

# A bridge's confirmation to one agent (``<prefix>/<device>/landed``): these detections sequence numbers are in
# landing files that are fsynced, renamed and whose directory is fsynced. Ranges are inclusive, sorted and do not
# overlap; one message holds at most LANDED_MAX_RANGES of them (the bridge sends more messages if needed).
LANDED = _obj({
    **_envelope("landed"),
    "bridge": _BRIDGE_ID,
    "ts": _TS,
    "seqs": {"type": "array", "minItems": 1, "maxItems": LANDED_MAX_RANGES,
             "items": {"type": "array", "items": _SEQ, "minItems": 2, "maxItems": 2},
             "description": "[[first, last], ...] inclusive ranges of landed sequence numbers, ascending"},
    "stream": {"type": "string", "enum": list(LANDED_STREAMS),
               "description": "whose sequence numbers: the detections' (also when absent: what bridges sent before "
                              "events were landed, and what they still send for detections) or the events' own "
                              "counter (<prefix>/<device>/events)"},
}, ["schema", "type", "device", "bridge", "seqs"])

# A bridge's own health (``<prefix>/_bridge/<bridge>/status``, retained; its last will says offline).
BRIDGE_STATUS = _obj({
    "schema": {"type": "integer", "enum": [SCHEMA_VERSION]},
    "type": {"type": "string", "enum": ["bridge_status"]},
    "bridge": _BRIDGE_ID,
    "state": {"type": "string", "enum": ["online", "degraded", "offline"],
              "description": "degraded: the landing directory cannot be written (disk full, I/O error); the "
                             "bridge holds what it received, acknowledges and confirms nothing, and retries"},
    "ts": _TS,
    "reason": {"type": ["string", "null"], "maxLength": 2000},
    "confirms": {"type": "boolean", "description": "publishes <prefix>/<device>/landed confirmations"},
    "buffered": {**_COUNT, "description": "messages received and not yet landed"},
    "landed": {**_COUNT, "description": "messages landed since the bridge started"},
}, ["schema", "type", "bridge", "state"])

# The decoded form of either detections version (what ``decode`` returns): the version-1 shape.
DETECTIONS_DECODED = {**DETECTIONS, "properties": {
    **DETECTIONS["properties"], "schema": {"type": "integer", "enum": [1, DETECTIONS_SCHEMA_VERSION]},
    "model": {**MODEL_REF, "required": ["hash"]}}}


def validate_decoded_detections(msg: Any) -> Any:
    """Check the decoded form of a detections message (the version-1 shape with ``schema`` 1 or 2)."""
    _check(msg, DETECTIONS_DECODED, "detections")
    return msg


# --------------------------------------------------------------------------- events and objects (edge.objects)
EVENT_TYPES = ("new", "update", "end", "entered", "left", "crossed")
TRACK_EVENT_TYPES = ("new", "update", "end")
_REGION = {**_ZONE, "description": "zone or line name from the agent's config"}
_REGIONS = {"type": "array", "items": _REGION, "maxItems": 64}
_PER_LABEL = {"type": "object", "additionalProperties": _COUNT, "description": "{label: objects}"}

# ``<prefix>/<device>/events``: one message per track event, in the order they happened, each with its own
# per-device sequence number (a counter of its own, not the detections'; gaps mean loss, repeats are copies).
EVENT = _obj({
    "schema": {"type": "integer", "enum": [SCHEMA_VERSION]},
    "type": {"type": "string", "enum": list(EVENT_TYPES),
             "description": "new: a track was confirmed; update: its label, best score (by the configured delta), "
                            "zones or line crossings changed; end: it ended (end = last seen); entered / left: a "
                            "zone; crossed: a counting line"},
    "device": _DEVICE,
    "seq": {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX,
            "description": "per-device events counter, strictly increasing, survives restarts"},
    "ts": {**_TS, "description": "capture time of the frame that caused the event"},
    "id": {"type": "string", "minLength": 1, "maxLength": 40, "pattern": "^[0-9]+-[0-9]+$",
           "description": "<start unix ms>-<track>: unique per device across restarts (track ids start again)"},
    "track": {**_COUNT, "description": "the tracker's id (the detections' track)"},
    "label": _LABEL,
    "class_id": _CLASS_ID,
    "start": {**_TS, "description": "first detection of the track"},
    "end": {**_TS, "type": ["number", "null"], "description": "end events: last time the track was seen"},
    "score": _UNIT,
    "best_score": _UNIT,
    "box": {"type": "array", "items": _UNIT, "minItems": 4, "maxItems": 4,
            "description": "the filter's box [x_min, y_min, x_max, y_max], frame-normalized"},
    "box_sigma": {"type": "array", "items": _NONNEG, "minItems": 4, "maxItems": 4,
                  "description": "the track's own uncertainty: the Kalman filter's std of x_center, y_center, width, "
                                 "height (frame-normalized)"},
    "sigma_mean": {**_UNIT, "type": ["number", "null"],
                   "description": "mean of the model's sigma over the track's detections (null: no sigma)"},
    "hits": _COUNT,
    "zones": {**_REGIONS, "description": "zones the object is in now"},
    "entered_zones": {**_REGIONS, "description": "zones entered so far, first entry first"},
    "lines": {"type": "object", "additionalProperties": _obj({"in": _COUNT, "out": _COUNT}, ["in", "out"]),
              "description": "{line: {in: n, out: n}} crossings so far"},
    "changed": {"type": "array", "items": {"type": "string", "enum": ["label", "best_score", "zones", "lines"]},
                "maxItems": 4, "description": "update events: what changed"},
    "zone": {**_REGION, "description": "entered / left: the zone"},
    "line": {**_REGION, "description": "crossed: the line"},
    "direction": {"type": "string", "enum": ["in", "out"],
                  "description": "crossed: in = from the left of start -> end to its right as seen on screen"},
}, ["schema", "type", "device", "seq", "ts", "id", "track", "label"])

_REQUIRED_BY_TYPE = {"new": ("start", "box", "box_sigma", "best_score", "zones"),
                     "update": ("start", "box", "box_sigma", "best_score", "zones", "changed"),
                     "end": ("start", "end", "box", "box_sigma", "best_score", "zones"),
                     "entered": ("zone",), "left": ("zone",), "crossed": ("line", "direction")}

# ``<prefix>/<device>/objects`` (retained, published when a count changes): the objects present now, i.e. the
# live confirmed tracks (a briefly hidden one still counts until its track ends), per label and per zone.
OBJECTS = _obj({
    **_envelope("objects"),
    "ts": _TS,
    "objects": {**_PER_LABEL, "description": "{label: objects present}"},
    "zones": {"type": "object", "additionalProperties": _PER_LABEL, "description": "{zone: {label: objects in it}}"},
}, ["schema", "type", "device", "ts", "objects", "zones"])


def _check_event_fields(payload: dict) -> None:
    """What one object schema cannot say: the fields each event type needs."""
    for key in _REQUIRED_BY_TYPE[payload["type"]]:
        if key not in payload:
            raise SchemaError(f"events.{key}: required field is missing (a {payload['type']!r} event has it)")


SCHEMAS: dict[str, dict] = {
    "events": EVENT,
    "objects": OBJECTS,
    "detections": DETECTIONS_V2,
    "detections_v1": DETECTIONS,
    "status": STATUS,
    "metrics": METRICS,
    "config_set": CONFIG_SET,
    "config_state": CONFIG_STATE,
    "landed": LANDED,
    "bridge_status": BRIDGE_STATUS,
}


def json_schema(kind: str) -> dict:
    """The published JSON Schema document for one payload kind (``detections``: the version-2 wire format;
    ``detections_v1``: version 1, which is also the decoded form of both)."""
    name, version = {"detections": ("detections", DETECTIONS_SCHEMA_VERSION),
                     "detections_v1": ("detections", 1)}.get(kind, (kind, SCHEMA_VERSION))
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema",
           "$id": f"https://sigmawatch.invalid/schemas/{name}.v{version}.json",
           "title": f"sigmawatch {name} message, schema version {version}"}
    doc.update(SCHEMAS[kind])
    return doc


# --------------------------------------------------------------------------- validation
def _check(value: Any, schema: dict, path: str) -> None:
    try:
        validator(schema)(value)
    except Invalid as exc:
        raise SchemaError(f"{path}{exc.path()}: {exc.reason}") from None


def _detections_schema(payload: Any) -> dict:
    version = payload.get("schema") if isinstance(payload, dict) else None
    if version == DETECTIONS_SCHEMA_VERSION:
        return DETECTIONS_V2
    if version == 1:
        return DETECTIONS
    raise SchemaError(f"detections.schema: version {version!r} is not supported; this server reads detections "
                      f"versions 1 and {DETECTIONS_SCHEMA_VERSION} (upgrade the server, or check the sender)")


def validate(payload: Any, kind: str) -> Any:
    """Check a payload as it travels (for detections: version 1 or 2 by its ``schema`` field) against the
    schema of ``kind``; return it unchanged or raise SchemaError."""
    if kind == "detections" and isinstance(payload, dict):
        _check(payload, _detections_schema(payload), kind)
        return payload
    if kind not in SCHEMAS:
        raise SchemaError(f"unknown message kind {kind!r}; expected one of {', '.join(SCHEMAS)}")
    _check(payload, SCHEMAS[kind], kind)
    if kind == "events":
        _check_event_fields(payload)
    return payload


def parse(raw: bytes | str, kind: str) -> dict:
    """Parse JSON bytes and validate them; return the payload as it was sent (for detections: version 1 or 2,
    see its ``schema``). Any failure is a SchemaError with a reason. The bridge's path: no decoded copy."""
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise SchemaError(f"{kind}: payload nests arrays/objects too deeply to be parsed") from None
    except (ValueError, TypeError) as exc:   # JSONDecodeError, UnicodeDecodeError, an integer of > 4300 digits
        raise SchemaError(f"{kind}: payload is not valid UTF-8 JSON ({str(exc)[:200]})") from None
    return validate(payload, kind)


def decode(raw: bytes | str, kind: str) -> dict:
    """:func:`parse`, then the decoded form: for detections the version-1 object shape with named fields,
    whichever version was sent (for consumers that want objects: the dashboard, the demo, tests)."""
    payload = parse(raw, kind)
    if kind == "detections" and payload["schema"] == DETECTIONS_SCHEMA_VERSION:
        return expand_detections(payload)
    return payload


def encode(payload: dict) -> bytes:
    """Compact, deterministic JSON bytes for MQTT."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=False, allow_nan=False).encode()


SCHEMA_DIR = Path(__file__).with_name("schemas")


def write_schema_files(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in SCHEMAS:
        path = directory / f"{kind}.schema.json"
        path.write_text(json.dumps(json_schema(kind), indent=2) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m edge.contract.schema --write
    if sys.argv[1:] == ["--write"]:
        for p in write_schema_files():
            print(p)
    else:
        print("usage: python -m edge.contract.schema --write", file=sys.stderr)
        sys.exit(2)
