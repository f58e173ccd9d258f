"""``sigmawatch-demo`` (``make demo``): the whole chain on this machine, then a summary.

    broker (mosquitto on 127.0.0.1) -> N edge agents (own device ids; real footage: OpenCV's vtest.avi, looping,
    with the detector distilled for that scene; or generated videos with the synthetic detector) ->
    stream-bridge -> PyFlink job (mini-cluster) -> aggregates/alerts on MQTT -> dashboard

Runs until Ctrl-C or ``--duration`` seconds, then stops the agents, lets the job aggregate what they
sent, stops everything by process group and prints what went through: frames, detections, bytes vs
JPEG, events aggregated, alerts, latency. A component that is not in the tree yet is skipped with a
message saying so. Every process is ours, started here, stopped here; all listen on 127.0.0.1 only.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from demo.observer import Observer
from demo.footage import choose_input
from demo.plan import ROOT, WINDOW_S, plan
from demo.procs import Supervisor, free_port
from demo.report import print_summary
from demo.screenshot import screenshot
from edge.contract import schema
from edge.contract.cli import ArgumentParser
from edge.contract.cli import run as run_cli
from edge.contract.errors import DemoError, SigmawatchError, UsageError
from edge.contract.mqtt import MqttClient, MqttSettings




def say(msg: str = "") -> None:
    try:
        print(msg, flush=True)
    except (BrokenPipeError, OSError):  # the terminal or pipe went away: keep going, still stop everything
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="sigmawatch-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--devices", type=int, default=2, help="edge agents to run (default 2)")
    p.add_argument("--fps", type=float, default=4.0, help="processing rate cap per agent (default 4)")
    p.add_argument("--synthetic", action="store_true",
                   help="play generated videos of the synthetic classes (square, disc, triangle, star) with "
                        "edge/models/demo-detector-int8.tflite instead of the real footage (OpenCV's vtest.avi "
                        "with edge/models/vtest-distilled-int8.tflite, the default)")
    p.add_argument("--synthetic-if-missing", action="store_true",
                   help="play the generated videos when vtest.avi is not fetched (default: stop and say how to "
                        "fetch it)")
    p.add_argument("--video-seconds", type=float, default=None, help="--synthetic: length of each generated video "
                   "(it loops; default 20)")
    p.add_argument("--workdir", type=Path, default=ROOT / "build" / "demo", help="logs, videos, state (default build/demo)")
    p.add_argument("--dashboard-port", type=int, default=8050, help="dashboard HTTP port on 127.0.0.1 (0 = any free)")
    p.add_argument("--mqtt-port", type=int, default=0, help="broker port on 127.0.0.1 (default: a free port)")
    p.add_argument("--model", type=Path, default=None,
                   help="detector the agents run (default: edge/models/vtest-distilled-int8.tflite on the real "
                        "footage, edge/models/demo-detector-int8.tflite with --synthetic)")
    p.add_argument("--broker", choices=["auto", "mosquitto", "amqtt"], default="auto",
                   help="auto: mosquitto if installed, else the pure-Python amqtt (if installed)")
    p.add_argument("--no-flink", action="store_true", help="skip the PyFlink job (and the bridge)")
    p.add_argument("--drain-timeout", type=float, default=40.0,
                   help="after stopping the agents, wait at most this long for the job to aggregate everything")
    p.add_argument("--homeassistant", action="store_true", help="dashboard also publishes Home Assistant discovery")
    p.add_argument("--screenshot", type=Path, help="save a headless-Chromium screenshot of the dashboard before stopping")
    p.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                   help="after the drain, keep the chain running this long (Ctrl-C ends it) to look at the final "
                        "dashboard")
    p.add_argument("--summary-json", type=Path, help="also write the summary here (default <workdir>/summary.json)")
    return p

# ---------------------------------------------------------------------------------------------- plan
# ---------------------------------------------------------------------------------------------- run


def _fresh_workdir(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("agents", "stream", "logs"):  # state of a previous run; the videos are kept (cached)
        shutil.rmtree(workdir / sub, ignore_errors=True)


def _port_free(port: int) -> bool:
    import socket  # noqa: PLC0415
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _flush_windows(observer: Observer, mqtt: MqttSettings) -> None:
    """After the agents stop, one metrics heartbeat closes the last windows in the job: its watermark follows the
    bridge's receive time, which moves only when a message arrives. Sent once the last window has ended."""
    with observer.lock:
        if not observer.metrics:
            return
        device, last = sorted(observer.metrics.items())[0]
        newest = max((ts[-1] for ts in observer.det_ts.values() if ts), default=last["ts"])
    last_end = (int(newest // WINDOW_S) + 1) * WINDOW_S
    time.sleep(max(0.0, last_end + 1.0 - time.time()))
    beat = {**last, "ts": time.time()}
    client = MqttClient(mqtt, client_id="sigmawatch-demo-flush").start()
    try:
        client.wait_ready(10)
        client.publish_and_wait(schema.topic(mqtt.topic_prefix, device, "metrics"),
                                schema.encode(schema.validate(beat, "metrics")), qos=1)
    finally:
        client.stop()


def run(args) -> int:
    workdir = args.workdir.resolve()
    _fresh_workdir(workdir)
    port = args.mqtt_port or free_port()
    if args.dashboard_port and not _port_free(args.dashboard_port):
        say(f"--> port {args.dashboard_port} is in use: the dashboard takes a free port instead (--dashboard-port)")
        args.dashboard_port = 0
    say(f"==> sigmawatch demo in {workdir}")
    cams = choose_input(args, workdir, say)
    if cams.kind == "vtest":
        say(f"==> {args.devices} camera(s) playing the real footage {cams.videos[0].path} (OpenCV sample data, "
            f"looping) with {cams.model.name} (distilled for that scene)")
    else:
        say(f"==> {args.devices} camera video(s) of the synthetic classes with {cams.model.name}")
    videos = list(cams.videos)
    mean_jpeg = sum(v.mean_jpeg_bytes for v in videos) / len(videos)
    for v in dict.fromkeys(videos):
        say(f"    {v.path.name}: {v.width}x{v.height}, {v.frames} frames at {v.fps:g} fps, "
            f"mean JPEG (q90) {v.mean_jpeg_bytes / 1024:.1f} KiB/frame")
    specs, skipped, mqtt = plan(args, workdir, port, cams)
    sup = Supervisor(workdir / "logs", say)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    observer = None
    failed = None
    dashboard_url = None
    try:
        for spec in specs:
            if stop.is_set():
                break
            say(f"==> starting {spec.name}" + (" (JVM + mini-cluster; ready at its first checkpoint, "
                                                "can take a minute)" if spec.name == "flink-job" else ""))
            running = sup.start(spec)
            if spec.name == "broker":  # subscribe before anything publishes
                observer = Observer(mqtt)
                observer.wait_ready(10)
            if spec.name == "dashboard":
                dashboard_url = running.ready_match.group(1)
                say(f"    dashboard is up: {dashboard_url}")
        for note in skipped:
            say(f"--> {note}")
        say("")
        say(f"    Dashboard:  {dashboard_url}")
        say(f"    MQTT:       mqtt://127.0.0.1:{port}   (mosquitto_sub -p {port} -t 'sigmawatch/#' -v)")
        say(f"    Logs:       {sup.log_dir}/")
        say("    Stop with Ctrl-C" + (f" (or it stops after {args.duration:g} s)" if args.duration else ""))
        say("")
        t0 = time.monotonic()
        next_line = t0 + 10
        while not stop.wait(0.5):
            dead = sup.dead()
            if dead:
                d = dead[0]
                failed = f"{d.spec.name} exited with code {d.proc.returncode}; its log ({d.log_path}) ends:\n{d.log_tail()}"
                break
            now = time.monotonic()
            if args.duration and now - t0 >= args.duration:
                break
            if now >= next_line:
                next_line = now + 10
                s = observer.summary(mean_jpeg)
                say(f"    t+{now - t0:4.0f}s  frames {s['frames_processed']}, detections {s['detections_published']}, "
                    f"aggregated {s['events_aggregated']}, alerts firing {len(s['alerts_firing'])}")
        if not failed:
            _drain(sup, observer, mqtt, args, skipped_flink=not any(s.name == "flink-job" for s in specs))
            if args.screenshot and dashboard_url:
                why_not = screenshot(dashboard_url, args.screenshot)
                say(f"    dashboard screenshot: {args.screenshot}" if why_not is None
                    else f"--> no dashboard screenshot: {why_not}")
            if args.hold > 0 and not stop.is_set():
                say(f"==> holding the drained chain for {args.hold:g} s (Ctrl-C ends it): {dashboard_url}")
                stop.wait(args.hold)
    except SigmawatchError as exc:
        failed = str(exc)
    finally:
        try:
            say("==> stopping everything")
        finally:  # whatever happens, the processes are stopped
            stopped = sup.stop_all()
            left = sup.leftovers()
            if observer:
                observer.close()
    for name, how in stopped.items():
        say(f"    {name}: {how}")
    if left:
        say(f"WARNING: processes left behind by: {', '.join(left)}")
    summary = observer.summary(mean_jpeg) if observer else {}
    summary["left_behind"] = left
    if observer and any(sp.name == "flink-job" for sp in specs):
        summary["recount"] = observer.recount_mismatches(WINDOW_S)
        summary["recount_windows"] = observer.last_recount  # per device/class/window: published vs aggregated
        # what the job dead-lettered, from its committed files (its counters come only for windows with something)
        summary["dead_letters"] = sum(len(p.read_text().splitlines())
                                      for p in (workdir / "stream" / "out" / "deadletter").rglob("*")
                                      if p.is_file() and not p.name.startswith((".", "_")))
    summary["skipped"] = skipped
    summary["input"] = {"kind": cams.kind, "video": str(videos[0].path), "model": str(cams.model)}
    print_summary(summary, say)
    out = args.summary_json or workdir / "summary.json"
    out.write_text(json.dumps(summary, indent=2))
    say(f"    (summary also in {out})")
    if failed:
        say(f"\nERROR: {failed}")
        return DemoError.exit_code
    return 0


def _settle(observer: Observer, devices: list[str], timeout: float = 15.0) -> None:
    """Before the flush heartbeat: wait until every stopped agent's final 'offline' status was seen on MQTT (what
    reaches the job after the flush would still be added to its window, as a revision)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with observer.lock:
            if all(observer.status.get(d) == "offline" for d in devices):
                break
        time.sleep(0.1)


def _drain(sup: Supervisor, observer: Observer | None, mqtt: MqttSettings, args, skipped_flink: bool) -> None:
    agents = [r.spec.name for r in sup.running if r.spec.name.startswith("agent-")]
    if not agents or observer is None:
        return
    say("==> stopping the agents (they drain their outboxes)")
    for name in agents:
        sup.stop(name)
    if skipped_flink:
        return
    _settle(observer, [name[len("agent-"):] for name in agents])
    _flush_windows(observer, mqtt)
    say("==> waiting for the job to aggregate every published detection")
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline:
        if observer.aggregated_events() >= observer.published_events():
            return
        time.sleep(0.5)
    say(f"    gave up after {args.drain_timeout:g} s: {observer.aggregated_events()} of "
        f"{observer.published_events()} detections aggregated")


def _main(args) -> int:
    if args.devices < 1:
        raise UsageError("--devices must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive (seconds)")
    if args.video_seconds is not None and not (args.synthetic or args.synthetic_if_missing):
        raise UsageError("--video-seconds sets the length of the generated videos: it goes with --synthetic (the "
                         "default input, vtest.avi, has its own length)")
    if args.video_seconds is None:
        args.video_seconds = 20.0
    elif args.video_seconds <= 0:
        raise UsageError("--video-seconds must be positive (seconds)")
    return run(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli("sigmawatch-demo", lambda: _main(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
