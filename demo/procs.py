"""Start and stop the demo's processes robustly: one process group each, stopped by its id.

A :class:`ProcSpec` is pure data (name, argv, env, readiness check); :class:`Supervisor` starts specs
in order, waits for each to be ready (a line in its log, or a TCP port accepting connections),
notices a process that dies, and stops everything in reverse order: SIGTERM to the process group,
then SIGKILL after a grace period, then checks that no member of any group is left.
"""
from __future__ import annotations

import glob
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from edge.contract.errors import DemoError


@dataclass(frozen=True)
class ProcSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_line: Optional[str] = None        # regex searched in the log (stdout+stderr)
    ready_port: Optional[int] = None        # or: 127.0.0.1:<port> accepts connections
    ready_glob: Optional[str] = None        # or: a file matching this glob exists (e.g. a first checkpoint)
    ready_timeout_s: float = 60.0
    stop_grace_s: float = 15.0              # SIGTERM -> SIGKILL
    cwd: Optional[str] = None


@dataclass
class Running:
    spec: ProcSpec
    proc: subprocess.Popen
    log_path: Path
    started: float
    ready_match: Optional[re.Match] = None

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session=True: the child leads its own group

    def log_tail(self, n: int = 25) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in lines[-n:])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_group(proc: subprocess.Popen, grace: float) -> str:
    """SIGTERM the group, wait for every member, SIGKILL what is left. Returns how it ended."""
    pgid = proc.pid
    how = "exited"
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not group_alive(pgid):
            break
        how = "stopped" if sig == signal.SIGTERM else "killed"
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader so it does not linger as a zombie member
            if not group_alive(pgid):
                break
            time.sleep(0.05)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    return how


class Supervisor:
    def __init__(self, log_dir: Path, say: Callable[[str], None] = print):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.running: list[Running] = []
        self.say = say
        self.stopped: dict[str, str] = {}

    def start(self, spec: ProcSpec) -> Running:
        log_path = self.log_dir / f"{spec.name}.log"
        log = open(log_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        try:
            proc = subprocess.Popen(spec.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=spec.cwd, start_new_session=True)
        except OSError as exc:
            raise DemoError(f"{spec.name}: cannot start {spec.argv[0]}: {exc}") from exc
        finally:
            log.close()
        run = Running(spec, proc, log_path, time.monotonic())
        self.running.append(run)
        self._wait_ready(run)
        return run

    def _wait_ready(self, run: Running) -> None:
        spec = run.spec
        if spec.ready_line is None and spec.ready_port is None and spec.ready_glob is None:
            return
        pattern = re.compile(spec.ready_line) if spec.ready_line else None
        deadline = time.monotonic() + spec.ready_timeout_s
        while time.monotonic() < deadline:
            if run.proc.poll() is not None:
                raise DemoError(f"{spec.name} exited with code {run.proc.returncode} while starting; "
                                f"its log ({run.log_path}) ends:\n{run.log_tail()}")
            if pattern:
                m = pattern.search(run.log_path.read_text(errors="replace"))
                if m:
                    run.ready_match = m
                    return
            elif spec.ready_glob:
                if glob.glob(spec.ready_glob):
                    return
            elif _port_open(spec.ready_port):
                return
            time.sleep(0.1)
        raise DemoError(f"{spec.name} was not ready after {spec.ready_timeout_s:.0f} s; "
                        f"its log ({run.log_path}) ends:\n{run.log_tail()}")

    def dead(self) -> list[Running]:
        """Processes that exited on their own (not stopped by us)."""
        return [r for r in self.running if r.proc.poll() is not None and r.spec.name not in self.stopped]

    def stop(self, name: str) -> None:
        for run in self.running:
            if run.spec.name == name and name not in self.stopped:
                self.stopped[name] = stop_group(run.proc, run.spec.stop_grace_s)

    def stop_all(self) -> dict[str, str]:
        for run in reversed(self.running):
            if run.spec.name not in self.stopped:
                self.stopped[run.spec.name] = stop_group(run.proc, run.spec.stop_grace_s)
        return self.stopped

    def leftovers(self) -> list[str]:
        """Names of components whose process group still has a member (should be empty)."""
        return [r.spec.name for r in self.running if group_alive(r.pgid)]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
