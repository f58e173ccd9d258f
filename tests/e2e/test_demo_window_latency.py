"""The demo's window latency: window end -> the window's *first* result received on MQTT (real mosquitto).

Later results of the same window (other devices or classes, revisions) do not count again: the figure is per
window, which is what the goal "p50 <= 3 s after the window closes" (issue 15) is about."""
from __future__ import annotations

import time

import pytest

from demo.observer import Observer
from edge.contract import outputs
from edge.contract.mqtt import MqttClient, MqttSettings

pytestmark = pytest.mark.mqtt


def _aggregate(settings: MqttSettings, device: str, label: str, window_end: float, revision: int = 0):
    body = outputs.build("aggregate", device=device, class_id=0 if label == "person" else 1, label=label,
                         window_start=window_end - 5.0, window_end=window_end, revision=revision, detections=3,
                         frames=3, score_mean=0.8, with_sigma=3, sigma_mean=0.14, sigma_max=0.2,
                         high_sigma_share=0.0, high_sigma_threshold=0.15)
    return outputs.topic_for(settings.topic_prefix, body), outputs.encode(body)


def test_window_latency_counts_each_window_once_from_its_first_result(broker):
    settings = MqttSettings(host=broker.host, port=broker.port)
    obs = Observer(settings)
    pub = MqttClient(settings, client_id="test-window-latency").start()
    try:
        obs.wait_ready(10)
        pub.wait_ready(10)
        first_end = time.time() - 2.0          # this window closed 2 s before its first result is sent
        pub.publish_and_wait(*_aggregate(settings, "cam-1", "person", first_end), qos=1)
        time.sleep(1.2)                        # the rest of that window's results come more than 1 s later
        pub.publish_and_wait(*_aggregate(settings, "cam-2", "person", first_end), qos=1)
        pub.publish_and_wait(*_aggregate(settings, "cam-1", "car", first_end), qos=1)
        pub.publish_and_wait(*_aggregate(settings, "cam-1", "person", first_end, revision=1), qos=1)
        second_end = time.time() - 0.5
        pub.publish_and_wait(*_aggregate(settings, "cam-1", "person", second_end), qos=1)
        deadline = time.monotonic() + 10
        while obs.aggregated_events() < 4 * 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        win = obs.summary(mean_jpeg_bytes=1000.0)["latency_window_end_to_aggregate"]
    finally:
        pub.stop()
        obs.close()
    assert win["n"] == 2, win
    # the first window: 2 s plus delivery, not the >= 3.2 s of its later results; the second: 0.5 s plus delivery
    assert 2.0 <= win["max_s"] < 3.15, win
    assert 0.5 <= win["p50_s"] < 2.0, win
    assert win["p99_s"] == win["max_s"]
