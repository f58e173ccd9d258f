"""The job's landing source while files appear, are renamed and vanish under it (what two busy bridges do).

Listing a directory and reading each entry's status are two steps; a bridge renaming its temporary file or
deleting a consumed one in between makes an entry vanish. The soak benchmark found the job failing on exactly
that after 90 s (``FileNotFoundException`` in the source's enumerator -> job failover -> restarts exhausted).
Here real landing files are written by the bridge's own writer (temporary file, fsync, rename) while a second
thread creates and removes hidden temporary files as fast as it can; the job must stay up and read every file.
"""
from __future__ import annotations

import sys
import threading
import time

import pytest
import yaml

from stream.landing import LandingWriter, to_landing_line
from tests.support.generate import detections_msg
from edge.contract import schema

from stream_helpers import Proc, checkpoints, read_jsonl_dir, wait_for

pytestmark = pytest.mark.flink


def test_files_renamed_and_deleted_while_listed_do_not_stop_the_job(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {"landing_dir": str(landing), "output_dir": str(tmp_path / "out"),
                                           "checkpoint_dir": str(tmp_path / "chk"), "checkpoint_interval_s": 1.0,
                                           "publish_mqtt": False, "restart_attempts": 0}}))
    job = Proc([sys.executable, "-m", "stream.job", "run", "--config", str(cfg), "--no-mqtt"], tmp_path / "job.log")
    stop = threading.Event()
    churned = [0]

    def churn():                     # temporary files that come and go, like a bridge's between write and rename
        i = 0
        while not stop.is_set():
            p = landing / f".{i % 50:04d}-churn.jsonl.tmp"
            p.write_bytes(b"x")
            p.unlink()
            i += 1
        churned[0] = i

    try:
        wait_for(lambda: checkpoints(tmp_path / "chk"), 300, what="the job's first checkpoint", alive=job)
        t = threading.Thread(target=churn, daemon=True)
        t.start()
        writer = LandingWriter(landing, "churn-test", fsync=False)
        files, t0 = 0, time.time()
        now = time.time()
        while time.time() - t0 < 20:
            for k in range(3):
                seq = files * 3 + k
                msg = schema.encode(detections_msg("cam-1", seq, now + seq * 0.01, [(0, 0.8, 0.1)]))
                line, valid, device, s = to_landing_line("sigmawatch", "sigmawatch/cam-1/detections", msg, now, 1 << 20)
                writer.add(line, device, now, s, valid)
            writer.roll()
            files += 1
            time.sleep(0.01)
        stop.set()
        t.join(10)
        assert churned[0] > 1000, churned        # the race was given its chances

        def all_read():
            done = {c["file"].rsplit("/", 1)[-1] for c in read_jsonl_dir(tmp_path / "out" / "consumed")}
            return done if len(done) >= files else None
        done = wait_for(all_read, 120, what=f"the job to consume all {files} files", alive=job)
        assert len(done) == files
        assert job.alive(), (tmp_path / "job.log").read_text()[-3000:]
    finally:
        stop.set()
        job.kill()
