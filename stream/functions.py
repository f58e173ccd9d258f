"""The Python operators of the job. They only see the rows windows produce (and rejects), never every event.

- :class:`ToPayload` turns a union output row (``stream.sql.OUTPUT_COLUMNS``) into JSON lines tagged with
  their destination: a ``edge.contract.outputs`` payload (aggregate, fleet, health, stats), a dead-letter record, or
  a consumption record plus an activity record (one "consumed" row per landing file and device).
- :class:`WindowAlerts` (keyed by ``<device|_fleet>/<class>``) runs ``class_count``/``uncertainty_spike``
  rules, with an event-time timer at the end of the next window to clear alerts of keys that went quiet.
- :class:`SilenceAlerts` (keyed by device) runs ``device_silent`` with processing-time timers.
- :class:`DeviceWindows` / :class:`FleetWindows` (keyed by window) make the window results and publish them to MQTT
  themselves as they make them (``stream.publish``); :class:`MqttPublish` publishes the other payloads (stats,
  alerts). Both QoS 1 retained; their paho clients live in ``open``/``close``.
"""
from __future__ import annotations

import json
import logging
import zlib
from typing import Optional

from pyflink.common import Types
from pyflink.datastream.functions import FlatMapFunction, KeyedProcessFunction, MapFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from edge.contract import outputs
from edge.contract.mqtt import MqttSettings
from stream.alerts import SilenceRule, WindowRules
from stream.config import AlertRules
from stream.publish import ResultPublisher, operator_client_id
from stream.windows import DeviceWindow, FleetWindow, merge_fleet_delta, window_starts

log = logging.getLogger("stream.functions")

# destination tag -> records directory under output_dir
DEST_RECORDS, DEST_DEADLETTER, DEST_CONSUMED, DEST_ACTIVITY = "records", "deadletter", "consumed", "activity"


# DeviceWindows' keys: (shard of the device, window). Fixed: a checkpoint holds its windows under these keys, so
# another number would scatter the devices of a restored job over windows they are not in.
WINDOW_SHARDS = 32


def window_shard(device: str) -> int:
    return zlib.crc32(device.encode()) % WINDOW_SHARDS


def tag(dest: str, body: dict) -> str:
    return dest + "\t" + json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False)


def untag(line: str) -> tuple[str, str]:
    dest, _, body = line.partition("\t")
    return dest, body


def _reasons(text: Optional[str]) -> dict:
    counts: dict = {}
    for r in (text or "").split("\n"):
        if r:
            counts[r[:200]] = counts.get(r[:200], 0) + 1
    return counts


WINDOW_INPUT = "window"          # a cell or a late frame, keyed "<shard of its device>/<window_start_ms>"
FLEET_DELTA = "fleet"            # what a device window changed for a class's fleet total, keyed "<class>/<ws_ms>"


def _plain(v):
    """A Flink Row / list value as JSON-able data (late frames' detections are Rows)."""
    if isinstance(v, (list, tuple)) or hasattr(v, "_values"):
        return [_plain(x) for x in v]
    return v


def _window_lines(body: dict, o) -> list[str]:
    """A late frame's or track event's lines: one per window its time ``ts`` (s) falls in, each keyed by the shard
    of its device and the window's start."""
    ts_ms = int(round(body["ts"] * 1000))
    key = window_shard(body["device"])
    return [f"{WINDOW_INPUT}\t{key}/{ws}\t" + json.dumps({**body, "ws": ws, "we": ws + o.size_ms},
                                                          separators=(",", ":"))
            for ws in window_starts(ts_ms, o.size_ms, o.slide_ms)]


