"""``stream-bridge``: MQTT (QoS 1, shared subscription) -> landing directory, with landing confirmations.

Nothing is lost: a message is acknowledged to the broker (paho ``manual_ack``) and confirmed to its agent
(``<prefix>/<device>/landed``, ``stream.confirm``; detections and track events, each by its own sequence
counter) only after the landing file holding it is fsynced, renamed and its directory fsynced. Agents keep every message in their outbox until a confirmation covers it and send
it again when none came in time, so neither a broker crash (mosquitto does not persist before its PUBACK) nor
a dead bridge loses anything; the copies this creates are removed by the job's (device, seq) dedup.

No payload stops the bridge: every message becomes a landing line (``stream.landing.to_landing_line`` never
raises); valid ones land as a flat line with only the fields the job reads, the rest as ``kind: "invalid"`` with
the reason and the raw payload (the job dead-letters them). If paho's network thread dies anyway, the bridge
exits (code 6) instead of running deaf; its supervisor restarts it.

When the landing directory cannot be written (disk full, I/O error) the bridge keeps what it received in memory
(the broker sends at most the bridge's receive maximum of unacknowledged messages), acknowledges and confirms
nothing, says so in its log and its retained status (``<prefix>/_bridge/<client_id>/status``: online, degraded,
offline) and retries every ``retry_interval_s`` until the write succeeds.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Optional

from edge.contract import schema
from edge.contract.cli import ArgumentParser, add_mqtt_arguments, mqtt_overrides, run
from edge.contract.errors import BrokerError
from edge.contract.mqtt import MqttClient, Received
from edge.contract.sdnotify import Notifier
from stream.config import StreamConfig, load, with_mqtt_overrides, with_overrides
from stream.confirm import Confirmations
from stream.landing import Cleaner, LandingWriter, remove_stale_temp_files
from stream.landing_fast import LandingConverter

log = logging.getLogger("stream.bridge")


class Bridge:
    def __init__(self, cfg: StreamConfig):
        self.cfg = cfg
        b = cfg.bridge
        prefix = cfg.mqtt.topic_prefix
        self.writer = LandingWriter(b.landing_dir, b.client_id)
        self.converter = LandingConverter(prefix, b.max_payload_bytes)
        self.cleaner = Cleaner(b.landing_dir, b.consumed_dir, b.client_id) if b.consumed_dir else None
        self.confirmations = Confirmations(prefix, b.client_id, b.confirm_interval_s) if b.confirm else None
        self.lock = threading.Lock()
        # per received batch: (connection generation, QoS 1 mids, (mid, qos) of the others)
        self.pending: list[tuple[int, list[int], list[tuple[int, int]]]] = []
        self.stop_event = threading.Event()
        self.last_message = 0.0
        self.first_pending = 0.0
        self.received = self.invalid = self.landed = 0
        self.landing_error: Optional[str] = None       # the landing directory's last failure (None = writing)
        self.retry_at = 0.0
        self.beat = time.monotonic()                   # the main loop's last turn (systemd watchdog)
        self.status_topic = schema.bridge_status_topic(prefix, b.client_id)
        self.idle_roll = cfg.mqtt.protocol == "3.1.1"
        # manual acks: a message is acknowledged only once the landing file holding it is durable (``roll``)
        self.client = MqttClient(cfg.mqtt, client_id=b.client_id, subscriptions=[(t, 1) for t in self.topics()],
                                 on_messages=self._on_messages, on_connected=self._on_connected,
                                 will=(self.status_topic, self.status_payload("offline", "connection lost (last will)")),
                                 session_expiry_s=b.session_expiry_s or None, manual_ack=True,
                                 receive_maximum=65535, max_inflight=1000)

    def topics(self) -> list[str]:
        prefix = self.cfg.mqtt.topic_prefix
        group = self.cfg.bridge.group
        return [(f"$share/{group}/" if group else "") + f"{prefix}/+/{kind}" for kind in self.cfg.bridge.kinds]

    # ------------------------------------------------------------------ status
    @property
    def state(self) -> str:
        return "degraded" if self.landing_error else "online"

    def status_payload(self, state: str, reason: Optional[str] = None) -> bytes:
        return schema.encode({"schema": schema.SCHEMA_VERSION, "type": "bridge_status",
                              "bridge": self.cfg.bridge.client_id, "state": state, "ts": round(time.time(), 3),
                              "reason": reason, "confirms": self.confirmations is not None,
                              "buffered": len(self.writer), "landed": self.landed})

    def publish_status(self) -> None:
        reason = f"landing directory {self.cfg.bridge.landing_dir}: {self.landing_error}" if self.landing_error else None
        self.client.publish(self.status_topic, self.status_payload(self.state, reason), qos=1, retain=True)

    # ------------------------------------------------------------------ paho's network thread
    def _on_connected(self, session_present: bool) -> None:
        self.publish_status()

    def _on_messages(self, batch: list[Received]) -> None:
        """Every message of one read from the broker (``edge.contract.mqtt.Received``): its landing line, then all
        of them into the writer under one lock. The batch shares one receive time (the read's)."""
        now = time.time()
        landed = self.converter.convert_batch(batch, now)      # never raises: failures land as invalid lines
        acks = [mid for _, _, mid, qos in batch if qos == 1]
        # (mid, qos) of QoS 0 / 2 messages (rare: agents publish QoS 1)
        others = [(mid, qos) for _, _, mid, qos in batch if qos != 1] if len(acks) < len(batch) else []
        with self.lock:
            if not self.writer.lines:
                self.first_pending = now
            invalid = self.writer.add_many(landed, now, [item[0] for item in batch])
            # the connection they came on: CONNACKs counted before any message of that connection arrives
            self.pending.append((self.client.connects, acks, others))
            self.last_message = now
            self.received += len(landed)
            self.invalid += invalid

    # ------------------------------------------------------------------ main thread
    def should_roll(self, now: float) -> bool:
        b = self.cfg.bridge
        n = len(self.writer)
        if n == 0 or now < self.retry_at:
            return False
        age = now - self.first_pending
        return (n >= b.roll_max_records or age >= b.roll_interval_s
                or (n >= b.roll_burst_records and age >= b.roll_busy_s)
                or ((self.idle_roll or n >= b.roll_burst_records) and now - self.last_message >= b.roll_idle_s))

    def roll(self) -> bool:
        """Write what is buffered as one durable file, then acknowledge and confirm it. False when the landing
        directory failed (the batch is kept for the next attempt, nothing is acknowledged)."""
        with self.lock:
            batch = self.writer.take()
            acks, self.pending = self.pending, []
            generation = self.client.connects
        if not batch.lines:
            return True
        try:
            self.writer.write(batch)
        except OSError as exc:
            with self.lock:
                self.writer.put_back(batch)
                self.pending = acks + self.pending
            self._landing_failed(exc)
            return False
        self.landed += len(batch.lines)
        if self.landing_error is not None:
            log.warning("landing directory %s writable again: landed %d held messages; acknowledging and "
                        "confirming again", self.cfg.bridge.landing_dir, len(batch.lines))
            self.landing_error = None
            self.publish_status()
        # Acks of a previous connection are void: the broker redelivers those messages.
        self.client.ack_many([mid for gen, mids, _ in acks if gen == generation for mid in mids])
        for gen, _, others in acks:
            for mid, qos in others:
                if qos == 2 and gen == generation:
                    self.client.ack(mid, qos)
        if self.confirmations is not None:
            self.confirmations.add(batch.seqs)
        return True

    def _landing_failed(self, exc: OSError) -> None:
        self.retry_at = time.time() + self.cfg.bridge.retry_interval_s
        error = f"{exc.strerror or exc} (errno {exc.errno})" if exc.errno else str(exc)
        if error != self.landing_error:
            log.error("cannot write the landing directory %s: %s; holding %d messages, acknowledging and confirming "
                      "nothing, retrying every %g s", self.cfg.bridge.landing_dir, error, len(self.writer),
                      self.cfg.bridge.retry_interval_s)
            self.landing_error = error
            self.publish_status()

    def confirm(self, force: bool = False) -> None:
        c = self.confirmations
        if c is not None and (c.due() or (force and c.waiting)):
            for topic, payload in c.take():
                self.client.publish(topic, payload, qos=1)

    def start(self, timeout: float = 10.0) -> None:
        remove_stale_temp_files(self.cfg.bridge.landing_dir, self.cfg.bridge.client_id)
        self.client.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.wait_ready(0.2)
                break
            except BrokerError:
                if self.client.refused or time.monotonic() >= deadline:
                    self.client.stop()
                    raise
                if self.client.connects and self.received:
                    # a persistent session with a backlog: the broker sends it before it answers the SUBSCRIBE;
                    # land it now (the SUBACK follows the backlog)
                    log.warning("connected and receiving a backlog before the SUBACK; landing it")
                    break
        log.info("subscribed to %s on %s as %s (landing confirmations %s)", ", ".join(self.topics()),
                 self.cfg.mqtt.url, self.cfg.bridge.client_id, "on" if self.confirmations else "off")

    def run(self, duration: Optional[float] = None) -> None:
        next_clean = time.time()
        next_log = time.time() + 30
        end = time.time() + duration if duration else None
        while not self.stop_event.is_set() and (end is None or time.time() < end):
            self.beat = time.monotonic()
            if not self.client.network_thread_alive:
                raise BrokerError("the MQTT client's network thread died: nothing would be received or "
                                  "acknowledged any more; exiting so that the supervisor restarts the bridge")
            now = time.time()
            if self.should_roll(now):
                self.roll()
            self.confirm()
            if self.cleaner and now >= next_clean:
                try:
                    self.cleaner.run_once()
                except OSError as exc:
                    log.warning("cleanup failed: %s", exc)
                next_clean = now + self.cfg.bridge.cleanup_interval_s
            if now >= next_log:
                log.info("received %d (invalid %d), landed %d in %d files, cleaned %d%s", self.received, self.invalid,
                         self.landed, self.writer.files_written, self.cleaner.deleted if self.cleaner else 0,
                         f"; DEGRADED: {self.landing_error}, holding {len(self.writer)}" if self.landing_error else "")
                next_log = now + 30
            self.stop_event.wait(0.005)

    def stop(self) -> None:
        self.stop_event.set()
        self.retry_at = 0.0
        if self.client.network_thread_alive:
            self.roll()
            self.confirm(force=True)
        self.client.stop(final=(self.status_topic, self.status_payload("offline", "stopped")))


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
    notifier = Notifier()
    notifier.ready(f"landing {cfg.bridge.landing_dir}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop_event.set())
    watchdog = threading.Thread(target=_watchdog, args=(bridge, notifier), daemon=True, name="watchdog")
    watchdog.start()
    try:
        bridge.run(args.duration)
    finally:
        notifier.stopping()
        bridge.stop()
    log.info("stopped: received %d (invalid %d), landed %d in %d files", bridge.received, bridge.invalid,
             bridge.landed, bridge.writer.files_written)
    return 0


def _watchdog(bridge: Bridge, notifier) -> None:
    """WATCHDOG=1 while the main loop and paho's network thread live (systemd's WatchdogSec), and the bridge's
    state in systemd's STATUS= line."""
    if not notifier.enabled:
        return
    every = (notifier.watchdog_s or 20.0) / 3
    while not bridge.stop_event.wait(every):
        if bridge.client.network_thread_alive and time.monotonic() - bridge.beat < 2 * every:
            notifier.watchdog()
        notifier.status(f"{bridge.state}: received {bridge.received}, landed {bridge.landed}"
                        + (f"; {bridge.landing_error}" if bridge.landing_error else ""))


def main(argv: Optional[list[str]] = None) -> int:
    return run("stream-bridge", lambda: _main(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
