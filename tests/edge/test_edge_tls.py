"""TLS to a real mosquitto TLS listener with a CA made here by openssl: the agent connects, publishes and
gets its PUBACKs; a wrong CA is refused with a clear message (edge-agent check, exit 6)."""
from __future__ import annotations

import sqlite3
import time

import pytest
from edge_helpers import agent_config, write_video

from edge.cli import main
from tests.conftest import missing
from tests.support.tls import make_tls_files, openssl_available, self_signed_ca

pytestmark = pytest.mark.mqtt


@pytest.fixture
def tls_broker(tmp_path, broker_factory):
    if not openssl_available():
        missing("openssl is not installed (apt-get install openssl)")
    tls = make_tls_files(tmp_path / "tls")
    return broker_factory(listener=tls.listener), tls.ca_crt


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

    _other_key, other_ca = self_signed_ca(tmp_path, "other-ca")
    bad = agent_config(tmp_path, broker, detector_model, video, device="cam-2", mqtt__tls={"ca_file": str(other_ca)})
    assert main(["check", "-c", str(bad), "--timeout", "3"]) == 6
