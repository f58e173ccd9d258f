"""Detections from a model without uncertainty (SSD, plain head) carry null sigma, never an invented [0,0,0,0]."""
import jsonschema
import pytest

from edge import schema
from edge.decode import Detection
from edge.wire import compact_detections


def _message(dets):
    return {"schema": 1, "type": "detections", "device": "pi-1", "seq": 3, "ts": 1763900000.5,
            "frame": {"w": 768, "h": 576}, "model": {"id": "ssd", "hash": "cd" * 32}, "task": "detection",
            "latency_ms": {"inference": 20.0, "total": 25.0}, "detections": dets}


def test_plain_detection_is_null_sigma_in_both_wire_versions():
    d = Detection(0, "Person", 0.61, 0.61, (0.1, 0.2, 0.3, 0.6), None, None, None).to_message()
    assert d["sigma"] is None and d["sigma_mean"] is None and "box_sigma" not in d
    msg = _message([d])
    jsonschema.validate(msg, schema.json_schema("detections_v1"))
    wire = compact_detections(msg)
    assert wire["detections"][0][5:8] == [None, None, None]
    jsonschema.validate(wire, schema.json_schema("detections"))
    decoded = schema.decode(schema.encode(wire), "detections")
    assert decoded["detections"][0]["sigma"] is None and decoded["detections"][0]["sigma_mean"] is None
    assert compact_detections(decoded) == wire


def test_gaussian_detection_keeps_its_sigma():
    d = Detection(1, "person", 0.5, 0.8, (0.1, 0.2, 0.3, 0.6), (0.1, 0.2, 0.3, 0.4), 0.25,
                  (0.01, 0.02, 0.03, 0.04)).to_message()
    wire = compact_detections(_message([d]))
    assert wire["detections"][0][5:7] == [[100, 200, 300, 400], 250]


@pytest.mark.parametrize("bad", [[0, 0, 0], "none", [0.1, 0.1, 0.1, 2.0]])
def test_sigma_is_null_or_four_fractions(bad):
    d = Detection(0, "p", 0.6, 0.6, (0.1, 0.2, 0.3, 0.6), None, None, None).to_message()
    d["sigma"] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_message([d]), schema.json_schema("detections_v1"))
    with pytest.raises(schema.SchemaError):
        schema.validate_decoded_detections(_message([d]))
