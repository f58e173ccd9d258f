"""What the dashboard knows: the latest state per device plus recent aggregates and alerts.

Pure Python, no MQTT and no HTTP: :class:`DashboardState` turns one MQTT message
``(topic, payload bytes)`` into one browser event (a dict) and remembers enough to give a
browser that connects later a complete snapshot. Device messages are checked against
``edge.contract.schema``; aggregate and alert messages are taken as JSON objects (their exact fields are
documented and validated by ``edge/contract/outputs.py``), kept by their stable ``id`` so a
retained or replayed window is counted once. A message that is not valid JSON or
does not match its schema becomes an ``invalid`` event naming the reason: it is shown on the
page, never dropped silently.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable

from edge.contract import outputs, schema

MAX_AGGREGATES = 5000
MAX_ALERTS = 100
MAX_INVALID = 20

Listener = Callable[[dict], None]


def subscriptions(prefix: str) -> list[str]:
    """Every topic filter the dashboard needs under ``prefix``."""
    prefix = prefix.strip("/")
    return [f"{prefix}/+/status", f"{prefix}/+/metrics", f"{prefix}/+/detections",
            *outputs.subscriptions(prefix)]


class DashboardState:
    """Thread-safe latest-state store and event fan-out.

    ``handle(topic, payload)`` is called from the MQTT thread; listeners (one per browser
    connection) receive every event; ``snapshot()`` is what a new browser starts from.
    """

    def __init__(self, prefix: str = "sigmawatch", clock: Callable[[], float] = time.time):
        self.prefix = prefix.strip("/")
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
        self.counters = {"messages": 0, "invalid": 0, "detection_messages": 0, "detections": 0,
                         "aggregates": 0, "aggregated_detections": 0, "alerts": 0, "alerts_firing": 0}
        self.broker = {"connected": False, "url": "", "error": ""}

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

    def handle(self, topic: str, payload: bytes) -> dict:
        """Turn one MQTT message into an event, remember it, send it to every listener."""
        event = self._classify(topic, payload)
        with self._lock:
            self.counters["messages"] += 1
            self._remember(event)
        self._emit(event)
        return event

    def _classify(self, topic: str, payload: bytes) -> dict:
        received = self._clock()
        base = {"topic": topic, "received": received, "bytes": len(payload)}
        if topic.startswith(self._outputs_root):
            try:
                where = outputs.parse_output_topic(self.prefix, topic)
                body = json.loads(payload)
                outputs.validate(body, "alert" if where["kind"] == "alert" else where["kind"])
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return {**base, "kind": "invalid", "error": f"not valid UTF-8 JSON ({exc})"}
            except outputs.PayloadError as exc:
                return {**base, "kind": "invalid", "error": str(exc)}
            return {**base, "kind": where["kind"], "payload": body}
        try:
            device, kind = schema.parse_topic(self.prefix, topic)
            if kind not in ("status", "metrics", "detections"):
                return {**base, "kind": "ignored"}
            body = schema.decode(payload, kind)
        except schema.SchemaError as exc:
            return {**base, "kind": "invalid", "error": str(exc)}
        if body["device"] != device:
            return {**base, "kind": "invalid",
                    "error": f"payload device {body['device']!r} does not match topic device {device!r}"}
        return {**base, "kind": kind, "device": device, "payload": body}

    def _remember(self, event: dict) -> None:
        kind = event["kind"]
        if kind in ("status", "metrics", "detections"):
            dev = self.devices.setdefault(event["device"], {"detection_messages": 0, "detections_count": 0})
            dev[kind] = event["payload"]
            dev[kind + "_received"] = event["received"]
            if kind == "detections":
                dev["detection_messages"] += 1
                dev["detections_count"] += len(event["payload"]["detections"])
                self.counters["detection_messages"] += 1
                self.counters["detections"] += len(event["payload"]["detections"])
        elif kind in ("aggregate", "fleet"):
            store = self.aggregates if kind == "aggregate" else self.fleet
            key = event["payload"]["id"]
            old = store.get(key)
            if old and old["payload"]["revision"] > event["payload"]["revision"]:
                return                  # an older revision of a window (a retained message, a reconnect)
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

    # ------------------------------------------------------------------ output
    def snapshot(self) -> dict:
        with self._lock:
            return {
                "kind": "snapshot",
                "prefix": self.prefix,
                "broker": dict(self.broker),
                "devices": json.loads(json.dumps(self.devices)),
                "aggregates": list(self.aggregates.values()),
                "fleet": list(self.fleet.values()),
                "health": dict(self.health),
                "stats": self.stats,
                "alerts": list(self.alerts.values()),
                "invalid": list(self.invalid),
                "counters": dict(self.counters),
            }
