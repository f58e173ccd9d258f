"""The job with its default event-time settings through the two ordinary outages of a server: started after the
bridge had been landing data for a while, and SIGKILLed and down for three minutes while devices keep sending.
Both backlogs are read in no particular order; every window still ends equal to the recount."""
from __future__ import annotations

import signal
import time

import pytest

from tests.support.generate import Scenario, generate, live_start, metrics_msg, publish_live, recount
from tests.support.publisher import Publisher
from edge.contract import schema

from stream_helpers import (bridge_args, checkpoints, compare_fields, final_results, job_args, read_jsonl_dir,
                            wait_for, write_config)

WINDOW = 10.0
BEFORE_JOB_S, DOWN_S = 20.0, float(__import__("os").environ.get("SIGMAWATCH_OUTAGE_S", 180))


@pytest.mark.flink
@pytest.mark.mqtt
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_job_started_late_and_down_three_minutes_equals_recount(broker, tmp_path, procs):
    cfg = write_config(tmp_path / "stream.yaml", broker, tmp_path, window={"size_s": WINDOW})
    chk = tmp_path / "chk"
    procs(bridge_args(cfg, "--client-id", "b1"), tmp_path / "b1.log")
    wait_for(lambda: "subscribed to" in (tmp_path / "b1.log").read_text(), 20, what="the bridge")
    sc = Scenario(window_s=WINDOW, devices=5, duration_s=600.0, silent_device=False, late=0, late_dups=0,
                  too_late=0, start_ts=live_start(WINDOW, 1.0))
    pending = list(generate(sc))
    published = []
    pub = Publisher(broker.host, broker.port)

    def publish_until(wall_clock: float) -> None:
        """Publish, as devices would (each event at start_ts + at), every event due by ``wall_clock``."""
        due = [e for e in pending if sc.start_ts + e.at <= wall_clock]
        del pending[:len(due)]
        publish_live(pub, due, sc.start_ts)
        published.extend(due)
        time.sleep(max(0.0, wall_clock - time.time()))

    publish_until(sc.start_ts + BEFORE_JOB_S)                  # the job is not running yet: the bridge lands
    job = procs(job_args(cfg), tmp_path / "job1.log")
    wait_for(lambda: checkpoints(chk), 300, what="the job's first checkpoint", alive=job)
    publish_until(time.time() + 30.0)
    job.kill(signal.SIGKILL)
    down_at = time.time()
    publish_until(down_at + DOWN_S)                            # three minutes of data while the job is down
    job = procs(job_args(cfg), tmp_path / "job2.log")
    publish_until(time.time() + 20.0)
    wait_for(lambda: "resuming from" in (tmp_path / "job2.log").read_text(), 120, what="the job to resume", alive=job)
    time.sleep(WINDOW + 1.0)      # past the end of the last window, then a heartbeat that moves the watermark there
    pub.publish(schema.topic("sigmawatch", "cam-0", "metrics"), schema.encode(metrics_msg("cam-0", time.time(), 4.0, 0)))
    pub.close()
    events = published

    expected = recount(events, WINDOW)

    progress = {}

    def done():
        final = final_results(read_jsonl_dir(tmp_path / "out" / "records"))
        behind = sorted(k for k, v in expected.items() if k not in final or final[k]["detections"] != v["detections"])
        progress.update(windows=len(expected), behind=len(behind), first=behind[:5])
        return final if not behind else None
    try:
        final = wait_for(done, 900, interval=2.0, what="every window at its final count", alive=job)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {progress}") from None
    got = {k: {f: r[f] for f in r if f not in ("schema", "type", "id", "high_sigma_threshold", "revision")}
           for k, r in final.items()}
    assert compare_fields(expected, got) == []
    dead = read_jsonl_dir(tmp_path / "out" / "deadletter")
    assert sum(d["category"] == "too_late" for d in dead) == 0
    assert sum(d["category"] == "dead" for d in dead) == sum(e.category == "invalid" for e in events)
    job.kill(signal.SIGKILL)
