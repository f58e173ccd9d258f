"""The bridge's fast path (``stream.landing_fast``) may only be narrower than the contract, never wider or different:

- whatever it accepts, ``stream.landing.to_landing_line`` (the contract's path) accepts too, into an equal landing
  line (same JSON values and number types, same device and seq): over generated version-2 detections (valid,
  at their bounds) and over valid detections and metrics messages with one field replaced by an arbitrary value;
- what agents send (valid version-2 detections, with and without sigma, zones and tracks; metrics) takes the fast
  path;
- named cases where Python's json and msgspec differ (duplicate keys, NaN, 1e999, a trailing newline in a name,
  lone surrogates, booleans for integers) agree on the outcome.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.contract import schema
from stream.landing import to_landing_line
from stream.landing_fast import LandingConverter
from tests.contracts.test_poison_properties import nasty, one_field_replaced
from tests.support.generate import detections_msg, metrics_msg

PREFIX = "sigmawatch"
LIMIT = 256 * 1024
TOPIC = f"{PREFIX}/cam-1/detections"
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _typed(value):
    """A JSON value with its number types kept apart (1 and 1.0 are equal in Python, not in a line)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def assert_same_or_contract_path(raw: bytes, topic: str = TOPIC):
    """The converter's result equals the contract's; returns whether the fast path took the message."""
    conv = LandingConverter(PREFIX, LIMIT)
    got = conv.convert(topic, raw, 1_700_000_000.123456)
    want = to_landing_line(PREFIX, topic, raw, 1_700_000_000.123456, LIMIT)
    if conv.fast:
        assert want.valid, f"the fast path accepted what the contract refuses: {raw[:300]!r} ({want.line[:300]})"
    assert _typed(json.loads(got.line)) == _typed(json.loads(want.line)), (got.line, want.line)
    assert (got.valid, got.device, got.seq) == (want.valid, want.device, want.seq)
    # the raw topic bytes (what the bridge's batch reader hands over) give the same result
    again = LandingConverter(PREFIX, LIMIT).convert(topic.encode("utf-8", "surrogatepass"), raw, 1_700_000_000.123456)
    assert again == got
    return bool(conv.fast)


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/+#"),
                max_size=20)
permille = st.integers(0, 1000)
quad = st.lists(permille, min_size=4, max_size=4)
detection = st.tuples(st.integers(0, 2 ** 31 - 1), names, permille, permille, quad, st.none() | quad,
                      st.none() | permille, st.none() | st.lists(st.integers(0, 2 ** 63 - 1), min_size=4, max_size=4),
                      st.lists(names.filter(bool), max_size=3), st.none() | st.integers(0, 2 ** 63 - 1))


def _array(d) -> list:
    *head, zones, track = d
    item = list(head)
    if track is not None:
        item += [zones, track]
    elif zones:
        item.append(zones)
    return item


messages = st.fixed_dictionaries({
    "schema": st.just(2), "device": st.just("cam-1"), "seq": st.integers(0, 2 ** 63 - 1),
    "ts": st.integers(0, 10 ** 10) | st.floats(0, 1e10), "frame": st.lists(st.integers(1, 10 ** 6), min_size=2, max_size=2),
    "model": st.text(alphabet="0123456789abcdef", min_size=8, max_size=80),
    "latency_ms": st.lists(st.integers(0, 10 ** 6) | st.floats(0, 1e300), min_size=1, max_size=2),
    "detections": st.lists(detection.map(_array), max_size=6)})


@SETTINGS
@given(msg=messages)
def test_valid_version_2_detections_take_the_fast_path_into_the_contracts_line(msg):
    raw = json.dumps(msg, separators=(",", ":")).encode()
    assert schema.parse(raw, "detections")           # generated valid: the contract accepts it
    assert assert_same_or_contract_path(raw), f"a valid message missed the fast path: {raw[:300]!r}"


def _detections():
    msg = detections_msg("cam-1", 5, 1_700_000_000.5, [(1, 0.8, 0.1), (2, 0.5, None)])
    msg["detections"][0] += [["drive"], 7]
    return msg


def _metrics():
    return {**metrics_msg("cam-1", 1_700_000_001.0, 4.0, 3, 2), "last_seq": 5, "cpu_temp_c": 51.5,
            "source": {"kind": "file", "fps": 10}}


@pytest.mark.parametrize("kind, make", [("detections", _detections), ("metrics", _metrics)])
def test_valid_messages_of_both_fast_kinds_take_the_fast_path(kind, make):
    assert assert_same_or_contract_path(json.dumps(make()).encode(), f"{PREFIX}/cam-1/{kind}")


