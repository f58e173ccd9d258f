"""Association and lifecycle of edge.tracking.Tracker on scripted detections: crossing, occlusion gaps,
leaving and re-entering, the low-score pass, confirmation, the model's sigma as measurement noise."""
from __future__ import annotations

import pytest
from pydantic import ValidationError
from tracking_helpers import det, ids_of, run

from edge.tracking import Tracker, TrackerConfig


def test_two_objects_crossing_keep_their_ids():
    # same class and size, opposite directions on nearly the same row; while they overlap the detector sees
    # only the one in front (NMS), so the other track coasts through the crossing
    frames = []
    for i in range(40):
        a, b = 0.1 + 0.02 * i, 0.9 - 0.02 * i
        frames.append([det(a, 0.50)] if abs(a - b) < 0.05 else [det(a, 0.50), det(b, 0.52)])
    for association in ("mahalanobis", "iou"):
        out = run(Tracker(TrackerConfig(association=association)), frames)
        start, end = ids_of(out[5]), ids_of(out[-1])
        right_mover = min(start, key=lambda k: start[k][0])        # on the left at the start
        assert len(start) == 2 and set(end) == set(start), association
        assert end[right_mover][0] > 0.8, f"{association}: the ids swapped at the crossing"
        assert all(not r.ended for r in out), association


@pytest.mark.parametrize("gap, same", [(8, True), (25, True), (31, False)])
def test_occlusion_gap_shorter_than_max_missed_keeps_the_id(gap, same):
    cfg = TrackerConfig(max_missed=30)
    frames = []
    for i in range(70):
        hidden = 10 <= i < 10 + gap
        frames.append([] if hidden else [det(0.1 + 0.005 * i, 0.5)])      # slow: stays in the frame
    out = run(Tracker(cfg), frames)
    before, after = ids_of(out[9]), ids_of(out[10 + gap + 3])
    assert len(before) == 1 and len(after) == 1
    assert (set(before) == set(after)) is same
    ended = [t.id for r in out for t in r.ended]
    assert ended == ([] if same else list(before))
    if not same:
        end = next(t for r in out for t in r.ended)
        assert end.last_seen_ts == pytest.approx(1000.0 + 9 / 10.0)        # the last frame it was seen


def test_leaving_the_frame_ends_the_track_and_re_entry_gets_a_new_id():
    frames = [[det(0.6 + 0.03 * i, 0.5)] for i in range(12)]          # 3 box widths per s, leaves to the right
    frames += [[] for _ in range(5)]
    frames += [[det(0.97 - 0.03 * i, 0.5)] for i in range(10)]        # comes back
    out = run(Tracker(TrackerConfig(max_missed=100)), frames)
    first = ids_of(out[5])
    ended_at = [i for i, r in enumerate(out) if r.ended]
    assert len(ended_at) == 1 and ended_at[0] < 17, "a lost track whose prediction left the frame ends at once"
    assert [t.id for t in out[ended_at[0]].ended] == list(first)
    again = ids_of(out[-1])
    assert len(again) == 1 and set(again).isdisjoint(first)


def test_low_score_detections_keep_a_track_but_never_start_one():
    cfg = TrackerConfig(high_score=0.5, low_score=0.1, new_track_score=0.6)
    frames = [[det(0.2 + 0.01 * i, 0.3, score=0.9 if i < 10 or i >= 20 else 0.2),
               det(0.7, 0.7, score=0.3)] for i in range(30)]          # second object: only low scores
    out = run(Tracker(cfg), frames)
    ids = [tuple(ids_of(r)) for r in out[5:]]
    assert all(len(i) == 1 for i in ids) and len(set(ids)) == 1, ids
    assert all(r.detection_tracks[1] is None for r in out)


def test_a_track_is_reported_only_once_confirmed():
    cfg = TrackerConfig(confirm_hits=3)
    frames = [[det(0.3, 0.3)], [det(0.3, 0.3), det(0.8, 0.8)], [det(0.3, 0.3)], [det(0.3, 0.3)]]
    out = run(Tracker(cfg), frames)
    assert [len(r.tracks) for r in out] == [0, 0, 1, 1]      # the one-frame blip at (0.8, 0.8) never shows
    assert out[1].detection_tracks == [None, None] and out[2].detection_tracks == [out[2].tracks[0].id]


def test_the_models_sigma_sets_how_much_one_detection_moves_the_track():
    def after_outlier(sigma, noise="sigma", offset=0.03, history=0.004):
        frames = [[det(0.5, 0.5, sigma=history)] for _ in range(10)] + [[det(0.5 + offset, 0.5, sigma=sigma)]]
        (track,) = run(Tracker(TrackerConfig(noise=noise, accel=1.0)), frames)[-1].tracks
        assert track.matched
        return track
    vague, precise = after_outlier(0.1), after_outlier(0.01)
    cx = lambda t: (t.box[0] + t.box[2]) / 2
    moved_vague, moved_precise = cx(vague) - 0.5, cx(precise) - 0.5
    assert moved_precise > 0.003 and 0 <= moved_vague < moved_precise / 10
    assert precise.box_sigma[0] < vague.box_sigma[0]        # the track's own uncertainty follows
    # constant noise ignores the sigma; a model without sigma (plain head) falls back to the same constant
    c1, c2 = after_outlier(0.1, "constant", 0.01), after_outlier(0.001, "constant", 0.01)
    plain = after_outlier(None, "sigma", 0.01, history=None)
    assert cx(c1) == pytest.approx(cx(c2)) == pytest.approx(cx(plain))
    assert plain.sigma_mean is None and vague.sigma_mean == pytest.approx(0.1)


