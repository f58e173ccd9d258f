"""The tracker written the straightforward way, as the reference for ``edge.tracking.Tracker``'s batched code.

One object per track with its own 8-state Kalman filter in full matrices (F, Q, H, R, np.linalg.inv), every
track-detection cost computed pair by pair, every overlap checked pair by pair, the assignment by SciPy's
``linear_sum_assignment``. It follows the tracker's documented rules (edge/tracking/tracker.py's module doc) and
nothing of its array layout; tests/tracking/test_tracking_reference.py runs both on random sequences.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

H = np.hstack([np.eye(4), np.zeros((4, 4))])


class RefTrack:
    def __init__(self, tid, z, r, velocity_std, det, ts, state):
        self.id, self.state = tid, state
        self.x = np.concatenate([z, np.zeros(4)])
        self.P = np.diag(np.concatenate([r, np.square(velocity_std)]))
        self.seen = (self.x[:4].copy(), np.sqrt(np.diag(self.P)[:4]))
        self.start_ts = self.last_seen_ts = ts
        self.score = self.best_score = det.score
        self.hits, self.missed = 1, 0
        self.sigma = [] if det.sigma_mean is None else [det.sigma_mean]
        self.votes = {det.class_id: det.score}       # insertion order = order of first vote
        self.class_id = det.class_id
        self.seen_last_frame = True

    def predict(self, dt, accel_std):
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        G = np.vstack([0.5 * dt * dt * np.eye(4), dt * np.eye(4)])
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + G @ np.diag(np.square(accel_std)) @ G.T

    def innovation(self, z, r):
        return z - H @ self.x, H @ self.P @ H.T + np.diag(r)

    def update(self, z, r):
        y, S = self.innovation(z, r)
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        self.P = (np.eye(8) - K @ H) @ self.P
        self.seen = (self.x[:4].copy(), np.sqrt(np.diag(self.P)[:4]))


def measurement(det, cfg):
    x1, y1, x2, y2 = det.box
    z = np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)])
    if cfg.noise == "sigma" and det.box_sigma is not None:
        r = np.array([max(s * cfg.sigma_scale, cfg.sigma_floor) ** 2 for s in det.box_sigma])
    else:
        c, s = cfg.constant_noise
        r = np.array([(c * z[2]) ** 2, (c * z[3]) ** 2, (s * z[2]) ** 2, (s * z[3]) ** 2])
    return z, r


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def box_of(cx, cy, w, h):
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


class ReferenceTracker:
    def __init__(self, cfg):
        self.cfg = cfg
        self.tracks: list[RefTrack] = []
        self.labels: dict[int, str] = {}
        self.last_ts = None
        self.next_id = 1

    def update(self, detections, ts):
        """Returns (confirmed tracks after the frame as dicts, per-detection track ids, ended tracks as dicts)."""
        cfg = self.cfg
        for d in detections:
            self.labels.setdefault(d.class_id, d.label)
        meas = [measurement(d, cfg) for d in detections]
        twin = self._duplicates(detections)
        dt = cfg.dt_default if self.last_ts is None or ts <= self.last_ts else ts - self.last_ts
        self.last_ts = ts
        for t in self.tracks:
            w, h = max(t.x[2], 1e-3), max(t.x[3], 1e-3)
            t.predict(dt, [cfg.accel * w, cfg.accel * h, cfg.size_accel * w, cfg.size_accel * h])
        usable = [d.score >= cfg.low_score and twin[j] < 0 for j, d in enumerate(detections)]
        high = [j for j, d in enumerate(detections) if usable[j] and d.score >= cfg.high_score]
        low = [j for j, d in enumerate(detections) if usable[j] and d.score < cfg.high_score]
        match: dict[int, int] = {}                     # track index -> detection index
        confirmed = [i for i, t in enumerate(self.tracks) if t.state != "tentative"]
        self._assign(confirmed, high, detections, meas, match)
        recent = [i for i in confirmed if i not in match and self.tracks[i].seen_last_frame]
        self._assign(recent, low, detections, meas, match)
        taken = set(match.values())
        tentative = [i for i, t in enumerate(self.tracks) if t.state == "tentative"]
        self._assign(tentative, [j for j in high if j not in taken], detections, meas, match)
        taken = set(match.values())
        det_tracks = [None] * len(detections)
        ended, keep = [], []
        for i, t in enumerate(self.tracks):
            if i in match:
                j = match[i]
                d = detections[j]
                t.update(*meas[j])
                t.hits += 1
                t.last_seen_ts = ts
                t.score = d.score
                t.best_score = max(t.best_score, d.score)
                if d.sigma_mean is not None:
                    t.sigma.append(d.sigma_mean)
                if not cfg.class_aware:
                    t.votes[d.class_id] = t.votes.get(d.class_id, 0.0) + d.score
                    t.class_id = max(t.votes, key=t.votes.get)
                if t.state != "tentative" or t.hits >= cfg.confirm_hits:
                    t.state = "confirmed"
                    det_tracks[j] = t.id
                t.missed, t.seen_last_frame = 0, True
                keep.append(t)
                continue
            t.seen_last_frame = False
            if t.state == "tentative":
                continue
            t.missed += 1
            t.state = "lost"
            if t.missed > cfg.max_missed or not (0 <= t.x[0] <= 1 and 0 <= t.x[1] <= 1):
                ended.append(self._view(t, at_last_match=True))
            else:
                keep.append(t)
        self.tracks = keep
        new = [j for j, d in enumerate(detections)
               if j not in taken and usable[j] and d.score >= cfg.new_track_score]
        new.sort(key=lambda j: -detections[j].score)
        for j in new[:max(cfg.max_tracks - len(self.tracks), 0)]:
            z, r = meas[j]
            vstd = [cfg.init_velocity * z[2], cfg.init_velocity * z[3], cfg.init_size_velocity * z[2],
                    cfg.init_size_velocity * z[3]]
            state = "confirmed" if cfg.confirm_hits <= 1 else "tentative"
            self.tracks.append(RefTrack(self.next_id, z, r, vstd, detections[j], ts, state))
            if state == "confirmed":
                det_tracks[j] = self.next_id
            self.next_id += 1
        for j, o in enumerate(twin):
            if o >= 0:
                det_tracks[j] = det_tracks[o]
        views = [self._view(t) for t in self.tracks if t.state != "tentative"]
        return views, det_tracks, ended

    def _duplicates(self, detections):
        twin = [-1] * len(detections)
        if self.cfg.duplicate_iou is None:
            return twin
        order = sorted(range(len(detections)), key=lambda j: -detections[j].score)
        for d in order:
            if twin[d] >= 0:
                continue
            for o in range(len(detections)):
                if (o != d and twin[o] < 0 and detections[o].score <= detections[d].score
                        and iou(detections[d].box, detections[o].box) > self.cfg.duplicate_iou):
                    twin[o] = d
        return twin

    def _assign(self, rows, cols, detections, meas, match):
        cfg = self.cfg
        if not rows or not cols:
            return
        cost = np.full((len(rows), len(cols)), np.inf)
        for a, i in enumerate(rows):
            t = self.tracks[i]
            for b, j in enumerate(cols):
                if cfg.class_aware and t.class_id != detections[j].class_id:
                    continue
                if cfg.association == "mahalanobis":
                    y, S = t.innovation(*meas[j])
                    d2 = float(y @ np.linalg.inv(S) @ y)
                    if d2 < cfg.gate:
                        cost[a, b] = d2 + np.linalg.slogdet(S)[1] - np.sum(np.log(meas[j][1]))
                else:
                    c = 1.0 - iou(box_of(*t.x[:4]), detections[j].box)
                    if c < 1.0 - cfg.min_iou:
                        cost[a, b] = c
        ok = np.isfinite(cost)
        if not ok.any():
            return
        # the most pairs, then the cheapest (a forbidden pair costs more than any set of allowed ones could save);
        # with IoU a forbidden pair costs the limit: as good as leaving both ends unmatched
        cap = 1.0 - cfg.min_iou if cfg.association == "iou" else (
            cost[ok].max() + (cost[ok].max() - cost[ok].min() + 1.0) * (min(cost.shape) + 1))
        r, c = linear_sum_assignment(np.where(ok, cost, cap))
        for a, b in zip(r, c):
            if ok[a, b]:
                match[rows[a]] = cols[b]

    def _view(self, t, at_last_match=False):
        where, std = t.seen if at_last_match else (t.x[:4], np.sqrt(np.diag(t.P)[:4]))
        box = [min(max(v, 0.0), 1.0) for v in box_of(*where)]
        return {"id": t.id, "class_id": t.class_id, "label": self.labels.get(t.class_id, str(t.class_id)),
                "state": t.state, "box": box, "box_sigma": list(std), "velocity": list(t.x[4:6]),
                "score": t.score, "best_score": t.best_score,
                "sigma_mean": sum(t.sigma) / len(t.sigma) if t.sigma else None, "hits": t.hits, "missed": t.missed,
                "start_ts": t.start_ts, "last_seen_ts": t.last_seen_ts}

