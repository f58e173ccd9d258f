"""Metadata that travels with every model: written by ``convert-model``, read by ``edge-agent``.

Where it lives
  1. Embedded: a small zip archive holding ``sigmawatch.json`` appended to the ``.tflite``
     flatbuffer. TFLite interpreters read the flatbuffer and ignore trailing bytes, so the model
     file stays one self-describing artifact.
  2. Sidecar: ``<model>.json`` next to the model. Needed for files that a tool rewrote without
     our trailer (``edgetpu_compiler`` output), and written for every export so that plain tools
     can read it too.
``read_metadata`` tries the embedded copy first, then the sidecar, and verifies the content hash
of the flatbuffer so a truncated or swapped model file is refused with a clear message.

Dependency-free (json, hashlib, zipfile): imported by the edge agent on a Pi.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from edge.contract.access import blocking_component, explain
from edge.contract.errors import ModelError

FORMAT = "sigmawatch-model"
FORMAT_VERSION = 1
ARCHIVE_MEMBER = "sigmawatch.json"
TASKS = ("detection", "classification")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")

REQUIRED = {
    "task": str,
    "architecture": str,
    "input": dict,
    "quantization": str,
    "labels": list,
}
INPUT_REQUIRED = {"height": int, "width": int, "channels": int, "dtype": str, "resize": str}


class ModelMetadataError(ModelError, ValueError):
    """Metadata missing, malformed, or not matching the model bytes."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sidecar_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def validate_metadata(meta: dict[str, Any], where: str = "metadata") -> dict[str, Any]:
    """Check the fields every consumer relies on; errors name the key."""
    if not isinstance(meta, dict):
        raise ModelMetadataError(f"{where}: expected a JSON object")
    if meta.get("format") != FORMAT:
        raise ModelMetadataError(f"{where}: 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelMetadataError(
            f"{where}: 'format_version' {meta.get('format_version')!r} is not supported (this version reads "
            f"{FORMAT_VERSION}); re-export the model with this version of convert-model")
    for key, typ in REQUIRED.items():
        if not isinstance(meta.get(key), typ):
            raise ModelMetadataError(f"{where}: '{key}' is missing or not a {typ.__name__}")
    if meta["task"] not in TASKS:
        raise ModelMetadataError(f"{where}: 'task' is {meta['task']!r}, expected one of {TASKS}")
    if meta["quantization"] not in QUANTIZATIONS:
        raise ModelMetadataError(f"{where}: 'quantization' is {meta['quantization']!r}, expected one of {QUANTIZATIONS}")
    for key, typ in INPUT_REQUIRED.items():
        if not isinstance(meta["input"].get(key), typ):
            raise ModelMetadataError(f"{where}: 'input.{key}' is missing or not a {typ.__name__}")
    if not all(isinstance(x, str) for x in meta["labels"]) or not meta["labels"]:
        raise ModelMetadataError(f"{where}: 'labels' must be a non-empty list of strings")
    if meta["task"] == "detection" and not isinstance(meta.get("detection"), dict):
        raise ModelMetadataError(f"{where}: a detection model needs a 'detection' object (anchors, strides, outputs)")
    return meta


def embed_metadata(flatbuffer: bytes, meta: dict[str, Any]) -> bytes:
    """Return ``flatbuffer + zip(sigmawatch.json)``; fills in the hash and size fields."""
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION,
                model_sha256=sha256_hex(flatbuffer), flatbuffer_size=len(flatbuffer))
    validate_metadata(meta)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(ARCHIVE_MEMBER, json.dumps(meta, indent=1, sort_keys=True))
    return flatbuffer + buf.getvalue()


def write_model(path: str | Path, flatbuffer: bytes, meta: dict[str, Any], *, sidecar: bool = True) -> dict[str, Any]:
    """Write the model with embedded metadata (and a sidecar). Returns the final metadata."""
    path = Path(path)
    data = embed_metadata(flatbuffer, meta)
    final = _read_embedded(data)
    path.write_bytes(data)
    if sidecar:
        sidecar_path(path).write_text(json.dumps(final, indent=1, sort_keys=True) + "\n")
    return final


