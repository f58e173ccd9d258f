"""Fixtures for the emulated Raspberry Pi 4 tests (marker ``pi``; ``make test-pi``).

The root and the two wheel environments are cached on disk (see pi_root / pi_wheels); a failure to build
them fails the tests with the reason (it is never a skip: CI must not go green without running them).
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pi_root  # noqa: E402
import pi_wheels  # noqa: E402
from pi_runner import EmulatedPython, HostPython  # noqa: E402

DEMO_MODEL = Path("edge/models/demo-detector-int8.tflite")


def wheels_dir() -> Path:
    return pi_root.cache_dir().parent / "pi-wheels"


@pytest.fixture(scope="session")
def pi_rootfs() -> Path:
    try:
        return pi_root.ensure_root()
    except pi_root.PiRootError as exc:
        pytest.fail(f"emulated Raspberry Pi root: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def pi_platform_tags(pi_rootfs) -> list[str]:
    return pi_wheels.platform_tags(pi_wheels.root_glibc(pi_rootfs))


@pytest.fixture(scope="session")
def pi_site(pi_platform_tags, project_root):
    """``pi_site(extra)`` -> target dir holding ``sigmawatch[extra]``'s requirement set as aarch64 wheels."""
    made: dict[str, Path] = {}

    def get(extra: str, requirements: list[str] | None = None) -> Path:
        """``requirements``: install these instead of the extra's set (the name ``extra`` keys the cache)."""
        if extra not in made:
            reqs = requirements or pi_wheels.requirement_set(project_root / "pyproject.toml", extra)
            try:
                made[extra] = pi_wheels.install(wheels_dir(), extra, reqs, pi_platform_tags)
            except pi_wheels.WheelInstallError as exc:
                pytest.fail(f"sigmawatch[{extra}] on a Raspberry Pi 4: {exc}", pytrace=False)
        return made[extra]
    return get


@pytest.fixture(scope="session")
def project_wheel(project_root, tmp_path_factory) -> Path:
    """The project built as the Pi's ``pip install '/opt/sigmawatch[edge]'`` builds it (a pure wheel)."""
    try:
        return pi_wheels.build_project_wheel(project_root, tmp_path_factory.mktemp("wheel"))
    except pi_wheels.WheelInstallError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pi_project_site(project_wheel, tmp_path_factory) -> Path:
    """The project's wheel installed alone (pure Python: the same files on every platform)."""
    return pi_wheels.install_project(project_wheel, tmp_path_factory.mktemp("project-site") / "site")


@pytest.fixture(scope="session")
def pi_python(pi_rootfs, pi_site, pi_project_site):
    """``pi_python(extra, cpu="cortex-a72", extra_paths=())`` -> EmulatedPython with the installed project
    and that extra's aarch64 wheels on its path (not the source tree: what a Pi has after pip install)."""
    def make(extra: str, cpu: str = "cortex-a72", extra_paths: tuple[Path, ...] = ()) -> EmulatedPython:
        return EmulatedPython(pi_rootfs, [*extra_paths, pi_project_site, pi_site(extra)], cpu=cpu)
    return make


@pytest.fixture(scope="session")
def demo_model(project_root) -> Path:
    """The shipped int8 demo detector (SIGMAWATCH_PI_MODEL overrides it for development)."""
    path = Path(os.environ.get("SIGMAWATCH_PI_MODEL") or project_root / DEMO_MODEL)
    if not path.is_file():
        pytest.fail(f"the shipped demo detector {path} is missing: the Pi test runs the model the project ships "
                    "(see edge/models/README.md for the command that makes it)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def pi_video(tmp_path_factory) -> tuple[Path, int]:
    """(lossless FFV1 video of the synthetic classes, number of frames)."""
    from pi_video import write_video
    path = tmp_path_factory.mktemp("pi-video") / "scene.mkv"
    frames = write_video(path, frames=4, fourcc="FFV1")
    return path, len(frames)


@pytest.fixture(scope="session")
def score_threshold() -> float:
    """The agent's default threshold (SIGMAWATCH_PI_SCORE_THRESHOLD only for trying other models)."""
    return float(os.environ.get("SIGMAWATCH_PI_SCORE_THRESHOLD", "0.25"))


@pytest.fixture(scope="session")
def model_quantization(demo_model) -> tuple[dict, dict]:
    """(metadata, {output name: (scale, zero point)}) of the demo detector, read on the host."""
    from edge.model_metadata import read_model
    from edge.runtime import TFLiteModel
    flatbuffer, meta = read_model(demo_model)
    return meta, TFLiteModel(flatbuffer).output_quantization()


@pytest.fixture(scope="session")
def x86_site(project_root):
    """``x86_site(extra)`` -> the same requirement set installed for x86_64 (the reference: only the CPU differs)."""
    made: dict[str, Path] = {}
    libc, version = platform.libc_ver()
    if libc != "glibc" or platform.machine() != "x86_64":
        pytest.fail(f"the x86 reference needs an x86_64 glibc host (this is {platform.machine()} {libc})", pytrace=False)
    tags = pi_wheels.platform_tags(tuple(int(x) for x in version.split(".")[:2]), "x86_64")

    def get(extra: str) -> Path:
        if extra not in made:
            reqs = pi_wheels.requirement_set(project_root / "pyproject.toml", extra)
            try:
                made[extra] = pi_wheels.install(wheels_dir() / "x86_64", extra, reqs, tags)
            except pi_wheels.WheelInstallError as exc:
                pytest.fail(f"sigmawatch[{extra}] for the x86 reference: {exc}", pytrace=False)
        return made[extra]
    return get


@pytest.fixture(scope="session")
def x86_python(x86_site, pi_project_site):
    """``x86_python(extra)`` -> HostPython with the installed project and that extra's x86_64 wheels."""
    return lambda extra: HostPython(pythonpath=[pi_project_site, x86_site(extra)])


@pytest.fixture(scope="session")
def x86_reference(x86_python, demo_model, pi_video, score_threshold, model_quantization, tmp_path_factory):
    """``x86_reference(extra)`` -> dict(clean=(json, tensors), noisy=[(json, tensors)...], tolerance=ToleranceTable):
    the x86 probe on the clean frames and on NOISE_SEEDS noisy copies (+-1 gray level), and the per-detection
    tolerances derived from them (pi_compare.ToleranceTable)."""
    from pi_compare import Tolerance, ToleranceTable
    from pi_reference import NOISE_SEEDS, probe_payloads, run_probe
    made: dict[str, dict] = {}
    video, _ = pi_video

    def get(extra: str) -> dict:
        if extra not in made:
            py = x86_python(extra)
            d = tmp_path_factory.mktemp(f"x86-{extra}")
            clean = run_probe(py, demo_model, video, d / "clean.npz", score_threshold)
            noisy = [run_probe(py, demo_model, video, d / f"noise{s}.npz", score_threshold, s) for s in NOISE_SEEDS]
            meta, quant = model_quantization
            w, h = clean[0]["frame_size"]
            tol = ToleranceTable(floor=Tolerance.floor(meta, quant, w, h), clean=probe_payloads(clean[0]),
                                 noisy=[probe_payloads(n[0]) for n in noisy])
            made[extra] = {"clean": clean, "noisy": noisy, "tolerance": tol}
        return made[extra]
    return get
