"""The message contract: published schema files in sync, our validator agrees with jsonschema."""
import json
from dataclasses import replace

import jsonschema
import pytest

from edge.contract import schema, wire
from edge.contract.wire import detections_message
from edge.decode import Detection
from edge.messages import FrameResult


def detections_message_v1(**over):
    msg = {
        "schema": 1, "type": "detections", "device": "pi-1", "seq": 7,
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
        path = schema.SCHEMA_DIR / f"{kind}.schema.json"
        assert json.loads(path.read_text()) == schema.json_schema(kind), f"run python -m edge.contract.schema --write ({path})"


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


def assert_both_reject(msg: dict, json_schema_name: str, ours) -> None:
    """jsonschema (on the published schema) and our own validator both refuse ``msg``."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(msg, schema.json_schema(json_schema_name))
    with pytest.raises(schema.SchemaError):
        ours(msg)


@pytest.mark.parametrize("name,mutate", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_validator_agrees_with_jsonschema_on_bad_messages(name, mutate):
    msg = detections_message_v1()
    mutate(msg)
    assert_both_reject(msg, "detections_v1", lambda m: schema.validate(m, "detections"))


def test_good_message_passes_both():
    msg = detections_message_v1()
    jsonschema.validate(msg, schema.json_schema("detections_v1"))
    assert schema.decode(schema.encode(msg), "detections") == msg


# --------------------------------------------------------------------------- version 2 (compact wire format)
def frame(detections=None, **over) -> FrameResult:
    """detections_message_v1()'s frame as the agent holds it: Detection objects."""
    if detections is None:
        detections = [Detection(class_id=1, label="square", score=0.7, objectness=0.9, box=(0.1, 0.2, 0.3, 0.4),
                                sigma=(0.05, 0.04, 0.1, 0.2), sigma_mean=0.0975, box_sigma=(0.01, 0.01, 0.02, 0.02))]
    return FrameResult(**{"ts": 1763900000.25, "frame_w": 640, "frame_h": 480, "task": "detection",
                          "detections": detections, "latency_ms": {"inference": 12.5, "total": 20.0}, **over})


def wire_message(**over):
    msg = detections_message(frame(), device="pi-1", seq=7, model_hash="ab" * 32)
    msg.update(over)
    return msg


def test_v2_layout_and_round_trip():
    wire = wire_message()
    assert wire == {"schema": 2, "device": "pi-1", "seq": 7, "ts": 1763900000.25, "frame": [640, 480],
                    "model": "abababababab", "latency_ms": [12.5, 20.0],
                    "detections": [[1, "square", 700, 900, [100, 200, 300, 400], [50, 40, 100, 200], 98,
                                    [10, 10, 20, 20]]]}
    jsonschema.validate(wire, schema.json_schema("detections"))
    assert schema.parse(schema.encode(wire), "detections") == wire
    decoded = schema.decode(schema.encode(wire), "detections")
    schema.validate_decoded_detections(decoded)
    want = detections_message_v1(schema=2, model={"hash": "abababababab"})
    want["detections"][0]["sigma_mean"] = 0.098          # thousandths on the wire
    assert decoded == want


def test_v2_classification_zones_and_plain_head():
    classes = [{"class_id": 3, "label": "cat", "score": 0.5}]
    wire = detections_message(frame([], task="classification", classes=classes, entropy=0.6931),
                              device="pi-1", seq=7, model_hash="ab" * 32)
    assert "detections" not in wire and wire["classes"] == [[3, "cat", 500]] and wire["entropy"] == 0.6931
    decoded = schema.decode(schema.encode(wire), "detections")
    assert decoded["task"] == "classification" and decoded["classes"] == classes and decoded["detections"] == []
    plain = replace(frame().detections[0], sigma=None, sigma_mean=None, box_sigma=None, zones=("door",))
    wire = detections_message(frame([plain]), device="pi-1", seq=7, model_hash="ab" * 32)
    assert wire["detections"][0][5:] == [None, None, None, ["door"]]      # no invented certainty
    back = schema.decode(schema.encode(wire), "detections")["detections"][0]
    assert back["zones"] == ["door"] and "box_sigma" not in back and back["sigma"] is None


V2_BAD_CASES = [
    ("score above 1000", lambda m: m["detections"][0].__setitem__(2, 1001)),
    ("float score", lambda m: m["detections"][0].__setitem__(2, 0.7)),
    ("box of 3", lambda m: m["detections"][0].__setitem__(4, [1, 2, 3])),
    ("too short", lambda m: m["detections"][0].__delitem__(7)),
    ("extra item", lambda m: m["detections"][0].extend([["z"], 5, 6])),
    ("track not an integer", lambda m: m["detections"][0].extend([[], "7"])),
    ("negative track", lambda m: m["detections"][0].extend([[], -1])),
    ("label not a string", lambda m: m["detections"][0].__setitem__(1, 5)),
    ("model not hex", lambda m: m.update(model="Model-XYZ")),
    ("frame of 1", lambda m: m.update(frame=[640])),
    ("unknown field", lambda m: m.update(image="base64...")),
    ("v1 shape with schema 2", lambda m: m.update(detections=detections_message_v1()["detections"])),
]


@pytest.mark.parametrize("name,mutate", V2_BAD_CASES, ids=[c[0] for c in V2_BAD_CASES])
def test_v2_validator_agrees_with_jsonschema(name, mutate):
    msg = wire_message()
    mutate(msg)
    assert_both_reject(msg, "detections", lambda m: schema.decode(schema.encode(m), "detections"))


def test_v2_items_are_titled_in_wire_order_and_errors_name_them():
    items = schema.DETECTION_V2["prefixItems"]
    for name in ("class_id", "label", "score", "objectness", "box", "sigma", "sigma_mean", "box_sigma", "zones"):
        assert items[getattr(wire, name.upper())]["title"] == name
    msg = wire_message()
    msg["detections"][0][wire.SCORE] = 1001
    with pytest.raises(schema.SchemaError, match=r"^detections\.detections\[0\]\[2:score\]: 1001 is above the maximum"):
        schema.parse(schema.encode(msg), "detections")
    msg = wire_message()
    msg["detections"][0][wire.BOX][1] = -1
    with pytest.raises(schema.SchemaError, match=r"^detections\.detections\[0\]\[4:box\]\[1\]: -1 is below"):
        schema.parse(schema.encode(msg), "detections")


def test_unknown_detections_version_is_named():
    with pytest.raises(schema.SchemaError, match="version 3 is not supported"):
        schema.decode(schema.encode(wire_message(schema=3)), "detections")


def test_compact_is_less_than_half_of_v1():
    det = replace(frame().detections[0], score=0.8123, box=(0.1234, 0.2345, 0.3456, 0.4567))
    v1_det = dict(detections_message_v1()["detections"][0], score=0.8123, box=list(det.box))
    v1 = len(schema.encode(detections_message_v1(detections=[v1_det] * 4)))
    v2 = len(schema.encode(detections_message(frame([det] * 4), device="pi-1", seq=7, model_hash="ab" * 32)))
    assert v2 < 0.5 * v1, (v1, v2)


def test_error_names_the_field():
    msg = detections_message_v1()
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
