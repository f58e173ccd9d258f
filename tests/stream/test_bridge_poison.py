"""No payload stops the bridge: the named poison payloads of issue 14 on the real stream-bridge process with a real
mosquitto. Each becomes a dead letter with its reason (and, when it has a readable sequence number, a landing
confirmation, so an agent does not send it for ever); the valid messages around them land; the bridge stays up.
And if paho's network thread dies anyway, the bridge exits non-zero instead of running deaf."""
from __future__ import annotations

import json
import time

import pytest

from edge.contract import schema
from edge.contract.errors import BrokerError
from stream.bridge import Bridge
from stream.config import from_dict
from tests.support.bridges import landed, write_bridge_config
from tests.support.generate import detections_msg, metrics_msg
from tests.support.publisher import Collector, Publisher

pytestmark = pytest.mark.mqtt
T = "sigmawatch/cam-1/"


def _det(seq: int, **over) -> dict:
    msg = detections_msg("cam-1", seq, 1_700_000_000.0 + seq, [(1, 0.8, 0.1)])
    for key, value in over.items():
        if key in ("class_id", "label"):
            msg["detections"][0][0 if key == "class_id" else 1] = value
        else:
            msg[key] = value
    return msg


def _v1_model_id(seq: int, model_id: str) -> dict:
    return {"schema": 1, "type": "detections", "device": "cam-1", "seq": seq, "ts": 1_700_000_000.0,
            "frame": {"w": 640, "h": 480}, "model": {"id": model_id, "hash": "ab" * 32}, "task": "detection",
            "latency_ms": {"inference": 3.0}, "detections": []}


def _event(seq: int, **over) -> dict:
    return {"schema": 1, "type": "crossed", "device": "cam-1", "seq": seq, "ts": 1_700_000_000.0, "id": "1-1",
            "track": 1, "label": "person", "line": "gate", "direction": "in", **over}


# (name, topic, payload, what the dead letter's reason must contain, the seq a confirmation must cover or None:
# a detections seq, or ("events", seq) for the events' own counter)
POISON = [
    ("1000 [ on detections", T + "detections", b"[" * 1000, "nests", None),
    ("1000 [ on events", T + "events", b"[" * 1000, "nests", None),
    ("1000 [ on objects", T + "objects", b"[" * 1000, "nests", None),
    ("/ in an event's label", T + "events", schema.encode(_event(7, label="a/b")), "'/'", ("events", 7)),
    ("events seq 2**63", T + "events", schema.encode(_event(2 ** 63)), "seq: 9223372036854775808 is above the maximum",
     None),
    ("crossed without a line", T + "events", schema.encode({k: v for k, v in _event(8).items() if k != "line"}),
     "events.line", ("events", 8)),
    ("1000 [ on metrics", T + "metrics", b"[" * 1000, "nests", None),
    ("1000 [ on status", T + "status", b"[" * 1000, "nests", None),
    ("200,000 [", T + "detections", b"[" * 200_000, "nests", None),
    ("class_id 2**40", T + "detections", schema.encode(_det(1000, class_id=2 ** 40)), "class_id", 1000),
    ("class_id 2**31", T + "detections", schema.encode(_det(1001, class_id=2 ** 31)), "above the maximum", 1001),
    ("seq 2**63", T + "detections", schema.encode(_det(2 ** 63)), "seq: 9223372036854775808 is above the maximum",
     None),
    ("NUL in a label", T + "detections", schema.encode(_det(1002, label="per\x00son")), "NUL", 1002),
    ("control character in a label", T + "detections", schema.encode(_det(1003, label="\x1b[31mred")),
     "control characters", 1003),
    ("/ in a label", T + "detections", schema.encode(_det(1004, label="a/b")), "'/'", 1004),
    ("+ in a label", T + "detections", schema.encode(_det(1005, label="a+b")), "'+'", 1005),
    ("# in a label", T + "detections", schema.encode(_det(1006, label="#")), "'#'", 1006),
    ("# in a model id", T + "detections", schema.encode(_v1_model_id(1007, "yolo#3")), "model.id", 1007),
    ("NUL in a model id", T + "detections", schema.encode(_v1_model_id(1008, "yolo\x00")), "model.id", 1008),
    ("not UTF-8", T + "detections", b"\xff\xfe{}", "not valid UTF-8 JSON", None),
    ("dropped 2**64 in metrics", T + "metrics",
     schema.encode({**metrics_msg("cam-1", 1_700_000_000.0, 4.0, 0), "frames": {
         "captured": 1, "processed": 1, "dropped": 2 ** 64}}), "frames.dropped", None),
    ("oversized", T + "detections", b" " * (256 * 1024 + 1), "larger than", None),
]


