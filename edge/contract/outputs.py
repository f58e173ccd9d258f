"""Output topics and payloads of the stream job: what dashboards subscribe to.

Dependency-free (standard library only) so the dashboard server can import it without PyFlink.
Every payload is a JSON object with ``"schema": SCHEMA_VERSION``, a ``"type"`` and a stable ``"id"``
naming its key and window: publishing the same window twice gives byte-identical JSON (no
emission timestamps inside), so a replay after a restore from checkpoint is idempotent.

Topics (``<p>`` = MQTT prefix, default ``sigmawatch``; ``<class>`` = :func:`class_key` of the label)::

    <p>/agg/device/<device>/<class>   retained  AGGREGATE     one device, one class, one window
    <p>/agg/fleet/<class>             retained  FLEET         one class over all devices, one window
    <p>/agg/health/<device>           retained  HEALTH        one device, one window
    <p>/agg/stats                     retained  STATS         job counters (dead letters, late events)
    <p>/agg/objects/<device>/<class>  retained  OBJECTS       one device, one class, one window: distinct tracks,
                                                              tracks started / ended, dwell, line crossings
    <p>/agg/present/<device>          retained  PRESENT       one device: the objects present (its agent's
                                                              latest counts in a window)
    <p>/alerts/<rule>/<device>/<class> retained ALERT         latest state of one alert (firing|cleared)

Device-level alerts use ``_all`` as the class level and fleet-level alerts ``_fleet`` as the device
level (device ids cannot start with ``_`` followed by these words in practice; see FLEET_DEVICE).
Subscribe to ``<p>/agg/#`` and ``<p>/alerts/#``; retained messages give a fresh dashboard the latest
window per key and the current state of every alert at once.

Times are Unix seconds (float). Windows are half-open ``[window_start, window_end)`` in event time
(the capture timestamp ``ts`` of the edge messages).
"""
from __future__ import annotations

import json
import re
from typing import Any

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "sigmawatch"
FLEET_DEVICE = "_fleet"       # device level of fleet-wide alert topics
ALL_CLASSES = "_all"          # class level of device-wide alert topics
_KEY_BAD = re.compile(r"[^A-Za-z0-9_-]+")


class PayloadError(ValueError):
    """A stream output payload is missing a field or has a wrong type; the message names the field."""


def _prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise PayloadError(f"MQTT topic prefix {prefix!r} must be non-empty and contain no + or #")
    return prefix


def class_key(label: str | None, class_id: int | None = None) -> str:
    """One safe topic level for a class: the label with characters outside ``[A-Za-z0-9_-]`` as ``_``.

    Falls back to ``class<id>`` when the label is empty. ``"traffic light"`` -> ``"traffic_light"``.
    """
    key = _KEY_BAD.sub("_", label or "").strip("_")
    if not key:
        key = f"class{class_id if class_id is not None else 'unknown'}"
    return key[:64]


# --------------------------------------------------------------------------- topics
def agg_device_topic(prefix: str, device: str, label: str, class_id: int | None = None) -> str:
    return f"{_prefix(prefix)}/agg/device/{device}/{class_key(label, class_id)}"


def agg_fleet_topic(prefix: str, label: str, class_id: int | None = None) -> str:
    return f"{_prefix(prefix)}/agg/fleet/{class_key(label, class_id)}"


def health_topic(prefix: str, device: str) -> str:
    return f"{_prefix(prefix)}/agg/health/{device}"


def stats_topic(prefix: str) -> str:
    return f"{_prefix(prefix)}/agg/stats"


def objects_topic(prefix: str, device: str, label: str) -> str:
    return f"{_prefix(prefix)}/agg/objects/{device}/{class_key(label)}"


def present_topic(prefix: str, device: str) -> str:
    return f"{_prefix(prefix)}/agg/present/{device}"


def alert_topic(prefix: str, rule_id: str, device: str | None, label: str | None) -> str:
    dev = device if device else FLEET_DEVICE
    cls = class_key(label) if label else ALL_CLASSES
    return f"{_prefix(prefix)}/alerts/{class_key(rule_id)}/{dev}/{cls}"


