"""Home Assistant MQTT discovery for sigmawatch devices (optional).

Home Assistant's MQTT integration creates entities from retained JSON configs published on
``<discovery_prefix>/<component>/<node_id>/<object_id>/config``. For every device seen this module
publishes:

- a ``binary_sensor`` with ``device_class: connectivity`` reading the device's own status topic
  (``<prefix>/<device>/status``, ``{"state": "online"|"offline"}``, retained with a last will by
  the edge agent), so HA shows the camera as connected/disconnected;

and for every (device, class) that the Flink job aggregates (``edge.contract.outputs`` aggregate topic):

- a ``sensor`` "<label> count": detections of that class in the latest window;
- a ``sensor`` "<label> mean σ": the window's mean predicted σ̄ (the uncertainty the model reports).

and, like Frigate's, for every camera that tracks objects (``edge.objects``), read straight from the agent's retained
object counts (``<prefix>/<device>/objects``, published only when a count changes):

- a ``sensor`` "<label> present" per label the camera reports (in its counts or its events): the objects of that
  label present now (0 when the counts do not name it);
- a ``binary_sensor`` "<zone> occupied" (``device_class: occupancy``) per zone (from the agent's status, its
  counts, its events): on while any object is in the zone; the objects in it per label are its attributes.

The class and object sensors use the device's status topic as their availability, so they turn
"unavailable" in HA when the camera goes offline. All entities of one camera share one HA device
(``identifiers: ["sigmawatch_<device>"]``). Publish with ``sigmawatch-dashboard --homeassistant`` (or ``python -m dashboard.homeassistant``);
remove everything with ``--remove`` (empty retained configs).

Devices that left: a device whose retained status was cleared (an empty retained message, how a camera is
retired) has its entities removed from Home Assistant too (empty retained configs for what was published for
it); a retained status older than the dashboard's forget-after creates no entities. A device that is merely
silent keeps its entities (HA shows them unavailable once its status says offline). A camera whose retained
object counts are cleared, or whose status says tracking is off, loses its object and zone entities; a zone that
its status no longer lists (renamed, deleted) loses its binary sensor.

Templates: HA renders ``value_template`` with Jinja2 and ``value_json`` (the parsed payload). The connectivity and
class sensors read a plain ``{{ value_json.<field> }}``; the object templates use ``dict.get`` with a default (a label or zone the counts do not name is 0 / off), with the name as a quoted
Jinja string (:func:`jinja_string`), so any label the contract allows works.
"""
from __future__ import annotations

import hashlib
import json
import logging
import signal
import sys
import threading

from edge.contract import outputs, schema
from edge.contract.cli import ArgumentParser, add_mqtt_arguments, run
from edge.contract.mqtt import settings_from_flags

log = logging.getLogger(__name__)

DEFAULT_DISCOVERY_PREFIX = "homeassistant"
ORIGIN = {"name": "sigmawatch", "sw_version": "0.1.0"}


def _node(device: str) -> str:
    return f"sigmawatch_{schema.check_device_id(device)}"


def _device_block(device: str, model: str | None = None, sw_version: str | None = None) -> dict:
    block = {"identifiers": [_node(device)], "name": f"sigmawatch {device}", "manufacturer": "sigmawatch",
             "model": model or "edge camera"}
    if sw_version:
        block["sw_version"] = sw_version
    return block


def _availability(prefix: str, device: str) -> list[dict]:
    return [{"topic": schema.topic(prefix, device, "status"), "value_template": "{{ value_json.state }}",
             "payload_available": "online", "payload_not_available": "offline"}]


def device_configs(device: str, *, prefix: str = outputs.DEFAULT_PREFIX,
                   discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX, model: str | None = None,
                   sw_version: str | None = None) -> list[tuple[str, dict]]:
    """Discovery messages for one device: its connectivity binary_sensor."""
    node = _node(device)
    config = {
        "name": "Connectivity",
        "unique_id": f"{node}_connectivity",
        "device_class": "connectivity",
        "state_topic": schema.topic(prefix, device, "status"),
        "value_template": "{{ value_json.state }}",
        "payload_on": "online",
        "payload_off": "offline",
        "json_attributes_topic": schema.topic(prefix, device, "status"),
        "qos": 1,
        "device": _device_block(device, model, sw_version),
        "origin": ORIGIN,
    }
    return [(f"{discovery_prefix}/binary_sensor/{node}/connectivity/config", config)]


