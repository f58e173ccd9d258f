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


class _Track:
    """Per-track bookkeeping (the filter's numbers are rows of ``Tracker.s``)."""
    __slots__ = ("id", "class_id", "state", "start_ts", "last_seen_ts", "score", "best_score", "hits", "missed",
                 "sigma_sum", "sigma_n", "class_votes", "seen_last_frame")

    def __init__(self, tid: int, class_id: int, state: str, ts: float, score: float, sigma_mean: Optional[float]):
        self.id, self.class_id, self.state = tid, class_id, state
        self.start_ts = self.last_seen_ts = ts
        self.score = self.best_score = score
        self.hits, self.missed = 1, 0
        with_sigma = sigma_mean is not None and sigma_mean == sigma_mean       # not None, not NaN
        self.sigma_sum, self.sigma_n = (float(sigma_mean), 1) if with_sigma else (0.0, 0)
        self.class_votes = {class_id: score}
        self.seen_last_frame = True


# (cx, cy, w, h) @ TO_XYXY = (x1, y1, x2, y2): products by 0, 1 and 0.5 are exact, so this is bitwise cx -+ w / 2
TO_XYXY = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], np.float64)


class Tracker:
    """Per frame the work is a fixed number of numpy calls on stacked arrays (one row per track: the filter's
    state and covariance blocks, ``kalman``), whatever the number of tracks, plus plain Python on the few gated
    pairs and on the per-track bookkeeping."""

    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg = cfg or TrackerConfig()
        self.tracks: list[_Track] = []
        self.s = np.zeros((0, kalman.WIDTH))     # the filter, one row per track (edge.tracking.kalman)
        self.seen = np.zeros((0, kalman.WIDTH))  # each track's row right after its last match (for its end)
        self.labels: dict[int, str] = {}
        self.last_ts: float | None = None
        self.next_id = 1
        self._step = kalman.Step(cfg.dt_default)
        # max(w, h, 1e-3) @ _accel = acceleration std of (cx, cy, w, h); @ _init_velocity: a new track's velocity std
        self._accel = np.array([[cfg.accel, 0, cfg.size_accel, 0], [0, cfg.accel, 0, cfg.size_accel]], np.float64)
        self._init_velocity = np.array([[cfg.init_velocity, 0, cfg.init_size_velocity, 0],
                                        [0, cfg.init_velocity, 0, cfg.init_size_velocity]], np.float64)

    # ------------------------------------------------------------------ one frame
    def update(self, detections: Sequence[Detection], ts: float, dt: Optional[float] = None) -> FrameTracks:
        """One frame captured at ``ts``. ``dt``: the filter's step in seconds when the capture times do not follow
        the scene (a video file read as fast as it is processed: its frame interval); None = the time since the
        previous frame."""
        cfg = self.cfg
        labels = self.labels
        for d in detections:
            if d.class_id not in labels:
                labels[d.class_id] = d.label
        meas = from_detections(detections, cfg)
        m = len(meas)
        twin = duplicates(meas.boxes, meas.score, cfg.duplicate_iou) if cfg.duplicate_iou is not None else None
        if dt is None or dt <= 0:
            dt = cfg.dt_default if self.last_ts is None or ts <= self.last_ts else ts - self.last_ts
        self.last_ts = ts
        tracks = self.tracks
        if tracks:
            q = np.maximum(self.s[:, 2:4], 1e-3) @ self._accel
            self.s = kalman.predict(self.s, self._step.set(dt), np.square(q, out=q))
        low, high = cfg.low_score, cfg.high_score
        scores = meas.score
        if twin is None:
            usable = [v >= low for v in scores]
        else:
            usable = [v >= low and o < 0 for v, o in zip(scores, twin)]
        match: dict[int, int] = {}                  # track index -> detection index
        if tracks and any(usable):
            self._associate(meas, usable, match)
        det_tracks: list[Optional[int]] = [None] * m
        taken = [False] * m
        det_of = [-1] * len(tracks)
        if match:
            for i, j in match.items():
                det_of[i] = j
                taken[j] = True
            rows, cols = np.array(list(match)), np.array(list(match.values()))
            s = kalman.update(self.s.take(rows, 0), meas.z.take(cols, 0), meas.r.take(cols, 0))
            self.s[rows] = s
            self.seen[rows] = s
        ended = self._lifecycle(det_of, meas, ts, det_tracks)
        self._births(meas, taken, usable, ts, det_tracks)
        if twin is not None:
            for j, o in enumerate(twin):
                if o >= 0:
                    det_tracks[j] = det_tracks[o]
        tracks = self.tracks
        if any(t.state == TENTATIVE for t in tracks):
            views = self._views([i for i, t in enumerate(tracks) if t.state != TENTATIVE])
        else:
            views = self._views(None)
        return FrameTracks(ts, views, det_tracks, ended)

    # ------------------------------------------------------------------ association
    def _associate(self, meas: Measurements, usable: list[bool], match: dict[int, int]) -> None:
        """The three passes (module doc) on the gated pairs, each pair sorted once into the pass it can be in."""
        high = self.cfg.high_score
        strong = [v >= high for v in meas.score]
        tracks = self.tracks
        tentative = [t.state == TENTATIVE for t in tracks]
        first, second, third = [], [], []
        for pair in self._pairs(meas):
            i, j = pair[0], pair[1]
            if not usable[j]:
                continue
            if tentative[i]:
                if strong[j]:
                    third.append(pair)
            elif strong[j]:
                first.append(pair)
            elif tracks[i].seen_last_frame:
                second.append(pair)
        limit = self._limit
        # pass 1: confirmed (and lost) tracks, high-score detections
        if first:
            match.update(assign_pairs(first, limit))
        # pass 2: confirmed tracks seen in the previous frame and still free, the low-score detections
        if second and match:
            second = [p for p in second if p[0] not in match]
        if second:
            match.update(assign_pairs(second, limit))
        # pass 3: tentative tracks, the high-score detections left
        if third and match:
            taken = set(match.values())
            third = [p for p in third if p[1] not in taken]
        if third:
            match.update(assign_pairs(third, limit))

    def _pairs(self, meas: Measurements) -> list[tuple[int, int, float]]:
        """(track, detection, cost) of every pair the gate allows (and, class-aware, of the same class)."""
        cfg = self.cfg
        if cfg.association == "mahalanobis":
            d2, log_det = kalman.mahalanobis(self.s, meas.z, meas.r, with_log_det=True)
            ok = d2 < cfg.gate
            d2 += log_det
            cost = d2
            self._limit = np.inf      # the gate decides what may match; the cost only ranks (see the module doc)
        else:
            cost = 1.0 - iou_matrix(self.s[:, :4] @ TO_XYXY, meas.boxes)
            self._limit = 1.0 - cfg.min_iou
            ok = cost < self._limit
        if cfg.class_aware:
            own = np.array([t.class_id for t in self.tracks], np.int64)
            ok &= own[:, None] == np.array(meas.class_id, np.int64)[None, :]
        r, c = ok.nonzero()
        return list(zip(r.tolist(), c.tolist(), cost[r, c].tolist()))

    _limit = np.inf                   # the solver's cost limit of the current association

    # ------------------------------------------------------------------ lifecycle
    def _lifecycle(self, det_of: list[int], meas: Measurements, ts: float,
                   det_tracks: list[Optional[int]]) -> list[TrackView]:
        """Per track, in plain Python on lists (a few dozen tracks: cheaper than numpy calls per field)."""
        cfg = self.cfg
        confirm, max_missed, vote = cfg.confirm_hits, cfg.max_missed, not cfg.class_aware
        scores, sigmas, classes = meas.score, meas.sigma_mean, meas.class_id
        ended: list[int] = []
        dropped = False
        s = self.s
        for i, (t, d) in enumerate(zip(self.tracks, det_of)):
            if d >= 0:
                t.hits += 1
                t.last_seen_ts = ts
                t.score = score = scores[d]
                if score > t.best_score:
                    t.best_score = score
                sm = sigmas[d]
                if sm is not None and sm == sm:      # not None, not NaN
                    t.sigma_sum += sm
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
            if t.missed > max_missed or not (0.0 <= s[i, 0] <= 1.0 and 0.0 <= s[i, 1] <= 1.0):
                ended.append(i)
        ended_views = self._views(ended, at_last_match=True) if ended else []
        if ended or dropped:
            for i in ended:
                self.tracks[i].state = None
            keep = [i for i, t in enumerate(self.tracks) if t.state is not None]
            self.tracks = [self.tracks[i] for i in keep]
            self.s, self.seen = self.s[keep], self.seen[keep]
        return ended_views

    def _births(self, meas: Measurements, taken: list[bool], usable: list[bool], ts: float,
                det_tracks: list[Optional[int]]) -> None:
        cfg = self.cfg
        room = cfg.max_tracks - len(self.tracks)
        if room <= 0:
            return
        scores = meas.score
        least = cfg.new_track_score
        new = [j for j, v in enumerate(scores) if v >= least and usable[j] and not taken[j]]
        if not new:
            return
        new.sort(key=lambda j: -scores[j])         # stable: equal scores keep the detections' order
        new = new[:room]
        z = meas.z[new]
        rows = kalman.initiate(z, meas.r[new], z[:, 2:4] @ self._init_velocity)
        self.s = np.concatenate([self.s, rows])
        self.seen = np.concatenate([self.seen, rows])
        state = CONFIRMED if cfg.confirm_hits <= 1 else TENTATIVE
        classes, sigmas = meas.class_id, meas.sigma_mean
        for j in new:
            self.tracks.append(_Track(self.next_id, classes[j], state, ts, scores[j], sigmas[j]))
            if state == CONFIRMED:
                det_tracks[j] = self.next_id
            self.next_id += 1

    # ------------------------------------------------------------------ views
    def _views(self, index: Optional[list[int]], at_last_match: bool = False) -> list[TrackView]:
        """Views of the tracks at ``index`` (None: all): their current estimate, or (ended tracks) the one after
        their last match. One array of every number the views need, one conversion to Python floats."""
        tracks = self.tracks if index is None else [self.tracks[i] for i in index]
        if not tracks:
            return []
        if at_last_match:
            seen = self.seen if index is None else self.seen.take(index, 0)
            where, var = seen[:, kalman.POS], seen[:, kalman.PP]
            velocity = (self.s if index is None else self.s.take(index, 0))[:, 4:6]
        else:
            rows = self.s if index is None else self.s.take(index, 0)
            where, var, velocity = rows[:, :4], rows[:, kalman.PP], rows[:, 4:6]
        table = np.empty((len(tracks), 10))
        box, std = table[:, :4], table[:, 4:8]
        np.matmul(where, TO_XYXY, out=box)
        np.maximum(box, 0.0, out=box)
        np.minimum(box, 1.0, out=box)
        np.maximum(var, 0.0, out=std)
        np.sqrt(std, out=std)
        table[:, 8:] = velocity
        labels = self.labels
        new = tuple.__new__            # TrackView's own __new__ is a Python function: one frame less per view
        return [new(TrackView, (t.id, t.class_id, labels.get(t.class_id, str(t.class_id)), t.state, (a, b, c, d),
                                (e, f, g, h), (vx, vy), t.score, t.best_score,
                                t.sigma_sum / t.sigma_n if t.sigma_n else None, t.hits, t.missed, t.start_ts,
                                t.last_seen_ts))
                for t, (a, b, c, d, e, f, g, h, vx, vy) in zip(tracks, table.tolist())]


