"""What the dashboard knows about each camera's tracked objects: live tracks with a short trail, recent events.

Pure Python, no MQTT and no HTTP; :class:`DashboardState` calls it under its lock. The agent (``edge.objects``)
sends three things about objects, and each feeds one method here:

* detections messages whose detections carry a confirmed track's id (the wire array's 10th item): the track's
  box and the model's σ of that box, and one more point of its trail (the box centre);
* events (``<prefix>/<device>/events``): ``new`` / ``update`` (label, best score, zones, lines changed) / ``end``
  per track, ``entered`` / ``left`` a zone, ``crossed`` a line; their box and ``box_sigma`` are the tracker's own
  estimate and uncertainty. A camera that publishes events only (``tracking.publish: events_only``) is known from
  these alone;
* the retained object counts (``<prefix>/<device>/objects``): how many live tracks the agent holds per label.

A track disappears when its ``end`` event arrives; when its camera goes offline or leaves the dashboard (its
tracker is gone with it); when the camera's counts hold fewer objects of its label than the page has tracks (an
``end`` the dashboard missed while it was disconnected: the least recently seen go); and, for a track seen in
detections messages, ``timeout_s`` after it was last in one of them or in an event. A track known from events
only does not time out: an events-only camera says nothing about a parked car for hours, and its ``end`` comes.

Every method returns a ``tracks`` event for the browsers (what changed: tracks with their whole state, ids
removed, new log entries) or None. Memory is bounded per camera: ``TRAIL_POINTS`` points per trail,
``TRACKS_PER_CAMERA`` tracks (the least recently seen go first), ``EVENTS_PER_CAMERA`` log entries, and
``ENDED_PER_CAMERA`` ended ids remembered so that a detections message delivered after its track's ``end`` does
not bring the track back.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Optional

TRAIL_POINTS = 30
TRACKS_PER_CAMERA = 64
EVENTS_PER_CAMERA = 40
ENDED_PER_CAMERA = 256
LOGGED = ("new", "end", "entered", "left", "crossed")   # the event log; updates only change the track
DIGITS = 4


def _centre(box: list[float]) -> list[float]:
    return [round((box[0] + box[2]) / 2, DIGITS), round((box[1] + box[3]) / 2, DIGITS)]


class _Camera:
    def __init__(self) -> None:
        self.tracks: OrderedDict[int, dict[str, Any]] = OrderedDict()   # track id -> state, least recently seen first
        self.events: deque[dict] = deque(maxlen=EVENTS_PER_CAMERA)
        self.ended: OrderedDict[int, float] = OrderedDict()              # track id -> its end (capture time)


class TrackBoard:
    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.cameras: dict[str, _Camera] = {}

    # ------------------------------------------------------------------ input
    def detections(self, device: str, payload: dict, received: float) -> Optional[dict]:
        """A detections message: every detection with a track id moves its track (box, model σ, trail)."""
        ts = float(payload["ts"])
        cam = self.cameras.get(device)
        changed: dict[int, dict] = {}
        removed: list[int] = []
        for det in payload.get("detections", []):
            track = det.get("track")
            if track is None:
                continue
            cam = cam or self.cameras.setdefault(device, _Camera())
            if track in cam.ended and ts <= cam.ended[track] + 1e-3:
                continue            # delivered after its track's end: not a new track
            cam.ended.pop(track, None)
            t = cam.tracks.get(track)
            if t is None:
                t = self._new_track(cam, track, det["label"], removed)
            # the track's label is the agent's vote over its detections, said by its events; a detection's own class
            # may differ (class-agnostic tracking): it names the track only until an event has
            label = det["label"] if t["id"] is None else t["label"]
            t.update(label=label, box=list(det["box"]), box_sigma=det.get("box_sigma"), sigma_from="detection",
                     score=det["score"], framed=True)
            self._seen(cam, t, ts, received)
            changed[track] = t
        return self._delta(device, list(changed.values()), removed)

    def event(self, device: str, payload: dict, received: float) -> Optional[dict]:
        """One event: track events set the track's state (the tracker's box and σ), ``end`` removes it; the kinds
        in ``LOGGED`` are added to the camera's log."""
        cam = self.cameras.setdefault(device, _Camera())
        kind, track, ts = payload["type"], payload["track"], float(payload["ts"])
        entries = []
        if kind in LOGGED or (kind == "update" and "label" in payload.get("changed", [])):
            entry = {"type": kind, "ts": ts, "track": track, "id": payload["id"], "label": payload["label"],
                     "seq": payload["seq"]}
            for key in ("zone", "line", "direction", "changed"):
                if key in payload:
                    entry[key] = payload[key]
            cam.events.append(entry)
            entries.append(entry)
        changed: list[dict] = []
        removed: list[int] = []
        if kind == "end":
            if cam.tracks.pop(track, None) is not None:
                removed.append(track)
            cam.ended[track] = float(payload["end"])
            cam.ended.move_to_end(track)
            while len(cam.ended) > ENDED_PER_CAMERA:
                cam.ended.popitem(last=False)
        elif kind in ("new", "update"):
            cam.ended.pop(track, None)
            t = cam.tracks.get(track)
            if t is not None and t.get("id") not in (None, payload["id"]):   # the agent restarted: ids begin again
                del cam.tracks[track]
                removed.append(track)
                t = None
            if t is None:
                t = self._new_track(cam, track, payload["label"], removed)
            t.update(id=payload["id"], label=payload["label"], start=payload["start"], box=list(payload["box"]),
                     box_sigma=payload["box_sigma"], sigma_from="track", score=payload.get("score"),
                     best_score=payload["best_score"], sigma_mean=payload.get("sigma_mean"),
                     zones=list(payload["zones"]), lines=payload.get("lines", {}))
            self._seen(cam, t, ts, received)
            changed.append(t)
        elif track in cam.tracks:          # entered / left / crossed: it is alive
            t = cam.tracks[track]
            t["id"] = t.get("id") or payload["id"]
            t["last_mention"] = max(t["last_mention"], received)
            changed.append(t)
        return self._delta(device, changed, removed, entries)

    def objects(self, device: str, payload: dict) -> Optional[dict]:
        """The agent's counts: more tracks of a label held here than it counts -> the least recently seen go
        (only tracks last seen before the counts were taken)."""
        cam = self.cameras.get(device)
        if cam is None:
            return None
        counts, ts = payload["objects"], float(payload["ts"])
        removed = []
        for label in {t["label"] for t in cam.tracks.values()}:
            held = [k for k, t in cam.tracks.items() if t["label"] == label]     # least recently seen first
            for track in held[:max(0, len(held) - counts.get(label, 0))]:
                if cam.tracks[track]["last_ts"] < ts:
                    del cam.tracks[track]
                    removed.append(track)
        return self._delta(device, [], removed)

    def offline(self, device: str) -> Optional[dict]:
        """The camera went offline (or was cleared): its tracker is gone, and so are its tracks."""
        cam = self.cameras.get(device)
        if cam is None or not cam.tracks:
            return None
        removed = list(cam.tracks)
        cam.tracks.clear()
        return self._delta(device, [], removed)

    def forget(self, device: str) -> None:
        self.cameras.pop(device, None)

    def expire(self, now: float) -> list[dict]:
        """Tracks seen in detections messages and not mentioned for ``timeout_s``."""
        out = []
        for device, cam in self.cameras.items():
            gone = [k for k, t in cam.tracks.items() if t["framed"] and now - t["last_mention"] > self.timeout_s]
            for k in gone:
                del cam.tracks[k]
            delta = self._delta(device, [], gone)
            if delta:
                out.append(delta)
        return out

    # ------------------------------------------------------------------ output
    def snapshot(self) -> dict[str, dict]:
        return {device: {"tracks": list(cam.tracks.values()), "events": list(cam.events)}
                for device, cam in self.cameras.items()}

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _new_track(cam: _Camera, track: int, label: str, removed: list[int]) -> dict:
        while len(cam.tracks) >= TRACKS_PER_CAMERA:
            oldest, _ = cam.tracks.popitem(last=False)
            removed.append(oldest)
        t = {"track": track, "id": None, "label": label, "start": None, "box": None, "box_sigma": None,
             "sigma_from": None, "score": None, "best_score": None, "sigma_mean": None, "zones": [], "lines": {},
             "trail": [], "first_ts": None, "last_ts": None, "last_mention": 0.0, "framed": False}
        cam.tracks[track] = t
        return t

    @staticmethod
    def _seen(cam: _Camera, t: dict, ts: float, received: float) -> None:
        """One more observation of ``t`` at capture time ``ts``: a trail point (in time order; a point older than
        the trail's last, e.g. an event delivered after the frame that followed it, is not drawn)."""
        if t["box"] is not None and (t["last_ts"] is None or ts > t["last_ts"]):
            t["trail"].append(_centre(t["box"]))
            del t["trail"][:-TRAIL_POINTS]
        t["first_ts"] = ts if t["first_ts"] is None else min(t["first_ts"], ts)
        t["last_ts"] = ts if t["last_ts"] is None else max(t["last_ts"], ts)
        t["last_mention"] = max(t["last_mention"], received)
        cam.tracks.move_to_end(t["track"])

    @staticmethod
    def _delta(device: str, changed: list[dict], removed: list[int], entries: list[dict] | None = None) -> Optional[dict]:
        removed = [k for k in dict.fromkeys(removed) if k not in {t["track"] for t in changed}]
        if not changed and not removed and not entries:
            return None
        return {"kind": "tracks", "device": device, "tracks": [dict(t, trail=list(t["trail"])) for t in changed],
                "removed": removed, "events": list(entries or [])}
