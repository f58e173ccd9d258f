"""Persistent outbox: every detections message lives in SQLite (WAL) until it is delivered.

Delivered means, with a bridge that confirms (``edge.contract.schema.LANDED``), that a bridge reported the message
in a durable landing file; without one (old bridges), that the broker acknowledged it (PUBACK), which a broker
crash can undo (mosquitto does not persist before its PUBACK). ``edge.publisher`` decides which applies.

* ``append(topic, build)`` allocates the next sequence number and stores the message in one
  transaction, so sequence numbers are strictly increasing and survive restarts (also after SIGKILL:
  a committed WAL transaction is in the OS page cache when the process dies).
* ``pending(after_id, limit)`` returns stored rows in insertion order, for publishing and for the
  replay after a restart; ``rows(ids)`` the given ones (for resending).
* ``ack(row_id)`` deletes a row (delivered at the broker's PUBACK); ``confirm(ranges)`` deletes the rows whose
  sequence numbers a bridge confirmed as landed and returns their ids.
* ``enforce_bounds(protect_upto)`` drops the oldest rows beyond ``max_messages`` or older than
  ``max_age_s``; drops are counted in the database and reported in metrics. Rows already handed to
  paho (id <= ``protect_upto``) are never dropped: paho still holds them and will deliver them.
* ``landed_seen``: whether any bridge ever confirmed a message of this outbox (kept across restarts).

Thread-safe: one connection guarded by a lock (the publisher thread writes, paho's thread acks).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 0), ('dropped', 0), ('acked', 0),
    ('landed_seen', 0);
"""


@dataclass(frozen=True)
class Row:
    id: int
    seq: int
    topic: str
    payload: bytes
    created: float


class Outbox:
    def __init__(self, path: str | Path, max_messages: int = 200_000, max_age_s: float = 7 * 86400):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = int(max_messages)
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills; fsync at checkpoints
        self._db.executescript(SCHEMA)

    # -- counters
    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    @property
    def next_seq(self) -> int:
        with self._lock:
            return self._meta("next_seq")

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._meta("dropped")

    @property
    def acked(self) -> int:
        with self._lock:
            return self._meta("acked")

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # -- writes
    def append(self, topic: str, build: Callable[[int], bytes], now: float | None = None) -> tuple[int, int]:
        """Store ``build(seq)`` under the next sequence number; returns (row id, seq)."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta("next_seq")
                payload = build(seq)
                cur = self._db.execute("INSERT INTO outbox (seq, topic, payload, created) VALUES (?, ?, ?, ?)",
                                       (seq, topic, payload, now))
                self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq + 1,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return int(cur.lastrowid), seq

    def ack(self, row_id: int) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM outbox WHERE id=?", (row_id,))
            if cur.rowcount:
                self._db.execute("UPDATE meta SET value=value+1 WHERE key='acked'")
            return bool(cur.rowcount)

    def confirm(self, ranges: list[list[int]]) -> list[int]:
        """Delete the rows whose seq lies in one of the inclusive ``ranges``; return their ids. Marks the outbox
        as served by a confirming bridge (``landed_seen``)."""
        ids: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for first, last in ranges:
                    ids += [int(r[0]) for r in self._db.execute(
                        "DELETE FROM outbox WHERE seq BETWEEN ? AND ? RETURNING id", (first, last)).fetchall()]
                self._db.execute("UPDATE meta SET value=value+? WHERE key='acked'", (len(ids),))
                self._db.execute("UPDATE meta SET value=1 WHERE key='landed_seen'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    @property
    def landed_seen(self) -> bool:
        with self._lock:
            return bool(self._meta("landed_seen"))

    def rows(self, ids: list[int]) -> list[Row]:
        """The stored rows among ``ids``, in id order (rows deleted meanwhile are left out)."""
        if not ids:
            return []
        out: list[tuple] = []
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                out += self._db.execute(
                    f"SELECT id, seq, topic, payload, created FROM outbox WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
        return [Row(int(r[0]), int(r[1]), r[2], bytes(r[3]), float(r[4])) for r in sorted(out)]

    def pending(self, after_id: int = 0, limit: int = 100) -> list[Row]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seq, topic, payload, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit)).fetchall()
        return [Row(int(r[0]), int(r[1]), r[2], bytes(r[3]), float(r[4])) for r in rows]

    def enforce_bounds(self, protect_upto: int = 0, now: float | None = None) -> int:
        """Drop the oldest unprotected rows over the size bound and rows over the age bound; returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                aged = self._db.execute("DELETE FROM outbox WHERE id > ? AND created < ?",
                                        (protect_upto, now - self.max_age_s)).rowcount
                total = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                excess = total - self.max_messages
                over = 0
                if excess > 0:
                    over = self._db.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT ?)",
                        (protect_upto, excess)).rowcount
                if aged + over:
                    self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped'", (aged + over,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return aged + over

    def close(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._db.close()
