"""One MQTT settings model and the one paho-mqtt client every sigmawatch process uses.

:class:`MqttSettings` is the ``mqtt:`` section of every config (the agent's adds its publishing options):
broker host and port, TLS (CA, client certificate and key), user name and password (from a file or a systemd
credential, never from the YAML), client id, keepalive, protocol and topic prefix. The command lines share
one set of flags for it (``edge.contract.cli.add_mqtt_arguments``).

:class:`MqttClient` wraps one paho client (VERSION2 callbacks only) with the rules the anchors teach:
subscriptions are made in ``on_connect`` so they come back after a reconnect; CONNACK and every SUBACK are
checked, so a refused connection or subscription is an error with the broker's reason, never "connected"
(:meth:`MqttClient.wait_ready` raises :class:`BrokerError`); reconnects back off in paho's network thread;
an exception in a handler is logged and never kills that thread; the reason of a failed connection attempt
(refused, TLS verification, DNS) is kept in ``last_error``. Used by the agent, the bridge, the job's sink,
the dashboard, Home Assistant discovery, the demo and the tests.
"""
from __future__ import annotations

import logging
import os
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, Optional, Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.contract.errors import BrokerError, ConfigError
from edge.contract.secrets import resolve_key_file, resolve_password

log = logging.getLogger("sigmawatch.mqtt")

_PUBACK = 0x40                                   # MQTT control packet type PUBACK
_pack_puback = struct.Struct("!BBH").pack         # type, remaining length 2, packet id
ERR_NO_CONN = MQTTErrorCode.MQTT_ERR_NO_CONN
ERR_QUEUE_SIZE = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS

# keys of older configs, with where they went (a clear error instead of "unknown key")
RENAMED_KEYS = {"prefix": "topic_prefix", "keepalive_s": "keepalive"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Strict):
    ca_file: Optional[Path] = Field(None, description="CA bundle that signed the broker's certificate "
                                                      "(None = the system's CAs)")
    cert_file: Optional[Path] = Field(None, description="client certificate (mutual TLS)")
    key_file: Optional[Path] = Field(None, description="client private key file")
    key_credential: Optional[str] = Field(None, description="client key as a systemd credential name")
    insecure: bool = Field(False, description="skip the broker host name check (testing only)")

    @model_validator(mode="after")
    def _pair(self):
        if self.cert_file is not None and self.key_file is None and self.key_credential is None:
            raise ValueError("cert_file needs key_file or key_credential (the client certificate's private key)")
        return self


class MqttSettings(_Strict):
    """How a process reaches the broker. The same keys in every config file and the same ``--mqtt-*`` flags."""
    host: str = Field("127.0.0.1", min_length=1, description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker port (default 1883, 8883 with tls)")
    tls: Optional[TlsSettings] = Field(None, description="connect with TLS (present = on)")
    username: Optional[str] = Field(None, description="MQTT user name (None = anonymous)")
    password_file: Optional[Path] = Field(None, description="file whose first line is the password")
    password_credential: Optional[str] = Field(None, description="systemd credential holding the password "
                                               "(LoadCredential=NAME:/path); preferred over password_file")
    client_id: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,128}$",
                                     description="MQTT client id (None: each program picks its own)")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    topic_prefix: str = Field("sigmawatch", min_length=1, max_length=64, pattern=r"^[^+#\x00]+$",
                              description="first topic level(s) shared by agents, the job and dashboards")

    @model_validator(mode="before")
    @classmethod
    def _no_plain_password_and_renamed_keys(cls, data):
        if isinstance(data, dict):
            if "password" in data:
                raise ValueError("plain-text 'password' is not accepted: put it in a file readable only by this "
                                 "service and set password_file, or use a systemd credential "
                                 "(LoadCredential=mqtt-password:/etc/... + password_credential)")
            for old, new in RENAMED_KEYS.items():
                if old in data:
                    raise ValueError(f"'{old}' was renamed to '{new}' (one MQTT settings model for every program)")
            if data.get("port") is None and data.get("tls") is not None:
                data = {**data, "port": 8883}      # the TLS port, unless one is given
        return data

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("topic_prefix must not be empty")
        return v

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def password(self) -> Optional[str]:
        """The password from the systemd credential or the file (SecretError names which cannot be read);
        else ``$SIGMAWATCH_MQTT_PASSWORD``; None for anonymous access."""
        secret = resolve_password(self.password_file, self.password_credential)
        return secret if secret is not None else os.environ.get("SIGMAWATCH_MQTT_PASSWORD")


