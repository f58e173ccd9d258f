"""The Flink SQL of the job: source DDL, parsing, late split, dedup, windows. Pure strings, no PyFlink import.

All per-event work happens here (JSON decoding by the json format, filtering, dedup, windowing); Python
only sees the few rows windows produce.

Dedup on (device, seq): Flink's proctime keep-first ROW_NUMBER deduplication (an append-only operator whose
state is bounded by ``table.exec.state.ttl`` = ``job.dedup_ttl_s``). It runs *before* the windows on frames,
so a duplicate is dropped whichever window it falls in and however windows slide. Its state only needs to
outlive the time until the frame's windows have closed (then a duplicate is late anyway): the default
TTL of one hour is far beyond ``window + out_of_orderness``.

Late events: an event is dropped by a window operator iff the slice it belongs to has already fired,
i.e. ``slice_end - 1 ms <= watermark`` with ``slice_end = floor(ts / slide) * slide + slide``. The same
condition, evaluated with ``CURRENT_WATERMARK`` right after the source, splits late events off *before*
the windows (to the ``late`` sink and the counters); since the window operator's watermark never runs ahead
of the one seen here, nothing reaching the windows is dropped silently.
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
    activity_interval_s: float = 1.0
    consumed_interval_s: float = 1.0

    @property
    def slide_ms(self) -> int:
        return int(round((self.slide_s or self.window_s) * 1000))

    def window_tvf(self, table: str, time_col: str = "rt") -> str:
        if self.slide_s:
            return (f"TABLE(HOP(TABLE {table}, DESCRIPTOR({time_col}), {interval(self.slide_s)}, "
                    f"{interval(self.window_s)}))")
        return f"TABLE(TUMBLE(TABLE {table}, DESCRIPTOR({time_col}), {interval(self.window_s)}))"


def source_ddl(name: str, path: str, monitor_interval_s: Optional[float], out_of_orderness_s: float,
               max_future_s: float = 300.0) -> str:
    """The landing table: one row per landing line (see stream.landing), JSON decoded by Flink's json format.

    The event time ``ts_ms`` is the capture ts of valid messages (the bridge's receive time for a status without
    ts). Rows that cannot be valid, and capture times more than ``max_future_s`` ahead of the bridge's clock,
    get ts 0: one bad message or device clock must never push the shared watermark ahead (that would make
    every other device's events late); they are dead-lettered.
    """
    opts = {"connector": "filesystem", "path": path, "format": "json", "json.ignore-parse-errors": "true",
            "json.fail-on-missing-field": "false"}
    if monitor_interval_s:
        opts["source.monitor-interval"] = f"{int(round(monitor_interval_s * 1000))} ms"
    with_ = ", ".join(f"{quote(k)} = {quote(v)}" for k, v in opts.items())
    return f"""
CREATE TEMPORARY TABLE {name} (
  topic STRING, device STRING, kind STRING, recv_ts DOUBLE, reason STRING, raw_payload STRING,
  msg ROW<seq BIGINT, ts DOUBLE, fps DOUBLE, state STRING,
          detections ARRAY<ROW<class_id INT, label STRING, score DOUBLE, sigma_mean DOUBLE>>,
          frames ROW<dropped BIGINT>, outbox ROW<depth BIGINT>>,
  file_path STRING NOT NULL METADATA FROM 'file.path' VIRTUAL,
  ts_ms AS CAST(CASE
    WHEN kind NOT IN ('detections', 'metrics', 'status') OR device IS NULL OR recv_ts IS NULL THEN 0
    WHEN msg.ts IS NULL THEN (CASE WHEN kind = 'status' THEN recv_ts ELSE 0 END)
    WHEN msg.ts > recv_ts + {max_future_s!r} THEN 0
    ELSE msg.ts END * 1000 AS BIGINT),
  rt AS TO_TIMESTAMP_LTZ(CAST(CASE
    WHEN kind NOT IN ('detections', 'metrics', 'status') OR device IS NULL OR recv_ts IS NULL THEN 0
    WHEN msg.ts IS NULL THEN (CASE WHEN kind = 'status' THEN recv_ts ELSE 0 END)
    WHEN msg.ts > recv_ts + {max_future_s!r} THEN 0
    ELSE msg.ts END * 1000 AS BIGINT), 3),
  pt AS PROCTIME(),
  WATERMARK FOR rt AS rt - {interval(out_of_orderness_s)}
) WITH ({with_})"""


def views(src: str, o: SqlOptions) -> list[str]:
    """CREATE VIEW statements, in dependency order."""
    slide = o.slide_ms
    valid = ("ts_ms > 0 AND kind IN ('detections', 'metrics', 'status') AND device IS NOT NULL AND msg IS NOT NULL "
             "AND (kind <> 'detections' OR (msg.seq IS NOT NULL AND msg.ts IS NOT NULL AND msg.detections IS NOT NULL))")
    return [
        # classify every landing row once
        f"""CREATE TEMPORARY VIEW classified AS SELECT *,
  CASE WHEN NOT ({valid}) THEN 'dead'
       WHEN TO_TIMESTAMP_LTZ(ts_ms - MOD(ts_ms, {slide}) + {slide} - 1, 3) <= CURRENT_WATERMARK(rt) THEN 'late'
       ELSE 'ok' END AS category
FROM {src}""",
        "CREATE TEMPORARY VIEW ontime AS SELECT * FROM classified WHERE category = 'ok'",
        """CREATE TEMPORARY VIEW rejects AS SELECT category, pt, recv_ts, topic, device, kind,
  CASE WHEN category = 'late' THEN 'late: capture time behind the watermark'
       WHEN reason IS NOT NULL THEN reason
       WHEN msg.ts > recv_ts THEN 'ts: capture time too far ahead of the bridge clock (check the device clock)'
       ELSE 'landing line without a valid kind/device/msg (or detections without seq/ts)' END AS reason,
  raw_payload, msg.seq AS seq, COALESCE(msg.ts, recv_ts) AS ts
FROM classified WHERE category <> 'ok'""",
        # dedup frames on (device, seq), keep the first arrival
        """CREATE TEMPORARY VIEW frames AS SELECT device, seq, ts_ms, rt, detections FROM (
  SELECT device, msg.seq AS seq, ts_ms, rt, msg.detections AS detections,
         ROW_NUMBER() OVER (PARTITION BY device, msg.seq ORDER BY pt ASC) AS rn
  FROM ontime WHERE kind = 'detections') WHERE rn = 1""",
        """CREATE TEMPORARY VIEW dets AS SELECT f.device, f.seq, f.rt, d.class_id, d.label, d.score, d.sigma_mean
FROM frames AS f CROSS JOIN UNNEST(f.detections) AS d (class_id, label, score, sigma_mean)""",
    ]


# Every output row of the SQL part has these columns (unused ones NULL), so that all outputs form ONE
# union table and ONE conversion to a DataStream: the planner then shares the source and the common
# views between them (each separate conversion would instantiate and parse the source again).
OUTPUT_COLUMNS = [
    ("okind", "STRING"), ("device", "STRING"), ("class_id", "INT"), ("label", "STRING"),
    ("ws", "BIGINT"), ("we", "BIGINT"),
    ("detections", "BIGINT"), ("frames", "BIGINT"), ("score_mean", "DOUBLE"), ("sigma_mean", "DOUBLE"),
    ("sigma_max", "DOUBLE"), ("high_sigma_share", "DOUBLE"), ("devices", "BIGINT"),
    ("last_seen", "DOUBLE"), ("fps", "DOUBLE"), ("dropped", "BIGINT"), ("outbox_depth", "BIGINT"),
    ("state", "STRING"), ("dead_letters", "BIGINT"), ("late", "BIGINT"), ("reasons", "STRING"),
    ("file_path", "STRING"), ("records", "BIGINT"),
    ("category", "STRING"), ("recv_ts", "DOUBLE"), ("topic", "STRING"), ("reason", "STRING"),
    ("raw_payload", "STRING"), ("seq", "BIGINT"), ("ts", "DOUBLE"),
]


def epoch_ms(col: str) -> str:
    c = f"CAST({col} AS TIMESTAMP(3))"
    return f"(EXTRACT(EPOCH FROM {c}) * 1000 + EXTRACT(MILLISECOND FROM {c}))"


def _project(out: str, exprs: dict[str, str]) -> str:
    cols = []
    for name, typ in OUTPUT_COLUMNS:
        if name == "okind":
            cols.append(f"{quote(out)} AS okind")
        elif name in exprs:
            cols.append(f"CAST({exprs[name]} AS {typ}) AS `{name}`")
        else:
            cols.append(f"CAST(NULL AS {typ}) AS `{name}`")
    return ",\n  ".join(cols)


def _window(exprs: dict[str, str]) -> dict[str, str]:
    return {"ws": epoch_ms("window_start"), "we": epoch_ms("window_end"), **exprs}


def _class_stats(o: SqlOptions) -> dict[str, str]:
    return {"detections": "COUNT(*)", "score_mean": "AVG(score)", "sigma_mean": "AVG(sigma_mean)",
            "sigma_max": "MAX(sigma_mean)", "label": "MAX(label)", "class_id": "class_id",
            "high_sigma_share": f"AVG(CASE WHEN sigma_mean >= {o.high_sigma_threshold!r} THEN 1.0 ELSE 0.0 END)"}


_LISTAGG_REASONS = "LISTAGG(REPLACE(reason, CHR(10), ' '), '\n')"   # separator must be a literal


def output_parts(src: str, o: SqlOptions, include: tuple[str, ...] = ("aggregate", "fleet", "health", "stats",
                                                                     "activity", "consumed", "reject")) -> dict[str, str]:
    """One SELECT per output kind, each projected onto OUTPUT_COLUMNS."""
    # LAST_VALUE cannot merge the slices that sliding windows share: there, health reports the window's max.
    last = "MAX" if o.slide_s else "LAST_VALUE"
    parts = {
        "aggregate": f"""SELECT {_project("aggregate", _window({**_class_stats(o), "device": "device",
                                                                "frames": "COUNT(DISTINCT seq)"}))}
FROM {o.window_tvf('dets')} GROUP BY window_start, window_end, device, class_id""",
        "fleet": f"""SELECT {_project("fleet", _window({**_class_stats(o), "devices": "COUNT(DISTINCT device)",
                                                        "frames": "COUNT(DISTINCT CONCAT(device, '/', CAST(seq AS STRING)))"}))}
FROM {o.window_tvf('dets')} GROUP BY window_start, window_end, class_id""",
        "health": f"""SELECT {_project("health", _window({
            "device": "device", "last_seen": "CAST(MAX(ts_ms) AS DOUBLE) / 1000",
            "frames": "COUNT(DISTINCT CASE WHEN kind = 'detections' THEN msg.seq END)",
            "fps": f"{last}(msg.fps)", "dropped": "MAX(msg.frames.dropped)",
            "outbox_depth": f"{last}(msg.outbox.depth)", "state": f"{last}(msg.state)"}))}
FROM {o.window_tvf('ontime')} GROUP BY window_start, window_end, device""",
        # processing-time counters of dead letters and late events
        "stats": f"""SELECT {_project("stats", _window({
            "dead_letters": "COUNT(*) FILTER (WHERE category = 'dead')",
            "late": "COUNT(*) FILTER (WHERE category = 'late')",
            "reasons": _LISTAGG_REASONS}))}
FROM TABLE(TUMBLE(TABLE rejects, DESCRIPTOR(pt), {interval(o.stats_interval_s)})) GROUP BY window_start, window_end""",
        # per device and second of processing time: the device is alive (late events count too)
        "activity": f"""SELECT {_project("activity", {"device": "device", "recv_ts": "MAX(recv_ts)",
                                                      "records": "COUNT(*)"})}
FROM TABLE(TUMBLE(TABLE classified, DESCRIPTOR(pt), {interval(o.activity_interval_s)}))
WHERE category <> 'dead' GROUP BY window_start, window_end, device""",
        # lines read per landing file, committed with the checkpoint: drives the bridge's cleanup
        "consumed": f"""SELECT {_project("consumed", {"file_path": "file_path", "records": "COUNT(*)"})}
FROM TABLE(TUMBLE(TABLE {src}, DESCRIPTOR(pt), {interval(o.consumed_interval_s)}))
GROUP BY window_start, window_end, file_path""",
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
