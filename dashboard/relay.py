"""The dashboard's MQTT side: subscribe to one broker and feed every message to DashboardState.

Works with any MQTT 3.1.1 broker: host/port, optional TLS (CA file, client certificate,
``--tls-insecure`` for self-signed test brokers) and username/password. Only the paho-mqtt 2
callback API (VERSION2) is used; subscriptions are made in ``on_connect`` so they come back
after a reconnect, and a refused connection is reported (not treated as connected).
"""
from __future__ import annotations

import logging
import os
import ssl
import threading
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from dashboard.state import DashboardState, subscriptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    client_id: str = field(default_factory=lambda: f"sigmawatch-dashboard-{uuid.uuid4().hex[:8]}")
    keepalive: int = 30

    def __post_init__(self):
        if not self.host:
            raise ValueError("broker host is empty: pass --mqtt-host (e.g. 127.0.0.1)")
        if not 0 < int(self.port) < 65536:
            raise ValueError(f"broker port {self.port} is out of range 1-65535 (--mqtt-port)")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ValueError(f"{name.replace('_', ' ')} {path!r} does not exist "
                                 f"(--mqtt-{name.replace('_file', '').replace('_', '-')})")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("client certificate needs both --mqtt-cert and --mqtt-key")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class MqttRelay:
    """One paho client subscribed to the dashboard's topics; ``start()``/``stop()``."""

    def __init__(self, options: BrokerOptions, state: DashboardState):
        self.options = options
        self.state = state
        self.connected = threading.Event()
        self._refused = ""  # kept across the disconnect that follows a refusal
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=options.client_id,
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if options.username:
            self.client.username_pw_set(options.username, options.password)
        if options.tls:
            self.client.tls_set(ca_certs=options.ca_file, certfile=options.cert_file,
                                keyfile=options.key_file, cert_reqs=ssl.CERT_REQUIRED)
            if options.tls_insecure:
                self.client.tls_insecure_set(True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> "MqttRelay":
        self.state.set_broker(False, self.options.url, "connecting")
        self.client.connect_async(self.options.host, self.options.port, keepalive=self.options.keepalive)
        self.client.loop_start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    # ------------------------------------------------------------------ callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            msg = f"broker {self.options.url} refused the connection: {reason_code}"
            log.error("%s (check --mqtt-username/--mqtt-password and TLS options)", msg)
            self._refused = msg
            self.state.set_broker(False, self.options.url, msg)
            return
        self._refused = ""
        topics = subscriptions(self.state.prefix)
        client.subscribe([(t, 0) for t in topics])
        log.info("connected to %s, subscribing to %s", self.options.url, ", ".join(topics))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        """Connected for the dashboard only once the broker acknowledged the subscriptions (SUBACK)."""
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            msg = f"broker {self.options.url} refused the subscriptions: {', '.join(failed)}"
            log.error("%s (check the ACL for this user)", msg)
            self.state.set_broker(False, self.options.url, msg)
            return
        self.state.set_broker(True, self.options.url)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        error = self._refused or ("" if reason_code == 0 else f"disconnected: {reason_code}; reconnecting")
        self.state.set_broker(False, self.options.url, error)

    def _on_message(self, client, userdata, msg):
        try:
            self.state.handle(msg.topic, msg.payload)
        except Exception:  # one bad message must not stop the relay thread
            log.exception("dashboard failed to handle a message on %s", msg.topic)
