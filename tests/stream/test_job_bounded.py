"""The job in bounded mode over a landing directory (a replay: its files are read in any order, so windows get
first results early and revisions after): sliding windows end equal to the plain-Python recount."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.support.generate import Scenario, generate, health_recount, recount, write_landing

from stream_helpers import ROOT, compare_fields, final_results, read_jsonl_dir


@pytest.mark.flink
@pytest.mark.slow
def test_bounded_replay_with_sliding_windows_equals_recount(tmp_path):
    sc = Scenario(window_s=10.0, duration_s=30.0, silent_device=False)
    events = generate(sc)
    assert write_landing(tmp_path / "landing", sc, events, per_file=60) > 10
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {
        "landing_dir": str(tmp_path / "landing"), "output_dir": str(tmp_path / "out"),
        "checkpoint_dir": str(tmp_path / "chk"), "window": {"size_s": 10.0, "slide_s": 5.0}}}))   # defaults else
    proc = subprocess.run([sys.executable, "-m", "stream.job", "run", "--config", str(cfg), "--bounded",
                           "--no-mqtt"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_jsonl_dir(tmp_path / "out" / "records")
    expected = recount(events, 10.0, 5.0)
    got = {k: {f: r[f] for f in r if f not in ("schema", "type", "id", "high_sigma_threshold", "revision")}
           for k, r in final_results(records).items()}
    assert compare_fields(expected, got) == []
    # health with sliding windows: frames, last_seen, latest heartbeat's fps/outbox depth, max dropped
    health = {f"{r['device']}/{int(r['window_start'] * 1000)}": r
              for r in final_results(records, ("health",)).values()}
    exp_health = health_recount(events, 10.0, 5.0)
    assert set(health) == set(exp_health)
    assert compare_fields(exp_health, {k: {f: v[f] for f in next(iter(exp_health.values()))}
                                       for k, v in health.items()}) == []
    dead = read_jsonl_dir(tmp_path / "out" / "deadletter")
    assert sum(d["category"] == "too_late" for d in dead) == sc.too_late
    assert sum(d["category"] == "dead" for d in dead) == sc.malformed
    # every dead letter names the message's MQTT topic (a valid line lands without it; the job rebuilds it)
    assert sorted(d["topic"] for d in dead) == sorted(e.topic for e in events if e.category in ("too_late", "invalid"))
    # the summary of a bounded run counts what it did
    summary = proc.stderr + proc.stdout
    assert f"dead letters {sc.malformed + sc.too_late} (too late {sc.too_late}, clock skew 0," in summary, summary[-2000:]
