"""What the dashboard knows: the latest state per device plus recent aggregates and alerts.

Pure Python, no MQTT and no HTTP: :class:`DashboardState` turns one MQTT message
``(topic, payload bytes)`` into one browser event (a dict) and remembers enough to give a
browser that connects later a complete snapshot. Device messages are checked against
``edge.contract.schema``; aggregate and alert messages are taken as JSON objects (their exact fields are
documented and validated by ``edge/contract/outputs.py``), kept by their stable ``id`` so a
retained or replayed window is counted once. A message that is not valid JSON or
does not match its schema becomes an ``invalid`` event naming the reason: it is shown on the
page, never dropped silently.

Devices come and go: each device's ``last_seen`` is the receive time of its newest message, or for a
retained message (an old status the broker kept) the time the device wrote into it. A device not heard
from for ``ViewSettings.forget_after_s`` is dropped (:meth:`DashboardState.expire`, run every second by
the server), and a device whose retained status was cleared (an empty retained message, how an operator
retires a camera) is dropped at once; both become ``device_removed`` events.

Tracked objects (``dashboard.tracks``): detections with track ids, the agent's events and its retained object
counts keep each camera's live tracks and recent events; every change becomes a ``tracks`` event after the
message that caused it, and the snapshot carries them for a browser that connects later.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable

from dashboard.tracks import TrackBoard
from dashboard.view import ViewSettings
from edge.contract import outputs, schema

MAX_AGGREGATES = 5000
MAX_ALERTS = 100
MAX_INVALID = 20
MAX_REMOVED = 5
DEVICE_PARTS = ("status", "metrics", "detections", "events", "objects")
KEPT_PARTS = ("status", "metrics", "detections", "objects")      # the latest of each is kept per device

Listener = Callable[[dict], None]


def subscriptions(prefix: str) -> list[str]:
    """Every topic filter the dashboard needs under ``prefix``."""
    prefix = prefix.strip("/")
    return [f"{prefix}/+/status", f"{prefix}/+/metrics", f"{prefix}/+/detections", f"{prefix}/+/events",
            f"{prefix}/+/objects", *outputs.subscriptions(prefix)]


class DashboardState:
    """Thread-safe latest-state store and event fan-out.

    ``handle(topic, payload)`` is called from the MQTT thread; listeners (one per browser
    connection) receive every event; ``snapshot()`` is what a new browser starts from.
    """

    def __init__(self, prefix: str = "sigmawatch", clock: Callable[[], float] = time.time,
                 view: ViewSettings | None = None):
        self.prefix = prefix.strip("/")
        self.view = view or ViewSettings()
        self._outputs_root = (f"{self.prefix}/agg/", f"{self.prefix}/alerts/")
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.devices: dict[str, dict[str, Any]] = {}
        self.aggregates: OrderedDict[str, dict] = OrderedDict()  # id -> event (device/class/window)
        self.fleet: OrderedDict[str, dict] = OrderedDict()
        self.health: dict[str, dict] = {}                          # device -> latest health event
        self.stats: dict | None = None
        self.alerts: OrderedDict[str, dict] = OrderedDict()       # alert id -> latest event
        self.invalid: deque[dict] = deque(maxlen=MAX_INVALID)
        self.removed: deque[dict] = deque(maxlen=MAX_REMOVED)      # the last device_removed events
        self.counters = {"messages": 0, "invalid": 0, "detection_messages": 0, "detections": 0,
                         "aggregates": 0, "aggregated_detections": 0, "alerts": 0, "alerts_firing": 0,
                         "devices_removed": 0, "events": 0}
        self.broker = {"connected": False, "url": "", "error": ""}
        self.tracks = TrackBoard(self.view.track_timeout_s)

    # ------------------------------------------------------------------ listeners
    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _emit(self, event: dict) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    # ------------------------------------------------------------------ input
    def set_broker(self, connected: bool, url: str = "", error: str = "") -> None:
        with self._lock:
            self.broker = {"connected": connected, "url": url or self.broker["url"], "error": error}
            event = {"kind": "broker", **self.broker}
        self._emit(event)

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> dict:
        """Turn one MQTT message into an event, remember it, send it to every listener (then the
        ``device_removed`` events it caused). ``retained``: the broker kept it (paho's ``msg.retain``)."""
        event = self._classify(topic, payload, retained)
        with self._lock:
            self.counters["messages"] += 1
            follow = self._remember(event)
        self._emit(event)
        for extra in follow:
            self._emit(extra)
        return event

    def expire(self) -> list[str]:
        """Drop every device not heard from for ``forget_after_s``; returns their ids (each also a
        ``device_removed`` event)."""
        now = self._clock()
        with self._lock:
            gone = [self._remove_device(dev, self._forgotten_reason(dev, now))
                    for dev, d in list(self.devices.items()) if now - d["last_seen"] > self.view.forget_after_s]
            stale_tracks = self.tracks.expire(now)
        for event in gone + stale_tracks:
            self._emit(event)
        return [e["device"] for e in gone]

    def _forgotten_reason(self, device: str, now: float) -> str:
        age = now - self.devices[device]["last_seen"]
        return (f"not heard from for {age:.0f} s (longer than forget-after, {self.view.forget_after_s:g} s)")

    def _remove_device(self, device: str, reason: str, cause: str = "forgotten") -> dict:
        """Forget ``device`` (lock held); returns the event that says so. ``cause``: forgotten | cleared."""
        self.devices.pop(device, None)
        self.health.pop(device, None)
        self.tracks.forget(device)
        self.counters["devices_removed"] += 1
        event = {"kind": "device_removed", "device": device, "reason": reason, "cause": cause,
                 "received": self._clock()}
        self.removed.append(event)
        return event

    def _classify(self, topic: str, payload: bytes, retained: bool = False) -> dict:
        received = self._clock()
        base = {"topic": topic, "received": received, "bytes": len(payload), "retained": retained}
        if topic.startswith(self._outputs_root):
            try:
                where = outputs.parse_output_topic(self.prefix, topic)
                if not payload:       # a retained output cleared (empty retained message)
                    return {**base, "kind": "cleared", "part": where["kind"], "device": where.get("device")}
                body = json.loads(payload)
                outputs.validate(body, "alert" if where["kind"] == "alert" else where["kind"])
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return {**base, "kind": "invalid", "error": f"not valid UTF-8 JSON ({exc})"}
            except outputs.PayloadError as exc:
                return {**base, "kind": "invalid", "error": str(exc)}
            return {**base, "kind": where["kind"], "payload": body}
        try:
            device, kind = schema.parse_topic(self.prefix, topic)
            if kind not in DEVICE_PARTS:
                return {**base, "kind": "ignored"}
            if not payload:           # an empty (retained) message clears what the topic held
                return {**base, "kind": "cleared", "part": kind, "device": device}
            body = schema.decode(payload, kind)
        except schema.SchemaError as exc:
            return {**base, "kind": "invalid", "error": str(exc)}
        if body["device"] != device:
            return {**base, "kind": "invalid",
                    "error": f"payload device {body['device']!r} does not match topic device {device!r}"}
        # a live message is fresh now; a retained one is as old as the time the device wrote into it
        # (never newer than now, should the device's clock be ahead)
        seen = min(received, float(body["ts"])) if retained else received
        return {**base, "kind": kind, "device": device, "payload": body, "seen": seen}

    def _remember(self, event: dict) -> list[dict]:
        """Keep what ``event`` says (lock held); returns the further events it caused (devices removed)."""
        kind = event["kind"]
        if kind in DEVICE_PARTS:
            dev = self.devices.setdefault(event["device"], {"detection_messages": 0, "detections_count": 0,
                                                             "last_seen": event["seen"]})
            if kind in KEPT_PARTS:
                dev[kind] = event["payload"]
                dev[kind + "_received"] = event["received"]
            dev["last_seen"] = event["last_seen"] = max(dev["last_seen"], event["seen"])
            if event["received"] - dev["last_seen"] > self.view.forget_after_s:    # a retained status of a
                event["expired"] = True                                            # device that left long ago
                return [self._remove_device(event["device"],
                                            self._forgotten_reason(event["device"], event["received"]))]
            if kind == "detections":
                dev["detection_messages"] += 1
                dev["detections_count"] += len(event["payload"]["detections"])
                self.counters["detection_messages"] += 1
                self.counters["detections"] += len(event["payload"]["detections"])
            return self._track(event)
        elif kind == "cleared":
            return self._clear(event)
        elif kind in ("aggregate", "fleet"):
            store = self.aggregates if kind == "aggregate" else self.fleet
            key = event["payload"]["id"]
            old = store.get(key)
            if old and old["payload"]["revision"] > event["payload"]["revision"]:
                return []               # an older revision of a window (a retained message, a reconnect)
            if kind == "aggregate":
                self.counters["aggregated_detections"] += (
                    event["payload"]["detections"] - (old["payload"]["detections"] if old else 0))
                self.counters["aggregates"] += 0 if old else 1
            store[key] = event
            store.move_to_end(key)
            while len(store) > MAX_AGGREGATES:
                store.popitem(last=False)
        elif kind == "health":
            # the device's newest window; a revision of an older window does not replace it
            p, old = event["payload"], self.health.get(event["payload"]["device"])
            if old is None or (p["window_start"], p["revision"]) >= (old["payload"]["window_start"],
                                                                     old["payload"]["revision"]):
                self.health[p["device"]] = event
        elif kind == "stats":
            self.stats = event
        elif kind == "alert":
            key = event["payload"]["id"]
            self.alerts[key] = event
            self.alerts.move_to_end(key)
            while len(self.alerts) > MAX_ALERTS:
                self.alerts.popitem(last=False)
            self.counters["alerts"] += 1
            self.counters["alerts_firing"] = sum(a["payload"]["state"] == "firing" for a in self.alerts.values())
        elif kind == "invalid":
            self.invalid.append(event)
            self.counters["invalid"] += 1
        return []

    def _clear(self, event: dict) -> list[dict]:
        """An empty retained message: a cleared status retires the device (it disappears); a cleared
        metrics/detections topic drops that part; a cleared health topic the job's view of the device; a
        cleared alert topic that alert. Cleared aggregates stay: they are history, kept by window id."""
        part, device = event["part"], event.get("device")
        if part == "status" and device in self.devices:
            return [self._remove_device(device, "its retained status was cleared (empty retained message)", "cleared")]
        if part in DEVICE_PARTS and device in self.devices:
            self.devices[device].pop(part, None)
            if part == "objects":           # the camera no longer reports objects: neither do its tracks
                return [d for d in [self.tracks.offline(device)] if d]
        elif part == "health":
            self.health.pop(device, None)
        elif part == "alert":
            for key in [k for k, a in self.alerts.items() if a["topic"] == event["topic"]]:
                del self.alerts[key]
            self.counters["alerts_firing"] = sum(a["payload"]["state"] == "firing" for a in self.alerts.values())
        return []

    def _track(self, event: dict) -> list[dict]:
        """The ``tracks`` event a device message causes (lock held), if it changed a track or the log."""
        kind, device, payload = event["kind"], event["device"], event["payload"]
        if kind == "detections":
            delta = self.tracks.detections(device, payload, event["received"])
        elif kind == "events":
            self.counters["events"] += 1
            delta = self.tracks.event(device, payload, event["received"])
        elif kind == "objects":
            delta = self.tracks.objects(device, payload)
        elif kind == "status" and payload["state"] == "offline":
            delta = self.tracks.offline(device)
        else:
            delta = None
        return [delta] if delta else []

    # ------------------------------------------------------------------ output
    def snapshot(self) -> dict:
        with self._lock:
            return {
                "kind": "snapshot",
                "prefix": self.prefix,
                "now": self._clock(),             # the page measures "last seen" on the server's clock
                "view": self.view.model_dump(),
                "broker": dict(self.broker),
                "devices": json.loads(json.dumps(self.devices)),
                "aggregates": list(self.aggregates.values()),
                "fleet": list(self.fleet.values()),
                "health": dict(self.health),
                "stats": self.stats,
                "alerts": list(self.alerts.values()),
                "invalid": list(self.invalid),
                "removed": list(self.removed),
                "counters": dict(self.counters),
                "tracks": json.loads(json.dumps(self.tracks.snapshot())),
            }
