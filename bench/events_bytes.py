"""``python -m bench.events_bytes``: what ``tracking.publish: events_only`` saves on the link, per minute of video.

The real agent (``python -m edge.cli run``, a child process) plays the same OpenCV-written video like a camera
(real time, frames it cannot keep up with are dropped as on a device) against a real mosquitto on 127.0.0.1, once
with ``publish: both`` (per-frame detections with track ids + events + object counts) and once with
``events_only``, the runs interleaved (``--rounds``). A subscriber counts every byte on the device's detections,
events and objects topics as MQTT carries it (PUBLISH fixed header, topic, packet id, payload); status, metrics
and config messages are the same in both modes and left out. The JPEG figure is what sending the frames would
cost: every frame of the same video encoded at quality 90 (a typical MJPEG camera setting, as ``demo.video``),
per minute at the video's frame rate, and for the frames the agent processed (its last metrics message,
sent every 0.25 s, may miss the last few).

Default input: the real footage ``vtest.avi`` (pedestrians, 768x576, 10 fps) with the shipped distilled detector
when the real-data cache has it, else the synthetic demo scene with the shipped demo detector (``--video``,
``--model`` to choose). ``--seconds`` plays the first N seconds (a copy written with OpenCV, MJPG).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import yaml

from edge.contract.cli import ArgumentParser, run
from edge.contract.errors import ToolMissingError, UsageError

ROOT = Path(__file__).resolve().parents[1]
JPEG_QUALITY = 90
VTEST = Path.home() / ".cache" / "sigmawatch" / "real" / "video" / "vtest.avi"
VTEST_MODEL = ROOT / "edge" / "models" / "vtest-distilled-int8.tflite"
DEMO_MODEL = ROOT / "edge" / "models" / "demo-detector-int8.tflite"
TOPICS = ("detections", "events", "objects")


def mqtt_publish_bytes(topic: str, payload_len: int, qos: int) -> int:
    """Bytes of one PUBLISH packet on the wire (MQTT 3.1.1): fixed header + topic + packet id + payload."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + payload_len
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


def trim_video(src: Path, dest: Path, seconds: float | None) -> tuple[int, float, int, int, float]:
    """Copy the first ``seconds`` of ``src`` to ``dest`` (MJPG) and JPEG-encode every frame: returns (frames, fps,
    width, height, mean JPEG bytes per frame)."""
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise UsageError(f"OpenCV cannot read {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    limit = None if seconds is None else round(seconds * fps)
    writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    n, jpeg = 0, 0
    try:
        while limit is None or n < limit:
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(frame)
            jpeg += len(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1])
            n += 1
    finally:
        writer.release()
        cap.release()
    if n == 0:
        raise UsageError(f"{src} has no frames")
    return n, fps, w, h, jpeg / n


class Counter:
    """A paho subscriber adding up the bytes per topic kind of one device."""

    def __init__(self, host: str, port: int, prefix: str):
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion
        self.bytes = {k: 0 for k in TOPICS}
        self.messages = {k: 0 for k in TOPICS}
        self.processed: dict[str, int] = {}
        self.stages: dict[str, dict] = {}             # device -> the agent's per-stage latency (last metrics)
        self.lock = threading.Lock()
        ready = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-events-{os.getpid()}")
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(f"{prefix}/+/#", 1)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = self._on_message
        c.connect(host, port)
        c.loop_start()
        if not ready.wait(10):
            raise ToolMissingError("the benchmark's subscriber could not subscribe to the broker")
        self.client = c

    def _on_message(self, client, userdata, msg) -> None:
        device, kind = msg.topic.split("/")[-2], msg.topic.split("/")[-1]
        with self.lock:
            if kind in self.bytes:
                self.bytes[kind] += mqtt_publish_bytes(msg.topic, len(msg.payload), msg.qos)
                self.messages[kind] += 1
            elif kind == "metrics":
                metrics = json.loads(msg.payload)
                self.processed[device] = metrics["frames"]["processed"]
                self.stages[device] = metrics["latency_ms"].get("stages", {})

    def take(self) -> tuple[dict, dict, dict]:
        with self.lock:
            out = dict(self.bytes), dict(self.messages), dict(self.processed)
            self.bytes = {k: 0 for k in TOPICS}
            self.messages = {k: 0 for k in TOPICS}
            return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_agent(work: Path, broker, model: Path, video: Path, device: str, publish: str) -> float:
    """One agent run over the whole video (real time, stops at its end); returns the wall time."""
    cfg = {"device_id": device, "state_dir": str(work / f"state-{device}"), "log_level": "WARNING",
           "source": {"uri": str(video), "realtime": True, "exit_on_end": True},
           "model": {"path": str(model), "threads": 1},
           "mqtt": {"host": broker.host, "port": broker.port, "metrics_interval_s": 0.25},
           "settings": {"score_threshold": 0.3}, "tracking": {"publish": publish}, "watchdog": False}
    path = work / f"{device}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "run", "-c", str(path)], cwd=ROOT, check=False,
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the agent failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return time.monotonic() - t0