def settings_from_flags(args) -> MqttSettings:
    """Settings from the ``--mqtt-*`` flags alone (programs without a config file: the dashboard, Home
    Assistant discovery); ``$SIGMAWATCH_MQTT_USERNAME`` when no user name is given."""
    from edge.contract.cli import mqtt_overrides
    values = mqtt_overrides(args)
    if "username" not in values and os.environ.get("SIGMAWATCH_MQTT_USERNAME"):
        values["username"] = os.environ["SIGMAWATCH_MQTT_USERNAME"]
    try:
        return MqttSettings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("; ".join(f"--mqtt flags: {'.'.join(map(str, e['loc'])) or 'mqtt'}: {e['msg']}"
                                    for e in exc.errors())) from None


# --------------------------------------------------------------------------- received PUBLISH properties
class _LeanProperties(Properties):
    """paho's Properties, built faster. paho decodes the properties of every MQTT 5 PUBLISH it receives into a new
    ``Properties``, whose ``__init__`` builds two 27-entry tables and whose ``unpack`` first deletes each of the 27
    possible attributes (``str.replace`` + ``hasattr`` each): ~16 us per message measured here, about a fifth of
    the bridge's CPU per message. This one shares paho's tables (read only) and returns at once for the common
    empty property list; any other list goes through paho's own ``unpack``. Same result (tested)."""

    _tables = Properties(PacketTypes.PUBLISH)

    def __init__(self, packetType):
        t = self._tables
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", t.types)
        object.__setattr__(self, "names", t.names)
        object.__setattr__(self, "properties", t.properties)

    def unpack(self, buffer):
        if buffer[:1] == b"\x00":          # property length 0: nothing to read
            return self, 1
        return super().unpack(buffer)


def _use_lean_properties() -> bool:
    """Let paho's PUBLISH decoder build :class:`_LeanProperties` (paho 2.x keeps it in ``paho.mqtt._packet``)."""
    try:
        from paho.mqtt import _packet
    except ImportError:       # another paho layout: keep its own, correct and slower
        return False
    if getattr(_packet, "Properties", None) is Properties:
        _packet.Properties = _LeanProperties
    return _packet.Properties is _LeanProperties


LEAN_PROPERTIES = _use_lean_properties()


# --------------------------------------------------------------------------- batch reading of PUBLISH packets
READ_CHUNK = 1 << 18   # bytes read per system call in batch mode


class Received(NamedTuple):
    """One PUBLISH as the batch reader hands it over: the raw ``topic`` (bytes: the caller decides what an
    invalid UTF-8 topic becomes), ``payload``, packet id ``mid`` (0 for QoS 0) and ``qos`` (0 or 1)."""
    topic: bytes
    payload: bytes
    mid: int
    qos: int


_new_received = tuple.__new__     # a Received without NamedTuple's generated __new__ (a Python call per packet)


def split_packets(buf: bytes, pos: int, v5: bool, publishes: list, others: list) -> int:
    """Split the complete MQTT packets of ``buf`` from ``pos``: QoS 0/1 PUBLISH packets are appended to
    ``publishes`` as :class:`Received` and every other packet (CONNACK, SUBACK, PUBACK, PINGRESP, QoS 2
    PUBLISH, DISCONNECT, ...) to ``others`` as ``(index in publishes, its bytes)``, so that paho can handle it
    in order. Returns where the first incomplete packet starts. Raises ValueError for a malformed packet."""
    end_of_data = len(buf)
    while pos < end_of_data:
        # fixed header: the type byte, then the remaining length (1-4 bytes, 7 bits each)
        header = buf[pos]
        length = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= end_of_data:
                return pos
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            i += 1
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise ValueError("malformed MQTT packet: remaining length longer than 4 bytes")
        end = i + length
        if end > end_of_data:
            return pos
        qos = (header >> 1) & 3
        if header >> 4 == 3 and qos < 2:
            topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1]) if length >= 2 else end + 1
            if topic_end + (2 if qos else 0) > end:
                raise ValueError("malformed MQTT PUBLISH: its topic is longer than the packet")
            if qos:
                mid = (buf[topic_end] << 8) | buf[topic_end + 1]
                body = topic_end + 2
            else:
                mid = 0
                body = topic_end
            if v5:                      # skip the properties (a variable byte integer, then that many bytes)
                props = 0
                shift = 0
                while True:
                    if body >= end:
                        raise ValueError("malformed MQTT PUBLISH: its properties are longer than the packet")
                    byte = buf[body]
                    body += 1
                    props |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise ValueError("malformed MQTT PUBLISH: property length longer than 4 bytes")
                body += props
            if body > end:
                raise ValueError("malformed MQTT PUBLISH: its header is longer than the packet")
            publishes.append(_new_received(Received, (buf[i + 2:topic_end], buf[body:end], mid, qos)))
        else:
            others.append((len(publishes), buf[pos:end]))
        pos = end
    return pos


