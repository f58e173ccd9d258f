"""The landing directory between the bridge and the job: line format, atomic file writer, cleanup.

Line format: one flat JSON object per MQTT message, holding only what the job reads (the bridge validates the
payload with ``edge.contract.schema.parse`` and flattens it as sent, version-2 arrays or version-1 objects:
:func:`to_landing_line`; the job parses small rows and never the raw edge payload)::

    {"kind":"detections","device":"cam1","recv_ts":1.7e9,"seq":42,"ts":1.7e9,
     "dets":[{"c":0,"l":"person","p":0.91,"g":0.12,"f":1}, ...]}
    {"kind":"metrics","device":"cam1","recv_ts":...,"ts":...,"fps":9.8,"dropped":3,"depth":0}
    {"kind":"status","device":"cam1","recv_ts":...,"state":"online"[,"ts":...]}
    {"kind":"events","device":"cam1","recv_ts":...,"seq":7,"ts":...,"ob":{"ev":"end","el":"person","es":<start>,
     "ee":<end>}}                   (ev: the event type; es on new/end, ee on end, xl/xd on crossed: line, direction)
    {"kind":"objects","device":"cam1","recv_ts":...,"ts":...,"ob":{"oc":"{\"objects\":{\"person\":3},\"zones\":{}}"}}
    {"kind":"invalid","topic":"...","device":"cam1"|null,"recv_ts":...,"reason":"...","raw_payload":"..."}
    {"kind":"eof","file":"<this file's name>","records":<message lines in the file>,
     "devices":[{"d":"cam1","r":<last recv_ts>,"m":<valid messages>}]}

A valid message's topic is not written: it is ``<prefix>/<device>/<kind>`` (the bridge checked it), and the
job rebuilds it for the few lines it dead-letters (late events); every byte of a line costs the job parsing
and copying (measured: ~5% of its CPU for the topic).

``dets`` has one entry per detection: ``c`` class_id, ``l`` label, ``p`` score, ``g`` sigma_mean, ``f`` = 1 on
the first detection of its class in the frame (so the job counts "frames with a detection of class c" as
``SUM(f)`` instead of a ``COUNT(DISTINCT seq)``) and ``h`` = 1 on the frame's first detection (frames per
device = rows with ``h`` + frames without detections); ``t`` is the detection's track id when the agent's tracker
had confirmed one (``edge.contract.wire``), absent otherwise.

Events (``<prefix>/<device>/events``, their own per-device ``seq``) land with what the job's object statistics
read; object counts (``<prefix>/<device>/objects``, retained gauges without a seq) with the counts as one JSON
string (``oc``), which only the job's Python side reads. Both in one nested object ``ob``: one column of the job's
landing row instead of seven (every landing row, a frame too, carries each column through the dedup shuffle; the
difference was not measurable next to the machine's noise, see the README's "Objects in the job").

The ``eof`` trailer is the last line of every file. A file is one split of Flink's file source (the bridge's
files are far smaller than any filesystem block) and is read in order, so when the job reads the trailer it
has read every line before it: the job turns the trailer into the file's consumption record (cleanup) and
the devices' activity records (the ``device_silent`` alert), with no per-line keyed aggregation. A message that fails decoding or validation lands as
``kind: "invalid"`` with the reason and the (truncated) raw payload, so the job can dead-letter it without
ever parsing it again. :func:`message_line` is the one place that defines this format.

File names: ``<epoch_ms>-<client_id>-<counter>-n<records>.jsonl``. The record count in the name lets the
cleaner know when the job has consumed a whole file. Files are written hidden (``.<name>.tmp``, ignored by
Flink's file source), fsynced, renamed, and the directory fsynced: a file the job can see is complete.

Cleanup: the job writes, through Flink's exactly-once file sink, how many lines it read from each landing
file (``<output>/consumed/``); those records become visible only when the checkpoint that covers them
completes. A landing file whose consumed count equals the count in its name is therefore never needed
again, even after a restore from the newest checkpoint, and :class:`Cleaner` deletes it.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

from edge.contract import schema, wire

# json.dumps(..., separators=(",", ":"), allow_nan=False), without building an encoder for every line
_to_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
NAME_RE = re.compile(r"^(?P<ms>\d{13})-(?P<client>[A-Za-z0-9_-]+)-(?P<counter>\d{8})-n(?P<n>\d+)\.jsonl$")


def _flat_dets(rows: Iterable[tuple[int, str, float, float, Optional[int]]]) -> list[dict]:
    """``dets`` of a landing line from (class_id, label, score, sigma_mean, track) per detection, in the message's
    order; ``t`` only for a detection with a track (lines of agents without tracking are what they were)."""
    seen: set = set()
    dets: list[dict] = []
    for c, label, p, g, t in rows:
        det = {"c": c, "l": label, "p": p, "g": g, "f": int(c not in seen)}
        if not dets:
            det["h"] = 1
        if t is not None:
            det["t"] = t
        dets.append(det)
        seen.add(c)
    return dets


def _detection_rows(msg: dict) -> Iterable[tuple[int, str, float, float, Optional[int]]]:
    """(class_id, label, score, sigma_mean, track) of each detection of a validated payload, version 2 (arrays of
    thousandths, what agents send) or version 1 (objects; old agents and outbox replays). sigma_mean is None
    for a model that predicts no uncertainty (SSD, plain head), track for a detection without a confirmed track."""
    if msg["schema"] == wire.DETECTIONS_VERSION:
        c, label, p, g, milli, track = wire.CLASS_ID, wire.LABEL, wire.SCORE, wire.SIGMA_MEAN, wire.MILLI, wire.TRACK
        return ((d[c], d[label], d[p] / milli, None if d[g] is None else d[g] / milli,
                 d[track] if len(d) > track else None)
                for d in msg.get("detections", ()))
    return ((d["class_id"], d["label"], d["score"], d["sigma_mean"], d.get("track")) for d in msg["detections"])


def _event_fields(msg: dict) -> dict:
    """What the job reads of a track event (``edge.contract.schema.EVENT``): in ``ob``, its type, label, and by type
    the track's start and end (``end``: dwell), or the line and direction (``crossed``)."""
    ob = {"ev": msg["type"], "el": msg["label"]}
    if msg["type"] in ("new", "end"):
        ob["es"] = msg["start"]
        if msg["type"] == "end":
            ob["ee"] = msg["end"]
    elif msg["type"] == "crossed":
        ob["xl"], ob["xd"] = msg["line"], msg["direction"]
    return {"seq": msg["seq"], "ts": msg["ts"], "ob": ob}


