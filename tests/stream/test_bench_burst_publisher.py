"""The capacity benchmark's camera publisher (bench.mqtt_burst) against a real mosquitto: every QoS 1 message
arrives intact, the acknowledgements are counted, a dead broker is an error."""
from __future__ import annotations

import time

import pytest

from bench.mqtt_burst import BurstPublisher, _remaining_length
from tests.support.publisher import Collector


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
                                        (16_384, b"\x80\x80\x01"), (2_097_152, b"\x80\x80\x80\x01")])
def test_remaining_length_is_the_mqtt_variable_byte_integer(n, encoded):
    assert _remaining_length(n) == encoded


def test_every_message_arrives_intact_and_is_acknowledged(broker):
    col = Collector("127.0.0.1", broker.port, ["burst/#"])
    pub = BurstPublisher("127.0.0.1", broker.port, "burst-test", max_inflight=300)
    try:
        sent = []
        for batch in range(40):               # 40 writes of 100: more than the in-flight cap, ids stay unique
            msgs = [(f"burst/c{i % 7}".encode(), b'{"n":%d,"pad":"%s"}' % (batch * 100 + i, b"x" * (i * 3)))
                    for i in range(100)]
            pub.publish_many(msgs)
            sent += msgs
        assert pub.close(timeout=30) == 0
        assert pub.acked == pub.published == 4000
        deadline = time.time() + 20
        while len(col.snapshot()) < 4000 and time.time() < deadline:
            time.sleep(0.1)
        got = sorted((t, p["n"], len(p["pad"])) for t, p, _at, _r in col.snapshot())
        assert got == sorted((t.decode(), i, (i % 100) * 3) for i, (t, _p) in enumerate(sent))
    finally:
        col.close()


def test_a_broker_that_goes_away_is_an_error_not_a_hang(broker):
    pub = BurstPublisher("127.0.0.1", broker.port, "burst-dead", max_inflight=10)
    broker.stop()
    with pytest.raises((ConnectionError, OSError)):
        for _ in range(200):                  # the reader sees the close; the in-flight wait then fails
            pub.publish_many([(b"burst/x", b"{}")] * 10)
            time.sleep(0.01)
    pub.close(timeout=1)
