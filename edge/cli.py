"""``edge-agent`` command line: ``run`` (the service), ``check`` (config, model, source, broker), ``bench``.

Errors map to exit codes in one place (``main``); see ``edge.contract.errors`` for the table.
"""
from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from edge import __version__
from edge.contract.access import explain, username
from edge.contract.cli import ArgumentParser, add_mqtt_arguments, mqtt_overrides, run
from edge.contract.errors import BrokerError, ConfigError, SigmawatchError, SourceError

log = logging.getLogger("edge")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="YAML config (see configs/edge-agent.example.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set settings.score_threshold=0.4 (repeatable)")
    p.add_argument("--device-id", help="override device_id")
    p.add_argument("--source", help="override source.uri (camera index, /dev/videoN, file, rtsp://..., picamera2)")
    p.add_argument("--loop", action="store_true", default=None, help="video file: loop (source.loop)")
    p.add_argument("--model", help="override model.path")
    p.add_argument("--device", help="override model.device: cpu, edgetpu, usb, usb:N, pci, pci:N")
    p.add_argument("--threads", type=int, help="override model.threads")
    p.add_argument("--state-dir", help="override state_dir (outbox and sequence numbers)")
    p.add_argument("--fps", type=float, help="override settings.fps (processing rate cap)")
    p.add_argument("--score-threshold", type=float, help="override settings.score_threshold")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override log_level")
    add_mqtt_arguments(p)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from edge.config import parse_override
    out: dict[str, Any] = {}
    for text in args.overrides:
        key, value = parse_override(text)
        out[key] = value
    simple = {"device_id": args.device_id, "source.uri": args.source, "source.loop": args.loop,
              "model.path": args.model, "model.device": args.device, "model.threads": args.threads,
              "state_dir": args.state_dir, "settings.fps": args.fps,
              "settings.score_threshold": args.score_threshold, "log_level": args.log_level}
    out.update({k: v for k, v in simple.items() if v is not None})
    for key, value in mqtt_overrides(args).items():
        if key == "tls":
            out["mqtt.tls"] = value          # merged into the config's tls mapping
        else:
            out[f"mqtt.{key}"] = value
    return out


def load_config(args: argparse.Namespace):
    from edge.config import load
    return load(args.config, overrides_from_args(args))


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    logging.getLogger().setLevel(cfg.log_level)
    from edge.agent import Agent
    return Agent(cfg).run()


def cmd_check(args: argparse.Namespace) -> int:
    """Validate each part and print one line per check; exit with the first failure's code."""
    cfg = load_config(args)
    print(f"ok    config: device {cfg.device_id}, state dir {cfg.state_dir}")
    first: SigmawatchError | None = None

    def fail(what: str, exc: SigmawatchError) -> None:
        nonlocal first
        print(f"FAIL  {what}: {exc}")
        first = first or exc

    from edge.engine import Engine
    try:
        engine = Engine(cfg.model, cfg.settings)
        d = engine.describe()
        print(f"ok    model: {d['id']} ({d['task']}, input {d['input']}, {d['labels']} labels) "
              f"on {engine.interpreter_name}")
    except SigmawatchError as exc:
        fail("model", exc)
    else:
        _check_tracking(cfg, engine, fail)
    try:
        print(f"ok    outbox: {inspect_outbox(cfg.outbox_path)}")
    except ConfigError as exc:
        fail("outbox", exc)
    from edge.sources import probe
    try:
        w, h = probe(cfg.source)
        print(f"ok    source: {cfg.source.uri} delivers {w}x{h} frames")
    except SourceError as exc:
        fail("source", exc)
    from edge.contract.mqtt import check_broker
    try:
        check_broker(cfg.mqtt, (cfg.mqtt.client_id or f"edge-{cfg.device_id}") + "-check", timeout=args.timeout)
        print(f"ok    broker: {cfg.mqtt.url} accepted the connection")
    except BrokerError as exc:
        fail("broker", exc)
    except ConfigError as exc:
        fail("broker credentials", exc)
    if first is None:
        print("all checks passed")
        return 0
    return first.exit_code


def _check_tracking(cfg, engine, fail) -> None:
    t = cfg.tracking
    if not t.enabled:
        print("ok    tracking: off")
        return
    from edge.objects import check_model
    try:
        check_model(t, engine.task, engine.labels)
    except ConfigError as exc:
        fail("tracking", exc)
        return
    if engine.task != "detection":
        print(f"ok    tracking: not used ({engine.task} model)")
        return
    print(f"ok    tracking: {len(t.zones)} zone(s), {len(t.lines)} line(s), publishing "
          f"{'events only' if t.publish == 'events_only' else 'detections with track ids and events'}")


def inspect_outbox(path: Path) -> str:
    """What ``check`` says about the outbox, without creating it (the service creates it on its first run):
    the messages waiting in an existing one, or that its folder lets this user create it. ConfigError if not."""
    path = Path(path)
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            raise ConfigError(explain(path if not os.access(path, os.R_OK | os.W_OK) else path.parent,
                                      "the outbox", os.R_OK | os.W_OK) + " (systemd: StateDirectory=edge-agent)")
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
            try:
                depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                next_seq = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"outbox {path} exists but cannot be read as the agent's database ({exc}); "
                              "move it away to start a new one") from None
        return f"{path} ({depth} messages waiting, next seq {next_seq})"
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        me = username()
        raise ConfigError(f"the outbox {path} cannot be created: {folder} is not a folder user {me} may write to. "
                          f"The service gets {path.parent} from systemd (StateDirectory=edge-agent); to run the agent "
                          f"by hand create it: sudo install -d -o {me} -g {me} -m 0700 {path.parent}")
    return f"{path} does not exist yet; the agent creates it in {folder} on its first run"


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.bench import run_bench
    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="edge-agent", description="camera -> int8 TFLite -> detections with "
                                     "uncertainty over MQTT")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the agent (the systemd service)")
    _common(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check", help="validate config, model, camera and broker, then exit")
    _common(p)
    p.add_argument("--timeout", type=float, default=5.0, help="broker connection timeout in seconds")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("bench", help="interpreter-only vs full-pipeline FPS, stage latencies, CPU, RSS, bytes")
    p.add_argument("--model", required=True, help=".tflite model exported by convert-model")
    p.add_argument("--video", required=True, help="video file used as the camera")
    p.add_argument("--from-image", help="first write --video as a 640x480 pan across this photo (if it does not exist)")
    p.add_argument("--frames", type=int, default=200, help="frames to process in each measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternating interpreter/pipeline rounds (medians reported)")
    p.add_argument("--device", default="cpu", help="cpu, edgetpu, usb, usb:N, pci")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads")
    p.add_argument("--score-threshold", type=float, default=0.25)
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    add_mqtt_arguments(p)     # --mqtt-host: publish through this broker (default: the outbox only)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def body() -> int:
        args = build_parser().parse_args(argv)
        try:
            return args.func(args)
        except PermissionError as exc:     # a file of the installation this (service) user may not read
            if not exc.filename:
                raise
            raise ConfigError(explain(exc.filename, "file")) from None
    return run("edge-agent", body)


if __name__ == "__main__":
    sys.exit(main())
