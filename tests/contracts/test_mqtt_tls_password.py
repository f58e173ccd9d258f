"""The one MQTT settings model and client, against a real mosquitto that accepts only TLS + a password (its CA
made here with openssl): the bridge, the job's MQTT sink and the dashboard connect with the same ``mqtt`` keys /
``--mqtt-*`` flags and work; a refused connection fails with exit code 6 and the broker's reason, never silently."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from edge.contract import outputs, schema
from edge.contract.errors import BrokerError
from edge.contract.mqtt import MqttClient, MqttSettings, TlsSettings
from tests.conftest import missing, require_module, require_tool
from tests.support.generate import detections_msg
from tests.support.tls import make_tls_files, openssl_available

pytestmark = pytest.mark.mqtt
USERS = {"bridge": "pw-bridge", "job": "pw-job", "viewer": "pw-viewer", "cam": "pw-cam"}


@pytest.fixture
def secure(tmp_path, broker_factory):
    """A TLS-only, password-only broker and, per user, the settings that reach it (a wrong password for 'mallory')."""
    if not openssl_available():
        missing("openssl is not installed (apt-get install openssl)")
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    if subprocess.run([require_tool("mosquitto_passwd", "apt-get install mosquitto"), "-U", str(passwd)],
                      capture_output=True).returncode != 0:
        missing("mosquitto_passwd could not hash a password file")
    tls = make_tls_files(tmp_path / "tls")
    broker = broker_factory(listener=tls.listener, extra_conf=f"password_file {passwd}\n", allow_anonymous=False)

    def settings(user: str, password: str | None = None) -> MqttSettings:
        pw = tmp_path / f"{user}.pw"
        pw.write_text((password or USERS[user]) + "\n")
        return MqttSettings(host=broker.host, port=broker.port, tls=TlsSettings(ca_file=tls.ca_crt),
                            username=user, password_file=pw)
    return broker, tls, settings


def _stream_config(path, mqtt: MqttSettings, base) -> str:
    path.write_text(yaml.safe_dump({
        "mqtt": mqtt.model_dump(mode="json", exclude_none=True),
        "bridge": {"landing_dir": str(base / "landing"), "client_id": "tls-bridge", "group": None,
                   "roll_interval_s": 0.2, "consumed_dir": None},
        "job": {"landing_dir": str(base / "landing"), "output_dir": str(base / "out"),
                "checkpoint_dir": str(base / "chk"), "window": {"size_s": 5.0}}}))
    return str(path)


def test_plaintext_and_anonymous_clients_are_refused_with_the_reason(secure):
    broker, _tls, settings = secure
    with pytest.raises(BrokerError, match="closed the connection without answering: is it a TLS listener"):
        client = MqttClient(MqttSettings(host=broker.host, port=broker.port), client_id="plain").start()
        try:
            client.wait_ready(5)
        finally:
            client.stop()
    with pytest.raises(BrokerError, match="refused the connection"):
        client = MqttClient(settings("viewer", "wrong"), client_id="mallory").start()
        try:
            client.wait_ready(5)
        finally:
            client.stop()


def test_bridge_lands_over_tls_with_a_password_and_exits_6_when_refused(secure, tmp_path):
    broker, _tls, settings = secure
    cfg = _stream_config(tmp_path / "stream.yaml", settings("bridge"), tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "stream.bridge", "--config", cfg, "--duration", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cam = None
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "subscribed to" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "the bridge exited before subscribing"
        assert "subscribed to" in line and "mqtts://127.0.0.1" in line
        cam = MqttClient(settings("cam"), client_id="cam-7").start()
        cam.wait_ready(10)
        msg = detections_msg("cam-7", 41, 1_700_000_000.5, [(0, 0.9, 0.1)])
        cam.publish_and_wait(schema.topic("sigmawatch", "cam-7", "detections"), schema.encode(msg))
        landed = []
        deadline = time.monotonic() + 20
        while not landed and time.monotonic() < deadline:
            landed = [json.loads(x) for p in (tmp_path / "landing").glob("*.jsonl")
                      for x in p.read_text().splitlines() if '"seq":41' in x]
            time.sleep(0.1)
        assert [(x["device"], x["kind"], x["seq"]) for x in landed] == [("cam-7", "detections", 41)]
    finally:
        if cam:
            cam.stop()
        proc.terminate()
        proc.wait(20)
    bad = _stream_config(tmp_path / "bad.yaml", settings("bridge", "wrong"), tmp_path)
    done = subprocess.run([sys.executable, "-m", "stream.bridge", "--config", bad], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == BrokerError.exit_code == 6, done.stderr[-2000:]
    assert "stream-bridge: error:" in done.stderr and "refused the connection" in done.stderr


class _SubtaskContext:
    """The one method of Flink's RuntimeContext that the MQTT sink calls (no Flink runs in this test)."""

    def get_index_of_this_subtask(self) -> int:
        return 0


