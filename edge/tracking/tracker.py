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

from math import sqrt
from typing import NamedTuple, Optional, Sequence

from edge.decode import Detection
from edge.tracking import kalman
from edge.tracking.assignment import assign_pairs
from edge.tracking.config import TrackerConfig
from edge.tracking.measurements import Measurements

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


class FrameTracks(NamedTuple):
    """What one frame did (a named tuple: the tracker makes one per frame, and right after the invoke a tuple is the
    cheapest object to make)."""
    ts: float
    tracks: list[TrackView]                      # confirmed tracks alive after this frame, by id
    detection_tracks: list[Optional[int]]        # per input detection: its confirmed track's id, or None
    ended: list[TrackView]                       # confirmed tracks that ended at this frame (box and box_sigma as
                                                 # after their last match)


class _Track:
    """One track: bookkeeping and its filter (``f``, ``edge.tracking.kalman``'s tuple of 20 floats)."""
    __slots__ = ("id", "class_id", "label", "state", "start_ts", "last_seen_ts", "score", "best_score", "hits",
                 "missed", "sigma_sum", "sigma_n", "sigma_mean", "class_votes", "seen_last_frame", "f", "seen")

    def __init__(self, tid: int, class_id: int, label: str, state: str, ts: float, score: float,
                 sigma_mean: Optional[float], f: kalman.Row):
        self.id, self.class_id, self.label, self.state = tid, class_id, label, state
        self.start_ts = self.last_seen_ts = ts
        self.score = self.best_score = score
        self.hits, self.missed = 1, 0
        with_sigma = sigma_mean is not None and sigma_mean == sigma_mean       # not None, not NaN
        self.sigma_sum, self.sigma_n = (float(sigma_mean), 1) if with_sigma else (0.0, 0)
        self.sigma_mean = self.sigma_sum / self.sigma_n if with_sigma else None  # what the views report
        self.class_votes = {class_id: score}
        self.seen_last_frame = True
        self.f = self.seen = f           # seen: the filter right after the last match (what an ended track reports)


