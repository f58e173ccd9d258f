"""Alert state machines (pure Python) and config validation."""
import pytest

from edge.contract import outputs
from stream.alerts import SilenceRule, WindowRules
from stream.config import AlertRules, load, load_rules
from edge.contract.errors import ConfigError


def agg(ws, detections, sigma, device="cam-0", label="person"):
    return outputs.build("aggregate", device=device, class_id=0, label=label, window_start=ws, window_end=ws + 10.0,
                        revision=0, detections=detections, frames=detections, score_mean=0.5, with_sigma=detections, sigma_mean=sigma, sigma_max=sigma,
                        high_sigma_share=0.0, high_sigma_threshold=0.25)


RULES = AlertRules.model_validate({"rules": [
    {"type": "class_count", "id": "crowd", "label": "person", "min_count": 10},
    {"type": "uncertainty_spike", "id": "spike", "label": "*", "factor": 2.0, "history": 3, "min_history": 2,
     "min_detections": 3},
    {"type": "device_silent", "id": "silent", "after_s": 30},
]})


def test_class_count_fires_once_and_clears_on_next_window():
    eng, st = WindowRules(RULES), {}
    assert eng.on_window(st, agg(0, 5, 0.1)) == []
    fired = eng.on_window(st, agg(10, 12, 0.1))
    assert [(a["id"], a["state"], a["value"]) for a in fired] == [("crowd:cam-0:person", "firing", 12.0)]
    assert eng.on_window(st, agg(20, 15, 0.1)) == []                    # still firing: no repeat
    cleared = eng.on_window(st, agg(30, 2, 0.1))
    assert [(a["state"], a["since"]) for a in cleared] == [("cleared", 10.0)]


def test_gap_clears_and_only_if_no_newer_window():
    eng, st = WindowRules(RULES), {}
    eng.on_window(st, agg(0, 12, 0.1))
    assert eng.on_gap(st, "cam-0", "person", 10.0) == []                 # that window was seen
    out = eng.on_gap(st, "cam-0", "person", 20.0)
    assert [(a["id"], a["state"]) for a in out] == [("crowd:cam-0:person", "cleared")]


def test_spike_needs_history_and_uses_previous_windows_only():
    eng, st = WindowRules(RULES), {}
    assert eng.on_window(st, agg(0, 5, 0.5)) == []                       # no history yet
    assert eng.on_window(st, agg(10, 5, 0.1)) == []                      # 1 window of history < min_history
    out = eng.on_window(st, agg(20, 5, 0.7))                              # avg(0.5, 0.1) = 0.3, 0.7 > 0.6
    assert [(a["id"], a["state"]) for a in out] == [("spike:cam-0:person", "firing")]
    assert out[0]["threshold"] == pytest.approx(0.6)
    assert eng.on_window(st, agg(30, 2, 0.1)) != []                      # too few detections: condition false


def test_fleet_scope_rules_only_see_fleet_payloads():
    rules = AlertRules.model_validate({"rules": [
        {"type": "class_count", "id": "fc", "label": "*", "min_count": 3, "scope": "fleet"}]})
    eng = WindowRules(rules)
    assert eng.on_window({}, agg(0, 50, 0.1)) == []
    fleet = outputs.build("fleet", class_id=1, label="car", window_start=0.0, window_end=10.0, revision=0, detections=3, frames=3,
                         score_mean=0.5, with_sigma=3, sigma_mean=0.1, sigma_max=0.1, high_sigma_share=0.0,
                         high_sigma_threshold=0.25, devices=2)
    assert [a["id"] for a in eng.on_window({}, fleet)] == ["fc:_fleet:car"]


def test_silence_fires_after_timeout_and_clears_on_activity():
    eng, st = SilenceRule(RULES), {}
    assert eng.on_timer(st, "d", 100.0) == []                             # never seen: nothing to judge
    eng.on_activity(st, "d", 100.0)
    assert eng.on_timer(st, "d", 120.0) == []                             # a stale timer, not silent long enough
    fired = eng.on_timer(st, "d", 130.0)
    assert [(a["id"], a["state"], a["since"]) for a in fired] == [("silent:d:_all", "firing", 100.0)]
    assert eng.on_timer(st, "d", 160.0) == []
    assert [a["state"] for a in eng.on_activity(st, "d", 170.0)] == ["cleared"]


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("job:\n  window:\n    size_s: 10\n    slide_s: 3\n  checkpoint_intervall_s: 1\n")
    with pytest.raises(ConfigError) as e:
        load(p)
    assert "job.checkpoint_intervall_s" in str(e.value) and "slide_s" in str(e.value)
    r = tmp_path / "a.yaml"
    r.write_text("rules:\n  - {type: class_count, id: x, label: person, min_count: 0}\n"
                 "  - {type: class_count, id: x, label: car, min_count: 1}\n")
    with pytest.raises(ConfigError) as e:
        load_rules(r)
    assert "min_count" in str(e.value) and "rules.0" in str(e.value)
    p.write_text("job:\n  jvm_options: ['-Xmx2g -XX:+UseParallelGC']\n")
    with pytest.raises(ConfigError) as e:
        load(p)
    assert "job.jvm_options" in str(e.value) and "one list item each" in str(e.value)


def test_example_configs_load(project_root):
    cfg = load(project_root / "configs" / "stream.example.yaml")
    assert cfg.job.window.size_s == 10 and cfg.bridge.group
    rules = load_rules(cfg.job.alerts_file)
    assert {r.type for r in rules.rules} == {"class_count", "uncertainty_spike", "device_silent", "clock_skew"}