def test_job_sink_publishes_over_tls_with_a_password_and_fails_loudly_when_refused(secure, tmp_path):
    require_module("pyflink")
    from stream.functions import DEST_RECORDS, MqttPublish, tag
    broker, _tls, settings = secure
    viewer = MqttClient(settings("viewer"), client_id="viewer", subscriptions=[("sigmawatch/agg/#", 1)],
                        on_message=lambda m: got.append((m.topic, json.loads(m.payload)))).start()
    got: list = []
    viewer.wait_ready(10)
    payload = outputs.build("health", device="cam-7", window_start=1_700_000_000.0, window_end=1_700_000_005.0,
                            revision=0, last_seen=1_700_000_004.0, frames=3, late_frames=0, frame_rate=0.6, fps=None,
                            dropped=None, outbox_depth=None, state="online", clock_offset_s=None)
    sink = MqttPublish(settings("job"), "sigmawatch-job")
    # what Flink ships to its TaskManagers holds where the password is, not the password
    assert USERS["job"].encode() not in pickle.dumps(sink)
    sink.open(_SubtaskContext())
    try:
        line = tag(DEST_RECORDS, payload)
        assert sink.map(line) == line
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sink.close()
        viewer.stop()
    assert got == [(outputs.topic_for("sigmawatch", payload), payload)]

    refused = MqttPublish(settings("job", "wrong"), "sigmawatch-job")
    with pytest.raises(RuntimeError, match="MQTT output: .*refused the connection"):
        refused.open(_SubtaskContext())
    # and the command line checks the broker before it starts a JVM: exit 6 with the reason
    cfg = _stream_config(tmp_path / "bad.yaml", settings("job", "wrong"), tmp_path)
    done = subprocess.run([sys.executable, "-m", "stream.job", "run", "--config", cfg, "--bounded"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 6 and "refused the connection" in done.stderr, done.stderr[-2000:]


def test_dashboard_reads_over_tls_with_a_password_and_exits_6_when_refused(secure, tmp_path):
    broker, tls, settings = secure
    pw = tmp_path / "viewer.pw"
    pw.write_text(USERS["viewer"] + "\n")
    flags = ["--mqtt-port", str(broker.port), "--mqtt-ca", str(tls.ca_crt), "--mqtt-username", "viewer"]
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", "0", *flags, "--mqtt-password-file", str(pw)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cam = None
    try:
        line = proc.stdout.readline()
        assert line.startswith("dashboard: http://127.0.0.1:") and "mqtts://" in line, line + proc.stderr.read()
        url = line.split()[1]
        cam = MqttClient(settings("cam"), client_id="cam-9").start()
        cam.wait_ready(10)
        status = {"schema": 1, "type": "status", "device": "cam-9", "state": "online", "ts": time.time()}
        cam.publish_and_wait(schema.topic("sigmawatch", "cam-9", "status"), schema.encode(status), retain=True)
        deadline = time.monotonic() + 10
        state = {}
        while time.monotonic() < deadline and "cam-9" not in state.get("devices", {}):
            with urllib.request.urlopen(url + "api/state", timeout=5) as resp:
                state = json.loads(resp.read())
            time.sleep(0.1)
        assert state["broker"]["connected"] is True and "cam-9" in state["devices"]
    finally:
        if cam:
            cam.stop()
        proc.terminate()
        proc.wait(10)
    pw.write_text("wrong\n")
    done = subprocess.run([sys.executable, "-m", "dashboard", "--port", "0", *flags, "--mqtt-password-file", str(pw)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 6, done.stderr[-2000:]
    assert "sigmawatch-dashboard: error:" in done.stderr and "refused the connection" in done.stderr