def class_configs(device: str, label: str, class_id: int | None = None, *, prefix: str = outputs.DEFAULT_PREFIX,
                  discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX, model: str | None = None,
                  sw_version: str | None = None) -> list[tuple[str, dict]]:
    """Discovery messages for one (device, class): count and mean-σ sensors on the aggregate topic."""
    node = _node(device)
    key = outputs.class_key(label, class_id)
    state_topic = outputs.agg_device_topic(prefix, device, label, class_id)
    common = {
        "state_topic": state_topic,
        "availability": _availability(prefix, device),
        "json_attributes_topic": state_topic,
        "state_class": "measurement",
        "qos": 1,
        "device": _device_block(device, model, sw_version),
        "origin": ORIGIN,
    }
    count = {"name": f"{label} count", "unique_id": f"{node}_{key}_count",
             "value_template": "{{ value_json.detections }}", "unit_of_measurement": "detections",
             "icon": "mdi:counter", **common}
    sigma = {"name": f"{label} mean σ", "unique_id": f"{node}_{key}_sigma",
             "value_template": "{{ value_json.sigma_mean }}", "suggested_display_precision": 3,
             "icon": "mdi:sigma", **common}
    return [(f"{discovery_prefix}/sensor/{node}/{key}_count/config", count),
            (f"{discovery_prefix}/sensor/{node}/{key}_sigma/config", sigma)]


def jinja_string(text: str) -> str:
    """``text`` as a Jinja2 string literal (double quotes; Jinja reads backslash escapes like Python)."""
    return json.dumps(text, ensure_ascii=False)


def name_key(name: str) -> str:
    """One topic level / unique-id part for a label or zone name: ``outputs.class_key``, plus a short hash of the
    name when characters had to be replaced, so "a b" and "a_b" stay two entities."""
    key = outputs.class_key(name)
    if key != name:
        key = f"{key[:55]}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"
    return key


def _objects_common(device: str, prefix: str, model: str | None, sw_version: str | None) -> dict:
    return {"state_topic": schema.topic(prefix, device, "objects"), "availability": _availability(prefix, device),
            "qos": 1, "device": _device_block(device, model, sw_version), "origin": ORIGIN}


def object_configs(device: str, label: str, *, prefix: str = outputs.DEFAULT_PREFIX,
                   discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX, model: str | None = None,
                   sw_version: str | None = None) -> list[tuple[str, dict]]:
    """Discovery for one (camera, label): "<label> present", the objects of that label the agent tracks now."""
    node, key = _node(device), name_key(label)
    config = {"name": f"{label} present", "unique_id": f"{node}_{key}_present",
              "value_template": f"{{{{ value_json.objects.get({jinja_string(label)}, 0) }}}}",
              "unit_of_measurement": "objects", "state_class": "measurement", "icon": "mdi:eye",
              **_objects_common(device, prefix, model, sw_version)}
    return [(f"{discovery_prefix}/sensor/{node}/{key}_present/config", config)]


def zone_configs(device: str, zone: str, *, prefix: str = outputs.DEFAULT_PREFIX,
                 discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX, model: str | None = None,
                 sw_version: str | None = None) -> list[tuple[str, dict]]:
    """Discovery for one (camera, zone): "<zone> occupied", on while any tracked object is in it."""
    node, key, z = _node(device), name_key(zone), jinja_string(zone)
    config = {"name": f"{zone} occupied", "unique_id": f"{node}_zone_{key}",
              "device_class": "occupancy",
              "value_template": f"{{{{ 'ON' if value_json.zones.get({z}) else 'OFF' }}}}",
              "payload_on": "ON", "payload_off": "OFF",
              "json_attributes_topic": schema.topic(prefix, device, "objects"),
              "json_attributes_template": f"{{{{ value_json.zones.get({z}, {{}}) | tojson }}}}",
              **_objects_common(device, prefix, model, sw_version)}
    return [(f"{discovery_prefix}/binary_sensor/{node}/zone_{key}/config", config)]


def _status_tracking(payload: dict) -> dict | None:
    """The tracking part of an agent's status (``config.tracking``: enabled, publish, zones, lines), if it says."""
    tracking = (payload.get("config") or {}).get("tracking")
    if not isinstance(tracking, dict) or not isinstance(tracking.get("zones", []), list):
        return None
    return tracking


def _event_zones(payload: dict) -> set[str]:
    zones = set(payload.get("zones", [])) | set(payload.get("entered_zones", []))
    if "zone" in payload:
        zones.add(payload["zone"])
    return zones


