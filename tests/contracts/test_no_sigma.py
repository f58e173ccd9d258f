"""Detections from a model without uncertainty (SSD, plain head) carry null sigma, never an invented [0,0,0,0]."""
import jsonschema
import pytest

from edge.contract import schema
from edge.contract.wire import BOX_SIGMA, SIGMA, SIGMA_MEAN, detections_message
from edge.decode import Detection
from edge.messages import FrameResult


def _wire(dets: list[Detection]) -> dict:
    result = FrameResult(ts=1763900000.5, frame_w=768, frame_h=576, task="detection", detections=dets,
                         latency_ms={"inference": 20.0, "total": 25.0})
    return detections_message(result, device="pi-1", seq=3, model_hash="cd" * 32)


def _v1(decoded: dict) -> dict:
    """The version-1 message of a decoded payload (what old agents send)."""
    return {**decoded, "schema": 1, "model": {"id": "ssd", "hash": decoded["model"]["hash"]}}


def test_plain_detection_is_null_sigma_in_both_wire_versions():
    wire = _wire([Detection(0, "Person", 0.61, 0.61, (0.1, 0.2, 0.3, 0.6), None, None, None)])
    assert wire["detections"][0][SIGMA:BOX_SIGMA + 1] == [None, None, None]
    jsonschema.validate(wire, schema.json_schema("detections"))
    decoded = schema.decode(schema.encode(wire), "detections")
    det = decoded["detections"][0]
    assert det["sigma"] is None and det["sigma_mean"] is None and "box_sigma" not in det
    v1 = _v1(decoded)
    jsonschema.validate(v1, schema.json_schema("detections_v1"))
    assert schema.decode(schema.encode(v1), "detections")["detections"][0]["sigma"] is None


def test_gaussian_detection_keeps_its_sigma():
    wire = _wire([Detection(1, "person", 0.5, 0.8, (0.1, 0.2, 0.3, 0.6), (0.1, 0.2, 0.3, 0.4), 0.25,
                            (0.01, 0.02, 0.03, 0.04))])
    assert wire["detections"][0][SIGMA:SIGMA_MEAN + 1] == [[100, 200, 300, 400], 250]


@pytest.mark.parametrize("bad", [[0, 0, 0], "none", [0.1, 0.1, 0.1, 2.0]])
def test_sigma_is_null_or_four_fractions(bad):
    wire = _wire([Detection(0, "p", 0.6, 0.6, (0.1, 0.2, 0.3, 0.6), None, None, None)])
    v1 = _v1(schema.decode(schema.encode(wire), "detections"))
    v1["detections"][0]["sigma"] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(v1, schema.json_schema("detections_v1"))
    with pytest.raises(schema.SchemaError):
        schema.validate(v1, "detections")
