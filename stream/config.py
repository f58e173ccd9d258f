"""Configuration of the bridge, the job and the alert rules: pure-data pydantic models, explicit ``load``.

Every model forbids unknown keys, so a YAML typo is an error naming the key. No file is read at import.
Examples: ``configs/stream.example.yaml`` and ``configs/alerts.example.yaml``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.contract.cli import merge_mqtt
from edge.contract.errors import ConfigError
from edge.contract.mqtt import MqttSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def is_uri(value) -> bool:
    """A job location given as a URI other than ``file://`` (``s3://bucket/x``, ``hdfs://nn/x``; kept as a
    string): Flink's file systems resolve it; this process cannot list or create it."""
    m = _URI.match(value) if isinstance(value, str) else None
    return bool(m) and m["scheme"].lower() != "file"


def location_uri(value) -> str:
    """What Flink is given for a job location: the URI verbatim, or the absolute ``file://`` URI of a path."""
    return value if is_uri(value) else Path(_job_location(value)).resolve().as_uri()


def _job_location(value):
    """A job directory: a local path (a Path), or a URI Flink resolves (kept verbatim as a string: a Path would
    turn ``s3://b/x`` into ``s3:/b/x``). ``file://`` URIs become local paths."""
    if isinstance(value, str):
        m = _URI.match(value)
        if m and m["scheme"].lower() == "file":
            return Path(value[len(m[0]):] if value[len(m[0]):].startswith("/") else "/" + value[len(m[0]):])
        if m:
            return value
        return Path(value)
    return value


def _local_directory(value):
    """A directory this process writes itself: a local (or mounted) path, never an object-store URI."""
    if isinstance(value, str):
        m = _URI.match(value)
        if m and m["scheme"].lower() != "file":
            raise ValueError(f"{value!r}: the bridge writes, fsyncs and deletes these files itself, so this must be a "
                             f"local directory (or a mounted network filesystem such as NFS), not a {m['scheme']}:// "
                             f"URI; the job may read the same files through a URI (job.landing_dir)")
    return _job_location(value)


# a job directory: Path (local) or str (a URI such as s3://bucket/landing, passed to Flink verbatim)
JobLocation = Annotated[Union[Path, str], BeforeValidator(_job_location)]
LocalDirectory = Annotated[Path, BeforeValidator(_local_directory)]


