"""The dashboard's view of tracked objects (dashboard/tracks.py through DashboardState.handle): messages built by
the contract's own encoders (the version-2 wire with track ids, events and counts checked by edge.contract.schema),
fed as the relay feeds them; a clock the test sets decides the timeouts."""
from __future__ import annotations

import json

import dash_messages as m

from dashboard import tracks as tr
from dashboard.state import DashboardState
from dashboard.view import ViewSettings

T0 = 1_765_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def board(timeout: float = 5.0) -> tuple[DashboardState, Clock]:
    clock = Clock()
    state = DashboardState(clock=clock, view=ViewSettings(track_timeout_s=timeout))
    emitted: list[dict] = []
    state.add_listener(emitted.append)
    state.emitted = emitted
    return state, clock


def disc_box(i: int) -> tuple[float, float, float, float]:
    x = 0.05 + 0.01 * i
    return (x, 0.40, x + 0.2, 0.60)


def tracks_of(state: DashboardState, device: str = "cam-1") -> dict[int, dict]:
    cam = state.snapshot()["tracks"].get(device, {"tracks": []})
    return {t["track"]: t for t in cam["tracks"]}


def log_of(state: DashboardState, device: str = "cam-1") -> list[dict]:
    return state.snapshot()["tracks"][device]["events"]


def test_a_track_keeps_a_bounded_trail_of_its_box_centres_in_order():
    state, _ = board()
    state.handle(*m.status("cam-1"))
    for i in range(45):
        dets = [m.tracked("disc", 1, disc_box(i), 3 if i >= 2 else None),        # confirmed from the third frame
                m.tracked("square", 0, (0.7, 0.1, 0.9, 0.3), 4 if i >= 5 else None, sigma=0.02)]
        state.handle(*m.tracked_detections("cam-1", i, T0 + 0.1 * i, dets))
    held = tracks_of(state)
    assert sorted(held) == [3, 4]
    disc = held[3]
    expected = [[round(0.15 + 0.01 * i, 3), 0.5] for i in range(45)][-tr.TRAIL_POINTS:]
    assert [[round(x, 3), round(y, 3)] for x, y in disc["trail"]] == expected
    assert disc["label"] == "disc" and disc["sigma_from"] == "detection"
    assert disc["box"] == [0.49, 0.4, 0.69, 0.6]
    assert disc["box_sigma"] == [0.01, 0.01, 0.01, 0.01]            # the model's sigma of that box, from the wire
    assert disc["first_ts"] == T0 + 0.2 and disc["last_ts"] == round(T0 + 4.4, 3)
    assert len(held[4]["trail"]) == tr.TRAIL_POINTS and held[4]["trail"][0] == held[4]["trail"][-1]
    # every message that moved a track became one "tracks" event carrying the tracks it moved
    deltas = [e for e in state.emitted if e["kind"] == "tracks"]
    assert len(deltas) == 43 and [t["track"] for t in deltas[-1]["tracks"]] == [3, 4]
    json.dumps(state.snapshot(), allow_nan=False)


