"""Landing files per message at every rate (issue 14 item 6, the bridge's half): a quiet camera must not get a file
per message (the job's file source remembers every file it read), a busy bridge fills its files."""
from __future__ import annotations

import time

import pytest

from edge.contract import schema
from tests.support.bridges import landed, write_bridge_config
from tests.support.generate import detections_msg
from tests.support.publisher import Publisher

pytestmark = pytest.mark.mqtt


def _msg(seq: int) -> bytes:
    return schema.encode(detections_msg("cam-1", seq, 1_700_000_000.0 + seq / 4, [(0, 0.9, 0.1)]))


def test_one_camera_at_4_fps_and_a_burst(tmp_path, bridges, broker):
    landing = tmp_path / "landing"
    # the shipped defaults (roll_interval_s 1.0, roll_max_records 1000), not the tests' fast rolls
    cfg = write_bridge_config(tmp_path / "stream.yaml", broker.host, broker.port, landing, roll_interval_s=1.0,
                              roll_max_records=1000)
    bridge = bridges(cfg, "b1").wait_subscribed()
    pub = Publisher(broker.host, broker.port)
    t0 = time.time()
    for seq in range(40):                       # one camera at 4 frames/s for 10 s
        time.sleep(max(0.0, t0 + seq / 4 - time.time()))
        pub.publish("sigmawatch/cam-1/detections", _msg(seq))
    time.sleep(1.5)
    quiet_files = len(list(landing.glob("*.jsonl")))
    assert len(landed(landing)) == 40
    assert quiet_files <= 12, f"{quiet_files} files for 40 messages at 4 fps: at most one per second expected"
    for seq in range(40, 5040):                 # a burst: files fill up to roll_max_records
        pub.publish("sigmawatch/cam-1/detections", _msg(seq))
    pub.close()
    deadline = time.time() + 30
    while time.time() < deadline and len(landed(landing)) < 5040:
        time.sleep(0.2)
    burst_files = len(list(landing.glob("*.jsonl"))) - quiet_files
    assert len(landed(landing)) == 5040
    print(f"files: {quiet_files} for 40 messages at 4 fps, {burst_files} for a burst of 5000")
    assert burst_files <= 5000 / 1000 + 2 * (time.time() - t0), burst_files
    assert bridge.terminate() == 0


def test_the_end_of_a_burst_lands_at_once_and_a_quiet_camera_waits_for_the_interval(tmp_path, bridges, broker):
    """MQTT 5: a file of at least roll_burst_records is rolled once no message came for roll_idle_s (the end of a
    burst or backlog lands at once); fewer records wait for roll_interval_s (one file per interval when quiet)."""
    landing = tmp_path / "landing"
    cfg = write_bridge_config(tmp_path / "stream.yaml", broker.host, broker.port, landing, roll_interval_s=20.0,
                              roll_max_records=100_000, roll_idle_s=0.05, roll_burst_records=100)
    bridge = bridges(cfg, "b1").wait_subscribed()
    pub = Publisher(broker.host, broker.port)
    for seq in range(30):                        # fewer than roll_burst_records: they wait for the interval
        pub.publish("sigmawatch/cam-1/detections", _msg(seq))
    time.sleep(3.0)
    assert landed(landing) == [], "a file of 30 records must wait for roll_interval_s (20 s here)"
    for seq in range(30, 630):                   # a burst: it lands as soon as it ends
        pub.publish("sigmawatch/cam-1/detections", _msg(seq))
    end = time.time()
    pub.close()
    while time.time() < end + 10 and len(landed(landing)) < 630:
        time.sleep(0.05)
    waited = time.time() - end
    assert len(landed(landing)) == 630, "the burst, with the 30 before it, lands without waiting for the interval"
    assert waited < 10, waited
    assert bridge.terminate() == 0


def test_at_a_high_rate_files_roll_every_busy_interval_not_every_roll_interval(tmp_path, bridges, broker):
    """A steady 1,000 messages a second (no idle gap for the idle roll): files of >= roll_burst_records roll once
    their oldest line is roll_busy_s old, long before roll_interval_s (20 s here) or roll_max_records."""
    landing = tmp_path / "landing"
    cfg = write_bridge_config(tmp_path / "stream.yaml", broker.host, broker.port, landing, roll_interval_s=20.0,
                              roll_max_records=100_000, roll_idle_s=5.0, roll_burst_records=100, roll_busy_s=0.25)
    bridge = bridges(cfg, "b1").wait_subscribed()
    pub = Publisher(broker.host, broker.port)
    t0 = time.time()
    for seq in range(3000):                     # 3 s at 1,000 messages a second
        time.sleep(max(0.0, t0 + seq / 1000 - time.time()))
        pub.publish("sigmawatch/cam-1/detections", _msg(seq))
    during = len(landed(landing))
    pub.close()
    deadline = time.time() + 30
    while time.time() < deadline and len(landed(landing)) < 3000:
        time.sleep(0.1)
    files = sorted(landing.glob("*.jsonl"))
    assert len(landed(landing)) == 3000
    assert during >= 2000, f"only {during} of 3000 messages landed while they were being published"
    assert 8 <= len(files) <= 30, f"{len(files)} files for 3 s at 1,000 messages a second (roll_busy_s 0.25 s)"
    assert bridge.terminate() == 0