def _flat_fields(kind: str, msg: dict) -> dict:
    """The fields of a validated edge message (as sent: ``edge.contract.schema.parse``) that the job reads."""
    if kind == "detections":
        return {"seq": msg["seq"], "ts": msg["ts"], "dets": _flat_dets(_detection_rows(msg))}
    if kind == "events":
        return _event_fields(msg)
    if kind == "objects":
        return {"ts": msg["ts"], "ob": {"oc": _to_json({"objects": msg["objects"], "zones": msg["zones"]})}}
    if kind == "metrics":
        return {"ts": msg["ts"], "fps": msg["fps"], "dropped": msg["frames"]["dropped"],
                "depth": msg["outbox"]["depth"]}
    if kind == "status":
        return {"state": msg["state"], **({"ts": msg["ts"]} if msg.get("ts") is not None else {})}
    raise ValueError(f"no landing format for message kind {kind!r}")


def message_line(device: str, kind: str, recv_ts: float, msg: dict) -> str:
    """The landing line of a valid edge message (see the module docstring)."""
    rec = {"kind": kind, "device": device, "recv_ts": round(recv_ts, 6), **_flat_fields(kind, msg)}
    return _to_json(rec)


class LandingLine(NamedTuple):
    """What the bridge makes of one MQTT message: its landing ``line``, whether it was ``valid``, the ``device``
    of its topic (None when the topic is not a device topic) and, for a detections or events message, the ``seq``
    the bridge confirms once the line is durable (None when it has none: a valid message of another kind, or a
    payload whose sequence number cannot be read). Which counter the seq belongs to is the topic's kind
    (:func:`confirm_stream`)."""
    line: str
    valid: bool
    device: Optional[str]
    seq: Optional[int]


