"""``bench.events_bytes`` measures what it says: the real agent in both publish modes on one video, bytes as MQTT
carries them. A short run on a scripted scene (a disc crossing, a square standing still)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.events_bytes import main, mqtt_publish_bytes
from tests.conftest import require_tool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))
from edge_helpers import write_crossing_video

pytestmark = pytest.mark.mqtt


def test_publish_packet_size():
    # fixed header 1 + remaining length 1, topic length 2 + 5, packet id 2, payload 10
    assert mqtt_publish_bytes("a/b/c", 10, 1) == 1 + 1 + 2 + 5 + 2 + 10
    assert mqtt_publish_bytes("a/b/c", 10, 0) == 1 + 1 + 2 + 5 + 10
    assert mqtt_publish_bytes("t", 200, 1) == 1 + 2 + 2 + 1 + 2 + 200       # remaining length 205: two bytes


def test_events_only_sends_fewer_bytes_than_detections(tmp_path, capsys):
    require_tool("mosquitto", "apt-get install mosquitto", "/usr/sbin/mosquitto")
    video = write_crossing_video(tmp_path / "crossing.avi", cross_frames=30, gone_frames=10)
    out = tmp_path / "bytes.json"
    assert main(["--video", str(video), "--model", str(Path(__file__).resolve().parents[2] / "edge" / "models" /
                                                     "demo-detector-int8.tflite"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    runs = {r["publish"]: r for r in json.loads(out.read_text())["runs"]}
    both, only = runs["both"], runs["events_only"]
    assert both["messages"]["detections"] >= 30 and only["messages"]["detections"] == 0
    assert only["messages"]["events"] >= 4 and both["messages"]["events"] >= 4       # new + end for both objects
    assert 0 < only["bytes_per_minute"] < both["bytes_per_minute"] / 3
    assert both["bytes_per_minute"] < both["jpeg_per_minute_all"]
    assert "events_only / both" in printed