# --------------------------------------------------------------------------- the client
READ_BURST = 200     # packets read per wake-up of paho's network thread (paho: one when nothing is in flight)


class _Paho(paho.Client):
    """paho's client, keeping the exception of the last failed connection attempt (paho drops it), and reading
    what the socket holds in bursts: paho's ``loop_read`` reads one packet per ``select`` (plus its keepalive
    bookkeeping) whenever this client has nothing in flight, which is most of a subscriber's time: a select per
    received message. Here up to READ_BURST packets are read per wake-up, stopping at the first that has not
    fully arrived (paho keeps the partial packet and resumes it)."""
    last_connect_exception: Optional[BaseException] = None
    # batch mode (MqttClient(on_messages=...)): this client reads the socket itself, many packets per system call
    batch_handler: Optional[Callable[[list[Received]], None]] = None
    _rbuf = b""                  # the start of a packet that has not fully arrived (batch mode)
    _feed: Optional[bytes] = None  # one whole packet handed to paho's own reader (batch mode)

    def _sock_recv(self, bufsize: int) -> bytes:
        feed = self._feed
        if feed is None:
            return super()._sock_recv(bufsize)
        if not feed:
            raise BlockingIOError()
        self._feed = feed[bufsize:]
        return feed[:bufsize]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if not hasattr(self, "_packet_read") or not hasattr(self, "_loop_rc_handle"):
            return super().loop_read(max_packets)      # another paho layout: its own loop
        if self.batch_handler is not None:
            return self._batch_read()
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        for _ in range(max(READ_BURST, len(self._out_messages) + len(self._in_messages))):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _batch_read(self) -> MQTTErrorCode:
        """Batch mode: one ``recv`` of up to READ_CHUNK bytes, split into packets (:func:`split_packets`); runs of
        QoS 0/1 PUBLISH packets go to ``batch_handler`` as lists, every other packet to paho's own reader, in the
        order they came. paho reads a packet with at least three system calls (type byte, length bytes one by
        one, body) and builds a message object for each: most of a busy subscriber's CPU."""
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        try:
            data = self._sock_recv(READ_CHUNK)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except OSError as err:
            log.warning("failed to receive on the MQTT socket: %s", err)
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        if not data:
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        buf = self._rbuf + data if self._rbuf else data
        publishes: list[Received] = []
        others: list[tuple[int, bytes]] = []
        try:
            self._rbuf = buf[split_packets(buf, 0, self._protocol == paho.MQTTv5, publishes, others):]
        except (ValueError, IndexError) as exc:
            log.error("malformed packet from the MQTT broker (%s): reconnecting", exc)
            self._rbuf = b""
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_PROTOCOL)
        start = 0
        for index, packet in others:
            if index > start:
                self._deliver(publishes[start:index])
                start = index
            self._feed = packet
            try:
                rc = self._packet_read()
            finally:
                self._feed = None
            if rc > 0:
                return self._loop_rc_handle(rc)
        if start < len(publishes):
            self._deliver(publishes[start:] if start else publishes)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _deliver(self, batch: list[Received]) -> None:
        try:
            self.batch_handler(batch)
        except BaseException:  # noqa: BLE001 - RecursionError, MemoryError...: log, keep the thread alive
            log.exception("handler for %d messages failed", len(batch))

    def reconnect(self) -> MQTTErrorCode:
        self._rbuf = b""              # a partial packet of the old connection is not the start of the new one
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_connect_exception = exc
            raise


def _describe(exc: BaseException, settings: MqttSettings) -> str:
    where = settings.url
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: the broker {where} presented a certificate this client does not trust ({exc.verify_message}); "
                "check mqtt.tls.ca_file (--mqtt-ca)")
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed ({exc.reason or exc}); is that port a TLS listener?"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused: is the broker running and listening on that port?"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot reach {where}: {exc.strerror}"
    return f"cannot reach {where}: {exc}"


