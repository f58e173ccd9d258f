"""A small QoS 1 MQTT publisher/collector for generated streams (tests, benchmarks, demos).

Publishes through a bounded window of unacknowledged messages (paho fails beyond 65,535 in flight).
"""
from __future__ import annotations

import json
import threading
import time
from typing import Callable, Iterable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract.errors import BrokerError


def _connect(client: mqtt.Client, host: str, port: int, timeout: float) -> None:
    ready = threading.Event()
    err: list[str] = []

    def on_connect(c, u, flags, rc, props):
        if rc.is_failure:
            err.append(str(rc))
        ready.set()

    client.on_connect = on_connect
    client.connect(host, port, 30)
    client.loop_start()
    if not ready.wait(timeout) or err:
        client.loop_stop()
        raise BrokerError(f"cannot connect to MQTT broker {host}:{port}: {err or 'timeout'}")


class Publisher:
    def __init__(self, host: str, port: int, client_id: str = "", max_inflight: int = 1000):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(max_inflight)
        self.window = threading.Semaphore(max_inflight)
        self.acked = 0
        self.client.on_publish = self._on_publish
        _connect(self.client, host, port, 10)
        self.published = 0

    def _on_publish(self, *args) -> None:
        self.acked += 1
        self.window.release()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if not self.window.acquire(timeout=30):
            raise BrokerError("publish window did not drain in 30 s: is the broker alive?")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.window.release()
            raise BrokerError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
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
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    """Subscribes to topic filters and keeps every message (topic, decoded JSON, arrival time)."""

    def __init__(self, host: str, port: int, filters: list[str]):
        self.messages: list[tuple[str, dict, float, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self._filters = filters
        _connect(self.client, host, port, 10)
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        done.wait(10)

    def _on_message(self, c, u, message):
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
        self.client.disconnect()
        self.client.loop_stop()