def to_landing_line(prefix: str, topic: str, payload: bytes, recv_ts: float, max_bytes: int) -> LandingLine:
    """The landing line of one MQTT message. The bridge's per-message work: the topic and the payload are
    checked once (``edge.contract.schema.parse``) and flattened from the payload as sent (``bench.stream``
    measures its CPU per message). Never raises: whatever the bytes, the result is a line (an ``invalid`` one
    with the reason when the message cannot be landed as it is)."""
    try:
        return _convert(prefix, topic, payload, recv_ts, max_bytes)
    except Exception as exc:  # noqa: BLE001 - a payload must never stop the bridge: dead-letter it instead
        reason = f"the bridge could not convert this message ({type(exc).__name__}: {str(exc)[:200]})"
        return LandingLine(invalid_line(str(topic), None, recv_ts, reason, _raw(bytes(payload), max_bytes)),
                           False, None, None)


def _convert(prefix: str, topic: str, payload: bytes, recv_ts: float, max_bytes: int) -> LandingLine:
    try:
        device, kind = schema.parse_topic(prefix, topic)
    except schema.SchemaError as exc:
        return LandingLine(invalid_line(topic, None, recv_ts, f"topic: {exc}", _raw(payload, max_bytes)),
                           False, None, None)
    if len(payload) > max_bytes:
        reason = f"payload larger than {max_bytes} bytes"
        return LandingLine(invalid_line(topic, device, recv_ts, reason, _raw(payload, max_bytes)), False, device, None)
    try:
        msg = schema.parse(payload, kind)
        if msg.get("device") != device:
            raise schema.SchemaError(f"{kind}.device: {msg.get('device')!r} differs from the topic's device {device!r}")
    except schema.SchemaError as exc:
        line = invalid_line(topic, device, recv_ts, str(exc), _raw(payload, max_bytes))
        return LandingLine(line, False, device, _readable_seq(payload) if kind in CONFIRMED_KINDS else None)
    return LandingLine(message_line(device, kind, recv_ts, msg), True, device,
                       msg["seq"] if kind in CONFIRMED_KINDS else None)


# the topic kinds whose messages carry a per-device sequence number the bridge confirms (each its own counter)
CONFIRMED_KINDS = ("detections", "events")


def confirm_stream(topic: str) -> str:
    """The confirmation stream (``edge.contract.schema.LANDED_STREAMS``) of a message the bridge got a seq for:
    the kind of its topic, ``<prefix>/<device>/<kind>``."""
    return "events" if topic.endswith("/events") else "detections"


def _readable_seq(payload: bytes) -> Optional[int]:
    """The sequence number of a detections or events payload that failed validation, when it has a usable one: its dead
    letter is confirmed to the agent like a landed message (sending it again would land the same dead letter)."""
    try:
        seq = json.loads(payload).get("seq")
    except Exception:  # noqa: BLE001 - not JSON, too deep, not an object: no seq
        return None
    return seq if type(seq) is int and 0 <= seq <= schema.BIGINT_MAX else None


def _raw(payload: bytes, max_bytes: int) -> str:
    return payload[:max_bytes].decode("utf-8", errors="replace")


