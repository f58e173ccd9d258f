"""Publisher + outbox + paho link in-process against a real mosquitto: the window bounds what paho holds."""
from __future__ import annotations

import time

import pytest

from edge.decode import Detection
from edge.messages import FrameResult
from edge.contract.mqtt import MqttClient, MqttSettings
from edge.outbox import Outbox
from edge.publisher import Publisher

pytestmark = pytest.mark.mqtt


def _result(i: int) -> FrameResult:
    det = Detection(class_id=0, label="red", score=0.5, objectness=0.6, box=(0.1, 0.1, 0.2, 0.2),
                    sigma=(0.1, 0.1, 0.1, 0.1), sigma_mean=0.1, box_sigma=None)
    return FrameResult(ts=1000.0 + i, frame_w=64, frame_h=48, task="detection", detections=[det],
                       latency_ms={"inference": 1.0})


def test_window_bounds_inflight_and_everything_arrives_in_order(tmp_path, broker, subscriber):
    sub = subscriber(broker, "sigmawatch/pub-1/detections")
    outbox = Outbox(tmp_path / "o.sqlite")
    pub = None
    link = MqttClient(MqttSettings(host=broker.host, port=broker.port), client_id="pub-1",
                      on_ack=lambda mid: pub.on_ack(mid), max_inflight=100)
    pub = Publisher(link, outbox, topic="sigmawatch/pub-1/detections", device="pub-1",
                    model_ref={"id": "m", "hash": "0" * 64}, window=25, delivery="puback")
    for i in range(1500):
        pub.submit(_result(i))
    link.start()
    link.wait_ready(10)
    peak = 0
    deadline = time.time() + 60
    while outbox.depth() and time.time() < deadline:
        pub.pump()
        peak = max(peak, pub.inflight)
        pub.wake.wait(0.01)
        pub.wake.clear()
    link.stop()
    assert outbox.depth() == 0 and outbox.acked == 1500
    assert 0 < peak <= 25, f"the window allows 25 unacknowledged publishes, saw {peak}"
    seqs = sub.wait_for(lambda: [p["seq"] for p in sub.payloads("detections")]
                        if len(sub.payloads("detections")) >= 1500 else None, timeout=20, what="1500 messages")
    assert seqs == list(range(1500))