@SETTINGS
@given(data=st.data(), value=nasty)
def test_a_message_with_one_field_replaced_lands_as_the_contract_says(data, value):
    kind, msg = data.draw(st.sampled_from([("detections", _detections()), ("metrics", _metrics())]))
    raw = one_field_replaced(data, msg, value)
    if raw is not None:
        assert_same_or_contract_path(raw, f"{PREFIX}/cam-1/{kind}")


BASE = b'{"schema":2,"device":"cam-1","seq":3,"ts":1700000000.5,"frame":[640,480],"model":"0123456789ab",' \
       b'"latency_ms":[2.5,4],"detections":[[1,"car",800,850,[1,2,3,4],[5,6,7,8],6,[1,2,3,4]]]}'


@pytest.mark.parametrize("raw, fast", [
    (BASE, True),
    (BASE.replace(b'"seq":3', b'"seq":3,"seq":4'), True),                      # duplicate key: the last counts
    (BASE.replace(b"1700000000.5", b"NaN"), False),
    (BASE.replace(b"1700000000.5", b"1e999"), False),
    (BASE.replace(b"1700000000.5", b"1700000000"), True),                      # an integer time stays one
    (BASE.replace(b'"car"', b'"car\\n"'), False),                              # "$" is the end, not before a newline
    (BASE.replace(b'"car"', b'"car\\ud800"'), False),                          # a lone surrogate
    (BASE.replace(b'"car"', b'"c/r"'), False),
    (BASE.replace(b"[1,2,3,4]]]", b"[1,2,3,4],[],true]]"), False),             # a boolean track id
    (BASE.replace(b"[2.5,4]", b"[2.5,-4]"), False),
    (BASE.replace(b'"schema":2', b'"schema":2.0'), False),
    (BASE.replace(b"[1,2,3,4]]]", b"[1,2,3,4],[],5,6]]"), False),              # 11 items
    (BASE.replace(b',"detections"', b',"extra":1,"detections"'), False),
    (BASE.replace(b'"cam-1"', b'"cam-2"'), False),                              # not the topic's device
    (BASE[:-5], False),
], ids=["valid", "duplicate-key", "nan", "inf", "int-ts", "newline", "surrogate", "slash", "bool-track",
        "negative-latency", "float-schema", "11-items", "unknown-key", "other-device", "truncated"])
def test_named_differences_between_json_and_msgspec(raw, fast):
    assert assert_same_or_contract_path(raw) is fast


def test_other_kinds_and_topics_take_the_contract_path():
    status = json.dumps({"schema": 1, "type": "status", "device": "cam-1", "state": "online", "ts": 1.0}).encode()
    assert assert_same_or_contract_path(status, f"{PREFIX}/cam-1/status") is False
    metrics = json.dumps({**_metrics(), "fps": float("nan")}).encode()
    assert assert_same_or_contract_path(metrics, f"{PREFIX}/cam-1/metrics") is False
    assert assert_same_or_contract_path(BASE, "other/cam-1/detections") is False
    assert assert_same_or_contract_path(BASE, f"{PREFIX}/cam 1/detections") is False
    assert assert_same_or_contract_path(BASE, f"{PREFIX}/cam-1\n/detections") is False
    big = LandingConverter(PREFIX, 100)
    assert not big.convert(TOPIC, BASE, 1.0).valid and not big.fast     # over the size limit: refused with reason


def test_a_failure_of_the_converter_itself_lands_the_message_as_invalid(monkeypatch):
    """The last line of defence: whatever goes wrong inside the conversion, the message lands (dead-lettered with
    the reason) and the other messages of the batch are converted."""
    import stream.landing_fast as fast

    def broken(payload):
        if b'"seq":3' in payload:
            raise RuntimeError("boom")
        return real(payload)
    real = fast._decode
    monkeypatch.setattr(fast, "_decode", broken)
    other = BASE.replace(b'"seq":3', b'"seq":4')
    lines = LandingConverter(PREFIX, LIMIT).convert_batch([(TOPIC.encode(), BASE, 1, 1), (TOPIC.encode(), other, 2, 1)],
                                                          1.0)
    bad, good = json.loads(lines[0].line), json.loads(lines[1].line)
    assert not lines[0].valid and bad["kind"] == "invalid" and "boom" in bad["reason"] and bad["topic"] == TOPIC
    assert lines[1].valid and good["seq"] == 4
