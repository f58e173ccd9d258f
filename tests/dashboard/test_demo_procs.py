"""The demo's process supervisor: process groups started, readiness, death noticed, nothing left behind."""
from __future__ import annotations

import sys
import time

import pytest

from demo.procs import DemoError, ProcSpec, Supervisor, group_alive

# A parent that starts a child in its own group and ignores SIGTERM for a moment: the whole group must go.
FAMILY = ("import subprocess, sys, time, signal\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
          "print('ready', child.pid, flush=True)\n"
          "time.sleep(300)\n")


def test_stop_all_ends_every_process_of_every_group(tmp_path):
    sup = Supervisor(tmp_path, say=lambda m: None)
    runs = [sup.start(ProcSpec(f"p{i}", [sys.executable, "-c", FAMILY], ready_line=r"ready (\d+)")) for i in range(2)]
    children = [int(r.ready_match.group(1)) for r in runs]
    assert all(group_alive(r.pgid) for r in runs)
    stopped = sup.stop_all()
    assert stopped == {"p1": "stopped", "p0": "stopped"}
    assert sup.leftovers() == []
    for pid in children:
        with pytest.raises(ProcessLookupError):
            import os
            os.kill(pid, 0)


def test_a_process_that_ignores_sigterm_is_killed(tmp_path):
    sup = Supervisor(tmp_path, say=lambda m: None)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
    sup.start(ProcSpec("stubborn", [sys.executable, "-c", stubborn], ready_line="up", stop_grace_s=0.5))
    assert sup.stop_all() == {"stubborn": "killed"}
    assert sup.leftovers() == []


def test_a_process_failing_at_start_is_reported_with_its_log(tmp_path):
    sup = Supervisor(tmp_path, say=lambda m: None)
    with pytest.raises(DemoError, match=r"(?s)broken exited with code 3.*config key 'x' is wrong"):
        sup.start(ProcSpec("broken", [sys.executable, "-c", "print(\"config key 'x' is wrong\"); raise SystemExit(3)"],
                           ready_line="never"))
    sup.stop_all()


def test_a_process_dying_later_is_noticed(tmp_path):
    sup = Supervisor(tmp_path, say=lambda m: None)
    sup.start(ProcSpec("short", [sys.executable, "-c", "print('ok', flush=True); import time; time.sleep(0.3)"],
                       ready_line="ok"))
    deadline = time.monotonic() + 10
    while not sup.dead() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.spec.name for r in sup.dead()] == ["short"]
    sup.stop_all()
