"""Devices with wrong clocks (one 120 s fast, one 1 h fast, one a day behind) beside correctly-clocked ones, landed
by the bridge's code and read by the job with its default event-time settings: the correctly-clocked devices'
windows equal the recount (the fast clocks cannot move the watermark, which follows the bridge's clock); the
skewed devices are reported: their frames dead-lettered with the reason, their health showing the offset, and
the clock_skew alert firing for each of them and for no other device."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.support.generate import Scenario, generate, recount, write_landing

from stream_helpers import ROOT, compare_fields, final_results, read_jsonl_dir

SKEWED = {"cam-fast": 120.0, "cam-hour": 3600.0, "cam-behind": -86_400.0}


@pytest.mark.flink
def test_skewed_clocks_are_reported_and_cannot_make_other_devices_late(tmp_path):
    sc = Scenario(window_s=10.0, duration_s=20.0, silent_device=False, skewed=SKEWED, late=0, late_dups=0,
                  too_late=0, malformed=0)
    events = generate(sc)
    write_landing(tmp_path / "landing", sc, events, per_file=40)
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"rules": [{"type": "clock_skew", "id": "clock"}]}))
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {
        "landing_dir": str(tmp_path / "landing"), "output_dir": str(tmp_path / "out"),
        "checkpoint_dir": str(tmp_path / "chk"), "alerts_file": str(tmp_path / "alerts.yaml")}}))   # defaults else
    proc = subprocess.run([sys.executable, "-m", "stream.job", "run", "--config", str(cfg), "--bounded",
                           "--no-mqtt"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_jsonl_dir(tmp_path / "out" / "records")

    # every window of the correctly-clocked devices (and their fleet totals) equals the recount
    expected = recount(events, sc.window_s)
    final = final_results(records)
    got = {k: {f: r[f] for f in r if f not in ("schema", "type", "id", "high_sigma_threshold", "revision")}
           for k, r in final.items() if k in expected}
    assert compare_fields(expected, got) == []
    stream_windows = {int(k.rsplit("/", 1)[1]) for k in expected}
    extra = {k for k in final if k not in expected}
    assert all(k.split("/")[0] == "cam-behind" or int(k.rsplit("/", 1)[1]) not in stream_windows for k in extra), extra

    # the fast clocks' frames are dead letters that say why and by how much
    dead = read_jsonl_dir(tmp_path / "out" / "deadletter")
    for device in ("cam-fast", "cam-hour"):
        # one dead letter per frame: copies of a frame (same device and seq) are dropped before anything else
        frames = {e.payload for e in events if e.device == device and e.kind == "detections"}
        mine = [d for d in dead if d["device"] == device]
        assert len(mine) == len(frames) and all(d["reason"].startswith("clock skew: capture time") for d in mine)
        assert all(float(d["reason"].split()[4]) > SKEWED[device] - 1 for d in mine), mine[0]["reason"]

    # their health shows the offset (the bridge's receive time minus the capture time of their metrics)
    health = final_results(records, ("health",))
    for device, skew in SKEWED.items():
        offsets = {round(r["clock_offset_s"]) for r in health.values()
                   if r["device"] == device and r["clock_offset_s"] is not None}
        assert offsets and all(abs(o + skew) < 2 for o in offsets), (device, offsets)
    good = [r for r in health.values() if r["device"] not in SKEWED and r["clock_offset_s"] is not None]
    assert good and all(abs(r["clock_offset_s"]) < 1 for r in good)

    # and the clock_skew alert fires for each skewed device, for no other
    firing = {a["device"] for a in records if a["type"] == "alert" and a["state"] == "firing"}
    assert firing == set(SKEWED)
