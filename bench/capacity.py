"""``python -m bench.capacity``: how many cameras the whole local chain holds (broker, bridges, job, cameras).

    python -m bench.capacity [--steps 250,500,1000,1500] [--seconds 40] [--bridges 2] [--window 10]

One mosquitto, ``--bridges`` stream-bridge processes in one shared subscription (landing confirmations on, the
bridge's default rolls unless ``--roll-interval``), the Flink job on its local
mini-cluster (``--window`` s windows, the job's default out-of-orderness unless ``--out-of-orderness``, aggregates
on MQTT), and simulated cameras: ``--simulators`` processes publishing, for each camera, one detections message
(version 2, one person, as agents write it) every 1/``--fps`` s stamped with the time it is sent, QoS 1, through
``bench.mqtt_burst`` (a few % of a core for 4,000 messages a second; paho took 0.5-1.4 cores, which the chain
under test then lacked, and its late sends showed up as late frames). The cameras take no confirmations (each would need its own connection and outbox); "nothing lost" is checked
where it matters, at the end: for every camera, the detections in the job's aggregates on MQTT equal the
detections it published. Latency: per message, the arrival of the aggregate of its window minus its send time.

Each step adds cameras (new device ids, so the steps do not mix) and runs them ``--seconds``; one more device
sends 4 heartbeats a second from the step's start until its last windows have closed, as the rest of a fleet
would (the cameras' last window closes when event time passes it, not once the simulator processes have exited
and a publisher has connected: that gap, 0.5-1 s, used to land on the last window's latency).

Held: nothing lost (every message of the step, start to end) and p99 <= window + 2 s in the steady state: the
latency of the messages of the windows that lie wholly inside the cameras' sending time, starting at least
``STEADY_AFTER_S`` after the first message and ending at least ``STEADY_BEFORE_END_S`` before the last. A fleet
of a thousand cameras does not start in one second and stop in one second as the simulated one does: at the start
the job meets a thousand new devices at once, and at the end the traffic drops to one heartbeat device, whose
messages the bridges roll only once a second (``roll_interval_s``), so the last window closes up to a second later
(measured 2026-12-08: 750 cameras, the last window's last aggregate 2.65 s after its end, the others' 1.55-1.68 s).
The p99 over all the step's messages, transients included, is printed too.
Printed: per step cameras, messages/s, lost, duplicated aggregates, p50/p99 latency, how long after a window's end
its first and last camera's aggregates arrived (``--windows``: for every window), CPU by process kind; then
the most cameras held (goal >= 1,000 on a 2-core machine). Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

import psutil
import yaml

from demo.broker import Mosquitto
from stream.config import JobConfig
from demo.procs import stop_group

LABEL = "person"
STEADY_AFTER_S = 1.0          # the steady state's windows start this long after the step's first message
STEADY_BEFORE_END_S = 2.0     # ... and end this long before its last (out-of-orderness 0.5 s + landing)


# --------------------------------------------------------------------------- one simulator process
def _template(device: str) -> tuple[bytes, bytes, bytes]:
    """The bytes of a camera's message around its seq and ts (built once by the agent's own code)."""
    from edge.contract import schema
    from tests.support.generate import detections_msg
    raw = schema.encode(detections_msg(device, 987654321, 1234567890.125, [(0, 0.8, 0.1)]))
    head, rest = raw.split(b"987654321", 1)
    mid, tail = rest.split(b"1234567890.125", 1)
    return head, mid, tail


def simulate(port: int, prefix: str, first: int, count: int, fps: float, seconds: float, out: Path,
             slices: int = 20) -> None:
    """``count`` cameras at ``fps``: each tick is cut into ``slices`` and each slice's cameras publish together
    (one write), so the messages spread over the tick as unsynchronized cameras' would, at little CPU."""
    from bench.mqtt_burst import BurstPublisher
    devices = [f"{prefix}c{i}" for i in range(first, first + count)]
    templates = {d: _template(d) for d in devices}
    topics = {d: f"sigmawatch/{d}/detections".encode() for d in devices}
    groups = [devices[k * count // slices:(k + 1) * count // slices] for k in range(slices)]
    pub = BurstPublisher("127.0.0.1", port, client_id=f"sim-{prefix}-{first}")
    sent: dict[str, list[float]] = {d: [] for d in devices}
    period = 1.0 / fps
    t0 = time.time() + 0.5
    for tick in range(int(seconds * fps)):
        seq = str(tick).encode()
        for k, group in enumerate(groups):
            delay = t0 + tick * period + period * k / slices - time.time()
            if delay > 0:
                time.sleep(delay)
            if not group:
                continue
            now = round(time.time(), 3)
            stamp = repr(now).encode()
            batch = []
            for d in group:
                head, mid, tail = templates[d]
                batch.append((topics[d], head + seq + mid + stamp + tail))
                sent[d].append(now)
            pub.publish_many(batch)
    missing = pub.close(timeout=60)
    if missing:
        raise SystemExit(f"{missing} messages of simulator {prefix}/{first} were not acknowledged by the broker")
    out.write_text(json.dumps(sent))


# --------------------------------------------------------------------------- the chain
class Chain:
    def __init__(self, work: Path, bridges: int, window: float, out_of_orderness: float,
                 roll_interval_s: Optional[float] = 0.25, job_extra: Optional[dict] = None):
        self.work = work
        self.window = window
        self.broker = Mosquitto(work / "broker", max_inflight=1000).start()
        cfg = {"mqtt": {"host": "127.0.0.1", "port": self.broker.port},
               "bridge": {"landing_dir": str(work / "landing"), "consumed_dir": str(work / "out" / "consumed"),
                          **({} if roll_interval_s is None else {"roll_interval_s": roll_interval_s})},
               "job": {"landing_dir": str(work / "landing"), "output_dir": str(work / "out"),
                       "checkpoint_dir": str(work / "chk"), "checkpoint_interval_s": 5, "out_of_orderness_s": out_of_orderness,
                       "window": {"size_s": window}, **(job_extra or {})}}
        self.config = work / "stream.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.log = open(work / "procs.log", "ab")
        self.procs: dict[str, subprocess.Popen] = {}
        for i in range(bridges):
            self._start(f"bridge{i}", ["stream.bridge", "--client-id", f"bench-b{i}"])
        self._start("job", ["stream.job", "run"])
        while not list((work / "chk").glob("*/chk-*/_metadata")):
            if any(p.poll() is not None for p in self.procs.values()):
                raise SystemExit(f"a bridge or the job exited; see {work / 'procs.log'}")
            time.sleep(0.5)

    def _start(self, name: str, args: list[str]) -> None:
        self.procs[name] = subprocess.Popen([sys.executable, "-m", *args, "--config", str(self.config)],
                                            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far by kind: broker, bridges, job (JVM and its workers)."""
        out: dict[str, float] = defaultdict(float)
        kinds = [("broker", self.broker.proc.pid)] + [("bridges" if n.startswith("bridge") else n, p.pid)
                                                        for n, p in self.procs.items()]
        for kind, pid in kinds:
            try:
                root = psutil.Process(pid)
                for p in [root] + root.children(recursive=True):
                    t = p.cpu_times()
                    out[kind] += t.user + t.system
            except psutil.Error:
                pass
        return dict(out)

    def close(self) -> None:
        for p in self.procs.values():
            stop_group(p, grace=15.0)
        self.broker.stop()


def steady_windows(first_ms: int, last_ms: int, size_ms: int) -> list[int]:
    """Starts of the windows wholly inside the steady state of cameras that sent from ``first_ms`` to ``last_ms``."""
    return [ws for ws in range(first_ms - first_ms % size_ms, last_ms + 1, size_ms)
            if ws >= first_ms + STEADY_AFTER_S * 1000 and ws + size_ms <= last_ms - STEADY_BEFORE_END_S * 1000]


def _p99(sorted_values: list[float]) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(0.99 * len(sorted_values)))] if sorted_values else float("inf")


def run_step(chain: Chain, step: int, cameras: int, simulators: int, fps: float, seconds: float, collector,
             verbose: bool = False) -> dict:
    prefix = f"s{step}"
    cpu0, t0 = chain.cpu(), time.time()
    # event time moves on past the cameras' last window without them (see the module's docstring)
    beats = threading.Thread(target=_heartbeats, args=(chain.broker.port, prefix, seconds + chain.window + 5),
                             name="heartbeats", daemon=True)
    beats.start()
    sims = []
    per = -(-cameras // simulators)
    for k in range(simulators):
        first, count = k * per, min(per, cameras - k * per)
        if count <= 0:
            continue
        out = chain.work / f"sent-{prefix}-{k}.json"
        sims.append((subprocess.Popen([sys.executable, "-m", "bench.capacity", "simulate", "--port",
                                       str(chain.broker.port), "--prefix", prefix, "--first", str(first), "--count",
                                       str(count), "--fps", str(fps), "--seconds", str(seconds), "--out", str(out)],
                                      stdout=chain.log, stderr=subprocess.STDOUT, start_new_session=True), out))
    sim_cpu = 0.0
    for proc, _ in sims:
        ps, last = psutil.Process(proc.pid), 0.0
        while proc.poll() is None:
            try:
                t = ps.cpu_times()
                last = t.user + t.system
            except psutil.Error:
                break
            time.sleep(0.5)
        sim_cpu += last
        if proc.returncode:
            raise SystemExit(f"a camera simulator failed; see {chain.work / 'procs.log'}")
    sent: dict[str, list[float]] = {}
    for _, out in sims:
        sent.update(json.loads(out.read_text()))
    size_ms = int(chain.window * 1000)
    steady = set(steady_windows(int(min(min(v) for v in sent.values() if v) * 1000),
                                int(max(max(v) for v in sent.values() if v) * 1000), size_ms))
    if not steady:
        raise SystemExit(f"--seconds {seconds:g} leaves no whole window of steady state: give at least "
                         f"{2 * chain.window + STEADY_AFTER_S + STEADY_BEFORE_END_S:g} s")
    wall = time.time() - t0
    deadline = time.time() + chain.window + 30
    expected = {d: len(ts) for d, ts in sent.items()}
    while time.time() < deadline:
        got = _aggregated(collector, prefix)
        if all(got.get(d, 0) >= n for d, n in expected.items()):
            break
        time.sleep(1)
    beats.join()
    cpu1 = chain.cpu()
    got = _aggregated(collector, prefix)
    firsts = _first_arrivals(collector, prefix)
    lat, lat_all = [], []
    for d, stamps in sent.items():
        for ts in stamps:
            ms = int(ts * 1000)
            ws = ms - ms % size_ms
            arrived = firsts.get(f"{d}/{LABEL}/{ws}")
            if arrived is not None:
                lat_all.append(arrived - ts)
                if ws in steady:
                    lat.append(arrived - ts)
    lat.sort()
    lat_all.sort()
    late = _late(chain.work / "out" / "deadletter", prefix)
    messages = sum(expected.values())
    lost = sum(max(0, n - got.get(d, 0)) for d, n in expected.items())
    extra = sum(max(0, got.get(d, 0) - n) for d, n in expected.items())
    p99, p99_all = _p99(lat), _p99(lat_all)
    # where the time after a window's end goes: the first and the last device's first aggregate of each window
    spread: dict[int, list[float]] = defaultdict(list)
    for key, arrived in firsts.items():
        ws = int(key.rsplit("/", 1)[1])
        spread[ws].append(arrived - (ws + size_ms) / 1000)
    full = [sorted(v) for ws, v in spread.items() if ws in steady]
    per_window = [{"window_start": ws / 1000, "cameras": len(v), "first_s": round(min(v), 2),
                   "last_s": round(max(v), 2), "steady": ws in steady} for ws, v in sorted(spread.items())]
    first_after = statistics.median(v[0] for v in full) if full else None
    last_after = statistics.median(v[-1] for v in full) if full else None
    res = {"cameras": cameras, "messages": messages, "msgs_per_s": round(messages / seconds),
           "lost": lost, "late": late, "extra": extra, "p50_s": round(statistics.median(lat), 2) if lat else None,
           "p99_s": round(p99, 2), "p99_all_s": round(p99_all, 2), "steady_windows": len(steady),
           "cpu_s": {k: round(cpu1.get(k, 0) - cpu0.get(k, 0), 1) for k in cpu1},
           "simulators_cpu_s": round(sim_cpu, 1), "wall_s": round(wall, 1),
           "window_end_to_first_device_s": None if first_after is None else round(first_after, 2),
           "window_end_to_last_device_s": None if last_after is None else round(last_after, 2),
           "windows": per_window,
           "held": lost == 0 and extra == 0 and p99 <= chain.window + 2}
    cpu_txt = ", ".join(f"{k} {v:.0f}" for k, v in res["cpu_s"].items())
    print(f"{cameras:6d} cameras  {res['msgs_per_s']:6d} msg/s  lost {lost:6d} (late {late})  extra {extra:4d}  "
          f"p50 {res['p50_s']} s  p99 {res['p99_s']} s  {'HELD' if res['held'] else 'not held'}  "
          f"(p99 with the fleet's start and stop {res['p99_all_s']} s)  "
          f"(window end -> its first / last camera's aggregate, median over windows: "
          f"{res['window_end_to_first_device_s']} / {res['window_end_to_last_device_s']} s)  "
          f"(CPU-s over the step: {cpu_txt}, cameras {sim_cpu:.0f}; load average {os.getloadavg()[0]:.1f})",
          flush=True)
    if verbose:
        for w in per_window:
            print(f"        window {w['window_start']:.0f}: {w['cameras']} cameras, window end -> first / last camera's "
                  f"aggregate {w['first_s']} / {w['last_s']} s{'' if w['steady'] else '  (start/stop, not steady)'}",
                  flush=True)
    return res


def _heartbeats(port: int, prefix: str, seconds: float) -> None:
    from edge.contract import schema
    from tests.support.generate import metrics_msg
    from tests.support.publisher import Publisher
    pub = Publisher("127.0.0.1", port, client_id=f"beat-{prefix}")
    end = time.time() + seconds
    while time.time() < end:
        pub.publish(f"sigmawatch/{prefix}beat/metrics",
                    schema.encode(metrics_msg(f"{prefix}beat", round(time.time(), 3), 4.0, 0)))
        time.sleep(0.25)
    pub.close()


def _late(deadletter: Path, prefix: str) -> int:
    """Messages of this step the job dead-lettered as late (behind the watermark): not aggregated, not lost
    from the landing files, but missing from the aggregates."""
    n = 0
    for p in deadletter.rglob("*") if deadletter.is_dir() else []:
        if p.is_file() and not p.name.startswith((".", "_")):
            for line in p.read_text(errors="replace").splitlines():
                if '"late"' in line and f'{prefix}c' in line:
                    n += 1
    return n


def _aggregated(collector, prefix: str) -> dict[str, int]:
    """Detections per device in the aggregates seen (each aggregate id once)."""
    seen: dict[str, dict] = {}
    for _t, p, _at, _r in collector.snapshot():
        if p and p.get("type") == "aggregate" and p.get("device", "").startswith(prefix + "c"):
            seen[p["id"]] = p
    out: dict[str, int] = defaultdict(int)
    for p in seen.values():
        out[p["device"]] += p["detections"]
    return out


def _first_arrivals(collector, prefix: str) -> dict[str, float]:
    first: dict[str, float] = {}
    for _t, p, at, _r in collector.snapshot():
        if p and p.get("type") == "aggregate" and p.get("device", "").startswith(prefix + "c"):
            first.setdefault(p["id"], at)
    return first


def bench_capacity(steps: list[int], seconds: float, bridges: int, simulators: int, fps: float,
                   window: float, out_of_orderness: float, verbose: bool = False,
                   roll_interval_s: Optional[float] = None, job_extra: Optional[dict] = None) -> dict:
    from tests.support.publisher import Collector
    work = Path(tempfile.mkdtemp(prefix="sw-cap-"))
    chain = Chain(work, bridges, window, out_of_orderness, roll_interval_s, job_extra)
    collector = Collector("127.0.0.1", chain.broker.port, ["sigmawatch/agg/device/#"], client_id="cap-collector")
    results = []
    try:
        print(f"whole local chain: mosquitto, {bridges} bridges (landing confirmations on), the job ({window:g} s "
              f"windows), cameras at {fps:g} fps in {simulators} simulator processes; {seconds:g} s per step; "
              f"{os.cpu_count()} cores", flush=True)
        for i, cameras in enumerate(steps):
            results.append(run_step(chain, i, cameras, simulators, fps, seconds, collector, verbose))
        held = [r["cameras"] for r in results if r["held"]]
        best = max(held) if held else 0
        print(f"most cameras held (nothing lost, steady-state p99 <= window + 2 s = {window + 2:g} s): {best:,} "
              f"(goal >= 1,000: {'met' if best >= 1000 else 'not met'})", flush=True)
        return {"steps": results, "most_cameras_held": best}
    finally:
        collector.close()
        chain.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what")
    s = sub.add_parser("simulate", help="(internal) one camera simulator process")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--prefix", required=True)
    s.add_argument("--first", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--fps", type=float, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", default="250,500,1000,1500")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--bridges", type=int, default=2)
    ap.add_argument("--simulators", type=int, default=2)
    ap.add_argument("--fps", type=float, default=4.0)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--out-of-orderness", type=float, default=JobConfig.model_fields["out_of_orderness_s"].default,
                    help="the job's bound on capture-time disorder (default: the job's)")
    ap.add_argument("--roll-interval", type=float, default=None,
                    help="the bridges' roll_interval_s (default: the bridge's)")
    ap.add_argument("--job", action="append", default=[], metavar="KEY=VALUE",
                    help="a job setting (stream config's job section, YAML value), e.g. --job parallelism=2")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--windows", action="store_true", help="print every window's delays (where p99 comes from)")
    args = ap.parse_args(argv)
    if args.what == "simulate":
        simulate(args.port, args.prefix, args.first, args.count, args.fps, args.seconds, args.out)
        return 0
    job_extra = {}
    for item in args.job:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--job {item!r}: expected KEY=VALUE, e.g. --job parallelism=2")
        job_extra[key] = yaml.safe_load(value)
    try:                                   # a bad key or value fails here, named, not in the job's log
        JobConfig.model_validate({"landing_dir": "x", "output_dir": "x", **job_extra})
    except ValueError as exc:
        ap.error(f"--job: {exc}")
    res = bench_capacity([int(x) for x in args.steps.split(",")], args.seconds, args.bridges, args.simulators,
                         args.fps, args.window, args.out_of_orderness, args.windows, args.roll_interval, job_extra)
    if args.json:
        print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
