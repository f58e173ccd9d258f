"""``build_pipeline(env, t_env, source, sinks, cfg, rules)``: the whole job graph, separate from the launcher.

The JVM does all per-event work: the landing files read once by ``LandingSource``, every copy of a frame dropped
by ``SeqDedup``, each row's event time, the one watermark and its split into on time / late / rejects / trailers
by ``LandingSplit`` (the job's Java operators, stream/java/), then SQL (stream.sql) windows the on-time frames
into cells and projects everything onto one union table. One conversion to a DataStream hands those few
rows to Python (stream.functions): window results and their revisions (published to MQTT as they are made),
fleet totals, payloads, alerts, MQTT, and
Flink's exactly-once file sinks (``records/``, ``deadletter/``, ``consumed/`` under the output directory; files
become visible when the checkpoint that covers them completes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edge.contract.mqtt import MqttSettings
from stream import sql
from stream.config import AlertRules, JobConfig
from stream.functions import (
    DEST_ACTIVITY,
    DEST_CONSUMED,
    DEST_DEADLETTER,
    DEST_RECORDS,
    DeviceWindows,
    FleetWindows,
    MqttPublish,
    SilenceAlerts,
    ToPayload,
    WindowAlerts,
    is_fleet_delta,
    is_window_input,
    is_window_result,
    routing_key,
    untag,
    window_key,
)

TABLES = sql.SplitTables()


@dataclass(frozen=True)
class SourceSpec:
    path: str                                   # landing directory: local path or filesystem URI
    monitor_interval_s: Optional[float] = 0.2   # None = bounded: read the files present, close all windows, finish
    topic_prefix: str = "sigmawatch"            # the edge topics' prefix (mqtt.topic_prefix), for rebuilt topics


@dataclass(frozen=True)
class SinkSpec:
    output_dir: Optional[str] = None            # None = no files
    mqtt: Optional[MqttSettings] = None         # None = no MQTT
    python: bool = True                         # False: SQL outputs into a blackhole (throughput benchmark)
    client_id: str = "sigmawatch-job"


def options(cfg: JobConfig, topic_prefix: str) -> sql.SqlOptions:
    return sql.SqlOptions(window_s=cfg.window.size_s, slide_s=cfg.window.slide_s,
                          out_of_orderness_s=cfg.out_of_orderness_s, allowed_lateness_s=cfg.allowed_lateness_s,
                          clock_skew_tolerance_s=cfg.clock_skew_tolerance_s,
                          high_sigma_threshold=cfg.high_sigma_threshold,
                          stats_interval_s=cfg.stats_interval_s, topic_prefix=topic_prefix)


def _uri(path: str) -> str:
    return path if "://" in path else Path(path).resolve().as_uri()


def register_sql(env, t_env, source: SourceSpec, cfg: JobConfig) -> sql.SqlOptions:
    conf = t_env.get_config()
    conf.set("table.local-time-zone", "UTC")
    # SQL operators are written for object reuse; without it, every row an operator hands to the next in its
    # chain is deep-copied (measured with the earlier all-SQL split: ~1.5x the CPU).
    conf.set("pipeline.object-reuse", "true")
    # Longer generated methods before Flink splits them (splitting turns every local into a field): measured
    # ~7% less CPU per event at 12000 than at Flink's 4000, with every generated method JIT-compiled (JFR)
    conf.set("table.generated-code.max-length", str(cfg.generated_code_max_length))
    if cfg.mini_batch_ms:
        # Off by default: measured ~6x slower with this plan (its window aggregations already pre-aggregate
        # locally); kept for experiments.
        conf.set("table.exec.mini-batch.enabled", "true")
        conf.set("table.exec.mini-batch.allow-latency", f"{cfg.mini_batch_ms} ms")
        conf.set("table.exec.mini-batch.size", "5000")
    o = options(cfg, source.topic_prefix)
    landing_tables(env, t_env, source, cfg, o)
    for stmt in sql.views(TABLES, o):
        t_env.execute_sql(stmt)
    return o


def landing_tables(env, t_env, source: SourceSpec, cfg: JobConfig, o: sql.SqlOptions) -> None:
    """The landing lines as the job's four tables (``sql.SplitTables``): read by ``LandingSource`` (landing order,
    bounded state), every copy of a frame dropped by ``SeqDedup`` (keyed by device), then ``LandingSplit``: the
    event time, the one watermark (each table carries it: one event can never be late for one table and on time
    for another), and each row into exactly one table. Rows stay in Flink's internal format, in the JVM
    (PyFlink's ``to_data_stream`` would convert every row to a ``Row``: measured ~6% of the job's CPU)."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Schema
    java = get_gateway().jvm.io.sigmawatch.stream
    names = [c for c, _ in sql.LANDING_FIELDS]
    rows = java.LandingSource.apply(env._j_stream_execution_environment, _uri(source.path),
                                    int(round((source.monitor_interval_s or 0) * 1000)), sql.landing_row_type())
    rows = java.SeqDedup.apply(rows, names.index("device"), names.index("kind"), names.index("seq"),
                               int(cfg.dedup_ttl_s * 1000))
    fields = java.LandingSplit.Fields(*(names.index(c) for c in ("kind", "device", "recv_ts", "seq", "ts", "dets",
                                                                  "ob")))
    ontime, late, rejects, trailers = java.LandingSplit.apply(
        rows, fields, o.slide_ms, int(round(o.out_of_orderness_s * 1000)), o.lateness_ms,
        float(o.clock_skew_tolerance_s), int(round((cfg.idle_timeout_s or 0) * 1000)))
    # Every table declares the rowtime and SOURCE_WATERMARK(): the planner's conversion of a DataStream into a table
    # forwards the stream's watermarks only then (otherwise it swallows them, and the union of the outputs would
    # never see a watermark). ``pt``, the processing time, for the counters' windows.
    schema = (Schema.new_builder().column_by_metadata("rt", "TIMESTAMP_LTZ(3)", "rowtime")
              .column_by_expression("pt", "PROCTIME()").watermark("rt", "SOURCE_WATERMARK()").build())
    for name, stream in zip((TABLES.ontime, TABLES.late, TABLES.rejects, TABLES.trailers),
                            (ontime, late, rejects, trailers)):
        t_env.create_temporary_view(name, t_env.from_data_stream(DataStream(stream), schema))


