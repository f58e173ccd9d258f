"""Home Assistant's documented MQTT discovery schema, encoded for the tests.

Sources (read, not copied): home-assistant.io `integrations/mqtt` (discovery topic
``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``, node_id/object_id from
``[a-zA-Z0-9_-]``, retained JSON payloads, ``origin`` mapping with name/sw_version/support_url),
`integrations/binary_sensor.mqtt` and `integrations/sensor.mqtt` configuration variables, the
binary_sensor device classes, and home-assistant/core `components/mqtt/abbreviations.py` (payload
key abbreviations, expanded before validation exactly like HA does).
"""
from __future__ import annotations

import re

TOPIC_RE = re.compile(r"^(?P<prefix>[^+#]+)/(?P<component>[a-z_]+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
                      r"(?P<object_id>[a-zA-Z0-9_-]+)/config$")
ABBREVIATIONS = {"avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
                 "avty_tpl": "availability_template", "dev": "device", "dev_cla": "device_class",
                 "en": "enabled_by_default", "ent_cat": "entity_category", "exp_aft": "expire_after",
                 "frc_upd": "force_update", "ic": "icon", "json_attr_t": "json_attributes_topic",
                 "json_attr_tpl": "json_attributes_template", "off_dly": "off_delay", "o": "origin",
                 "pl_avail": "payload_available", "pl_not_avail": "payload_not_available", "pl_off": "payload_off",
                 "pl_on": "payload_on", "stat_cla": "state_class", "stat_t": "state_topic", "t": "topic",
                 "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template"}
DEVICE_ABBREVIATIONS = {"cns": "connections", "cu": "configuration_url", "ids": "identifiers", "mf": "manufacturer",
                        "mdl": "model", "sw": "sw_version", "hw": "hw_version", "sa": "suggested_area",
                        "sn": "serial_number"}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}

STR, INT, BOOL, LIST, MAP = str, int, bool, list, dict
COMMON = {  # options both binary_sensor and sensor document
    "availability": LIST, "availability_mode": STR, "availability_topic": STR, "availability_template": STR,
    "device": MAP, "device_class": STR, "enabled_by_default": BOOL, "encoding": STR, "entity_category": STR,
    "expire_after": INT, "force_update": BOOL, "icon": STR, "json_attributes_template": STR,
    "json_attributes_topic": STR, "name": (STR, type(None)), "object_id": STR, "origin": MAP,
    "payload_available": STR, "payload_not_available": STR, "qos": INT, "state_topic": STR, "unique_id": STR,
    "value_template": STR,
}
COMPONENTS = {
    "binary_sensor": {**COMMON, "off_delay": INT, "payload_off": STR, "payload_on": STR},
    "sensor": {**COMMON, "last_reset_value_template": STR, "state_class": STR, "suggested_display_precision": INT,
               "unit_of_measurement": STR},
}
REQUIRED = {"binary_sensor": {"state_topic"}, "sensor": {"state_topic"}}
DEVICE_KEYS = {"connections": LIST, "configuration_url": STR, "identifiers": (LIST, STR), "manufacturer": STR,
               "model": STR, "name": STR, "suggested_area": STR, "sw_version": STR, "hw_version": STR,
               "serial_number": STR, "via_device": STR}
ORIGIN_KEYS = {"name": STR, "sw_version": STR, "support_url": STR}
AVAILABILITY_KEYS = {"topic": STR, "payload_available": STR, "payload_not_available": STR, "value_template": STR}
BINARY_SENSOR_CLASSES = {"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
                         "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
                         "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
                         "tamper", "update", "vibration", "window"}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
MQTT_TOPIC_RE = re.compile(r"^[^+#\x00]+$")


class DiscoveryError(ValueError):
    pass


def _expand(d: dict, table: dict) -> dict:
    return {table.get(k, k): v for k, v in d.items()}


def _types(obj: dict, spec: dict, where: str) -> None:
    for key, value in obj.items():
        if key not in spec:
            raise DiscoveryError(f"{where}.{key}: not a documented option")
        types = spec[key] if isinstance(spec[key], tuple) else (spec[key],)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise DiscoveryError(f"{where}.{key}: wrong type {type(value).__name__}")


