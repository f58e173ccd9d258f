"""The demo's camera videos and its MQTT observer (summary figures, exactly-once recount)."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.contract.mqtt import MqttSettings

import dash_messages as m
from demo.observer import Observer
from demo.video import write_demo_video


def test_demo_video_is_a_readable_moving_scene_and_is_cached(tmp_path):
    info = write_demo_video(tmp_path / "cam.mp4", seed=5, width=160, height=120, fps=10, seconds=1.5)
    assert (info.width, info.height, info.frames) == (160, 120, 15)
    cap = cv2.VideoCapture(str(info.path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 15 and frames[0].shape == (120, 160, 3)
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, frames[1:])]
    assert min(diffs) > 0.5  # the objects move every frame
    _, jpg = cv2.imencode(".jpg", frames[0], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert info.mean_jpeg_bytes == pytest.approx(len(jpg), rel=0.5)
    mtime = info.path.stat().st_mtime_ns
    again = write_demo_video(tmp_path / "cam.mp4", seed=5, width=160, height=120, fps=10, seconds=1.5)
    assert again == info and info.path.stat().st_mtime_ns == mtime
    other = write_demo_video(tmp_path / "cam.mp4", seed=6, width=160, height=120, fps=10, seconds=1.5)
    assert info.path.stat().st_mtime_ns != mtime and other.frames == 15


@pytest.mark.mqtt
def test_observer_counts_and_recounts_windows_against_the_aggregates(broker, publisher):
    obs = Observer(MqttSettings(host=broker.host, port=broker.port))
    try:
        obs.wait_ready(10)
        t0 = 1_700_000_000.0  # window-aligned (5 s)
        circle = m.detection("circle", 0, (0.1, 0.1, 0.3, 0.3), 0.1)
        square = m.detection("square", 1, (0.5, 0.5, 0.7, 0.7), 0.2)
        msgs = [m.detections("cam-1", 1, [circle, square], ts=t0 + 1.0),
                m.detections("cam-1", 2, [circle], ts=t0 + 6.0),
                m.detections("cam-1", 2, [circle], ts=t0 + 6.0),          # a QoS 1 redelivery: counted once
                m.detections("cam-2", 7, [square, square], ts=t0 + 2.0),
                m.metrics("cam-1", 4.0, 10, 1, 0)]
        publisher.send(msgs)
        deadline = time.monotonic() + 10
        while obs.published_events() < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        publisher.send([m.aggregate("cam-1", "circle", 0, t0, 1, 0.1),
                        m.aggregate("cam-1", "square", 1, t0, 1, 0.2),
                        m.aggregate("cam-1", "circle", 0, t0 + 5, 1, 0.1),
                        m.aggregate("cam-2", "square", 1, t0, 3, 0.2)])    # wrong: 2 were published
        while obs.aggregated_events() < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        s = obs.summary(mean_jpeg_bytes=1000.0)
        assert s["detections_published"] == 5 and s["detection_messages"] == 3 and s["duplicate_messages"] == 1
        assert s["detections_by_class"] == {"circle": 2, "square": 3}
        assert s["frames_processed"] == 10 + 1  # cam-1 from its metrics, cam-2 from its one message
        assert s["jpeg_bytes_replaced"] == 11_000
        assert s["events_aggregated"] == 6
        assert obs.recount_mismatches(5.0) == {"missing": [], "extra": [],
                                               "wrong": [(("cam-2", "square", int(t0 * 1000)), 2, 3)]}
    finally:
        obs.close()
