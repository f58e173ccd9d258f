"""Engine on a project-built int8 model (zones, class filter, sigma cap, mismatch checks) and the frame sources
(OpenCV file source, the Picamera2 adapter up to the camera boundary, supervisor reopen/backoff)."""
from __future__ import annotations

import sys
import threading
import time
import types

import jsonschema
import numpy as np
import pytest

from edge.config import ModelConfig, Settings, SourceConfig
from edge.engine import Engine
from edge.contract.errors import ModelError, SourceError
from edge.contract.schema import decode, encode, json_schema, validate, validate_decoded_detections
from edge.contract.wire import ZONES, detections_message
from edge.sources import Picamera2Source, SourceSupervisor, classify_uri, probe
from edge_helpers import write_video


def red_square_frame(x0: int, w: int = 320, h: int = 240) -> np.ndarray:
    f = np.zeros((h, w, 3), np.uint8)
    f[60:180, x0:x0 + 100, 2] = 255
    return f


@pytest.fixture(scope="module")
def engine(detector_model):
    return Engine(ModelConfig(path=detector_model, threads=1), Settings())


def test_zones_class_filter_and_sigma_cap(engine):
    left = Settings(score_threshold=0.3, zones=[{"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}])
    res, timings = engine.process(red_square_frame(20), time.time(), left)
    assert res.detections and all(d.zones == ("left",) for d in res.detections)
    assert all((d.box[0] + d.box[2]) / 2 < 0.5 for d in res.detections)
    assert set(timings) == {"preprocess", "inference", "postprocess"}
    res_right, _ = engine.process(red_square_frame(200), time.time(), left)
    assert res_right.detections == [], "a square on the right lies outside the left zone"
    wire = detections_message(res, device="cam-1", seq=7, model_hash=engine.model_ref["hash"])
    validate(wire, "detections")
    jsonschema.validate(wire, json_schema("detections"))
    assert wire["detections"][0][ZONES] == ["left"]
    decoded = decode(encode(wire), "detections")
    validate_decoded_detections(decoded)
    assert decoded["detections"][0]["zones"] == ["left"]

    only_blue, _ = engine.process(red_square_frame(20), time.time(), Settings(classes=["blue"]))
    assert only_blue.detections == []
    capped, _ = engine.process(red_square_frame(20), time.time(), Settings(max_sigma=0.05))
    assert capped.detections == [], "the fixture's sigmas (~0.12) exceed max_sigma 0.05"


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
def test_fast_preprocess_equals_the_shared_reference(engine, resize):
    from edge.preprocess import prepare_for_model
    frame = np.random.default_rng(1).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    meta = dict(engine.meta["input"], resize=resize)
    fast, fast_info = Engine.preprocess(type("E", (), {"meta": {"input": meta}})(), frame)
    ref, ref_info = prepare_for_model(frame, meta, bgr=True)
    assert np.array_equal(fast, ref) and fast_info == ref_info and fast.flags["C_CONTIGUOUS"]


def test_mismatched_model_is_refused(detector_model, classifier_model):
    with pytest.raises(ModelError, match="classification model"):
        Engine(ModelConfig(path=classifier_model, task="detection"), Settings())
    with pytest.raises(ModelError, match="expect_labels"):
        Engine(ModelConfig(path=detector_model, expect_labels=["car", "person"]), Settings())
    with pytest.raises(ModelError, match="settings.classes"):
        Engine(ModelConfig(path=detector_model), Settings(classes=["car"]))


def test_uri_kinds():
    assert classify_uri("0") == ("v4l2", 0)
    assert classify_uri("/dev/video2") == ("v4l2", "/dev/video2")
    assert classify_uri("rtsp://cam/stream")[0] == "stream"
    assert classify_uri("picamera2") == ("picamera2", None)
    assert classify_uri("clip.mp4") == ("file", "clip.mp4")


def test_probe_and_missing_camera(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=3, fourcc="mp4v")
    assert probe(SourceConfig(uri=str(video))) == (160, 120)
    with pytest.raises(SourceError, match="does not exist"):
        probe(SourceConfig(uri=str(tmp_path / "none.mp4")))
    with pytest.raises(SourceError, match="video"):   # no camera on this machine
        probe(SourceConfig(uri="/dev/video99"))


def test_supervisor_loops_a_file_and_reopens_with_backoff(tmp_path):
    video = write_video(tmp_path / "v.avi", frames=4)
    states = []
    sup = SourceSupervisor(SourceConfig(uri=str(video), realtime=False, backoff_initial_s=0.05, backoff_max_s=0.1),
                           on_state=states.append)
    stop = threading.Event()
    got = 0
    for _frame, _ts in sup.frames(stop):
        got += 1
        if got == 10:
            stop.set()
    assert got == 10 and sup.reconnects >= 2
    assert [s["state"] for s in states][:3] == ["open", "reconnecting", "open"]
    assert states[1]["error"] == "end of video file"

    looped = SourceSupervisor(SourceConfig(uri=str(video), realtime=False, loop=True))
    stop = threading.Event()
    n = 0
    for _ in looped.frames(stop):
        n += 1
        if n == 9:
            stop.set()
    assert looped.reconnects == 0, "loop: rewinds without reopening"


def test_picamera2_adapter_up_to_the_camera(monkeypatch):
    calls = []

    class FakePicamera2:   # stands in for libcamera hardware, which cannot exist here
        def create_video_configuration(self, main, controls):
            calls.append(("config", main, controls))
            return {"main": main}

        def configure(self, config):
            calls.append(("configure",))

        def start(self):
            calls.append(("start",))

        def capture_array(self, stream):
            w, h = calls[0][1]["size"]
            return np.full((h, w, 4), 7, np.uint8)

        def stop(self):
            calls.append(("stop",))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    src = Picamera2Source(320, 240, 10)
    src.open()
    frame = src.read()
    src.close()
    assert frame.shape == (240, 320, 3)
    assert calls[0] == ("config", {"size": (320, 240), "format": "RGB888"}, {"FrameRate": 10.0})
    assert calls[-2:] == [("stop",), ("close",)]

    monkeypatch.setitem(sys.modules, "picamera2", None)   # not installed
    with pytest.raises(SourceError, match="python3-picamera2"):
        Picamera2Source().open()
