"""Track events (new / update / end) and per-camera object counts, as plain dicts ready to encode.

What Frigate users expect from ``frigate/events``, for a camera that sends no frames:

* ``new`` when a track is confirmed, ``end`` when it ends (``end`` is the last time it was seen);
* ``update`` only when something a user would act on changed: the label (class-agnostic tracking), the best
  score rose by ``score_delta`` or more, the zones it is in, a line crossed. Moving alone is not a change.

The message body (the envelope: schema version, device, sequence number, is the message contract's job):

    {"type": "new" | "update" | "end", "id": "<start unix ms>-<track id>", "track": 17,
     "label": "person", "class_id": 0, "start": 1733560000.123, "end": null | 1733560012.5, "ts": ...,
     "score": 0.81, "best_score": 0.93, "box": [x1, y1, x2, y2], "box_sigma": [cx, cy, w, h],
     "sigma_mean": 0.11 | null, "hits": 42, "zones": [...], "entered_zones": [...],
     "lines": {"gate": {"in": 1, "out": 0}}, "changed": ["best_score", "zones"]}

``box`` and ``box_sigma`` are the tracker's estimate and its own std (frame units), ``sigma_mean`` the mean
of the model's sigma over the detections the track took (null for models without sigma), ``changed`` only
on updates. Counts: ``{"ts": ..., "objects": {"person": 3}, "zones": {"driveway": {"person": 1}}}``.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Optional

from edge.tracking.regions import Regions
from edge.tracking.tracker import FrameTracks, TrackView

NEW, UPDATE, END = "new", "update", "end"
DIGITS = 4


def event_id(view: TrackView) -> str:
    """Unique per camera across restarts (the tracker's ids start at 1 again): start time in ms + track id."""
    return f"{int(round(view.start_ts * 1000))}-{view.id}"


def line_counts(crossings: Iterable[tuple[str, str, float]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line, direction, _ts in crossings:
        counts = out.setdefault(line, {"in": 0, "out": 0})
        counts[direction] += 1
    return out


def track_event(kind: str, view: TrackView, ts: float, *, zones: list[str], entered_zones: list[str],
                crossings: Iterable[tuple[str, str, float]], changed: Optional[list[str]] = None) -> dict:
    """One event body (see the module docstring)."""
    msg = {"type": kind, "id": event_id(view), "track": view.id, "label": view.label, "class_id": view.class_id,
           "start": round(view.start_ts, 3), "end": round(view.last_seen_ts, 3) if kind == END else None,
           "ts": round(ts, 3), "score": round(view.score, DIGITS), "best_score": round(view.best_score, DIGITS),
           "box": [round(v, DIGITS) for v in view.box], "box_sigma": [round(v, DIGITS) for v in view.box_sigma],
           "sigma_mean": None if view.sigma_mean is None else round(view.sigma_mean, DIGITS), "hits": view.hits,
           "zones": list(zones), "entered_zones": list(entered_zones), "lines": line_counts(crossings)}
    if changed is not None:
        msg["changed"] = list(changed)
    return msg


class _Sent(NamedTuple):
    label: str
    best_score: float
    version: int                 # the regions' version of the track (zones or lines changed since: it differs)
    zones: tuple[str, ...]
    crossings: int


class EventBuilder:
    """Turns each tracker frame (and the regions' state after it) into the event bodies to publish."""

    def __init__(self, regions: Regions | None = None, score_delta: float = 0.05):
        self.regions = regions or Regions()
        self.score_delta = score_delta
        self._sent: dict[int, _Sent] = {}

    def update(self, frame: FrameTracks) -> list[dict]:
        """Event bodies for this frame: ends first, then new and updated tracks by id. Call after
        ``regions.update(frame)``."""
        out: list[dict] = []
        sent_by_id = self._sent
        for view in frame.ended:
            if sent_by_id.pop(view.id, None) is not None:
                out.append(self._event(END, view, frame.ts))
        summary = self.regions.summary
        version = self.regions.version if self.regions.zones or self.regions.lines else None
        delta = self.score_delta
        for view in frame.tracks:
            sent = sent_by_id.get(view.id)
            if (sent is not None and view.label == sent.label and view.best_score < sent.best_score + delta
                    and (0 if version is None else version(view.id)) == sent.version):
                continue                                  # nothing a user would act on changed (the common case)
            now = _Sent(view.label, view.best_score, *summary(view.id))
            if sent is None:
                sent_by_id[view.id] = now
                out.append(self._event(NEW, view, frame.ts))
                continue
            changed = [name for name, differs in (
                ("label", now.label != sent.label),
                ("best_score", now.best_score >= sent.best_score + self.score_delta),
                ("zones", now.zones != sent.zones),
                ("lines", now.crossings != sent.crossings)) if differs]
            if changed:
                sent_by_id[view.id] = now
                out.append(self._event(UPDATE, view, frame.ts, changed))
            else:
                sent_by_id[view.id] = sent._replace(version=now.version)   # changed and back within one frame
        return out

    def _event(self, kind: str, view: TrackView, ts: float, changed: Optional[list[str]] = None) -> dict:
        r = self.regions
        return track_event(kind, view, ts, zones=r.current_zones(view.id), entered_zones=r.entered_zones(view.id),
                           crossings=r.crossings(view.id), changed=changed)


# --------------------------------------------------------------------------- counts
def object_counts(frame: FrameTracks, regions: Regions | None = None) -> dict:
    """Objects present now: every live confirmed track (a briefly hidden object still counts until its track
    ends), per label, and per zone and label."""
    objects: dict[str, int] = {}
    zones: dict[str, dict[str, int]] = {}
    for view in frame.tracks:
        objects[view.label] = objects.get(view.label, 0) + 1
        for zone in (regions.current_zones(view.id) if regions is not None else ()):
            per = zones.setdefault(zone, {})
            per[view.label] = per.get(view.label, 0) + 1
    return {"ts": round(frame.ts, 3), "objects": dict(sorted(objects.items())),
            "zones": {z: dict(sorted(c.items())) for z, c in sorted(zones.items())}}


def count_changes(previous: dict | None, current: dict) -> dict[str, int]:
    """Retained topics to (re)publish: ``{"objects/<label>": n, "zones/<zone>/<label>": n}`` for every count that
    differs from ``previous``, including counts that fell to 0 (so a retained "person present: 3" is reset)."""
    def flat(c: dict | None) -> dict[str, int]:
        if not c:
            return {}
        out = {f"objects/{label}": n for label, n in c["objects"].items()}
        for zone, per in c["zones"].items():
            out.update({f"zones/{zone}/{label}": n for label, n in per.items()})
        return out
    before, after = flat(previous), flat(current)
    changes = {k: n for k, n in after.items() if before.get(k) != n}
    changes.update({k: 0 for k in before if k not in after and before[k] != 0})
    return dict(sorted(changes.items()))
