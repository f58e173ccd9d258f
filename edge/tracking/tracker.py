"""Multi-object tracker: Kalman filter per track fed by the detector's own box sigma, two association passes.

One ``Tracker`` per camera; ``update(detections, ts)`` once per processed frame, in timestamp order:

1. predict every track to ``ts`` (constant velocity; the step is the real time between frames, so frames the
   agent drops only widen the prediction);
2. pass 1: detections scoring at least ``high_score`` against the confirmed tracks (lost ones included);
3. pass 2 (ByteTrack's idea): the remaining detections from ``low_score`` up, against the confirmed tracks that
   were seen in the previous frame and are still unmatched, so a half-hidden object keeps its track;
4. pass 3: tentative tracks against the high-score detections left;
5. lifecycle: a tentative track is confirmed after ``confirm_hits`` consecutive matches and dropped at its first
   miss; a confirmed track missed ``max_missed`` frames in a row, or lost with its predicted centre outside the
   frame, ends; an unmatched detection from ``new_track_score`` starts a tentative track.

Cost of a pair: the squared Mahalanobis distance d^2 under S = H P H^T + R (R from the detection's sigma) plus
ln(det S / det R), i.e. the Gaussian negative log-likelihood up to a constant; or 1 - IoU of the predicted box.
The gate (d^2 < ``gate``, or IoU >= ``min_iou``) decides which pairs may match; among those the solver
(``edge.tracking.assignment``) takes as many pairs as it can, then the cheapest. Without the ln det term a track
lost for a while, whose S has grown, would take detections from tracks that know where they are; as a limit
instead of a ranking it would keep a long-hidden object from ever being found again. Detections of two classes on one
object (class-aware NMS keeps both) count once. Only confirmed tracks are reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Sequence

import numpy as np

from edge.decode import Detection
from edge.tracking import kalman
from edge.tracking.assignment import assign_pairs
from edge.tracking.config import TrackerConfig
from edge.tracking.measurements import Measurements, from_detections

TENTATIVE, CONFIRMED, LOST = "tentative", "confirmed", "lost"


class TrackView(NamedTuple):
    """A confirmed track after one frame. ``box`` (x1, y1, x2, y2) and ``box_sigma`` (std of cx, cy, w, h) are the
    filter's estimate, frame-normalized; ``velocity`` (vx, vy) in frame units per second."""
    id: int
    class_id: int
    label: str
    state: str                 # confirmed (matched this frame) or lost (predicted only)
    box: tuple[float, float, float, float]
    box_sigma: tuple[float, float, float, float]
    velocity: tuple[float, float]
    score: float               # score of the last matched detection
    best_score: float
    sigma_mean: Optional[float]  # mean of the model's sigma over the matched detections (None: no sigma)
    hits: int
    missed: int
    start_ts: float            # first detection (birth as a tentative track)
    last_seen_ts: float        # last matched detection

    @property
    def matched(self) -> bool:
        return self.state == CONFIRMED


@dataclass
class FrameTracks:
    ts: float
    tracks: list[TrackView]                      # confirmed tracks alive after this frame, by id
    detection_tracks: list[Optional[int]]        # per input detection: its confirmed track's id, or None
    ended: list[TrackView] = field(default_factory=list)   # confirmed tracks that ended at this frame (box and
                                                           # box_sigma as after their last match)


@dataclass
class _Track:
    id: int
    class_id: int
    state: str
    start_ts: float
    last_seen_ts: float
    score: float
    best_score: float
    hits: int = 1
    missed: int = 0
    sigma_sum: float = 0.0
    sigma_n: int = 0
    class_votes: dict[int, float] = field(default_factory=dict)
    seen_last_frame: bool = True


