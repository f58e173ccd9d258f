"""Window results and their revisions, without Flink: cells and late frames in, payloads and fleet deltas out."""
from __future__ import annotations

import random

import pytest

from edge.contract import outputs
from stream.alerts import WindowRules
from stream.config import AlertRules
from stream.windows import DeviceWindow, FleetWindow, merge_fleet_delta, window_starts

T = 0.25          # high-sigma threshold


def cell(class_id, n=0, ns=0, fc=0, ss=0.0, gs=0.0, gm=None, hi=0, frames=0, last_ms=1000, label="person", **beat):
    row = {"device": "cam-1", "class_id": class_id, "label": label if class_id is not None else None,
           "detections": n, "with_sigma": ns, "frames_c": fc, "score_sum": ss, "sigma_sum": gs, "sigma_max": gm,
           "high": hi, "frames": frames, "last_ms": last_ms, "dropped": beat.get("dropped"),
           "fps_l": None, "depth_l": None, "state_l": None, "off_l": None}
    for key in ("fps_l", "depth_l", "state_l", "off_l"):
        if key in beat:
            ts, value = beat[key]
            row[key] = f"{ts:016d}|{value}"
    return row


def late_frame(seq, ts, dets):
    return {"okind": "late", "device": "cam-1", "kcode": 0, "seq": seq, "ts": ts, "recv_ts": ts + 30,
            "dets": [{"c": c, "l": label, "p": p, "g": g} for c, label, p, g in dets], "fps": None,
            "dropped": None, "outbox_depth": None, "state": None, "clock_offset": None}


def test_first_result_from_cells_then_revisions_from_late_frames():
    w = DeviceWindow(device="cam-1", ws_ms=0, we_ms=10_000)
    assert w.add_cell(cell(0, n=2, ns=2, fc=2, ss=1.5, gs=0.4, gm=0.3, hi=1, frames=2, last_ms=4000)) == 0
    assert w.add_cell(cell(None, frames=1, last_ms=6000, fps_l=(6000, "3.5"), depth_l=(6000, "2"), off_l=(6000, "0.04"))) is None
    first = w.payloads(T)
    agg, health = first
    assert (agg["revision"], agg["detections"], agg["frames"], agg["score_mean"], agg["sigma_mean"]) == (0, 2, 2, 0.75, 0.2)
    assert (health["revision"], health["frames"], health["late_frames"], health["fps"], health["outbox_depth"],
            health["clock_offset_s"]) == (0, 3, 0, 3.5, 2, 0.04)
    # a late frame with two persons (one without sigma) and a car: both classes and the health are revised
    changed = w.add_late(late_frame(7, 5.0, [(0, "person", 0.9, 0.5), (0, "person", 0.6, None), (2, "car", 0.8, 0.1)]), T)
    assert changed == {0, 2}
    agg, car, health = w.payloads(T, changed)
    assert (agg["revision"], agg["detections"], agg["with_sigma"], agg["frames"]) == (1, 4, 3, 3)
    assert agg["score_mean"] == pytest.approx(3.0 / 4) and agg["sigma_mean"] == pytest.approx(0.9 / 3)
    assert agg["sigma_max"] == 0.5 and agg["high_sigma_share"] == pytest.approx(2 / 3)
    assert (car["revision"], car["detections"], car["frames"]) == (0, 1, 1)        # a new class of the window
    assert (health["revision"], health["frames"], health["late_frames"]) == (1, 4, 1)
    for p in (agg, car, health):
        outputs.validate(p)


def test_a_late_beat_replaces_the_latest_values_only_if_it_was_captured_later():
    w = DeviceWindow(device="cam-1", ws_ms=0, we_ms=10_000)
    w.add_cell(cell(None, frames=0, fps_l=(6000, "4.0"), depth_l=(6000, "1")))
    beat = {"okind": "late", "device": "cam-1", "kcode": 1, "seq": None, "ts": 5.0, "recv_ts": 40.0, "dets": None,
            "fps": 2.0, "dropped": 7, "outbox_depth": 9, "state": None, "clock_offset": 0.05}
    assert w.add_late(beat, T) == set()
    h = w.health()
    assert (h["fps"], h["outbox_depth"], h["dropped"], h["clock_offset_s"]) == (4.0, 1, 7, 0.05)  # older: not latest
    w.add_late({**beat, "ts": 8.0}, T)
    h = w.health()
    assert (h["fps"], h["outbox_depth"], h["revision"]) == (2.0, 9, 1)


