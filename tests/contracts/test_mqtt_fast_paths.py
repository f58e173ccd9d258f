"""The contract's MQTT fast paths: decoding received MQTT 5 PUBLISH properties gives what paho's own gives, and
``ack_many`` acknowledges exactly the messages it is given."""
from __future__ import annotations

import time

import pytest

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.contract import mqtt


def _wire(props: Properties) -> bytes:
    return props.pack()


def test_paho_decodes_publish_properties_with_the_lean_class():
    assert mqtt.LEAN_PROPERTIES, "paho.mqtt._packet.Properties was not replaced (paho layout changed?)"


def test_same_result_as_paho_for_empty_and_full_property_lists():
    full = Properties(PacketTypes.PUBLISH)
    full.MessageExpiryInterval = 30
    full.ContentType = "application/json"
    full.UserProperty = [("a", "1"), ("b", "2")]
    full.SubscriptionIdentifier = [7]
    for props in (Properties(PacketTypes.PUBLISH), full):
        raw = _wire(props) + b"payload"
        ours, n_ours = mqtt._LeanProperties(PacketTypes.PUBLISH).unpack(raw)
        theirs, n_theirs = Properties(PacketTypes.PUBLISH).unpack(raw)
        assert n_ours == n_theirs and str(ours) == str(theirs) and ours.json() == theirs.json()
        assert ours.isEmpty() == theirs.isEmpty()


@pytest.mark.mqtt
def test_ack_many_acknowledges_exactly_those_messages(broker):
    """150 of 200 QoS 1 messages acknowledged in one write: after a reconnect the persistent session redelivers
    exactly the other 50."""
    settings = mqtt.MqttSettings(host=broker.host, port=broker.port)
    got: list = []
    sub = mqtt.MqttClient(settings, client_id="acker", subscriptions=[("fast/#", 1)], manual_ack=True,
                          session_expiry_s=600, receive_maximum=1000,
                          on_message=lambda m: got.append((m.mid, int(m.payload))))
    sub.start().wait_ready(10)
    pub = mqtt.MqttClient(settings, client_id="fast-pub", max_inflight=1000).start()
    pub.wait_ready(10)
    for i in range(200):
        pub.publish("fast/x", str(i).encode(), qos=1)
    deadline = time.time() + 20
    while len(got) < 200 and time.time() < deadline:
        time.sleep(0.05)
    assert sorted(n for _, n in got) == list(range(200))
    sub.ack_many([mid for mid, n in got if n < 150])
    time.sleep(1.0)
    sub.stop()
    again: list = []
    sub = mqtt.MqttClient(settings, client_id="acker", subscriptions=[("fast/#", 1)], manual_ack=True,
                          session_expiry_s=600, on_message=lambda m: again.append(int(m.payload)))
    sub.start().wait_ready(10)
    deadline = time.time() + 10
    while len(again) < 50 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    sub.stop()
    pub.stop()
    assert sorted(again) == list(range(150, 200))


def test_a_refused_optional_subscription_is_reported_not_fatal():
    """Brokers that refuse a subscription the ACL denies (MQTT 5 reason 0x87): an optional one (the agent's
    landing confirmations) is reported to its handler and the client still becomes ready."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode
    refused = []
    c = mqtt.MqttClient(mqtt.MqttSettings(), client_id="opt", subscriptions=[("a/set", 1)],
                        optional_subscriptions=[("a/landed", 1)], on_optional_refused=lambda t, r: refused.append(t))
    c._pending_subs.update({1, 2})
    c._optional_mids[2] = "a/landed"
    c._handle_subscribe(None, None, 2, [ReasonCode(PacketTypes.SUBACK, "Not authorized")], None)
    assert refused == ["a/landed"] and c.refused is None and not c.connected
    c._handle_subscribe(None, None, 1, [ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")], None)
    assert c.connected and c.refused is None
    c._handle_subscribe(None, None, 3, [ReasonCode(PacketTypes.SUBACK, "Not authorized")], None)   # a required one
    assert c.refused and "refused the subscription" in c.refused
