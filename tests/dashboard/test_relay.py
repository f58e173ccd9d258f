"""The dashboard server against a real mosquitto: MQTT in, JSON snapshot and SSE out."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import dash_messages as m
import pytest
from dash_helpers import RunningDashboard, SSEReader

from edge.contract.errors import BrokerError
from edge.contract.mqtt import MqttSettings
from tests.conftest import missing, require_tool

pytestmark = pytest.mark.mqtt


def test_device_messages_reach_the_browser_stream_in_order(dashboard, publisher):
    sse = SSEReader(dashboard.url)
    try:
        assert sse.content_type == "text/event-stream"
        first = sse.wait_for(lambda e: True)[0]
        assert first["kind"] == "snapshot" and first["devices"] == {}
        dets = [m.detection("circle", 0, (0.1, 0.2, 0.3, 0.5), 0.05), m.detection("square", 1, (0.5, 0.5, 0.9, 0.8), 0.2)]
        publisher.send([m.status("cam-a"), m.metrics("cam-a", 9.5, 120, 3, 2), m.detections("cam-a", 41, dets)])
        got = sse.wait_for(lambda e: e["kind"] == "detections")
        assert got[0]["device"] == "cam-a"
        assert got[0]["payload"]["seq"] == 41
        assert [d["label"] for d in got[0]["payload"]["detections"]] == ["circle", "square"]
        kinds = [e["kind"] for e in sse.events if e["kind"] in ("status", "metrics", "detections")]
        assert kinds == ["status", "metrics", "detections"]
    finally:
        sse.close()
    state = dashboard.get_json("/api/state")
    dev = state["devices"]["cam-a"]
    assert dev["status"]["state"] == "online"
    assert dev["metrics"]["frames"]["dropped"] == 3 and dev["metrics"]["outbox"]["depth"] == 2
    assert dev["detections"]["seq"] == 41 and dev["detections"] and dev["detection_messages"] == 1
    assert state["counters"]["detections"] == 2


def test_a_browser_that_connects_later_gets_the_current_state(dashboard, publisher):
    publisher.send([m.status("cam-b"), m.status("cam-b", "offline")])
    dashboard.wait_for(lambda s: s["devices"].get("cam-b", {}).get("status", {}).get("state") == "offline")
    sse = SSEReader(dashboard.url)
    try:
        snap = sse.wait_for(lambda e: e["kind"] == "snapshot")[0]
        assert snap["devices"]["cam-b"]["status"]["state"] == "offline"
        assert snap["broker"]["connected"] is True
    finally:
        sse.close()


def test_bad_messages_are_reported_with_the_reason_and_do_not_stop_the_relay(dashboard, publisher):
    topic, good = m.detections("cam-c", 1, [])
    other_topic, _ = m.detections("cam-x", 1, [])
    agg_topic, _ = m.aggregate("cam-c", "circle", 0, 1000.0, 3, 0.1)
    publisher.send([(topic, b"{not json"), (other_topic, good), (agg_topic, b'{"schema": 1, "type": "aggregate"}'),
                    (topic, good)])
    snap = dashboard.wait_for(lambda s: s["counters"]["detection_messages"] == 1 and s["counters"]["invalid"] == 3)
    errors = [e["error"] for e in snap["invalid"]]
    assert "not valid UTF-8 JSON" in errors[0]
    assert "'cam-c' does not match topic device 'cam-x'" in errors[1]
    assert "aggregate." in errors[2] and "required field is missing" in errors[2]
    assert snap["devices"]["cam-c"]["detections"]["seq"] == 1


def test_aggregates_are_kept_by_id_so_a_replayed_window_counts_once(dashboard, publisher):
    w1 = m.aggregate("cam-a", "circle", 0, 1000.0, 4, 0.10)
    w2 = m.aggregate("cam-a", "circle", 0, 1005.0, 6, 0.12)
    w3 = m.aggregate("cam-b", "square", 1, 1000.0, 5, 0.30)
    publisher.send([w1, w2, w1, w3, w2])
    snap = dashboard.wait_for(lambda s: s["counters"]["messages"] == 5)
    assert snap["counters"]["aggregates"] == 3
    assert snap["counters"]["aggregated_detections"] == 4 + 6 + 5
    assert sorted(a["payload"]["id"] for a in snap["aggregates"]) == sorted(
        json.loads(p)["id"] for _, p in (w1, w2, w3))


def test_retained_outputs_and_alert_states_reach_a_dashboard_started_later(broker, publisher):
    publisher.send([m.aggregate("cam-a", "circle", 0, 2000.0, 7, 0.05), m.alert("cam-a", "square")], retain=True)
    late = RunningDashboard(broker)
    try:
        snap = late.wait_for(lambda s: s["counters"]["aggregated_detections"] == 7 and s["alerts"])
        assert snap["counters"]["alerts_firing"] == 1
        publisher.send([m.alert("cam-a", "square", state="cleared", message="back to normal")])
        snap = late.wait_for(lambda s: s["counters"]["alerts_firing"] == 0)
        assert [a["payload"]["state"] for a in snap["alerts"]] == ["cleared"]
    finally:
        late.stop()


def test_the_relay_reconnects_after_the_broker_restarts(dashboard, broker, publisher):
    publisher.close()
    broker.stop()
    dashboard.wait_for(lambda s: s["broker"]["connected"] is False)
    broker.start()
    dashboard.wait_for(lambda s: s["broker"]["connected"] is True, timeout=20)
    from dash_helpers import Publisher
    again = Publisher(broker)
    try:
        again.send([m.status("cam-r")])
        dashboard.wait_for(lambda s: "cam-r" in s["devices"])
    finally:
        again.close()


def _start_cli(*args):
    return subprocess.Popen([sys.executable, "-m", "dashboard", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_serves_the_page_and_stops_cleanly_on_sigterm(broker, publisher):
    proc = _start_cli("--mqtt-port", str(broker.port), "--stale-after", "30", "--forget-after", "600",
                      "--recent", "120", "--track-timeout", "12.5")
    try:
        line = proc.stdout.readline()
        assert line.startswith("dashboard: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[1]
        with urllib.request.urlopen(url, timeout=5) as resp:
            html = resp.read().decode()
        assert '<script src="/static/app.js">' in html and "http" not in html.split("<body>")[1]
        with urllib.request.urlopen(url + "static/app.js", timeout=5) as resp:
            assert "EventSource" in resp.read().decode()
        publisher.send([m.status("cam-cli")])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "api/state", timeout=5) as resp:
                snap = json.loads(resp.read())
                if "cam-cli" in snap["devices"]:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the CLI dashboard never showed cam-cli")
        # the page gets the flags' settings (it shows stale devices and the recent windows with them)
        assert snap["view"] == {"stale_after_s": 30.0, "forget_after_s": 600.0, "recent_s": 120.0, "history_s": 1800.0,
                                "track_timeout_s": 12.5}
        with urllib.request.urlopen(url + "favicon.ico", timeout=5) as resp:
            assert resp.headers["Content-Type"] == "image/svg+xml"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("flags, message", [
    (["--stale-after", "120", "--forget-after", "60"],
     "--forget-after (60 s) must be longer than --stale-after (120 s)"),
    (["--recent", "0"], "--recent 0: Input should be greater than 0"),
    (["--track-timeout", "-1"], "--track-timeout -1: Input should be greater than 0"),
])
def test_cli_refuses_view_settings_that_make_no_sense_naming_the_flag(flags, message):
    proc = _start_cli(*flags)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2, err
    assert message in err and "Traceback" not in err


def test_cli_rejects_a_missing_ca_file_naming_the_option(tmp_path):
    proc = _start_cli("--mqtt-tls", "--mqtt-ca", str(tmp_path / "nope.crt"))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "nope.crt" in err and "--mqtt-ca" in err


def test_wrong_password_is_reported_as_refused_not_connected(broker_factory, tmp_path):
    pw = tmp_path / "passwd"
    pw.write_text("viewer:secret\n")
    if subprocess.run([require_tool("mosquitto_passwd", "apt-get install mosquitto"), "-U", str(pw)],
                      capture_output=True).returncode != 0:
        missing("mosquitto_passwd could not hash a password file")
    secured = broker_factory(extra_conf=f"password_file {pw}\n", allow_anonymous=False)
    from dashboard.relay import MqttRelay
    from dashboard.state import DashboardState
    for password, expect in (("wrong", False), ("secret", True)):
        (tmp_path / "viewer.pw").write_text(password + "\n")
        settings = MqttSettings(port=secured.port, username="viewer", password_file=tmp_path / "viewer.pw")
        state = DashboardState()
        relay = MqttRelay(settings, state).start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (state.broker["connected"] or "refused" in state.broker["error"]):
                time.sleep(0.05)
            assert state.broker["connected"] is expect, state.broker
            if not expect:
                assert "refused" in state.broker["error"]
        finally:
            relay.stop()
    # the command line: a refused connection ends it with the broker's reason and exit code 6, never silently
    (tmp_path / "viewer.pw").write_text("wrong\n")
    proc = _start_cli("--mqtt-port", str(secured.port), "--mqtt-username", "viewer",
                      "--mqtt-password-file", str(tmp_path / "viewer.pw"))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == BrokerError.exit_code == 6, err
    assert "refused the connection" in err and "127.0.0.1:" in err
