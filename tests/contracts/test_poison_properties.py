"""Property-based (Hypothesis): no payload can break the decoder or the bridge's landing conversion, and nothing
the bridge accepts can become NULL in the job.

- ``schema.parse`` / ``schema.decode`` on any bytes and on any JSON value: a result or a SchemaError, nothing else;
- ``stream.landing.to_landing_line`` on any topic and bytes: never raises, always one JSON line;
- a line the bridge marks valid holds only values the job's column types represent (``stream.sql``'s landing
  table: BIGINT, INT, DOUBLE, STRING without NUL/control characters or lone surrogates, names without / + #);
- near-valid messages (a valid message with one field replaced by an arbitrary value) are either refused with a
  reason naming the field or land representable.
"""
from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, example, given, settings, strategies as st

from edge.contract import schema
from stream.landing import to_landing_line
from tests.support.generate import detections_msg, metrics_msg

PREFIX = "sigmawatch"
LIMIT = 256 * 1024
BIGINT = (-2 ** 63, 2 ** 63 - 1)
INT = (-2 ** 31, 2 ** 31 - 1)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30)
topics = st.sampled_from([f"{PREFIX}/cam-1/detections", f"{PREFIX}/cam-1/metrics", f"{PREFIX}/cam-1/status",
                          f"{PREFIX}/cam-1/events", f"{PREFIX}/cam-1/objects",
                          f"{PREFIX}/cam 1/detections", "other/cam-1/detections", f"{PREFIX}/cam-1/config/set"]) | \
    st.text(max_size=40)


def _bounded(x, lo_hi) -> bool:
    return type(x) is int and lo_hi[0] <= x <= lo_hi[1]


def _storable_string(x) -> bool:
    return isinstance(x, str) and all(not (0xD800 <= ord(c) <= 0xDFFF) for c in x)


def _name(x) -> bool:
    return _storable_string(x) and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "/+#" for c in x)


