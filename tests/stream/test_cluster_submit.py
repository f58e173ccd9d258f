"""``flink run -py stream/job.py`` against a standalone cluster started from the pip distribution's scripts."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stream.landing import to_landing_line
from tests.support.generate import Scenario, generate, recount
from stream.landing import LandingWriter
from demo.procs import free_port

from stream_helpers import ROOT, compare_fields, read_jsonl_dir
from tests.conftest import missing, require_module

pyflink = require_module("pyflink")
FLINK_HOME = Path(pyflink.__file__).parent


@pytest.mark.flink
@pytest.mark.slow
def test_flink_run_on_local_standalone_cluster(tmp_path):
    if not (FLINK_HOME / "bin" / "start-cluster.sh").exists():
        missing(f"this Flink distribution ships no start-cluster.sh ({FLINK_HOME / 'bin'})")
    conf_dir = tmp_path / "conf"
    shutil.copytree(FLINK_HOME / "conf", conf_dir)
    conf = yaml.safe_load((conf_dir / "config.yaml").read_text())
    rest = free_port()
    conf.setdefault("rest", {}).update({"port": rest, "address": "localhost", "bind-address": "localhost"})
    conf["jobmanager"]["rpc"]["port"] = free_port()
    conf["jobmanager"]["memory"]["process"]["size"] = "1024m"
    conf["taskmanager"].update({"numberOfTaskSlots": 2, "memory": {"process": {"size": "1280m"}}})
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(conf))
    env = {**os.environ, "FLINK_HOME": str(FLINK_HOME), "FLINK_CONF_DIR": str(conf_dir),
           "FLINK_LOG_DIR": str(tmp_path / "log"), "FLINK_PID_DIR": str(tmp_path / "pid")}
    (tmp_path / "log").mkdir()

    sc = Scenario(window_s=10.0, duration_s=20.0, silent_device=False)
    events = generate(sc)
    w = LandingWriter(tmp_path / "landing", "gen")
    for i, e in enumerate(events):
        w.add(to_landing_line("sigmawatch", e.topic, e.payload, sc.start_ts + 60 + i * 0.001, 1 << 20)[0])
    w.roll()
    cfg = tmp_path / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {"landing_dir": str(tmp_path / "landing"),
                                           "output_dir": str(tmp_path / "out"), "checkpoint_dir": str(tmp_path / "chk"),
                                           "checkpoint_interval_s": 2.0}}))
    # -pyexec: an interpreter wrapper that notes each start; the TaskManager's Python workers must be started by it
    starts = tmp_path / "pyexec-starts"
    pyexec = tmp_path / "pyexec.sh"
    pyexec.write_text(f'#!/bin/sh\necho "$$ $*" >> {starts}\nexec {sys.executable} "$@"\n')
    pyexec.chmod(0o755)
    subprocess.run(["bash", str(FLINK_HOME / "bin" / "start-cluster.sh")], env=env, check=True, timeout=120,
                   capture_output=True)
    try:
        run = subprocess.run(
            ["bash", str(FLINK_HOME / "bin" / "flink"), "run", "-m", f"localhost:{rest}",
             "-py", str(ROOT / "stream" / "job.py"), "-pyexec", str(pyexec), "-pyclientexec", sys.executable,
             "run", "--config", str(cfg), "--bounded", "--no-mqtt"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        records = read_jsonl_dir(tmp_path / "out" / "records")
        windows = {r["id"]: r for r in records if r["type"] in ("aggregate", "fleet")}
        assert compare_fields(recount(events, 10.0), windows) == []
        # the job did not override -pyexec with the client's interpreter: the workers ran through the wrapper
        assert starts.exists() and "pyflink.fn_execution" in starts.read_text(), "the Python workers ignored -pyexec"
    finally:
        subprocess.run(["bash", str(FLINK_HOME / "bin" / "stop-cluster.sh")], env=env, timeout=120,
                       capture_output=True)
        for pid_file in (tmp_path / "pid").glob("*.pid"):      # anything the script left behind
            for pid in pid_file.read_text().split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
