"""stream-bridge against a real mosquitto: nothing lost through a SIGKILL, shared subscriptions, cleanup."""
from __future__ import annotations

import json
import signal
import time

import pytest

from tests.support.generate import Scenario, generate
from stream.landing import NAME_RE, Cleaner, LandingWriter, invalid_line
from tests.support.publisher import Publisher

from stream_helpers import bridge_args, wait_for, write_config


def landed(landing_dir):
    """Message lines of every landed file; checks each file's eof trailer against its lines."""
    lines = []
    for p in sorted(landing_dir.glob("*.jsonl")):
        assert NAME_RE.match(p.name), p.name
        file_lines = [json.loads(x) for x in p.read_text().splitlines()]
        *messages, eof = file_lines
        assert eof["kind"] == "eof" and eof["records"] == len(messages) == int(NAME_RE.match(p.name)["n"])
        valid = [m for m in messages if m["kind"] != "invalid"]
        assert {d["d"]: d["m"] for d in eof["devices"]} == {dev: sum(m["device"] == dev for m in valid)
                                                            for dev in {m["device"] for m in valid}}
        assert all(d["r"] == max(m["recv_ts"] for m in valid if m["device"] == d["d"]) for d in eof["devices"])
        lines += messages
    return lines


def key_of(line):
    if line["kind"] == "invalid":
        return ("invalid", line["topic"], line["raw_payload"])
    return (line["kind"], line["device"], line.get("seq"), line.get("ts"))


def key_of_event(ev):
    if ev.category == "invalid":
        return ("invalid", ev.topic, ev.payload.decode("utf-8", "replace"))
    m = json.loads(ev.payload)
    return (ev.kind, m["device"], m.get("seq"), m.get("ts"))


@pytest.mark.mqtt
def test_two_bridges_sigkill_lose_nothing(broker, tmp_path, procs):
    cfg = write_config(tmp_path / "stream.yaml", broker, tmp_path)
    logs = tmp_path
    b1 = procs(bridge_args(cfg, "--client-id", "b1"), logs / "b1.log")
    b2 = procs(bridge_args(cfg, "--client-id", "b2"), logs / "b2.log")
    for name in ("b1", "b2"):
        wait_for(lambda: "subscribed to" in (logs / f"{name}.log").read_text(), 15, what=f"{name} to connect")
    time.sleep(0.5)
    events = generate(Scenario(devices=3, duration_s=25, fps=8))
    pub = Publisher(broker.host, broker.port)
    half = len(events) // 2
    pub.publish_all(events[:half], rate=800)
    b1.kill(signal.SIGKILL)                      # mid-stream, with unacked messages in its buffer
    pub.publish_all(events[half:], rate=800)     # b1's share queues in its persistent session
    pub.close()
    b1 = procs(bridge_args(cfg, "--client-id", "b1"), logs / "b1-restart.log")
    expected = {key_of_event(e) for e in events}
    landing = tmp_path / "landing"
    wait_for(lambda: expected <= {key_of(x) for x in landed(landing)}, 30, what="every message to land")
    lines = landed(landing)
    got = [key_of(x) for x in lines]
    assert set(got) == expected
    # both bridges took part (shared subscription), and the invalid ones are marked with a reason
    writers = {NAME_RE.match(p.name)["client"] for p in landing.glob("*.jsonl")}
    assert writers == {"b1", "b2"}
    invalid = [x for x in lines if x["kind"] == "invalid"]
    assert {key_of(x) for x in invalid} == {key_of_event(e) for e in events if e.category == "invalid"}
    assert all(x["reason"] for x in invalid)
    assert any("score" in x["reason"] and "maximum" in x["reason"] for x in invalid)
    # the restarted bridge resumed its persistent session (that is where its unacked messages were)
    assert "(session present)" in (logs / "b1-restart.log").read_text()


def test_writer_is_atomic_and_cleaner_deletes_only_fully_consumed(tmp_path):
    w = LandingWriter(tmp_path / "landing", "bx")
    for i in range(3):
        w.add(invalid_line("t", "d", 1.0, f"reason {i}", "raw"))
    f1 = w.roll()
    w.add(invalid_line("t", "d", 2.0, "reason", "raw"))
    f2 = w.roll()
    assert w.roll() is None and f1.name.endswith("-n3.jsonl") and f2.name.endswith("-n1.jsonl")
    assert not list((tmp_path / "landing").glob(".*"))
    for f in (f1, f2):   # the trailer names its file: the job's consumption record takes the name from it
        assert json.loads(f.read_text().splitlines()[-1])["file"] == f.name
    consumed = tmp_path / "consumed"
    (consumed / "sub").mkdir(parents=True)
    (consumed / "sub" / "part-1").write_text(
        json.dumps({"file": f1.name, "records": 2}) + "\n" + json.dumps({"file": f2.name, "records": 1}) + "\n")
    (consumed / "sub" / ".part-2.inprogress").write_text(json.dumps({"file": f1.name, "records": 1}) + "\n")
    c = Cleaner(tmp_path / "landing", consumed, "bx")
    assert c.run_once() == 1 and f1.exists() and not f2.exists()   # f1: 2 of 3 committed, in-progress ignored
    (consumed / "sub" / "part-2").write_text(json.dumps({"file": f1.name, "records": 1}) + "\n")
    assert c.run_once() == 1 and not f1.exists()
    c.run_once()
    assert not list((consumed / "sub").glob("part-*"))             # records no longer needed are removed
    assert Cleaner(tmp_path / "landing", consumed, "other").run_once() == 0
