"""configs/mosquitto/acl on a real mosquitto with a password file: each device writes only its own topics."""
from __future__ import annotations

import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.cli import main
from edge_helpers import USERS, agent_config, write_video

pytestmark = pytest.mark.mqtt


def _client(broker, user: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{user}")
    c.username_pw_set(user, USERS[user])
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def test_device_cannot_write_another_devices_topics(tmp_path, secured_broker, detector_model, agents, subscriber):
    broker = secured_broker
    op = subscriber(broker, "sigmawatch/#", username="operator", password=USERS["operator"])
    (tmp_path / "pw-a").write_text("secret-a\n")
    video = write_video(tmp_path / "cam.avi", frames=20)
    agent = agents(agent_config(tmp_path, broker, detector_model, video, device="cam-a", mqtt__username="cam-a",
                                mqtt__password_file=str(tmp_path / "pw-a")))
    op.wait_for(lambda: op.payloads("cam-a/detections"), timeout=30, what="cam-a's own detections")

    intruder = _client(broker, "cam-a")
    for kind in ("detections", "status", "metrics", "config/state"):
        intruder.publish(f"sigmawatch/cam-b/{kind}", b'{"forged": true}', qos=1).wait_for_publish(5)
    # a device cannot confirm its own messages as landed (only the bridge user writes <device>/landed)
    intruder.publish("sigmawatch/cam-a/landed", b'{"forged": true}', qos=1).wait_for_publish(5)
    intruder.publish("sigmawatch/cam-a/metrics", b'{"own": true}', qos=1).wait_for_publish(5)
    op.wait_for(lambda: [m for m in op.payloads("cam-a/metrics") if m.get("own")], timeout=10,
                what="cam-a's write to its own topic")
    time.sleep(0.5)
    with op.lock:
        forged = [t for t, _p, _r in op.messages if t.startswith("sigmawatch/cam-b/") or t.endswith("/landed")]
    assert forged == [], f"the ACL let cam-a write {forged}"
    intruder.disconnect()
    intruder.loop_stop()
    assert agent.terminate() == 0, agent.logs()


def test_check_reports_refused_credentials(tmp_path, secured_broker, detector_model, capsys):
    (tmp_path / "pw").write_text("wrong\n")
    video = write_video(tmp_path / "cam.avi", frames=5)
    cfg = agent_config(tmp_path, secured_broker, detector_model, video, device="cam-a", mqtt__username="cam-a",
                       mqtt__password_file=str(tmp_path / "pw"))
    assert main(["check", "-c", str(cfg)]) == 6
    out = capsys.readouterr().out
    assert "FAIL  broker" in out and "refused" in out.lower()
    assert "ok    model" in out and "ok    source" in out
