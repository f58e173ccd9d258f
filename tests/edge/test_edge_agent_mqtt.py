"""The agent as a real process against a real mosquitto, a project-built int8 model and an OpenCV video."""
from __future__ import annotations

import json

import jsonschema
import pytest

from edge.contract import schema
from edge.contract.schema import json_schema, validate

from edge_helpers import agent_config, write_video

pytestmark = pytest.mark.mqtt


def _check(payload: dict, kind: str) -> None:
    validate(payload, kind)
    jsonschema.validate(payload, json_schema(kind))


def test_detections_status_metrics_arrive_and_validate(tmp_path, broker, detector_model, agents, subscriber):
    video = write_video(tmp_path / "cam.avi", frames=40, empty_every=10)
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    agent = agents(agent_config(tmp_path, broker, detector_model, video))

    dets = sub.wait_for(lambda: len(sub.payloads("/detections")) >= 25 and sub.payloads("/metrics"),
                        timeout=60, what="25 detections messages and a metrics message")
    for wire in sub.raw_payloads("/detections"):
        _check(wire, "detections")            # the compact version-2 wire format, against the published schema
    dets = sub.payloads("/detections")        # decoded (edge.contract.schema.decode), as the server sees them
    for d in dets:
        schema.validate_decoded_detections(d)
    seqs = [d["seq"] for d in dets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "sequence numbers must strictly increase"
    with_boxes = [d for d in dets if d["detections"]]
    assert with_boxes, "the red square must be detected"
    assert {x["label"] for d in with_boxes for x in d["detections"]} == {"red"}
    for d in with_boxes:
        for x in d["detections"]:
            assert 0 < x["sigma_mean"] < 1 and x["score"] >= 0.3
            # score = objectness x p(class) x (1 - mean sigma) <= objectness x (1 - mean sigma)
            assert x["score"] <= x["objectness"] * (1 - x["sigma_mean"]) + 1e-3
    # every 10th frame is black: the scene becomes empty -> exactly one empty message per transition
    empties = [i for i, d in enumerate(dets) if not d["detections"]]
    assert empties, "one empty message is expected when the scene becomes empty"
    assert all(dets[i - 1]["detections"] for i in empties if i > 0), "no two empty messages in a row"
    assert all(d["frame"] == {"w": 160, "h": 120} for d in dets)

    status = sub.payloads("/status")
    assert status and status[0]["state"] == "online"
    _check(status[0], "status")
    # detections carry the model's hash prefix; the retained status has its id and full hash
    assert status[0]["model"]["id"] == "fixture-det-64" and len(status[0]["model"]["hash"]) == 64
    assert all(status[0]["model"]["hash"].startswith(d["model"]["hash"]) and len(d["model"]["hash"]) == 12
               for d in dets)
    assert status[0]["interpreter"].startswith("ai-edge-litert")
    assert "password" not in json.dumps(status[0])
    metrics = sub.payloads("/metrics")
    _check(metrics[0], "metrics")

    assert agent.terminate() == 0, agent.logs()
    final = sub.wait_for(lambda: [s for s in sub.payloads("/status") if s["state"] == "offline"], timeout=10,
                         what="offline status")
    _check(final[-1], "status")
    assert final[-1]["reason"] == "stopped"


def test_classifier_reports_top_k_and_entropy(tmp_path, broker, classifier_model, agents, subscriber):
    video = write_video(tmp_path / "cam.avi", frames=20)
    sub = subscriber(broker, "sigmawatch/cls-1/detections")
    agent = agents(agent_config(tmp_path, broker, classifier_model, video, device="cls-1",
                                settings__top_k=2, model__task="classification"))
    msgs = sub.wait_for(lambda: sub.payloads("/detections") if len(sub.payloads("/detections")) >= 3 else None,
                        timeout=60, what="classification messages")
    for wire in sub.raw_payloads("/detections"):
        _check(wire, "detections")
    for m in msgs:
        schema.validate_decoded_detections(m)
        assert m["task"] == "classification" and len(m["classes"]) == 2
        assert m["classes"][0]["score"] >= m["classes"][1]["score"]
        # the fixture classifier is softmax(8 x mean RGB): a red square covering 1/6 of black frames gives
        # p = softmax(8/6, 0, 0) = (0.65, 0.17, 0.17) and an entropy of 0.89 nats (int8: within a few hundredths)
        assert m["classes"][0]["label"] == "red", m
        assert abs(m["classes"][0]["score"] - 0.65) < 0.08 and abs(m["classes"][1]["score"] - 0.17) < 0.08, m
        assert abs(m["entropy"] - 0.89) < 0.08, m
    assert agent.terminate() == 0, agent.logs()


def test_last_will_marks_a_killed_agent_offline(tmp_path, broker, detector_model, agents, subscriber):
    video = write_video(tmp_path / "cam.avi", frames=20)
    sub = subscriber(broker, "sigmawatch/cam-1/status")
    agent = agents(agent_config(tmp_path, broker, detector_model, video))
    sub.wait_for(lambda: [s for s in sub.payloads("/status") if s["state"] == "online"], timeout=30, what="online")
    agent.kill()
    will = sub.wait_for(lambda: [s for s in sub.payloads("/status") if s["state"] == "offline"], timeout=30,
                        what="the last will")
    _check(will[-1], "status")
    assert "last will" in will[-1]["reason"]


def test_fps_cap_drops_stale_frames_and_counts_them(tmp_path, broker, detector_model, agents, subscriber):
    """A 20 FPS camera-paced video processed at 2 FPS: the newest frame wins, the rest are dropped and counted."""
    video = write_video(tmp_path / "cam.avi", frames=40, fps=20)
    sub = subscriber(broker, "sigmawatch/cam-1/metrics")
    agent = agents(agent_config(tmp_path, broker, detector_model, video, settings__fps=2))
    m = sub.wait_for(lambda: [x for x in sub.payloads("/metrics") if x["frames"]["captured"] >= 60], timeout=30,
                     what="metrics after 60 captured frames")[-1]
    _check(m, "metrics")
    f = m["frames"]
    assert f["processed"] * 4 < f["captured"], f
    assert f["dropped"] >= f["captured"] - f["processed"] - 2, f   # at most the frame in the slot is pending
    # the broker is up: the outbox holds at most the messages still in flight, nothing was dropped
    assert m["outbox"]["dropped"] == 0 and m["outbox"]["depth"] <= m["outbox"]["inflight"] + 2, m["outbox"]
    assert m["latency_ms"]["p50"] > 0
    assert agent.terminate() == 0, agent.logs()


def test_exit_on_end_processes_every_frame_and_drains(tmp_path, broker, detector_model, subscriber):
    """A video read without pacing (realtime: false) is processed frame by frame, none dropped; at its end the
    agent drains the outbox and exits 0 by itself (batch runs, the emulated-Pi test)."""
    import subprocess
    import sys

    from edge_helpers import ROOT
    video = write_video(tmp_path / "cam.avi", frames=30, empty_every=5)
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    cfg = agent_config(tmp_path, broker, detector_model, video, source__loop=False, source__realtime=False,
                       source__exit_on_end=True)
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "run", "-c", str(cfg)], cwd=ROOT, timeout=60,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dets = sub.wait_for(lambda: [d for d in sub.payloads("/detections")] if sub.payloads("/status") and
                        [s for s in sub.payloads("/status") if s["state"] == "offline"] else None, timeout=10,
                        what="offline status after the end")
    # 30 frames, every 5th empty: 24 frames with the square + 6 transitions to an empty scene
    assert [d["seq"] for d in dets] == list(range(30))
    assert sum(1 for d in dets if not d["detections"]) == 6


