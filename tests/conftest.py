"""Shared fixtures: paths, the shared fixtures directory, a real mosquitto broker on 127.0.0.1, and the one rule
for real components a test needs (:func:`missing`): skip locally with the reason, fail in CI."""
from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from demo.broker import Mosquitto, find_mosquitto

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: set by .ci/run (and scripts/setup.sh reads it too): a missing real component fails instead of skipping
CI = os.environ.get("SIGMAWATCH_CI") == "1"


def missing(reason: str) -> NoReturn:
    """A real component this test needs is not here (mosquitto, Chromium, openssl, systemd-analyze, javac, the
    fetched real data, a package of the dev extra): skip with ``reason`` on a developer's machine, fail under
    ``SIGMAWATCH_CI=1`` so that CI cannot go green without running the test."""
    if CI:
        pytest.fail(f"{reason} [SIGMAWATCH_CI=1: a missing real component fails the run; scripts/setup.sh "
                    "installs it]", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_tool(name: str, install: str, *candidates: str) -> str:
    """Path of the program ``name`` (or of the first existing ``candidates``), else :func:`missing` with
    ``install``, the command that installs it."""
    for c in (name, *candidates):
        found = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if found:
            return found
    missing(f"{name} is not installed ({install})")


def require_module(name: str, why: str = "it is in the dev extra: scripts/setup.sh installs it"):
    """``importlib.import_module(name)``, else :func:`missing` (the local equivalent of importorskip)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"Python package {name} cannot be imported ({exc}); {why}")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared files not found at {SHARED}: these tests need ../shared/ next to the project root "
                    "(the Gaussian YOLOv3 fixtures and FINDINGS.md)")
    return SHARED


@pytest.fixture(scope="session")
def gaussian_yolov3_fixtures(shared_dir) -> Path:
    path = shared_dir / "fixtures" / "gaussian_yolov3"
    if not path.is_dir():
        pytest.skip(f"{path} is missing: the official Gaussian YOLOv3 cfg fixtures are needed for this test")
    return path


class Broker(Mosquitto):
    """The project's mosquitto launcher with a persistent database in the test's folder (a restart keeps the
    sessions, as a real broker's does). Skips the test, with the reason, when mosquitto is missing."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "", listener: str = "",
                 allow_anonymous: bool = True):
        if find_mosquitto() is None:
            missing("mosquitto is not installed: run `make setup` (installs it with apt as root) "
                    "or `apt-get install mosquitto`")
        super().__init__(workdir, port, persistence=True, extra_conf=extra_conf, listener=listener,
                         allow_anonymous=allow_anonymous)


@pytest.fixture
def broker_factory(tmp_path):
    brokers: list[Broker] = []

    def make(**kw) -> Broker:
        b = Broker(tmp_path / f"broker{len(brokers)}", **kw)
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.fixture(scope="session")
def real_data():
    """``real_data("video/vtest.avi")`` -> the fetched file in ~/.cache/sigmawatch/real. Tests never download:
    a missing file skips with the command that fetches it, or fails when SIGMAWATCH_CI=1."""
    from convert.realdata.manifest import real_path

    def get(dest: str) -> Path:
        path = real_path(dest)
        if not path.is_file():
            missing(f"{path} is missing: fetch the real models and footage with "
                    "`.venv/bin/python -m convert.realdata.fetch` (scripts/setup.sh runs it)")
        return path
    return get


@pytest.fixture
def bridges(tmp_path):
    """``bridges(config, client_id)`` -> a real stream-bridge process (tests.support.bridges), stopped by pid at the
    end of the test whatever happened."""
    from tests.support.bridges import BridgeProcess
    started: list = []

    def start(config: Path, client_id: str, env: dict | None = None):
        b = BridgeProcess(config, client_id, tmp_path / f"{client_id}-{len(started)}.log", env=env)
        started.append(b)
        return b
    yield start
    for b in started:
        b.kill()