def _file_sink(path: str):
    from pyflink.common.serialization import Encoder
    from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig, RollingPolicy
    return (FileSink.for_row_format(_uri(path), Encoder.simple_string_encoder())
            .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
            .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
            .with_output_file_config(OutputFileConfig.builder().with_part_suffix(".jsonl").build())
            .build())


def build_pipeline(env, t_env, source: SourceSpec, sinks: SinkSpec, cfg: JobConfig = JobConfig(),
                   rules: AlertRules = AlertRules(), include: Optional[tuple[str, ...]] = None):
    """Add the job to ``t_env``'s environment.

    With ``sinks.python`` (the real job) it returns None and the caller runs ``env.execute()``; without it
    (throughput benchmark) it returns a statement set with the SQL-only insert into a blackhole.
    """
    from pyflink.common import Types

    o = register_sql(env, t_env, source, cfg)
    silence = any(r.type == "device_silent" for r in rules.rules)
    if sinks.python and not silence:
        # the trailers' per-device activity feeds only the device_silent rule: one row per device and landing
        # file, about one per message at low rates, each a trip through Python
        include = tuple(p for p in (include or sql.OUTPUT_PARTS) if p != "activity")
    query = sql.outputs_query(TABLES, o, include)
    names = [c for c, _ in sql.OUTPUT_COLUMNS]
    if not sinks.python:
        cols = ", ".join(f"`{c}` {t}" for c, t in sql.OUTPUT_COLUMNS)
        t_env.execute_sql(sql.blackhole_ddl("outputs_blackhole", cols))
        ss = t_env.create_statement_set()
        ss.add_insert_sql(f"INSERT INTO outputs_blackhole {query}")
        return ss

    rows = t_env.to_data_stream(t_env.sql_query(query))
    lines = rows.flat_map(ToPayload(names, o), output_type=Types.STRING()).uid("to-payload")
    # window results: cells and late frames per (device shard, window) -> aggregates, health and fleet deltas;
    # the deltas per (class, window) -> fleet totals. Each emits when the watermark passes the window's end and
    # again, revised, when late input changes it, and publishes what it emits to MQTT itself (stream.publish)
    device_windows = (lines.filter(is_window_input).uid("window-inputs")
                      .key_by(routing_key, key_type=Types.STRING())
                      .process(DeviceWindows(o, cfg.high_sigma_threshold, sinks.mqtt, sinks.client_id),
                               output_type=Types.STRING())
                      .uid("device-windows"))
    fleet = (device_windows.filter(is_fleet_delta).uid("fleet-deltas")
             .key_by(routing_key, key_type=Types.STRING())
             .process(FleetWindows(o, cfg.high_sigma_threshold, sinks.mqtt, sinks.client_id),
                      output_type=Types.STRING()).uid("fleet-windows"))
    results = device_windows.filter(lambda x: not is_fleet_delta(x)).uid("device-results").union(fleet)
    # the rest of the payloads (stats, alerts) and the dead-letter and consumption records
    rest = (lines.filter(lambda x: not x.startswith(DEST_ACTIVITY + "\t") and not is_window_input(x))
            .uid("not-activity"))
    window_rules = [r for r in rules.rules if r.type in ("class_count", "uncertainty_spike", "clock_skew")]
    if window_rules:
        alerts = (results.filter(is_window_result).uid("window-results")
                  .key_by(window_key, key_type=Types.STRING())
                  .process(WindowAlerts(rules, o.slide_ms / 1000.0), output_type=Types.STRING()).uid("window-alerts"))
        rest = rest.union(alerts)
    if silence:
        silent = (lines.filter(lambda x: x.startswith(DEST_ACTIVITY + "\t")).uid("activity")
                  .key_by(lambda x: untag(x)[1].split('"device":"', 1)[1].split('"', 1)[0], key_type=Types.STRING())
                  .process(SilenceAlerts(rules), output_type=Types.STRING()).uid("silence-alerts"))
        rest = rest.union(silent)
    if sinks.mqtt is not None:
        rest = rest.map(MqttPublish(sinks.mqtt, sinks.client_id), output_type=Types.STRING()).uid("mqtt-publish")
    out = rest.union(results)
    if sinks.output_dir:
        for dest in (DEST_RECORDS, DEST_DEADLETTER, DEST_CONSUMED):
            (out.filter(lambda x, d=dest: x.startswith(d + "\t")).uid(f"to-{dest}")
             .map(lambda x: untag(x)[1], output_type=Types.STRING()).uid(f"untag-{dest}")
             .sink_to(_file_sink(f"{sinks.output_dir.rstrip('/')}/{dest}")).uid(f"sink-{dest}"))
    else:
        out.filter(lambda x: False).print()
    return None