def row_to_records(r: dict, o) -> list[str]:
    """Map one output row (as a dict of ``stream.sql.OUTPUT_COLUMNS``) to its tagged lines; ``o`` is the job's
    ``stream.sql.SqlOptions``. Cells go to their window, a late frame to every window it belongs to."""
    out = r["okind"]
    if out == "cell":
        return [f"{WINDOW_INPUT}\t{window_shard(r['device'])}/{r['ws']}\t" + json.dumps(r, separators=(",", ":"))]
    if out == "late":
        body = {k: _plain(r[k]) for k in ("okind", "device", "kcode", "seq", "ts", "recv_ts", "dets", "fps",
                                          "dropped", "outbox_depth", "state", "clock_offset")}
        return _window_lines(body, o)
    if out == "object":
        body = {k: r[k] for k in ("okind", "device", "kcode", "seq", "ts", "label", "ev", "es", "ee", "xl", "xd", "oc")}
        return _window_lines(body, o)
    if out == "stats":
        win = {"window_start": r["ws"] / 1000.0, "window_end": r["we"] / 1000.0}
        return [tag(DEST_RECORDS, outputs.build("stats", **win, dead_letters=int(r["dead_letters"]),
                                               too_late=int(r["too_late"]), late=int(r["late"]),
                                               reasons=_reasons(r["reasons"])))]
    if out == "reject":
        return [tag(DEST_DEADLETTER, {k: r[k] for k in ("category", "recv_ts", "topic", "device", "reason",
                                                        "raw_payload", "seq", "ts")})]
    if out == "consumed":
        return [tag(DEST_CONSUMED, {"file": r["file"], "records": int(r["records"])})]
    if out == "activity":
        return [tag(DEST_ACTIVITY, {"device": r["device"], "last_recv": r["recv_ts"], "messages": int(r["messages"])})]
    raise ValueError(f"unknown output row kind {out!r}")


class ToPayload(FlatMapFunction):
    def __init__(self, names: list[str], options):
        self.names = names
        self.options = options

    def flat_map(self, value):
        yield from row_to_records(dict(zip(self.names, value)), self.options)


def is_window_input(line: str) -> bool:
    return line.startswith(WINDOW_INPUT + "\t")


def is_fleet_delta(line: str) -> bool:
    return line.startswith(FLEET_DELTA + "\t")


def routing_key(line: str) -> str:
    """The key of a window input or fleet delta line (its second field)."""
    return line.split("\t", 2)[1]


class _Windows(KeyedProcessFunction):
    """Keyed by window: adds inputs up, emits the first results when the watermark passes the window's end, and
    forgets the window ``allowed lateness`` after its end.

    Inputs after the first result (late frames, track events, fleet deltas of revised devices) revise it, but not
    one by one: what they changed is noted in the state and one revision goes out when the next watermark passes
    (an event-time timer one ms after the current watermark). A burst of late frames of a window (a camera whose
    frames arrive behind the out-of-orderness, a bridge that catches up) is one revision, not one per frame; every
    revision holds everything received before it, and a bounded replay's final watermark flushes the last ones.

    The state is one Python object per key (pickled by PyFlink when it commits the state, at the end of a bundle,
    not on every update).

    With ``mqtt`` settings the results are published here, each as it is made, and passed on for the file sinks
    and alert rules (see ``stream.publish`` for why not downstream)."""
    ROLE = "windows"          # in the MQTT client id

    def __init__(self, options, high_sigma_threshold: float, mqtt: Optional[MqttSettings] = None,
                 client_id: str = "sigmawatch-job"):
        self.options = options
        self.threshold = high_sigma_threshold
        self.mqtt = mqtt
        self.client_id = client_id

    def open(self, runtime_context: RuntimeContext):
        self.state = runtime_context.get_state(ValueStateDescriptor("windows", Types.PICKLED_BYTE_ARRAY()))
        self.publisher = None
        if self.mqtt is not None:
            self.publisher = ResultPublisher(self.mqtt, operator_client_id(
                self.mqtt, self.client_id, self.ROLE, runtime_context.get_index_of_this_subtask()))

    def close(self):
        if getattr(self, "publisher", None) is not None:
            self.publisher.stop()

    def _arm(self, ctx, we_ms: int) -> None:
        ctx.timer_service().register_event_time_timer(we_ms - 1)                              # first result
        ctx.timer_service().register_event_time_timer(we_ms - 1 + self.options.lateness_ms + 1)  # cleanup

    @staticmethod
    def _at_next_watermark(ctx) -> None:
        ctx.timer_service().register_event_time_timer(ctx.timer_service().current_watermark() + 1)

    def on_timer(self, timestamp, ctx):
        """Emit what is due (:meth:`_fire`: the first results, or the pending revisions), then forget the window
        ``allowed lateness`` after its end, or keep what changed."""
        st = self.state.value()
        if st is None:
            return
        due, changed = self._fire(st)
        for out in due:
            if isinstance(out, dict):           # a payload: published now, and on to records/
                line = tag(DEST_RECORDS, out)
                if self.publisher is not None:
                    self.publisher.publish(out, line[len(DEST_RECORDS) + 1:])
                yield line
            else:
                yield out
        if timestamp >= st["we"] + self.options.lateness_ms:
            self.state.clear()
        elif changed:
            self.state.update(st)

    def _fire(self, st: dict) -> tuple[list, bool]:
        """The window's due payloads (dicts) and routed lines (str), and whether the state changed."""
        raise NotImplementedError