def test_events_set_the_tracks_state_the_log_keeps_what_a_viewer_acts_on_and_end_removes_it():
    state, _ = board()
    start = round(T0, 3)
    msgs = [m.track_event("cam-1", 0, "new", 3, "disc", T0 + 0.3, start=start, box=(0.1, 0.4, 0.3, 0.6),
                          box_sigma=(0.004, 0.005, 0.01, 0.012)),
            m.track_event("cam-1", 1, "crossed", 3, "disc", T0 + 1.0, start=start, line="gate", direction="in"),
            m.track_event("cam-1", 2, "update", 3, "disc", T0 + 1.0, start=start, box=(0.45, 0.4, 0.65, 0.6),
                          changed=["lines"]),
            m.track_event("cam-1", 3, "entered", 3, "disc", T0 + 1.5, start=start, zone="right"),
            m.track_event("cam-1", 4, "update", 3, "car", T0 + 1.5, start=start, box=(0.6, 0.4, 0.8, 0.6),
                          zones=["right"], changed=["label", "zones"])]
    for topic, payload in msgs:
        state.handle(topic, payload)
    (t,) = tracks_of(state).values()
    assert (t["track"], t["label"], t["zones"], t["sigma_from"]) == (3, "car", ["right"], "track")
    assert t["id"] == f"{int(start * 1000)}-3" and t["box_sigma"] == [0.01, 0.01, 0.02, 0.02]
    assert [p[0] for p in t["trail"]] == [0.2, 0.55, 0.7]           # one point per capture time, in order
    # updates change the track; only a new label is worth a line in the log
    assert [(e["type"], e["seq"]) for e in log_of(state)] == [("new", 0), ("crossed", 1), ("entered", 3),
                                                               ("update", 4)]
    assert log_of(state)[1]["line"] == "gate" and log_of(state)[1]["direction"] == "in"

    state.handle(*m.track_event("cam-1", 5, "left", 3, "car", T0 + 2.0, start=start, zone="right"))
    state.handle(*m.track_event("cam-1", 6, "end", 3, "car", T0 + 2.5, start=start, end=round(T0 + 2.0, 3)))
    assert tracks_of(state) == {}
    assert [e["type"] for e in log_of(state)][-2:] == ["left", "end"]
    assert state.emitted[-1]["kind"] == "tracks" and state.emitted[-1]["removed"] == [3]
    assert state.snapshot()["counters"]["events"] == 7

    # a detections message delivered after the end, of a frame before it: no ghost
    state.handle(*m.tracked_detections("cam-1", 40, T0 + 2.0, [m.tracked("car", 2, disc_box(5), 3)]))
    assert tracks_of(state) == {}
    # a later frame with the same id (the agent restarted, its ids begin again): a new track
    state.handle(*m.tracked_detections("cam-1", 0, T0 + 30.0, [m.tracked("disc", 1, disc_box(5), 3)]))
    assert tracks_of(state)[3]["label"] == "disc" and len(tracks_of(state)[3]["trail"]) == 1


def test_the_track_keeps_the_label_its_events_give_it_whatever_class_a_detection_says():
    state, _ = board()
    state.handle(*m.tracked_detections("cam-1", 0, T0, [m.tracked("car", 2, disc_box(0), 3)]))
    assert tracks_of(state)[3]["label"] == "car", "before any event: the detection's class"
    state.handle(*m.track_event("cam-1", 0, "new", 3, "person", T0, start=T0))        # the agent's vote
    state.handle(*m.tracked_detections("cam-1", 1, T0 + 0.1, [m.tracked("car", 2, disc_box(1), 3)]))
    assert tracks_of(state)[3]["label"] == "person"
    # and the agent's counts (one person, no car) keep it
    state.handle(*m.objects("cam-1", T0 + 0.2, {"person": 1}))
    assert list(tracks_of(state)) == [3]


def test_a_new_event_with_another_id_for_a_held_track_number_replaces_it():
    state, _ = board()
    state.handle(*m.track_event("cam-1", 0, "new", 1, "disc", T0, start=T0))
    state.handle(*m.track_event("cam-1", 1, "update", 1, "disc", T0 + 1, start=T0, box=(0.5, 0.5, 0.6, 0.6)))
    assert len(tracks_of(state)[1]["trail"]) == 2
    state.handle(*m.track_event("cam-1", 0, "new", 1, "square", T0 + 50, start=T0 + 50))    # restarted agent
    t = tracks_of(state)[1]
    assert t["label"] == "square" and t["id"] == f"{int((T0 + 50) * 1000)}-1" and len(t["trail"]) == 1


