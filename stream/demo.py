"""``sigmawatch-demo`` (``make demo``): the whole chain on this machine, then a summary.

    broker (mosquitto on 127.0.0.1) -> N edge agents (own device ids, generated videos, shipped int8
    detector) -> stream-bridge -> PyFlink job (mini-cluster) -> aggregates/alerts on MQTT -> dashboard

Runs until Ctrl-C or ``--duration`` seconds, then stops the agents, lets the job aggregate what they
sent, stops everything by process group and prints what went through: frames, detections, bytes vs
JPEG, events aggregated, alerts, latency. A component that is not in the tree yet is skipped with a
message saying so. Every process is ours, started here, stopped here; all listen on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import yaml

from stream.demo_observer import Observer
from stream.demo_procs import DemoError, ProcSpec, Supervisor, free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "edge" / "models" / "demo-detector-int8.tflite"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
WINDOW_S, OUT_OF_ORDER_S = 5.0, 2.0


def say(msg: str = "") -> None:
    try:
        print(msg, flush=True)
    except (BrokenPipeError, OSError):  # the terminal or pipe went away: keep going, still stop everything
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigmawatch-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--devices", type=int, default=2, help="edge agents to run (default 2)")
    p.add_argument("--fps", type=float, default=4.0, help="processing rate cap per agent (default 4)")
    p.add_argument("--video-seconds", type=float, default=20.0, help="length of each generated video (it loops)")
    p.add_argument("--workdir", type=Path, default=ROOT / "build" / "demo", help="logs, videos, state (default build/demo)")
    p.add_argument("--dashboard-port", type=int, default=8050, help="dashboard HTTP port on 127.0.0.1 (0 = any free)")
    p.add_argument("--mqtt-port", type=int, default=0, help="broker port on 127.0.0.1 (default: a free port)")
    p.add_argument("--model", type=Path, default=MODEL, help="detector the agents run (default: the shipped demo model)")
    p.add_argument("--broker", choices=["auto", "mosquitto", "amqtt"], default="auto",
                   help="auto: mosquitto if installed, else the pure-Python amqtt (if installed)")
    p.add_argument("--no-flink", action="store_true", help="skip the PyFlink job (and the bridge)")
    p.add_argument("--drain-timeout", type=float, default=40.0,
                   help="after stopping the agents, wait at most this long for the job to aggregate everything")
    p.add_argument("--homeassistant", action="store_true", help="dashboard also publishes Home Assistant discovery")
    p.add_argument("--screenshot", type=Path, help="save a headless-Chromium screenshot of the dashboard before stopping")
    p.add_argument("--check-dashboard", action="store_true",
                   help="read the dashboard's figures in headless Chromium at the end (in the summary JSON)")
    p.add_argument("--summary-json", type=Path, help="also write the summary here (default <workdir>/summary.json)")
    return p


# ---------------------------------------------------------------------------------------------- plan
def in_tree(rel: str) -> bool:
    """A component is there when its file exists and, in a git checkout, is committed (work in progress
    by someone else in the same tree is not started)."""
    path = ROOT / rel
    if not path.is_file():
        return False
    if os.environ.get("SIGMAWATCH_DEMO_UNCOMMITTED") == "1":  # developers trying a component before committing it
        return True
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        return True
    import subprocess  # noqa: PLC0415
    return subprocess.run(["git", "-C", str(ROOT), "ls-files", "--error-unmatch", rel],
                          capture_output=True).returncode == 0


def broker_spec(workdir: Path, port: int, kind: str = "auto") -> tuple[ProcSpec, str]:
    """mosquitto if installed, else the embedded pure-Python amqtt broker if importable, else a clear error."""
    from stream import demo_broker  # noqa: PLC0415
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if kind == "mosquitto" or (kind == "auto" and binary):
        if not binary:
            raise DemoError("mosquitto is not installed: sudo apt-get install mosquitto (or use --broker amqtt)")
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\n"
                        "max_queued_messages 100000\nmax_inflight_messages 100\n"
                        + ("user root\n" if os.geteuid() == 0 else ""))
        return ProcSpec("broker", [binary, "-c", str(conf)], ready_port=port, ready_timeout_s=15,
                        stop_grace_s=5), "mosquitto"
    if kind == "amqtt" and not demo_broker.available():
        raise DemoError("--broker amqtt: amqtt is not installed (.venv/bin/pip install amqtt)")
    if demo_broker.available():
        return ProcSpec("broker", [sys.executable, "-m", "stream.demo_broker", "--port", str(port)],
                        ready_line="listening on", ready_timeout_s=30, stop_grace_s=5), "amqtt"
    raise DemoError("no MQTT broker: mosquitto is not installed and neither is the pure-Python fallback amqtt. "
                    "Install one (sudo apt-get install mosquitto -- `make setup` does this when run as root -- "
                    "or .venv/bin/pip install amqtt) and run the demo again")


def write_stream_config(workdir: Path, port: int, mqtt311: bool = False) -> Path:
    var = workdir / "stream"
    alerts = workdir / "alerts.yaml"
    alerts.write_text(yaml.safe_dump({"rules": [
        {"type": "class_count", "id": "busy-scene", "label": "*", "min_count": 12, "scope": "device",
         "severity": "info"},
        {"type": "uncertainty_spike", "id": "sigma-spike", "label": "*", "factor": 1.5, "history": 6,
         "min_history": 3, "min_detections": 3, "severity": "warning"},
        {"type": "device_silent", "id": "camera-silent", "after_s": 15.0, "severity": "critical"},
    ]}))
    cfg = {
        "mqtt": {"host": "127.0.0.1", "port": port, "prefix": "sigmawatch", "protocol": "3.1.1" if mqtt311 else "5"},
        "bridge": {"landing_dir": str(var / "landing"), "client_id": "sigmawatch-demo-bridge",
                   "consumed_dir": str(var / "out" / "consumed"),
                   **({"group": None} if mqtt311 else {})},  # amqtt: MQTT 3.1.1, no shared subscriptions
        "job": {"landing_dir": str(var / "landing"), "output_dir": str(var / "out"),
                "checkpoint_dir": str(var / "checkpoints"), "checkpoint_interval_s": 2.0, "resume": False,
                "window": {"size_s": WINDOW_S}, "out_of_orderness_s": OUT_OF_ORDER_S,
                "alerts_file": str(alerts)},
    }
    path = workdir / "stream.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def plan(args, workdir: Path, port: int, videos: list) -> tuple[list[ProcSpec], list[str]]:
    """The processes to start, in order, and a note for every component skipped."""
    py = sys.executable
    broker, kind = broker_spec(workdir, port, args.broker)
    stream_yaml = write_stream_config(workdir, port, mqtt311=kind == "amqtt")
    specs, skipped = [broker], []
    dash = [py, "-m", "stream.dashboard", "--port", str(args.dashboard_port), "--mqtt-port", str(port)]
    if args.homeassistant:
        dash.append("--homeassistant")
    specs.append(ProcSpec("dashboard", dash, ready_line=r"dashboard: (http://\S+)", ready_timeout_s=20))
    have_job = in_tree("stream/job.py")
    if args.no_flink:
        skipped.append("stream-bridge + PyFlink job: skipped (--no-flink)")
    elif not have_job:
        skipped.append("PyFlink job: stream/job.py is not in the tree yet -> no aggregates/alerts "
                       "(bridge skipped too)")
    else:
        specs.append(ProcSpec("bridge", [py, "-m", "stream.bridge", "--config", str(stream_yaml)],
                              ready_line=r"subscribing", ready_timeout_s=30))
        # ready = its first completed checkpoint: the job is running and reading the landing directory, so
        # the agents start only then (a backlog read at start-up could come out of order and be late)
        specs.append(ProcSpec("flink-job", [py, "-m", "stream.job", "--config", str(stream_yaml)],
                              env={"PYTHONPATH": str(ROOT)},
                              ready_glob=str(workdir / "stream" / "checkpoints" / "*" / "chk-*" / "_metadata"),
                              ready_timeout_s=240, stop_grace_s=20))
    if not in_tree("edge/cli.py"):
        skipped.append("edge agents: edge/cli.py is not in the tree yet")
    elif not args.model.is_file():
        skipped.append(f"edge agents: the demo detector {args.model} is not there yet "
                       "(see edge/models/README.md for the command that makes it)")
    else:
        for i, video in enumerate(videos):
            dev = f"cam-{i + 1}"
            specs.append(ProcSpec(f"agent-{dev}", [
                py, "-m", "edge.cli", "run", "--device-id", dev, "--source", str(video.path), "--loop",
                "--model", str(args.model), "--broker", f"127.0.0.1:{port}", "--state-dir", str(workdir / "agents" / dev),
                "--fps", str(args.fps), "--threads", "1", "--set", "mqtt.metrics_interval_s=2",
                "--set", "watchdog=false"], ready_line=r"running: model", ready_timeout_s=60, stop_grace_s=20))
    return specs, skipped


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


def _flush_windows(observer: Observer, port: int) -> None:
    """After the agents stop, one metrics heartbeat whose ts is past every window closes them in the job
    (an event-time window closes only when newer events arrive)."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415

    from edge import schema  # noqa: PLC0415
    with observer.lock:
        if not observer.metrics:
            return
        device, last = sorted(observer.metrics.items())[0]
        newest = max((ts[-1] for ts in observer.det_ts.values() if ts), default=last["ts"])
    beat = {**last, "ts": max(newest, last["ts"]) + 2 * WINDOW_S + OUT_OF_ORDER_S + 1}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sigmawatch-demo-flush")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(schema.topic("sigmawatch", device, "metrics"), schema.encode(schema.validate(beat, "metrics")),
                   qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def run(args) -> int:
    workdir = args.workdir.resolve()
    _fresh_workdir(workdir)
    port = args.mqtt_port or free_port()
    if args.dashboard_port and not _port_free(args.dashboard_port):
        say(f"--> port {args.dashboard_port} is in use: the dashboard takes a free port instead (--dashboard-port)")
        args.dashboard_port = 0
    say(f"==> sigmawatch demo in {workdir}")
    from stream.demo_video import write_demo_video  # noqa: PLC0415
    say(f"==> generating {args.devices} camera videos of the synthetic classes")
    videos = [write_demo_video(workdir / "videos" / f"cam-{i + 1}.mp4", seed=101 + i,
                               seconds=args.video_seconds) for i in range(args.devices)]
    mean_jpeg = sum(v.mean_jpeg_bytes for v in videos) / len(videos)
    for v in videos:
        say(f"    {v.path.name}: {v.width}x{v.height}, {v.frames} frames at {v.fps:g} fps, "
            f"mean JPEG (q90) {v.mean_jpeg_bytes / 1024:.1f} KiB/frame")
    specs, skipped = plan(args, workdir, port, videos)
    sup = Supervisor(workdir / "logs", say)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    observer = None
    failed = None
    dashboard_url = None
    dashboard_seen = None
    try:
        for spec in specs:
            if stop.is_set():
                break
            say(f"==> starting {spec.name}" + (" (JVM + mini-cluster; ready at its first checkpoint, "
                                                "can take a minute)" if spec.name == "flink-job" else ""))
            running = sup.start(spec)
            if spec.name == "broker":  # subscribe before anything publishes
                observer = Observer("127.0.0.1", port)
                if not observer.wait_connected(10):
                    raise DemoError("the demo's observer could not connect to the broker")
            if spec.name == "dashboard":
                dashboard_url = running.ready_match.group(1)
                say(f"    dashboard is up: {dashboard_url}")
        for note in skipped:
            say(f"--> {note}")
        say("")
        say(f"    Dashboard:  {dashboard_url}")
        say(f"    MQTT:       mqtt://127.0.0.1:{port}   (mosquitto_sub -p {port} -t 'sigmawatch/#' -v)")
        say(f"    Logs:       {sup.log_dir}/")
        say(f"    Stop with Ctrl-C" + (f" (or it stops after {args.duration:g} s)" if args.duration else ""))
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
            _drain(sup, observer, port, args, skipped_flink=not any(s.name == "flink-job" for s in specs))
            if (args.screenshot or args.check_dashboard) and dashboard_url:
                dashboard_seen = _dashboard_check(dashboard_url, args.screenshot)
    except DemoError as exc:
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
    summary["dashboard"] = dashboard_seen
    summary["skipped"] = skipped
    _print_summary(summary)
    out = args.summary_json or workdir / "summary.json"
    out.write_text(json.dumps(summary, indent=2))
    say(f"    (summary also in {out})")
    if failed:
        say(f"\nERROR: {failed}")
        return EXIT_FAILED
    return EXIT_OK