def _note(pending: dict, classes=None, objects=None) -> None:
    """Add a revision's changes to ``pending``: ``c`` the classes whose aggregates (and the health) to revise
    (absent: only track events and object counts changed), ``o`` the object labels."""
    if classes is not None:
        pending["c"] = sorted(set(pending.get("c", ())) | {int(c) for c in classes})
    if objects:
        pending["o"] = sorted(set(pending.get("o", ())) | set(objects))


class DeviceWindows(_Windows):
    """One window of one shard of the devices (:data:`WINDOW_SHARDS`, by :func:`window_shard`): cells, late frames,
    track events and object counts in; per device aggregates, health, objects and present counts (and fleet
    deltas) out.

    Keyed by (shard, window), not (device, window): PyFlink reads a key's state it has not cached, and writes
    every changed key's state at the end of a bundle, one blocking request to the JVM per key (1-2 ms each). Per
    (device, window) that was a read and two writes per device and window, seconds per window for 1,000 cameras,
    all before the window's results could leave; per shard it is a few dozen."""

    def process_element(self, value, ctx):
        body = json.loads(value.split("\t", 2)[2])
        sh = self.state.value()
        if sh is None:
            sh = {"we": int(body["we"]), "fired": False, "dev": {}, "pending": {}}
            self._arm(ctx, sh["we"])
        device = body["device"]
        st = sh["dev"].get(device)
        if st is None:
            st = sh["dev"][device] = DeviceWindow(device=device, ws_ms=int(body["ws"]), we_ms=int(body["we"])).s
        w = DeviceWindow(st)
        objects: set = set()
        if body["okind"] == "cell":
            cid = w.add_cell(body)
            changed = set() if cid is None else {cid}
            objects = {body["label"]} if body.get("track") is not None else set()
        elif body["okind"] == "object":
            changed, objects = None, w.add_object(body)
        else:
            changed, objects = w.add_late(body, self.threshold), w.late_tracks(body)
        if sh["fired"]:        # after the first results: this device's first result or a revision is due
            if st["fired"]:
                _note(sh["pending"].setdefault(device, {}), changed, objects)
            self._at_next_watermark(ctx)
        self.state.update(sh)

    def _fire(self, sh: dict) -> tuple[list, bool]:
        pending, sh["pending"] = sh["pending"], {}
        emitted = False
        due: list = []
        fleet: dict = {}
        for device, st in sh["dev"].items():
            if not st["fired"]:               # the window's first result (or a device first seen after it)
                st["fired"] = emitted = True
                due += self._emit(st, fleet)
            elif device in pending:           # a revision
                emitted = True
                p = pending[device]
                due += self._emit(st, fleet, p.get("c"), p.get("o"), revision=True)
        for d in fleet.values():              # the shard's fleet deltas: one per class, not one per device
            due.append(f"{FLEET_DELTA}\t{d['class_id']}/{d['ws']}\t" + json.dumps(d, separators=(",", ":")))
        first = not sh["fired"]
        sh["fired"] = True
        return due, emitted or first

    def _emit(self, st: dict, fleet: dict, classes=None, objects=None, revision: bool = False) -> list[dict]:
        """One device's payloads: on its first result all of them; on a revision the aggregates of ``classes`` and
        the health (``classes`` None: neither, only object inputs), the objects of the labels in ``objects`` (a
        present-counts input: ``PRESENT`` in it). Its fleet deltas are added to ``fleet`` (per class)."""
        w = DeviceWindow(st)
        out: list[dict] = []
        if not revision or classes is not None:
            out += w.payloads(self.threshold, classes if revision else None)
        if not revision or objects:
            out += w.object_payloads(objects if revision else None)
        for d in w.fleet_deltas():
            merge_fleet_delta(fleet, d)
        return out


class FleetWindows(_Windows):
    """One (class, window) over all devices, from the device windows' deltas (one per shard and class)."""
    ROLE = "fleet"

    def process_element(self, value, ctx):
        delta = json.loads(value.split("\t", 2)[2])
        st = self.state.value()
        if st is None:
            st = FleetWindow().s
            self._arm(ctx, int(delta["we"]))
        FleetWindow(st).add(delta)
        if st["fired"]:
            st["pending"] = True
            self._at_next_watermark(ctx)
        self.state.update(st)

    def _fire(self, st: dict) -> tuple[list, bool]:
        emit = not st["fired"] or st.pop("pending", False)
        st["fired"] = True
        return ([FleetWindow(st).payload(self.threshold)] if emit else []), emit


