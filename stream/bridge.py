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

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Optional

from edge.contract.cli import ArgumentParser, add_mqtt_arguments, mqtt_overrides, run
from edge.contract.errors import BrokerError
from edge.contract.mqtt import MqttClient
from stream.config import StreamConfig, load, with_mqtt_overrides, with_overrides
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
        self.stop_event = threading.Event()
        self.last_message = 0.0
        self.first_pending = 0.0
        self.received = self.invalid = 0
        # a persistent session (the broker keeps this bridge's queue while it is away) and manual acks: a
        # message is acknowledged only once the landing file holding it is durable (``roll``)
        self.client = MqttClient(cfg.mqtt, client_id=b.client_id, subscriptions=[(t, 1) for t in self.topics()],
                                 on_message=self._on_message, session_expiry_s=b.session_expiry_s, manual_ack=True,
                                 receive_maximum=65535)

    def topics(self) -> list[str]:
        prefix = self.cfg.mqtt.topic_prefix
        group = self.cfg.bridge.group
        return [(f"$share/{group}/" if group else "") + f"{prefix}/+/{kind}" for kind in self.cfg.bridge.kinds]

    # ------------------------------------------------------------------ paho's network thread
    def _on_message(self, message) -> None:
        now = time.time()
        line, valid, device = to_landing_line(self.cfg.mqtt.topic_prefix, message.topic, message.payload, now,
                                              self.cfg.bridge.max_payload_bytes)
        with self.lock:
            if not self.writer.lines:
                self.first_pending = now
            self.writer.add(line, device if valid else None, now)
            # the connection it came on: CONNACKs counted before any message of that connection arrives
            self.pending.append((message.mid, message.qos, self.client.connects))
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
            generation = self.client.connects
        for mid, qos, gen in acks:
            # Acks of a previous connection are void: the broker redelivers those messages.
            if qos > 0 and gen == generation:
                self.client.ack(mid, qos)

    def start(self, timeout: float = 10.0) -> None:
        remove_stale_temp_files(self.cfg.bridge.landing_dir, self.cfg.bridge.client_id)
        self.client.start()
        try:
            self.client.wait_ready(timeout)
        except BrokerError:
            self.client.stop()
            raise
        log.info("subscribed to %s on %s as %s", ", ".join(self.topics()), self.cfg.mqtt.url, self.cfg.bridge.client_id)

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
        self.client.stop()


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="stream-bridge", description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, help="stream YAML (configs/stream.example.yaml)")
    ap.add_argument("--client-id", help="override bridge.client_id (each bridge needs its own)")
    ap.add_argument("--landing-dir", type=Path, help="override bridge.landing_dir")
    ap.add_argument("--duration", type=float, help="stop after this many seconds (default: run until SIGTERM)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_mqtt_arguments(ap)
    return ap


def _main(args) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = with_mqtt_overrides(load(args.config), mqtt_overrides(args))
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


def main(argv: Optional[list[str]] = None) -> int:
    return run("stream-bridge", lambda: _main(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
