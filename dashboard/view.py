"""How long the dashboard trusts what it saw: device freshness, tracks, and the time spans of the charts.

One pydantic model, given on the command line (``sigmawatch-dashboard --stale-after 60 ...``) and sent to
the page in every snapshot, so the server (which forgets devices) and the page (which shows ages, stale
devices and the recent windows) apply the same numbers.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ViewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stale_after_s: float = Field(
        60.0, gt=0, description="a device heard from longer ago than this is shown as stale (agents send metrics "
                                "every mqtt.metrics_interval_s, 10 s by default: keep this a few intervals longer)")
    forget_after_s: float = Field(
        3600.0, gt=0, description="a device heard from longer ago than this is dropped from the list; a retained "
                                  "status older than this (a device that left long ago) is not listed at all")
    recent_s: float = Field(
        300.0, gt=0, description="the σ̄ histogram covers the windows that ended within this span before the "
                                 "newest window's end")
    history_s: float = Field(
        1800.0, gt=0, description="the per-class counts chart covers the windows that ended within this span "
                                  "before the newest window's end")

    track_timeout_s: float = Field(
        30.0, gt=0, description="a tracked object seen in a camera's detections messages and not mentioned since "
                                "(no detection with its id, no event) for this long is taken off the page; the "
                                "agent's own end event removes it sooner (tracks of an events-only camera wait for "
                                "their end event, the camera going offline or its object counts)")

    @model_validator(mode="after")
    def _forget_after_stale(self) -> "ViewSettings":
        if self.forget_after_s <= self.stale_after_s:
            raise ValueError(f"forget_after_s ({self.forget_after_s:g} s) must be longer than stale_after_s "
                             f"({self.stale_after_s:g} s): a device is first shown as stale, later dropped")
        return self
