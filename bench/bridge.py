"""The bridge's whole path against what mosquitto delivers to one QoS 1 subscriber, and where its CPU goes.

    python -m bench.bridge [--messages 50000] [--devices 50] [--profile]

Both consumers drain the same queue: a persistent session is made, the consumer leaves, ``--messages`` edge
messages (detections as agents write them, the mix of bench.stream's throughput input) are published by mosquitto_pub
processes (one per device, QoS 1), then the consumer comes back and takes them as fast as it can. Its rate is
what it sustains, whatever the publishers could do:

- reference: ``mosquitto_sub -q 1`` (C, output to /dev/null): what mosquitto delivers to one QoS 1 subscriber;
- the bridge: one ``stream-bridge`` process, the whole path (paho receive, validation, landing lines, writing,
  fsync, PUBACKs, landing confirmations), from its CONNACK to the last message in a durable landing file;
  its CPU per message (the process's CPU time over the drain).

``--profile`` drains once more with the bridge in this process under cProfile (paho's network thread and the
main loop) and prints where the time goes, by part. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Optional

import psutil
import yaml

from demo.broker import Mosquitto



def edge_messages(events: int, devices: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """(topic, payload) as devices publish them: 1 in 20 is metrics, detections have 0-3 boxes (as in
    ``bench.stream``'s throughput input)."""
    import random

    from edge.contract import schema
    from tests.support.generate import LABELS, detections_msg, metrics_msg
    rng = random.Random(seed)
    seqs = [0] * devices
    out = []
    for i in range(events):
        dev = i % devices
        ts = round(1_700_000_000.0 + i * 0.002 + rng.uniform(0, 0.5), 3)
        if i % 20 == 19:
            msg, kind = metrics_msg(f"d{dev}", ts, 10.0, 0), "metrics"
        else:
            dets = [(c, round(rng.uniform(0.3, 0.99), 3), round(rng.uniform(0.02, 0.5), 3))
                    for c in (rng.randrange(len(LABELS)) for _ in range(rng.randint(0, 3)))]
            msg, kind = detections_msg(f"d{dev}", seqs[dev], ts, dets), "detections"
            seqs[dev] += 1
        out.append((schema.topic("sigmawatch", f"d{dev}", kind), schema.encode(msg)))
    return out


def _files(work: Path, messages: int, devices: int) -> list[tuple[str, Path]]:
    """One file of payload lines per device topic (mosquitto_pub -l sends one message per line)."""
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload in edge_messages(messages, devices):
        by_topic[topic].append(payload)
    out = []
    for i, (topic, payloads) in enumerate(sorted(by_topic.items())):
        path = work / f"pub-{i}.txt"
        path.write_bytes(b"\n".join(payloads) + b"\n")
        out.append((topic, path))
    return out


def _publish(broker: Mosquitto, files: list[tuple[str, Path]]) -> float:
    """Publish every file (one mosquitto_pub per topic, QoS 1, 4 at a time); returns the wall seconds."""
    t0 = time.perf_counter()
    for i in range(0, len(files), 4):
        procs = [subprocess.Popen(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-V", "5",
                                   "-t", topic, "-l", "-i", f"bench-pub-{i + j}"], stdin=open(path, "rb"))
                 for j, (topic, path) in enumerate(files[i:i + 4])]
        for p in procs:
            if p.wait(300) != 0:
                raise SystemExit(f"mosquitto_pub exited with {p.returncode}")
    return time.perf_counter() - t0


def _sub_argv(broker: Mosquitto, count: Optional[int], group: str) -> list[str]:
    return ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-V", "5", "-c", "-x", "3600",
            "-i", "bench-ref", "-t", f"$share/{group}/sigmawatch/+/detections", "-t",
            f"$share/{group}/sigmawatch/+/metrics", *(["-C", str(count)] if count else ["-W", "1"])]


