"""Objects, not detections, end to end: the real agent process runs the shipped int8 detector and the tracker on a
scripted OpenCV video (a disc crossing the frame, a square standing still), publishes to a real mosquitto, and
what arrives is checked against the script: track ids on detections, new / update / end per track, entered / left
/ crossed for the configured zones and line, retained object counts, the events_only mode, bad geometry refused
by the CLI naming the zone, and events through a broker outage."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import pytest
from edge_helpers import ROOT, agent_config, write_crossing_video

from edge.contract import schema

pytestmark = pytest.mark.mqtt

ZONES = [{"name": "right", "polygon": [[0.55, 0.05], [1.0, 0.05], [1.0, 0.95], [0.55, 0.95]], "classes": ["disc"]},
         {"name": "top-right", "polygon": [[0.6, 0.0], [1.0, 0.0], [1.0, 0.4], [0.6, 0.4]]}]
GATE = {"name": "gate", "start": [0.5, 0.95], "end": [0.5, 0.05]}   # pointing up: left -> right of the screen is "in"


def tracking(**over) -> dict:
    return {"tracker": {"max_missed": 5}, "zones": ZONES, "lines": [GATE], **over}


def run_to_end(tmp_path, broker, model, video, agents, realtime: bool = True, **over):
    """The agent on the whole video, played like a camera (``realtime``) or every frame as fast as processed,
    stopping at its end; returns (exit code, agent)."""
    config = agent_config(tmp_path, broker, model, video, source={"uri": str(video), "realtime": realtime,
                                                                  "exit_on_end": True}, **over)
    agent = agents(config)
    code = agent.proc.wait(120)
    return code, agent


def events_of(sub) -> list[dict]:
    """Every event as it travelled, validated by the contract (seq order)."""
    with sub.lock:
        raw = [p for t, p, _r in sub.messages if t.endswith("/events")]
    return sorted((schema.parse(p, "events") for p in raw), key=lambda e: e["seq"])


def by_track(events: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = defaultdict(list)
    for e in events:
        out[e["track"]].append(e)
    return out


def track_per_object(frames) -> dict[str, int]:
    """{label: track id} for the scene's two objects, from the published frames (lists of detections): exactly two
    tracks, named by their most frequent label, and each follows one object: the square's track stays where the
    square stands (no box centre more than 0.05 of the frame from their median), the disc's track travels with
    the disc. (The detector sometimes calls the square a disc too, or instead; that box travels with the
    square's track, as it should: the track is the object, the label is a vote.)"""
    labels_of: dict[int, Counter] = defaultdict(Counter)
    centres: dict[int, list] = defaultdict(list)
    for dets in frames:
        for d in dets:
            if len(d) > 9:
                labels_of[d[9]][d[1]] += 1
                x0, y0, x1, y1 = d[4]
                centres[d[9]].append(((x0 + x1) / 2000, (y0 + y1) / 2000))
    assert len(labels_of) == 2, f"one track per object expected, got {dict(labels_of)}"
    label = {t: c.most_common(1)[0][0] for t, c in labels_of.items()}
    assert sorted(label.values()) == ["disc", "square"], dict(labels_of)
    ids = {name: t for t, name in label.items()}
    sq = np.array(centres[ids["square"]])
    assert np.abs(sq - np.median(sq, axis=0)).max() <= 0.05, "the square's track jumped: another object took it"
    disc_x = np.array(centres[ids["disc"]])[:, 0]
    assert disc_x.max() - disc_x.min() >= 0.3, "the disc's track did not travel with the disc"
    return ids


def test_agent_tracks_the_scripted_scene(tmp_path, broker, shipped_detector, agents, subscriber):
    video = write_crossing_video(tmp_path / "crossing.avi")
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    code, agent = run_to_end(tmp_path, broker, shipped_detector, video, agents, tracking=tracking())
    assert code == 0, agent.logs()
    sub.wait_for(lambda: any(e["type"] == "end" for e in events_of(sub) if e["label"] == "square"), timeout=20,
                 what="the square's end event (published at the clean stop)")

    # --- detections carry their confirmed track's id
    dets = [d for p in sub.raw_payloads("/detections") for d in p["detections"]]
    assert dets, "no detections published"
    ids = track_per_object([p["detections"] for p in sub.raw_payloads("/detections")])
    disc_id, square_id = ids["disc"], ids["square"]
    disc_dets = [d for d in dets if d[1] == "disc" and (len(d) < 10 or d[9] == disc_id)]
    tracked = [len(d) == 10 for d in disc_dets]
    assert len(disc_dets) >= 20 and tracked[:2] == [False, False] and all(tracked[2:]), \
        "the disc's first two detections travel without a track (confirmation takes 3 hits), every later one with it"

    # --- events: contiguous seqs from 0, as the script says
    events = events_of(sub)
    assert [e["seq"] for e in events] == list(range(len(events)))
    tracks = by_track(events)
    assert set(tracks) == {disc_id, square_id}, f"events for unexpected tracks: {sorted(tracks)}"
    disc, square = tracks[disc_id], tracks[square_id]
    kinds = [e["type"] for e in disc]
    assert kinds[0] == "new" and kinds[-1] == "end" and kinds.count("new") == kinds.count("end") == 1, kinds
    assert [e["zone"] for e in disc if e["type"] == "entered"] == ["right"]
    assert [e["zone"] for e in disc if e["type"] == "left"] == ["right"]
    crossed = [e for e in disc if e["type"] == "crossed"]
    assert [(e["line"], e["direction"]) for e in crossed] == [("gate", "in")]
    assert kinds.index("crossed") < kinds.index("entered"), "the disc crosses x=0.5 before it is inside x>0.55"
    updates = [e for e in disc if e["type"] == "update"]
    assert {"zones", "lines"} <= {c for u in updates for c in u["changed"]}, "zone and line changes are updates"
    end = disc[-1]
    assert end["entered_zones"] == ["right"] and end["lines"] == {"gate": {"in": 1, "out": 0}}
    assert end["zones"] == [], "an ended track is in no zone"
    last_disc_ts = max(p["ts"] for p in sub.raw_payloads("/detections") for d in p["detections"]
                       if len(d) > 9 and d[9] == disc_id)
    assert end["end"] == pytest.approx(last_disc_ts, abs=1e-3), "end = the last time the disc was seen"
    assert end["sigma_mean"] is not None and 0 < end["sigma_mean"] < 1
    for e in disc:
        if "box_sigma" in e:                  # the filter's own uncertainty, frame units: small but not zero
            assert all(0 < s < 0.05 for s in e["box_sigma"]), e["box_sigma"]
    assert [e["type"] for e in square if e["type"] in ("new", "entered", "left", "end")] == \
        ["new", "entered", "left", "end"]
    assert [e["zone"] for e in square if e["type"] == "entered"] == ["top-right"], \
        "the zone 'right' holds the square too but reports discs only"
    assert square[-1]["entered_zones"] == ["top-right"] and square[-1]["lines"] == {}
    for evs in tracks.values():                 # updates only on change, and they name what changed
        said = [e for e in evs if e["type"] in ("new", "update")]
        for before, after in zip(said, said[1:]):
            differs = {k for k in ("label", "zones", "lines") if before[k] != after[k]}
            assert after["changed"] and differs == set(after["changed"]) - {"best_score"}, (before, after)
            rise = after["best_score"] - before["best_score"]        # score_delta 0.05; scores rounded to 1e-4
            assert rise >= 0.05 - 2e-4 if "best_score" in after["changed"] else rise < 0.05 + 2e-4, (before, after)

    # --- retained object counts: both present at some point, zero after the stop
    counts = [json.loads(p) for t, p, _r in sub.messages if t.endswith("/objects")]
    for c in counts:
        schema.validate(c, "objects")
    assert {"disc": 1, "square": 1} in [c["objects"] for c in counts]
    assert {"right": {"disc": 1}, "top-right": {"square": 1}} in [c["zones"] for c in counts]
    assert counts[-1]["objects"] == {} and counts[-1]["zones"] == {}
    changes = [(c["objects"], c["zones"]) for c in counts]
    assert all(a != b for a, b in zip(changes, changes[1:])), "counts are published only when they change"
    late = subscriber(broker, "sigmawatch/cam-1/objects", client_id="late-counts")
    got = late.wait_for(lambda: late.messages, timeout=10, what="the retained counts")
    assert got[0][2] is True and json.loads(got[0][1])["objects"] == {}


def test_a_file_read_as_fast_as_processed_keeps_one_track_per_object(tmp_path, broker, shipped_detector, agents,
                                                                     subscriber):
    """``realtime: false``: capture times are processing times (a few ms apart, jittering), not the scene's; the
    filter steps by the file's frame interval instead, so the disc keeps one track (it did not before)."""
    video = write_crossing_video(tmp_path / "crossing.avi")
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    code, agent = run_to_end(tmp_path, broker, shipped_detector, video, agents, realtime=False, tracking=tracking())
    assert code == 0, agent.logs()
    sub.wait_for(lambda: sum(e["type"] == "end" for e in events_of(sub)) >= 2, timeout=20, what="both end events")
    payloads = sub.raw_payloads("/detections")
    assert len(payloads) == 50, "every frame processed once"
    ids = track_per_object([p["detections"] for p in payloads])
    disc = by_track(events_of(sub))[ids["disc"]]
    assert [(e["line"], e["direction"]) for e in disc if e["type"] == "crossed"] == [("gate", "in")]
    assert [e["type"] for e in disc][::len(disc) - 1] == ["new", "end"]


def test_events_only_sends_no_detections(tmp_path, broker, shipped_detector, agents, subscriber):
    video = write_crossing_video(tmp_path / "crossing.avi")
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    code, agent = run_to_end(tmp_path, broker, shipped_detector, video, agents,
                             tracking=tracking(publish="events_only"))
    assert code == 0, agent.logs()
    sub.wait_for(lambda: sum(e["type"] == "end" for e in events_of(sub)) >= 2, timeout=20, what="both end events")
    assert sub.raw_payloads("/detections") == [], "events_only publishes no per-frame detections"
    tracks = by_track(events_of(sub))
    assert sorted(t[0]["label"] for t in tracks.values()) == ["disc", "square"]
    assert all(t[0]["type"] == "new" and t[-1]["type"] == "end" for t in tracks.values())
    db = sqlite3.connect(tmp_path / "state-cam-1" / "outbox.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0] == 0, "no detections stored"


@pytest.mark.parametrize("over, message", [
    ({"zones": [{"name": "drive", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}]},
     r"tracking\.zones\.0\.polygon: .*zone 'drive': edges 0 .* and 2 .* cross"),
    ({"zones": [{"name": "drive", "polygon": [[0.1, 0.1], [0.9, 0.9]]}]},
     r"zone 'drive': a polygon needs at least 3 vertices, got 2"),
    ({"zones": [{"name": "drive", "polygon": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.9]]}]},
     r"zone 'drive': point 1 \(1.2, 0.1\) is outside \[0, 1\]"),
    ({"lines": [{"name": "gate", "start": [0.5, 0.5], "end": [0.5, 0.5]}]}, r"line 'gate': .* has length 0"),
    ({"zones": [{"name": "drive", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]], "classes": ["persn"]}]},
     r"tracking\.zones\.0\.classes: zone 'drive' names \['persn'\], which are not labels of the model"),
    ({"publish": "frames"}, r"tracking\.publish: .*'both' or 'events_only'"),
    ({"tracker": {"max_misssed": 3}}, r"tracking\.tracker\.max_misssed: unknown key"),
])
def test_bad_tracking_config_is_refused_by_the_cli_naming_it(tmp_path, broker, shipped_detector, over, message):
    video = write_crossing_video(tmp_path / "crossing.avi", cross_frames=4, gone_frames=0)
    config = agent_config(tmp_path, broker, shipped_detector, video, tracking=over)
    for command in ("check", "run"):
        proc = subprocess.run([sys.executable, "-m", "edge.cli", command, "-c", str(config)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        out = proc.stdout + proc.stderr
        assert re.search(message, out), (command, out)
        assert "Traceback" not in out


def _events_outbox(tmp_path) -> tuple[int, int]:
    db = sqlite3.connect(tmp_path / "state-cam-1" / "outbox.events.sqlite")
    try:
        return (int(db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]),
                int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]))
    finally:
        db.close()


