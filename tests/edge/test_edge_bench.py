"""``edge-agent bench`` runs end to end on a project-built model and an OpenCV-written video (figures only
printed; nothing about speed is asserted)."""
from __future__ import annotations

import json

from edge.cli import main
from edge_helpers import write_video


def test_bench_prints_every_figure(tmp_path, detector_model, capsys):
    video = write_video(tmp_path / "cam.avi", frames=30, size=(320, 240))
    assert main(["bench", "--model", str(detector_model), "--video", str(video), "--frames", "20", "--rounds", "1",
                 "--threads", "1", "--json"]) == 0
    out = capsys.readouterr().out
    for label in ("interpreter only", "full pipeline", "preprocess", "inference", "postprocess", "CPU", "MQTT"):
        assert label in out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["interpreter_fps"] > 0 and figures["pipeline_fps"] > 0
    assert figures["mqtt_bytes_per_frame"] > 0, "the red square is detected, so messages are built"
    assert 0 < figures["bytes_ratio"] == figures["mqtt_bytes_per_frame"] / figures["jpeg_bytes_per_frame"]
    assert figures["mqtt_bytes_per_frame"] > figures["mqtt_payload_bytes_per_frame"] > 0
    assert set(figures["stages"]) >= {"capture", "preprocess", "inference", "postprocess", "publish"}


def test_publish_overhead_counts_the_mqtt_packet():
    from edge.bench import publish_overhead
    # PUBLISH QoS 1, topic "a/b", 10-byte payload: 0x32, remaining length 17 (1 byte), 00 03 'a/b', packet id 2 bytes
    assert publish_overhead("a/b", 10) == 1 + 1 + 2 + 3 + 2
    # remaining length >= 128 needs a second varint byte; QoS 0 has no packet id
    assert publish_overhead("a/b", 200) == 1 + 2 + 2 + 3 + 2
    assert publish_overhead("a/b", 10, qos=0) == 1 + 1 + 2 + 3