class BridgeConfig(Strict):
    landing_dir: LocalDirectory = Field(Path("var/landing"), description="directory the job monitors (shared FS in a "
                                        "cluster; the job may name it by a URI)")
    client_id: str = Field("sigmawatch-bridge-1", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                           description="MQTT client id; unique per bridge (it names its landing files and its "
                                       "status topic <prefix>/_bridge/<client_id>/status)")
    group: Optional[str] = Field("sigmawatch-bridges", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                 description="shared-subscription group ($share/<group>/...); None = plain subscription")
    kinds: list[Literal["detections", "status", "metrics", "events", "objects"]] = Field(
        ["detections", "status", "metrics", "events", "objects"], min_length=1,
        description="edge topics to bridge (events: the agents' track events, confirmed like detections; objects: "
                    "their retained object counts)")
    confirm: bool = Field(True, description="publish <prefix>/<device>/landed confirmations after each fsync: "
                          "agents keep every message until one covers it and send it again otherwise")
    confirm_interval_s: float = Field(1.0, gt=0, le=60, description="coalesce confirmations over this interval "
                                      "(one message per device per interval); keep it well under the agents' "
                                      "mqtt.confirm_timeout_s")
    session_expiry_s: int = Field(0, ge=0, description="MQTT session expiry: 0 = none. With confirmations no "
                                  "broker session is needed (an agent resends what a dead bridge never landed), "
                                  "and a dead member of a shared subscription keeps receiving its share for as "
                                  "long as its session lives (mosquitto 2.0). Only agents that never get "
                                  "confirmations (puback mode) gain from a longer session")
    roll_interval_s: float = Field(1.0, gt=0, le=60, description="roll the landing file at least this often: "
                                   "at most one file per interval at low rates")
    roll_max_records: int = Field(1000, ge=1, description="roll after this many records")
    roll_idle_s: float = Field(0.05, gt=0, le=10, description="MQTT 3.1.1 only: roll when no message arrived for "
                               "this long (brokers cap unacknowledged 3.1.1 deliveries, mosquitto at 20 by "
                               "default; MQTT 5 takes the bridge's receive maximum, 65535)")
    roll_burst_records: int = Field(100, ge=1, description="also roll (MQTT 5 too) a file of at least this many "
                                    "records once no message arrived for roll_idle_s: the end of a burst or of a "
                                    "backlog lands at once instead of up to roll_interval_s later, while a quiet "
                                    "camera still gets at most one file per roll_interval_s")
    roll_busy_s: float = Field(0.25, gt=0, le=60, description="roll a file of at least roll_burst_records records "
                               "once its oldest line is this old: at high rates a file every roll_busy_s (each of "
                               "hundreds of lines) instead of every roll_interval_s or roll_max_records, which "
                               "would hold a window's last frames back that much longer")
    retry_interval_s: float = Field(2.0, gt=0, le=60, description="when the landing directory fails (disk full, "
                                    "I/O error): retry writing this often; nothing is acknowledged meanwhile")
    max_payload_bytes: int = Field(256 * 1024, ge=1024, description="larger payloads are dead-lettered (truncated)")
    consumed_dir: Optional[LocalDirectory] = Field(Path("var/out/consumed"), description="the job's committed consumption "
                                         "records; landed files fully counted there are deleted (None = keep all)")
    cleanup_interval_s: float = Field(10.0, gt=0, description="how often to look for consumed landing files")


class WindowConfig(Strict):
    size_s: float = Field(10.0, gt=0, description="window length (event time)")
    slide_s: Optional[float] = Field(None, gt=0, description="sliding (hop) windows: slide; None = tumbling")

    @model_validator(mode="after")
    def _whole_ms(self):
        for name in ("size_s", "slide_s"):
            v = getattr(self, name)
            if v is not None and abs(v * 1000 - round(v * 1000)) > 1e-6:
                raise ValueError(f"window.{name}={v}: use whole milliseconds")
        if self.slide_s is not None:
            ratio = self.size_s / self.slide_s
            if self.slide_s > self.size_s or abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"window.slide_s={self.slide_s} must divide window.size_s={self.size_s}")
        return self

    @property
    def slide(self) -> float:
        return self.slide_s or self.size_s


