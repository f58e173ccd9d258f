"""Home Assistant sensors for tracked objects, like Frigate's: "<label> present" per label and "<zone> occupied" per
zone, read from the agent's retained object counts. Discovery checked by the documented schema (ha_schema.py), the
templates rendered with Jinja2 as Home Assistant renders them, and the whole way with the real agent on a scripted
scene, the real dashboard process and a real mosquitto."""
from __future__ import annotations

import json
import time

import dash_messages as m
import ha_schema
import pytest
from test_browser_tracks import TRACKING, DashboardProcess, detector  # noqa: F401  (fixture)
from test_homeassistant import Collector

from dashboard import homeassistant as ha
from dashboard.relay import MqttRelay
from dashboard.state import DashboardState
from edge.contract import schema
from edge.contract.mqtt import MqttSettings
from tests.edge.edge_helpers import AgentProcess, Subscriber, agent_config, write_crossing_video

LABELS = ["person", "traffic light", 'odd "quoted" ü']
ZONES = ["drive way", "drive_way", "right"]


def object_entities(device: str = "cam-1") -> list[tuple[str, dict]]:
    return ([c for label in LABELS for c in ha.object_configs(device, label)]
            + [c for zone in ZONES for c in ha.zone_configs(device, zone)])


def test_object_and_zone_discovery_matches_the_documented_schema():
    configs = object_entities() + ha.device_configs("cam-1")
    checked = [ha_schema.validate(topic, json.loads(json.dumps(cfg))) for topic, cfg in configs]
    assert [c for c, _ in checked].count("sensor") == 3 and [c for c, _ in checked].count("binary_sensor") == 4
    assert len({cfg["unique_id"] for _, cfg in configs}) == len(configs), "'drive way' and 'drive_way' are two"
    assert len({topic for topic, _ in configs}) == len(configs)
    assert {tuple(cfg["device"]["identifiers"]) for _, cfg in configs} == {("sigmawatch_cam-1",)}
    present = dict(ha.object_configs("cam-1", "person"))["homeassistant/sensor/sigmawatch_cam-1/person_present/config"]
    assert present["name"] == "person present" and present["state_topic"] == "sigmawatch/cam-1/objects"
    zone = dict(ha.zone_configs("cam-1", "right"))["homeassistant/binary_sensor/sigmawatch_cam-1/zone_right/config"]
    assert zone["name"] == "right occupied" and zone["device_class"] == "occupancy"


def test_the_templates_read_the_counts_as_home_assistant_renders_them():
    (_, person), (_, light), (_, odd) = (ha.object_configs("cam-1", label)[0] for label in LABELS)
    (_, way), (_, way2), (_, right) = (ha.zone_configs("cam-1", zone)[0] for zone in ZONES)
    counts = json.loads(m.objects("cam-1", time.time(), {"person": 3, 'odd "quoted" ü': 1},
                                  {"drive way": {"person": 2, "car": 1}})[1])
    assert ha_schema.render_template(person["value_template"], counts) == "3"
    assert ha_schema.render_template(light["value_template"], counts) == "0", "a label the counts do not name: 0"
    assert ha_schema.render_template(odd["value_template"], counts) == "1"
    assert ha_schema.render_template(way["value_template"], counts) == way["payload_on"]
    assert ha_schema.render_template(way2["value_template"], counts) == way2["payload_off"]
    assert ha_schema.render_template(right["value_template"], counts) == right["payload_off"]
    assert json.loads(ha_schema.render_template(way["json_attributes_template"], counts)) == {"person": 2, "car": 1}
    assert json.loads(ha_schema.render_template(right["json_attributes_template"], counts)) == {}
    empty = json.loads(m.objects("cam-1", time.time(), {})[1])
    assert ha_schema.render_template(person["value_template"], empty) == "0"
    assert ha_schema.render_template(way["value_template"], empty) == "OFF"
    avail, = person["availability"]
    assert avail["topic"] == schema.topic("sigmawatch", "cam-1", "status")
    for state, want in (("online", "payload_available"), ("offline", "payload_not_available")):
        status = json.loads(m.status("cam-1", state)[1])
        assert ha_schema.render_template(avail["value_template"], status) == avail[want]


