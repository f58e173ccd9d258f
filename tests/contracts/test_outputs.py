"""Output topic/payload contract (dependency-free module used by the dashboard)."""
import json

import pytest

from edge.contract import outputs


def _agg(**over):
    f = dict(device="cam-1", class_id=3, label="traffic light", window_start=100.0, window_end=110.0,
             revision=0, detections=4, frames=2, score_mean=0.5, with_sigma=4, sigma_mean=0.1, sigma_max=0.3,
             high_sigma_share=0.25, high_sigma_threshold=0.2)
    f.update(over)
    return f


def test_aggregate_roundtrip_and_topic():
    p = outputs.build("aggregate", **_agg())
    assert p["id"] == "cam-1/traffic_light/100000"
    assert outputs.topic_for("sigmawatch", p) == "sigmawatch/agg/device/cam-1/traffic_light"
    again = outputs.validate(json.loads(outputs.encode(p)))
    assert outputs.encode(again) == outputs.encode(outputs.build("aggregate", **_agg()))
    assert outputs.parse_output_topic("sigmawatch", outputs.topic_for("sigmawatch", p)) == {
        "kind": "aggregate", "device": "cam-1", "class": "traffic_light"}


@pytest.mark.parametrize("field,value,msg", [
    ("detections", 1.5, "aggregate.detections"),
    ("label", None, "aggregate.label"),
    ("score_mean", True, "aggregate.score_mean"),
])
def test_aggregate_bad_field_named(field, value, msg):
    with pytest.raises(outputs.PayloadError, match=msg):
        outputs.build("aggregate", **_agg(**{field: value}))


def test_unknown_and_missing_fields():
    p = outputs.build("aggregate", **_agg())
    with pytest.raises(outputs.PayloadError, match="aggregate.extra: unknown field"):
        outputs.validate({**p, "extra": 1})
    del p["frames"]
    with pytest.raises(outputs.PayloadError, match="aggregate.frames: required"):
        outputs.validate(p)


def test_alert_ids_and_topics_stable():
    a = outputs.build("alert", rule="many-people", kind="class_count", severity="warning", state="firing",
                     device=None, label="person", since=10.0, ts=10.0, value=12, threshold=10, message="x",
                     revised=False)
    assert a["id"] == "many-people:_fleet:person"
    assert outputs.topic_for("p", a) == "p/alerts/many-people/_fleet/person"
    with pytest.raises(outputs.PayloadError, match="alert.state"):
        outputs.build("alert", **{**{k: v for k, v in a.items() if k not in ("schema", "type", "id")},
                                 "state": "maybe"})


def test_health_and_stats():
    h = outputs.build("health", device="d", window_start=0.0, window_end=10.0, revision=1, last_seen=9.5,
                     frames=2, late_frames=1, frame_rate=0.2, fps=None, dropped=None, outbox_depth=None, state=None,
                     clock_offset_s=-0.02)
    assert outputs.topic_for("p", h) == "p/agg/health/d"
    s = outputs.build("stats", window_start=0.0, window_end=10.0, dead_letters=1, too_late=0, late=2,
                      reasons={"x": 1})
    assert s["id"] == "stats/0" and outputs.parse_output_topic("p", "p/agg/stats") == {"kind": "stats"}
    assert outputs.subscriptions("p") == ["p/agg/#", "p/alerts/#"]
