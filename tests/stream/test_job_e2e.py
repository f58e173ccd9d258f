"""The whole stream path with real parts: mosquitto, two bridges, the PyFlink job on the local mini-cluster.

One test, two job starts (JVM start is the cost): a generated multi-device stream, published in real time,
with out-of-order capture times, duplicates, a silent device, a device without sigma, malformed payloads, late
frames, late copies and frames beyond the allowed lateness goes through MQTT; one bridge is SIGKILLed and
restarted mid-stream, the job is SIGKILLed (whole process group) and resumed from its checkpoint while the
bridges keep landing data. The windows' final results must equal a plain-Python recount (revisions replace a
window's first result by id); dead letters are counted; alerts fire and clear; MQTT carries the same results,
retained. Two of the cameras track (``tests.support.objects_stream``: detections with track ids, track events
with copies, object counts, a late track published after the stream): the job's objects and present payloads
(issue 17) equal their recount too, through the same kills, on MQTT as in the files.
"""
from __future__ import annotations

import signal
import time

import pytest
import yaml

from edge.contract import outputs
from tests.support.generate import (
    LABELS,
    Event,
    Scenario,
    generate,
    health_recount,
    live_start,
    metrics_msg,
    publish_live,
    recount,
)
from tests.support.objects_stream import generate_objects, recount_objects
from tests.support.publisher import Collector, Publisher
from edge.contract import schema

from stream_helpers import (bridge_args, checkpoints, compare_fields, final_objects, final_results, job_args,
                            objects_fields, read_jsonl_dir, wait_for, write_config)

WINDOW = 10.0


