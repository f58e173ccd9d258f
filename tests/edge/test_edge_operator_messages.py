"""What an operator reads: a broker that is down logged once per backoff step (reason, next attempt, outbox
depth) and the outbox drained when it comes back; SIGINT exits 130 and SIGTERM 0; a clean stop with messages
still queued logs no WARNING; a camera that does not exist is named as such. Real agent processes, real mosquitto."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from edge_helpers import agent_config

from edge.cli import main

LINK_LINE = re.compile(r" WARNING edge\.agent: MQTT: (?P<reason>.+?)(?: \(down (?P<down>\d+) s, (?P<attempts>\d+) "
                       r"attempts\))?; next attempt in (?P<retry>\d+) s \(backoff doubles up to (?P<max>\d+) s\); "
                       r"(?P<depth>\d+) messages wait in the outbox (?P<outbox>\S+), detection goes on$")
BACK_LINE = re.compile(r" INFO edge\.agent: MQTT broker \S+ reachable again after (?P<down>\d+) s; (?P<depth>\d+) "
                       r"messages in the outbox are sent now$")


def _depth(outbox: Path) -> int:
    db = sqlite3.connect(outbox)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


def _wait(predicate, timeout: float, what: str, logs=lambda: ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs()}")


def _queued(outbox: Path, at_least: int) -> bool:
    try:
        return _depth(outbox) >= at_least
    except sqlite3.Error:        # not created yet
        return False


def _expected_steps(min_s: int, max_s: int, attempts: int) -> list[int]:
    """paho's waits after ``attempts`` failed attempts: min, doubling, capped at max (reconnect_delay_set)."""
    return [min(min_s * 2 ** i, max_s) for i in range(attempts)]


@pytest.mark.mqtt
def test_broker_down_at_start_logged_once_per_backoff_step_then_drained(tmp_path, broker_factory, scene, agents,
                                                                        subscriber):
    broker = broker_factory()
    model, video = scene
    sub = subscriber(broker, "sigmawatch/cam-1/detections", client_id="outage-log-sub")  # persistent session
    broker.stop()
    cfg = agent_config(tmp_path, broker, model, video, mqtt__reconnect_min_s=1, mqtt__reconnect_max_s=4)
    outbox = tmp_path / "state-cam-1" / "outbox.sqlite"
    agent = agents(cfg)
    # attempts at about 0, 1, 3, 7, 11 s after the agent's first try: waits 1, 2, 4, 4, 4 -> three steps, five
    # failures. Counted from the agent's own first line about it (its start takes seconds on a loaded machine):
    # wait for the third step's line, then 5 s more, in which one more failure at the same step must log nothing
    _wait(lambda: len([m for m in map(LINK_LINE.search, agent.log.read_text().splitlines()) if m]) >= 3
          if agent.log.exists() else False, 60, "the third backoff step's line", agent.logs)
    time.sleep(5.0)
    assert agent.proc.poll() is None, agent.logs()
    down_lines = [m for m in map(LINK_LINE.search, agent.log.read_text().splitlines()) if m]
    broker.start()
    sub.wait_for(lambda: BACK_LINE.search(agent.log.read_text()) if agent.log.exists() else None, timeout=30,
                 what="the 'reachable again' line")

    retries = [int(m["retry"]) for m in down_lines]
    assert retries == sorted(set(_expected_steps(1, 4, 5))) == [1, 2, 4], \
        f"one line per backoff step expected (waits 1, 2, 4, 4, 4 s), got {retries}:\n{agent.logs()}"
    for m in down_lines:
        assert "refused" in m["reason"] and str(broker.port) in m["reason"], m.group(0)
        assert m["outbox"] == str(outbox) and int(m["max"]) == 4
    assert down_lines[0]["attempts"] is None            # the first line: no history yet
    assert [int(m["attempts"]) for m in down_lines[1:]] == [2, 3]
    depths = [int(m["depth"]) for m in down_lines]
    assert depths == sorted(depths) and depths[-1] > 0, f"detection goes on and the outbox grows: {depths}"
    back = BACK_LINE.search(agent.log.read_text())
    assert int(back["down"]) >= 11 and int(back["depth"]) > depths[-1], back.group(0)

    # the outbox drains: everything detected during the outage reaches the subscriber, in a gap-free sequence
    # KNOWN DEFECT (open, README "Edge agent"): alone this drains in about 1.5 s; inside the full suite it took 37 s
    # here and more than 60 s in two CI runs, with the broker seeing the agent connected and the agent logging
    # nothing. Cause not found yet; the wait is long so that the test checks what it is about (the log lines and
    # that nothing is lost), and the defect stays written down rather than hidden.
    _wait(lambda: _depth(outbox) == 0, 240, "the outbox to drain", agent.logs)
    agent.proc.send_signal(signal.SIGINT)
    assert agent.proc.wait(30) == 130, agent.logs()      # interrupted, per the exit-code table
    db = sqlite3.connect(outbox)
    next_seq = int(db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0])
    db.close()
    sub.wait_for(lambda: len({p["seq"] for p in sub.payloads("detections")}) >= next_seq, timeout=30,
                 what="every sequence number at the subscriber")
    assert {p["seq"] for p in sub.payloads("detections")} == set(range(next_seq))
    assert next_seq > int(back["depth"])
    after = agent.log.read_text().split(back.group(0), 1)[1]
    assert " WARNING " not in after and " ERROR " not in after, after
    assert "stopped (SIGINT)" in after


