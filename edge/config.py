"""The agent's configuration: pure-data pydantic models, one explicit ``load``, command-line overrides.

Every model forbids unknown keys, so a YAML typo is an error naming the key. Secrets never live in
the YAML: the MQTT password comes from ``mqtt.password_file`` or a systemd credential
(``mqtt.password_credential``, read from ``$CREDENTIALS_DIRECTORY``), see ``edge.contract.secrets``.

``Settings`` is the part that may be changed at run time over MQTT (``config/set``): thresholds,
FPS cap, class filter, zones, top-k. It is immutable; a change builds a new object and swaps it in.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from edge.contract.access import blocking_component, explain
from edge.contract.errors import ConfigError
from edge.contract.mqtt import MqttSettings
from edge.contract.schema import SchemaError, check_device_id
from edge.tracking.config import TrackingConfig
from edge.zones import checked_zone_polygon


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Zone(Strict):
    name: str = Field(min_length=1, max_length=64, description="zone name, reported with each detection in it")
    polygon: list[tuple[float, float]] = Field(
        max_length=100, description="polygon vertices (x, y) in order around the zone, frame-normalized [0, 1], "
                                    "at least 3, edges must not cross; a detection whose box centre lies inside is kept")

    @field_validator("polygon")
    @classmethod
    def _geometry(cls, v, info: ValidationInfo):
        return checked_zone_polygon(v, info.data.get("name", "?"))


class Settings(Strict):
    """Safe run-time settings: applied without restart, also settable over MQTT config/set."""
    score_threshold: float = Field(0.25, ge=0.0, le=1.0, description="minimum score (obj x class x (1 - mean sigma))")
    iou_threshold: float = Field(0.45, ge=0.0, le=1.0, description="class-aware NMS IoU threshold")
    max_detections: int = Field(100, ge=1, le=1000, description="detections kept per frame")
    classes: Optional[list[str]] = Field(None, description="only report these labels (None = all)")
    zones: list[Zone] = Field(default_factory=list, description="keep only detections inside one of these zones")
    fps: Optional[float] = Field(None, gt=0.0, le=240.0, description="processing rate cap (None = as fast as possible)")
    top_k: int = Field(3, ge=1, le=100, description="classification: classes reported per frame")
    max_sigma: Optional[float] = Field(None, ge=0.0, le=1.0,
                                       description="drop detections whose mean sigma exceeds this (None = keep)")

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class SourceConfig(Strict):
    uri: str = Field("0", description="V4L2 index ('0') or path (/dev/video0), video file, rtsp:// or http:// "
                                      "URL, or 'picamera2'")
    loop: bool = Field(False, description="video file: start again at the end instead of treating the end as a lost source")
    realtime: bool = Field(True, description="video file: pace reading at the file's frame rate like a camera; "
                                             "false = read as fast as processed, no frame dropped")
    width: Optional[int] = Field(None, ge=16, le=8192, description="requested capture width (cameras)")
    height: Optional[int] = Field(None, ge=16, le=8192, description="requested capture height (cameras)")
    fps: Optional[float] = Field(None, gt=0, le=240, description="requested capture frame rate (cameras)")
    stall_timeout_s: float = Field(20.0, gt=0, description="no frame for this long -> reopen the source")
    backoff_initial_s: float = Field(1.0, gt=0, description="first wait before reopening a lost source")
    backoff_max_s: float = Field(10.0, gt=0, description="longest wait between reopen attempts")
    exit_on_end: bool = Field(False, description="video file: stop the agent at the end (benchmarks, batch runs)")


class ModelConfig(Strict):
    path: Path = Field(description=".tflite model exported by convert-model (metadata embedded or sidecar)")
    device: str = Field("cpu", description="cpu, edgetpu, usb, usb:N, pci or pci:N")
    threads: Optional[int] = Field(None, ge=1, le=64, description="CPU interpreter threads (None = runtime default)")
    runtime: Optional[Literal["ai-edge-litert", "tflite-runtime", "tensorflow"]] = Field(
        None, description="force one interpreter package (None = first available)")
    task: Optional[Literal["detection", "classification"]] = Field(
        None, description="the task this config expects; a model of another task is refused")
    expect_labels: Optional[list[str]] = Field(None, description="refuse a model whose labels differ")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        v = v.strip().lower()
        kind, _, index = v.partition(":")
        if v in ("cpu", "edgetpu") or (kind in ("usb", "pci") and (index == "" or index.isdigit())):
            return v
        raise ValueError(f"{v!r} is not a device; use cpu, edgetpu, usb, usb:N, pci or pci:N")


class MQTTConfig(MqttSettings):
    """The shared broker settings (``edge.contract.mqtt.MqttSettings``) plus how the agent publishes."""
    qos: Literal[0, 1, 2] = Field(1, description="QoS of detections (status/config state always use 1)")
    metrics_interval_s: float = Field(10.0, gt=0, le=3600)
    inflight_window: int = Field(500, ge=1, le=65000, description="undelivered publishes outstanding at once "
                                 "(no PUBACK yet, or no landing confirmation yet)")
    delivery: Literal["auto", "landed", "puback"] = Field(
        "auto", description="when a message leaves the outbox: landed = when a bridge confirms it is in a durable "
        "landing file (survives broker crashes); puback = at the broker's PUBACK (old bridges); auto = landed once "
        "any bridge has confirmed a message, puback (said in the log and the status) while none ever has")
    confirm_timeout_s: float = Field(10.0, ge=1.0, le=3600, description="send a message again when no landing "
                                     "confirmation came this long after its PUBACK (then 2x, 4x, at most 8x)")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)


class OutboxConfig(Strict):
    path: Optional[Path] = Field(None, description="SQLite file (default <state_dir>/outbox.sqlite)")
    max_messages: int = Field(200_000, ge=10, description="oldest dropped (and counted) beyond this many")
    max_age_s: float = Field(7 * 86400, gt=0, description="messages older than this are dropped (and counted)")
    drain_timeout_s: float = Field(5.0, ge=0, description="on stop, wait this long for outstanding acks")


class AgentConfig(Strict):
    device_id: str = Field(description="this device's id: one MQTT topic level, [A-Za-z0-9_-]")
    state_dir: Path = Field(Path("/var/lib/edge-agent"), description="outbox and sequence numbers live here")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    source: SourceConfig = Field(default_factory=SourceConfig)
    model: ModelConfig
    mqtt: MQTTConfig = Field(default_factory=MQTTConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    settings: Settings = Field(default_factory=Settings)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="objects, not detections: the "
                                     "tracker, zones and counting lines, events (edge.objects)")
    watchdog: bool = Field(True, description="send WATCHDOG=1 to systemd when it asks for it")

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, v: str) -> str:
        try:
            return check_device_id(v)
        except SchemaError as exc:
            raise ValueError(str(exc)) from None

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or (self.state_dir / "outbox.sqlite")

    def summary(self) -> dict[str, Any]:
        """What the status message reports: nothing secret."""
        return {"source": self.source.uri, "model": str(self.model.path), "device": self.model.device,
                "broker": f"{self.mqtt.host}:{self.mqtt.port}", "tls": self.mqtt.tls is not None,
                "qos": self.mqtt.qos, "settings": self.settings.summary(),
                "tracking": {"enabled": self.tracking.enabled, "publish": self.tracking.publish,
                             "zones": [z.name for z in self.tracking.zones],
                             "lines": [ln.name for ln in self.tracking.lines]}}


# --------------------------------------------------------------------------- loading
def format_validation_error(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: {exc.error_count()} problem(s) in the configuration:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (typo? see configs/edge-agent.example.yaml for the accepted keys)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            got = err.get("input")
            if not isinstance(got, (dict, list)):
                msg += f" (got {got!r:.60})"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """``set_dotted(d, "mqtt.port", 1884)``: create intermediate mappings as needed."""
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a mapping in the configuration")
        node = nxt
    old = node.get(keys[-1])
    node[keys[-1]] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with the value parsed as YAML (numbers, booleans, lists)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key.path=value, e.g. settings.score_threshold=0.4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key.strip(), value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if blocking_component(path) is not None:       # a folder on the way or the file itself refuses this user
        raise ConfigError(explain(path, "config file"))
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; give the YAML file in it (-c {path}/edge-agent.yaml)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; start from configs/edge-agent.example.yaml")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except PermissionError:
        raise ConfigError(explain(path, "config file")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, found {type(data).__name__}")
    return data


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """Read YAML (or start empty), apply ``{dotted.key: value}`` overrides, validate."""
    data = read_yaml(path) if path else {}
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return validate(data, str(path) if path else "command line")


def validate(data: dict, where: str = "config") -> AgentConfig:
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None


def updated_settings(current: Settings, changes: Any) -> Settings:
    """A new Settings with ``changes`` (a mapping from config/set) applied; ConfigError naming the key."""
    if not isinstance(changes, dict) or not changes:
        raise ConfigError("'set' must be a non-empty object of settings, e.g. {\"score_threshold\": 0.4}")
    try:
        return Settings.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "config/set").replace("\n  ", " ")) from None