class Tracker:
    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg or TrackerConfig()
        self.tracks: list[_Track] = []
        self.x = np.zeros((0, kalman.STATE))
        self.p = np.zeros((0, 3, kalman.DIM))
        self.seen = np.zeros((0, 2 * kalman.DIM))     # cx, cy, w, h and their std right after the last match
        self.labels: dict[int, str] = {}
        self.last_ts: float | None = None
        self.next_id = 1
        self._limit = np.inf               # the solver's cost limit of the current association

    # ------------------------------------------------------------------ one frame
    def update(self, detections: Sequence[Detection], ts: float, dt: Optional[float] = None) -> FrameTracks:
        """One frame captured at ``ts``. ``dt``: the filter's step in seconds when the capture times do not follow
        the scene (a video file read as fast as it is processed: its frame interval); None = the time since the
        previous frame."""
        cfg = self.cfg
        for d in detections:
            self.labels.setdefault(d.class_id, d.label)
        meas = from_detections(detections, cfg)
        twin = duplicates(meas, cfg.duplicate_iou) if cfg.duplicate_iou is not None else None
        if dt is None or dt <= 0:
            dt = cfg.dt_default if self.last_ts is None or ts <= self.last_ts else ts - self.last_ts
        self.last_ts = ts
        if self.tracks:
            self.x, self.p = kalman.predict(self.x, self.p, dt, self._accel_std())
        n, m = len(self.tracks), len(meas)
        usable = meas.score >= cfg.low_score if twin is None else (meas.score >= cfg.low_score) & (twin < 0)
        match: dict[int, int] = {}                  # track index -> detection index
        if n and usable.any():
            pairs = self._pairs(meas)               # every allowed track-detection pair with its cost, once
            if pairs:
                tracks = self.tracks
                strong = (meas.score >= cfg.high_score).tolist()
                use = usable.tolist()
                tentative = [t.state == TENTATIVE for t in tracks]
                # pass 1: confirmed (and lost) tracks, high-score detections
                self._match([p for p in pairs if not tentative[p[0]] and use[p[1]] and strong[p[1]]], match)
                # pass 2: confirmed tracks seen in the previous frame and still free, the low-score detections
                self._match([p for p in pairs if use[p[1]] and not strong[p[1]] and not tentative[p[0]]
                             and p[0] not in match and tracks[p[0]].seen_last_frame], match)
                # pass 3: tentative tracks, the high-score detections left
                taken = set(match.values())
                self._match([p for p in pairs if tentative[p[0]] and use[p[1]] and strong[p[1]]
                             and p[1] not in taken], match)
        det_of = np.full(n, -1, np.int64)
        taken = np.zeros(m, bool)
        if match:
            rows = np.fromiter(match.keys(), np.int64, len(match))
            d = np.fromiter(match.values(), np.int64, len(match))
            det_of[rows] = d
            taken[d] = True
            x, p = kalman.update(self.x[rows], self.p[rows], meas.z[d], meas.r[d])
            self.x[rows], self.p[rows] = x, p
            self.seen[rows] = np.concatenate([x[:, :4], kalman.measurement_std(p)], 1)
        det_tracks: list[Optional[int]] = [None] * m
        ended = self._lifecycle(det_of, meas, ts, det_tracks)
        self._births(meas, taken | ~usable, ts, det_tracks)
        if twin is not None:
            for d, o in enumerate(twin.tolist()):
                if o >= 0:
                    det_tracks[d] = det_tracks[o]
        views = self._views([i for i, t in enumerate(self.tracks) if t.state != TENTATIVE])
        return FrameTracks(ts, views, det_tracks, ended)

    # ------------------------------------------------------------------ association
    def _match(self, pairs: list[tuple[int, int, float]], match: dict[int, int]) -> None:
        if pairs:
            match.update(assign_pairs(pairs, self._limit))

    def _pairs(self, meas: Measurements) -> list[tuple[int, int, float]]:
        """(track, detection, cost) of every pair the gate allows (and, class-aware, of the same class)."""
        cfg = self.cfg
        if cfg.association == "mahalanobis":
            d2, log_det = kalman.mahalanobis(self.x, self.p, meas.z, meas.r, with_log_det=True)
            ok = d2 < cfg.gate
            cost = d2 + log_det
            self._limit = np.inf      # the gate decides what may match; the cost only ranks (see the module doc)
        else:
            cost = 1.0 - iou_matrix(_xyxy(self.x[:, :4]), meas.boxes)
            self._limit = 1.0 - cfg.min_iou
            ok = cost < self._limit
        if cfg.class_aware:
            own = np.array([t.class_id for t in self.tracks], np.int64)
            ok &= own[:, None] == meas.class_id[None, :]
        r, c = ok.nonzero()
        return list(zip(r.tolist(), c.tolist(), cost[r, c].tolist()))

    # ------------------------------------------------------------------ lifecycle
    def _lifecycle(self, det_of: np.ndarray, meas: Measurements, ts: float,
                   det_tracks: list[Optional[int]]) -> list[TrackView]:
        """Per track, in plain Python on lists (a few dozen tracks: cheaper than numpy calls per field)."""
        cfg = self.cfg
        confirm, max_missed, vote = cfg.confirm_hits, cfg.max_missed, not cfg.class_aware
        scores, sigmas, classes = meas.score.tolist(), meas.sigma_mean.tolist(), meas.class_id.tolist()
        centres = self.x[:, :2].tolist()
        ended: list[int] = []
        dropped = False
        for i, (t, d) in enumerate(zip(self.tracks, det_of.tolist())):
            if d >= 0:
                t.hits += 1
                t.last_seen_ts = ts
                t.score = score = scores[d]
                if score > t.best_score:
                    t.best_score = score
                s = sigmas[d]
                if s == s:      # not NaN
                    t.sigma_sum += s
                    t.sigma_n += 1
                if vote:
                    c = classes[d]
                    votes = t.class_votes
                    votes[c] = votes.get(c, 0.0) + score
                    if c != t.class_id:
                        t.class_id = max(votes, key=votes.get)
                if t.state != TENTATIVE or t.hits >= confirm:
                    t.state = CONFIRMED
                    det_tracks[d] = t.id
                t.missed = 0
                t.seen_last_frame = True
                continue
            t.seen_last_frame = False
            if t.state == TENTATIVE:
                t.state = None          # dropped below
                dropped = True
                continue
            t.missed += 1
            t.state = LOST
            cx, cy = centres[i]
            if t.missed > max_missed or not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0):
                ended.append(i)
        ended_views = self._views(ended, at_last_match=True)
        if ended or dropped:
            for i in ended:
                self.tracks[i].state = None
            keep = np.array([t.state is not None for t in self.tracks], bool)
            self.tracks = [t for t in self.tracks if t.state is not None]
            self.x, self.p, self.seen = self.x[keep], self.p[keep], self.seen[keep]
        return ended_views

    def _births(self, meas: Measurements, taken: np.ndarray, ts: float, det_tracks: list[Optional[int]]) -> None:
        cfg = self.cfg
        new = np.nonzero(~taken & (meas.score >= cfg.new_track_score))[0]
        room = cfg.max_tracks - len(self.tracks)
        if new.size == 0 or room <= 0:
            return
        new = new[np.argsort(-meas.score[new], kind="stable")][:room]
        z, r = meas.z[new], meas.r[new]
        wh = z[:, 2:4]
        x, p = kalman.initiate(z, r, np.concatenate([cfg.init_velocity * wh, cfg.init_size_velocity * wh], 1))
        self.x = np.concatenate([self.x, x])
        self.p = np.concatenate([self.p, p])
        self.seen = np.concatenate([self.seen, np.concatenate([x[:, :4], kalman.measurement_std(p)], 1)])
        state = CONFIRMED if cfg.confirm_hits <= 1 else TENTATIVE
        for d in new:
            s = float(meas.score[d])
            c = int(meas.class_id[d])
            sm = meas.sigma_mean[d]
            self.tracks.append(_Track(id=self.next_id, class_id=c, state=state, start_ts=ts, last_seen_ts=ts,
                                      score=s, best_score=s, sigma_sum=0.0 if sm != sm else float(sm),
                                      sigma_n=0 if sm != sm else 1, class_votes={c: s}))
            if state == CONFIRMED:
                det_tracks[d] = self.next_id
            self.next_id += 1

    # ------------------------------------------------------------------ helpers
    def _accel_std(self) -> np.ndarray:
        wh = np.maximum(self.x[:, 2:4], 1e-3)
        return np.concatenate([self.cfg.accel * wh, self.cfg.size_accel * wh], axis=1)

    def _views(self, index: list[int], at_last_match: bool = False) -> list[TrackView]:
        """Views of the tracks at ``index``: their current estimate, or (ended tracks) the one after their last match."""
        if not index:
            return []
        if at_last_match:
            where, sigmas = self.seen[index, :4], self.seen[index, 4:]
        else:
            where, sigmas = self.x[index, :4], kalman.measurement_std(self.p[index])
        boxes = np.minimum(np.maximum(_xyxy(where), 0.0), 1.0).tolist()
        labels = self.labels
        tracks = self.tracks
        return [TrackView(t.id, t.class_id, labels.get(t.class_id, str(t.class_id)), t.state, tuple(box), tuple(sig),
                          tuple(v), t.score, t.best_score, t.sigma_sum / t.sigma_n if t.sigma_n else None, t.hits,
                          t.missed, t.start_ts, t.last_seen_ts)
                for t, box, sig, v in zip([tracks[i] for i in index], boxes, sigmas.tolist(), self.x[index, 4:6].tolist())]


