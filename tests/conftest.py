"""Shared fixtures: paths, the shared fixtures directory, and a real mosquitto broker on 127.0.0.1."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto process on 127.0.0.1:<port>, stoppable and restartable by pid."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = ""):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(self.binary):
            pytest.skip("mosquitto is not installed: run `make setup` (installs it with apt as root) "
                        "or `apt-get install mosquitto`")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "mosquitto.log"

    def write_conf(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "log_dest stderr\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            + self.extra_conf)
        return conf

    def start(self) -> "Broker":
        conf = self.write_conf()
        # Run as the current user (no privilege drop) so persistence files are writable.
        args = [self.binary, "-c", str(conf)]
        if os.geteuid() == 0:
            conf.write_text(conf.read_text() + "user root\n")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


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
            msg = (f"{path} is missing: fetch the real models and footage with "
                   "`.venv/bin/python -m convert.realdata.fetch` (scripts/setup.sh runs it)")
            if os.environ.get("SIGMAWATCH_CI") == "1":
                pytest.fail(msg)
            pytest.skip(msg)
        return path
    return get