def invalid_line(topic: str, device: Optional[str], recv_ts: float, reason: str, raw_payload: str) -> str:
    """The landing line of a message that failed decoding/validation: the job dead-letters it with the reason."""
    rec = {"kind": "invalid", "topic": topic, "device": device, "recv_ts": round(recv_ts, 6), "reason": reason,
           "raw_payload": raw_payload}
    return _to_json(rec)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Batch:
    """Lines waiting for one landing file, with what the file's trailer and the confirmations need: per device
    its last receive time and valid message count, and the detections sequence numbers to confirm."""

    __slots__ = ("lines", "devices", "seqs")

    def __init__(self):
        self.lines: list[str] = []
        self.devices: dict[str, list] = {}      # device -> [last recv_ts, valid messages]
        # (device, stream) -> sequence numbers of detections / events, confirmed once the file is durable
        self.seqs: dict[tuple[str, str], list[int]] = {}

    def add(self, line: str, device: Optional[str] = None, recv_ts: float = 0.0, seq: Optional[int] = None,
            valid: bool = True, stream: str = "detections") -> None:
        self.lines.append(line)
        if device is not None and valid:
            d = self.devices.get(device)
            if d is None:
                self.devices[device] = [round(recv_ts, 6), 1]
            else:
                d[0] = max(d[0], round(recv_ts, 6))
                d[1] += 1
        if device is not None and seq is not None:
            self.seqs.setdefault((device, stream), []).append(seq)

    def add_many(self, landed: Iterable[LandingLine], recv_ts: float, topics: Iterable) -> int:
        """:meth:`add` for many messages received at ``recv_ts`` (``topics``: each one's topic, str or the raw
        bytes, for the confirmation stream of its seq); returns how many were invalid."""
        r = round(recv_ts, 6)
        lines, devices, seqs = self.lines, self.devices, self.seqs
        invalid = 0
        for (line, valid, device, seq), topic in zip(landed, topics):
            lines.append(line)
            if device is None:
                invalid += not valid
                continue
            if valid:
                d = devices.get(device)
                if d is None:
                    devices[device] = [r, 1]
                else:
                    if r > d[0]:
                        d[0] = r
                    d[1] += 1
            else:
                invalid += 1
            if seq is not None:
                key = (device, "events" if topic[-7:] in (b"/events", "/events") else "detections")
                numbers = seqs.get(key)
                if numbers is None:
                    seqs[key] = [seq]
                else:
                    numbers.append(seq)
        return invalid

    def extend(self, later: "Batch") -> None:
        """Append ``later``'s lines after this batch's (a batch that could not be written goes first again)."""
        self.lines += later.lines
        for device, (r, m) in later.devices.items():
            d = self.devices.setdefault(device, [r, 0])
            d[0], d[1] = max(d[0], r), d[1] + m
        for device, seqs in later.seqs.items():
            self.seqs.setdefault(device, []).extend(seqs)

    def __len__(self) -> int:
        return len(self.lines)