def subscriptions(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The two wildcard filters a dashboard needs."""
    p = _prefix(prefix)
    return [f"{p}/agg/#", f"{p}/alerts/#"]


def parse_output_topic(prefix: str, topic: str) -> dict[str, str]:
    """Classify an output topic: ``{"kind": "aggregate"|"fleet"|"health"|"stats"|"objects"|"present"|"alert",
    ...levels}``."""
    p = _prefix(prefix)
    if not topic.startswith(p + "/"):
        raise PayloadError(f"topic {topic!r} is not under prefix {p!r}")
    parts = topic[len(p) + 1:].split("/")
    if parts[:2] == ["agg", "device"] and len(parts) == 4:
        return {"kind": "aggregate", "device": parts[2], "class": parts[3]}
    if parts[:2] == ["agg", "fleet"] and len(parts) == 3:
        return {"kind": "fleet", "class": parts[2]}
    if parts[:2] == ["agg", "health"] and len(parts) == 3:
        return {"kind": "health", "device": parts[2]}
    if parts == ["agg", "stats"]:
        return {"kind": "stats"}
    if parts[:2] == ["agg", "objects"] and len(parts) == 4:
        return {"kind": "objects", "device": parts[2], "class": parts[3]}
    if parts[:2] == ["agg", "present"] and len(parts) == 3:
        return {"kind": "present", "device": parts[2]}
    if parts[0] == "alerts" and len(parts) == 4:
        return {"kind": "alert", "rule": parts[1], "device": parts[2], "class": parts[3]}
    raise PayloadError(f"topic {topic!r} is not a sigmawatch stream output topic")


# --------------------------------------------------------------------------- payload specs
# field -> allowed Python types; None allowed where listed with type(None).
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_WINDOW = {"window_start": _NUM, "window_end": _NUM}
_STATS = {
    "detections": (int,),            # detections of this class in the window (after dedup)
    "frames": (int,),                # frames (distinct seq) with at least one detection of this class
    "score_mean": _NUM,              # mean detection score
    "with_sigma": (int,),            # detections whose model reported sigma (SSD / plain-head models do not)
    # the sigma statistics are over the detections with sigma; null when none had any (no invented certainty)
    "sigma_mean": _OPT_NUM,          # mean of the per-detection mean sigma (sigma_mean)
    "sigma_max": _OPT_NUM,           # max of sigma_mean (robust stand-in for p95 on small windows)
    "high_sigma_share": _OPT_NUM,    # share of detections with sigma_mean >= high_sigma_threshold
    "high_sigma_threshold": _NUM,
}

_REVISED = {
    # 0 on a window's first result (when the watermark passed its end), then 1, 2, ... on every later one, which
    # frames that arrived late (within the job's allowed lateness) changed. A revision is the window's whole
    # result again, under the same id: consumers keep the highest revision per id (MQTT retained topics keep the
    # latest by themselves; the job publishes a window's revisions in order).
    "revision": (int,)}

SPECS: dict[str, dict[str, tuple]] = {
    # One device, one class, one window.  id = "<device>/<class>/<window_start_ms>"
    "aggregate": {"device": (str,), "class_id": (int,), "label": (str,), **_WINDOW, **_REVISED, **_STATS},
    # One class over all devices.  id = "_fleet/<class>/<window_start_ms>"; devices = distinct devices.
    "fleet": {"class_id": (int,), "label": (str,), **_WINDOW, **_REVISED, **_STATS, "devices": (int,)},
    # One device, one window, from all its messages (detections, metrics, status).
    #   last_seen: newest capture ts seen; frames: distinct detection seqs (after dedup);
    #   frame_rate: frames / window length; fps/dropped/outbox_depth: latest metrics values (null without
    #   metrics in the window, max within the window for sliding windows; dropped is the agent's
    #   cumulative dropped-frame counter);
    #   state: latest status state ("online"/"offline") or null; clock_offset_s: the bridge's receive time minus
    #   the capture time of the latest metrics message (the network delay when the device clock is right; a
    #   device clock ahead by more than the job's tolerance has its frames dead-lettered as clock skew) or null.
    #   id = "<device>/<window_start_ms>"
    #   late_frames: of the frames, those that reached the job behind the watermark (added to the window: its
    #   result is revised if it had been published already)
    "health": {"device": (str,), **_WINDOW, **_REVISED, "last_seen": _NUM, "frames": (int,), "late_frames": (int,),
               "frame_rate": _NUM, "fps": _OPT_NUM, "dropped": (int, type(None)),
               "outbox_depth": (int, type(None)), "state": (str, type(None)), "clock_offset_s": _OPT_NUM},
    # Job counters per processing-time window: dead letters (malformed / schema-invalid messages, frames of a
    # device whose clock is ahead, frames too late: by reason), of them too_late (beyond the allowed lateness),
    # and late (frames added to windows that had fired: their results were revised).  id = "stats/<window_start_ms>"
    "stats": {**_WINDOW, "dead_letters": (int,), "too_late": (int,), "late": (int,), "reasons": (dict,)},
    # Objects of one device and class (label) in one window, from its agent's tracker (edge.objects), for windows
    # with a tracked detection or a track event of that label.  id = "objects/<device>/<class>/<window_start_ms>"
    #   tracks: distinct track ids on the window's detections of this label (detections carry the confirmed
    #     track's id; an agent with tracking.publish: events_only sends no detections, so 0 there);
    #   started / ended: track events "new" (a track was confirmed) / "end" (a track ended) whose capture time
    #     ts is in the window;
    #   dwell_mean_s / dwell_p50_s / dwell_max_s: over the "end" events counted in ended, the track's duration
    #     end - start (first to last detection, s); p50 is the median (the mean of the two middle ones for an
    #     even count); null when ended is 0;
    #   crossings: {line: {"in": n, "out": n}}: "crossed" events of this label in the window, per counting line
    #     and direction (in = from the left of the line's start -> end to its right, as seen on screen).
    "objects": {"device": (str,), "label": (str,), **_WINDOW, **_REVISED, "tracks": (int,), "started": (int,),
                "ended": (int,), "dwell_mean_s": _OPT_NUM, "dwell_p50_s": _OPT_NUM, "dwell_max_s": _OPT_NUM,
                "crossings": (dict,)},
    # Objects present at one device: the latest object counts its agent published in the window (the agent
    # publishes them when they change: live confirmed tracks per label and per zone). Only for windows in which
    # they changed; the retained topic holds the latest.  id = "present/<device>/<window_start_ms>"
    #   as_of: capture time of those counts; objects: {label: n}; zones: {zone: {label: n}}.
    "present": {"device": (str,), **_WINDOW, **_REVISED, "as_of": _NUM, "objects": (dict,), "zones": (dict,)},
    # Latest state of one alert.  id = "<rule>:<device|_fleet>:<class|_all>" is stable over its life;
    #   state: "firing" or "cleared"; since: ts the current firing episode started (kept on clear);
    #   ts: event/processing time of this transition; value/threshold: the measured value and the rule's
    #   limit; kind: class_count | uncertainty_spike | device_silent; severity: info|warning|critical.
    #   revised: the transition was decided on a window's revision (late frames changed it)
    "alert": {"rule": (str,), "kind": (str,), "severity": (str,), "state": (str,),
              "device": (str, type(None)), "label": (str, type(None)), "since": _NUM, "ts": _NUM,
              "value": _OPT_NUM, "threshold": _OPT_NUM, "message": (str,), "revised": (bool,)},
}
ALERT_STATES = ("firing", "cleared")
ALERT_KINDS = ("class_count", "uncertainty_spike", "device_silent", "clock_skew")
SEVERITIES = ("info", "warning", "critical")


def window_ms(t: float) -> int:
    return int(round(float(t) * 1000))


def payload_id(kind: str, fields: dict[str, Any]) -> str:
    """The stable id of a payload, derived from its key fields and window."""
    if kind == "aggregate":
        return f"{fields['device']}/{class_key(fields['label'], fields['class_id'])}/{window_ms(fields['window_start'])}"
    if kind == "fleet":
        return f"{FLEET_DEVICE}/{class_key(fields['label'], fields['class_id'])}/{window_ms(fields['window_start'])}"
    if kind == "health":
        return f"{fields['device']}/{window_ms(fields['window_start'])}"
    if kind == "stats":
        return f"stats/{window_ms(fields['window_start'])}"
    if kind == "objects":
        return f"objects/{fields['device']}/{class_key(fields['label'])}/{window_ms(fields['window_start'])}"
    if kind == "present":
        return f"present/{fields['device']}/{window_ms(fields['window_start'])}"
    if kind == "alert":
        return alert_id(fields["rule"], fields.get("device"), fields.get("label"))
    raise PayloadError(f"unknown payload kind {kind!r}; expected one of {', '.join(SPECS)}")


def alert_id(rule_id: str, device: str | None, label: str | None) -> str:
    return f"{rule_id}:{device or FLEET_DEVICE}:{class_key(label) if label else ALL_CLASSES}"


def validate(payload: Any, kind: str | None = None) -> dict:
    """Check an output payload (decoded JSON); return it or raise PayloadError naming the field."""
    if not isinstance(payload, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(payload).__name__}")
    kind = kind or payload.get("type")
    if kind not in SPECS:
        raise PayloadError(f"type: {kind!r} is not one of {', '.join(SPECS)}")
    if payload.get("schema") != SCHEMA_VERSION:
        raise PayloadError(f"{kind}.schema: expected {SCHEMA_VERSION}, got {payload.get('schema')!r}")
    if payload.get("type") != kind:
        raise PayloadError(f"{kind}.type: expected {kind!r}, got {payload.get('type')!r}")
    spec = SPECS[kind]
    allowed = set(spec) | {"schema", "type", "id"}
    for key in payload:
        if key not in allowed:
            raise PayloadError(f"{kind}.{key}: unknown field (allowed: {', '.join(sorted(allowed))})")
    for key, types in spec.items():
        if key not in payload:
            raise PayloadError(f"{kind}.{key}: required field is missing")
        value = payload[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise PayloadError(f"{kind}.{key}: expected {names}, got {type(value).__name__} {value!r:.60}")
    if kind == "alert":
        if payload["state"] not in ALERT_STATES:
            raise PayloadError(f"alert.state: {payload['state']!r} is not one of {ALERT_STATES}")
        if payload["severity"] not in SEVERITIES:
            raise PayloadError(f"alert.severity: {payload['severity']!r} is not one of {SEVERITIES}")
    if payload.get("id") != payload_id(kind, payload):
        raise PayloadError(f"{kind}.id: expected {payload_id(kind, payload)!r}, got {payload.get('id')!r}")
    return payload


def build(payload_type: str, /, **fields: Any) -> dict:
    """Build and validate one payload: ``build("aggregate", device="cam1", class_id=0, ...)``.

    Floats are rounded to 6 decimals so that a replayed window serializes identically.
    """
    clean = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in fields.items()}
    payload = {"schema": SCHEMA_VERSION, "type": payload_type, "id": payload_id(payload_type, clean), **clean}
    return validate(payload, payload_type)


def topic_for(prefix: str, payload: dict) -> str:
    """The MQTT topic a validated payload is published on."""
    kind = payload["type"]
    if kind == "aggregate":
        return agg_device_topic(prefix, payload["device"], payload["label"], payload["class_id"])
    if kind == "fleet":
        return agg_fleet_topic(prefix, payload["label"], payload["class_id"])
    if kind == "health":
        return health_topic(prefix, payload["device"])
    if kind == "stats":
        return stats_topic(prefix)
    if kind == "objects":
        return objects_topic(prefix, payload["device"], payload["label"])
    if kind == "present":
        return present_topic(prefix, payload["device"])
    if kind == "alert":
        return alert_topic(prefix, payload["rule"], payload["device"], payload["label"])
    raise PayloadError(f"unknown payload kind {kind!r}")


def encode(payload: dict) -> bytes:
    """Deterministic compact JSON bytes (sorted keys) for MQTT and JSON-lines files."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