class Tracker:
    """Plain Python on per-track tuples of floats (see ``edge.tracking.kalman`` for why not numpy): one pass over
    the detections, one loop over the tracks that predicts and gates (each pair straight into its pass), the passes,
    one loop that updates the matched tracks and runs the lifecycle, one for the views. Right after the invoke the
    tracker's own code is cold and costs more than its data (bench/README.md, "Cost"), so fewer distinct code paths
    per frame count as much as fewer operations: the first call of a builtin in a frame (sorted with a key, islice,
    zip, a comprehension, dict.get, max with a key, making an object of a Python class) costs 1-9 us there, against
    well under 1 us warm, while plain bytecode on floats costs about the same cold as warm. So the common path
    uses plain loops, tuples and lists, and only the builtins it cannot do without (sorting, sqrt, log). In the
    loops, ``a if a < b else b`` instead of min()/max(): no builtin call per comparison."""

    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg = cfg or TrackerConfig()
        self._meas = Measurements(cfg)          # this frame's detections, filled anew by each update
        # the settings each frame reads, as plain tuples (the configuration is frozen): right after the invoke an
        # attribute of the pydantic model costs about 0.4 us to read (bench/README.md, "Cost")
        self._frame = (cfg.duplicate_iou, cfg.dt_default, cfg.low_score, cfg.high_score,
                       cfg.association == "mahalanobis")
        self._gating = (cfg.accel, cfg.size_accel, cfg.gate, cfg.class_aware)
        self._life = (cfg.confirm_hits, cfg.max_missed, not cfg.class_aware)
        self._birth = (cfg.max_tracks, cfg.new_track_score, CONFIRMED if cfg.confirm_hits <= 1 else TENTATIVE,
                       cfg.init_velocity, cfg.init_size_velocity)
        self.tracks: list[_Track] = []
        self.labels: dict[int, str] = {}
        self.last_ts: float | None = None
        self.next_id = 1

    # ------------------------------------------------------------------ one frame
    def update(self, detections: Sequence[Detection], ts: float, dt: Optional[float] = None) -> FrameTracks:
        """One frame captured at ``ts``. ``dt``: the filter's step in seconds when the capture times do not follow
        the scene (a video file read as fast as it is processed: its frame interval); None = the time since the
        previous frame."""
        dup_iou, dt_default, low, high, mahalanobis = self._frame
        meas = self._meas
        m = meas.fill(detections, self.labels)
        scores = meas.score
        twin = duplicates(meas.boxes, scores, dup_iou, meas.x1) if dup_iou is not None else None
        if dt is None or dt <= 0:
            dt = dt_default if self.last_ts is None or ts <= self.last_ts else ts - self.last_ts
        self.last_ts = ts
        # per detection: 1 = high score (passes 1 and 3, may start a track), 2 = low score (pass 2), 0 = not tracked
        # (below low_score, or a duplicate)
        # (plain loops, no comprehension, zip or count: right after the invoke each such builtin's code path costs
        # 1-9 us the first time in a frame; bench/README.md, "Cost")
        kind: list[int] = []
        tracked = twins = False
        if twin is None:
            for v in scores:
                if v >= low:
                    kind.append(1 if v >= high else 2)
                    tracked = True
                else:
                    kind.append(0)
        else:
            j = 0
            for v in scores:
                if twin[j] >= 0:
                    kind.append(0)
                    twins = True
                elif v >= low:
                    kind.append(1 if v >= high else 2)
                    tracked = True
                else:
                    kind.append(0)
                j += 1
        det_of = [-1] * len(self.tracks)        # per track: the index of its detection, -1 = none
        taken = [False] * m                     # per detection: a track took it
        if self.tracks:
            if tracked:
                self._associate(meas, kind, det_of, taken, kalman.step(dt), mahalanobis)   # predicts every track
            else:
                self._predict(kalman.step(dt))
        det_tracks: list[Optional[int]] = [None] * m
        ended = self._lifecycle(det_of, meas, ts, det_tracks)
        self._births(meas, taken, kind, ts, det_tracks)
        if twins:
            j = 0
            for o in twin:
                if o >= 0:
                    det_tracks[j] = det_tracks[o]
                j += 1
        return tuple.__new__(FrameTracks, (ts, self._views(self.tracks, False, True), det_tracks, ended))

    def _predict(self, steps: tuple[float, float, float, float, float]) -> None:
        """Every track to the frame's time (``kalman.step(dt)``); the acceleration std is ``accel`` /
        ``size_accel`` box sizes."""
        accel, size_accel, predict = self._gating[0], self._gating[1], kalman.predict
        for t in self.tracks:
            f = t.f
            w = f[2] if f[2] > 1e-3 else 1e-3
            h = f[3] if f[3] > 1e-3 else 1e-3
            a, b, c, e = accel * w, accel * h, size_accel * w, size_accel * h
            t.f = predict(f, steps, (a * a, b * b, c * c, e * e))

    # ------------------------------------------------------------------ association
    def _associate(self, meas: Measurements, kind: list[int], det_of: list[int], taken: list[bool],
                   steps: tuple[float, float, float, float, float], mahalanobis: bool) -> None:
        """Predicts every track, then the three passes (module doc) on the gated pairs, each pair put into the one
        pass it can be in as its cost is computed; ``det_of`` and ``taken`` get the matches."""
        if mahalanobis:
            first, second, third = self._gated_pairs(meas, kind, steps)
            limit = float("inf")     # the gate decides what may match; the cost only ranks (see the module doc)
        else:
            self._predict(steps)
            first, second, third = self._iou_pairs(meas, kind)
            limit = 1.0 - self.cfg.min_iou
        matched = False
        # pass 1: confirmed (and lost) tracks, high-score detections
        if first:
            for i, j in assign_pairs(first, limit):
                det_of[i] = j
                taken[j] = True
                matched = True
        # pass 2: confirmed tracks seen in the previous frame and still free, the low-score detections
        if second:
            if matched:
                free = []
                for p in second:
                    if det_of[p[0]] < 0:
                        free.append(p)
                second = free
            for i, j in assign_pairs(second, limit) if second else ():
                det_of[i] = j
                taken[j] = True
                matched = True
        # pass 3: tentative tracks, the high-score detections left
        if third:
            if matched:
                free = []
                for p in third:
                    if not taken[p[1]]:
                        free.append(p)
                third = free
            for i, j in assign_pairs(third, limit) if third else ():
                det_of[i] = j
                taken[j] = True

    def _gated_pairs(self, meas: Measurements, kind: list[int], steps: tuple[float, float, float, float, float]):
        """Predicts each track (as ``_predict``) and right away gates it against every detection, in one call per
        track (``kalman.predict_gated``): the (track, detection, d^2 + ln(det S / det R)) of each pair the gate
        allows (and, class-aware, of the same class), by track then detection, in the lists of passes 1, 2 and 3.
        Every pair is checked, with one or two comparisons for those out of reach: a window of the detections sorted
        by cx (bisect per track) checks fewer pairs but runs more distinct code, and cold, right after the invoke,
        that cost more than it saved (bench/README.md, "Cost"; measured four times)."""
        accel, size_accel, gate, aware = self._gating
        predict_gated, zr, classes = kalman.predict_gated, meas.zr, meas.class_id
        far, far_y = meas.max_r_cx, meas.max_r_cy
        first: list[tuple[int, int, float]] = []
        second: list[tuple[int, int, float]] = []
        third: list[tuple[int, int, float]] = []
        i = -1
        for t in self.tracks:
            i += 1
            t.f, costs = predict_gated(t.f, steps, accel, size_accel, zr, gate, far, far_y)
            if not costs:
                continue
            cls = t.class_id if aware else -1
            if t.state == TENTATIVE:
                for j, cost in costs:
                    if kind[j] == 1 and (cls < 0 or classes[j] == cls):
                        third.append((i, j, cost))
                continue
            recent = t.seen_last_frame
            for j, cost in costs:
                k = kind[j]
                if not k or (cls >= 0 and classes[j] != cls):
                    continue
                if k == 1:
                    first.append((i, j, cost))
                elif recent:
                    second.append((i, j, cost))
        return first, second, third

    def _iou_pairs(self, meas: Measurements, kind: list[int]):
        """As ``_gated_pairs`` for the IoU association (tracks predicted already): cost 1 - IoU of the predicted
        box, pairs from ``min_iou``."""
        cfg = self.cfg
        limit = 1.0 - cfg.min_iou
        boxes, aware, classes = meas.boxes, cfg.class_aware, meas.class_id
        first: list[tuple[int, int, float]] = []
        second: list[tuple[int, int, float]] = []
        third: list[tuple[int, int, float]] = []
        for i, t in enumerate(self.tracks):
            f = t.f
            cx, cy, w, h = f[0], f[1], f[2] / 2.0, f[3] / 2.0
            cls = t.class_id if aware else -1
            tentative, recent = t.state == TENTATIVE, t.seen_last_frame
            for j, cost in iou_costs((cx - w, cy - h, cx + w, cy + h), boxes, limit):
                k = kind[j]
                if not k or (cls >= 0 and classes[j] != cls):
                    continue
                if tentative:
                    if k == 1:
                        third.append((i, j, cost))
                elif k == 1:
                    first.append((i, j, cost))
                elif recent:
                    second.append((i, j, cost))
        return first, second, third

    # ------------------------------------------------------------------ lifecycle
    def _lifecycle(self, det_of: list[int], meas: Measurements, ts: float,
                   det_tracks: list[Optional[int]]) -> list[TrackView]:
        """The filter update of every matched track (``det_of``: its detection), confirmation, misses and ends."""
        confirm, max_missed, vote = self._life
        scores, sigmas, classes, zr, update = meas.score, meas.sigma_mean, meas.class_id, meas.zr, kalman.update
        ended: list[_Track] = []
        dropped = False
        i = -1
        for t in self.tracks:
            i += 1
            d = det_of[i]
            if d >= 0:
                t.f = t.seen = update(t.f, zr[d])
                t.hits += 1
                t.last_seen_ts = ts
                t.score = score = scores[d]
                if score > t.best_score:
                    t.best_score = score
                sm = sigmas[d]
                if sm is not None and sm == sm:      # not None, not NaN
                    t.sigma_sum += sm
                    t.sigma_n += 1
                    t.sigma_mean = t.sigma_sum / t.sigma_n
                if vote:
                    c = classes[d]
                    votes = t.class_votes
                    if c in votes:                   # (not votes.get: no dict method call on the common path)
                        votes[c] += score
                    else:
                        votes[c] = score
                    if c != t.class_id:              # the class with the most votes, the first of equal ones:
                        best = most = None           # max(votes, key=votes.get) written out (a cold builtin)
                        for k in votes:
                            v = votes[k]
                            if most is None or v > most:
                                best, most = k, v
                        if best != t.class_id:
                            t.class_id = best
                            t.label = self.labels[best]
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
            cx, cy = t.f[0], t.f[1]
            if t.missed > max_missed or not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0):
                ended.append(t)
        ended_views = self._views(ended, True, False) if ended else []
        if ended or dropped:
            for t in ended:
                t.state = None
            self.tracks = [t for t in self.tracks if t.state is not None]
        return ended_views

    def _births(self, meas: Measurements, taken: list[bool], kind: list[int], ts: float,
                det_tracks: list[Optional[int]]) -> None:
        max_tracks, least, state, move, resize = self._birth
        room = max_tracks - len(self.tracks)
        if room <= 0:
            return
        scores = meas.score
        new = []
        j = 0
        for v in scores:
            if v >= least and kind[j] and not taken[j]:
                new.append(j)
            j += 1
        if not new:
            return
        if len(new) > 1:
            new.sort(key=scores.__getitem__, reverse=True)     # stable: equal scores keep the detections' order
            if len(new) > room:
                new = new[:room]
        for j in new:
            m = meas.zr[j]
            w, h = m[2], m[3]
            f = kalman.initiate(m, (move * w, move * h, resize * w, resize * h))
            c = meas.class_id[j]
            self.tracks.append(_Track(self.next_id, c, self.labels[c], state, ts, scores[j], meas.sigma_mean[j], f))
            if state == CONFIRMED:
                det_tracks[j] = self.next_id
            self.next_id += 1

    # ------------------------------------------------------------------ views
    def _views(self, tracks: list[_Track], at_last_match: bool, skip_tentative: bool) -> list[TrackView]:
        """Views of ``tracks`` (but tentative ones with ``skip_tentative``): their current estimate, or (ended
        tracks) the one after their last match. The box is clipped to the frame. Every track's class came from a
        detection, whose label ``update`` recorded."""
        new = tuple.__new__            # TrackView's own __new__ is a Python function: one frame less per view
        out = []
        for t in tracks:
            state = t.state
            if skip_tentative and state == TENTATIVE:
                continue
            f = t.seen if at_last_match else t.f
            cx, cy, w, h = f[0], f[1], f[2] / 2.0, f[3] / 2.0
            x1, y1, x2, y2 = cx - w, cy - h, cx + w, cy + h
            a, b, c, d = f[8], f[9], f[10], f[11]
            out.append(new(TrackView, (
                t.id, t.class_id, t.label, state,
                (0.0 if x1 < 0.0 else 1.0 if x1 > 1.0 else x1, 0.0 if y1 < 0.0 else 1.0 if y1 > 1.0 else y1,
                 0.0 if x2 < 0.0 else 1.0 if x2 > 1.0 else x2, 0.0 if y2 < 0.0 else 1.0 if y2 > 1.0 else y2),
                (sqrt(a) if a > 0.0 else 0.0, sqrt(b) if b > 0.0 else 0.0, sqrt(c) if c > 0.0 else 0.0,
                 sqrt(d) if d > 0.0 else 0.0),
                (t.f[4], t.f[5]), t.score, t.best_score, t.sigma_mean, t.hits,
                t.missed, t.start_ts, t.last_seen_ts)))
        return out


