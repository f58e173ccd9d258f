"""A lean MQTT 3.1.1 QoS 1 publisher for load generators (``bench.capacity``'s simulated cameras).

The cameras of a capacity run share the machine with what they load, so they must cost little: paho's Python
client takes 0.5-1.4 cores for 4,000 messages a second here, which starves the chain being measured. This one
writes PUBLISH packets straight to a socket, several per ``sendall``, and a reader thread counts the PUBACKs;
``close`` waits until every message is acknowledged (the broker has it) and says how many were not. QoS 1 on
the wire as an agent sends it; no reconnects, no retries: a load generator that loses its broker has failed.
"""
from __future__ import annotations

import socket
import struct
import threading
import time


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _utf8(client_id)  # clean session
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """A QoS 1 PUBLISH (not retained, not a duplicate)."""
    var = struct.pack("!H", len(topic)) + topic + struct.pack("!H", packet_id)
    return b"\x32" + _remaining_length(len(var) + len(payload)) + var + payload


class BurstPublisher:
    """QoS 1 publishes in batches; at most ``max_inflight`` unacknowledged (packet ids are 1..65535)."""

    def __init__(self, host: str, port: int, client_id: str, max_inflight: int = 20_000, timeout: float = 10.0):
        if not 0 < max_inflight < 65_535:
            raise ValueError("max_inflight must be between 1 and 65,534 (MQTT packet ids are 16 bits)")
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.sendall(connect_packet(client_id))
        connack = self._read_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection (CONNACK {connack.hex()})")
        self.sock.settimeout(None)
        self.max_inflight = max_inflight
        self.published = 0
        self.acked = 0
        self.error: Exception | None = None
        self._next_id = 0
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_acks, name="puback-reader", daemon=True)
        self._reader.start()

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            buf += chunk
        return buf

    def _read_acks(self) -> None:
        pending = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                pending += chunk
                acks = 0
                while len(pending) >= 2:             # PUBACKs are 4 bytes; skip anything else whole
                    kind, length = pending[0], pending[1]
                    if length & 0x80:
                        raise ConnectionError(f"unexpected packet 0x{kind:02x} from the broker")
                    if len(pending) < 2 + length:
                        break
                    if kind == 0x40:
                        acks += 1
                    pending = pending[2 + length:]
                if acks:
                    with self._cond:
                        self.acked += acks
                        self._cond.notify_all()
        except OSError as exc:                       # closed by close(), or the broker went away
            with self._cond:
                self.error = exc
                self._cond.notify_all()

    def publish_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Send ``(topic, payload)`` pairs as QoS 1 PUBLISH packets in one write (waits while too many are in
        flight)."""
        with self._cond:
            while self.published + len(messages) - self.acked > self.max_inflight and self.error is None:
                self._cond.wait(1.0)
            if self.error is not None:
                raise ConnectionError(f"publisher lost its broker: {self.error}")
        packets = []
        for topic, payload in messages:
            self._next_id = self._next_id % 65_535 + 1
            packets.append(publish_packet(topic, self._next_id, payload))
        self.sock.sendall(b"".join(packets))
        with self._cond:
            self.published += len(messages)

    def close(self, timeout: float = 60.0) -> int:
        """Wait until every message is acknowledged, disconnect; returns how many were not acknowledged."""
        end = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.published and self.error is None and time.monotonic() < end:
                self._cond.wait(0.5)
            missing = self.published - self.acked
        try:
            self.sock.sendall(b"\xe0\x00")           # DISCONNECT
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        return missing