def validate(topic: str, payload: dict) -> tuple[str, dict]:
    """Check one discovery message like Home Assistant would; return (component, expanded config)."""
    m = TOPIC_RE.match(topic)
    if not m:
        raise DiscoveryError(f"topic {topic!r} is not <prefix>/<component>/[<node_id>/]<object_id>/config")
    component = m["component"]
    if component not in COMPONENTS:
        raise DiscoveryError(f"component {component!r} is not supported here")
    if not isinstance(payload, dict):
        raise DiscoveryError("payload must be a JSON object")
    cfg = _expand(payload, ABBREVIATIONS)
    _types(cfg, COMPONENTS[component], component)
    missing = REQUIRED[component] - set(cfg)
    if missing:
        raise DiscoveryError(f"{component}: required option(s) missing: {sorted(missing)}")
    for key in ("state_topic", "availability_topic", "json_attributes_topic"):
        if key in cfg and not MQTT_TOPIC_RE.match(cfg[key]):
            raise DiscoveryError(f"{key}: {cfg[key]!r} is not a valid topic to subscribe to (no wildcards)")
    if "availability" in cfg and "availability_topic" in cfg:
        raise DiscoveryError("availability and availability_topic must not be used together")
    for i, item in enumerate(cfg.get("availability", [])):
        item = _expand(item, ABBREVIATIONS)
        _types(item, AVAILABILITY_KEYS, f"availability[{i}]")
        if "topic" not in item:
            raise DiscoveryError(f"availability[{i}].topic is required")
    if "device" in cfg:
        dev = _expand(cfg["device"], DEVICE_ABBREVIATIONS)
        _types(dev, DEVICE_KEYS, "device")
        if not dev.get("identifiers") and not dev.get("connections"):
            raise DiscoveryError("device: at least one of identifiers or connections must be present")
        if "unique_id" not in cfg:
            raise DiscoveryError("device: only works when unique_id is set")
        cfg["device"] = dev
    if "origin" in cfg:
        origin = _expand(cfg["origin"], ORIGIN_ABBREVIATIONS)
        _types(origin, ORIGIN_KEYS, "origin")
        if "name" not in origin:
            raise DiscoveryError("origin.name is required")
    if component == "binary_sensor" and "device_class" in cfg and cfg["device_class"] not in BINARY_SENSOR_CLASSES:
        raise DiscoveryError(f"binary_sensor device_class {cfg['device_class']!r} is not documented")
    if "state_class" in cfg and cfg["state_class"] not in STATE_CLASSES:
        raise DiscoveryError(f"state_class {cfg['state_class']!r} is not one of {sorted(STATE_CLASSES)}")
    if "entity_category" in cfg and cfg["entity_category"] not in ENTITY_CATEGORIES:
        raise DiscoveryError(f"entity_category {cfg['entity_category']!r} is not valid")
    if "qos" in cfg and cfg["qos"] not in (0, 1, 2):
        raise DiscoveryError("qos must be 0, 1 or 2")
    return component, cfg


VALUE_JSON_RE = re.compile(r"^\{\{ value_json\.([A-Za-z_][A-Za-z0-9_]*) \}\}$")


def render_value_template(template: str, payload: dict):
    """Render the one template form sigmawatch uses, ``{{ value_json.<field> }}``, as HA would."""
    m = VALUE_JSON_RE.match(template)
    if not m:
        raise DiscoveryError(f"template {template!r} is not of the form '{{{{ value_json.<field> }}}}'")
    if m[1] not in payload:
        raise DiscoveryError(f"template {template!r}: the payload has no field {m[1]!r}")
    return payload[m[1]]


def render_template(template: str, payload: dict) -> str:
    """Render a ``value_template`` / ``json_attributes_template`` the way Home Assistant does: Jinja2 in a sandbox
    (HA's template environment is an ``ImmutableSandboxedEnvironment``) with the parsed payload as ``value_json``;
    the result is the rendered string, stripped."""
    from tests.conftest import require_module
    sandbox = require_module("jinja2.sandbox")
    env = sandbox.ImmutableSandboxedEnvironment()
    return env.from_string(template).render(value_json=payload).strip()
