"""Window results from the SQL's cells and from late frames: the first result, and revisions. Pure Python.

The SQL side aggregates on-time frames into *cells* (sums per window, device and class; class None for frames
without detections and for metrics/status) and hands over, whole, the frames that arrived after their window
fired but within the allowed lateness. Per (device, window) a :class:`DeviceWindow` adds both up: it makes the
window's payloads (one ``aggregate`` per class, one ``health``) when the watermark passes the window's end, and
again, with the next ``revision`` number, whenever a late frame changes them. It also says what changed for the fleet totals
(:meth:`DeviceWindow.fleet_deltas`), which a :class:`FleetWindow` per (class, window) adds up the same way.

Objects: per (device, window) and label the distinct track ids on the window's detections (the cells carry
them: one cell per class and track), the track events of the window (``new``, ``end`` with its dwell, ``crossed``
per line and direction) and the latest object counts an agent sent in it (:meth:`DeviceWindow.object_payloads`);
late frames and late events revise them like the aggregates.

Every field only grows with late data (counts, sums, maxima, the latest beat by capture time), so a revision
is the window's full result again: consumers replace by the payload's ``id``. The Flink wrappers
(``stream.functions``) keep these as JSON in keyed state and drive them with event-time timers.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from edge.contract import outputs
from stream.sql import KINDS

SUM_KEYS = ("n", "ns", "fc", "ss", "gs", "hi")          # detections, with sigma, frames, score, sigma sums, high


def _latest(raw: Optional[str]) -> Optional[list]:
    """A cell's "<16-digit ts_ms>|<value>" as [ts_ms, value string]."""
    return None if raw is None else [int(raw[:16]), raw[17:]]


def _newer(a: Optional[list], b: Optional[list]) -> Optional[list]:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b, key=lambda x: (x[0], x[1]))


def _cls() -> dict:
    return {"label": "", "n": 0, "ns": 0, "fc": 0, "ss": 0.0, "gs": 0.0, "gm": None, "hi": 0}


