"""The job's objects outputs (issue 17): distinct tracks, tracks started / ended, dwell and line crossings per device,
class and window, and the objects present, equal a plain-Python recount of the published messages.

A generated stream of tracked cameras (``tests.support.objects_stream``: known tracks, their detections with track
ids, their events and object counts, copies of events, a late track, an event two days old) is landed as the
bridge lands it and replayed with ``stream-job run --bounded`` (landing files read in any order: windows get first
results and then revisions). The live path (MQTT, bridges, a job killed and resumed) is checked in
``test_job_e2e.py`` with the same generator, and real agents through broker kills in
``tests/edge/test_edge_landed_delivery.py``.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.support.generate import recount, write_landing
from tests.support.objects_stream import generate_objects, recount_objects

from stream_helpers import ROOT, compare_fields, final_objects, final_results, objects_fields, read_jsonl_dir

WINDOW = 10.0
START = 1_700_000_000.0


@pytest.mark.flink
def test_bounded_replay_objects_equal_the_recount(tmp_path):
    events = generate_objects(START, duration_s=30.0, devices=("trk-1", "trk-2", "trk-3"))
    assert write_landing(tmp_path / "landing", _Sc(), events, per_file=40) > 5
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {"landing_dir": str(tmp_path / "landing"), "output_dir": str(tmp_path / "out"),
                                           "checkpoint_dir": str(tmp_path / "chk"), "window": {"size_s": WINDOW}}}))
    proc = subprocess.run([sys.executable, "-m", "stream.job", "run", "--config", str(cfg), "--bounded", "--no-mqtt"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_jsonl_dir(tmp_path / "out" / "records")
    expected = recount_objects(events, WINDOW)
    got = objects_fields(final_objects(records))
    assert compare_fields(expected, got) == []
    # the generator's stream has what the figures are about (not a vacuous equality)
    kinds = {k: [v for v in expected.values() if v["type"] == k] for k in ("objects", "present")}
    assert sum(v["tracks"] for v in kinds["objects"]) >= 15 and sum(v["ended"] for v in kinds["objects"]) >= 15
    assert sum(1 for v in kinds["objects"] if v["crossings"]) >= 4 and len(kinds["present"]) >= 6
    # the detections of tracked cameras are aggregated as any (the track ids split no counts)
    aggregates = {k: {f: r[f] for f in ("detections", "frames")} for k, r in final_results(records).items()
                  if r["type"] == "aggregate"}
    assert compare_fields({k: {f: v[f] for f in ("detections", "frames")} for k, v in recount(events, WINDOW).items()
                           if not k.startswith("_fleet")}, aggregates) == []
    # copies of events are dropped (the recount counts each events seq once); the event two days old is a dead
    # letter with its reason; windows holding events only publish no health
    dead = read_jsonl_dir(tmp_path / "out" / "deadletter")
    assert [(d["category"], d["topic"]) for d in dead] == [("too_late", "sigmawatch/trk-1/events")]
    assert all(r["frames"] > 0 or r["last_seen"] > 0 for r in records if r["type"] == "health")
    # the bounded run's summary counts them
    summary = f"{len(kinds['objects'])} objects and {len(kinds['present'])} objects-present windows"
    assert summary in proc.stderr + proc.stdout, (proc.stderr + proc.stdout)[-1500:]


class _Sc:
    """What ``write_landing`` reads of a scenario: the prefix and when the stream starts (receive times)."""
    prefix = "sigmawatch"
    start_ts = START