def test_shipped_demo_detector_end_to_end(tmp_path, broker, shipped_detector, scene, agents, subscriber):
    """The project's trained demo detector on a synthetic scene of the kind it was trained on."""
    from edge.model_metadata import read_metadata
    model, video = scene
    assert model == shipped_detector
    meta = read_metadata(model)
    sub = subscriber(broker, "sigmawatch/demo-1/#")
    agent = agents(agent_config(tmp_path, broker, model, video, device="demo-1", model__task="detection",
                                model__threads=2))
    sub.wait_for(lambda: len([d for d in sub.payloads("/detections") if d["detections"]]) >= 10, timeout=90,
                 what="10 messages with detections from the demo detector")
    assert agent.terminate() == 0, agent.logs()
    for wire in sub.raw_payloads("/detections"):
        _check(wire, "detections")            # the compact version-2 wire format, against the published schema
    dets = sub.payloads("/detections")        # decoded (edge.contract.schema.decode), as the server sees them
    for d in dets:
        schema.validate_decoded_detections(d)
        assert meta["model_sha256"].startswith(d["model"]["hash"])
        for x in d["detections"]:
            assert x["label"] in meta["labels"]
            assert x["score"] <= x["objectness"] * (1 - x["sigma_mean"]) + 1e-3
    status = [s for s in sub.payloads("/status") if s["state"] == "online"][0]
    assert status["model"]["id"] == meta["model_id"] == "gyolo-mnv3s-256-synth"
