"""A QoS 1 MQTT publisher and a collector for generated streams (tests, benchmarks), on the project's client.

Publishes through a bounded window of unacknowledged messages (paho fails beyond 65,535 in flight).
"""
from __future__ import annotations

import json
import threading
import time
from typing import Callable, Iterable, Optional

from edge.contract.errors import BrokerError
from edge.contract.mqtt import SUCCESS, MqttClient, MqttSettings


def _settings(host: str, port: int, protocol: str = "3.1.1") -> MqttSettings:
    return MqttSettings(host=host, port=port, protocol=protocol)


class Publisher:
    def __init__(self, host: str, port: int, client_id: str = "test-publisher", max_inflight: int = 1000):
        self.window = threading.Semaphore(max_inflight)
        self.acked = 0
        self.published = 0
        self.client = MqttClient(_settings(host, port), client_id=client_id, on_ack=self._on_ack,
                                 max_inflight=max_inflight).start()
        self.client.wait_ready(10)

    def _on_ack(self, mid: int) -> None:
        self.acked += 1
        self.window.release()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if not self.window.acquire(timeout=30):
            raise BrokerError("publish window did not drain in 30 s: is the broker alive?")
        rc, _mid = self.client.publish(topic, payload, qos=qos, retain=retain)
        if rc != SUCCESS:
            self.window.release()
            raise BrokerError(f"publish to {topic} failed: rc {rc}")
        self.published += 1

    def publish_all(self, events: Iterable, rate: Optional[float] = None,
                    on_sent: Optional[Callable[[object, float], None]] = None) -> None:
        """Publish ``events`` (with .topic/.payload) at ``rate`` msg/s (None = as fast as possible)."""
        t0 = time.perf_counter()
        for i, ev in enumerate(events):
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self.publish(ev.topic, ev.payload)
            if on_sent:
                on_sent(ev, time.time())

    def close(self, timeout: float = 30) -> None:
        end = time.time() + timeout   # wait until every QoS 1 publish is acknowledged
        while self.acked < self.published and time.time() < end:
            time.sleep(0.01)
        self.client.stop()


class Collector:
    """Subscribes to topic filters and keeps every message (topic, decoded JSON, arrival time, retained)."""

    def __init__(self, host: str, port: int, filters: list[str], client_id: str = "test-collector"):
        self.messages: list[tuple[str, dict, float, bool]] = []
        self.lock = threading.Lock()
        self.client = MqttClient(_settings(host, port), client_id=f"{client_id}-{time.monotonic_ns()}",
                                 subscriptions=[(f, 1) for f in filters], on_message=self._on_message).start()
        self.client.wait_ready(10)

    def _on_message(self, message) -> None:
        now = time.time()
        try:
            payload = json.loads(message.payload) if message.payload else None
        except ValueError:
            payload = {"_raw": message.payload.decode("utf-8", "replace")}
        with self.lock:
            self.messages.append((message.topic, payload, now, bool(message.retain)))

    def snapshot(self) -> list[tuple[str, dict, float, bool]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.stop()