def _drain(sup: Supervisor, observer: Observer | None, port: int, args, skipped_flink: bool) -> None:
    agents = [r.spec.name for r in sup.running if r.spec.name.startswith("agent-")]
    if not agents or observer is None:
        return
    say("==> stopping the agents (they drain their outboxes)")
    for name in agents:
        sup.stop(name)
    if skipped_flink:
        return
    _flush_windows(observer, port)
    say("==> waiting for the job to aggregate every published detection")
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline:
        if observer.aggregated_events() >= observer.published_events():
            return
        time.sleep(0.5)
    say(f"    gave up after {args.drain_timeout:g} s: {observer.aggregated_events()} of "
        f"{observer.published_events()} detections aggregated")


DOM_FIGURES = """(() => {
  const num = (sel) => Number((document.querySelector(sel) || {}).textContent);
  const rows = [...document.querySelectorAll('#devices tbody tr')].map((tr) => ({
    device: tr.dataset.device, state: tr.querySelector('td.state').textContent,
    detections: tr.querySelector('td.detections').textContent}));
  return {detections: num('#count-detections'), aggregated_events: num('#count-aggregated-events'),
          aggregates: num('#count-aggregates'), alerts_firing: num('#count-alerts'), devices: rows,
          live_canvases: document.querySelectorAll('.cam canvas').length};
})()"""