def test_named_poison_payloads_become_dead_letters_and_the_bridge_stays_up(tmp_path, bridges, broker):
    landing = tmp_path / "landing"
    cfg = write_bridge_config(tmp_path / "stream.yaml", broker.host, broker.port, landing)
    bridge = bridges(cfg, "b1").wait_subscribed()
    confirmations = Collector(broker.host, broker.port, ["sigmawatch/+/landed"])
    pub = Publisher(broker.host, broker.port)
    for i in range(10):
        pub.publish(T + "detections", schema.encode(_det(i)))
    for _name, topic, payload, _reason, _seq in POISON:
        pub.publish(topic, payload)
    for i in range(10, 20):
        pub.publish(T + "detections", schema.encode(_det(i)))
    pub.close()

    def all_landed():
        lines = landed(landing)
        return lines if len(lines) >= 20 + len(POISON) else None
    deadline = time.time() + 30
    lines = None
    while time.time() < deadline and not (lines := all_landed()):
        assert bridge.alive(), bridge.tail()
        time.sleep(0.2)
    assert lines, f"not everything landed: {len(landed(landing))} lines\n{bridge.tail()}"
    assert bridge.alive(), bridge.tail()
    valid = sorted(x["seq"] for x in lines if x["kind"] == "detections")
    assert valid == list(range(20)), "the valid messages around the poison must land"
    invalid = [x for x in lines if x["kind"] == "invalid"]
    assert len(invalid) == len(POISON)
    for (name, topic, payload, reason, _seq), dead in zip(POISON, invalid):   # one bridge: landed in order
        assert dead["topic"] == topic and reason in dead["reason"], f"{name}: {dead['reason']}"
        assert dead["raw_payload"] == payload[:256 * 1024].decode("utf-8", "replace"), name
    # dead letters with a readable sequence number are confirmed like landed messages (agents stop resending), each
    # in its own stream (events: "stream": "events")
    want = {("detections", s) for s in range(20)} | {seq if isinstance(seq, tuple) else ("detections", seq)
                                                     for *_, seq in POISON if seq is not None}

    def confirmed() -> set[tuple[str, int]]:
        got = set()
        for _t, p, _at, _r in confirmations.snapshot():
            for first, last in p["seqs"]:
                got |= {(p.get("stream", "detections"), s) for s in range(first, last + 1)}
        return got
    deadline = time.time() + 10
    while time.time() < deadline and not want <= confirmed():
        time.sleep(0.1)
    assert confirmed() == want
    confirmations.close()
    log = bridge.tail(100_000)
    assert "Traceback" not in log, log[-3000:]
    assert bridge.terminate() == 0, bridge.tail()


def test_a_dead_network_thread_stops_the_bridge(tmp_path, broker):
    cfg = from_dict({"mqtt": {"host": broker.host, "port": broker.port},
                     "bridge": {"landing_dir": str(tmp_path / "landing"), "consumed_dir": None, "client_id": "bx"}})
    bridge = Bridge(cfg)
    bridge.start()
    try:
        bridge.client._client._thread_terminate = True      # paho's loop ends as if its thread had died
        bridge.client._client._thread.join(10)
        t0 = time.monotonic()
        with pytest.raises(BrokerError, match="network thread died"):
            bridge.run(duration=30)
        assert time.monotonic() - t0 < 5
    finally:
        bridge.client.stop()
    assert BrokerError.exit_code == 6        # non-zero and not in RestartPreventExitStatus: systemd restarts it


def test_landing_lines_of_poison_are_json():
    """The dead letters are JSON lines the job can read (the raw payload is kept as text)."""
    from stream.landing import to_landing_line
    for name, topic, payload, _reason, _seq in POISON:
        line = to_landing_line("sigmawatch", topic, payload, 1.0, 256 * 1024).line
        assert json.loads(line)["kind"] == "invalid", name