def write_sidecar(model_path: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Sidecar for a model file written by another tool (e.g. edgetpu_compiler)."""
    data = Path(model_path).read_bytes()
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION,
                model_sha256=sha256_hex(data), flatbuffer_size=len(data))
    validate_metadata(meta)
    sidecar_path(model_path).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def _read_embedded(data: bytes) -> dict[str, Any] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            raw = zf.read(ARCHIVE_MEMBER)
    except (zipfile.BadZipFile, KeyError):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelMetadataError(f"embedded {ARCHIVE_MEMBER} is not valid JSON: {exc}") from exc


class _Short(Exception):
    """A read past the end of the file while walking the flatbuffer."""


def _u(data: bytes, offset: int, size: int) -> int:
    if offset < 0 or offset + size > len(data):
        raise _Short
    return int.from_bytes(data[offset:offset + size], "little", signed=False)


def _field(data: bytes, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the flatbuffer table at ``table`` (None when absent)."""
    soffset = _u(data, table, 4)
    vtable = table - (soffset - (1 << 32) if soffset >= 1 << 31 else soffset)
    slot = 4 + 2 * index
    if slot + 2 > _u(data, vtable, 2):
        return None
    off = _u(data, vtable + slot, 2)
    return table + off if off else None


def _table_end(data: bytes, table: int) -> int:
    """Where a table's inline part and its vtable end (the vtable's second entry is the table's size)."""
    soffset = _u(data, table, 4)
    vtable = table - (soffset - (1 << 32) if soffset >= 1 << 31 else soffset)
    return max(table + _u(data, vtable + 2, 2), vtable + _u(data, vtable, 2))


def _tables(data: bytes, table: int, index: int) -> list[int]:
    """The tables of the vector field ``index`` (empty when absent)."""
    pos = _field(data, table, index)
    if pos is None:
        return []
    vec = pos + _u(data, pos, 4)
    return [vec + 4 + 4 * j + _u(data, vec + 4 + 4 * j, 4) for j in range(_u(data, vec, 4))]


def flatbuffer_end(data: bytes) -> int | None:
    """How far into the file a TFLite model reaches, as far as its weight buffers (``Model.buffers``: inline
    ``data`` vectors, or ``offset``/``size`` beyond 2 GB) and its operator codes (the converter writes them
    last) tell; None when that walk runs off the end of ``data`` (the file is cut short). Reads the flatbuffer
    by hand: no TFLite package needed."""
    try:
        root = _u(data, 0, 4)
        end = _table_end(data, root)
        for table in _tables(data, root, 1):             # Model.operator_codes
            end = max(end, _table_end(data, table))
        for table in _tables(data, root, 4):             # Model.buffers
            end = max(end, _table_end(data, table))
            dpos = _field(data, table, 0)                # Buffer.data
            if dpos is not None:
                dvec = dpos + _u(data, dpos, 4)
                end = max(end, dvec + 4 + _u(data, dvec, 4))
            opos, spos = _field(data, table, 1), _field(data, table, 2)   # Buffer.offset / size
            if opos is not None and spos is not None and _u(data, opos, 8) > 1:
                end = max(end, _u(data, opos, 8) + _u(data, spos, 8))
        return end
    except _Short:
        return None


def _no_metadata(path: Path, data: bytes) -> ModelMetadataError:
    """Why a .tflite has no metadata: cut short (an interrupted copy), or exported without it / by another tool."""
    side = sidecar_path(path)
    end = flatbuffer_end(data)
    cut = end is None or end > len(data)
    if not cut and data.find(b"PK\x03\x04", end) >= 0 and data.find(b"PK\x05\x06", end) < 0:
        cut = True                             # the start of the metadata trailer, but not its end
    if cut:
        need = "more" if end is None else f"at least {end}"
        return ModelMetadataError(
            f"{path} is truncated: the model needs {need} bytes but the file has {len(data)} (an interrupted copy "
            f"or download?), and there is no {side.name} next to it. Copy the model again and check that its size "
            "matches the original")
    return ModelMetadataError(
        f"{path} is a TFLite model without sigmawatch metadata: none is embedded and {side} does not exist. The "
        f"metadata says how to feed and decode the model (input size, labels, anchors); copy {side.name} from the "
        "machine the model was exported on (every export writes it next to the model), or write one for a model "
        "made by another tool (README: 'SSD detectors in the agent')")


def read_model(path: str | Path) -> tuple[bytes, dict[str, Any]]:
    """Return ``(flatbuffer_bytes, metadata)`` for a model file, verified.

    Raises ModelMetadataError (missing file, no metadata, hash mismatch) with a message that
    says how to fix it.
    """
    path = Path(path)
    if blocking_component(path) is not None:
        raise ModelMetadataError(explain(path, "model file"))
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.tflite"))[:5]
        raise ModelMetadataError(f"model path {path} is a directory, not a .tflite file"
                                 + (f"; it holds {', '.join(found)}" if found else ""))
    if not path.is_file():
        raise ModelMetadataError(f"model file {path} does not exist; check the path (model.path, --model)")
    data = path.read_bytes()
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelMetadataError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier); the file is corrupt "
                                 "or not a .tflite model")
    meta = _read_embedded(data)
    where = f"{path} (embedded)"
    if meta is None:
        side = sidecar_path(path)
        if not side.is_file():
            raise _no_metadata(path, data)
        try:
            meta = json.loads(side.read_text())
        except json.JSONDecodeError as exc:
            raise ModelMetadataError(f"{side} is not valid JSON: {exc}") from exc
        where = str(side)
    validate_metadata(meta, where)
    size = meta.get("flatbuffer_size")
    if not isinstance(size, int) or size > len(data):
        raise ModelMetadataError(f"{where}: 'flatbuffer_size' {size!r} does not fit the {len(data)}-byte file; "
                                 "the model is truncated")
    flatbuffer = data[:size]
    digest = sha256_hex(flatbuffer)
    if digest != meta.get("model_sha256"):
        raise ModelMetadataError(
            f"{path}: content hash {digest[:12]}... does not match the metadata's {str(meta.get('model_sha256'))[:12]}...; "
            "the model file was modified or belongs to another export")
    return flatbuffer, meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    return read_model(path)[1]