def test_events_survive_a_broker_outage(tmp_path, broker, shipped_detector, agents, subscriber):
    """A disc crosses every 3 s (looped video, real time): tracks start and end while the broker is down; every
    event arrives after it is back, each track's new has its end, and the retained counts are published again."""
    video = write_crossing_video(tmp_path / "crossing.avi", cross_frames=20, gone_frames=10, parked=False)
    sub = subscriber(broker, "sigmawatch/cam-1/events", client_id="events-outage-sub")
    agent = agents(agent_config(tmp_path, broker, shipped_detector, video, tracking=tracking(),
                                settings={"score_threshold": 0.3, "fps": 10}))
    sub.wait_for(lambda: any(e["type"] == "end" for e in events_of(sub)), timeout=60, what="a first ended track")
    broker.stop()
    down_at = time.time()
    time.sleep(10)
    during = _events_outbox(tmp_path)
    broker.start()
    up_at = time.time()
    sub.wait_for(lambda: any(e["ts"] > up_at for e in events_of(sub)), timeout=60,
                 what="events from after the outage")
    assert agent.terminate() == 0, agent.logs()
    next_seq, depth = _events_outbox(tmp_path)
    assert depth == 0, "every event left the outbox after the broker came back"
    sub.wait_for(lambda: len({e["seq"] for e in events_of(sub)}) >= next_seq, timeout=20,
                 what="every event sequence number at the subscriber")
    events = {e["seq"]: e for e in events_of(sub)}
    assert sorted(events) == list(range(next_seq)), "no event lost or invented"
    made_down = [e for e in events.values() if down_at + 1 < e["ts"] < up_at - 1]
    assert {"new", "end"} <= {e["type"] for e in made_down}, \
        f"tracks began and ended while the broker was down (outbox held {during[1]} events then)"
    assert during[1] > 0
    for track, evs in by_track(sorted(events.values(), key=lambda e: e["seq"])).items():
        kinds = [e["type"] for e in evs]
        assert kinds[0] == "new" and kinds[-1] == "end" and kinds.count("end") == 1, (track, kinds)


