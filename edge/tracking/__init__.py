"""Objects, not detections: tracking on the edge device (plain Python, numpy only in the solver's matrix entry point;
runs on the Pi with the agent).

    tracker = Tracker(cfg.tracker)                      # one per camera
    regions = Regions(cfg.zones, cfg.lines)
    events = EventBuilder(regions, cfg.score_delta)
    frame = tracker.update(detections, ts)              # edge.decode.Detection list, capture time
    region_events = regions.update(frame)               # entered / left / crossed
    bodies = events.update(frame)                       # new / update / end
    counts = object_counts(frame, regions)              # objects present per label and zone

Modules: ``kalman`` (the filter), ``measurements`` (detections -> measurements + noise from the model's sigma),
``assignment`` (the solver), ``tracker`` (association and lifecycle), ``regions`` (zones, lines),
``events`` (event and count dicts), ``config`` (pydantic settings).
"""
from edge.tracking.config import CountingLine, TrackerConfig, TrackingConfig, ZoneRule
from edge.tracking.events import EventBuilder, count_changes, object_counts, track_event
from edge.tracking.regions import RegionEvent, Regions
from edge.tracking.tracker import FrameTracks, Tracker, TrackView

__all__ = ["CountingLine", "EventBuilder", "FrameTracks", "RegionEvent", "Regions", "Tracker", "TrackerConfig",
           "TrackingConfig", "TrackView", "ZoneRule", "count_changes", "object_counts", "track_event"]