class DiscoveryPublisher:
    """Listens to a DashboardState and publishes discovery configs (retained) for new devices/classes."""

    def __init__(self, client, state, *, discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX, remove: bool = False):
        self.client = client
        self.prefix = state.prefix
        self.discovery_prefix = discovery_prefix.strip("/")
        self.remove = remove
        self.published: dict[str, dict | None] = {}  # config topic -> payload sent
        self._lock = threading.Lock()
        self._models: dict[str, str] = {}
        self._versions: dict[str, str] = {}      # the agent's version, from its status (metrics do not say it)
        self.state = state
        state.add_listener(self.on_event)

    def close(self) -> None:
        self.state.remove_listener(self.on_event)

    def on_event(self, event: dict) -> None:
        kind = event.get("kind")
        if event.get("expired"):          # a retained status of a device gone longer than forget-after
            return
        if kind == "device_removed" and event.get("cause") == "cleared":
            self._retire(event["device"])
        elif kind == "cleared" and event.get("part") == "objects":
            self._retire(event["device"], objects_only=True, why="its object counts were cleared")
        elif kind in ("objects", "events"):
            self._objects(event["device"], event["payload"])
        elif kind in ("status", "detections", "metrics"):
            device = event["device"]
            model = (event["payload"].get("model") or {}).get("id")
            if model:
                self._models[device] = model
            if event["payload"].get("version"):
                self._versions[device] = event["payload"]["version"]
            self._send(device_configs(device, prefix=self.prefix, discovery_prefix=self.discovery_prefix,
                                      model=self._models.get(device),
                                      sw_version=self._versions.get(device)))
            tracking = _status_tracking(event["payload"]) if kind == "status" else None
            if tracking is not None:
                self._tracking(device, tracking)
        elif kind == "aggregate":
            p = event["payload"]
            self._send(class_configs(p["device"], p["label"], p["class_id"], prefix=self.prefix,
                                     discovery_prefix=self.discovery_prefix, model=self._models.get(p["device"])))

    def _objects(self, device: str, payload: dict) -> None:
        """Counts or an event: a sensor for every label, a binary sensor for every zone they name."""
        if payload["type"] == "objects":
            labels = set(payload["objects"])
            zones = set(payload["zones"])
        else:
            labels, zones = {payload["label"]}, _event_zones(payload)
        where = self._where(device)
        for label in sorted(labels):
            self._send(object_configs(device, label, **where))
        for zone in sorted(zones):
            self._send(zone_configs(device, zone, **where))

    def _tracking(self, device: str, tracking: dict) -> None:
        """The agent's status names its zones: one binary sensor each; a zone it no longer has loses its sensor;
        tracking off: no object entities at all."""
        if not tracking.get("enabled", True):
            self._retire(device, objects_only=True, why="its status says tracking is off")
            return
        zones = {z for z in tracking.get("zones", []) if isinstance(z, str)}
        where = self._where(device)
        keep = {topic for zone in zones for topic, _ in zone_configs(device, zone, **where)}
        stale = f"{self.discovery_prefix}/binary_sensor/{_node(device)}/zone_"
        self._unpublish([t for t in self._live_topics() if t.startswith(stale) and t not in keep],
                        "the camera's status no longer lists that zone")
        for zone in sorted(zones):
            self._send(zone_configs(device, zone, **where))

    def _where(self, device: str) -> dict:
        return dict(prefix=self.prefix, discovery_prefix=self.discovery_prefix, model=self._models.get(device),
                    sw_version=self._versions.get(device))

    def _live_topics(self) -> list[str]:
        with self._lock:
            return [t for t, cfg in self.published.items() if cfg is not None]

    def _retire(self, device: str, objects_only: bool = False, why: str = "the device's status was cleared") -> None:
        """Remove the entities published for ``device`` (empty retained configs); they come back if it does.
        ``objects_only``: only its "present" sensors and zone binary sensors."""
        node = f"/{_node(device)}/"
        topics = [t for t in self._live_topics() if node in t and (
            not objects_only or (t.startswith(f"{self.discovery_prefix}/sensor/") and t.endswith("_present/config"))
            or t.startswith(f"{self.discovery_prefix}/binary_sensor/{_node(device)}/zone_"))]
        self._unpublish(topics, why)

    def _unpublish(self, topics: list[str], why: str) -> None:
        with self._lock:
            topics = [t for t in topics if self.published.pop(t, None) is not None]
        for topic in topics:
            self.client.publish(topic, b"", qos=1, retain=True)
            log.info("removed Home Assistant discovery %s (%s)", topic, why)

    def _send(self, messages: list[tuple[str, dict]]) -> None:
        for topic, config in messages:
            with self._lock:
                if topic in self.published and (self.remove or self.published[topic] == config):
                    continue
                self.published[topic] = None if self.remove else config
            payload = b"" if self.remove else json.dumps(config, ensure_ascii=False).encode()
            self.client.publish(topic, payload, qos=1, retain=True)
            log.info("%s Home Assistant discovery %s", "removed" if self.remove else "published", topic)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m dashboard.homeassistant",
                       description="Publish Home Assistant discovery for every device and class seen, until Ctrl-C.")
    p.add_argument("--discovery-prefix", default=DEFAULT_DISCOVERY_PREFIX, help="Home Assistant's discovery prefix")
    p.add_argument("--remove", action="store_true", help="publish empty retained configs (removes the entities)")
    add_mqtt_arguments(p)
    return p


def serve(args) -> int:
    from dashboard.relay import MqttRelay  # noqa: PLC0415
    from dashboard.state import DashboardState  # noqa: PLC0415
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_from_flags(args)
    state = DashboardState(settings.topic_prefix)
    relay = MqttRelay(settings, state)
    DiscoveryPublisher(relay.client, state, discovery_prefix=args.discovery_prefix, remove=args.remove)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    relay.start()
    try:
        relay.wait_ready(30)
        stop.wait()
    finally:
        relay.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run("python -m dashboard.homeassistant", lambda: serve(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