def duplicates(meas: Measurements, iou: float) -> np.ndarray:
    """For each detection, the index of a higher-scored detection overlapping it by more than ``iou`` (the same
    object seen twice, e.g. under two classes: class-aware NMS keeps both), or -1. Greedy by score, like NMS.
    Plain Python: a sweep over the boxes sorted by left edge finds the few pairs that overlap at all, and only those
    get an IoU (the same arithmetic as ``iou_matrix``)."""
    m = len(meas)
    twin = [-1] * m
    if m < 2:
        return np.array(twin, np.int64)
    boxes = meas.boxes.tolist()
    order = sorted(range(m), key=lambda i: boxes[i][0])
    near: dict[int, list[int]] = {}
    for k, i in enumerate(order):
        ax1, ay1, ax2, ay2 = boxes[i]
        for j in order[k + 1:]:
            bx1, by1, bx2, by2 = boxes[j]
            if bx1 >= ax2:
                break                                   # sorted by left edge: no later box reaches box i
            h = min(ay2, by2) - max(ay1, by1)
            if h <= 0.0:
                continue
            inter = (min(ax2, bx2) - bx1) * h
            if inter > iou * ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter):
                near.setdefault(i, []).append(j)
                near.setdefault(j, []).append(i)
    if not near:
        return np.array(twin, np.int64)
    score = meas.score.tolist()
    for d in sorted(near, key=lambda i: (-score[i], i)):
        if twin[d] < 0:
            for o in sorted(near[d]):
                if twin[o] < 0 and twin[d] < 0 and score[o] <= score[d]:
                    twin[o] = d
    return np.array(twin, np.int64)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N, M) of float64 xyxy boxes with positive sizes (the tracker's own; fewer steps than edge.decode's)."""
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    inter = np.maximum(wh[..., 0], 0.0) * np.maximum(wh[..., 1], 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = cxcywh[:, 2:4] / 2.0
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