def test_killed_agent_replays_its_events_first(tmp_path, broker_factory, shipped_detector, agents, subscriber):
    """SIGKILL with the broker down: the events the agent made wait in its events outbox and are the first the
    restarted agent sends, in order; the restarted tracker's event ids stay unique (start time in the id)."""
    broker = broker_factory()
    video = write_crossing_video(tmp_path / "crossing.avi", cross_frames=20, gone_frames=10, parked=False)
    sub = subscriber(broker, "sigmawatch/cam-1/events", client_id="events-kill-sub")
    broker.stop()
    config = agent_config(tmp_path, broker, shipped_detector, video, tracking=tracking(),
                          settings={"score_threshold": 0.3, "fps": 10})
    first = agents(config)
    deadline = time.time() + 60
    queued = (0, 0)
    while time.time() < deadline and queued[1] < 6:
        time.sleep(0.3)
        try:
            queued = _events_outbox(tmp_path)
        except sqlite3.Error:      # not created yet
            pass
    first.kill()
    queued = _events_outbox(tmp_path)
    assert queued[1] >= 6 and queued[0] == queued[1], "every event made so far waits in the outbox"
    broker.start()
    second = agents(config)
    sub.wait_for(lambda: len(events_of(sub)) >= queued[0] + 2, timeout=60, what="the replay and new events")
    assert second.terminate() == 0, second.logs()
    with sub.lock:
        arrived = [schema.parse(p, "events")["seq"] for t, p, _r in sub.messages]
    assert arrived[:queued[0]] == list(range(queued[0])), "the replay comes first and in order"
    next_seq, depth = _events_outbox(tmp_path)
    assert depth == 0 and sorted(set(arrived)) == list(range(next_seq))
    news = [e["id"] for e in events_of(sub) if e["type"] == "new"]
    assert len(news) == len(set(news)), f"event ids repeat across the restart: {news}"


def test_tracking_off_publishes_what_it_did_before(tmp_path, broker, shipped_detector, agents, subscriber):
    video = write_crossing_video(tmp_path / "crossing.avi", cross_frames=20, gone_frames=0)
    sub = subscriber(broker, "sigmawatch/cam-1/#")
    code, agent = run_to_end(tmp_path, broker, shipped_detector, video, agents, tracking={"enabled": False})
    assert code == 0, agent.logs()
    sub.wait_for(lambda: len(sub.raw_payloads("/detections")) >= 10, timeout=20, what="detections")
    assert all(len(d) == 8 for p in sub.raw_payloads("/detections") for d in p["detections"])
    assert not [t for t, _p, _r in sub.messages if t.endswith(("/events", "/objects"))]
    assert not (tmp_path / "state-cam-1" / "outbox.events.sqlite").exists()
