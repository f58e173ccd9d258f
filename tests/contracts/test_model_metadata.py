import json

import pytest

from edge import model_metadata as mm

FAKE_FLATBUFFER = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4


def meta():
    return {"task": "classification", "architecture": "mobilenetv3_small", "quantization": "int8",
            "labels": ["a", "b"],
            "input": {"height": 96, "width": 96, "channels": 3, "dtype": "uint8", "resize": "stretch"}}


def test_embedded_round_trip(tmp_path):
    path = tmp_path / "m.tflite"
    written = mm.write_model(path, FAKE_FLATBUFFER, meta())
    fb, read = mm.read_model(path)
    assert fb == FAKE_FLATBUFFER
    assert read == written and read["model_sha256"] == mm.sha256_hex(FAKE_FLATBUFFER)
    assert json.loads(mm.sidecar_path(path).read_text()) == written


def test_sidecar_used_when_not_embedded(tmp_path):
    path = tmp_path / "compiled_edgetpu.tflite"
    path.write_bytes(FAKE_FLATBUFFER)
    with pytest.raises(mm.ModelMetadataError, match="carries no sigmawatch metadata"):
        mm.read_model(path)
    mm.write_sidecar(path, meta())
    assert mm.read_metadata(path)["labels"] == ["a", "b"]


def test_modified_model_is_refused(tmp_path):
    path = tmp_path / "m.tflite"
    mm.write_model(path, FAKE_FLATBUFFER, meta())
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(mm.ModelMetadataError, match="content hash"):
        mm.read_model(path)


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(mm.ModelMetadataError, match="not a TFLite flatbuffer"):
        mm.read_model(path)
    with pytest.raises(mm.ModelMetadataError, match="does not exist"):
        mm.read_model(tmp_path / "missing.tflite")


@pytest.mark.parametrize("key", ["task", "labels", "input", "quantization", "architecture"])
def test_missing_key_is_named(key):
    m = meta()
    del m[key]
    with pytest.raises(mm.ModelMetadataError, match=key):
        mm.embed_metadata(FAKE_FLATBUFFER, m)