class JobConfig(Strict):
    landing_dir: JobLocation = Field(Path("var/landing"), description="the bridge's landing directory: a path, or a "
                                     "URI Flink resolves (s3://..., hdfs://...; needs that file system's plugin)")
    output_dir: JobLocation = Field(Path("var/out"), description="JSON-lines outputs: records/, deadletter/, "
                                    "consumed/ (a path or a URI)")
    checkpoint_dir: JobLocation = Field(Path("var/checkpoints"), description="retained checkpoints, resumed from the "
                                        "newest (a path or a URI; with a URI, resume with --from-checkpoint)")
    checkpoint_interval_s: float = Field(5.0, gt=0, description="checkpoint interval; also output commit interval")
    resume: bool = Field(True, description="resume from the newest checkpoint in checkpoint_dir if there is one")
    restart_attempts: int = Field(3, ge=0, description="fixed-delay restart attempts before the job fails")
    restart_delay_s: float = Field(2.0, ge=0, description="delay between restart attempts")
    parallelism: int = Field(1, ge=1, description="operator parallelism")
    bind_host: str = Field("127.0.0.1", min_length=1, description="address every listening socket of the local "
                           "mini-cluster binds to (REST, RPC, blob server, data exchange, the Python workers' pool); "
                           "0.0.0.0 exposes them on every interface")
    window: WindowConfig = Field(default_factory=WindowConfig)
    out_of_orderness_s: float = Field(0.5, ge=0, description="how far behind the newest bridge receive time the "
                                      "watermark stays: a window's first result waits this long for frames still "
                                      "on their way; later ones revise it (allowed_lateness_s)")
    allowed_lateness_s: float = Field(86_400.0, ge=0, description="frames that arrive after their window's first "
                                      "result, up to this long, revise it; later ones are dead-lettered as too late. "
                                      "State: every device window is kept this long (see the README's state figures)")
    clock_skew_tolerance_s: float = Field(2.0, gt=0, description="a capture time further ahead of the bridge's "
                                          "receive time means a fast device clock: its frames are dead-lettered as "
                                          "clock skew, its metrics kept at their receive time (health shows the offset)")
    idle_timeout_s: Optional[float] = Field(None, gt=0, description="source idle timeout (parallel sources)")
    monitor_interval_s: float = Field(0.2, gt=0, description="how often the landing directory is scanned")
    dedup_ttl_s: float = Field(7 * 86_400.0, gt=0, description="a device's set of sequence numbers seen (exact dedup "
                               "of copies however late: a few intervals per device) is forgotten after this long "
                               "without a frame of that device")
    mini_batch_ms: int = Field(0, ge=0, description="SQL mini-batch latency (0 = off; measured 6x slower with "
                               "the current plan, whose window aggregations pre-aggregate locally anyway)")
    python_bundle_ms: int = Field(50, ge=1, description="longest time the Python operators (payloads, alerts, MQTT) "
                                  "buffer rows before processing them (PyFlink's default, 1000 ms, adds up to 1 s "
                                  "to every result's latency)")
    watermark_interval_ms: int = Field(50, ge=1, description="how often the source emits watermarks (Flink's "
                                       "default 200 ms delays every window's close by up to that)")
    high_sigma_threshold: float = Field(0.25, ge=0, le=1, description="sigma_mean at/above this is 'high uncertainty'")
    stats_interval_s: float = Field(10.0, gt=0, description="processing-time window of the dead-letter/late counters")
    publish_mqtt: bool = Field(True, description="publish outputs to MQTT (files are always written)")
    alerts_file: Optional[Path] = Field(None, description="alert rules YAML (None = no alerts)")
    generated_code_max_length: int = Field(12000, ge=1000, le=20000, description="Flink's table.generated-code."
                                           "max-length: generated methods longer than this are split, and their "
                                           "locals become fields (Flink's default 4000; 12000 measured ~7% less CPU "
                                           "per event, every generated method still JIT-compiled; above ~8000 "
                                           "bytes of bytecode the JIT would refuse a method)")
    jvm_options: list[str] = Field(["-XX:+UseParallelGC"], description="options of the local mini-cluster's JVM "
                                   "(stream-job's own; a cluster's TaskManagers take env.java.opts.taskmanager). "
                                   "Parallel GC: measured ~18% less CPU per event than the JVM's default G1, whose "
                                   "write barriers this allocation-heavy job pays on every row; [] = JVM default. "
                                   "Ignored when the JVM_ARGS environment variable is set")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and "max_future_s" in data:
            raise ValueError("max_future_s was replaced by clock_skew_tolerance_s (seconds a capture time may be "
                             "ahead of the bridge's clock; default 2)")
        return data

    @field_validator("jvm_options")
    @classmethod
    def _jvm_options(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not o.startswith("-") or any(c.isspace() for c in o)]
        if bad:
            raise ValueError(f"JVM options start with '-' and hold no spaces (one list item each), got {bad}")
        return v


class ClassCountRule(Strict):
    """Fires when a class is detected at least ``min_count`` times in one window (per device or fleet)."""
    type: Literal["class_count"]
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="stable rule id (part of the alert id)")
    label: str = Field(description="class label, or '*' for every class")
    min_count: int = Field(ge=1, description="detections per window that fire the alert")
    scope: Literal["device", "fleet"] = "device"
    severity: Literal["info", "warning", "critical"] = "warning"