class DeviceWindow:
    """The state of one (device, window) as a JSON-able dict ``self.s``."""

    def __init__(self, state: Optional[dict] = None, *, device: str = "", ws_ms: int = 0, we_ms: int = 0):
        self.s = state or {"device": device, "ws": ws_ms, "we": we_ms, "fired": False, "classes": {}, "rev": {},
                           "sent": {}, "h": {"frames": 0, "late": 0, "last_ms": 0, "dropped": None, "fps": None,
                                             "depth": None, "state": None, "off": None},
                           "o": {}, "p": None}
        self.s.setdefault("o", {})          # windows kept in state by a job before objects were aggregated
        self.s.setdefault("p", None)

    # ------------------------------------------------------------------ input
    def add_cell(self, r: dict) -> Optional[int]:
        """One SQL cell (a dict of ``stream.sql.OUTPUT_COLUMNS``); returns its class id (None: the health cell)."""
        h = self.s["h"]
        h["frames"] += int(r["frames"] or 0)
        h["last_ms"] = max(h["last_ms"], int(r["last_ms"] or 0))
        if r["dropped"] is not None:
            h["dropped"] = max(h["dropped"] or 0, int(r["dropped"]))
        for key, col in (("fps", "fps_l"), ("depth", "depth_l"), ("state", "state_l"), ("off", "off_l")):
            h[key] = _newer(h[key], _latest(r[col]))
        cid = r["class_id"]
        if cid is None:
            return None
        if r.get("track") is not None:
            self._track(r["label"] or "", int(r["track"]))
        c = self.s["classes"].setdefault(str(cid), _cls())
        c["label"] = max(c["label"], r["label"] or "")
        for k, col in zip(SUM_KEYS, ("detections", "with_sigma", "frames_c", "score_sum", "sigma_sum", "high")):
            c[k] += r[col] or 0
        if r["sigma_max"] is not None:
            c["gm"] = r["sigma_max"] if c["gm"] is None else max(c["gm"], r["sigma_max"])
        return int(cid)

    def add_late(self, r: dict, high_sigma_threshold: float) -> set[int]:
        """One late frame or beat (kcode 0 detections, 1 metrics, 2 status); returns the classes it changed."""
        h = self.s["h"]
        ts_ms = int(round(r["ts"] * 1000))
        h["last_ms"] = max(h["last_ms"], ts_ms)
        if r["kcode"] != 0:
            if r["dropped"] is not None:
                h["dropped"] = max(h["dropped"] or 0, int(r["dropped"]))
            for key, col in (("fps", "fps"), ("depth", "outbox_depth"), ("state", "state"), ("off", "clock_offset")):
                if r[col] is not None:
                    h[key] = _newer(h[key], [ts_ms, _text(r[col])])
            return set()
        h["frames"] += 1
        h["late"] += 1
        changed = set()
        seen: set = set()
        for d in r["dets"] or ():
            c_id, label, score, sigma = _det(d)
            c = self.s["classes"].setdefault(str(c_id), _cls())
            c["label"] = max(c["label"], label or "")
            c["n"] += 1
            c["ss"] += score
            c["fc"] += c_id not in seen
            seen.add(c_id)
            if sigma is not None:
                c["ns"] += 1
                c["gs"] += sigma
                c["gm"] = sigma if c["gm"] is None else max(c["gm"], sigma)
                c["hi"] += sigma >= high_sigma_threshold
            changed.add(c_id)
        return changed

    # ------------------------------------------------------------------ objects (tracks, events, counts)
    def _objects(self, label: str) -> dict:
        return self.s["o"].setdefault(label, {"tr": [], "st": 0, "en": 0, "dw": [], "x": {}})

    def _track(self, label: str, track: int) -> bool:
        """Add ``track`` to the label's distinct tracks; True when it is new there."""
        tracks = self._objects(label)["tr"]
        if track in tracks:
            return False
        tracks.append(track)
        return True

    def late_tracks(self, r: dict) -> set[str]:
        """The tracks of a late frame's detections (kcode 0) into the window; returns the labels that got a track
        they did not have (their objects payload changed)."""
        labels = set()
        if r["kcode"] == 0:
            for d in r["dets"] or ():
                track = _det_track(d)
                if track is not None:
                    label = _det(d)[1] or ""
                    if self._track(label, track):
                        labels.add(label)
        return labels

    def add_object(self, r: dict) -> set[str]:
        """One track event or object-counts message (an ``object`` row: on time or late); returns the labels whose
        objects payload it changed, :data:`PRESENT` for counts."""
        if r["kcode"] == OBJECTS_KCODE:         # the latest counts by capture time (ties: the larger JSON)
            mine = [float(r["ts"]), r["oc"]]
            if self.s["p"] is None or (mine[0], mine[1]) > (self.s["p"][0], self.s["p"][1]):
                self.s["p"] = mine
                return {PRESENT}
            return set()
        ev, label = r["ev"], r["label"] or ""
        if ev == "new":
            self._objects(label)["st"] += 1
        elif ev == "end":
            o = self._objects(label)
            o["en"] += 1
            o["dw"].append(float(r["ee"]) - float(r["es"]))
        elif ev == "crossed":
            counts = self._objects(label)["x"].setdefault(r["xl"], {"in": 0, "out": 0})
            counts[r["xd"]] += 1
        else:                 # update, entered, left: what the objects payload says does not change
            return set()
        return {label}

    def object_payloads(self, labels: Optional[Iterable[str]] = None) -> list[dict]:
        """The objects payloads of ``labels`` (default: every label, and the present counts when the window has
        any; :data:`PRESENT` in ``labels``: the present counts), each with its next revision number."""
        o = self.s["o"]
        names = sorted(o) if labels is None else sorted(x for x in labels if x in o)
        out = [self._objects_payload(label, o[label]) for label in names]
        if self.s["p"] is not None and (labels is None or PRESENT in labels):
            counts = json.loads(self.s["p"][1])
            out.append(outputs.build("present", device=self.s["device"], **self.window,
                                     revision=self._revision(PRESENT), as_of=self.s["p"][0],
                                     objects=counts.get("objects", {}), zones=counts.get("zones", {})))
        return out

    def _objects_payload(self, label: str, o: dict) -> dict:
        dwell = sorted(o["dw"])
        return outputs.build("objects", device=self.s["device"], label=label, **self.window,
                             revision=self._revision("o:" + label), tracks=len(o["tr"]), started=o["st"],
                             ended=o["en"], **dwell_stats(dwell),
                             crossings={k: dict(v) for k, v in sorted(o["x"].items())})

    # ------------------------------------------------------------------ output
    @property
    def window(self) -> dict:
        return {"window_start": self.s["ws"] / 1000.0, "window_end": self.s["we"] / 1000.0}

    def _revision(self, key: str) -> int:
        """The next revision number of one payload of this window (0: its first result)."""
        n = self.s["rev"].get(key, -1) + 1
        self.s["rev"][key] = n
        return n

    def aggregate(self, class_id: int, high_sigma_threshold: float) -> dict:
        c = self.s["classes"][str(class_id)]
        return outputs.build("aggregate", device=self.s["device"], class_id=class_id, label=c["label"], **self.window,
                             revision=self._revision(str(class_id)), **_class_fields(c, high_sigma_threshold))

    def health(self) -> dict:
        h = self.s["h"]
        span = max(1e-9, (self.s["we"] - self.s["ws"]) / 1000.0)
        return outputs.build(
            "health", device=self.s["device"], **self.window, revision=self._revision("health"),
            last_seen=h["last_ms"] / 1000.0,
            frames=h["frames"], late_frames=h["late"], frame_rate=h["frames"] / span,
            fps=None if h["fps"] is None else float(h["fps"][1]),
            dropped=h["dropped"], outbox_depth=None if h["depth"] is None else int(float(h["depth"][1])),
            state=None if h["state"] is None else h["state"][1],
            clock_offset_s=None if h["off"] is None else float(h["off"][1]))

    def payloads(self, high_sigma_threshold: float, classes: Optional[Iterable[int]] = None) -> list[dict]:
        """The aggregates of ``classes`` (default: every class) and the health, in a deterministic order, each
        with its next revision number. No health for a window that holds only track events and object counts
        (the health is about frames and beats)."""
        ids = sorted(int(c) for c in self.s["classes"]) if classes is None else sorted(classes)
        health = [self.health()] if self.s["h"]["last_ms"] or self.s["classes"] else []
        return [self.aggregate(c, high_sigma_threshold) for c in ids] + health

    def fleet_deltas(self) -> list[dict]:
        """What changed for the fleet totals since the last call: per class the added sums, the new maximum, and
        whether this device is new to that class's window (``first``)."""
        out = []
        for cid, c in sorted(self.s["classes"].items()):
            sent = self.s["sent"].get(cid)
            delta = {k: c[k] - (sent[k] if sent else 0) for k in SUM_KEYS}
            if sent and not any(delta.values()) and c["gm"] == sent["gm"]:
                continue
            out.append({"class_id": int(cid), "label": c["label"], "ws": self.s["ws"], "we": self.s["we"],
                        "first": sent is None, "gm": c["gm"], **delta})
            self.s["sent"][cid] = {k: c[k] for k in (*SUM_KEYS, "gm")}
        return out