def test_tracks_seen_in_detections_time_out_tracks_known_from_events_wait_for_their_end():
    state, clock = board(timeout=5.0)
    state.handle(*m.tracked_detections("cam-1", 0, T0, [m.tracked("disc", 1, disc_box(0), 3)]))
    state.handle(*m.track_event("cam-2", 0, "new", 9, "car", T0, start=T0))          # an events-only camera
    clock.now += 4.9
    state.expire()
    assert 3 in tracks_of(state) and 9 in tracks_of(state, "cam-2")
    state.handle(*m.track_event("cam-1", 1, "entered", 3, "disc", T0 + 4.9, start=T0, zone="right"))  # alive
    clock.now += 4.9
    state.expire()
    assert 3 in tracks_of(state)
    clock.now += 0.2
    state.expire()
    assert tracks_of(state) == {}, "not mentioned for longer than the timeout"
    assert state.emitted[-1] == {"kind": "tracks", "device": "cam-1", "tracks": [], "removed": [3], "events": []}
    clock.now += 3600 - 10              # an hour of silence about a parked car of an events-only camera
    state.handle(*m.metrics("cam-2", 1.0, 10, 0, 0))   # (the camera itself is alive)
    state.expire()
    assert 9 in tracks_of(state, "cam-2")


def test_a_camera_going_offline_or_leaving_takes_its_tracks_with_it():
    state, _ = board()
    for cam in ("cam-1", "cam-2"):
        state.handle(*m.status(cam))
        state.handle(*m.track_event(cam, 0, "new", 1, "disc", T0, start=T0))
    state.handle(*m.status("cam-1", "offline"))
    assert tracks_of(state, "cam-1") == {} and list(tracks_of(state, "cam-2")) == [1]
    assert [e["type"] for e in log_of(state, "cam-1")] == ["new"], "the log stays while the camera is listed"
    topic, _ = m.status("cam-2")
    state.handle(topic, b"", retained=True)             # cam-2 retired: everything about it goes
    assert "cam-2" not in state.snapshot()["tracks"]


def test_the_agents_counts_drop_tracks_whose_end_the_dashboard_missed():
    state, _ = board()
    for k in (1, 2, 3):
        state.handle(*m.tracked_detections("cam-1", k, T0 + k, [m.tracked("person", 0, disc_box(k), k)]))
    state.handle(*m.tracked_detections("cam-1", 4, T0 + 4, [m.tracked("car", 2, disc_box(4), 4)]))
    state.handle(*m.tracked_detections("cam-1", 5, T0 + 5, [m.tracked("person", 0, disc_box(5), 2)]))
    # counts taken at T0 + 5.5: one person and the car; of persons 1 (seen T0+1), 3 (T0+3), 2 (T0+5) the two
    # least recently seen go
    state.handle(*m.objects("cam-1", T0 + 5.5, {"person": 1, "car": 1}), retained=True)
    assert sorted(tracks_of(state)) == [2, 4]
    # counts older than what a track was last seen at cannot remove it
    state.handle(*m.objects("cam-1", T0 + 4.5, {}))
    assert sorted(tracks_of(state)) == [2]
    assert state.snapshot()["devices"]["cam-1"]["objects"]["objects"] == {}
    # the counts cleared (empty retained message): no objects reported, no tracks shown
    topic, _ = m.objects("cam-1", T0, {})
    state.handle(topic, b"", retained=True)
    assert tracks_of(state) == {} and "objects" not in state.snapshot()["devices"]["cam-1"]


def test_memory_is_bounded_per_camera():
    state, _ = board()
    for k in range(200):                              # 200 tracks, one frame each; then 100 more events
        state.handle(*m.tracked_detections("cam-1", k, T0 + k, [m.tracked("disc", 1, disc_box(k % 50), k)]))
    for k in range(100):
        state.handle(*m.track_event("cam-1", k, "crossed", 199, "disc", T0 + 300 + k, start=T0, line="gate",
                                    direction="in"))
    for k in range(300):
        state.handle(*m.track_event("cam-1", 100 + k, "end", 1000 + k, "disc", T0 + 500 + k, start=T0 + 400,
                                    end=T0 + 500 + k))
    held = tracks_of(state)
    assert sorted(held) == list(range(200 - tr.TRACKS_PER_CAMERA, 200)), "the most recently seen are kept"
    assert len(log_of(state)) == tr.EVENTS_PER_CAMERA and log_of(state)[-1]["seq"] == 399
    assert len(state.tracks.cameras["cam-1"].ended) == tr.ENDED_PER_CAMERA