class UncertaintySpikeRule(Strict):
    """Fires when a window's mean sigma exceeds ``factor`` x the mean of the previous ``history`` windows."""
    type: Literal["uncertainty_spike"]
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    label: str = Field("*", description="class label, or '*' for every class")
    factor: float = Field(1.5, gt=1.0, description="spike = sigma_mean > factor x recent average")
    history: int = Field(6, ge=1, le=1000, description="windows in the recent average")
    min_history: int = Field(3, ge=1, description="windows needed before the rule can fire")
    min_detections: int = Field(3, ge=1, description="ignore windows with fewer detections")
    scope: Literal["device", "fleet"] = "device"
    severity: Literal["info", "warning", "critical"] = "warning"


class DeviceSilentRule(Strict):
    """Fires when a device that was seen sends nothing for ``after_s`` seconds (processing-time timers)."""
    type: Literal["device_silent"]
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    after_s: float = Field(gt=0, description="silence that fires the alert")
    severity: Literal["info", "warning", "critical"] = "critical"


class ClockSkewRule(Strict):
    """Fires when a device's clock is off the bridge's by more than ``max_offset_s`` (from its metrics messages,
    per health window); a clock ahead by more than the job's ``clock_skew_tolerance_s`` also has its frames
    dead-lettered."""
    type: Literal["clock_skew"]
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    max_offset_s: float = Field(2.0, gt=0, description="|bridge receive time - capture time| that fires the alert")
    severity: Literal["info", "warning", "critical"] = "warning"


Rule = Annotated[Union[ClassCountRule, UncertaintySpikeRule, DeviceSilentRule, ClockSkewRule],
                 Field(discriminator="type")]


class AlertRules(Strict):
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self):
        ids = [r.id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(dup)}")
        if len([r for r in self.rules if r.type == "device_silent"]) > 1:
            raise ValueError("at most one device_silent rule")
        return self


class StreamConfig(Strict):
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    bridge: BridgeConfig = Field(default_factory=BridgeConfig)
    job: JobConfig = Field(default_factory=JobConfig)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _explain(path, exc: ValidationError) -> ConfigError:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']}")
    return ConfigError("\n".join(lines))


def load(path: Optional[Path]) -> StreamConfig:
    """Load the stream config YAML (None = defaults); relative alerts_file is resolved against the YAML."""
    if path is None:
        return StreamConfig()
    data = _read_yaml(path)
    try:
        cfg = StreamConfig.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, exc) from None
    alerts = cfg.job.alerts_file
    if alerts is not None and not alerts.is_absolute() and not alerts.exists():
        alt = Path(path).parent / alerts
        if alt.exists():
            cfg = cfg.model_copy(update={"job": cfg.job.model_copy(update={"alerts_file": alt})})
    return cfg


def load_rules(path: Optional[Path]) -> AlertRules:
    if path is None:
        return AlertRules()
    try:
        return AlertRules.model_validate(_read_yaml(path))
    except ValidationError as exc:
        raise _explain(path, exc) from None


def with_overrides(cfg: StreamConfig, section: str, **values) -> StreamConfig:
    """A validated copy with ``cfg.<section>.<key> = value`` for each non-None value."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return cfg
    data = cfg.model_dump()
    data[section].update(values)
    return from_dict(data)


def with_mqtt_overrides(cfg: StreamConfig, overrides: dict) -> StreamConfig:
    """A validated copy with the command line's ``--mqtt-*`` overrides applied to ``cfg.mqtt``."""
    if not overrides:
        return cfg
    data = cfg.model_dump(exclude_unset=True)
    data["mqtt"] = merge_mqtt(data.get("mqtt"), overrides)
    return from_dict(data)


def from_dict(data: dict) -> StreamConfig:
    try:
        return StreamConfig.model_validate(data)
    except ValidationError as exc:
        raise _explain("config", exc) from None
