"""``stream-bridge``: MQTT (QoS 1, persistent session, shared subscription) -> landing directory.

Nothing is lost: a message is acknowledged to the broker (paho ``manual_ack``) only after the file holding
it is fsynced and renamed into place; a bridge killed before that gets the message again from its persistent
session when it reconnects with the same client id (or the broker gives it to another member of the shared
subscription group). Duplicates this can create are removed by the job's (device, seq) dedup.

Every message is checked with ``edge.contract.schema`` here, once: valid ones land as a flat line with only the
fields the job reads, invalid ones as ``kind: "invalid"`` with the reason and the raw payload (the job
dead-letters them); ``stream.landing.to_landing_line``. This per-message work scales out with the bridges.
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stream.config import StreamConfig, load, with_overrides
from edge.contract.cli import report
from edge.contract.errors import BrokerError, SigmawatchError
from stream.landing import Cleaner, LandingWriter, remove_stale_temp_files, to_landing_line

log = logging.getLogger("stream.bridge")


class Bridge:
    def __init__(self, cfg: StreamConfig):
        self.cfg = cfg
        b = cfg.bridge
        self.writer = LandingWriter(b.landing_dir, b.client_id)
        self.cleaner = Cleaner(b.landing_dir, b.consumed_dir, b.client_id) if b.consumed_dir else None
        self.lock = threading.Lock()
        self.pending: list[tuple[int, int, int]] = []  # (mid, qos, connection generation)
        self.generation = 0
        self.connected = threading.Event()
        self.connect_error: Optional[str] = None
        self.stop_event = threading.Event()
        self.last_message = 0.0
        self.first_pending = 0.0
        self.received = self.invalid = 0
        v5 = cfg.mqtt.protocol == "5"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=b.client_id,
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                                  clean_session=None if v5 else False, manual_ack=True)
        if cfg.mqtt.username:
            self.client.username_pw_set(cfg.mqtt.username, cfg.mqtt.password())
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def topics(self) -> list[str]:
        prefix = self.cfg.mqtt.prefix.strip("/")
        group = self.cfg.bridge.group
        return [(f"$share/{group}/" if group else "") + f"{prefix}/+/{kind}" for kind in self.cfg.bridge.kinds]

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.connect_error = f"broker refused the connection: {reason_code}"
            log.error(self.connect_error)
            return
        with self.lock:
            self.generation += 1
        log.info("connected (session present: %s); subscribing %s", flags.session_present, self.topics())
        client.subscribe([(t, 1) for t in self.topics()])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self.connect_error = f"subscription refused: {bad}"
            log.error(self.connect_error)
        else:
            self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self.stop_event.is_set():
            log.warning("disconnected (%s); unacked messages will be redelivered", reason_code)

    def _on_message(self, client, userdata, message):
        now = time.time()
        line, valid, device = to_landing_line(self.cfg.mqtt.prefix, message.topic, message.payload, now,
                                              self.cfg.bridge.max_payload_bytes)
        with self.lock:
            if not self.writer.lines:
                self.first_pending = now
            self.writer.add(line, device if valid else None, now)
            self.pending.append((message.mid, message.qos, self.generation))
            self.last_message = now
            self.received += 1
            self.invalid += not valid

    # ------------------------------------------------------------------ main thread
    def should_roll(self, now: float) -> bool:
        b = self.cfg.bridge
        n = len(self.writer)
        return n > 0 and (n >= b.roll_max_records or now - self.first_pending >= b.roll_interval_s
                          or now - self.last_message >= b.roll_idle_s)

    def roll(self) -> None:
        with self.lock:
            self.writer.roll()
            acks, self.pending = self.pending, []
            generation = self.generation
        for mid, qos, gen in acks:
            # Acks of a previous connection are void: the broker redelivers those messages.
            if qos > 0 and gen == generation:
                self.client.ack(mid, qos)

    def start(self, timeout: float = 10.0) -> None:
        remove_stale_temp_files(self.cfg.bridge.landing_dir, self.cfg.bridge.client_id)
        props = None
        if self.cfg.mqtt.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.cfg.bridge.session_expiry_s
            props.ReceiveMaximum = 65535
        kw = {"clean_start": False, "properties": props} if props is not None else {}
        try:
            self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, self.cfg.mqtt.keepalive_s, **kw)
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect to {self.cfg.mqtt.host}:{self.cfg.mqtt.port}: {exc}") from exc
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.client.loop_stop()
            raise BrokerError(self.connect_error or
                              f"no connection to MQTT broker {self.cfg.mqtt.host}:{self.cfg.mqtt.port} "
                              f"within {timeout:.0f} s: is it running?")

    def run(self, duration: Optional[float] = None) -> None:
        next_clean = time.time()
        next_log = time.time() + 30
        end = time.time() + duration if duration else None
        while not self.stop_event.is_set() and (end is None or time.time() < end):
            now = time.time()
            if self.should_roll(now):
                self.roll()
            if self.cleaner and now >= next_clean:
                try:
                    self.cleaner.run_once()
                except OSError as exc:
                    log.warning("cleanup failed: %s", exc)
                next_clean = now + self.cfg.bridge.cleanup_interval_s
            if now >= next_log:
                log.info("received %d (invalid %d), files %d, cleaned %d", self.received, self.invalid,
                         self.writer.files_written, self.cleaner.deleted if self.cleaner else 0)
                next_log = now + 30
            self.stop_event.wait(0.005)

    def stop(self) -> None:
        self.stop_event.set()
        self.roll()
        self.client.disconnect()
        self.client.loop_stop()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="stream-bridge", description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, help="stream YAML (configs/stream.example.yaml)")
    ap.add_argument("--client-id", help="override bridge.client_id (each bridge needs its own)")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--landing-dir", type=Path)
    ap.add_argument("--duration", type=float, help="stop after this many seconds (default: run until SIGTERM)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load(args.config)
        cfg = with_overrides(cfg, "mqtt", host=args.host, port=args.port)
        cfg = with_overrides(cfg, "bridge", client_id=args.client_id, landing_dir=args.landing_dir)
        bridge = Bridge(cfg)
        bridge.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: bridge.stop_event.set())
        bridge.run(args.duration)
        bridge.stop()
        log.info("stopped: received %d (invalid %d) in %d files", bridge.received, bridge.invalid,
                 bridge.writer.files_written)
        return 0
    except SigmawatchError as exc:
        return report(exc, "stream-bridge")


if __name__ == "__main__":
    raise SystemExit(main())