def test_fleet_totals_add_the_devices_changes_and_count_each_device_once():
    a = DeviceWindow(device="cam-1", ws_ms=0, we_ms=10_000)
    b = DeviceWindow(device="cam-2", ws_ms=0, we_ms=10_000)
    a.add_cell(cell(0, n=2, ns=2, fc=1, ss=1.0, gs=0.2, gm=0.1, frames=1))
    b.add_cell({**cell(0, n=1, ns=0, fc=1, ss=0.5, frames=1), "device": "cam-2"})   # a model without sigma
    fleet = FleetWindow()
    merged: dict = {}
    for d in a.fleet_deltas() + b.fleet_deltas():
        merge_fleet_delta(merged, d)
    (m,) = merged.values()
    fleet.add(m)
    p = fleet.payload(T)
    assert (p["revision"], p["devices"], p["detections"], p["with_sigma"], p["sigma_mean"]) == (0, 2, 3, 2, 0.1)
    assert a.fleet_deltas() == []                          # nothing changed since
    a.add_late(late_frame(9, 2.0, [(0, "person", 1.0, 0.3)]), T)
    (delta,) = a.fleet_deltas()
    assert (delta["first"], delta["n"], delta["ns"], delta["gm"]) == (False, 1, 1, 0.3)
    merged = {}
    merge_fleet_delta(merged, delta)
    fleet.add(merged[0])
    p = fleet.payload(T)
    assert (p["revision"], p["devices"], p["detections"], p["sigma_max"]) == (1, 2, 4, 0.3)


def test_fleet_totals_are_the_same_whatever_the_devices_deltas_are_merged_in():
    """The job merges the deltas per shard of the devices: any grouping must give the totals of adding them one
    device at a time (here: all in one merge, per device, and in three uneven groups, with revisions between)."""
    rng = random.Random(7)
    windows = [DeviceWindow(device=f"cam-{i}", ws_ms=0, we_ms=10_000) for i in range(12)]
    rounds = []
    for _ in range(3):                     # first results, then two rounds of late frames into some devices
        deltas = []
        for w in windows:
            if rng.random() < 0.7:
                for c in rng.sample([0, 1, 2], rng.randint(1, 3)):
                    g = rng.choice([None, round(rng.uniform(0.01, 0.9), 3)])
                    w.add_late(late_frame(rng.randint(1, 9), 2.0, [(c, f"c{c}", rng.uniform(0.3, 1.0), g)]), T)
            deltas += w.fleet_deltas()
        rounds.append(deltas)

    def totals(groups_of):
        fleets: dict = {}
        out = []
        for deltas in rounds:
            for group in groups_of(deltas):
                merged: dict = {}
                for d in group:
                    merge_fleet_delta(merged, d)
                for cid, m in merged.items():
                    fleets.setdefault(cid, FleetWindow()).add(m)
            out.append({cid: f.payload(T) for cid, f in sorted(fleets.items())})
        return out

    one_each = totals(lambda ds: [[d] for d in ds])
    assert one_each == totals(lambda ds: [ds])
    assert one_each == totals(lambda ds: [ds[:2], ds[2:9], ds[9:]])
    for cid, p in one_each[-1].items():
        assert p["devices"] == sum(str(cid) in w.s["classes"] for w in windows) > 0


def test_window_starts_of_sliding_windows():
    assert window_starts(12_500, 10_000, 5_000) == [5_000, 10_000]
    assert window_starts(12_500, 10_000, 10_000) == [10_000]


def _agg(ws, n, revision=0, sigma=0.1):
    return outputs.build("aggregate", device="cam-1", class_id=0, label="person", window_start=ws, window_end=ws + 10,
                         revision=revision, detections=n, frames=n, score_mean=0.5, with_sigma=n, sigma_mean=sigma,
                         sigma_max=sigma, high_sigma_share=0.0, high_sigma_threshold=T)


def test_alerts_judge_a_revision_of_the_latest_window_again_and_say_so():
    rules = WindowRules(AlertRules.model_validate({"rules": [
        {"type": "class_count", "id": "crowd", "label": "person", "min_count": 5}]}))
    st: dict = {}
    assert rules.on_window(st, _agg(0, 3)) == []
    (fired,) = rules.on_window(st, _agg(0, 6, revision=1))            # late frames pushed it over the limit
    assert fired["state"] == "firing" and fired["revised"] and "revised window" in fired["message"]
    assert rules.on_window(st, _agg(10, 1)) != []                      # the next window clears it
    assert rules.on_window(st, _agg(0, 9, revision=2)) == []           # an older window's revision: no change


def test_clock_skew_alert_on_health():
    rules = WindowRules(AlertRules.model_validate({"rules": [{"type": "clock_skew", "id": "clock", "max_offset_s": 2}]}))
    st: dict = {}

    def health(ws, offset):
        return outputs.build("health", device="cam-1", window_start=ws, window_end=ws + 10, revision=0, last_seen=ws,
                             frames=1, late_frames=0, frame_rate=0.1, fps=None, dropped=None, outbox_depth=None,
                             state=None, clock_offset_s=offset)
    assert rules.on_window(st, health(0, 0.05)) == []
    (fired,) = rules.on_window(st, health(10, -120.0))
    assert fired["state"] == "firing" and fired["kind"] == "clock_skew" and "ahead of" in fired["message"]
    assert rules.on_window(st, health(20, None)) == []                 # no metrics: not judged
    (cleared,) = rules.on_window(st, health(30, 0.1))
    assert cleared["state"] == "cleared"
