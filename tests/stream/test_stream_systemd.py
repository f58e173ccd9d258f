"""systemd/stream-bridge.service and systemd/stream-job.service: sandbox exposure (systemd-analyze, measured like
the agent's), the units verify, and the bridge's side of its unit on a real process: READY=1 once subscribed,
WATCHDOG=1 while running, STOPPING=1 on SIGTERM; and the broker config states what its persistence guarantees."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.bridges import write_bridge_config
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
UNITS = {name: ROOT / "systemd" / f"{name}.service" for name in ("stream-bridge", "stream-job")}


def _analyze() -> str:
    return require_tool("systemd-analyze", "apt-get install systemd")


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_sandbox_exposure_at_most_2(name):
    out = subprocess.run([_analyze(), "security", "--offline=yes", str(UNITS[name])], capture_output=True,
                         text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout + out.stderr)
    assert m, out.stdout[-2000:] + out.stderr[-2000:]
    assert float(m.group(1)) <= 2.0, f"exposure {m.group(1)} > 2.0:\n{out.stdout}"


@pytest.mark.parametrize("name,lines", [
    ("stream-bridge", ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=",
                       "LoadCredential=mqtt-password:", "MemoryDenyWriteExecute=yes")),
    ("stream-job", ("Type=exec", "Restart=on-failure", "KillMode=control-group", "StartLimitBurst=",
                    "LoadCredential=mqtt-password:", "MemoryDenyWriteExecute=no")),
])
def test_unit_verifies_and_declares_the_contract(tmp_path, name, lines):
    text = UNITS[name].read_text()
    for line in lines:
        assert line in text, f"{line} missing from {name}.service"
    copy = tmp_path / f"{name}.service"      # the venv path does not exist here: verify the rest of the unit
    copy.write_text(re.sub(r"^ExecStart=.*$", "ExecStart=/bin/true", text, flags=re.M))
    out = subprocess.run([_analyze(), "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.mqtt
def test_bridge_notifies_ready_watchdog_and_stopping(tmp_path, bridges, broker):
    notify_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notify_path)
    server.settimeout(0.5)
    cfg = write_bridge_config(tmp_path / "stream.yaml", broker.host, broker.port, tmp_path / "landing")
    bridge = bridges(cfg, "b1", env={"NOTIFY_SOCKET": notify_path,
                                                                 "WATCHDOG_USEC": "1500000"})
    got: list[bytes] = []
    try:
        deadline = time.time() + 30
        while time.time() < deadline and sum(m == b"WATCHDOG=1" for m in got) < 2:
            try:
                got.append(server.recv(4096))
            except socket.timeout:
                pass
        assert got and got[0].startswith(b"READY=1"), got
        assert "subscribed to" in bridge.tail(), "READY=1 only once subscribed"
        assert sum(m == b"WATCHDOG=1" for m in got) >= 2, got
        assert any(m.startswith(b"STATUS=online") for m in got), got
        assert bridge.terminate() == 0, bridge.tail()
        tail = []
        try:
            while True:
                tail.append(server.recv(4096))
        except socket.timeout:
            pass
        assert b"STOPPING=1" in tail
    finally:
        bridge.kill()
        server.close()


def test_broker_config_states_what_persistence_guarantees():
    conf = (ROOT / "configs" / "mosquitto" / "mosquitto.conf").read_text()
    settings = dict(re.findall(r"^(\w+)\s+(.+?)\s*$", conf, re.M))
    assert settings["persistence"] == "true" and "autosave_interval" in settings
    comments = " ".join(line for line in conf.splitlines() if line.startswith("#"))
    for claim in ("not written before", "PUBACK", "kill -9", "landed"):
        assert claim in comments, f"the broker config should say {claim!r} about its persistence"
