"""The one module that touches paho-mqtt (2.x, VERSION2 callbacks only).

``MqttLink`` connects asynchronously and reconnects with backoff in paho's network thread, checks
CONNACK/SUBACK reason codes (a refused connection is reported, never treated as connected),
subscribes inside ``on_connect`` so subscriptions come back after every reconnect, sets the last
will, and reports PUBACKs by message id to ``on_ack``. Everything else in the agent sees only
``start``, ``publish``, ``connected``, ``last_error`` and ``stop``.
"""
from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger("edge.mqtt")

ERR_NO_CONN = MQTTErrorCode.MQTT_ERR_NO_CONN
ERR_QUEUE_SIZE = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS


@dataclass
class LinkOptions:
    host: str
    port: int
    client_id: str
    username: Optional[str] = None
    password: Optional[str] = None
    ca_file: Optional[Path] = None
    cert_file: Optional[Path] = None
    key_file: Optional[Path] = None
    tls: bool = False
    tls_insecure: bool = False
    keepalive: int = 30
    will: Optional[tuple[str, bytes]] = None          # (topic, payload), retained, QoS 1
    subscriptions: list[tuple[str, int]] = field(default_factory=list)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 10.0
    max_inflight: int = 100


def _auth_and_tls(c: paho.Client, options: LinkOptions) -> None:
    if options.username:
        c.username_pw_set(options.username, options.password)
    if options.tls or options.ca_file or options.cert_file:
        c.tls_set(ca_certs=str(options.ca_file) if options.ca_file else None,
                  certfile=str(options.cert_file) if options.cert_file else None,
                  keyfile=str(options.key_file) if options.key_file else None,
                  cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if options.tls_insecure:
            c.tls_insecure_set(True)


class MqttLink:
    def __init__(self, options: LinkOptions, *,
                 on_ack: Callable[[int], None] = lambda mid: None,
                 on_message: Callable[[str, bytes], None] = lambda topic, payload: None,
                 on_connected: Callable[[], None] = lambda: None):
        self.options = options
        self._on_ack = on_ack
        self._on_message = on_message
        self._on_connected = on_connected
        self._connected = threading.Event()
        self.last_error: str | None = None
        self.connects = 0
        self.bytes_published = 0
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=options.client_id, clean_session=True,
                        protocol=paho.MQTTv311)
        _auth_and_tls(c, options)
        if options.will:
            c.will_set(options.will[0], options.will[1], qos=1, retain=True)
        c.reconnect_delay_set(min_delay=max(1, int(options.reconnect_min_s)),
                              max_delay=max(1, int(options.reconnect_max_s)))
        c.max_inflight_messages_set(options.max_inflight)
        c.max_queued_messages_set(0)  # the caller bounds what it hands over (see Publisher's window)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_publish = self._handle_publish
        c.on_message = self._handle_message
        c.on_subscribe = self._handle_subscribe
        self._client = c

    # -- callbacks (paho's network thread)
    def _handle_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error("MQTT connect to %s:%s refused: %s", self.options.host, self.options.port, reason_code)
            self._connected.clear()
            return
        self.connects += 1
        self.last_error = None
        for topic, qos in self.options.subscriptions:
            result, _mid = client.subscribe(topic, qos)
            if result != SUCCESS:
                log.error("subscribe to %s failed: %s", topic, paho.error_string(result))
        self._connected.set()
        log.info("MQTT connected to %s:%s", self.options.host, self.options.port)
        try:
            self._on_connected()
        except Exception:  # never let a callback error kill paho's thread
            log.exception("on_connected handler failed")

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties):
        was = self._connected.is_set()
        self._connected.clear()
        if reason_code.is_failure or was:
            self.last_error = f"disconnected: {reason_code}"
            log.warning("MQTT disconnected (%s); paho reconnects with backoff", reason_code)

    def _handle_subscribe(self, client, userdata, mid, reason_code_list, properties):
        for rc in reason_code_list:
            if rc.is_failure:
                log.error("broker refused a subscription: %s", rc)

    def _handle_publish(self, client, userdata, mid, reason_code, properties):
        if reason_code.is_failure:
            log.error("broker rejected publish mid=%s: %s", mid, reason_code)
        self._on_ack(mid)

    def _handle_message(self, client, userdata, message):
        try:
            self._on_message(message.topic, bytes(message.payload))
        except Exception:
            log.exception("handler for %s failed", message.topic)

    # -- API
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        self._client.connect_async(self.options.host, self.options.port, keepalive=self.options.keepalive)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> tuple[MQTTErrorCode, int]:
        """Hand a message to paho. Returns (rc, mid); rc NO_CONN means paho queued it for the reconnect."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc in (SUCCESS, ERR_NO_CONN):
            self.bytes_published += len(payload)
        return info.rc, info.mid

    def stop(self, final: Optional[tuple[str, bytes]] = None, timeout: float = 2.0) -> None:
        """Optionally publish ``final`` (retained, QoS 1, e.g. the 'offline' status), then disconnect."""
        if final and self.connected:
            info = self._client.publish(final[0], final[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()


def check_broker(options: LinkOptions, timeout: float = 5.0) -> None:
    """Connect once and disconnect; raises ConnectionError with the broker's reason on failure."""
    result: dict = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        done.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=options.client_id + "-check", clean_session=True)
    _auth_and_tls(c, options)
    c.on_connect = on_connect
    try:
        c.connect(options.host, options.port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"cannot reach MQTT broker {options.host}:{options.port}: {exc}") from None
    c.loop_start()
    try:
        if not done.wait(timeout):
            raise ConnectionError(f"MQTT broker {options.host}:{options.port} did not answer within {timeout:.0f} s")
        if result["rc"].is_failure:
            raise ConnectionError(f"MQTT broker {options.host}:{options.port} refused the connection: {result['rc']}")
    finally:
        c.disconnect()
        c.loop_stop()
