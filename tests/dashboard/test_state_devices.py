"""DashboardState's bookkeeping of devices that come and go, driven message by message with its own clock."""
from __future__ import annotations

import dash_messages as m

from dashboard.state import DashboardState
from dashboard.view import ViewSettings


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def state_at(t: float, **view) -> tuple[DashboardState, Clock, list[dict]]:
    clock = Clock(t)
    state = DashboardState(clock=clock, view=ViewSettings(**view))
    events: list[dict] = []
    state.add_listener(events.append)
    return state, clock, events


def test_last_seen_is_the_receive_time_of_a_live_message_and_the_written_time_of_a_retained_one():
    now = 1_800_000_000.0
    state, clock, _ = state_at(now)
    state.handle(*m.status("cam-live", ts=now - 500))                  # live: its (wrong) clock does not matter
    state.handle(*m.status("cam-kept", ts=now - 500), retained=True)   # retained: written 500 s ago
    state.handle(*m.status("cam-ahead", ts=now + 900), retained=True)  # a clock ahead cannot make it fresher
    devices = state.snapshot()["devices"]
    assert {d: devices[d]["last_seen"] for d in devices} == {"cam-live": now, "cam-kept": now - 500, "cam-ahead": now}
    clock.t += 30
    state.handle(*m.metrics("cam-kept", 5.0, 10, 0, 0))                 # heard from again: fresh
    assert state.snapshot()["devices"]["cam-kept"]["last_seen"] == now + 30


def test_expire_forgets_exactly_the_devices_silent_longer_than_forget_after():
    now = 1_800_000_000.0
    state, clock, events = state_at(now, stale_after_s=10, forget_after_s=100)
    state.handle(*m.status("cam-a"))
    state.handle(*m.health("cam-a", now - 10, 20))
    clock.t = now + 50
    state.handle(*m.status("cam-b"))
    clock.t = now + 100
    assert state.expire() == []                                       # exactly forget-after: kept
    clock.t = now + 100.5
    assert state.expire() == ["cam-a"]
    snap = state.snapshot()
    assert list(snap["devices"]) == ["cam-b"] and snap["health"] == {} and snap["counters"]["devices_removed"] == 1
    assert [r["device"] for r in snap["removed"]] == ["cam-a"]      # a page opened later still says why
    removed = events[-1]
    assert removed["kind"] == "device_removed" and removed["cause"] == "forgotten"
    assert removed["reason"] == "not heard from for 100 s (longer than forget-after, 100 s)"


def test_a_retained_status_older_than_forget_after_is_dropped_as_it_arrives():
    now = 1_800_000_000.0
    state, _, events = state_at(now, forget_after_s=3600)
    state.handle(*m.status("cam-old", "offline", ts=now - 3601), retained=True)
    assert [e["kind"] for e in events] == ["status", "device_removed"] and events[0]["expired"] is True
    assert state.snapshot()["devices"] == {}


def test_empty_messages_clear_what_their_topic_held_and_are_not_invalid():
    now = 1_800_000_000.0
    state, _, events = state_at(now)
    state.handle(*m.status("cam-a"))
    state.handle(*m.metrics("cam-a", 5.0, 10, 0, 0))
    state.handle(*m.health("cam-a", now - 10, 20))
    alert_topic, alert = m.alert("cam-a", "square")
    state.handle(alert_topic, alert)
    agg_topic, agg = m.aggregate("cam-a", "circle", 0, now - 10, 3, 0.1)
    state.handle(agg_topic, agg)
    metrics_topic, _ = m.metrics("cam-a", 5.0, 10, 0, 0)
    health_topic, _ = m.health("cam-a", now, 1)
    for topic in (metrics_topic, health_topic, alert_topic, agg_topic):
        state.handle(topic, b"")
    snap = state.snapshot()
    assert "metrics" not in snap["devices"]["cam-a"] and "status" in snap["devices"]["cam-a"]
    assert snap["health"] == {} and snap["alerts"] == [] and snap["counters"]["alerts_firing"] == 0
    assert len(snap["aggregates"]) == 1                      # a window's result is history: it stays
    assert snap["counters"]["invalid"] == 0
    status_topic, _ = m.status("cam-a")
    state.handle(status_topic, b"")
    assert state.snapshot()["devices"] == {}
    assert events[-1]["kind"] == "device_removed" and events[-1]["cause"] == "cleared"