def _dashboard_check(url: str, screenshot: Path | None) -> dict | None:
    """Load the dashboard in headless Chromium, read the figures it shows, optionally save a screenshot."""
    from stream.demo_browser import BrowserError, HeadlessChromium  # noqa: PLC0415
    try:
        with HeadlessChromium() as browser:
            browser.goto(url)
            browser.wait_for("document.querySelector('#stream').textContent.startsWith('page: live')", timeout=20)
            time.sleep(1.0)  # the snapshot is rendered within 100 ms; leave room for the charts
            seen = browser.evaluate(DOM_FIGURES)
            if screenshot:
                browser.screenshot(screenshot)
                say(f"    dashboard screenshot: {screenshot}")
        say(f"    dashboard shows {seen['detections']} detections, {seen['aggregated_events']} aggregated")
        return seen
    except BrowserError as exc:
        say(f"--> could not check the dashboard in Chromium: {exc}")
        return None


def _fmt_lat(d: dict) -> str:
    if not d or not d.get("n"):
        return "n/a"
    return f"p50 {d['p50_s'] * 1000:.0f} ms, p95 {d['p95_s'] * 1000:.0f} ms (n={d['n']})"


def _print_summary(s: dict) -> None:
    if not s.get("devices") and not s.get("frames_processed"):
        say("\nSummary: nothing flowed (no agent ran).")
        return
    ratio = s.get("bytes_ratio")
    say("\n================ sigmawatch demo summary ================")
    say(f"devices                  {', '.join(s['devices'])}")
    say(f"frames processed         {s['frames_processed']} (dropped by the agents: {s['frames_dropped']})")
    say(f"detections published     {s['detections_published']} in {s['detection_messages']} messages "
        f"{json.dumps(s['detections_by_class'])}")
    say(f"bytes sent               {s['bytes_sent']:,} B of detections+sigma vs {s['jpeg_bytes_replaced']:,} B "
        f"of JPEG frames" + (f" ({ratio * 100:.2f} %, {1 / ratio:.0f}x less)" if ratio else ""))
    say(f"events aggregated        {s['events_aggregated']} in {s['aggregate_windows']} windows "
        f"{json.dumps(s['aggregated_by_class'])}")
    say(f"alerts                   {s['alert_transitions']} transitions, firing at the end: "
        f"{', '.join(s['alerts_firing']) or 'none'}")
    if s.get("recount") is not None:
        bad = sum(len(v) for v in s["recount"].values())
        say(f"exactly-once check       " + ("every (device, class, window) count matches the published detections"
                                            if not bad else f"{bad} mismatching windows: {json.dumps(s['recount'])[:300]}"))
    if s.get("dead_letters") is not None:
        say(f"dead letters / late      {s['dead_letters']} / {s['late_events']}")
    say(f"latency capture->MQTT    {_fmt_lat(s['latency_capture_to_mqtt'])}")
    say(f"latency capture->window result {_fmt_lat(s['latency_capture_to_aggregate'])}")
    say(f"  (window end->result    {_fmt_lat(s['latency_window_end_to_aggregate'])})")
    say("=========================================================")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.devices < 1:
        print("sigmawatch-demo: error: --devices must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.duration is not None and args.duration <= 0:
        print("sigmawatch-demo: error: --duration must be positive (seconds)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except DemoError as exc:
        print(f"sigmawatch-demo: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