def test_velocity_is_in_frame_units_per_second_with_uneven_frame_gaps():
    tracker = Tracker(TrackerConfig())
    t, x, out = 0.0, 0.2, None
    for i in range(30):
        dt = 0.1 if i % 2 else 0.4          # the agent drops frames: processed frames are unevenly spaced
        t, x = t + dt, x + 0.05 * dt        # 0.05 frame widths per second
        out = tracker.update([det(x, 0.5)], t)
    (track,) = out.tracks
    assert track.velocity[0] == pytest.approx(0.05, rel=0.1) and abs(track.velocity[1]) < 0.005


def test_class_flips_do_not_break_a_track_unless_class_aware():
    flips = [[det(0.2 + 0.01 * i, 0.5, cls=1 if i % 3 == 2 else 0)] for i in range(20)]
    out = run(Tracker(TrackerConfig()), flips)
    assert len({t.id for r in out for t in r.tracks}) == 1
    assert out[-1].tracks[0].label == "square"                  # the score-weighted vote
    out = run(Tracker(TrackerConfig(class_aware=True)), flips)
    assert not any(r.tracks for r in out), "class-aware: the flips keep a track from being confirmed"
    switch = [[det(0.2 + 0.01 * i, 0.5, cls=0 if i < 10 else 1)] for i in range(20)]
    out = run(Tracker(TrackerConfig(class_aware=True)), switch)
    assert [t.label for t in out[-1].tracks if t.matched] == ["disc"]
    assert len({t.id for r in out for t in r.tracks}) == 2


def test_one_object_detected_under_two_classes_is_one_track():
    frames = [[det(0.4, 0.4, score=0.9, cls=0), det(0.401, 0.4, score=0.8, cls=2)] for _ in range(5)]
    out = run(Tracker(TrackerConfig()), frames)
    assert len(out[-1].tracks) == 1
    assert out[-1].detection_tracks == [out[-1].tracks[0].id] * 2
    out = run(Tracker(TrackerConfig(duplicate_iou=None)), frames)
    assert len(out[-1].tracks) == 2


def test_max_tracks_bounds_memory():
    frames = [[det(0.1 + 0.15 * k, 0.5, w=0.05) for k in range(6)] for _ in range(4)]
    out = run(Tracker(TrackerConfig(max_tracks=4)), frames)
    assert len(out[-1].tracks) == 4


def test_config_errors_name_the_key():
    with pytest.raises(ValidationError, match="low_score 0.6 must not exceed high_score 0.5"):
        TrackerConfig(low_score=0.6, high_score=0.5)
    with pytest.raises(ValidationError, match="max_misses"):
        TrackerConfig(max_misses=3)           # typo of max_missed: refused, not ignored


def test_a_given_step_replaces_the_capture_time_difference():
    """``dt`` (a file read as fast as processed: its frame interval) drives the filter instead of capture times
    that jitter: the same frames give the same tracks as when captured exactly 0.1 s apart."""
    from edge.tracking import Tracker
    from tracking_helpers import det
    frames = [[det(0.1 + 0.02 * i, 0.5), det(0.8, 0.2 + 0.01 * i, cls=1)] for i in range(30)]
    regular, jittered = Tracker(), Tracker()
    jitter = [0.004, 0.03, 0.011, 0.002, 0.05]
    t = 1000.0
    for i, dets in enumerate(frames):
        a = regular.update(dets, 1000.0 + i / 10)
        t += jitter[i % len(jitter)]
        b = jittered.update(dets, t, dt=0.1)
        assert [v.id for v in a.tracks] == [v.id for v in b.tracks]
        assert [x for v in b.tracks for x in (*v.box, *v.box_sigma, *v.velocity)] == \
            pytest.approx([x for v in a.tracks for x in (*v.box, *v.box_sigma, *v.velocity)], rel=1e-9, abs=1e-12)
    assert len(a.tracks) == 2


def test_measurements_hold_only_the_latest_frame():
    """The tracker fills one Measurements object every frame: a smaller frame after a larger one leaves nothing of
    the larger behind (lists, the largest variances the gate's reach uses), and a new label is recorded."""
    from edge.tracking.measurements import Measurements
    meas, labels = Measurements(TrackerConfig()), {}
    assert meas.fill([det(0.2, 0.2, sigma=0.05), det(0.6, 0.6, cls=1), det(0.8, 0.3)], labels) == 3
    assert meas.max_r_cx == pytest.approx((0.05 * 0.885) ** 2) and labels == {0: "square", 1: "disc"}
    assert meas.fill([det(0.4, 0.5, w=0.2, h=0.1, score=0.5, cls=2, sigma=(0.004, 0.006, 0.01, 0.02))], labels) == 1
    assert [len(v) for v in (meas.zr, meas.boxes, meas.x1, meas.score, meas.class_id, meas.sigma_mean)] == [1] * 6
    assert meas.max_r_cx == pytest.approx((0.004 * 0.885) ** 2) and meas.max_r_cy == pytest.approx((0.006 * 0.885) ** 2)
    assert meas.zr[0][:4] == pytest.approx((0.4, 0.5, 0.2, 0.1)) and meas.x1 == [(pytest.approx(0.3), 0)]
    assert meas.score == [0.5] and meas.class_id == [2] and labels[2] == "triangle"
    assert meas.fill([], labels) == 0 and meas.zr == [] and meas.max_r_cx == meas.max_r_cy == 0.0
