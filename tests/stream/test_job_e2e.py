"""The whole stream path with real parts: mosquitto, two bridges, the PyFlink job on the local mini-cluster.

One test, two job starts (JVM start is the cost): a generated multi-device stream with out-of-order
capture times, duplicates, a silent device, malformed payloads and late events goes through MQTT; one bridge
is SIGKILLed and restarted mid-stream, the job is SIGKILLed (whole process group) and resumed from its
checkpoint while the bridges keep landing data. The aggregates must equal a plain-Python recount, exactly
once in the files; dead letters and late events are counted; alerts fire and clear; MQTT carries the same
aggregates, retained.
"""
from __future__ import annotations

import signal
import time

import pytest
import yaml

from edge.contract import outputs as topics
from tests.support.generate import Scenario, flush_event, generate, health_recount, metrics_msg, recount, Event
from tests.support.publisher import Collector, Publisher
from edge.contract import schema

from stream_helpers import (bridge_args, checkpoints, compare_fields, job_args, read_jsonl_dir, wait_for,
                            write_config)

WINDOW = 10.0
# Event time runs ~4x faster than wall time here, and after the job's outage its backlog of landing files
# is read in arbitrary file order: the bound covers the whole generated stream so that no on-time event
# becomes late by file order (the late events are 1000 s behind and late whatever the order).
OUT_OF_ORDERNESS = 100.0


