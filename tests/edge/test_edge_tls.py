"""TLS to a real mosquitto TLS listener with a CA made here by openssl: the agent connects, publishes and
gets its PUBACKs; a wrong CA is refused with a clear message (edge-agent check, exit 6)."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time

import pytest

from edge.cli import main
from edge_helpers import agent_config, write_video

pytestmark = pytest.mark.mqtt


def _ca(directory, name: str):
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    f"/CN={name}", "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return key, crt


@pytest.fixture
def tls_broker(tmp_path, broker_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    ca_key, ca_crt = _ca(tmp_path, "test-ca")
    key, csr, crt = tmp_path / "broker.key", tmp_path / "broker.csr", tmp_path / "broker.crt"
    ext = tmp_path / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
                    "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt)],
                   check=True, capture_output=True)
    broker = broker_factory(extra_conf=f"cafile {ca_crt}\ncertfile {crt}\nkeyfile {key}\n")
    return broker, ca_crt


def test_agent_over_tls(tmp_path, tls_broker, detector_model, agents):
    broker, ca = tls_broker
    video = write_video(tmp_path / "cam.avi", frames=20)
    cfg = agent_config(tmp_path, broker, detector_model, video, mqtt__tls={"ca_file": str(ca)})
    assert main(["check", "-c", str(cfg)]) == 0
    agent = agents(cfg)
    db = tmp_path / "state-cam-1" / "outbox.sqlite"
    deadline = time.time() + 30
    acked = 0
    while time.time() < deadline and acked < 10:
        time.sleep(0.5)
        if db.exists():
            with sqlite3.connect(db) as c:
                acked = c.execute("SELECT value FROM meta WHERE key='acked'").fetchone()[0]
    assert acked >= 10, f"the broker must acknowledge detections over TLS:\n{agent.logs()}"
    assert agent.terminate() == 0

    _other_key, other_ca = _ca(tmp_path, "other-ca")
    bad = agent_config(tmp_path, broker, detector_model, video, device="cam-2", mqtt__tls={"ca_file": str(other_ca)})
    assert main(["check", "-c", str(bad), "--timeout", "3"]) == 6
