import json
from pathlib import Path

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


SHIPPED = Path(__file__).resolve().parents[2] / "edge" / "models" / "demo-detector-int8.tflite"


def test_sidecar_used_when_not_embedded(tmp_path):
    """A complete model without metadata (as the Edge TPU compiler writes one) is refused until a sidecar exists
    (a cut one is reported as truncated: the next test)."""
    path = tmp_path / "compiled_edgetpu.tflite"
    path.write_bytes(mm.read_model(SHIPPED)[0])         # the shipped model's flatbuffer without our metadata
    with pytest.raises(mm.ModelMetadataError, match="without sigmawatch metadata: none is embedded"):
        mm.read_model(path)
    mm.write_sidecar(path, meta())
    assert mm.read_metadata(path)["labels"] == ["a", "b"]


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_cut_model_is_reported_as_truncated(tmp_path, keep):
    """A model cut short (an interrupted copy) without a sidecar: the operator is told it is truncated, not to
    export it again with convert-model (a Pi has no convert-model)."""
    fb = mm.read_model(SHIPPED)[0]
    path = tmp_path / "m.tflite"
    path.write_bytes(fb[:int(len(fb) * keep)])
    with pytest.raises(mm.ModelMetadataError, match="is truncated") as err:
        mm.read_model(path)
    assert "convert-model" not in str(err.value)


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