def window_key(line: str) -> str:
    """The alert key of a window payload: ``<device|_fleet>/<class>``, or ``<device>/_health``."""
    p = json.loads(untag(line)[1])
    return f"{p.get('device') or outputs.FLEET_DEVICE}/{p['label'] if 'label' in p else '_health'}"


def is_class_window(line: str) -> bool:
    dest, body = untag(line)
    return dest == DEST_RECORDS and ('"type":"aggregate"' in body or '"type":"fleet"' in body)


def is_window_result(line: str) -> bool:
    """An aggregate, fleet or health payload (what the window alert rules judge)."""
    dest, body = untag(line)
    return dest == DEST_RECORDS and any(f'"type":"{t}"' in body for t in ("aggregate", "fleet", "health"))


class _JsonState(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext):
        self.state = runtime_context.get_state(ValueStateDescriptor("alert_state", Types.STRING()))

    def load(self) -> dict:
        raw = self.state.value()
        return json.loads(raw) if raw else {}

    def save(self, st: dict) -> None:
        self.state.update(json.dumps(st, separators=(",", ":")))


class WindowAlerts(_JsonState):
    def __init__(self, rules: AlertRules, slide_s: float):
        self.rules_json = rules.model_dump_json()
        self.slide_s = slide_s

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.engine = WindowRules(AlertRules.model_validate_json(self.rules_json))

    def process_element(self, value, ctx):
        payload = json.loads(untag(value)[1])
        st = self.load()
        st["_key"] = [payload.get("device"), payload.get("label")]     # no label: a device's health windows
        alerts = self.engine.on_window(st, payload)
        if self.engine.any_firing(st):
            ctx.timer_service().register_event_time_timer(int(round((payload["window_end"] + self.slide_s) * 1000)))
        self.save(st)
        for a in alerts:
            yield tag(DEST_RECORDS, a)

    def on_timer(self, timestamp, ctx):
        st = self.load()
        if "_key" not in st:
            return
        device, label = st["_key"]
        alerts = self.engine.on_gap(st, device, label, timestamp / 1000.0)
        self.save(st)
        for a in alerts:
            yield tag(DEST_RECORDS, a)


class SilenceAlerts(_JsonState):
    def __init__(self, rules: AlertRules):
        self.rules_json = rules.model_dump_json()

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.engine = SilenceRule(AlertRules.model_validate_json(self.rules_json))
        self.started_ms: Optional[int] = None

    def process_element(self, value, ctx):
        body = json.loads(untag(value)[1])
        if self.started_ms is None:
            self.started_ms = ctx.timer_service().current_processing_time()
        now = ctx.timer_service().current_processing_time() / 1000.0
        st = self.load()
        alerts = self.engine.on_activity(st, body["device"], now)
        self.save(st)
        if self.engine.rule:
            ctx.timer_service().register_processing_time_timer(int((now + self.engine.rule.after_s) * 1000))
        for a in alerts:
            yield tag(DEST_RECORDS, a)

    def on_timer(self, timestamp, ctx):
        # Timers restored from a checkpoint fire at once: silence that spans the job's own outage is not
        # evidence (the devices' messages of that time are still in the landing backlog), so give the
        # restarted job ``after_s`` of processing time before judging.
        now_ms = ctx.timer_service().current_processing_time()
        if self.started_ms is None:
            self.started_ms = now_ms
        grace_end = self.started_ms + int(self.engine.rule.after_s * 1000)
        if now_ms < grace_end:
            ctx.timer_service().register_processing_time_timer(grace_end)
            return
        st = self.load()
        alerts = self.engine.on_timer(st, ctx.get_current_key(), timestamp / 1000.0)
        self.save(st)
        for a in alerts:
            yield tag(DEST_RECORDS, a)


class MqttPublish(MapFunction):
    """Publishes the record payloads that reach it (QoS 1, retained; see ``stream.publish``) and passes every line
    through unchanged."""
    ROLE = "out"

    def __init__(self, settings: MqttSettings, client_id: str):
        self.settings = settings
        self.client_id = client_id

    def open(self, runtime_context: RuntimeContext):
        self.publisher = ResultPublisher(self.settings, operator_client_id(
            self.settings, self.client_id, self.ROLE, runtime_context.get_index_of_this_subtask()))

    def map(self, value):
        dest, body = untag(value)
        if dest == DEST_RECORDS:
            self.publisher.publish(json.loads(body), body)
        return value

    def close(self):
        publisher = getattr(self, "publisher", None)
        if publisher is not None:
            publisher.stop()