def duplicates(boxes: np.ndarray, score: list[float], iou: float) -> list[int]:
    """For each detection, the index of a higher-scored detection overlapping it by more than ``iou`` (the same
    object seen twice, e.g. under two classes: class-aware NMS keeps both), or -1. Greedy by score, like NMS.
    The overlaps of all pairs in a few numpy calls (the same arithmetic as ``iou_matrix``: inter > iou x union),
    the greedy pass in plain Python on the few pairs that overlap that much."""
    m = len(score)
    twin = [-1] * m
    if m < 2:
        return twin
    b = boxes.T                                                  # (4, M): x1, y1, x2, y2
    wh = np.minimum(b[2:, :, None], b[2:, None, :])              # (2, M, M) overlap width and height
    wh -= np.maximum(b[:2, :, None], b[:2, None, :])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[0] * wh[1]
    area = (b[2] - b[0]) * (b[3] - b[1])
    union = area[:, None] + area[None, :]
    union -= inter
    union *= iou
    r, c = (inter > union).nonzero()
    near: dict[int, list[int]] = {}
    for i, j in zip(r.tolist(), c.tolist()):
        if i != j:
            near.setdefault(i, []).append(j)                     # ascending j: nonzero is in row-major order
    if not near:
        return twin
    for d in sorted(near, key=lambda i: (-score[i], i)):
        if twin[d] < 0:
            for o in near[d]:
                if twin[o] < 0 and twin[d] < 0 and score[o] <= score[d]:
                    twin[o] = d
    return twin


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N, M) of float64 xyxy boxes with positive sizes (the tracker's own; fewer steps than edge.decode's)."""
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    inter = np.maximum(wh[..., 0], 0.0) * np.maximum(wh[..., 1], 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)