def iou_costs(box: tuple[float, float, float, float], boxes, limit: float) -> list[tuple[int, float]]:
    """(j, 1 - IoU) of ``box`` with every ``boxes[j]`` (x1, y1, x2, y2, positive sizes) whose cost is below
    ``limit``."""
    ax1, ay1, ax2, ay2 = box
    area_a = (ax2 - ax1) * (ay2 - ay1)
    out = []
    for j, (bx1, by1, bx2, by2) in enumerate(boxes):
        w = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
        h = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
        inter = (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)
        union = area_a + (bx2 - bx1) * (by2 - by1) - inter
        cost = 1.0 - inter / (union if union > 1e-12 else 1e-12)
        if cost < limit:
            out.append((j, cost))
    return out


def duplicates(boxes: Sequence[tuple[float, float, float, float]], score: list[float], iou: float,
               left: Optional[list[float]] = None) -> list[int]:
    """For each detection, the index of a higher-scored detection overlapping it by more than ``iou`` (the same
    object seen twice, e.g. under two classes: class-aware NMS keeps both), or -1. Greedy by score, like NMS.
    ``left``: the (left edge, index) of every box if the caller has them.

    A sweep over the boxes sorted by left edge finds the few pairs that can overlap that much, and only those get an
    IoU (inter > iou x union). Box b starting right of box a's left edge can only if it starts left of
    x2_a - iou w_a: the union is at least the larger area, so IoU > iou needs an overlap wider than iou times the
    wider box (the overlap's height is at most the lower box's); the bound is relaxed by 1e-6 of w_a against
    rounding, so the sweep stops only where the IoU test itself would refuse."""
    m = len(score)
    twin = [-1] * m
    if m < 2:
        return twin
    if left is None:
        left = [(boxes[j][0], j) for j in range(m)]
    order = sorted(left)            # by left edge, equal ones by index (a stable sort of the indices by left edge)
    shrink = iou * (1.0 - 1e-6)
    pairs: list[tuple[float, int, int]] = []    # (-score of the better box, the better box, the other)
    k = 0
    for _x, i in order:
        k += 1
        ax1, ay1, ax2, ay2 = boxes[i]
        reach = ax2 - shrink * (ax2 - ax1)
        n = k
        while n < m:                # the boxes after box i in the order (an index loop: cheaper cold than islice)
            bx1, j = order[n]
            if bx1 >= reach:
                break                                   # sorted by left edge: no later box overlaps box i enough
            n += 1
            _bx1, by1, bx2, by2 = boxes[j]
            h = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
            if h <= 0.0:
                continue
            inter = ((ax2 if ax2 < bx2 else bx2) - bx1) * h
            if inter > iou * ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter):
                si, sj = score[i], score[j]
                if si > sj or (si == sj and i < j):
                    pairs.append((-si, i, j))
                else:
                    pairs.append((-sj, j, i))
    if pairs:
        pairs.sort()                # the better box first (score, then index), then its partners by index
        for _s, d, o in pairs:
            if twin[d] < 0 and twin[o] < 0:
                twin[o] = d
    return twin