def build_parser():
    ap = ArgumentParser(prog="python -m bench.events_bytes", description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, help="video file (default: vtest.avi from the real-data cache, else the "
                                               "synthetic demo scene)")
    ap.add_argument("--model", type=Path, help="detector (default: the one shipped for that video)")
    ap.add_argument("--seconds", type=float, default=60.0, help="play the first N seconds of the video")
    ap.add_argument("--rounds", type=int, default=1, help="runs per mode, interleaved")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    return ap


def _main(args) -> int:
    from demo.broker import Mosquitto
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        work = Path(tmp)
        video, model = args.video, args.model
        if video is None and VTEST.is_file():
            video, model = VTEST, model or VTEST_MODEL
        elif video is None:
            from demo.video import write_demo_video
            video = write_demo_video(work / "demo.mp4", seed=3, width=640, height=480, seconds=args.seconds).path
        model = model or DEMO_MODEL
        clip = work / "clip.avi"
        frames, fps, w, h, jpeg_frame = trim_video(video, clip, args.seconds)
        minutes = frames / fps / 60.0
        print(f"video {video.name} {w}x{h} at {fps:g} fps, first {frames / fps:.1f} s ({frames} frames); model "
              f"{model.name}; MQTT bytes incl. framing on detections/events/objects")
        print(f"JPEG q{JPEG_QUALITY}: {jpeg_frame:,.0f} B per frame, {jpeg_frame * fps * 60:,.0f} B per minute "
              f"at {fps:g} fps")
        broker = Mosquitto(work / "broker").start()
        counter = Counter(broker.host, broker.port, "sigmawatch")
        rows = []
        try:
            for r in range(args.rounds):
                for publish in ("both", "events_only"):
                    device = f"cam-{publish.replace('_', '-')}-{r}"
                    wall = run_agent(work, broker, model, clip, device, publish)
                    time.sleep(1.0)              # the last messages reach the subscriber
                    b, m, processed = counter.take()
                    rows.append({"publish": publish, "round": r, "wall_s": wall, "bytes": b, "messages": m,
                                 "processed": processed.get(device, 0), "stages": counter.stages.get(device, {})})
        finally:
            counter.close()
            broker.stop()
    print(f"{'mode':<12} {'frames':>7} {'det msgs':>9} {'det B':>10} {'events':>7} {'event B':>9} {'counts':>7} "
          f"{'count B':>8} {'B/min':>10} {'vs JPEG all':>12} {'vs JPEG processed':>18}")
    for row in rows:
        b, m, n = row["bytes"], row["messages"], row["processed"]
        per_min = sum(b.values()) / minutes
        row["bytes_per_minute"] = per_min
        row["jpeg_per_minute_all"] = jpeg_frame * fps * 60
        row["jpeg_per_minute_processed"] = jpeg_frame * n / minutes
        print(f"{row['publish']:<12} {n:>7} {m['detections']:>9} {b['detections']:>10,} {m['events']:>7} "
              f"{b['events']:>9,} {m['objects']:>7} {b['objects']:>8,} {per_min:>10,.0f} "
              f"{'1/%.0f' % (row['jpeg_per_minute_all'] / max(per_min, 1)):>12} "
              f"{'1/%.0f' % (row['jpeg_per_minute_processed'] / max(per_min, 1)):>18}")
    for row in rows:
        st = row["stages"]
        if "tracking" in st and "inference" in st:
            print(f"{row['publish']:<12} agent per frame p50 (its metrics): invoke {st['inference']['p50']:.2f} ms, "
                  f"tracker + zones/lines + events {st['tracking']['p50']:.2f} ms "
                  f"({st['tracking']['p50'] / max(st['inference']['p50'], 1e-9):.0%} of the invoke)")
    both = [r["bytes_per_minute"] for r in rows if r["publish"] == "both"]
    only = [r["bytes_per_minute"] for r in rows if r["publish"] == "events_only"]
    print(f"events_only / both: {sum(only) / max(sum(both), 1):.3f} of the bytes "
          f"({sum(both) / max(sum(only), 1):.1f}x fewer)")
    if args.json:
        args.json.write_text(json.dumps({"video": str(video), "model": str(model), "frames": frames, "fps": fps,
                                         "jpeg_bytes_per_frame": jpeg_frame, "runs": rows}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run("bench.events_bytes", lambda: _main(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
