"""The landing directory between the bridge and the job: line format, atomic file writer, cleanup.

Line format (one JSON object per MQTT message)::

    {"topic": "...", "device": "cam1", "kind": "detections"|"status"|"metrics", "recv_ts": 1.7e9, "msg": {...}}
    {"topic": "...", "device": "cam1"|null, "kind": "invalid", "recv_ts": ..., "reason": "...", "raw_payload": "..."}

``msg`` is the edge payload, already validated against ``edge.schema``; a message that fails decoding or
validation lands as ``kind: "invalid"`` with the reason and the (truncated) raw payload, so the job can
dead-letter it without ever parsing it again.

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
from typing import Iterable, Optional

NAME_RE = re.compile(r"^(?P<ms>\d{13})-(?P<client>[A-Za-z0-9_-]+)-(?P<counter>\d{8})-n(?P<n>\d+)\.jsonl$")


def landing_line(topic: str, device: Optional[str], kind: str, recv_ts: float, msg: Optional[dict] = None,
                 reason: Optional[str] = None, raw_payload: Optional[str] = None) -> str:
    rec = {"topic": topic, "device": device, "kind": kind, "recv_ts": round(recv_ts, 6)}
    if msg is not None:
        rec["msg"] = msg
    if reason is not None:
        rec["reason"] = reason
        rec["raw_payload"] = raw_payload
    return json.dumps(rec, separators=(",", ":"), allow_nan=False)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LandingWriter:
    """Buffers lines and writes them as one complete, durable, visible file per :meth:`roll`."""

    def __init__(self, directory: Path, client_id: str, fsync: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.client_id = client_id
        self.fsync = fsync
        self.counter = 0
        self.lines: list[str] = []
        self.files_written = 0
        self.records_written = 0

    def add(self, line: str) -> None:
        self.lines.append(line)

    def __len__(self) -> int:
        return len(self.lines)

    def roll(self) -> Optional[Path]:
        """Write the buffered lines durably; return the visible file (None if nothing was buffered)."""
        if not self.lines:
            return None
        self.counter += 1
        name = f"{int(time.time() * 1000):013d}-{self.client_id}-{self.counter:08d}-n{len(self.lines)}.jsonl"
        tmp = self.directory / f".{name}.tmp"
        final = self.directory / name
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines))
            f.write("\n")
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.rename(tmp, final)
        if self.fsync:
            _fsync_dir(self.directory)
        self.files_written += 1
        self.records_written += len(self.lines)
        self.lines = []
        return final


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
                name = os.path.basename(str(rec["file_path"]))
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
