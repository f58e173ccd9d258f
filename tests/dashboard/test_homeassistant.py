"""Home Assistant MQTT discovery: payloads checked against HA's documented schema (ha_schema.py)."""
from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest

import ha_schema
import dash_messages as m
from dash_helpers import RunningDashboard
from dashboard import homeassistant as ha


def all_configs():
    return (ha.device_configs("cam-1", model="gyolo-demo", sw_version="0.1.0")
            + ha.class_configs("cam-1", "circle", 0) + ha.class_configs("cam-1", "traffic light", 3)
            + ha.device_configs("cam-2") + ha.class_configs("cam-2", "circle", 0))


def test_every_discovery_message_matches_the_documented_schema():
    configs = all_configs()
    components = [ha_schema.validate(topic, json.loads(json.dumps(cfg)))[0] for topic, cfg in configs]
    assert components.count("binary_sensor") == 2 and components.count("sensor") == 6
    unique_ids = [cfg["unique_id"] for _, cfg in configs]
    assert len(set(unique_ids)) == len(unique_ids)
    assert len({topic for topic, _ in configs}) == len(configs)
    # all entities of one camera belong to one HA device, the two cameras to two devices
    ids = {tuple(cfg["device"]["identifiers"]) for topic, cfg in configs if "sigmawatch_cam-1/" in topic}
    assert ids == {("sigmawatch_cam-1",)}
    assert configs[0][0] == "homeassistant/binary_sensor/sigmawatch_cam-1/connectivity/config"


def test_connectivity_sensor_reads_the_agent_status_message():
    (topic, cfg), = ha.device_configs("cam-1")
    assert cfg["device_class"] == "connectivity"
    status_topic, online = m.status("cam-1", "online")
    _, offline = m.status("cam-1", "offline")
    assert cfg["state_topic"] == status_topic
    assert ha_schema.render_value_template(cfg["value_template"], json.loads(online)) == cfg["payload_on"]
    assert ha_schema.render_value_template(cfg["value_template"], json.loads(offline)) == cfg["payload_off"]


def test_class_sensors_read_the_flink_aggregate_and_go_unavailable_with_the_device():
    agg_topic, raw = m.aggregate("cam-1", "traffic light", 3, 1000.0, 17, 0.125)
    count, sigma = (cfg for _, cfg in ha.class_configs("cam-1", "traffic light", 3))
    assert count["state_topic"] == sigma["state_topic"] == agg_topic
    assert ha_schema.render_value_template(count["value_template"], json.loads(raw)) == 17
    assert ha_schema.render_value_template(sigma["value_template"], json.loads(raw)) == pytest.approx(0.125)
    assert count["state_class"] == "measurement"
    avail, = count["availability"]
    status_topic, offline = m.status("cam-1", "offline")
    assert avail["topic"] == status_topic
    assert ha_schema.render_value_template(avail["value_template"], json.loads(offline)) == avail["payload_not_available"]


@pytest.mark.parametrize("mutate, reason", [
    (lambda t, c: (t.replace("/config", "/cfg"), c), "is not <prefix>"),
    (lambda t, c: (t, {k: v for k, v in c.items() if k != "state_topic"}), "required option"),
    (lambda t, c: (t, {**c, "stat_topic": "x"}), "not a documented option"),
    (lambda t, c: (t, {**c, "device_class": "camera"}), "device_class"),
    (lambda t, c: (t, {**c, "device": {"name": "x"}}), "identifiers or connections"),
    (lambda t, c: (t, {k: v for k, v in c.items() if k != "unique_id"}), "unique_id"),
    (lambda t, c: (t, {**c, "state_topic": "sigmawatch/+/status"}), "no wildcards"),
    (lambda t, c: (t, {**c, "availability_topic": "a/b", "availability": [{"topic": "a/b"}]}), "together"),
])
def test_the_schema_check_rejects_what_home_assistant_would(mutate, reason):
    topic, cfg = mutate(*ha.device_configs("cam-1")[0])
    with pytest.raises(ha_schema.DiscoveryError, match=reason):
        ha_schema.validate(topic, cfg)


