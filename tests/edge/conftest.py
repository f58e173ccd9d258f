"""Fixtures for the edge-agent tests: project-built int8 models, OpenCV-written videos, agent processes."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from edge_helpers import USERS, AgentProcess, Subscriber, write_video

from tests.conftest import missing, require_tool

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
SHIPPED_DETECTOR = ROOT / "edge" / "models" / "demo-detector-int8.tflite"


@pytest.fixture(scope="session")
def fixture_models(request, tmp_path_factory) -> Path:
    """Tiny int8 detector + classifier built by make_fixture_models.py (TensorFlow, in a subprocess),
    cached in pytest's cache keyed by the script's hash."""
    script = Path(__file__).with_name("make_fixture_models.py")
    key = hashlib.sha256(script.read_bytes() + (ROOT / "edge" / "model_metadata.py").read_bytes()).hexdigest()[:12]
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    out = Path(cache.mkdir(f"edge-fixture-models-{key}")) if cache else tmp_path_factory.mktemp("edge-fixture-models")
    if not (out / "detector-int8.tflite").is_file() or not (out / "classifier-int8.tflite").is_file():
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        proc = subprocess.run([PY, str(script), str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"building the fixture models failed:\n{proc.stderr[-3000:]}")
    return out


@pytest.fixture(scope="session")
def detector_model(fixture_models) -> Path:
    """The hand-weighted colour detector: deterministic detections for the logic tests (labels red/blue)."""
    return fixture_models / "detector-int8.tflite"


@pytest.fixture(scope="session")
def shipped_detector() -> Path:
    if not SHIPPED_DETECTOR.is_file():
        missing(f"{SHIPPED_DETECTOR.relative_to(ROOT)} is missing (it is committed; edge/models/README.md says how "
                "to make it)")
    return SHIPPED_DETECTOR


@pytest.fixture(scope="session")
def scene(request, tmp_path_factory, fixture_models):
    """(model, video) for the end-to-end delivery tests: the shipped demo detector on a synthetic scene of the
    kind it was trained on when it is in the tree, else the colour detector on a red-square video."""
    if SHIPPED_DETECTOR.is_file():
        try:
            from demo.video import write_demo_video
        except ImportError:
            write_demo_video = None
        if write_demo_video is not None:
            video = tmp_path_factory.mktemp("scene") / "scene.mp4"
            write_demo_video(video, seed=3, width=320, height=240, fps=20.0, seconds=4.0, objects=3)
            return SHIPPED_DETECTOR, video
    video = write_video(tmp_path_factory.mktemp("scene") / "scene.avi", frames=60, fps=20)
    return fixture_models / "detector-int8.tflite", video


@pytest.fixture(scope="session")
def classifier_model(fixture_models) -> Path:
    return fixture_models / "classifier-int8.tflite"


@pytest.fixture
def video(tmp_path) -> Path:
    return write_video(tmp_path / "camera.avi")


@pytest.fixture
def agents():
    started: list[AgentProcess] = []

    def start(config: Path, *args: str, env: dict | None = None) -> AgentProcess:
        a = AgentProcess(config, *args, env=env)
        started.append(a)
        return a

    yield start
    for a in started:
        a.kill()


@pytest.fixture
def subscriber():
    subs: list[Subscriber] = []

    def make(broker, topic_filter: str, **kw) -> Subscriber:
        s = Subscriber(broker, topic_filter, client_id=kw.pop("client_id", f"test-sub-{len(subs)}"), **kw)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


@pytest.fixture
def secured_broker(tmp_path, broker_factory):
    require_tool("mosquitto_passwd", "apt-get install mosquitto")
    passwd = tmp_path / "passwd"
    for i, (user, pw) in enumerate(USERS.items()):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), str(passwd), user, pw], check=True)
    acl = ROOT / "configs" / "mosquitto" / "acl"
    return broker_factory(extra_conf=f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n")