def merge_fleet_delta(merged: dict, d: dict) -> None:
    """Add one device's fleet delta (:meth:`DeviceWindow.fleet_deltas`) to ``merged``, deltas per class id (of one
    window): sums added, maxima kept, ``devices`` the number of devices new to the class's window. The job sends
    one merged delta per class and shard of the devices to the fleet totals, not one per device."""
    m = merged.get(d["class_id"])
    if m is None:
        m = merged[d["class_id"]] = {**_cls(), "class_id": d["class_id"], "ws": d["ws"], "we": d["we"], "devices": 0}
    _add_class_sums(m, d)
    m["devices"] += bool(d["first"])


def _add_class_sums(into: dict, d: dict) -> None:
    """Add a delta's label, sums and sigma maximum to a class's (a merged delta's or a fleet window's)."""
    into["label"] = max(into["label"], d["label"] or "")
    for k in SUM_KEYS:
        into[k] += d[k]
    if d["gm"] is not None:
        into["gm"] = d["gm"] if into["gm"] is None else max(into["gm"], d["gm"])


class FleetWindow:
    """One class over all devices for one window, added up from merged deltas (:func:`merge_fleet_delta`)."""

    def __init__(self, state: Optional[dict] = None):
        self.s = state or {**_cls(), "class_id": None, "ws": 0, "we": 0, "devices": 0, "fired": False, "rev": -1}

    def add(self, delta: dict) -> None:
        s = self.s
        s["class_id"], s["ws"], s["we"] = delta["class_id"], delta["ws"], delta["we"]
        _add_class_sums(s, delta)
        s["devices"] += delta["devices"]

    def payload(self, high_sigma_threshold: float) -> dict:
        s = self.s
        s["rev"] += 1
        return outputs.build("fleet", class_id=s["class_id"], label=s["label"], window_start=s["ws"] / 1000.0,
                             window_end=s["we"] / 1000.0, revision=s["rev"], devices=s["devices"],
                             **_class_fields(s, high_sigma_threshold))