@pytest.mark.flink
@pytest.mark.mqtt
def test_stream_end_to_end_with_bridge_and_job_kills(broker, tmp_path, procs):
    """The job runs with its default event-time settings (out-of-orderness, allowed lateness): what arrives late
    (the backlog of the job's outage, frames published after their window's first result) revises windows."""
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"rules": [
        {"type": "class_count", "id": "crowd", "label": "person", "min_count": 60},
        {"type": "uncertainty_spike", "id": "sigma-spike", "label": "person", "factor": 2.0, "history": 3,
         "min_history": 1, "min_detections": 3},
        {"type": "device_silent", "id": "silent", "after_s": 3},
    ]}))
    cfg = write_config(tmp_path / "stream.yaml", broker, tmp_path, stats_interval_s=1.0,
                       alerts_file=str(tmp_path / "alerts.yaml"), window={"size_s": WINDOW})
    out, chk = tmp_path / "out", tmp_path / "chk"
    collector = Collector(broker.host, broker.port, outputs.subscriptions("sigmawatch"))
    b1 = procs(bridge_args(cfg, "--client-id", "b1"), tmp_path / "b1.log")
    procs(bridge_args(cfg, "--client-id", "b2"), tmp_path / "b2.log")
    job = procs(job_args(cfg), tmp_path / "job1.log")
    for name in ("b1", "b2"):
        wait_for(lambda: "subscribed to" in (tmp_path / f"{name}.log").read_text(), 20, what=f"bridge {name}")
    wait_for(lambda: checkpoints(chk), 300, what="the job's first checkpoint", alive=job)

    # devices publish as they capture, in real time (30 s of frames); the tail (late frames of cam-0's first
    # window, late copies, frames two days old) after the stream's last window had its first result
    sc = Scenario(window_s=WINDOW, duration_s=30.0, start_ts=live_start(WINDOW, 2.0))
    tracked = generate_objects(sc.start_ts, duration_s=30.0, too_late=False)     # cameras trk-1, trk-2
    events = generate(sc) + tracked
    main = sorted((e for e in events if e.category not in ("late", "late_dup", "too_late")), key=lambda e: e.at)
    tail = [e for e in events if e.category in ("late", "late_dup", "too_late")]
    thirds = [[e for e in main if lo <= e.at < hi] for lo, hi in ((-1, 10), (10, 20), (20, 1e9))]
    pub = Publisher(broker.host, broker.port)
    publish_live(pub, thirds[0], sc.start_ts)
    b1.kill(signal.SIGKILL)
    publish_live(pub, thirds[1], sc.start_ts)
    b1 = procs(bridge_args(cfg, "--client-id", "b1"), tmp_path / "b1-again.log")
    t_kill = time.time()
    job.kill(signal.SIGKILL)                       # the JVM and Python workers with it (process group)
    publish_live(pub, thirds[2], sc.start_ts)      # lands while the job is down: its backlog
    job = procs(job_args(cfg), tmp_path / "job2.log")
    publish_live(pub, tail, sc.start_ts)
    back = Event(schema.topic("sigmawatch", "cam-silent", "metrics"),
                 schema.encode(metrics_msg("cam-silent", time.time(), 4.0, 0)), "valid", "cam-silent", "metrics")
    pub.publish(back.topic, back.payload)
    wait_for(lambda: len(checkpoints(chk)) == 2, 300, what="the resumed job to checkpoint", alive=job)
    assert "resuming from" in (tmp_path / "job2.log").read_text()
    # a heartbeat received now: the watermark (the bridges' receive time) passes every window of the stream
    pub.publish(schema.topic("sigmawatch", "cam-0", "metrics"), schema.encode(metrics_msg("cam-0", time.time(), 4.0, 0)))
    pub.close()

    expected = recount(events, WINDOW)
    exp_objects = recount_objects(tracked, WINDOW)
    frames_and_beats = [e for e in events + [back] if e.kind not in ("events", "objects")]   # what health is about
    exp_health = {k: v for k, v in health_recount(frames_and_beats, WINDOW).items()
                  if float(k.split("/")[1]) / 1000 < sc.start_ts + sc.duration_s + WINDOW}

    def done():
        recs = read_jsonl_dir(out / "records")
        final = final_results(recs, ("aggregate", "fleet", "health"))
        got = {k: {f: r[f] for f in ("detections",)} for k, r in final.items() if r["type"] != "health"}
        silent = [r["state"] for r in recs if r["type"] == "alert" and r["id"] == "silent:cam-silent:_all"]
        complete = set(expected) <= set(got) and all(got[k]["detections"] == v["detections"]
                                                    for k, v in expected.items())
        health_ids = {f"{r['device']}/{int(r['window_start'] * 1000)}" for r in final.values() if r["type"] == "health"}
        objects_done = compare_fields(exp_objects, objects_fields(final_objects(recs))) == []
        return recs if complete and objects_done and set(exp_health) <= health_ids and "cleared" in silent else None
    records = wait_for(done, 300, interval=1.0, what="every window at its final count and the silent alert's clear",
                       alive=job)

    # 1. aggregates and fleet totals (their latest revision) equal the recount; one first result per window
    final = final_results(records)
    got = {k: {f: r[f] for f in r if f not in ("schema", "type", "id", "high_sigma_threshold", "revision")}
           for k, r in final.items()}
    assert compare_fields(expected, got) == []
    first_window = f"cam-0/{LABELS[1]}/{int(sc.start_ts * 1000)}"      # the late frames are cars of that window
    assert final[first_window]["revision"] > 0, "the late frames revised cam-0's first window"
    # health per device and window: frames, last_seen, the latest heartbeat's fps/outbox depth, max dropped
    health = {f"{r['device']}/{int(r['window_start'] * 1000)}": r
              for r in final_results(records, ("health",)).values()}
    assert compare_fields(exp_health, {k: {f: v[f] for f in ("frames", "last_seen", "fps", "outbox_depth", "dropped")}
                                       for k, v in health.items() if k in exp_health}) == []

    # 1b. objects (issue 17): distinct tracks, started / ended, dwell, crossings, objects present = the recount;
    # the late track (published after the stream) revised the first window of trk-1's cars
    objects = final_objects(records)
    assert compare_fields(exp_objects, objects_fields(objects)) == []
    assert objects[f"objects/trk-1/car/{int(sc.start_ts * 1000)}"]["revision"] > 0, "the late track revised its window"
    assert sum(v["tracks"] for v in exp_objects.values() if v["type"] == "objects") >= 10

    # 2. dead letters: invalid messages and frames beyond the allowed lateness, with reasons, and counted
    dead = read_jsonl_dir(out / "deadletter")
    n_invalid = sum(e.category == "invalid" for e in events)
    assert sum(d["category"] == "dead" for d in dead) == n_invalid
    assert sum(d["category"] == "too_late" for d in dead) == sc.too_late
    assert any("score" in d["reason"] for d in dead)
    stats = [r for r in records if r["type"] == "stats"]
    assert sum(s["dead_letters"] for s in stats) == n_invalid + sc.too_late
    assert sum(s["too_late"] for s in stats) == sc.too_late
    assert sum(s["late"] for s in stats) >= sc.late        # and the outage's backlog, read out of order

    # 3. alerts: crowd and sigma spike fire on cam-0's burst window and clear on the next; silent fires and clears
    alerts = sorted((r for r in records if r["type"] == "alert"), key=lambda a: a["ts"])   # files are unordered
    def states(aid):
        return [a["state"] for a in alerts if a["id"] == aid]
    assert states("crowd:cam-0:person")[:2] == ["firing", "cleared"]
    assert states("sigma-spike:cam-0:person")[:2] == ["firing", "cleared"]
    spike_window = sc.start_ts + 2 * WINDOW
    assert [a["since"] for a in alerts if a["id"] == "crowd:cam-0:person"][:2] == [spike_window, spike_window]
    silent = states("silent:cam-silent:_all")     # fires while it is quiet, clears when it sends again
    assert silent[0] == "firing" and "cleared" in silent and silent[silent.index("cleared") - 1] == "firing"
    # the other devices were sending all through the first run: never silent then
    assert not [a for a in alerts if a["rule"] == "silent" and a["device"] != "cam-silent" and a["ts"] < t_kill]

    # 4. MQTT carried the same results: the latest message per id is the latest revision, byte for byte
    def mqtt_windows():
        msgs = {}
        for _t, p, _, _ in collector.snapshot():
            if p and p.get("type") in ("aggregate", "fleet", "objects", "present"):
                msgs[p["id"]] = p
        want = {**final, **objects}
        return msgs if all(k in msgs and msgs[k]["revision"] == want[k]["revision"] for k in want) else None
    mq = wait_for(mqtt_windows, 30, what="the final results on MQTT")
    assert all(outputs.encode(mq[k]) == outputs.encode(r) for k, r in {**final, **objects}.items())
    collector.close()
    late_sub = Collector(broker.host, broker.port, ["sigmawatch/agg/device/cam-0/#"])
    retained = wait_for(lambda: [m for m in late_sub.snapshot() if m[3]], 10, what="retained aggregates")
    late_sub.close()
    for _t, p, _, _ in retained:        # a new subscriber gets each topic's latest revision
        if p["id"] in final and p["window_start"] == final[p["id"]]["window_start"]:
            assert p == final[p["id"]]
    job.kill(signal.SIGKILL)
