"""Small parts without a broker: outbox, config + secrets, sd_notify, classification uncertainty, zones, slots."""
from __future__ import annotations

import math
import os
import socket
import threading

import numpy as np
import pytest

from edge.classify import entropy, normalized_entropy, to_probabilities, top_k
from edge.config import Settings, load, updated_settings
from edge.contract.errors import ConfigError, SecretError
from edge.outbox import Outbox
from edge.pipeline import NewestSlot
from edge.contract.sdnotify import Notifier
from edge.contract.secrets import resolve_password
from edge.zones import point_in_polygon, zones_of


# ----------------------------------------------------------------------------- outbox
def test_outbox_sequence_survives_reopen_and_acks(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ids = [ob.append("t", lambda seq: f"m{seq}".encode())[0] for _ in range(5)]
    ob.ack(ids[1])
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite")
    assert [r.seq for r in ob.pending()] == [0, 2, 3, 4]
    assert [r.payload for r in ob.pending(after_id=ids[2])] == [b"m3", b"m4"]
    assert ob.append("t", lambda seq: b"x")[1] == 5, "sequence numbers continue after a restart"
    assert ob.acked == 1 and ob.depth() == 5


def test_outbox_failed_build_allocates_no_seq(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")

    def boom(seq):
        raise ValueError("bad payload")
    with pytest.raises(ValueError):
        ob.append("t", boom)
    assert ob.append("t", lambda s: b"ok")[1] == 0 and ob.depth() == 1


def test_outbox_bounds_drop_oldest_unprotected_and_count(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", max_messages=10, max_age_s=100)
    for i in range(15):
        ob.append("t", lambda seq: b"x", now=1000.0 + i)
    assert ob.enforce_bounds(protect_upto=2, now=1015.0) == 5
    seqs = [r.seq for r in ob.pending(limit=100)]
    assert seqs == [0, 1] + list(range(7, 15)), "handed-over rows are kept, the oldest others dropped"
    assert ob.enforce_bounds(protect_upto=2, now=1111.0) == 4   # seqs 7-10 were created before 1011: too old
    assert [r.seq for r in ob.pending(limit=100)] == [0, 1, 11, 12, 13, 14]
    assert ob.dropped == 9


# ----------------------------------------------------------------------------- config + secrets
def test_config_overrides_and_defaults(tmp_path):
    cfg = load(None, {"device_id": "cam-9", "model.path": "m.tflite", "mqtt.port": 1884,
                      "settings.zones": [{"name": "door", "polygon": [[0, 0], [1, 0], [1, 1]]}]})
    assert cfg.mqtt.port == 1884 and cfg.outbox_path == cfg.state_dir / "outbox.sqlite"
    assert cfg.settings.zones[0].name == "door"
    with pytest.raises(ConfigError, match=r"settings.zones.0.polygon"):
        load(None, {"device_id": "c", "model.path": "m", "settings.zones": [{"name": "z", "polygon": [[0, 0], [2, 0], [1, 1]]}]})


def test_updated_settings_names_the_key():
    s = Settings()
    assert updated_settings(s, {"fps": 5}).fps == 5 and s.fps is None   # immutable: a new object
    with pytest.raises(ConfigError, match="iou_threshold"):
        updated_settings(s, {"iou_threshold": -1})
    with pytest.raises(ConfigError, match="non-empty"):
        updated_settings(s, {})


def test_password_from_systemd_credential_or_file(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert resolve_password(None, "mqtt-password") == "s3cret"
    (tmp_path / "pw").write_text("from-file")
    assert resolve_password(tmp_path / "pw", None) == "from-file"
    with pytest.raises(SecretError, match="does not exist"):
        resolve_password(None, "other")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(SecretError, match="CREDENTIALS_DIRECTORY"):
        resolve_password(None, "mqtt-password")


# ----------------------------------------------------------------------------- sd_notify
def test_sd_notify_over_a_real_unix_socket(tmp_path):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
        assert n.watchdog_s == 4.0
        assert n.ready("up") and n.watchdog()
        assert server.recv(100) == b"READY=1\nSTATUS=up"
        assert server.recv(100) == b"WATCHDOG=1"
    finally:
        server.close()
    assert Notifier({}).ready() is False
    assert Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).watchdog_s is None


# ----------------------------------------------------------------------------- classification uncertainty
def test_entropy_and_top_k():
    assert entropy([1.0, 0.0, 0.0]) == 0.0
    assert math.isclose(entropy([0.25] * 4), math.log(4), rel_tol=1e-6)
    assert math.isclose(normalized_entropy([0.25] * 4), 1.0, rel_tol=1e-6)
    p = to_probabilities(np.array([2.0, 0.0, 1.0]), "logits")
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-6) and p.argmax() == 0
    top = top_k(p, ["a", "b", "c"], 2)
    assert [t["label"] for t in top] == ["a", "c"]
    assert [t["label"] for t in top_k(p, ["a", "b", "c"], 2, allowed={1})] == ["b"]
    with pytest.raises(ValueError, match="activation"):
        to_probabilities(p, "sigmoid")


# ----------------------------------------------------------------------------- zones
def test_zones_use_the_box_centre():
    tri = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    assert point_in_polygon(0.2, 0.2, tri) and not point_in_polygon(0.8, 0.8, tri)
    zone = type("Z", (), {"name": "left", "polygon": [(0, 0), (0.5, 0), (0.5, 1), (0, 1)]})()
    assert zones_of((0.1, 0.1, 0.3, 0.3), [zone]) == ["left"]
    assert zones_of((0.3, 0.1, 0.9, 0.3), [zone]) == []   # centre x = 0.6


# ----------------------------------------------------------------------------- newest frame wins
def test_newest_slot_drops_stale_and_blocking_mode_waits():
    slot = NewestSlot()
    assert slot.put(1) is False and slot.put(2) is True      # 1 was never read: dropped
    assert slot.get(0.1) == 2 and slot.get(0.01) is None
    slot.put(3)
    got = []
    t = threading.Thread(target=lambda: got.append(slot.put(4, block=True)))
    t.start()
    t.join(0.3)
    assert t.is_alive(), "lossless mode waits for the reader instead of dropping"
    assert slot.get(1) == 3
    t.join(2)
    assert got == [False] and slot.get(1) == 4


def test_shipped_example_configs_validate():
    from edge_helpers import ROOT
    paths = sorted((ROOT / "configs").glob("edge-agent*.yaml"))
    assert paths
    for path in paths:
        cfg = load(path)
        assert "password" not in cfg.summary()
