"""A burst of late frames revises its window once per watermark, not once per frame (issue 14's capacity work).

The job runs live on a landing directory with its default event-time settings: the stream lands first; once
cam-0's first window has its first result, 80 late frames of that window land in one file. That window gets far
fewer revisions than frames, and its latest revision (and every other window's) equals the recount."""
from __future__ import annotations

import pytest
import yaml

from tests.support.generate import Scenario, generate, recount, write_landing

from stream_helpers import compare_fields, final_results, job_args, read_jsonl_dir, wait_for

LATE = 80          # frames of cam-0's first window (capture times 1.0 .. 8.9 s into it), landed after the stream


def _final(out):
    final = final_results(read_jsonl_dir(out / "records"))  # also checks revisions 0, 1, 2, ... once each
    return {k: {f: r[f] for f in r if f not in ("schema", "type", "id", "high_sigma_threshold", "revision")}
            for k, r in final.items()}, final


@pytest.mark.flink
def test_late_burst_is_a_few_revisions_and_the_last_equals_the_recount(tmp_path, procs):
    sc = Scenario(window_s=10.0, duration_s=20.0, silent_device=False, late=LATE, late_dups=0, too_late=0,
                  malformed=0)
    events = generate(sc)
    stream = [e for e in events if e.category != "late"]
    late = [e for e in events if e.category == "late"]
    assert len(late) == LATE
    write_landing(tmp_path / "landing", sc, stream, per_file=40)
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {
        "landing_dir": str(tmp_path / "landing"), "output_dir": str(tmp_path / "out"),
        "checkpoint_dir": str(tmp_path / "chk"), "checkpoint_interval_s": 1.0, "publish_mqtt": False}}))
    job = procs(job_args(cfg), tmp_path / "job.log")
    out = tmp_path / "out"
    first = int(sc.start_ts * 1000)
    key = f"cam-0/car/{first}"        # the late frames' class (id 1) in cam-0's first window

    _, final = wait_for(lambda: (lambda g: g if key in g[1] else None)(_final(out)), 300,
                        what="cam-0's first window's first result", alive=job)
    assert final[key]["revision"] == 0

    # the late burst, received after everything else (one landing file, as a bridge lands a backlog)
    write_landing(tmp_path / "landing", sc, late, per_file=LATE)
    expected = recount(events, sc.window_s)
    got, final = wait_for(lambda: (lambda g: g if compare_fields(expected, g[0]) == [] else None)(_final(out)),
                          120, what="the revisions to equal the recount", alive=job)
    revisions = final[key]["revision"]
    assert 1 <= revisions < LATE // 4, f"{LATE} late frames gave {revisions} revisions"
    fleet = [r for r in final.values() if r["type"] == "fleet" and r["label"] == "car"
             and round(r["window_start"] * 1000) == first]
    assert len(fleet) == 1 and 1 <= fleet[0]["revision"] < LATE // 4, fleet
