"""Source loss/corruption -> reconnect + status; remote config over MQTT -> applied or rejected with a reason."""
from __future__ import annotations

import json
import os
import shutil
import time

import jsonschema
import pytest

from edge.contract.schema import json_schema, validate
from edge_helpers import agent_config, write_video

pytestmark = pytest.mark.mqtt


def _states(sub) -> list[dict]:
    return [s["source"] for s in sub.payloads("/status") if s["state"] == "online"]


def test_source_end_reconnects_and_reports(tmp_path, broker, detector_model, agents, subscriber):
    video = write_video(tmp_path / "cam.avi", frames=10, fps=20)
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    agent = agents(agent_config(tmp_path, broker, detector_model, video, source__loop=False))
    lost = sub.wait_for(lambda: [s for s in _states(sub) if s["state"] == "reconnecting"], timeout=30,
                        what="status reporting the lost source")
    assert "end of video file" in lost[0]["error"]
    sub.wait_for(lambda: [s for s in _states(sub) if s["state"] == "open" and s["reconnects"] >= 2], timeout=30,
                 what="the source reopened at least twice")
    assert sub.payloads("/detections"), "frames after each reopen are processed"
    assert agent.proc.poll() is None, "the agent must not die when its source ends"
    assert agent.terminate() == 0, agent.logs()


def test_corrupt_source_is_retried_until_it_works(tmp_path, broker, detector_model, agents, subscriber):
    video = tmp_path / "cam.avi"
    video.write_bytes(os.urandom(20000))            # not a video
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    agent = agents(agent_config(tmp_path, broker, detector_model, video))
    bad = sub.wait_for(lambda: [s for s in _states(sub) if s["state"] == "reconnecting"], timeout=30,
                       what="status reporting the corrupt source")
    assert "cannot open" in bad[0]["error"] or "no frame" in bad[0]["error"]
    assert not sub.payloads("/detections")
    good = write_video(tmp_path / "good.avi", frames=20)
    shutil.move(good, video)                         # the camera comes back
    sub.wait_for(lambda: sub.payloads("/detections"), timeout=30, what="detections once the source works")
    assert [s for s in _states(sub) if s["state"] == "open"]
    assert agent.terminate() == 0, agent.logs()


def _config_states(sub) -> list[dict]:
    out = sub.payloads("/config/state")
    for p in out:
        validate(p, "config_state")
        jsonschema.validate(p, json_schema("config_state"))
    return out


def test_remote_config_valid_and_invalid(tmp_path, broker, detector_model, agents, subscriber):
    video = write_video(tmp_path / "cam.avi", frames=30)
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    agent = agents(agent_config(tmp_path, broker, detector_model, video))
    sub.wait_for(lambda: _config_states(sub), timeout=30, what="initial config state")
    sub.wait_for(lambda: any(d["detections"] for d in sub.payloads("/detections")), timeout=30, what="detections")
    topic = "sigmawatch/cam-1/config/set"

    def reply(rid):
        return sub.wait_for(lambda: [s for s in _config_states(sub) if s["request_id"] == rid], timeout=15,
                            what=f"config state for {rid}")[-1]

    sub.publish(topic, json.dumps({"request_id": "bad-range", "set": {"score_threshold": 2}}).encode())
    r = reply("bad-range")
    assert r["ok"] is False and "score_threshold" in r["error"] and r["config"]["score_threshold"] == 0.3
    sub.publish(topic, json.dumps({"request_id": "bad-key", "set": {"score_treshold": 0.5}}).encode())
    r = reply("bad-key")
    assert r["ok"] is False and "score_treshold" in r["error"]
    sub.publish(topic, json.dumps({"request_id": "bad-class", "set": {"classes": ["dog"]}}).encode())
    r = reply("bad-class")
    assert r["ok"] is False and "dog" in r["error"]
    sub.publish(topic, b"{not json")
    r = sub.wait_for(lambda: [s for s in _config_states(sub) if s["ok"] is False and "JSON" in (s["error"] or "")],
                     timeout=15, what="rejection of invalid JSON")[-1]
    assert r["request_id"] is None

    # valid: only "blue" from now on -> the red square is no longer reported (the video always shows it)
    n = len(sub.payloads("/detections"))
    sub.publish(topic, json.dumps({"request_id": "only-blue", "set": {"classes": ["blue"], "fps": 50}}).encode())
    r = reply("only-blue")
    assert r["ok"] is True and r["error"] is None and r["config"]["classes"] == ["blue"] and r["config"]["fps"] == 50
    sub.wait_for(lambda: [d for d in sub.payloads("/detections")[n:] if not d["detections"]], timeout=15,
                 what="the empty-scene message after the change")
    time.sleep(1.0)
    after = sub.payloads("/detections")[n:]
    first_empty = next(i for i, d in enumerate(after) if not d["detections"])
    assert first_empty == len(after) - 1, "after the scene became empty under classes=[blue], nothing more is sent"
    assert agent.proc.poll() is None
    assert agent.terminate() == 0, agent.logs()
