"""The contract's batch reader (``MqttClient(on_messages=...)``, the bridge's receive path): it splits what the
socket holds into packets itself, hands QoS 0/1 PUBLISH packets over in lists and every other packet to paho.

- ``split_packets`` on packets written by paho's own encoders (MQTT 5 with and without properties, 3.1.1, QoS
  0/1/2, a payload with a 3-byte remaining length, CONNACK/SUBACK/PUBACK/PINGRESP): the same packets, in order,
  whichever byte the stream is cut at; a malformed length is an error, never a wrong packet;
- against a real mosquitto: a batch-mode subscriber that also publishes (its PUBACKs go through paho between the
  PUBLISH packets) gets every message once, in order, byte for byte; its own publishes are acknowledged; what it
  does not acknowledge is redelivered after a reconnect, and only that.
"""
from __future__ import annotations

import struct
import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.contract import mqtt


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, qos: int, mid: int, v5: bool, props: bytes = b"\x00") -> bytes:
    """A PUBLISH packet as the MQTT specification lays it out (3.3)."""
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    body += (props if v5 else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


def _props() -> bytes:
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = [("k", "v" * 200)]         # a property list longer than 127 bytes: a 2-byte length
    p.MessageExpiryInterval = 60
    return p.pack()


CONNACK = b"\x20\x03\x00\x00\x00"
SUBACK = b"\x90\x04\x00\x01\x00\x01"
PUBACK = b"\x40\x02\x00\x07"
PINGRESP = b"\xd0\x00"


def _stream(v5: bool):
    """(bytes, the expected publishes, the expected other packets as (index, bytes))."""
    packets, publishes, others = [], [], []
    def other(p):
        others.append((len(publishes), p))
        packets.append(p)

    def pub(topic, payload, qos, mid, props=b"\x00"):
        packets.append(publish_packet(topic, payload, qos, mid, v5, props))
        if qos < 2:
            publishes.append(mqtt.Received(topic, payload, mid if qos else 0, qos))
        else:
            others.append((len(publishes), packets[-1]))
    other(CONNACK if v5 else b"\x20\x02\x00\x00")
    other(SUBACK)
    pub(b"a/cam-1/detections", b'{"x":1}', 1, 1)
    pub(b"a/cam-2/detections", b"", 1, 65535)
    pub(b"a/q0", b"zero", 0, 0)
    pub(b"a/props", b"with properties", 1, 3, _props() if v5 else b"\x00")
    other(PUBACK)
    pub(b"a/q2", b"exactly once", 2, 4)
    pub(b"a/big", bytes(range(256)) * 80, 1, 5)         # 20,480 bytes: a 3-byte remaining length
    other(PINGRESP)
    pub(b"a/\xff\xfe", b"invalid utf-8 topic", 1, 6)
    return b"".join(packets), publishes, others


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_split_packets_whole_and_cut_at_every_byte(v5):
    data, want_pub, want_other = _stream(v5)
    pubs, others = [], []
    assert mqtt.split_packets(data, 0, v5, pubs, others) == len(data)
    assert pubs == want_pub and others == want_other
    step = 7 if len(data) > 5000 else 1
    for cut in list(range(0, 200)) + list(range(200, len(data), step)):
        pubs, others = [], []
        rest = data[mqtt.split_packets(data[:cut], 0, v5, pubs, others):cut] + data[cut:]
        assert mqtt.split_packets(rest, 0, v5, pubs, others) == len(rest)   # the same lists: indexes go on
        assert pubs == want_pub and others == want_other, cut


def test_a_malformed_remaining_length_is_an_error():
    with pytest.raises(ValueError, match="remaining length"):
        mqtt.split_packets(b"\x32\xff\xff\xff\xff\x01", 0, True, [], [])
    with pytest.raises(ValueError, match="PUBLISH"):
        mqtt.split_packets(b"\x32\x03\x00\x05ab", 0, False, [], [])     # topic longer than the packet


@pytest.mark.mqtt
def test_batch_mode_subscriber_against_mosquitto(broker):
    settings = mqtt.MqttSettings(host=broker.host, port=broker.port)
    got: list[mqtt.Received] = []
    acked: list[int] = []
    sub = mqtt.MqttClient(settings, client_id="batcher", subscriptions=[("b/#", 1)], manual_ack=True,
                          session_expiry_s=600, receive_maximum=65535, max_inflight=1000,
                          on_messages=got.extend, on_ack=acked.append)
    sub.start().wait_ready(10)
    pub = mqtt.MqttClient(settings, client_id="batch-pub", max_inflight=1000).start()
    pub.wait_ready(10)
    n = 6000
    own = []
    for i in range(n):
        pub.publish(f"b/{i % 3}", f"{i}:".encode() + b"x" * (i % 300), qos=1)
        if i % 500 == 0:                                   # the subscriber publishes too: PUBACKs interleave
            own.append(sub.publish("own/x", b"mine", qos=1)[1])
    deadline = time.time() + 60
    while len(got) < n and time.time() < deadline:
        time.sleep(0.05)
    assert len(got) == n, f"received {len(got)} of {n}"
    for topic in (b"b/0", b"b/1", b"b/2"):
        numbers = [int(r.payload.split(b":")[0]) for r in got if r.topic == topic]
        assert numbers == list(range(int(topic[-1:]), n, 3)), "every message once, in order"
    assert all(r.payload == f"{int(r.payload.split(b':')[0])}:".encode() + b"x" * (int(r.payload.split(b':')[0]) % 300)
               for r in got), "payloads byte for byte"
    assert all(r.qos == 1 and 1 <= r.mid <= 65535 for r in got)
    deadline = time.time() + 10
    while not set(own) <= set(acked) and time.time() < deadline:
        time.sleep(0.05)
    assert set(own) <= set(acked), "the subscriber's own publishes were acknowledged"
    keep = {int(r.payload.split(b":")[0]) for r in got[: n - 40]}
    sub.ack_many([r.mid for r in got[: n - 40]])
    time.sleep(1.0)
    sub.stop()
    pub.stop()
    again: list[mqtt.Received] = []
    sub = mqtt.MqttClient(settings, client_id="batcher", subscriptions=[("b/#", 1)], manual_ack=True,
                          session_expiry_s=600, on_messages=again.extend)
    sub.start().wait_ready(10)
    deadline = time.time() + 10
    while len(again) < 40 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    sub.stop()
    redelivered = sorted(int(r.payload.split(b":")[0]) for r in again)
    assert redelivered == sorted(set(range(n)) - keep), "exactly the unacknowledged messages come again"
