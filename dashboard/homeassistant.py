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

The class sensors use the device's status topic as their availability, so they turn
"unavailable" in HA when the camera goes offline. All entities of one camera share one HA device
(``identifiers: ["sigmawatch_<device>"]``). Only plain ``{{ value_json.<field> }}`` templates are
used. Publish with ``sigmawatch-dashboard --homeassistant`` (or ``python -m dashboard.homeassistant``);
remove everything with ``--remove`` (empty retained configs).

Devices that left: a device whose retained status was cleared (an empty retained message, how a camera is
retired) has its entities removed from Home Assistant too (empty retained configs for what was published for
it); a retained status older than the dashboard's forget-after creates no entities. A device that is merely
silent keeps its entities (HA shows them unavailable once its status says offline).
"""
from __future__ import annotations

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
        elif kind in ("status", "detections", "metrics"):
            device = event["device"]
            model = (event["payload"].get("model") or {}).get("id")
            if model:
                self._models[device] = model
            self._send(device_configs(device, prefix=self.prefix, discovery_prefix=self.discovery_prefix,
                                      model=self._models.get(device),
                                      sw_version=event["payload"].get("version")))
        elif kind == "aggregate":
            p = event["payload"]
            self._send(class_configs(p["device"], p["label"], p["class_id"], prefix=self.prefix,
                                     discovery_prefix=self.discovery_prefix, model=self._models.get(p["device"])))

    def _retire(self, device: str) -> None:
        """Remove the entities published for ``device`` (empty retained configs); they come back if it does."""
        node = f"/{_node(device)}/"
        with self._lock:
            topics = [t for t, cfg in self.published.items() if node in t and cfg is not None]
            for topic in topics:
                del self.published[topic]
        for topic in topics:
            self.client.publish(topic, b"", qos=1, retain=True)
            log.info("removed Home Assistant discovery %s (the device's status was cleared)", topic)

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