def _end_session(broker: Mosquitto, client_id: str) -> None:
    """Connect once with a clean start: the client's persistent session (and its share of a group) is gone."""
    subprocess.run(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "5", "-i", client_id,
                    "-t", "bench/none", "-W", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def reference_rate(broker: Mosquitto, files, messages: int, group: str) -> dict:
    """mosquitto_sub -q 1 draining ``messages`` queued in its persistent session: messages per second."""
    subprocess.run(_sub_argv(broker, None, group), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _publish(broker, files)
    t0 = time.perf_counter()
    done = subprocess.run(_sub_argv(broker, messages, group), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=600)
    wall = time.perf_counter() - t0
    _end_session(broker, "bench-ref")
    if done.returncode != 0:
        raise SystemExit(f"mosquitto_sub failed: {done.stderr.decode()[-500:]}")
    return {"messages": messages, "wall_s": round(wall, 3), "per_s": round(messages / wall)}


def _landed(landing: Path) -> int:
    return sum(int(m.group(1)) for p in landing.glob("*.jsonl") if (m := re.search(r"-n(\d+)\.jsonl$", p.name)))


def _bridge_config(work: Path, broker: Mosquitto, landing: Path, group: str) -> Path:
    cfg = work / "stream.yaml"
    cfg.write_text(yaml.safe_dump({
        "mqtt": {"host": broker.host, "port": broker.port},
        "bridge": {"landing_dir": str(landing), "group": group, "consumed_dir": None, "client_id": "bench-bridge",
                   "session_expiry_s": 3600, "kinds": ["detections", "metrics"]}}))
    return cfg


def bridge_rate(broker: Mosquitto, files, messages: int, work: Path, group: str) -> dict:
    """One stream-bridge process draining ``messages`` queued in its session: messages per second from its CONNACK
    to the last one in a durable landing file, and its CPU per message over that time."""
    landing = work / "landing-bridge"
    shutil.rmtree(landing, ignore_errors=True)
    cfg = _bridge_config(work, broker, landing, group)
    argv = [sys.executable, "-m", "stream.bridge", "--config", str(cfg)]
    log = work / "bridge.log"
    first = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_log(log, "subscribed to", first)
    finally:
        os.killpg(first.pid, signal.SIGTERM)          # leaves its session behind
        first.wait(30)
    shutil.rmtree(landing, ignore_errors=True)
    _publish(broker, files)
    proc = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ps = psutil.Process(proc.pid)
        connected = _wait_log(log, "MQTT connected", proc)
        cpu0 = ps.cpu_times()
        while _landed(landing) < messages:
            if proc.poll() is not None:
                raise SystemExit(f"the bridge exited: {log.read_text()[-2000:]}")
            time.sleep(0.01)
        done = time.time()
        cpu1 = ps.cpu_times()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        _end_session(broker, "bench-bridge")
    wall = done - connected
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {"messages": messages, "wall_s": round(wall, 3), "per_s": round(messages / wall),
            "cpu_s": round(cpu, 3), "us_per_message": round(cpu / messages * 1e6, 1),
            "messages_per_cpu_s": round(messages / cpu), "files": len(list(landing.glob("*.jsonl")))}


def _wait_log(log: Path, text: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    """Wait for ``text`` in the log; returns the time stamped on that line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp()
        if proc.poll() is not None:
            raise SystemExit(f"the bridge exited: {log.read_text()[-2000:]}")
        time.sleep(0.01)
    raise SystemExit(f"no {text!r} in {log} after {timeout} s")


PARTS = (("paho (MQTT receive, PUBACKs, publishes)", ("paho",)), ("validation", ("validator.py", "schema.py")),
         ("landing lines (flattening, JSON)", ("landing.py", "json", "wire.py")),
         ("socket and file I/O", ("socket", "ssl", "select", "posix", "io.", "_io", "open", "write", "fsync")))


def profile_bridge(broker: Mosquitto, files, messages: int, work: Path, top: int = 12) -> dict:
    """Drain ``messages`` with the bridge in this process under cProfile (both its threads); time by part."""
    from stream.bridge import Bridge
    from stream.config import load
    landing = work / "landing-profile"
    cfg = load(_bridge_config(work, broker, landing, "profile"))
    bridge = Bridge(cfg)
    bridge.start()
    bridge.client.stop()                                # session left behind
    _publish(broker, files)
    bridge = Bridge(cfg)
    profiles = [cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)]   # CPU, not waits
    paho = bridge.client._client
    inner = paho._thread_main

    def profiled_thread_main(*a, **kw):
        profiles[1].enable()
        try:
            return inner(*a, **kw)
        finally:
            profiles[1].disable()
    paho._thread_main = profiled_thread_main
    profiles[0].enable()
    t0 = time.process_time()
    bridge.start()
    stopper = threading.Thread(target=lambda: _stop_when(bridge, landing, messages), daemon=True)
    stopper.start()
    bridge.run()
    bridge.stop()
    profiles[0].disable()
    cpu = time.process_time() - t0
    stats = pstats.Stats(profiles[0]).add(profiles[1])
    by_part: dict[str, float] = defaultdict(float)
    total = 0.0
    rows = []
    for (filename, line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        total += tt
        where = f"{filename}:{func}"
        part = next((name for name, keys in PARTS if any(k in where for k in keys)), "other")
        by_part[part] += tt
        rows.append((tt, f"{Path(filename).name}:{line}({func})"))
    rows.sort(reverse=True)
    print(f"profile of one bridge draining {messages:,} messages ({cpu:.2f} CPU-s with the profiler's overhead): "
          "share of the CPU by part (each thread's CPU time)")
    for part, tt in sorted(by_part.items(), key=lambda kv: -kv[1]):
        print(f"  {part:45s} {tt / total:6.1%}")
    print("  top functions by self time:")
    for tt, name in rows[:top]:
        print(f"    {tt / total:6.1%}  {name}")
    return {"parts": {k: round(v / total, 3) for k, v in by_part.items()},
            "top": [(round(tt / total, 3), n) for tt, n in rows[:top]]}


def _stop_when(bridge, landing: Path, messages: int) -> None:
    while _landed(landing) < messages:
        time.sleep(0.01)
    bridge.stop_event.set()


def bench_bridge(messages: int, devices: int, profile: bool = False, rounds: int = 2) -> dict:
    if not shutil.which("mosquitto_pub") or not shutil.which("mosquitto_sub"):
        raise SystemExit("mosquitto_pub / mosquitto_sub are needed (apt-get install mosquitto-clients)")
    work = Path(tempfile.mkdtemp(prefix="sw-bridge-"))
    broker = Mosquitto(work / "broker", max_inflight=1000).start()
    try:
        files = _files(work, messages, devices)
        runs = []
        for i in range(rounds):               # interleaved: the machine's load changes both alike
            ref = reference_rate(broker, files, messages, f"ref{i}")
            br = bridge_rate(broker, files, messages, work, f"bridge{i}")
            runs.append({"mosquitto_sub": ref, "bridge": br, "ratio": round(br["per_s"] / ref["per_s"], 3)})
            print(f"mosquitto -> one QoS 1 subscriber (mosquitto_sub): {ref['per_s']:,} msg/s; one bridge process, "
                  f"whole path: {br['per_s']:,} msg/s, {br['us_per_message']} us CPU per message "
                  f"({br['messages_per_cpu_s']:,} per CPU-second, {br['files']} files); ratio {runs[-1]['ratio']:.2f} "
                  f"(goal >= 1.0); load average {os.getloadavg()[0]:.2f}", flush=True)
        result = {"runs": runs, "ratio": min(r["ratio"] for r in runs),
                  "bridge_us_per_message": min(r["bridge"]["us_per_message"] for r in runs)}
        if profile:
            result["profile"] = profile_bridge(broker, files, messages, work)
        return result
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bridge", description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="also profile one drain in-process (cProfile)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = bench_bridge(args.messages, args.devices, args.profile, args.rounds)
    if args.json:
        print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
