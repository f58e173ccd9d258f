"""``python -m bench.soak``: does the job's state stay flat while the chain lands, reads and cleans many files?

    python -m bench.soak [--minutes 12] [--cameras 20] [--fps 4] [--roll-interval 0.1] [--every 30]

The whole local chain of ``bench.capacity`` (mosquitto, two stream-bridge processes with landing confirmations,
the Flink job on its local mini-cluster, checkpoints every 5 s) and ``--cameras`` simulated cameras publishing
at ``--fps`` for ``--minutes``. The bridges roll a landing file every ``--roll-interval`` s (shorter than the
default 1 s, so that a short run lands many thousand files), the job commits what it consumed, the bridges delete
the files fully counted. Every ``--every`` s it prints: landing files written so far, files present, the newest
completed checkpoint's size on disk, and the job's resident memory. At the end: the checkpoint size after
warm-up (the first quarter of the run) vs at the end, as a ratio (goal: no growth, ratio about 1.0). Printed,
never asserted.

What it measures is what issue 14 found growing: Flink's continuous file source remembered every path it had read
(about 100 B each, for ever); the job's ``LandingSource`` keeps only the paths still present.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import psutil

from bench.capacity import Chain

NAME_RE = re.compile(r"^\d{13}-.+-n\d+\.jsonl$")


def checkpoint_bytes(chk: Path) -> tuple[Optional[int], Optional[int]]:
    """(number, bytes on disk) of the newest completed checkpoint under ``chk`` (its ``_metadata`` written)."""
    done = sorted(chk.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not done:
        return None, None
    d = done[-1].parent
    size = 0
    for p in d.rglob("*"):
        try:
            size += p.stat().st_size if p.is_file() else 0
        except FileNotFoundError:          # the job subsumed it while we walked
            pass
    return int(d.name.split("-")[1]), size


def rss_mb(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root] + root.children(recursive=True)) / 2**20
    except psutil.Error:
        return float("nan")


def bench_soak(minutes: float, cameras: int, fps: float, roll_interval: float, every: float,
               allowed_lateness: Optional[float] = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sw-soak-"))
    extra = {} if allowed_lateness is None else {"allowed_lateness_s": allowed_lateness}
    chain = Chain(work, bridges=2, window=10.0, out_of_orderness=0.5, roll_interval_s=roll_interval, job_extra=extra)
    landing = work / "landing"
    seconds = minutes * 60
    sim = subprocess.Popen([sys.executable, "-m", "bench.capacity", "simulate", "--port", str(chain.broker.port),
                            "--prefix", "soak", "--first", "0", "--count", str(cameras), "--fps", str(fps),
                            "--seconds", str(seconds), "--out", str(work / "sent.json")],
                           stdout=chain.log, stderr=subprocess.STDOUT, start_new_session=True)
    seen: set[str] = set()
    rows = []
    try:
        print(f"soak: {cameras} cameras at {fps:g} fps for {minutes:g} min, 2 bridges rolling every {roll_interval:g} s, "
              f"checkpoints every 5 s, allowed lateness "
              f"{'the default (24 h)' if allowed_lateness is None else f'{allowed_lateness:g} s'}; "
              f"{os.cpu_count()} cores", flush=True)
        print(f"{'t (s)':>6} {'files written':>13} {'present':>8} {'checkpoint':>10} {'chk bytes':>10} {'job RSS MB':>10}",
              flush=True)
        t0, next_at = time.time(), time.time()
        while sim.poll() is None or time.time() - t0 < seconds:
            time.sleep(0.2)
            present = {p.name for p in landing.iterdir() if NAME_RE.match(p.name)} if landing.is_dir() else set()
            seen |= present
            if time.time() >= next_at:
                n, size = checkpoint_bytes(work / "chk")
                row = {"t": round(time.time() - t0), "written": len(seen), "present": len(present),
                       "checkpoint": n, "bytes": size, "rss_mb": round(rss_mb(chain.procs["job"].pid))}
                rows.append(row)
                print(f"{row['t']:6d} {row['written']:13d} {row['present']:8d} {str(n):>10} {str(size):>10} "
                      f"{row['rss_mb']:10d}", flush=True)
                next_at += every
            if chain.procs["job"].poll() is not None:
                raise SystemExit(f"the job exited; see {work / 'procs.log'}")
        if sim.returncode:
            raise SystemExit(f"the camera simulator failed; see {work / 'procs.log'}")
        sized = [r for r in rows if r["bytes"]]
        warmup_s = max(seconds / 4, (allowed_lateness or 0) + 30)
        warm = [r for r in sized if r["t"] >= warmup_s]
        res = {"rows": rows, "files_written": len(seen)}
        if warm:
            first, last = warm[0], warm[-1]
            res.update(after_warmup=first["bytes"], at_end=last["bytes"], ratio=round(last["bytes"] / first["bytes"], 3),
                       max_bytes=max(r["bytes"] for r in warm), min_bytes=min(r["bytes"] for r in warm))
            span_windows = (last["t"] - first["t"]) / 10.0 * cameras
            res["bytes_per_device_window"] = round((last["bytes"] - first["bytes"]) / span_windows) if span_windows else None
            print(f"checkpoint size after warm-up (t={first['t']} s, {first['written']} files written): "
                  f"{first['bytes']:,} B; at the end (t={last['t']} s, {last['written']} files written): "
                  f"{last['bytes']:,} B; ratio {res['ratio']:.3f} (range {res['min_bytes']:,}-{res['max_bytes']:,} B; "
                  f"goal: no growth after warm-up); growth per (camera, 10 s window): {res['bytes_per_device_window']} B",
                  flush=True)
        return res
    finally:
        if sim.poll() is None:
            sim.kill()
        chain.close()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--fps", type=float, default=4)
    ap.add_argument("--roll-interval", type=float, default=0.1)
    ap.add_argument("--every", type=float, default=30)
    ap.add_argument("--allowed-lateness", type=float, default=None,
                    help="the job's allowed_lateness_s (default: the job's, 24 h): windows are kept that long, so the "
                         "state grows until then and stays flat after; warm-up = this + 30 s")
    args = ap.parse_args(argv)
    bench_soak(args.minutes, args.cameras, args.fps, args.roll_interval, args.every, args.allowed_lateness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