class LandingWriter:
    """Buffers lines and writes them as one complete, durable, visible file per :meth:`roll` (or per
    :meth:`write` of a batch taken with :meth:`take`, so that the caller can write without holding its lock).
    A write that fails (disk full, I/O error) removes its temp file and raises OSError; the batch is intact."""

    def __init__(self, directory: Path, client_id: str, fsync: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.client_id = client_id
        self.fsync = fsync
        self.counter = 0
        self.batch = Batch()
        self.files_written = 0
        self.records_written = 0

    @property
    def lines(self) -> list[str]:
        return self.batch.lines

    @property
    def devices(self) -> dict[str, list]:
        return self.batch.devices

    def add(self, line: str, device: Optional[str] = None, recv_ts: float = 0.0, seq: Optional[int] = None,
            valid: Optional[bool] = None, stream: str = "detections") -> None:
        """Buffer one message line; ``device`` with ``valid`` (default: a device means valid) goes into the
        trailer's activity; ``seq``: a sequence number of ``stream`` (detections or events) to confirm once the
        file is durable."""
        self.batch.add(line, device, recv_ts, seq, device is not None if valid is None else valid, stream)

    def add_many(self, landed: Iterable["LandingLine"], recv_ts: float, topics: Iterable) -> int:
        """Buffer many message lines received at ``recv_ts`` (:meth:`Batch.add_many`); returns the invalid ones."""
        return self.batch.add_many(landed, recv_ts, topics)

    def trailer(self, name: str, batch: Optional[Batch] = None) -> str:
        """The ``eof`` line of the file ``name``: the job's consumption record names the file from it."""
        batch = self.batch if batch is None else batch
        return _to_json({"kind": "eof", "file": name, "records": len(batch.lines),
                         "devices": [{"d": k, "r": v[0], "m": v[1]} for k, v in sorted(batch.devices.items())]})

    def __len__(self) -> int:
        return len(self.batch)

    def take(self) -> Batch:
        """The buffered batch; the writer starts a new one."""
        batch, self.batch = self.batch, Batch()
        return batch

    def put_back(self, batch: Batch) -> None:
        """A batch that could not be written goes back in front of what was buffered since."""
        batch.extend(self.batch)
        self.batch = batch

    def write(self, batch: Batch) -> Optional[Path]:
        """Write ``batch`` as one durable visible file; return it (None for an empty batch). Raises OSError
        (the temp file removed, nothing visible) when the directory cannot take it."""
        if not batch.lines:
            return None
        self.counter += 1
        name = f"{int(time.time() * 1000):013d}-{self.client_id}-{self.counter:08d}-n{len(batch.lines)}.jsonl"
        tmp = self.directory / f".{name}.tmp"
        final = self.directory / name
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("\n".join(batch.lines))
                f.write("\n")
                f.write(self.trailer(name, batch))
                f.write("\n")
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.rename(tmp, final)
            if self.fsync:
                _fsync_dir(self.directory)
        except OSError:
            for path in (tmp, final):     # a rename that happened before the directory fsync failed: undo it
                try:
                    path.unlink()
                except OSError:
                    pass
            raise
        self.files_written += 1
        self.records_written += len(batch.lines)
        return final

    def roll(self) -> Optional[Path]:
        """Write the buffered lines durably; return the visible file (None if nothing was buffered)."""
        path = self.write(self.batch)
        if path is not None:
            self.batch = Batch()
        return path


def remove_stale_temp_files(directory: Path, client_id: str) -> int:
    """Delete this client's hidden temp files left by a crash (their messages were never acked)."""
    n = 0
    for p in Path(directory).glob(f".*-{client_id}-*.jsonl.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _visible_files(directory: Path) -> Iterable[Path]:
    if not directory.is_dir():
        return []
    return (p for p in directory.rglob("*") if p.is_file() and not any(
        part.startswith((".", "_")) for part in p.relative_to(directory).parts))


def read_consumed(consumed_dir: Path) -> tuple[dict[str, int], dict[Path, set[str]]]:
    """Sum the job's committed consumption records: ``{landing file name: lines read}`` and per record file
    the landing names it mentions."""
    totals: dict[str, int] = defaultdict(int)
    mentions: dict[Path, set[str]] = {}
    for part in _visible_files(Path(consumed_dir)):
        names: set[str] = set()
        try:
            text = part.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                name = os.path.basename(str(rec["file"]))
                totals[name] += int(rec["records"])
                names.add(name)
            except (ValueError, KeyError, TypeError):
                continue
        mentions[part] = names
    return dict(totals), mentions


class Cleaner:
    """Deletes this bridge's landing files once the job's committed records account for all their lines."""

    def __init__(self, landing_dir: Path, consumed_dir: Path, client_id: Optional[str] = None):
        self.landing_dir = Path(landing_dir)
        self.consumed_dir = Path(consumed_dir)
        self.client_id = client_id
        self.deleted = 0

    def run_once(self) -> int:
        totals, mentions = read_consumed(self.consumed_dir)
        deleted = 0
        for name, count in totals.items():
            m = NAME_RE.match(name)
            if not m or (self.client_id and m["client"] != self.client_id):
                continue
            if count >= int(m["n"]):
                path = self.landing_dir / name
                if path.exists():
                    path.unlink(missing_ok=True)
                    deleted += 1
        # A consumption record is no longer needed once every landing file it mentions is gone.
        for part, names in mentions.items():
            if names and not any((self.landing_dir / n).exists() for n in names):
                part.unlink(missing_ok=True)
        self.deleted += deleted
        return deleted
