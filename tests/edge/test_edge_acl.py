"""configs/mosquitto/acl on a real mosquitto with a password file: each device writes only its own topics."""
from __future__ import annotations

import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.cli import main
from edge_helpers import USERS, agent_config, write_video
from tests.conftest import require_tool

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


def test_an_acl_without_landed_makes_the_agent_deliver_at_puback_and_say_so(tmp_path, broker_factory, detector_model,
                                                                              agents, subscriber):
    """A broker whose ACL predates landing confirmations: mosquitto 2.0 accepts the agent's subscription to them
    but delivers nothing (and drops the bridge's writes); an agent in the default auto mode keeps publishing,
    falls back to PUBACK delivery and says so in its retained status. (A broker that refuses the subscription
    outright is covered by tests/contracts/test_mqtt_fast_paths.py.)"""
    import shutil
    import subprocess

    from edge_helpers import ROOT
    require_tool("mosquitto_passwd", "apt-get install mosquitto")
    passwd = tmp_path / "passwd"
    for i, (user, pw) in enumerate(USERS.items()):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), str(passwd), user, pw], check=True)
    old_acl = tmp_path / "acl"
    old_acl.write_text("".join(line for line in (ROOT / "configs" / "mosquitto" / "acl").read_text()
                               .splitlines(keepends=True) if "landed" not in line))
    broker = broker_factory(extra_conf=f"allow_anonymous false\npassword_file {passwd}\nacl_file {old_acl}\n")
    op = subscriber(broker, "sigmawatch/#", username="operator", password=USERS["operator"])
    (tmp_path / "pw-a").write_text("secret-a\n")
    video = write_video(tmp_path / "cam.avi", frames=20)
    agent = agents(agent_config(tmp_path, broker, detector_model, video, device="cam-a", mqtt__username="cam-a",
                                mqtt__password_file=str(tmp_path / "pw-a"), mqtt__delivery="auto",
                                mqtt__confirm_timeout_s=1.0))
    op.wait_for(lambda: op.payloads("cam-a/detections"), timeout=30, what="cam-a's detections")
    status = op.wait_for(lambda: [p for p in op.payloads("cam-a/status")
                                  if p.get("delivery", {}).get("mode") == "puback"], timeout=30,
                         what="a status saying puback")
    assert "PUBACK" in status[-1]["delivery"]["reason"]
    assert agent.terminate() == 0, agent.logs()