@pytest.mark.mqtt
def test_sigterm_exits_0_and_a_clean_stop_with_queued_messages_logs_no_warning(tmp_path, broker, scene, agents,
                                                                                subscriber):
    model, video = scene
    sub = subscriber(broker, "sigmawatch/cam-1/#", client_id="stop-sub")
    cfg = agent_config(tmp_path, broker, model, video, outbox__drain_timeout_s=1)
    outbox = tmp_path / "state-cam-1" / "outbox.sqlite"
    agent = agents(cfg)
    sub.wait_for(lambda: len(sub.payloads("/detections")) >= 5, timeout=60, what="detections")
    clean_run = [l for l in agent.log.read_text().splitlines() if " WARNING " in l or " ERROR " in l]
    # the one warning this container may earn: its clock is not NTP-synchronized (edge/clock.py, true here)
    assert all("the system clock is not synchronized" in l for l in clean_run), clean_run

    broker.stop()                   # messages pile up in the outbox: they stay there, by design
    _wait(lambda: _queued(outbox, 10), 30, "messages queued while the broker is down", agent.logs)
    mark = agent.log.stat().st_size
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(30) == 0, agent.logs()
    with open(agent.log, "rb") as f:
        f.seek(mark)
        stop_log = f.read().decode()
    assert " WARNING " not in stop_log and " ERROR " not in stop_log and "Traceback" not in stop_log, stop_log
    kept = re.search(r" INFO edge\.agent: (\d+) messages not yet acknowledged by the broker stay in the outbox "
                     r"(\S+); they are sent first on the next start", stop_log)
    assert kept and int(kept[1]) == _depth(outbox) >= 10 and kept[2] == str(outbox), stop_log
    assert "stopped (SIGTERM)" in stop_log


def test_check_names_a_camera_that_does_not_exist(tmp_path, detector_model, capsys):
    device = next(f"/dev/video{n}" for n in (9, *range(10, 100)) if not os.path.exists(f"/dev/video{n}"))
    cfg = agent_config(tmp_path, type("NoBroker", (), {"host": "127.0.0.1", "port": 1})(), detector_model,
                       tmp_path / "unused.avi")
    code = main(["check", "-c", str(cfg), "--source", device, "--timeout", "1"])
    text = capsys.readouterr().out
    line = next(l for l in text.splitlines() if l.startswith("FAIL  source"))
    assert code == 5, text                               # the first failure decides: the source
    assert f"camera {device} does not exist" in line and "set source.uri" in line, line
    present = sorted(p for p in os.listdir("/dev") if p.startswith("video"))
    assert ("there is no /dev/video* at all" in line) if not present else all(f"/dev/{p}" in line for p in present)
    assert "'video' group" not in line                   # the old hint blamed a group for a missing device