def test_abbreviated_keys_are_understood_like_home_assistant_does():
    component, cfg = ha_schema.validate("homeassistant/binary_sensor/n1/o1/config", {
        "stat_t": "a/b", "uniq_id": "u1", "dev_cla": "connectivity", "pl_on": "online",
        "dev": {"ids": ["x"], "mf": "m"}, "o": {"name": "sigmawatch", "sw": "1"}})
    assert component == "binary_sensor" and cfg["state_topic"] == "a/b" and cfg["device"]["manufacturer"] == "m"


class Collector:
    """Subscribes to homeassistant/# and keeps what it gets, flagging retained messages."""

    def __init__(self, broker):
        self.got: dict[str, tuple[bytes, bool]] = {}
        self.count = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ha-collector-{time.monotonic_ns()}")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("homeassistant/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        self.got[msg.topic] = (msg.payload, msg.retain)
        self.count += 1

    def wait(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.got) < n:
            time.sleep(0.05)
        return self.got

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.mqtt
def test_the_dashboard_publishes_retained_discovery_once_per_device_and_class(broker, publisher):
    dash = RunningDashboard(broker)
    pub = ha.DiscoveryPublisher(dash.relay.client, dash.state)
    try:
        for _ in range(3):  # repeated messages must not republish
            publisher.send([m.status("cam-1"), m.detections("cam-1", 1, []),
                            m.aggregate("cam-1", "circle", 0, 1000.0, 3, 0.1)])
        dash.wait_for(lambda s: s["counters"]["messages"] == 9)
        time.sleep(0.5)
    finally:
        pub.close()
        dash.stop()
    assert len(pub.published) == 3
    late = Collector(broker)  # subscribes afterwards: sees only what the broker retained
    try:
        got = late.wait(3)
        time.sleep(0.3)
        assert sorted(got) == sorted(pub.published)
        for topic, (payload, retained) in got.items():
            assert retained, topic
            component, cfg = ha_schema.validate(topic, json.loads(payload))
            assert cfg["device"]["model"] == "gyolo-test"  # learned from the detections message
        assert late.count == 3
    finally:
        late.close()


@pytest.mark.mqtt
def test_dashboard_cli_with_homeassistant_flag_publishes_discovery(broker, publisher):
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", "0", "--mqtt-port", str(broker.port),
                             "--homeassistant", "ha-test"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("dashboard: http://127.0.0.1:")
        time.sleep(0.5)  # subscribed
        publisher.send([m.status("cam-9")])
        got = {}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ha-cli-check")
        client.on_message = lambda c, u, msg: got.setdefault(msg.topic, json.loads(msg.payload))
        client.connect(broker.host, broker.port)
        client.subscribe("ha-test/#", qos=1)
        client.loop_start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        client.disconnect()
        client.loop_stop()
        assert list(got) == ["ha-test/binary_sensor/sigmawatch_cam-9/connectivity/config"]
        ha_schema.validate(*next(iter(got.items())))
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.mqtt
def test_a_retired_device_leaves_home_assistant_and_one_gone_long_ago_never_enters_it(broker, publisher):
    from dashboard.relay import MqttRelay
    from dashboard.state import DashboardState
    from edge.contract.mqtt import MqttSettings
    publisher.send([m.status("cam-gone", "offline", ts=time.time() - 7200), m.status("cam-1")], retain=True)
    state = DashboardState()                  # forget after 1 h: cam-gone's retained status is two hours old
    relay = MqttRelay(MqttSettings(port=broker.port), state)
    pub = ha.DiscoveryPublisher(relay.client, state)      # listening before the retained messages arrive
    relay.start()
    try:
        relay.wait_ready(10)
        publisher.send([m.aggregate("cam-1", "circle", 0, 1000.0, 3, 0.1)])
        deadline = time.monotonic() + 10
        while len(pub.published) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(pub.published) == sorted(t for t, _ in ha.device_configs("cam-1") + ha.class_configs("cam-1", "circle", 0))
        assert state.counters["devices_removed"] == 1 and "cam-gone" not in state.snapshot()["devices"]

        status_topic, _ = m.status("cam-1")
        publisher.send([(status_topic, b"")], retain=True)            # the camera is retired
        while pub.published and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pub.published == {} and "cam-1" not in state.snapshot()["devices"]
        time.sleep(0.5)                                               # the empty configs reach the broker
    finally:
        pub.close()
        relay.stop()
    late = Collector(broker)                   # what Home Assistant would find now: no retained config at all
    try:
        time.sleep(1.0)
        assert late.got == {}
    finally:
        late.close()