class MqttClient:
    """One connection to the broker. Handlers run in paho's network thread and must be quick.

    ``on_state(connected, reason)`` reports every change: ready, refused, unreachable, disconnected.
    ``on_message(message)`` gets paho's message (``.topic``, ``.payload``, ``.mid``, ``.qos``, ``.retain``);
    with ``manual_ack`` it must call :meth:`ack` once the message is safe. ``on_messages(batch)`` instead gets
    every QoS 0/1 message as a :class:`Received` (raw topic bytes, payload, mid, qos), many per call, read in
    batch mode (``_Paho._batch_read``): for a high-rate subscriber (the bridge). ``on_ack(mid)`` is called for every
    PUBACK. ``session_expiry_s`` asks for a persistent session (the broker keeps subscriptions and queued
    messages while this client is away): MQTT 5 session expiry, or ``clean_session=False`` under 3.1.1.
    """

    def __init__(self, settings: MqttSettings, *, client_id: str,
                 subscriptions: Sequence[tuple[str, int]] = (),
                 optional_subscriptions: Sequence[tuple[str, int]] = (),
                 on_optional_refused: Optional[Callable[[str, str], None]] = None,
                 on_message: Optional[Callable[[Any], None]] = None,
                 on_messages: Optional[Callable[[list[Received]], None]] = None,
                 on_ack: Optional[Callable[[int], None]] = None,
                 on_connected: Optional[Callable[[bool], None]] = None,
                 on_state: Optional[Callable[[bool, str], None]] = None,
                 will: Optional[tuple[str, bytes]] = None,
                 session_expiry_s: Optional[int] = None, manual_ack: bool = False,
                 receive_maximum: Optional[int] = None, max_inflight: int = 20, max_queued: int = 0,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 10.0):
        self.settings = settings
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        # subscriptions a client can do without (the agent's landing confirmations under an older ACL): a refusal
        # is reported to on_optional_refused(topic, reason) instead of refusing the whole connection
        self.optional_subscriptions = list(optional_subscriptions)
        self._on_optional_refused = on_optional_refused
        self._optional_mids: dict[int, str] = {}
        if on_message is not None and on_messages is not None:
            raise ValueError("give on_message or on_messages, not both")
        self._on_message = on_message
        self._on_ack = on_ack
        self._on_connected = on_connected
        self._on_state = on_state
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._ready = threading.Event()
        self._connack = False                      # a CONNACK arrived on the current connection attempt
        self._pending_subs: set[int] = set()
        self._stopping = False
        self.refused: Optional[str] = None           # the broker said no (credentials, ACL): retrying won't help
        self.last_error: Optional[str] = None
        self.failed_attempts = 0                     # connection attempts failed since the last good one
        self._waits = 0                              # paho's reconnect waits since then (a lost connection: one more)
        self._backoff = (max(1, int(reconnect_min_s)), max(1, int(reconnect_max_s)))
        self.connects = 0
        self.session_present = False
        v5 = settings.protocol == "5"
        c = _Paho(CallbackAPIVersion.VERSION2, client_id=client_id,
                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                  clean_session=None if v5 else session_expiry_s is None, manual_ack=manual_ack)
        if settings.username:
            c.username_pw_set(settings.username, settings.password())
        if settings.tls is not None:
            t = settings.tls
            key = resolve_key_file(t.key_file, t.key_credential)
            for name, flag, path in (("ca_file", "--mqtt-ca", t.ca_file), ("cert_file", "--mqtt-cert", t.cert_file)):
                if path is not None and not Path(path).is_file():
                    raise ConfigError(f"mqtt.tls.{name} ({flag}): {path} does not exist or is not a file")
            try:
                c.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None,
                          certfile=str(t.cert_file) if t.cert_file else None, keyfile=str(key) if key else None,
                          cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"mqtt.tls: cannot load the CA / client certificate / key "
                                  f"({t.ca_file}, {t.cert_file}, {key}): {exc}") from None
            if t.insecure:
                c.tls_insecure_set(True)
        if will:
            c.will_set(will[0], will[1], qos=1, retain=True)
        c.reconnect_delay_set(min_delay=self._backoff[0], max_delay=self._backoff[1])
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(max_queued)
        c.on_connect = self._handle_connect
        c.on_connect_fail = self._handle_connect_fail
        c.on_disconnect = self._handle_disconnect
        c.on_subscribe = self._handle_subscribe
        c.on_publish = self._handle_publish
        c.on_message = self._handle_message
        c.batch_handler = on_messages
        self._client = c

    # ------------------------------------------------------------------ paho's network thread
    def _handle_connect(self, client, userdata, flags, reason_code, properties):
        self._connack = True
        if reason_code.is_failure:
            self.failed_attempts += 1
            self._waits += 1
            refusal = f"the broker {self.settings.url} refused the connection: {reason_code}"
            # said once; the same refusal on every retry is the owner's to repeat (the agent: once per backoff step)
            (log.debug if refusal == self.refused else log.error)(
                "%s (check the user name, password and TLS options)", refusal)
            self.refused = self.last_error = refusal
            self._notify(False, self.refused)
            return
        self.refused = None
        self.last_error = None
        self.failed_attempts = self._waits = 0
        self.connects += 1
        self.session_present = bool(getattr(flags, "session_present", False))
        self._pending_subs.clear()
        self._optional_mids.clear()
        for topic, qos in self.subscriptions + self.optional_subscriptions:
            result, mid = client.subscribe(topic, qos)
            if result != SUCCESS:
                self.last_error = f"subscribe to {topic} failed: {paho.error_string(result)}"
                log.error(self.last_error)
            else:
                self._pending_subs.add(mid)
                if (topic, qos) in self.optional_subscriptions:
                    self._optional_mids[mid] = topic
        log.info("MQTT connected to %s as %s%s", self.settings.url, self.client_id,
                 " (session present)" if self.session_present else "")
        if not self._pending_subs:
            self._set_ready()

    def _notify(self, connected: bool, reason: str = "") -> None:
        if self._on_state is not None:
            try:
                self._on_state(connected, reason)
            except Exception:  # noqa: BLE001 - never let a handler kill paho's thread
                log.exception("on_state handler failed")

    def _set_ready(self) -> None:
        self._ready.set()
        self._notify(True)
        if self._on_connected is not None:
            try:
                self._on_connected(self.session_present)
            except Exception:  # noqa: BLE001 - never let a handler kill paho's thread
                log.exception("on_connected handler failed")

    @property
    def retry_in_s(self) -> int:
        """paho's wait before its next attempt: the minimum after the first failure or a lost connection, doubling
        with each failure after that, capped (paho restarts at the minimum only after a successful CONNACK)."""
        low, high = self._backoff
        return min(low * 2 ** max(self._waits - 1, 0), high)

    def _handle_connect_fail(self, client, userdata):
        self.failed_attempts += 1
        self._waits += 1
        exc = client.last_connect_exception
        self.last_error = _describe(exc, self.settings) if exc else f"cannot reach {self.settings.url}"
        self._notify(False, self.last_error)

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties):
        was_ready, answered = self._ready.is_set(), self._connack
        self._ready.clear()
        self._connack = False
        if self._stopping:
            return
        if not answered and not self.refused:
            self.failed_attempts += 1
            self._waits += 1
            self.last_error = (f"{self.settings.url} closed the connection without answering: is it a TLS listener "
                               "(set mqtt.tls, --mqtt-tls / --mqtt-ca) or not an MQTT port at all?")
            self._notify(False, self.last_error)
            return
        if was_ready or reason_code.is_failure:
            if was_ready:
                self._waits += 1
            if not self.refused:
                self.last_error = f"disconnected from {self.settings.url}: {reason_code}"
            if was_ready or not self.refused:     # after a refused CONNACK the refusal has been said already
                log.warning("MQTT disconnected from %s (%s); reconnecting with backoff", self.settings.url,
                            reason_code)
            self._notify(False, self.refused or f"lost the connection to {self.settings.url} ({reason_code})")

    def _handle_subscribe(self, client, userdata, mid, reason_code_list, properties):
        failed = [str(rc) for rc in reason_code_list if rc.is_failure]
        optional = self._optional_mids.pop(mid, None)
        if failed and optional is not None:
            reason = f"the broker {self.settings.url} refused the subscription to {optional}: {', '.join(failed)}"
            log.warning("%s (check the ACL for this user)", reason)
            if self._on_optional_refused is not None:
                try:
                    self._on_optional_refused(optional, reason)
                except Exception:  # noqa: BLE001 - never let a handler kill paho's thread
                    log.exception("on_optional_refused handler failed")
            failed = []
        if failed:
            topics = ", ".join(t for t, _ in self.subscriptions)
            self.refused = self.last_error = (f"the broker {self.settings.url} refused the subscription to {topics}: "
                                              f"{', '.join(failed)} (check the ACL for this user)")
            log.error(self.refused)
            self._notify(False, self.refused)
            return
        self._pending_subs.discard(mid)
        if not self._pending_subs and not self._ready.is_set():
            self._set_ready()

    def _handle_publish(self, client, userdata, mid, reason_code, properties):
        if reason_code.is_failure:
            log.error("the broker rejected publish mid=%s: %s", mid, reason_code)
        if self._on_ack is not None:
            try:
                self._on_ack(mid)
            except Exception:  # noqa: BLE001
                log.exception("on_ack handler failed")

    def _handle_message(self, client, userdata, message):
        if self._on_message is None:
            return
        try:
            self._on_message(message)
        except BaseException:  # noqa: BLE001 - RecursionError, MemoryError...: log, keep the thread alive
            log.exception("handler for a message on %s failed", message.topic)

    # ------------------------------------------------------------------ API
    def start(self) -> MqttClient:
        """Connect in the background (paho's network thread reconnects with backoff)."""
        kw: dict[str, Any] = {}
        if self.settings.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            if self._session_expiry_s is not None:
                props.SessionExpiryInterval = int(self._session_expiry_s)
                kw["clean_start"] = False
            if self._receive_maximum:
                props.ReceiveMaximum = int(self._receive_maximum)
            kw["properties"] = props
        try:
            self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive, **kw)
        except (OSError, ValueError) as exc:
            raise BrokerError(_describe(exc, self.settings)) from None
        self._client.loop_start()
        return self

    def wait_ready(self, timeout: float) -> None:
        """Wait for CONNACK and every SUBACK. Raises BrokerError with the reason when the broker refused, or
        did not answer within ``timeout`` (then paho keeps trying in the background)."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.refused:
                raise BrokerError(self.refused)
            if time.monotonic() >= deadline:
                break
        else:
            return
        if self.refused:
            raise BrokerError(self.refused)
        raise BrokerError(f"no answer from the MQTT broker {self.settings.url} within {timeout:g} s"
                          + (f" ({self.last_error})" if self.last_error else ": is it running?"))

    @property
    def connected(self) -> bool:
        """Connected, and every subscription acknowledged."""
        return self._ready.is_set()

    @property
    def network_thread_alive(self) -> bool:
        thread = getattr(self._client, "_thread", None)
        return thread is not None and thread.is_alive()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> tuple[MQTTErrorCode, int]:
        """Hand a message to paho; returns (rc, mid). rc NO_CONN: paho queued it for the reconnect (QoS > 0)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc, info.mid

    def publish_and_wait(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                         timeout: float = 5.0) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise BrokerError(f"publish to {topic} on {self.settings.url} failed: {exc}") from None
        if not info.is_published():
            raise BrokerError(f"publish to {topic} on {self.settings.url} was not acknowledged within {timeout:g} s")

    def ack(self, mid: int, qos: int) -> None:
        """With ``manual_ack``: acknowledge a received message (PUBACK) once it is safe."""
        self._client.ack(mid, qos)

    def ack_many(self, mids: Sequence[int]) -> None:
        """With ``manual_ack``: acknowledge many QoS 1 messages at once. paho's ``ack`` queues one packet per
        message and wakes its network thread for each (two system calls per message); here all the PUBACKs go
        out as one queued write. Falls back to ``ack`` per message if paho's internals are not the expected ones."""
        if not mids:
            return
        queue = getattr(self._client, "_packet_queue", None)
        if queue is None:
            for mid in mids:
                self._client.ack(mid, 1)
            return
        queue(_PUBACK, b"".join([_pack_puback(_PUBACK, 2, mid) for mid in mids]), 0, 0)

    def stop(self, final: Optional[tuple[str, bytes]] = None, timeout: float = 2.0) -> None:
        """Optionally publish ``final`` (retained, QoS 1, e.g. the 'offline' status), then disconnect."""
        if final and self.connected:
            try:
                self.publish_and_wait(final[0], final[1], qos=1, retain=True, timeout=timeout)
            except BrokerError as exc:
                log.warning("%s", exc)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._ready.clear()


def check_broker(settings: MqttSettings, client_id: str, timeout: float = 5.0) -> None:
    """Connect once and disconnect; raises BrokerError with the broker's reason on failure."""
    client = MqttClient(settings, client_id=client_id).start()
    try:
        client.wait_ready(timeout)
    finally:
        client.stop()