@pytest.mark.mqtt
def test_broker_refusing_the_password_logged_once_per_backoff_step(tmp_path, secured_broker, scene, agents):
    """Credentials the broker refuses: the same reason on every attempt, so one line per backoff step, not one
    (or two) per attempt."""
    model, video = scene
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    cfg = agent_config(tmp_path, secured_broker, model, video, device="cam-a", mqtt__username="cam-a",
                       mqtt__password_file=str(wrong), mqtt__reconnect_min_s=1, mqtt__reconnect_max_s=2)
    agent = agents(cfg)
    started = time.time()
    _wait(lambda: time.time() - started > 9, 15, "the refusals")     # attempts at about 0, 1, 3, 5, 7 s
    assert agent.terminate() == 0, agent.logs()
    lines = agent.log.read_text().splitlines()
    noisy = [l for l in lines if " WARNING " in l or " ERROR " in l]
    refusals = [m for m in map(LINK_LINE.search, lines) if m]
    assert [int(m["retry"]) for m in refusals] == [1, 2], "\n".join(noisy)
    assert all("refused the connection" in m["reason"] and "Not authorized" in m["reason"] for m in refusals), \
        refusals[0].group(0)
    others = [l for l in noisy if not LINK_LINE.search(l) and "system clock is not synchronized" not in l]
    assert len(others) <= 1, "the refusal itself is said once, then only per backoff step:\n" + "\n".join(others)


@pytest.mark.mqtt
def test_broker_lost_mid_run_logged_with_the_wait_paho_really_makes(tmp_path, broker, scene, agents, subscriber):
    """After a live connection drops, paho waits 1, 2, 4, 4 s (its delay restarts at the minimum): the lines say
    those waits, one per step, the first with the drop, then the refusals."""
    model, video = scene
    sub = subscriber(broker, "sigmawatch/cam-1/detections", client_id="drop-sub")
    agent = agents(agent_config(tmp_path, broker, model, video, mqtt__reconnect_min_s=1, mqtt__reconnect_max_s=4))
    sub.wait_for(lambda: sub.payloads("detections"), timeout=60, what="detections before the drop")
    broker.stop()
    dropped = time.time()
    _wait(lambda: time.time() - dropped > 9, 15, "the outage")        # attempts at about 1, 3, 7 s after the drop
    assert agent.terminate() == 0, agent.logs()
    lines = [m for m in map(LINK_LINE.search, agent.log.read_text().splitlines()) if m]
    assert [int(m["retry"]) for m in lines] == [1, 2, 4], "\n".join(m.group(0) for m in lines)
    assert "lost the connection" in lines[0]["reason"] and all("refused" in m["reason"] for m in lines[1:]), \
        "\n".join(m.group(0) for m in lines)


@pytest.mark.mqtt
def test_opencv_warning_said_once_while_the_camera_stays_away(tmp_path, broker, detector_model, agents):
    """A stream that cannot be opened is retried with backoff; OpenCV's own ``[ WARN:0@...]`` line comes with
    the first failure only, and the agent's line naming the source and the likely cause comes once (a state
    change), not per attempt. (FFmpeg's own ``[tcp @ ...] Connection refused`` line still comes per attempt.)"""
    import socket as _socket
    with _socket.socket() as s:                 # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = agent_config(tmp_path, broker, detector_model, tmp_path / "unused.avi",
                       source__uri=f"http://127.0.0.1:{port}/stream.mjpg", source__loop=False)
    agent = agents(cfg)
    started = time.time()
    _wait(lambda: time.time() - started > 6, 10, "reopen attempts")   # backoff 0.2 s doubling to 1 s: >= 6 opens
    assert agent.terminate() == 0, agent.logs()
    text = agent.log.read_text()
    attempts = text.count(f"127.0.0.1:{port} failed: Connection refused")     # FFmpeg's line, one per open
    assert attempts >= 5, text[-3000:]
    assert text.count("[ WARN:") == 1, text[-3000:]
    assert text.count(f"WARNING edge.sources: source http://127.0.0.1:{port}/stream.mjpg: reconnecting (cannot open "
                      "stream source") == 1, text[-3000:]
