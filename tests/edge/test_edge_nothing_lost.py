"""Nothing lost: a 30 s broker outage and a SIGKILL of the agent, with a real mosquitto and a real agent process."""
from __future__ import annotations

import sqlite3
import time

import pytest

from edge_helpers import agent_config

pytestmark = pytest.mark.mqtt


def _outbox(tmp_path, device: str = "cam-1") -> tuple[int, int]:
    """(next_seq, depth) straight from the agent's SQLite outbox."""
    db = sqlite3.connect(tmp_path / f"state-{device}" / "outbox.sqlite")
    try:
        next_seq = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
        depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        return int(next_seq), int(depth)
    finally:
        db.close()


def _assert_exactly_once_or_duplicate(payloads: list[dict], expected: range) -> None:
    by_seq: dict[int, dict] = {}
    for p in payloads:
        if p["seq"] in by_seq:   # a duplicate must be the very same message (deduplicable by seq)
            assert by_seq[p["seq"]] == p, f"seq {p['seq']} delivered twice with different content"
        by_seq[p["seq"]] = p
    missing = sorted(set(expected) - set(by_seq))
    assert not missing, f"{len(missing)} sequence numbers never arrived, e.g. {missing[:10]}"
    assert set(by_seq) == set(expected)


def test_broker_down_30s_mid_stream_loses_nothing(tmp_path, broker, scene, agents, subscriber):
    detector_model, video = scene
    sub = subscriber(broker, "sigmawatch/cam-1/detections", client_id="outage-sub")
    agent = agents(agent_config(tmp_path, broker, detector_model, video))
    sub.wait_for(lambda: len(sub.payloads("detections")) >= 20, timeout=60, what="detections before the outage")

    broker.stop()                       # mosquitto saves the subscriber's persistent session
    down_at = time.time()
    time.sleep(30)
    next_seq_down, depth_down = _outbox(tmp_path)
    assert depth_down > 30, f"the agent must keep detecting and queue while the broker is down (depth {depth_down})"
    broker.start()
    sub.wait_for(lambda: any(p["ts"] > down_at + 30 for p in sub.payloads("detections")), timeout=60,
                 what="fresh detections after the broker came back")
    assert agent.terminate() == 0, agent.logs()   # clean stop drains what is still unacknowledged
    next_seq, depth = _outbox(tmp_path)
    assert depth == 0, "every message must be acknowledged after the broker came back"
    sub.wait_for(lambda: len({p["seq"] for p in sub.payloads("detections")}) >= next_seq, timeout=20,
                 what="all sequence numbers at the subscriber")
    _assert_exactly_once_or_duplicate(sub.payloads("detections"), range(0, next_seq))
    assert next_seq > next_seq_down


def test_sigkill_then_restart_replays_outbox_in_order(tmp_path, broker_factory, scene, agents, subscriber):
    broker = broker_factory()
    detector_model, video = scene
    sub = subscriber(broker, "sigmawatch/cam-1/detections", client_id="kill-sub")
    broker.stop()                       # the agent starts without a broker and queues
    config = agent_config(tmp_path, broker, detector_model, video)
    first = agents(config)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            if _outbox(tmp_path)[1] >= 40:
                break
        except sqlite3.Error:   # the agent has not created its outbox yet
            pass
    first.kill()                        # SIGKILL: no drain, no goodbye
    queued_next_seq, queued_depth = _outbox(tmp_path)
    assert queued_depth >= 40 and queued_depth == queued_next_seq, "everything detected so far is in the outbox"

    broker.start()
    second = agents(config)
    sub.wait_for(lambda: len({p["seq"] for p in sub.payloads("detections")}) >= queued_next_seq + 10, timeout=60,
                 what="the replayed outbox and new detections")
    assert second.terminate() == 0, second.logs()
    got = sub.payloads("detections")
    replayed = [p["seq"] for p in got if p["seq"] < queued_next_seq]
    assert replayed[:queued_next_seq] == list(range(queued_next_seq)), "the replay must come first and in order"
    new = [p["seq"] for p in got if p["seq"] >= queued_next_seq]
    assert new == sorted(new), "sequence numbers keep increasing after the restart"
    next_seq, depth = _outbox(tmp_path)
    assert depth == 0
    _assert_exactly_once_or_duplicate(got, range(0, next_seq))
