"""The Flink SQL of the job: source DDL, parsing, late split, dedup, windows. Pure strings, no PyFlink import.

All per-event work happens here (JSON decoding of the bridge's flat lines by the json format, filtering, dedup,
windowing); Python only sees the few rows windows produce. Per event there is one keyed shuffle (the dedup);
the window aggregations pre-aggregate locally before theirs (two-phase), and consumption/activity records
come from the landing files' trailers, without a per-line aggregation.

Dedup on (device, seq): Flink's window deduplication (keep the first row per window, device and seq). Copies of
a frame (edge outbox replays, bridge redeliveries, in whatever landing files and bridges) carry the same
capture ts, so they fall into the same windows (with sliding windows: each of the frame's windows dedups it);
the state lives only until the window fires. A copy arriving after its window fired is late and is split off
as late (dead-lettered and counted) before it could reach the windows. Metrics and statuses (no seq) go
through the same operator keyed by (device, capture ms, kind), so that the window aggregation after it has
a single input and runs in the same task (measured: one network hop per detection less).

Cost model (measured in the generated code and with JFR): every Calc operator Flink generates copies every
string and array field it reads, for every row, before it evaluates its filter, even a field it only
compares. So: one Calc before the watermark assigner computes the event time and, as integers, each row's
category (``vcat``: ok, dead, trailer) and kind code; every branch after it filters on integers; the branches
that keep few rows (rejects, trailers) read few strings; no Calc only drops columns (the dedup view keeps
the window TVF's columns as they are); and the landing lines carry no field the job does not need.

Late events: an event is dropped by a window operator iff the slice it belongs to has already fired,
i.e. ``slice_end - 1 ms <= watermark`` with ``slice_end = floor(ts / slide) * slide + slide``. The same
condition, evaluated with ``CURRENT_WATERMARK`` in the branches' first operators (chained after the job's one
watermark assigner, so every branch sees the same watermark at the same row), splits late events off
*before* the windows (to the ``late`` sink and the counters); since the window operator's watermark never
runs ahead of the one seen there, nothing reaching the windows is dropped silently.
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
    out_of_orderness_s: float = 2.0
    high_sigma_threshold: float = 0.25
    stats_interval_s: float = 10.0
    topic_prefix: str = "sigmawatch"     # the edge topics' prefix (the bridge's mqtt.topic_prefix)

    @property
    def slide_ms(self) -> int:
        return int(round((self.slide_s or self.window_s) * 1000))

    def window_tvf(self, table: str, time_col: str = "rt") -> str:
        if self.slide_s:
            return (f"TABLE(HOP(TABLE {table}, DESCRIPTOR({time_col}), {interval(self.slide_s)}, "
                    f"{interval(self.window_s)}))")
        return f"TABLE(TUMBLE(TABLE {table}, DESCRIPTOR({time_col}), {interval(self.window_s)}))"


# The landing line's fields as the job reads them (stream.landing writes them).
LANDING_FIELDS = (
    ("kind", "STRING"), ("topic", "STRING"), ("device", "STRING"), ("recv_ts", "DOUBLE"), ("reason", "STRING"),
    ("raw_payload", "STRING"), ("seq", "BIGINT"), ("ts", "DOUBLE"), ("fps", "DOUBLE"), ("dropped", "BIGINT"),
    ("depth", "BIGINT"), ("state", "STRING"), ("dets", "ARRAY<ROW<c INT, l STRING, p DOUBLE, g DOUBLE, f INT, h INT>>"),
    ("records", "BIGINT"), ("devices", "ARRAY<ROW<d STRING, r DOUBLE, m BIGINT>>"), ("file", "STRING"),
)

# row categories: vcat (computed with the event time) is OK, DEAD or EOF; lateness is decided per branch against
# the watermark (late_condition)
OK, DEAD, EOF = 0, 2, 3
# the message kinds a valid line has; kcode = the index here
KINDS = ("detections", "metrics", "status")


def _kind_code(kind: str) -> str:
    """``kind`` (a string column) as its code, an INT."""
    whens = " ".join(f"WHEN {quote(k)} THEN {i}" for i, k in enumerate(KINDS[:-1]))
    return f"CASE {kind} {whens} ELSE {len(KINDS) - 1} END"


def _kind_name(kcode: str) -> str:
    """The inverse of :func:`_kind_code`."""
    whens = " ".join(f"WHEN {i} THEN {quote(k)}" for i, k in enumerate(KINDS[:-1]))
    return f"CASE {kcode} {whens} ELSE {quote(KINDS[-1])} END"


def source_ddl(name: str, path: str, monitor_interval_s: Optional[float], out_of_orderness_s: float,
               max_future_s: float = 300.0) -> str:
    """The landing table: one row per landing line (flat, see stream.landing), decoded by Flink's json format.

    The event time ``ts_ms`` is the capture ts of valid messages (the bridge's receive time for a status without
    ts). Rows that cannot be valid, and capture times more than ``max_future_s`` ahead of the bridge's clock,
    get ts 0: one bad message or device clock must never push the shared watermark ahead (that would make
    every other device's events late); they are dead-lettered. ``vcat`` is the row's category (OK, DEAD,
    EOF for the files' trailers) and ``kcode`` its kind (0 detections, 1 metrics, 2 status), as integers, so
    that the operators after this one filter without reading a string.
    """
    opts = {"connector": "filesystem", "path": path, "format": "json", "json.ignore-parse-errors": "true",
            "json.fail-on-missing-field": "false"}
    if monitor_interval_s:
        opts["source.monitor-interval"] = f"{int(round(monitor_interval_s * 1000))} ms"
    with_ = ", ".join(f"{quote(k)} = {quote(v)}" for k, v in opts.items())
    when = f"""CASE
    WHEN kind NOT IN ({", ".join(quote(k) for k in KINDS)}) OR device IS NULL OR recv_ts IS NULL THEN 0
    WHEN ts IS NULL THEN (CASE WHEN kind = 'status' THEN recv_ts ELSE 0 END)
    WHEN ts > recv_ts + CAST({float(max_future_s)!r} AS DOUBLE) THEN 0
    ELSE ts END"""
    ts_ms = f"CAST({when} * 1000 AS BIGINT)"
    valid = (f"{ts_ms} > 0 AND (kind <> 'detections' OR (seq IS NOT NULL AND ts IS NOT NULL AND dets IS NOT NULL))")
    physical = ",\n  ".join(f"{c} {t}" for c, t in LANDING_FIELDS)
    return f"""
CREATE TEMPORARY TABLE {name} (
  {physical},
  ts_ms AS {ts_ms},
  rt AS TO_TIMESTAMP_LTZ({ts_ms}, 3),
  vcat AS CASE WHEN kind = 'eof' THEN {EOF} WHEN {valid} THEN {OK} ELSE {DEAD} END,
  kcode AS {_kind_code("kind")},
  WATERMARK FOR rt AS rt - {interval(out_of_orderness_s)}
) WITH ({with_})"""


def late_condition(o: SqlOptions) -> str:
    """TRUE for a row whose slice has already fired, FALSE otherwise, also before the first watermark (when
    CURRENT_WATERMARK is NULL: a plain comparison would be NULL, and a row neither late nor on time would be
    lost). Only meaningful after the job's single watermark assigner (stream.pipeline)."""
    slide = o.slide_ms
    return f"(TO_TIMESTAMP_LTZ(ts_ms - MOD(ts_ms, {slide}) + {slide} - 1, 3) <= CURRENT_WATERMARK(rt)) IS TRUE"


def views(src: str, o: SqlOptions) -> list[str]:
    """CREATE VIEW statements, in dependency order; ``src`` has the columns of :func:`source_ddl`'s table (with
    ``pt``) and the job's single watermark."""
    late = late_condition(o)
    return [
        # dead lines and late events. A valid line has no topic (stream.landing): rebuilt here, from the kind
        # code (the operator of every branch reads its fields for every row; kind is a string, kcode is not)
        f"""CREATE TEMPORARY VIEW rejects AS SELECT CASE WHEN vcat = {DEAD} THEN 'dead' ELSE 'late' END AS category,
  pt, recv_ts, COALESCE(topic, CONCAT({quote(o.topic_prefix.strip("/") + "/")}, device, '/',
    {_kind_name("kcode")})) AS topic, device,
  CASE WHEN vcat <> {DEAD} THEN 'late: capture time behind the watermark'
       WHEN reason IS NOT NULL THEN reason
       WHEN ts > recv_ts THEN 'ts: capture time too far ahead of the bridge clock (check the device clock)'
       ELSE 'landing line without a valid kind/device (or detections without seq/ts/dets)' END AS reason,
  raw_payload, seq, COALESCE(ts, recv_ts) AS ts
FROM {src} WHERE vcat = {DEAD} OR (vcat = {OK} AND {late})""",
        # frames, metrics and statuses on time, each with its dedup key: (device, seq) for frames; beats carry
        # no sequence number and are keyed by their capture time and kind (a replayed or redelivered beat is
        # the same message; the aggregates of beats, max and latest, are idempotent anyway)
        f"""CREATE TEMPORARY VIEW ontime AS SELECT device, kcode, ts_ms, rt, dets, fps, dropped, depth, state,
  CASE WHEN kcode = 0 THEN seq ELSE -(2 * ts_ms + kcode) END AS k
FROM {src} WHERE vcat = {OK} AND NOT ({late})""",
        # dedup per window: copies of a message carry the same capture ts, so they fall into the same windows;
        # the state lives only until the window fires. Frames and beats share one dedup operator, so the
        # window aggregation below has one input and runs in the same task (no per-detection network hop).
        # All of the window TVF's columns, in its order: dropping one would cost a Calc (a copy of every row)
        f"""CREATE TEMPORARY VIEW deduped AS
  SELECT device, kcode, ts_ms, rt, dets, fps, dropped, depth, state, k, window_start, window_end, window_time
  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, device, k ORDER BY rt ASC) AS rn
        FROM {o.window_tvf("ontime")}) WHERE rn = 1""",
        # one row per detection; one row with class NULL per frame without detections and per beat
        # (frame = 1 marks a frame's first row, so frames per device = SUM(frame))
        """CREATE TEMPORARY VIEW beats AS
  SELECT m.window_start, m.window_end, m.device, m.rt, m.ts_ms, d.c AS class_id, d.l AS label, d.p AS score,
         d.g AS sigma_mean, d.f AS first_of_class,
         CASE WHEN m.kcode <> 0 THEN 0 WHEN d.c IS NULL THEN 1 ELSE COALESCE(d.h, 0) END AS frame,
         m.fps, m.dropped, m.depth, m.state
  FROM deduped AS m LEFT JOIN UNNEST(m.dets) AS d (c, l, p, g, f, h) ON TRUE""",
        # per window, device and class (NULL: frames without detections, metrics, status): sums (means are
        # sum / count, exactly what AVG computes); aggregates, fleet totals and health are derived from these
        f"""CREATE TEMPORARY VIEW cells AS SELECT window_start, window_end, device, class_id,
  COUNT(class_id) AS n, COUNT(sigma_mean) AS n_sigma, SUM(first_of_class) AS frames_c, SUM(score) AS score_sum,
  SUM(sigma_mean) AS sigma_sum,
  MAX(sigma_mean) AS sigma_max, SUM(CASE WHEN sigma_mean >= {o.high_sigma_threshold!r} THEN 1 ELSE 0 END) AS high,
  MAX(label) AS label, SUM(frame) AS frames, MAX(ts_ms) AS last_ms, MAX(dropped) AS dropped,
  {_latest('fps')} AS fps_l, {_latest('depth')} AS depth_l, {_latest('state')} AS state_l
FROM beats GROUP BY window_start, window_end, device, class_id""",
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
OUTPUT_COLUMNS = [
    ("okind", "STRING"), ("device", "STRING"), ("class_id", "INT"), ("label", "STRING"),
    ("ws", "BIGINT"), ("we", "BIGINT"),
    ("detections", "BIGINT"), ("frames", "BIGINT"), ("score_mean", "DOUBLE"), ("with_sigma", "BIGINT"),
    ("sigma_mean", "DOUBLE"),
    ("sigma_max", "DOUBLE"), ("high_sigma_share", "DOUBLE"), ("devices", "BIGINT"),
    ("last_seen", "DOUBLE"), ("fps", "DOUBLE"), ("dropped", "BIGINT"), ("outbox_depth", "BIGINT"),
    ("state", "STRING"), ("dead_letters", "BIGINT"), ("late", "BIGINT"), ("reasons", "STRING"),
    ("file", "STRING"), ("records", "BIGINT"), ("messages", "BIGINT"),
    ("category", "STRING"), ("recv_ts", "DOUBLE"), ("topic", "STRING"), ("reason", "STRING"),
    ("raw_payload", "STRING"), ("seq", "BIGINT"), ("ts", "DOUBLE"),
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


def _class_stats() -> dict[str, str]:
    """Output fields from the cells grouped by (device, class) [one cell: the per-device aggregate], by class
    [the fleet: the sum of the window's device cells, one per device, so devices = COUNT(*)] or by device
    [health: all the device's cells, including the class-NULL one of frames without detections and metrics]."""
    health, fleet = "GROUPING(class_id) = 1", "GROUPING(device) = 1"
    return {"okind": f"CASE WHEN {health} THEN 'health' WHEN {fleet} THEN 'fleet' ELSE 'aggregate' END",
            "device": "device", "class_id": "class_id", "label": "MAX(label)", "detections": "SUM(n)",
            "frames": f"CASE WHEN {health} THEN SUM(frames) ELSE SUM(frames_c) END",
            # detections of a model without uncertainty (SSD, plain head: sigma NULL) count in detections and
            # score, not in the sigma statistics; with_sigma says over how many those are
            "score_mean": "SUM(score_sum) / SUM(n)", "with_sigma": "SUM(n_sigma)",
            "sigma_mean": "SUM(sigma_sum) / NULLIF(SUM(n_sigma), 0)", "sigma_max": "MAX(sigma_max)",
            "high_sigma_share": "CAST(SUM(high) AS DOUBLE) / NULLIF(SUM(n_sigma), 0)",
            "devices": f"CASE WHEN {fleet} THEN COUNT(*) END",
            "last_seen": "CAST(MAX(last_ms) AS DOUBLE) / 1000", "dropped": "MAX(dropped)",
            "fps": f"CAST({_value('MAX(fps_l)')} AS DOUBLE)",
            "outbox_depth": f"CAST({_value('MAX(depth_l)')} AS BIGINT)", "state": _value("MAX(state_l)")}


_LISTAGG_REASONS = "LISTAGG(REPLACE(reason, CHR(10), ' '), '\n')"   # separator must be a literal


OUTPUT_PARTS = ("windows", "stats", "consumed", "activity", "reject")


def output_parts(src: str, o: SqlOptions, include: tuple[str, ...] = OUTPUT_PARTS) -> dict[str, str]:
    """One SELECT per output kind, each projected onto OUTPUT_COLUMNS."""
    parts = {
        # per-(device, class) aggregates, per-class fleet totals and per-device health: one cascaded window
        # aggregation over the cells (the class-NULL cells only count for health)
        "windows": f"""SELECT * FROM (SELECT {_project("windows", _window(_class_stats()))}
FROM cells GROUP BY window_start, window_end, GROUPING SETS ((device, class_id), (class_id), (device)))
WHERE okind = 'health' OR class_id IS NOT NULL""",
        # processing-time counters of dead letters and late events
        "stats": f"""SELECT {_project("stats", _window({
            "dead_letters": "COUNT(*) FILTER (WHERE category = 'dead')",
            "late": "COUNT(*) FILTER (WHERE category = 'late')",
            "reasons": _LISTAGG_REASONS}))}
FROM TABLE(TUMBLE(TABLE rejects, DESCRIPTOR(pt), {interval(o.stats_interval_s)})) GROUP BY window_start, window_end""",
        # the eof trailer of each landing file (stream.landing): its consumption record, committed with the
        # checkpoint (drives the bridge's cleanup), and per device the valid messages in it (liveness)
        "consumed": f"""SELECT {_project("consumed", {"file": "file", "records": "records"})}
FROM {src} WHERE vcat = {EOF}""",
        # the trailers' device arrays only (unnesting the whole row would make its first operator copy every
        # field of every row)
        "activity": f"""SELECT {_project("activity", {"device": "a.d", "recv_ts": "a.r", "messages": "a.m"})}
FROM (SELECT devices FROM {src} WHERE vcat = {EOF}) CROSS JOIN UNNEST(devices) AS a (d, r, m)""",
        "reject": f"""SELECT {_project("reject", {c: c for c in ("category", "recv_ts", "topic", "device", "reason",
                                                               "raw_payload", "seq", "ts")})}
FROM rejects""",
    }
    return {k: v for k, v in parts.items() if k in include}


def outputs_query(src: str, o: SqlOptions, include: tuple[str, ...] = None) -> str:
    parts = output_parts(src, o, **({"include": include} if include else {}))
    return "\nUNION ALL\n".join(f"({q})" for q in parts.values())


def blackhole_ddl(name: str, columns: str) -> str:
    return f"CREATE TEMPORARY TABLE {name} ({columns}) WITH ('connector' = 'blackhole')"
