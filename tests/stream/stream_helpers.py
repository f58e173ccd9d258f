"""Helpers of the stream tests: configs in tmp dirs, child processes stopped by process group."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, broker, base: Path, bridge: dict | None = None, **job) -> Path:
    """A stream config on ``broker`` under ``base``. The bridge keeps a persistent broker session by default:
    the tests' publishers (``tests.support.publisher``) take no landing confirmations, like old agents, and a
    killed bridge's unacknowledged messages must wait for it in its session; ``bridge`` overrides keys."""
    cfg = {
        "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "sigmawatch"},
        "bridge": {"landing_dir": str(base / "landing"), "client_id": "bridge-t1", "group": "g1",
                   "roll_interval_s": 0.3, "roll_max_records": 50, "consumed_dir": str(base / "out" / "consumed"),
                   "cleanup_interval_s": 1.0, "session_expiry_s": 604800, **(bridge or {})},
        "job": {"landing_dir": str(base / "landing"), "output_dir": str(base / "out"),
                "checkpoint_dir": str(base / "chk"), "checkpoint_interval_s": 1.0, **job},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


class Proc:
    """A child process in its own process group (Flink's JVM is a grandchild): stopped by group."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        self.proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=ROOT)

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        else:  # the leader exited; children of its group may live on
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def alive(self) -> bool:
        return self.proc.poll() is None


def bridge_args(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stream.bridge", "--config", str(config), *extra]


def wait_for(cond, timeout: float, interval: float = 0.2, what: str = "condition", alive=None):
    """Poll ``cond`` until truthy; ``alive`` = a Proc that must keep running (its log tail is shown)."""
    end = time.time() + timeout
    while time.time() < end:
        if alive is not None and not alive.alive():
            raise AssertionError(f"{alive.log.name} exited with {alive.proc.returncode} while waiting for {what}:\n"
                                 + alive.log.read_text()[-3000:])
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def job_args(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stream.job", "run", "--config", str(config), *extra]


def read_jsonl_dir(directory: Path) -> list[dict]:
    """Committed lines of a Flink file sink directory (hidden in-progress files are skipped)."""
    import json
    out = []
    if not directory.is_dir():
        return out
    for p in sorted(directory.rglob("*")):
        if p.is_file() and not p.name.startswith((".", "_")):
            out += [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return out


def checkpoints(checkpoint_dir: Path) -> dict[str, int]:
    """{job id: highest complete checkpoint number}."""
    found: dict[str, int] = {}
    for meta in checkpoint_dir.glob("*/chk-*/_metadata"):
        job, n = meta.parent.parent.name, int(meta.parent.name.split("-")[1])
        found[job] = max(found.get(job, 0), n)
    return found


def compare_fields(expected: dict, got: dict, rel: float = 1e-9, abs_tol: float = 1e-6) -> list[str]:
    """Field-by-field; floats within abs_tol (payload floats are rounded to 6 decimals by edge.contract.outputs)."""
    import math
    problems = []
    for key, fields in expected.items():
        g = got.get(key)
        if g is None:
            problems.append(f"{key}: missing")
            continue
        for f, v in fields.items():
            ok = (math.isclose(v, g[f], rel_tol=rel, abs_tol=abs_tol) if isinstance(v, float) and g[f] is not None
                  else v == g[f])
            if not ok:
                problems.append(f"{key}.{f}: expected {v}, got {g[f]}")
    problems += [f"{k}: unexpected" for k in got if k not in expected]
    return problems


def final_results(records: list[dict], types=("aggregate", "fleet")) -> dict[str, dict]:
    """The current result of each window id: its highest revision (consumers apply updates by id). Checks on the
    way that each window's revisions are 0, 1, 2, ... exactly once each (files are read in no particular order)
    and that its counts only grow with the revision (late frames add, never remove)."""
    by_id: dict[str, dict[int, dict]] = {}
    for r in records:
        if r["type"] in types:
            revs = by_id.setdefault(r["id"], {})
            assert r["revision"] not in revs, f"{r['id']}: revision {r['revision']} written twice"
            revs[r["revision"]] = r
    out = {}
    for key, revs in by_id.items():
        assert sorted(revs) == list(range(len(revs))), f"{key}: revisions {sorted(revs)}"
        count = "frames" if revs[0]["type"] == "health" else "detections"
        assert all(revs[i][count] <= revs[i + 1][count] for i in range(len(revs) - 1)), f"{key}: a revision lowered {count}"
        out[key] = revs[len(revs) - 1]
    return out


def final_objects(records: list[dict]) -> dict[str, dict]:
    """The highest revision of every objects / present payload id (issue 17's object outputs); checks that each
    id's revisions are 0, 1, 2, ... exactly once each."""
    by_id: dict[str, dict[int, dict]] = {}
    for r in records:
        if r["type"] in ("objects", "present"):
            revs = by_id.setdefault(r["id"], {})
            assert r["revision"] not in revs, f"{r['id']}: revision {r['revision']} written twice"
            revs[r["revision"]] = r
    for key, revs in by_id.items():
        assert sorted(revs) == list(range(len(revs))), f"{key}: revisions {sorted(revs)}"
    return {k: revs[max(revs)] for k, revs in by_id.items()}


def objects_fields(final: dict[str, dict]) -> dict[str, dict]:
    """The payloads' fields a recount states (``tests.support.objects_stream.recount_objects``)."""
    return {k: {f: v for f, v in r.items() if f not in ("schema", "id", "revision")} for k, r in final.items()}
