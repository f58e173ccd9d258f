"""systemd/edge-agent.service: sandbox exposure via systemd-analyze, and the agent's side of the contract
(READY=1 and WATCHDOG=1 over $NOTIFY_SOCKET, the MQTT password from $CREDENTIALS_DIRECTORY) on a real process."""
from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest
from edge_helpers import ROOT, USERS, agent_config, write_video

from tests.conftest import require_tool

UNIT = ROOT / "systemd" / "edge-agent.service"


def _analyze() -> str:
    return require_tool("systemd-analyze", "apt-get install systemd")


def test_unit_sandbox_exposure_at_most_2(tmp_path):
    out = subprocess.run([_analyze(), "security", "--offline=yes", str(UNIT)], capture_output=True, text=True,
                         timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout + out.stderr)
    assert m, out.stdout[-2000:] + out.stderr[-2000:]
    assert float(m.group(1)) <= 2.0, f"exposure {m.group(1)} > 2.0:\n{out.stdout}"


def test_unit_verifies_and_declares_the_contract(tmp_path):
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=", "User=edge-agent",
                 "SupplementaryGroups=video", "LoadCredential=mqtt-password:", "DeviceAllow=char-video4linux rw",
                 "DeviceAllow=char-apex rw", "DeviceAllow=char-usb_device rw", "StateDirectory=edge-agent"):
        assert line in text, f"{line} missing from {UNIT.name}"
    copy = tmp_path / "edge-agent.service"   # the venv path does not exist here: verify the rest of the unit
    copy.write_text(re.sub(r"^ExecStart=.*$", "ExecStart=/bin/true", text, flags=re.M))
    out = subprocess.run([_analyze(), "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.mqtt
def test_notify_watchdog_and_credential(tmp_path, secured_broker, detector_model, agents, subscriber):
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "mqtt-password").write_text(USERS["cam-a"] + "\n")
    notify_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notify_path)
    server.settimeout(0.5)
    op = subscriber(secured_broker, "sigmawatch/cam-a/#", username="operator", password=USERS["operator"])
    video = write_video(tmp_path / "cam.avi", frames=20)
    cfg = agent_config(tmp_path, secured_broker, detector_model, video, device="cam-a", mqtt__username="cam-a",
                       mqtt__password_credential="mqtt-password")
    agent = agents(cfg, env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "2000000",
                             "CREDENTIALS_DIRECTORY": str(creds)})
    got: list[bytes] = []
    deadline = time.time() + 30
    try:
        while time.time() < deadline and got.count(b"WATCHDOG=1") < 2:
            try:
                got.append(server.recv(4096))
            except socket.timeout:
                pass
        assert got and got[0].startswith(b"READY=1"), got
        assert got.count(b"WATCHDOG=1") >= 2, f"watchdog pings expected every ~1 s, got {got}"
        op.wait_for(lambda: op.payloads("/detections"), timeout=30, what="detections authenticated by the credential")
        assert agent.terminate() == 0, agent.logs()
        tail = []
        try:
            while True:
                tail.append(server.recv(4096))
        except socket.timeout:
            pass
        assert b"STOPPING=1" in tail
    finally:
        server.close()
