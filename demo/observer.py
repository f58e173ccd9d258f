"""The demo's own MQTT subscriber: counts what flows through the chain and computes the summary.

Subscribes to everything under the prefix before the agents start, so it sees every detections message
(QoS 1) and every stream output. Figures:

- frames processed: the agents' own counters (latest metrics message per device), at least the number
  of detections messages (one per processed frame that had something to report);
- detections published: detections messages (distinct ``(device, seq)``) and the detections inside them;
- bytes: payload bytes of the detections messages vs the JPEG frames they stand in for
  (frames processed x mean JPEG size of the camera video);
- events aggregated: sum of ``detections`` over distinct per-device aggregate windows (by payload id);
- alerts: alert transitions and the alerts firing at the end;
- latency: capture -> detections message received (edge + broker), capture -> aggregate received
  (the newest detection of that device and class inside the window, to the window's result), and window end ->
  the window's first result received (the first aggregate of any device and class for that window).
"""
from __future__ import annotations

import bisect
import json
import statistics
import threading
import time
from collections import defaultdict

from edge.contract import outputs, schema
from edge.contract.mqtt import MqttClient, MqttSettings


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


class Observer:
    def __init__(self, settings: MqttSettings):
        self.prefix = prefix = settings.topic_prefix
        self.lock = threading.Lock()
        self.seqs: dict[str, set[int]] = defaultdict(set)
        self.duplicates = 0
        self.detections = 0
        self.detection_bytes = 0
        self.per_class: dict[str, int] = defaultdict(int)
        self.det_ts: dict[tuple[str, str], list[float]] = defaultdict(list)  # (device, label) -> capture ts
        self.publish_latency: list[float] = []
        self.metrics: dict[str, dict] = {}
        self.status: dict[str, str] = {}
        self.aggregates: dict[str, dict] = {}
        self.agg_latency: list[float] = []
        self.window_first: dict[float, float] = {}  # window_end -> its first aggregate's arrival - window_end
        self.alerts: dict[str, dict] = {}
        self.alert_transitions = 0
        self.stats: dict[str, dict] = {}  # id -> job counters of one processing-time window
        self.invalid: list[str] = []
        self.client = MqttClient(settings, client_id=f"sigmawatch-demo-observer-{settings.port}", on_message=self._on_message,
                                 subscriptions=[(f"{prefix}/+/detections", 1), (f"{prefix}/+/metrics", 0),
                                                (f"{prefix}/+/status", 1),
                                                *[(t, 1) for t in outputs.subscriptions(prefix)]]).start()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Returns once connected *and* subscribed (SUBACK received), so nothing published after it is missed;
        BrokerError otherwise."""
        self.client.wait_ready(timeout)

    def close(self) -> None:
        self.client.stop()

    def _on_message(self, msg) -> None:
        now = time.time()
        with self.lock:
            try:
                if msg.topic.startswith(f"{self.prefix}/agg/") or msg.topic.startswith(f"{self.prefix}/alerts/"):
                    self._output(msg.topic, json.loads(msg.payload), now)
                else:
                    self._device(msg.topic, msg.payload, now)
            except (ValueError, KeyError, schema.SchemaError, outputs.PayloadError) as exc:
                self.invalid.append(f"{msg.topic}: {exc}")

    def _device(self, topic: str, payload: bytes, now: float) -> None:
        device, kind = schema.parse_topic(self.prefix, topic)
        body = schema.decode(payload, kind) if kind in ("detections", "metrics", "status") else None
        if kind == "detections":
            if body["seq"] in self.seqs[device]:
                self.duplicates += 1
                return
            self.seqs[device].add(body["seq"])
            self.detections += len(body["detections"])
            self.detection_bytes += len(payload)
            self.publish_latency.append(now - body["ts"])
            for det in body["detections"]:
                self.per_class[det["label"]] += 1
                bisect.insort(self.det_ts[(device, det["label"])], body["ts"])
        elif kind == "metrics":
            self.metrics[device] = body
        elif kind == "status":
            self.status[device] = body["state"]

    def _output(self, topic: str, body: dict, now: float) -> None:
        where = outputs.parse_output_topic(self.prefix, topic)
        outputs.validate(body, where["kind"])
        if where["kind"] == "aggregate":
            if body["id"] not in self.aggregates:
                self.window_first.setdefault(body["window_end"], now - body["window_end"])
                ts = self.det_ts.get((body["device"], body["label"]), [])
                i = bisect.bisect_left(ts, body["window_end"])
                if i > 0 and ts[i - 1] >= body["window_start"]:
                    self.agg_latency.append(now - ts[i - 1])
            if body["revision"] >= self.aggregates.get(body["id"], body)["revision"]:   # revisions replace by id
                self.aggregates[body["id"]] = body
        elif where["kind"] == "alert":
            self.alerts[body["id"]] = body
            self.alert_transitions += 1
        elif where["kind"] == "stats":
            self.stats[body["id"]] = body

    # ------------------------------------------------------------------ figures
    def aggregated_events(self) -> int:
        with self.lock:
            return sum(a["detections"] for a in self.aggregates.values())

    def published_events(self) -> int:
        with self.lock:
            return self.detections

    def recount_mismatches(self, window_s: float) -> dict[str, list]:
        """Every (device, class, tumbling window) the detections fall into, counted here from the published
        messages, against the job's aggregates: ``{"missing": [...], "extra": [...], "wrong": [...]}``."""
        size_ms = int(round(window_s * 1000))
        expected: dict[tuple[str, str, int], int] = defaultdict(int)
        with self.lock:
            for (device, label), stamps in self.det_ts.items():
                for ts in stamps:
                    ms = int(ts * 1000)  # the job: CAST(ts * 1000 AS BIGINT), truncating
                    expected[(device, label, ms - ms % size_ms)] += 1
            actual = {(a["device"], a["label"], int(round(a["window_start"] * 1000))): a["detections"]
                      for a in self.aggregates.values()}
        self.last_recount = {"expected": {f"{d}/{lab}/{w}": n for (d, lab, w), n in sorted(expected.items())},
                             "actual": {f"{d}/{lab}/{w}": n for (d, lab, w), n in sorted(actual.items())}}
        return {"missing": sorted(k for k in expected if k not in actual),
                "extra": sorted(k for k in actual if k not in expected),
                "wrong": sorted((k, expected[k], actual[k]) for k in expected if k in actual and actual[k] != expected[k])}

    def summary(self, mean_jpeg_bytes: float) -> dict:
        with self.lock:
            # every detections message stands for one processed frame, and the agents' counters arrive
            # only every few seconds: per device, the larger of the two is a lower bound of frames processed
            frames = sum(max(self.metrics[d]["frames"]["processed"] if d in self.metrics else 0, len(self.seqs.get(d, ())))
                         for d in set(self.metrics) | set(self.seqs))
            dropped = sum(m["frames"]["dropped"] for m in self.metrics.values())
            messages = sum(len(s) for s in self.seqs.values())
            jpeg = frames * mean_jpeg_bytes
            agg_by_class: dict[str, int] = defaultdict(int)
            for a in self.aggregates.values():
                agg_by_class[a["label"]] += a["detections"]

            def lat(values):
                return {"p50_s": _pct(values, 0.5), "p95_s": _pct(values, 0.95), "p99_s": _pct(values, 0.99),
                        "max_s": max(values, default=None), "n": len(values),
                        "mean_s": statistics.fmean(values) if values else None}
            return {
                "devices": sorted(set(self.seqs) | set(self.metrics)),
                "frames_processed": frames, "frames_dropped": dropped,
                "detection_messages": messages, "duplicate_messages": self.duplicates,
                "detections_published": self.detections, "detections_by_class": dict(self.per_class),
                "bytes_sent": self.detection_bytes, "jpeg_bytes_replaced": round(jpeg),
                "bytes_ratio": (self.detection_bytes / jpeg) if jpeg else None,
                "aggregate_windows": len(self.aggregates), "events_aggregated": sum(agg_by_class.values()),
                "aggregated_by_class": dict(agg_by_class),
                "alert_transitions": self.alert_transitions,
                "alerts_firing": sorted(a["id"] for a in self.alerts.values() if a["state"] == "firing"),
                "late_events": sum(x["late"] for x in self.stats.values()),
                "latency_capture_to_mqtt": lat(self.publish_latency),
                "latency_capture_to_aggregate": lat(self.agg_latency),
                "latency_window_end_to_aggregate": lat(list(self.window_first.values())),
                "invalid": list(self.invalid[-5:]),
            }
