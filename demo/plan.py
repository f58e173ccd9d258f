"""What the demo starts: the broker choice, the stream/alert configs it writes, and the process list.

Pure planning, nothing is started here (``demo.cli`` runs the plan through ``demo.procs``).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

from demo.footage import DemoInput
from demo.procs import DemoError, ProcSpec
from edge.contract.mqtt import MqttSettings

ROOT = Path(__file__).resolve().parents[1]
# the job's own event-time settings (out-of-orderness, allowed lateness): a frame that reaches it late revises
# its window instead of being lost, so the demo needs no extra margin
WINDOW_S = 5.0


def importable(module: str) -> bool:
    """A component can be started when its module and the packages it needs import here (the stream job
    needs PyFlink: a machine set up with ``pip install '.[edge,dashboard]'`` runs the demo without it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def broker_spec(workdir: Path, port: int, kind: str = "auto") -> tuple[ProcSpec, str]:
    """mosquitto if installed, else the embedded pure-Python amqtt broker if importable, else a clear error."""
    from demo import broker as demo_broker  # noqa: PLC0415
    binary = demo_broker.find_mosquitto()
    if kind == "mosquitto" or (kind == "auto" and binary):
        if not binary:
            raise DemoError("mosquitto is not installed: sudo apt-get install mosquitto (or use --broker amqtt)")
        mosquitto = demo_broker.Mosquitto(workdir, port, log_to="stdout")
        mosquitto.write_conf()
        return ProcSpec("broker", mosquitto.argv, ready_port=port, ready_timeout_s=15, stop_grace_s=5), "mosquitto"
    if kind == "amqtt" and not demo_broker.available():
        raise DemoError("--broker amqtt: amqtt is not installed (.venv/bin/pip install amqtt)")
    if demo_broker.available():
        return ProcSpec("broker", [sys.executable, "-m", "demo.broker", "--port", str(port)],
                        ready_line="listening on", ready_timeout_s=30, stop_grace_s=5), "amqtt"
    raise DemoError("no MQTT broker: mosquitto is not installed and neither is the pure-Python fallback amqtt. "
                    "Install one (sudo apt-get install mosquitto -- `make setup` does this when run as root -- "
                    "or .venv/bin/pip install amqtt) and run the demo again")


def busy_min_count(cams: DemoInput, fps: float) -> int:
    """The crowd alert's threshold: ``busy_per_frame`` detections per processed frame over one window, at the
    agents' processing rate cap (or the video's own rate if lower); 15 per window for the synthetic scenes."""
    if cams.busy_per_frame is None:
        return 15
    rate = min(fps, min(v.fps for v in cams.videos))
    return max(1, round(cams.busy_per_frame * rate * WINDOW_S))


def write_stream_config(workdir: Path, mqtt: MqttSettings, busy_label: str = "*", busy_min: int = 15) -> Path:
    var = workdir / "stream"
    alerts = workdir / "alerts.yaml"
    alerts.write_text(yaml.safe_dump({"rules": [
        {"type": "class_count", "id": "busy-scene", "label": busy_label, "min_count": busy_min, "scope": "device",
         "severity": "info"},
        {"type": "uncertainty_spike", "id": "sigma-spike", "label": "*", "factor": 1.5, "history": 6,
         "min_history": 3, "min_detections": 3, "severity": "warning"},
        {"type": "device_silent", "id": "camera-silent", "after_s": 15.0, "severity": "critical"},
    ]}))
    cfg = {
        "mqtt": mqtt.model_dump(mode="json", exclude_defaults=True),
        "bridge": {"landing_dir": str(var / "landing"), "client_id": "sigmawatch-demo-bridge",
                   "consumed_dir": str(var / "out" / "consumed"),
                   **({"group": None} if mqtt.protocol == "3.1.1" else {})},  # amqtt: no shared subscriptions
        "job": {"landing_dir": str(var / "landing"), "output_dir": str(var / "out"),
                "checkpoint_dir": str(var / "checkpoints"), "checkpoint_interval_s": 2.0, "resume": False,
                "window": {"size_s": WINDOW_S},
                "alerts_file": str(alerts)},
    }
    path = workdir / "stream.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def plan(args, workdir: Path, port: int, cams: DemoInput) -> tuple[list[ProcSpec], list[str], MqttSettings]:
    """The processes to start, in order, a note for every component skipped, and how they reach the broker.
    Device ``cam-N`` plays ``cams.videos[N-1]`` (with the real footage every device plays the same file)."""
    py = sys.executable
    broker, kind = broker_spec(workdir, port, args.broker)
    mqtt = MqttSettings(host="127.0.0.1", port=port, protocol="3.1.1" if kind == "amqtt" else "5")  # amqtt: 3.1.1 only
    flags = ["--mqtt-host", mqtt.host, "--mqtt-port", str(mqtt.port), "--mqtt-protocol", mqtt.protocol]
    stream_yaml = write_stream_config(workdir, mqtt, cams.busy_label, busy_min_count(cams, args.fps))
    specs, skipped = [broker], []
    dash = [py, "-m", "dashboard", "--port", str(args.dashboard_port), *flags]
    if args.homeassistant:
        dash.append("--homeassistant")
    specs.append(ProcSpec("dashboard", dash, ready_line=r"dashboard: (http://\S+)", ready_timeout_s=20))
    if args.no_flink:
        skipped.append("stream-bridge + PyFlink job: skipped (--no-flink)")
    elif not importable("pyflink"):
        skipped.append("stream-bridge + PyFlink job: PyFlink is not installed (pip install '.[stream]') "
                       "-> no aggregates/alerts")
    else:
        specs.append(ProcSpec("bridge", [py, "-m", "stream.bridge", "--config", str(stream_yaml)],
                              ready_line=r"subscribed to", ready_timeout_s=30))
        # ready = its first completed checkpoint: the job is running and reading the landing directory, so
        # the agents start only then (a backlog read at start-up could come out of order and be late)
        specs.append(ProcSpec("flink-job", [py, "-m", "stream.job", "--config", str(stream_yaml)],
                              env={"PYTHONPATH": str(ROOT)},
                              ready_glob=str(workdir / "stream" / "checkpoints" / "*" / "chk-*" / "_metadata"),
                              ready_timeout_s=240, stop_grace_s=20))
    if not importable("ai_edge_litert") and not importable("tflite_runtime"):
        skipped.append("edge agents: no TFLite interpreter is installed (pip install '.[edge]')")
    elif not cams.model.is_file():
        skipped.append(f"edge agents: the demo detector {cams.model} is not there yet "
                       "(see edge/models/README.md for the command that makes it)")
    else:
        sets = [a for kv in cams.agent_sets for a in ("--set", kv)]
        for i, video in enumerate(cams.videos):
            dev = f"cam-{i + 1}"
            specs.append(ProcSpec(f"agent-{dev}", [
                py, "-m", "edge.cli", "run", "--device-id", dev, "--source", str(video.path), "--loop",
                "--model", str(cams.model), *flags, "--state-dir", str(workdir / "agents" / dev),
                "--fps", str(args.fps), "--threads", "1", "--set", "mqtt.metrics_interval_s=2",
                "--set", "watchdog=false", *sets], ready_line=r"running: model", ready_timeout_s=60, stop_grace_s=20))
    return specs, skipped, mqtt