def collapse(values: list) -> list:
    """What Home Assistant records: a state only when it differs from the one before."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


@pytest.mark.mqtt
def test_the_real_agents_counts_drive_the_sensors_and_the_entities_leave_cleanly(tmp_path, broker, detector):
    video = write_crossing_video(tmp_path / "crossing.avi")
    truth = Subscriber(broker, "sigmawatch/cam-1/#", client_id="ha-truth")
    discovery = Collector(broker)
    dash = DashboardProcess(broker, "--homeassistant")
    agent = None
    try:
        time.sleep(0.5)
        agent = AgentProcess(agent_config(tmp_path, broker, detector, video, tracking=TRACKING,
                                          source={"uri": str(video), "realtime": True, "exit_on_end": True}))
        assert agent.proc.wait(120) == 0, agent.logs()
        truth.wait_for(lambda: sum(e["type"] == "end" for e in truth.payloads("/events")) >= 2, timeout=20,
                       what="both end events")
        node = "homeassistant/{}/sigmawatch_cam-1/{}/config"
        want = {node.format("binary_sensor", "connectivity"), node.format("sensor", "disc_present"),
                node.format("sensor", "square_present"), node.format("binary_sensor", "zone_right"),
                node.format("binary_sensor", "zone_top-right")}
        deadline = time.monotonic() + 10
        while set(discovery.got) != want and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(discovery.got) == want
        assert discovery.count == len(want), "each config published once, however many counts and events came"
        configs = {t: ha_schema.validate(t, json.loads(p))[1] for t, (p, _r) in discovery.got.items()}

        # --- the states Home Assistant shows, rendered from every count the agent published, in order
        counts = [json.loads(p) for t, p, _r in truth.messages if t.endswith("/objects")]
        events = sorted(truth.payloads("/events"), key=lambda e: e["seq"])

        def states(topic: str) -> list[str]:
            return collapse([ha_schema.render_template(configs[topic]["value_template"], c) for c in counts])

        disc = states(node.format("sensor", "disc_present"))
        assert "1" in disc and disc[-1] == "0", disc
        assert states(node.format("sensor", "square_present"))[-1] == "0"
        for zone in ("right", "top-right"):
            occupied = states(node.format("binary_sensor", f"zone_{zone}"))
            entered = [e for e in events if e["type"] == "entered" and e["zone"] == zone]
            left = [e for e in events if e["type"] == "left" and e["zone"] == zone]
            assert len(entered) >= 1 and len(entered) == len(left), (zone, entered, left)
            ons = sum(a == "OFF" and b == "ON" for a, b in zip(["OFF"] + occupied, occupied))
            offs = sum(a == "ON" and b == "OFF" for a, b in zip(occupied, occupied[1:]))
            assert occupied[-1] == "OFF" and ons == offs == len(entered), (zone, occupied, len(entered))
        # the agent stopped cleanly: its retained status says offline, every object sensor is unavailable
        (status_raw, _), = [(p, r) for t, p, r in truth.messages if t.endswith("/status")][-1:]
        for topic in want - {node.format("binary_sensor", "connectivity")}:
            avail, = configs[topic]["availability"]
            assert ha_schema.render_template(avail["value_template"], json.loads(status_raw)) == "offline"

        # --- the camera stops reporting objects (its retained counts cleared): only the object entities go
        truth.publish("sigmawatch/cam-1/objects", b"", retain=True)
        deadline = time.monotonic() + 10
        while sum(p == b"" for p, _r in discovery.got.values()) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {t for t, (p, _r) in discovery.got.items() if p == b""} == \
            want - {node.format("binary_sensor", "connectivity")}
        # --- the camera is retired: its connectivity goes too, and nothing is left retained for Home Assistant
        truth.publish("sigmawatch/cam-1/status", b"", retain=True)
        deadline = time.monotonic() + 10
        while discovery.got[node.format("binary_sensor", "connectivity")][0] != b"" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if agent is not None:
            agent.kill()
        dash.stop()
        discovery.close()
        truth.close()
    late = Collector(broker)
    try:
        time.sleep(1.0)
        assert late.got == {}, "no retained discovery config is left"
    finally:
        late.close()


def status_with(device: str, zones: list[str], enabled: bool = True):
    body = {"schema": 1, "type": "status", "device": device, "state": "online", "ts": time.time(),
            "config": {"tracking": {"enabled": enabled, "publish": "both", "zones": zones, "lines": []}}}
    return schema.topic("sigmawatch", device, "status"), schema.encode(schema.validate(body, "status"))


@pytest.mark.mqtt
def test_zones_follow_the_agents_status_and_tracking_off_removes_the_object_entities(broker, publisher):
    state = DashboardState()
    relay = MqttRelay(MqttSettings(port=broker.port), state)
    pub = ha.DiscoveryPublisher(relay.client, state)
    relay.start()
    collector = Collector(broker)

    def live() -> set[str]:
        """The configs the broker holds retained, once they are what the publisher says it published."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.2)
            got = {t for t, (p, _r) in list(collector.got.items()) if p}
            if got == {t for t, cfg in list(pub.published.items()) if cfg is not None}:
                return {t.split("/")[-2] for t in got}
        raise AssertionError(f"the broker's configs never matched the publisher's: {sorted(collector.got)}")

    try:
        relay.wait_ready(10)
        publisher.send([status_with("cam-1", ["drive", "porch"]),
                        m.objects("cam-1", time.time(), {"person": 1}, {"drive": {"person": 1}})])
        assert live() == {"connectivity", "zone_drive", "zone_porch", "person_present"}
        publisher.send([status_with("cam-1", ["drive"])])            # 'porch' was removed from the agent's config
        assert live() == {"connectivity", "zone_drive", "person_present"}
        assert collector.got["homeassistant/binary_sensor/sigmawatch_cam-1/zone_porch/config"][0] == b""
        publisher.send([m.track_event("cam-1", 0, "new", 1, "car", time.time(), start=time.time(), zones=["drive"])])
        assert live() == {"connectivity", "zone_drive", "person_present", "car_present"}
        publisher.send([status_with("cam-1", ["drive"], enabled=False)])   # tracking switched off
        assert live() == {"connectivity"}
    finally:
        pub.close()
        relay.stop()
        collector.close()