def _class_fields(c: dict, high_sigma_threshold: float) -> dict[str, Any]:
    """Detections of a model without uncertainty count in detections and score, not in the sigma statistics."""
    ns = c["ns"]
    return {"detections": c["n"], "frames": c["fc"], "score_mean": c["ss"] / c["n"], "with_sigma": ns,
            "sigma_mean": c["gs"] / ns if ns else None, "sigma_max": c["gm"] if ns else None,
            "high_sigma_share": c["hi"] / ns if ns else None, "high_sigma_threshold": high_sigma_threshold}


PRESENT = "_present"          # the key of a window's present-counts payload among its objects' (labels)
OBJECTS_KCODE = KINDS.index("objects")      # an object-counts row among the object rows (the others: events)


def dwell_stats(durations: list[float]) -> dict[str, Optional[float]]:
    """Dwell statistics of sorted durations (s): mean (summed in sorted order: the same float whatever the
    arrival order), median (p50: the middle one, the mean of the two middle ones for an even count), maximum;
    all None without durations."""
    n = len(durations)
    if not n:
        return {"dwell_mean_s": None, "dwell_p50_s": None, "dwell_max_s": None}
    mid = n // 2
    p50 = durations[mid] if n % 2 else (durations[mid - 1] + durations[mid]) / 2
    return {"dwell_mean_s": sum(durations) / n, "dwell_p50_s": p50, "dwell_max_s": durations[-1]}


def _det_track(d) -> Optional[int]:
    """The track id of one landing-line detection (a Row or a dict), None without one."""
    if isinstance(d, dict):
        t = d.get("t")
    else:
        t = d[6] if len(d) > 6 else None
    return None if t is None else int(t)


def _det(d) -> tuple[int, str, float, Optional[float]]:
    """(class id, label, score, sigma_mean) of one landing-line detection (a Row or a dict with c, l, p, g)."""
    if isinstance(d, dict):
        return int(d["c"]), d["l"], float(d["p"]), None if d["g"] is None else float(d["g"])
    return int(d[0]), d[1], float(d[2]), None if d[3] is None else float(d[3])


def _text(v: Any) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


def window_starts(ts_ms: int, size_ms: int, slide_ms: int) -> list[int]:
    """Starts of the windows (size, slide) containing ``ts_ms``, oldest first."""
    last = ts_ms - ts_ms % slide_ms
    return [s for s in range(last - size_ms + slide_ms, last + 1, slide_ms) if s <= ts_ms < s + size_ms]
