"""``job.jvm_options`` reach the JVM that runs the local mini-cluster, and ``job.generated_code_max_length`` the planner."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stream_helpers import ROOT

PROBE = """
import sys, yaml
from stream.config import from_dict
from stream.job import make_environments
make_environments(from_dict(yaml.safe_load(sys.argv[1])), checkpointing=False)
from pyflink.java_gateway import get_gateway
beans = get_gateway().jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
print("GC", sorted(b.getName() for b in beans))
"""


def _collectors(config: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-c", PROBE, config], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(line for line in proc.stdout.splitlines() if line.startswith("GC "))


@pytest.mark.flink
def test_configured_collector_runs_and_user_jvm_args_win():
    env = {k: v for k, v in os.environ.items() if k != "JVM_ARGS"}
    assert "PS Scavenge" in _collectors("{}", env)                            # default: the parallel collector
    assert "PS Scavenge" not in _collectors("{job: {jvm_options: []}}", env)      # [] = the JVM's default
    assert "G1 Young Generation" in _collectors("{}", {**env, "JVM_ARGS": "-XX:+UseG1GC"})


SQL_PROBE = """
import sys, yaml
from stream.config import from_dict
from stream.job import make_environments
from stream.pipeline import SourceSpec, register_sql
cfg = from_dict(yaml.safe_load(sys.argv[1]))
env, t_env = make_environments(cfg, checkpointing=False)
register_sql(env, t_env, SourceSpec(sys.argv[2], None), cfg.job)
print("MAXLEN", t_env.get_config().get("table.generated-code.max-length", "unset"))
"""


@pytest.mark.flink
def test_generated_code_max_length_reaches_the_planner(tmp_path):
    (tmp_path / "landing").mkdir()
    proc = subprocess.run([sys.executable, "-c", SQL_PROBE, "{job: {generated_code_max_length: 9000}}",
                           str(tmp_path / "landing")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MAXLEN 9000" in proc.stdout.splitlines()
