"""The job in bounded mode over a landing directory: sliding windows equal the plain-Python recount."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from stream.landing import to_landing_line
from tests.support.generate import Scenario, generate, health_recount, recount
from stream.landing import LandingWriter

from stream_helpers import ROOT, compare_fields, read_jsonl_dir


@pytest.mark.flink
@pytest.mark.slow
def test_bounded_sliding_windows_equal_recount(tmp_path):
    sc = Scenario(window_s=10.0, duration_s=30.0, silent_device=False)
    events = generate(sc)
    w = LandingWriter(tmp_path / "landing", "gen")
    for i, e in enumerate(events):            # one file: the bounded read order is the publish order
        w.add(to_landing_line("sigmawatch", e.topic, e.payload, sc.start_ts + 60 + i * 0.001, 1 << 20)[0])
    w.roll()
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {
        "landing_dir": str(tmp_path / "landing"), "output_dir": str(tmp_path / "out"),
        "checkpoint_dir": str(tmp_path / "chk"), "window": {"size_s": 10.0, "slide_s": 5.0},
        "out_of_orderness_s": 2.0}}))
    proc = subprocess.run([sys.executable, "-m", "stream.job", "run", "--config", str(cfg), "--bounded",
                           "--no-mqtt"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_jsonl_dir(tmp_path / "out" / "records")
    expected = recount(events, 10.0, 5.0)
    windows = [r for r in records if r["type"] in ("aggregate", "fleet")]
    assert len(windows) == len({r["id"] for r in windows})
    got = {r["id"]: {k: r[k] for k in r if k not in ("schema", "type", "id", "high_sigma_threshold")} for r in windows}
    assert compare_fields(expected, got) == []
    # health with sliding windows: frames, last_seen, latest heartbeat's fps/outbox depth, max dropped
    health = {f"{r['device']}/{int(r['window_start'] * 1000)}": r for r in records if r["type"] == "health"}
    exp_health = health_recount(events, 10.0, 5.0)
    assert set(health) == set(exp_health)
    assert compare_fields(exp_health, {k: {f: v[f] for f in next(iter(exp_health.values()))}
                                       for k, v in health.items()}) == []
    dead = read_jsonl_dir(tmp_path / "out" / "deadletter")
    assert sum(d["category"] == "late" for d in dead) == sc.late
    assert sum(d["category"] == "dead" for d in dead) == sc.malformed
    # every dead letter names the message's MQTT topic (a valid line lands without it; the job rebuilds it)
    assert sorted(d["topic"] for d in dead) == sorted(e.topic for e in events if e.category in ("late", "invalid"))