def _double(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def assert_representable(rec: dict) -> None:
    """A valid landing line's fields fit the job's landing table (a field that does not becomes NULL there)."""
    assert _name(rec["device"]) and _double(rec["recv_ts"])
    kind = rec["kind"]
    if kind == "detections":
        assert _bounded(rec["seq"], BIGINT) and rec["seq"] >= 0
        assert _double(rec["ts"]) and 0 <= rec["ts"] * 1000 <= BIGINT[1]
        for d in rec["dets"]:
            assert _bounded(d["c"], INT) and d["c"] >= 0 and _name(d["l"]), d
            assert _double(d["p"]) and (d["g"] is None or _double(d["g"])) and d["f"] in (0, 1)
            assert "t" not in d or (_bounded(d["t"], BIGINT) and d["t"] >= 0), d
    elif kind == "events":
        assert _bounded(rec["seq"], BIGINT) and rec["seq"] >= 0
        assert _double(rec["ts"]) and 0 <= rec["ts"] * 1000 <= BIGINT[1]
        ob = rec["ob"]
        assert ob["ev"] in schema.EVENT_TYPES and _name(ob["el"]), ob
        assert all(_double(ob[k]) for k in ("es", "ee") if k in ob) and all(_name(ob[k]) for k in ("xl", "xd") if k in ob)
    elif kind == "objects":
        assert _double(rec["ts"]) and _storable_string(rec["ob"]["oc"])
    elif kind == "metrics":
        assert _double(rec["ts"]) and _double(rec["fps"])
        assert _bounded(rec["dropped"], BIGINT) and _bounded(rec["depth"], BIGINT)
    elif kind == "status":
        assert rec["state"] in ("online", "offline") and ("ts" not in rec or _double(rec["ts"]))
    else:
        raise AssertionError(f"valid line of kind {kind!r}")


@SETTINGS
@given(raw=st.binary(max_size=2000), kind=st.sampled_from(sorted(schema.SCHEMAS)))
@example(raw=b"[" * 1000, kind="detections")            # RecursionError in json, not a JSONDecodeError
@example(raw=b"{\"a\":" * 5000, kind="metrics")
@example(raw=b"1" * 5000, kind="status")                # an int of > 4300 digits: ValueError in json
@example(raw=b'{"seq": 1e999}', kind="detections")      # inf
@example(raw=b"NaN", kind="detections")
def test_parse_any_bytes_returns_or_raises_schema_error(raw, kind):
    try:
        schema.decode(raw, kind)
    except schema.SchemaError as exc:
        assert str(exc)


@SETTINGS
@given(value=json_values, kind=st.sampled_from(["detections", "metrics", "status", "landed"]))
def test_parse_any_json_value_returns_or_raises_schema_error(value, kind):
    raw = json.dumps(value, allow_nan=True).encode()
    try:
        schema.decode(raw, kind)
    except schema.SchemaError as exc:
        assert str(exc)


@SETTINGS
@given(topic=topics, raw=st.binary(max_size=3000) | json_values.map(lambda v: json.dumps(v).encode()))
@example(topic=f"{PREFIX}/cam-1/detections", raw=b"[" * 1000)
@example(topic=f"{PREFIX}/cam-1/metrics", raw=b"[" * 100_000)
@example(topic=f"{PREFIX}/cam-1/detections", raw=b"\xff\xfe" * 10)
def test_landing_conversion_never_raises_and_valid_lines_fit_the_job(topic, raw):
    line, valid, device, seq = to_landing_line(PREFIX, topic, raw, 1_700_000_000.0, LIMIT)
    rec = json.loads(line)
    if valid:
        assert_representable(rec)
    else:
        assert rec["kind"] == "invalid" and rec["reason"] and isinstance(rec["raw_payload"], str)
    assert seq is None or _bounded(seq, BIGINT)


def _valid_messages():
    det = detections_msg("cam-1", 5, 1_700_000_000.5, [(1, 0.8, 0.1), (2, 0.5, 0.3)])
    met = {**metrics_msg("cam-1", 1_700_000_001.0, 4.0, 3, 2), "last_seq": 5}
    tracked = json.loads(json.dumps(det))
    tracked["detections"][0] += [[], 17]
    end = {"schema": 1, "type": "end", "device": "cam-1", "seq": 3, "ts": 1_700_000_003.0, "id": "1700000000000-17",
           "track": 17, "label": "person", "class_id": 0, "start": 1_700_000_000.0, "end": 1_700_000_002.5,
           "score": 0.8, "best_score": 0.9, "box": [0.1, 0.1, 0.3, 0.4], "box_sigma": [0.01, 0.01, 0.02, 0.02],
           "sigma_mean": 0.1, "hits": 9, "zones": ["door"], "entered_zones": ["door"], "lines": {"gate": {"in": 1, "out": 0}}}
    crossed = {"schema": 1, "type": "crossed", "device": "cam-1", "seq": 4, "ts": 1_700_000_001.0,
               "id": "1700000000000-17", "track": 17, "label": "person", "line": "gate", "direction": "in"}
    counts = {"schema": 1, "type": "objects", "device": "cam-1", "ts": 1_700_000_001.0, "objects": {"person": 2},
              "zones": {"door": {"person": 1}}}
    return [("detections", det), ("metrics", met), ("detections", tracked), ("events", end), ("events", crossed),
            ("objects", counts)]


def _paths(value, prefix=()):
    """Every path into a JSON document (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(doc, path, new):
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return doc


nasty = (st.integers() | st.integers(min_value=2 ** 31 - 2, max_value=2 ** 64) | st.floats() |
         st.text(alphabet=st.characters(codec=None), max_size=12) |
         st.sampled_from(["", "a/b", "+", "#", "\x00", "\x1b[31m", "\ud800", "x" * 300, 2 ** 63, 2 ** 63 - 1,
                          2 ** 31, 2 ** 31 - 1, 2 ** 40, -1, 1e300, None, True, [], {}]))


def one_field_replaced(data, msg: dict, value) -> bytes | None:
    """``msg`` with one field (drawn from ``data``) replaced by ``value``, as JSON bytes (None when ``value`` cannot
    be written as JSON)."""
    path = data.draw(st.sampled_from([p for p in _paths(msg) if p]))
    try:
        return json.dumps(_replace(msg, path, value), allow_nan=True).encode("utf-8", "surrogatepass")
    except ValueError:
        return None


@SETTINGS
@given(data=st.data(), value=nasty)
def test_near_valid_messages_are_refused_with_a_reason_or_land_representable(data, value):
    kind, msg = data.draw(st.sampled_from(_valid_messages()))
    raw = one_field_replaced(data, msg, value)
    if raw is None:
        return
    line, valid, device, seq = to_landing_line(PREFIX, f"{PREFIX}/cam-1/{kind}", raw, 1_700_000_002.0, LIMIT)
    rec = json.loads(line)
    if valid:
        assert_representable(rec)
    else:
        assert rec["kind"] == "invalid" and rec["reason"], rec
