"""The Flink SQL of the job: the windows and the output rows. Pure strings, no PyFlink import.

All per-event work happens in the JVM, in front of these views (``stream.pipeline.landing_tables``): the landing
source's JSON decoding of the bridges' lines, exact (device, seq) deduplication (``SeqDedup``) and
``LandingSplit``, which gives each row its event time, assigns the job's one watermark and puts each row into
exactly one of four tables (:class:`SplitTables`): on time, late, rejects, trailers. These views aggregate the
on-time frames into *cells* (one per window, device, class and track) and project every table onto one union of
output rows. Python sees only cells, late frames, track events, rejects and trailers.

Event time and the watermark. A frame's event time is its capture time ``ts``; the watermark follows the
*bridge's* receive time (``recv_ts - out_of_orderness``), one trustworthy clock: a device whose clock runs
fast cannot move it, and a device that replays its outbox cannot be made late by one that does not. A frame
is late when the earliest window containing it has fired (``slice_end - 1 ms <= watermark``, exactly the
window operator's drop rule): late frames within ``allowed_lateness`` do not reach the windows but the late
table, and the Python side adds them to the window's result and publishes it again with its next revision number
(``stream.functions.DeviceWindows``); frames later than that are dead-lettered as ``too_late``. A row the
watermark cannot decide yet (before a restored job's first watermark) is too late when its own receive time minus
the out-of-orderness, a lower bound of the watermark it makes, is past its window's end plus the allowed lateness.
Rows late for the windows are thus never dropped silently, and a backlog (a job restart, a bridge catching up, a
bounded replay) read in any order still ends with every window equal to a recount.

Clock skew. A capture time more than ``clock_skew_tolerance`` ahead of the bridge's receive time cannot be a
delay: the device clock is fast. Its frames are dead-lettered with the offset (their windows would be wrong);
its metrics and statuses are kept at their receive time, so its health shows the offset (``clock_offset_s``).

Cost model (measured in the generated code and with JFR): every Calc operator Flink generates copies every
string and array field it reads, for every row, before it evaluates its filter. When these views filtered one
shared table, each branch's first operator read every row; the split in Java reads each row once, and the only
view over every valid frame is the windows' own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


def interval(seconds: float) -> str:
    """A DAY TO SECOND literal (a plain SECOND literal is limited to 2 digits, i.e. < 100 s)."""
    ms = int(round(seconds * 1000))
    d, ms = divmod(ms, 86_400_000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"INTERVAL '{d} {h:02d}:{m:02d}:{s:02d}.{ms:03d}' DAY TO SECOND"


def quote(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


@dataclass(frozen=True)
class SqlOptions:
    window_s: float = 10.0
    slide_s: Optional[float] = None
    out_of_orderness_s: float = 0.5
    allowed_lateness_s: float = 86_400.0
    clock_skew_tolerance_s: float = 2.0
    high_sigma_threshold: float = 0.25
    stats_interval_s: float = 10.0
    topic_prefix: str = "sigmawatch"     # the edge topics' prefix (the bridge's mqtt.topic_prefix)

    @property
    def slide_ms(self) -> int:
        return int(round((self.slide_s or self.window_s) * 1000))

    @property
    def size_ms(self) -> int:
        return int(round(self.window_s * 1000))

    @property
    def lateness_ms(self) -> int:
        return int(round(self.allowed_lateness_s * 1000))

    def window_tvf(self, table: str, time_col: str = "rt") -> str:
        if self.slide_s:
            return (f"TABLE(HOP(TABLE {table}, DESCRIPTOR({time_col}), {interval(self.slide_s)}, "
                    f"{interval(self.window_s)}))")
        return f"TABLE(TUMBLE(TABLE {table}, DESCRIPTOR({time_col}), {interval(self.window_s)}))"


# The landing line's fields as the job reads them (stream.landing writes them).
LANDING_FIELDS = (
    ("kind", "STRING"), ("topic", "STRING"), ("device", "STRING"), ("recv_ts", "DOUBLE"), ("reason", "STRING"),
    ("raw_payload", "STRING"), ("seq", "BIGINT"), ("ts", "DOUBLE"), ("fps", "DOUBLE"), ("dropped", "BIGINT"),
    ("depth", "BIGINT"), ("state", "STRING"),
    ("dets", "ARRAY<ROW<c INT, l STRING, p DOUBLE, g DOUBLE, f INT, h INT, t BIGINT>>"),
    ("records", "BIGINT"), ("devices", "ARRAY<ROW<d STRING, r DOUBLE, m BIGINT>>"), ("file", "STRING"),
    # track events and object counts (stream.landing), one nested column (every landing row carries each column
    # through the dedup shuffle, null or not): event type, label, start, end, line, direction; counts JSON
    ("ob", "ROW<ev STRING, el STRING, es DOUBLE, ee DOUBLE, xl STRING, xd STRING, oc STRING>"),
)

# row categories (LandingSplit's vcat): OK (frames, beats), DEAD, EOF (trailers) or OBJ (track events and object
# counts: they never enter the frames' windows)
OK, DEAD, EOF, OBJ = 0, 2, 3, 4
# the message kinds a valid line has; kcode = the index here (LandingSplit.KINDS, same order)
KINDS = ("detections", "metrics", "status", "events", "objects")


def _kind_name(kcode: str) -> str:
    """The kind of a kind code (KINDS[kcode]), as SQL."""
    whens = " ".join(f"WHEN {i} THEN {quote(k)}" for i, k in enumerate(KINDS[:-1]))
    return f"CASE {kcode} {whens} ELSE {quote(KINDS[-1])} END"


def landing_row_type() -> str:
    """The landing line's fields as one Flink SQL row type (the landing source's json decoding reads these)."""
    return "ROW<" + ", ".join(f"`{c}` {t}" for c, t in LANDING_FIELDS) + ">"


@dataclass(frozen=True)
class SplitTables:
    """The names of the four tables ``LandingSplit`` divides the deduplicated landing rows into, each row into
    exactly one: frames and beats on time for their windows, late rows within the allowed lateness (frames,
    beats, and every valid track event and object count), rejects (dead lines, clock skew, beyond the allowed
    lateness) and the files' trailers.

    Each has the landing fields, the columns ``LandingSplit.splitType`` appends (``ts_ms``: the event time in ms,
    0 for rows that cannot be valid and for frames of a device whose clock is fast; ``vcat``: OK, DEAD, EOF, OBJ;
    ``kcode``: the index in KINDS, 4 also for unknown kinds; ``lt``: 1 if late for its earliest window), ``rt``
    (the event time as the rowtime attribute, with the job's one watermark) and ``pt`` (the processing time)."""
    ontime: str = "landing_ontime"
    late: str = "landing_late"
    rejects: str = "landing_rejects"
    trailers: str = "landing_trailers"


def views(t: SplitTables, o: SqlOptions) -> list[str]:
    """CREATE VIEW statements, in dependency order, over the four tables of ``t`` (see :class:`SplitTables`;
    ``stream.pipeline.landing_tables`` registers them)."""
    tol = float(o.clock_skew_tolerance_s)
    return [
        # dead lines, frames of a device whose clock is fast, frames later than the allowed lateness. A valid line
        # has no topic (stream.landing): rebuilt here, from the kind code
        f"""CREATE TEMPORARY VIEW rejects AS SELECT CASE WHEN vcat = {DEAD} THEN 'dead' ELSE 'too_late' END AS category,
  pt, recv_ts, COALESCE(topic, CONCAT({quote(o.topic_prefix.strip("/") + "/")}, device, '/',
    {_kind_name("kcode")})) AS topic, device,
  CASE WHEN vcat <> {DEAD} THEN CONCAT('too late: captured ', CAST(CAST(recv_ts - ts AS BIGINT) AS STRING),
         ' s before it reached the bridge, beyond the allowed lateness of the window it belongs to')
       WHEN reason IS NOT NULL THEN reason
       WHEN ts > recv_ts + {tol!r} THEN CONCAT('clock skew: capture time ', CAST(ROUND(ts - recv_ts, 3) AS STRING),
         ' s ahead of the bridge clock (tolerance {tol:g} s): check the device clock (NTP)')
       ELSE 'landing line without a valid kind/device (or detections without seq/ts/dets)' END AS reason,
  raw_payload, seq, COALESCE(ts, recv_ts) AS ts
FROM {t.rejects}""",
        # frames and beats on time: into the windows. (Copies of a frame were dropped by SeqDedup; beats need
        # no dedup: their aggregates, max and latest, are idempotent.)
        f"""CREATE TEMPORARY VIEW ontime AS SELECT device, kcode, ts_ms, rt, dets, fps, dropped, depth, state,
  CASE WHEN kcode = 1 THEN recv_ts - ts END AS off
FROM {t.ontime}""",
        # late but within the allowed lateness: to Python, which adds them to their windows' results. With them, in
        # the same table: track events and object counts within the allowed lateness, on time or late, whole. Few
        # rows (a track's few events; counts when they change), added up on the Python side
        # (stream.windows.DeviceWindow), which publishes a window's objects when the watermark passes its end and
        # revises them for late ones
        f"""CREATE TEMPORARY VIEW late_rows AS SELECT * FROM {t.late}""",
        # what the counters count: rejects by category, and late frames and events (corrections)
        f"""CREATE TEMPORARY VIEW counted AS SELECT category, pt, reason FROM rejects
  UNION ALL SELECT 'late' AS category, pt, CAST(NULL AS STRING) AS reason FROM late_rows
  WHERE vcat = {OK} OR lt = 1""",
        # one row per detection; one row with class NULL per frame without detections and per beat
        # (frame = 1 marks a frame's first row, so frames per device = SUM(frame)); track: the agent's track id
        f"""CREATE TEMPORARY VIEW beats AS
  SELECT m.window_start, m.window_end, m.device, m.rt, m.ts_ms, d.c AS class_id, d.l AS label, d.p AS score,
         d.g AS sigma_mean, d.f AS first_of_class, d.t AS track,
         CASE WHEN m.kcode <> 0 THEN 0 WHEN d.c IS NULL THEN 1 ELSE COALESCE(d.h, 0) END AS frame,
         m.fps, m.dropped, m.depth, m.state, m.off
  FROM {o.window_tvf("ontime")} AS m LEFT JOIN UNNEST(m.dets) AS d (c, l, p, g, f, h, t) ON TRUE""",
        # per window, device, class (NULL: frames without detections, metrics, status) and track (NULL: detections
        # without one): sums (means are sum / count, exactly what AVG computes); the payloads (aggregate per device
        # and class, fleet totals, health; per device and class the distinct tracks) are made from these cells on
        # the Python side, which also adds late frames to them. The track in the key splits a class's sums into one
        # cell per track (they add up again in Python): distinct tracks per window with no second aggregation
        f"""CREATE TEMPORARY VIEW cells AS SELECT window_start, window_end, device, class_id, track,
  COUNT(class_id) AS n, COUNT(sigma_mean) AS n_sigma, SUM(first_of_class) AS frames_c, SUM(score) AS score_sum,
  SUM(sigma_mean) AS sigma_sum, MAX(sigma_mean) AS sigma_max,
  SUM(CASE WHEN sigma_mean >= {o.high_sigma_threshold!r} THEN 1 ELSE 0 END) AS high,
  MAX(label) AS label, SUM(frame) AS frames, MAX(ts_ms) AS last_ms, MAX(dropped) AS dropped,
  {_latest('fps')} AS fps_l, {_latest('depth')} AS depth_l, {_latest('state')} AS state_l, {_latest('off')} AS off_l
FROM beats GROUP BY window_start, window_end, device, class_id, track""",
    ]


def _latest(col: str) -> str:
    """MAX over "<16-digit ts_ms>|<value>": the value of the window's latest capture (ties: the larger value).

    Unlike ``LAST_VALUE`` (arrival order) it merges, so the aggregation runs two-phase (local pre-aggregation
    before the shuffle); it is deterministic (a replay after a restore gives the same value) and also right
    for sliding windows. :func:`_value` takes the value out again."""
    return (f"MAX(CASE WHEN {col} IS NOT NULL THEN CONCAT(LPAD(CAST(ts_ms AS STRING), 16, '0'), '|', "
            f"CAST({col} AS STRING)) END)")


def _value(latest: str) -> str:
    return f"SUBSTRING({latest} FROM 18)"


# Every output row of the SQL part has these columns (unused ones NULL), so that all outputs form ONE
# union table and ONE conversion to a DataStream: the planner then shares the source and the common
# views between them (each separate conversion would instantiate and parse the source again).
DETS_TYPE = "ARRAY<ROW<c INT, l STRING, p DOUBLE, g DOUBLE, f INT, h INT, t BIGINT>>"
OUTPUT_COLUMNS = [
    ("okind", "STRING"), ("device", "STRING"), ("class_id", "INT"), ("label", "STRING"),
    ("ws", "BIGINT"), ("we", "BIGINT"),
    # a cell's sums (stream.functions.DeviceWindows makes the payloads of them)
    ("detections", "BIGINT"), ("with_sigma", "BIGINT"), ("frames_c", "BIGINT"), ("score_sum", "DOUBLE"),
    ("sigma_sum", "DOUBLE"), ("sigma_max", "DOUBLE"), ("high", "BIGINT"), ("frames", "BIGINT"),
    ("last_ms", "BIGINT"), ("dropped", "BIGINT"),
    # a cell's latest beat values as "<16-digit capture ms>|<value>" (compared with late beats' by capture time)
    ("fps_l", "STRING"), ("depth_l", "STRING"), ("state_l", "STRING"), ("off_l", "STRING"),
    # a late beat's values
    ("fps", "DOUBLE"), ("outbox_depth", "BIGINT"), ("state", "STRING"), ("clock_offset", "DOUBLE"),
    # job counters
    ("dead_letters", "BIGINT"), ("too_late", "BIGINT"), ("late", "BIGINT"), ("reasons", "STRING"),
    # trailers
    ("file", "STRING"), ("records", "BIGINT"), ("messages", "BIGINT"),
    # rejects, and late frames (with their detections)
    ("category", "STRING"), ("recv_ts", "DOUBLE"), ("topic", "STRING"), ("reason", "STRING"),
    ("raw_payload", "STRING"), ("seq", "BIGINT"), ("ts", "DOUBLE"), ("kcode", "INT"), ("dets", DETS_TYPE),
    # a cell's track (NULL: detections without one); track events and object counts (label is the event's)
    ("track", "BIGINT"), ("ev", "STRING"), ("es", "DOUBLE"), ("ee", "DOUBLE"), ("xl", "STRING"), ("xd", "STRING"),
    ("oc", "STRING"),
]


def epoch_ms(col: str) -> str:
    c = f"CAST({col} AS TIMESTAMP(3))"
    return f"(EXTRACT(EPOCH FROM {c}) * 1000 + EXTRACT(MILLISECOND FROM {c}))"


def _project(out: str, exprs: dict[str, str]) -> str:
    """Project ``exprs`` onto OUTPUT_COLUMNS; ``out`` is the output kind (a literal) unless exprs has "okind"."""
    cols = []
    for name, typ in OUTPUT_COLUMNS:
        if name == "okind":
            cols.append(f"{exprs.get('okind', quote(out))} AS okind")
        elif name in exprs:
            cols.append(f"CAST({exprs[name]} AS {typ}) AS `{name}`")
        else:
            cols.append(f"CAST(NULL AS {typ}) AS `{name}`")
    return ",\n  ".join(cols)


def _window(exprs: dict[str, str]) -> dict[str, str]:
    return {"ws": epoch_ms("window_start"), "we": epoch_ms("window_end"), **exprs}


def _cell_fields() -> dict[str, str]:
    return {"device": "device", "class_id": "class_id", "track": "track", "label": "label", "detections": "n",
            "with_sigma": "n_sigma",
            "frames_c": "frames_c", "score_sum": "score_sum", "sigma_sum": "sigma_sum", "sigma_max": "sigma_max",
            "high": "high", "frames": "frames", "last_ms": "last_ms", "dropped": "dropped",
            "fps_l": "fps_l", "depth_l": "depth_l", "state_l": "state_l", "off_l": "off_l"}


_LISTAGG_REASONS = "LISTAGG(REPLACE(reason, CHR(10), ' '), '\n')"   # separator must be a literal


OUTPUT_PARTS = ("cells", "late", "stats", "consumed", "activity", "reject")


def output_parts(t: SplitTables, o: SqlOptions, include: tuple[str, ...] = OUTPUT_PARTS) -> dict[str, str]:
    """One SELECT per output kind, each projected onto OUTPUT_COLUMNS."""
    parts = {
        # the windows' cells: one row per window, device, class (class NULL: frames without detections, beats) and
        # track (NULL: detections without one)
        "cells": f"""SELECT {_project("cell", _window(_cell_fields()))} FROM cells""",
        # late frames and beats within the allowed lateness, whole (the Python side adds them to their windows); and
        # track events and object counts (okind 'object'; their ts as sent: the counts' as_of)
        "late": f"""SELECT {_project("late", {
            "okind": f"CASE WHEN vcat = {OBJ} THEN CAST('object' AS STRING) ELSE CAST('late' AS STRING) END",
            "device": "device", "kcode": "kcode", "seq": "seq",
            "ts": f"CASE WHEN vcat = {OBJ} THEN ts ELSE CAST(ts_ms AS DOUBLE) / 1000 END",
            "recv_ts": "recv_ts", "dets": "dets", "fps": "fps", "dropped": "dropped", "outbox_depth": "depth",
            "state": "state", "clock_offset": "CASE WHEN kcode = 1 THEN recv_ts - ts END",
            "label": "ob.el", "ev": "ob.ev", "es": "ob.es", "ee": "ob.ee", "xl": "ob.xl", "xd": "ob.xd",
            "oc": "ob.oc"})}
FROM late_rows""",
        # processing-time counters: dead letters, frames too late (dead-lettered), late frames (corrections)
        "stats": f"""SELECT {_project("stats", _window({
            "dead_letters": "COUNT(*) FILTER (WHERE category <> 'late')",
            "too_late": "COUNT(*) FILTER (WHERE category = 'too_late')",
            "late": "COUNT(*) FILTER (WHERE category = 'late')",
            "reasons": _LISTAGG_REASONS}))}
FROM TABLE(TUMBLE(TABLE counted, DESCRIPTOR(pt), {interval(o.stats_interval_s)})) GROUP BY window_start, window_end""",
        # the eof trailer of each landing file (stream.landing): its consumption record, committed with the
        # checkpoint (drives the bridge's cleanup), and per device the valid messages in it (liveness)
        "consumed": f"""SELECT {_project("consumed", {"file": "file", "records": "records"})}
FROM {t.trailers}""",
        # and the trailers' device arrays
        "activity": f"""SELECT {_project("activity", {"device": "a.d", "recv_ts": "a.r", "messages": "a.m"})}
FROM (SELECT devices FROM {t.trailers}) CROSS JOIN UNNEST(devices) AS a (d, r, m)""",
        "reject": f"""SELECT {_project("reject", {c: c for c in ("category", "recv_ts", "topic", "device", "reason",
                                                               "raw_payload", "seq", "ts")})}
FROM rejects""",
    }
    return {k: v for k, v in parts.items() if k in include}


def outputs_query(t: SplitTables, o: SqlOptions, include: tuple[str, ...] = None) -> str:
    parts = output_parts(t, o, **({"include": include} if include else {}))
    return "\nUNION ALL\n".join(f"({q})" for q in parts.values())


def blackhole_ddl(name: str, columns: str) -> str:
    return f"CREATE TEMPORARY TABLE {name} ({columns}) WITH ('connector' = 'blackhole')"