@pytest.mark.flink
@pytest.mark.mqtt
def test_stream_end_to_end_with_bridge_and_job_kills(broker, tmp_path, procs):
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"rules": [
        {"type": "class_count", "id": "crowd", "label": "person", "min_count": 60},
        {"type": "uncertainty_spike", "id": "sigma-spike", "label": "person", "factor": 2.0, "history": 3,
         "min_history": 1, "min_detections": 3},
        {"type": "device_silent", "id": "silent", "after_s": 3},
    ]}))
    cfg = write_config(tmp_path / "stream.yaml", broker, tmp_path, out_of_orderness_s=OUT_OF_ORDERNESS,
                       stats_interval_s=1.0, alerts_file=str(tmp_path / "alerts.yaml"),
                       window={"size_s": WINDOW})
    out, chk = tmp_path / "out", tmp_path / "chk"
    collector = Collector(broker.host, broker.port, topics.subscriptions("sigmawatch"))
    b1 = procs(bridge_args(cfg, "--client-id", "b1"), tmp_path / "b1.log")
    procs(bridge_args(cfg, "--client-id", "b2"), tmp_path / "b2.log")
    job = procs(job_args(cfg), tmp_path / "job1.log")
    for name in ("b1", "b2"):
        wait_for(lambda: "subscribed to" in (tmp_path / f"{name}.log").read_text(), 20, what=f"bridge {name}")
    wait_for(lambda: checkpoints(chk), 300, what="the job's first checkpoint", alive=job)

    sc = Scenario(window_s=WINDOW)
    events = generate(sc)
    main, late = [e for e in events if e.category != "late"], [e for e in events if e.category == "late"]
    thirds = [main[: len(main) // 3], main[len(main) // 3: 2 * len(main) // 3], main[2 * len(main) // 3:]]
    pub = Publisher(broker.host, broker.port)
    pub.publish_all(thirds[0], rate=120)
    b1.kill(signal.SIGKILL)
    pub.publish_all(thirds[1], rate=120)
    b1 = procs(bridge_args(cfg, "--client-id", "b1"), tmp_path / "b1-again.log")
    before = checkpoints(chk)
    wait_for(lambda: max(checkpoints(chk).values()) >= max(before.values()) + 2, 120, what="two more checkpoints", alive=job)
    t_kill = time.time()
    job.kill(signal.SIGKILL)                       # the JVM and Python workers with it (process group)
    pub.publish_all(thirds[2], rate=120)           # lands while the job is down
    job = procs(job_args(cfg), tmp_path / "job2.log")
    wait_for(lambda: len(checkpoints(chk)) == 2, 300, what="the resumed job to checkpoint", alive=job)
    assert "resuming from checkpoint" in (tmp_path / "job2.log").read_text()
    time.sleep(1.5)
    pub.publish_all(late, rate=50)                 # behind the watermark now
    time.sleep(1.5)
    back = Event(schema.topic("sigmawatch", "cam-silent", "metrics"),
                 schema.encode(metrics_msg("cam-silent", sc.start_ts + sc.duration_s, 4.0, 0)), "valid",
                 "cam-silent", "metrics")
    flush = flush_event(sc, OUT_OF_ORDERNESS)
    pub.publish_all([back], rate=50)
    time.sleep(1.5)                                # in a landing file read before the flush's file
    pub.publish_all([flush], rate=50)
    pub.close()

    expected = recount(events, WINDOW)
    exp_health = {k: v for k, v in health_recount(events + [back], WINDOW).items()
                  if float(k.split("/")[1]) / 1000 < sc.start_ts + sc.duration_s + WINDOW}

    def done():
        recs = read_jsonl_dir(out / "records")
        ids = {r["id"] for r in recs if r["type"] in ("aggregate", "fleet")}
        ids |= {f"{r['device']}/{int(r['window_start'] * 1000)}" for r in recs if r["type"] == "health"}
        silent = [r["state"] for r in recs if r["type"] == "alert" and r["id"] == "silent:cam-silent:_all"]
        return recs if set(expected) | set(exp_health) <= ids and "cleared" in silent else None
    records = wait_for(done, 300, interval=1.0, what="every window and the silent alert's clear to be committed", alive=job)

    # 1. aggregates and fleet totals equal the recount, each exactly once in the files
    windows = [r for r in records if r["type"] in ("aggregate", "fleet")]
    assert len(windows) == len({r["id"] for r in windows}), "a window was written twice"
    got = {r["id"]: {k: r[k] for k in next(iter(expected.values())) if k in r} | (
        {"device": r["device"]} if "device" in r else {"devices": r["devices"]}) for r in windows}
    assert compare_fields(expected, {k: {f: v for f, v in got[k].items()} for k in got}) == []
    # health per device and window: frames, last_seen, the latest heartbeat's fps/outbox depth, max dropped
    # (the flush window never closes)
    health = {f"{r['device']}/{int(r['window_start'] * 1000)}": r for r in records if r["type"] == "health"}
    assert compare_fields(exp_health, {k: {f: v[f] for f in ("frames", "last_seen", "fps", "outbox_depth", "dropped")}
                                       for k, v in health.items() if k in exp_health}) == []

    # 2. dead letters and late events: in the dead-letter files with reasons, and counted in stats
    dead = read_jsonl_dir(out / "deadletter")
    n_invalid = sum(e.category == "invalid" for e in events)
    assert sum(d["category"] == "dead" for d in dead) == n_invalid
    assert sum(d["category"] == "late" for d in dead) == len(late)
    assert any("score" in d["reason"] for d in dead)
    stats = [r for r in records if r["type"] == "stats"]
    assert sum(s["dead_letters"] for s in stats) == n_invalid and sum(s["late"] for s in stats) == len(late)

    # 3. alerts: crowd and sigma spike fire on cam-0's burst window and clear on the next; silent fires and clears
    alerts = sorted((r for r in records if r["type"] == "alert"), key=lambda a: a["ts"])   # files are unordered
    def states(aid):
        return [a["state"] for a in alerts if a["id"] == aid]
    assert states("crowd:cam-0:person") == ["firing", "cleared"]
    assert states("sigma-spike:cam-0:person")[:2] == ["firing", "cleared"]
    spike_window = sc.start_ts + 2 * WINDOW
    assert [a["since"] for a in alerts if a["id"] == "crowd:cam-0:person"] == [spike_window, spike_window]
    silent = states("silent:cam-silent:_all")     # fires while it is quiet, clears when it sends again
    assert silent[0] == "firing" and "cleared" in silent and silent[silent.index("cleared") - 1] == "firing"
    # the other devices were sending all through the first run: never silent then
    assert not [a for a in alerts if a["rule"] == "silent" and a["device"] != "cam-silent" and a["ts"] < t_kill]

    # 4. MQTT carried the same aggregates; the latest per topic is retained for new dashboards
    def mqtt_windows():
        msgs = {p["id"]: p for t, p, _, _ in collector.snapshot() if p and p.get("type") in ("aggregate", "fleet")}
        return msgs if set(expected) <= set(msgs) else None
    mq = wait_for(mqtt_windows, 30, what="aggregates on MQTT")
    assert all(topics.encode(mq[r["id"]]) == topics.encode(r) for r in windows)
    collector.close()
    late_sub = Collector(broker.host, broker.port, ["sigmawatch/agg/device/cam-0/#"])
    retained = wait_for(lambda: [m for m in late_sub.snapshot() if m[3]], 10, what="retained aggregates")
    late_sub.close()
    newest = max(r["window_start"] for r in windows if r["type"] == "aggregate" and r["device"] == "cam-0"
                 and r["label"] == "person")
    assert any(p["label"] == "person" and p["window_start"] == newest for _, p, _, _ in retained)
    job.kill(signal.SIGKILL)
