"""Tracking configuration: pure-data pydantic models (unknown keys are errors that name the key).

Units: positions and sizes are frame-normalized (x / frame width, y / frame height); motion noise is in box
sizes per second squared, so one setting fits small and large objects; ages count processed frames.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from edge.zones import checked_zone_polygon, out_of_range, segment_problem

Anchor = Literal["center", "bottom"]
Fraction = Annotated[float, Field(gt=0, le=2)]
NAME = r"^[^\x00-\x1f\x7f/+#]+$"     # zone and line names travel in events and may become MQTT topic levels


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackerConfig(Strict):
    association: Literal["mahalanobis", "iou"] = Field(
        "mahalanobis", description="track-detection cost: squared Mahalanobis distance under the innovation "
                                   "covariance S plus ln(det S / det R) (the Gaussian's negative log-likelihood, so "
                                   "a track that is unsure where it is does not take a detection a sure one fits "
                                   "as well), gated by 'gate'; or 1 - IoU of the predicted box, gated by 'min_iou'")
    noise: Literal["sigma", "constant"] = Field(
        "sigma", description="measurement noise: the model's predicted box sigma ('sigma'; detections without one "
                             "fall back to 'constant_noise'), or always 'constant_noise'")
    sigma_scale: float = Field(0.885, gt=0, le=100, description="multiplies the model's box sigma (calibration): "
                                                              "0.885 makes the shipped detector's sigma the RMS of "
                                                              "its errors on bench.tracking's validation scenes")
    sigma_floor: float = Field(0.002, ge=0, le=0.5, description="smallest measurement std, frame units")
    constant_noise: tuple[Fraction, Fraction] = Field(
        (0.05, 0.05), description="measurement std of (centre, size) as a fraction of the box width (for x and w) "
                                  "or height (y and h), used without the model's sigma")
    accel: float = Field(0.5, gt=0, le=100, description="process noise: std of the centre's acceleration, "
                                                       "box sizes per s^2")
    size_accel: float = Field(0.5, gt=0, le=100, description="process noise: std of the size's acceleration, "
                                                            "box sizes per s^2")
    init_velocity: float = Field(3.0, gt=0, le=100, description="std of a new track's unknown centre velocity, "
                                                                 "box sizes per s")
    init_size_velocity: float = Field(0.5, gt=0, le=100, description="std of a new track's unknown rate of size "
                                                                     "change, box sizes per s")
    gate: float = Field(30.0, gt=0, description="largest squared Mahalanobis distance accepted (chi-square with 4 "
                                                "degrees of freedom: 13.28 = 99 %, 18.47 = 99.9 %; detector errors "
                                                "have heavier tails: 30 did best on bench.tracking's calibration scenes)")
    min_iou: float = Field(0.2, gt=0, lt=1, description="smallest IoU accepted by the 'iou' association")
    high_score: float = Field(0.3, gt=0, le=1, description="first association pass: detections at least this score "
                                                         "(the shipped detector finds 2/3 of 20 small objects at 0.3, "
                                                         "1/3 at 0.5)")
    low_score: float = Field(0.1, ge=0, le=1, description="second pass: detections from this score up to high_score, "
                                                          "matched to tracks seen in the previous frame only")
    new_track_score: float = Field(0.4, gt=0, le=1, description="an unmatched detection starts a track from this score")
    confirm_hits: int = Field(3, ge=1, le=100, description="consecutive matched frames before a track is confirmed "
                                                          "(and reported)")
    max_missed: int = Field(30, ge=0, le=10_000, description="frames a confirmed track survives without a match")
    class_aware: bool = Field(False, description="a track only takes detections of its own class; false: any "
                                                "class, the track's label is the score-weighted vote of its detections "
                                                "(a detector that flips classes does not break tracks)")
    duplicate_iou: Optional[float] = Field(0.4, gt=0, le=1, description="detections overlapping more than this are "
                                                                        "one object: the lower score is not tracked "
                                                                        "(None = keep all). Class-aware NMS keeps one "
                                                                        "object's boxes under two classes; at 0.7 they "
                                                                        "made most ID switches on bench.tracking's "
                                                                        "validation scenes (two tracks on one object)")
    max_tracks: int = Field(256, ge=1, le=10_000, description="tracks kept at most (new ones are refused beyond)")
    dt_default: float = Field(0.1, gt=0, le=60, description="step in seconds when timestamps do not advance")

    @model_validator(mode="after")
    def _scores(self):
        if self.low_score > self.high_score:
            raise ValueError(f"low_score {self.low_score} must not exceed high_score {self.high_score}")
        return self


class ZoneRule(Strict):
    """A zone that reports tracked objects entering and leaving it (the polygon rules of the detection filter's
    ``edge.config.Zone``: ``edge.zones.polygon_problem``; not imported from there, because ``edge.config`` holds
    this model in the agent's configuration)."""
    name: str = Field(min_length=1, max_length=64, pattern=NAME, description="zone name, reported with each event "
                                                                              "in it (no / + # or control characters)")
    polygon: list[tuple[float, float]] = Field(
        max_length=100, description="polygon vertices (x, y) in order around the zone, frame-normalized [0, 1] "
                                    "(pixel x / frame width, pixel y / frame height), at least 3, edges must not cross")
    classes: Optional[list[str]] = Field(None, description="labels the zone reports (None = all)")
    anchor: Anchor = Field("center", description="the point of the box that must be inside: centre or bottom centre")
    inertia: int = Field(2, ge=1, le=100, description="consecutive frames inside (outside) before entered (left)")

    @field_validator("polygon")
    @classmethod
    def _geometry(cls, v, info: ValidationInfo):
        return checked_zone_polygon(v, info.data.get("name", "?"))


class CountingLine(Strict):
    """A segment; a tracked object crossing it is reported with a direction: 'in' when it goes from the left of
    start -> end to its right as seen on screen (y down), 'out' the other way."""
    name: str = Field(min_length=1, max_length=64, pattern=NAME, description="line name, reported with each crossing "
                                                                              "(no / + # or control characters)")
    start: tuple[float, float] = Field(description="first end (x, y), frame-normalized [0, 1]")
    end: tuple[float, float] = Field(description="second end (x, y), frame-normalized [0, 1]")
    classes: Optional[list[str]] = Field(None, description="labels the line counts (None = all)")
    anchor: Anchor = Field("center", description="the point of the box whose path must cross the line")
    margin_sigmas: float = Field(1.0, ge=0, le=10, description="a side counts only when the point is farther from "
                                                               "the line than this many of its own std (jitter guard)")

    @field_validator("end")
    @classmethod
    def _geometry(cls, end, info: ValidationInfo):
        name = info.data.get("name", "?")
        start = info.data.get("start")
        if start is None:
            return end
        problem = out_of_range([start, end]) or segment_problem(start, end)
        if problem:
            raise ValueError(f"line {name!r}: {problem}")
        return end


class TrackingConfig(Strict):
    """The agent's ``tracking`` section: the tracker, zones and counting lines, what is published."""
    enabled: bool = Field(True, description="track objects on every processed frame: detections carry their track "
                                            "id, events and object counts are published (detection models only)")
    publish: Literal["both", "events_only"] = Field(
        "both", description="both: per-frame detections (with track ids) and events; events_only: events and "
                            "object counts only, no per-frame detections (links where bytes matter)")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    zones: list[ZoneRule] = Field(default_factory=list, max_length=64, description="zones for entered/left events")
    lines: list[CountingLine] = Field(default_factory=list, max_length=64, description="lines for crossed events")
    score_delta: float = Field(0.05, ge=0, le=1, description="an 'update' event is sent when the best score "
                                                            "rose by at least this much (or zones, label, lines changed)")

    @model_validator(mode="after")
    def _unique_names(self):
        seen: dict[str, str] = {}
        for kind, items in (("zone", self.zones), ("line", self.lines)):
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{kind} {item.name!r}: the name is already used by a {seen[item.name]}; "
                                     "zone and line names must be unique")
                seen[item.name] = kind
        return self
