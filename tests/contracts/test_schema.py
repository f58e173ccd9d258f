"""The message contract: published schema files in sync, our validator agrees with jsonschema."""
import json

import jsonschema
import pytest

from edge import schema


def detections_message(**over):
    msg = {
        "schema": schema.SCHEMA_VERSION, "type": "detections", "device": "pi-1", "seq": 7,
        "ts": 1763900000.25, "frame": {"w": 640, "h": 480},
        "model": {"id": "demo", "hash": "ab" * 32}, "task": "detection",
        "latency_ms": {"inference": 12.5, "total": 20.0},
        "detections": [{
            "class_id": 1, "label": "square", "score": 0.7, "objectness": 0.9,
            "box": [0.1, 0.2, 0.3, 0.4], "sigma": [0.05, 0.04, 0.1, 0.2], "sigma_mean": 0.0975,
            "box_sigma": [0.01, 0.01, 0.02, 0.02]}],
    }
    msg.update(over)
    return msg


def test_published_files_match_module(project_root):
    for kind in schema.SCHEMAS:
        path = project_root / "edge" / "schemas" / f"{kind}.schema.json"
        assert json.loads(path.read_text()) == schema.json_schema(kind), f"run python -m edge.schema --write ({path})"


def test_schemas_are_valid_draft_2020_12():
    for kind in schema.SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(schema.json_schema(kind))


BAD_CASES = [
    ("missing seq", lambda m: m.pop("seq")),
    ("negative seq", lambda m: m.update(seq=-1)),
    ("score > 1", lambda m: m["detections"][0].update(score=1.5)),
    ("box of 3", lambda m: m["detections"][0].update(box=[0.1, 0.2, 0.3])),
    ("bool as int", lambda m: m.update(seq=True)),
    ("unknown field", lambda m: m.update(image="base64...")),
    ("bad device", lambda m: m.update(device="a/b")),
    ("wrong type", lambda m: m.update(type="status")),
    ("sigma string", lambda m: m["detections"][0].update(sigma=["x", 0, 0, 0])),
]


@pytest.mark.parametrize("name,mutate", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_validator_agrees_with_jsonschema_on_bad_messages(name, mutate):
    msg = detections_message()
    mutate(msg)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(msg, schema.json_schema("detections"))
    with pytest.raises(schema.SchemaError):
        schema.validate(msg, "detections")


def test_good_message_passes_both():
    msg = detections_message()
    jsonschema.validate(msg, schema.json_schema("detections"))
    assert schema.decode(schema.encode(msg), "detections") == msg


def test_error_names_the_field():
    msg = detections_message()
    msg["detections"][0]["score"] = 2
    with pytest.raises(schema.SchemaError, match=r"detections\.detections\[0\]\.score"):
        schema.validate(msg, "detections")


def test_malformed_json_is_schema_error():
    with pytest.raises(schema.SchemaError, match="not valid UTF-8 JSON"):
        schema.decode(b"{not json", "detections")
    with pytest.raises(schema.SchemaError):
        schema.decode(b"\xff\xfe", "metrics")


def test_topics_round_trip():
    t = schema.topic("sigmawatch", "pi-1", "config/set")
    assert t == "sigmawatch/pi-1/config/set"
    assert schema.parse_topic("sigmawatch", t) == ("pi-1", "config/set")
    with pytest.raises(schema.SchemaError, match="device id"):
        schema.topic("sigmawatch", "pi+1", "status")
    with pytest.raises(schema.SchemaError, match="unknown topic kind"):
        schema.topic("sigmawatch", "pi-1", "frames")
