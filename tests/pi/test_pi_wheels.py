"""The Pi's dependencies: the [edge] / [edge-legacy] requirement sets resolve to aarch64 wheels, and a
dependency without one fails with a message naming it.

Tests without the ``pi`` marker need no emulation and no network (they run in the default suite)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import pi_wheels

PIP_OUTPUT = """\
Looking in links: /opt/wheels
ERROR: Could not find a version that satisfies the requirement tflite-runtime==2.14.0 (from versions: none)
ERROR: No matching distribution found for tflite-runtime==2.14.0
"""


def test_requirement_set_is_base_dependencies_plus_the_extra(project_root):
    import tomllib
    project = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]
    reqs = pi_wheels.requirement_set(project_root / "pyproject.toml", "edge")
    assert reqs == project["dependencies"] + [r for r in project["optional-dependencies"]["edge"]
                                              if r not in project["dependencies"]]
    assert not any(r.lower().startswith(("tensorflow", "apache-flink")) for r in reqs)


def test_requirement_set_follows_self_references(tmp_path):
    pp = tmp_path / "pyproject.toml"
    pp.write_text('[project]\nname = "demo"\ndependencies = ["numpy"]\n[project.optional-dependencies]\n'
                  'a = ["paho-mqtt"]\nb = ["pyyaml", "numpy"]\nall = ["demo[a,b]", "pytest"]\n')
    assert pi_wheels.requirement_set(pp, "all") == ["numpy", "paho-mqtt", "pyyaml", "pytest"]
    with pytest.raises(KeyError, match="no extra 'edge'.*a, all, b"):
        pi_wheels.requirement_set(pp, "edge")


def test_platform_tags_cover_every_manylinux_level_of_the_glibc():
    tags = pi_wheels.platform_tags((2, 36))
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_27_aarch64" in tags
    assert tags[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"] and len(tags) == 21
    with pytest.raises(pi_wheels.WheelInstallError, match="older than manylinux2014"):
        pi_wheels.platform_tags((2, 12))


def test_pip_failure_is_explained_naming_the_dependency():
    err = pi_wheels.explain_failure(PIP_OUTPUT, ["numpy", "tflite-runtime==2.14.0"], ["manylinux_2_36_aarch64"], "3.11")
    assert isinstance(err, pi_wheels.MissingWheelError)
    assert err.requirements == ["tflite-runtime==2.14.0"]
    assert "tflite-runtime==2.14.0: no wheel for this platform at all" in str(err)
    other = pi_wheels.explain_failure("ERROR: ResolutionImpossible: numpy<1 and numpy>2", ["x"], ["t"], "3.11")
    assert not isinstance(other, pi_wheels.MissingWheelError) and "ResolutionImpossible" in str(other)


def test_an_x86_binary_in_the_target_is_refused(tmp_path):
    def elf(machine: int) -> bytes:
        return b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(44)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.cpython-311-aarch64-linux-gnu.so").write_bytes(elf(pi_wheels.EM_AARCH64))
    (tmp_path / "pkg" / "__init__.py").write_text("")
    assert pi_wheels.check_aarch64(tmp_path) == 1
    (tmp_path / "pkg" / "libfast.so.1").write_bytes(elf(62))  # EM_X86_64
    with pytest.raises(pi_wheels.WrongArchitectureError, match=r"pkg/libfast\.so\.1 \(e_machine 62\)"):
        pi_wheels.check_aarch64(tmp_path)


def _wheel(directory: Path, name: str, tag: str, requires: list[str] = ()) -> Path:
    dist = name.replace("-", "_")
    path = directory / f"{dist}-1.0-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}/__init__.py", "")
        zf.writestr(f"{dist}-1.0.dist-info/METADATA", meta)
        zf.writestr(f"{dist}-1.0.dist-info/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n")
        zf.writestr(f"{dist}-1.0.dist-info/RECORD", "")
    return path


def test_a_dependency_without_aarch64_wheel_fails_naming_it(tmp_path):
    """Real pip, local index (no network): a pure wheel that depends on a package published only for
    x86_64, next to a wheel-less requirement. The error names both culprits, not the pure wheel."""
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "sw-pure", "py3-none-any", requires=["sw-x86only"])
    _wheel(index, "sw-x86only", "cp311-cp311-manylinux2014_x86_64")
    _wheel(index, "sw-fine", "cp311-cp311-manylinux2014_aarch64")
    args = ["--no-index", "--find-links", str(index)]
    tags = pi_wheels.platform_tags((2, 36))
    ok = pi_wheels.install(tmp_path / "cache", "fine", ["sw-fine"], tags, extra_args=args)
    assert pi_wheels.installed_distributions(ok) == {"sw_fine": "1.0"}
    with pytest.raises(pi_wheels.MissingWheelError) as info:
        pi_wheels.install(tmp_path / "cache", "bad", ["sw-fine", "sw-pure"], tags, extra_args=args)
    assert info.value.requirements == ["sw-x86only"]
    assert "sw-x86only: no wheel for this platform at all" in str(info.value)
    assert not list((tmp_path / "cache").glob("bad-*")), "a failed install must not be cached"


# --------------------------------------------------------------------------- against PyPI (pi marker)
@pytest.mark.pi
@pytest.mark.parametrize("extra", sorted(pi_wheels.ENVIRONMENTS))
def test_extra_resolves_to_aarch64_wheels(extra, pi_site):
    runtime, numpy_major = pi_wheels.ENVIRONMENTS[extra]
    target = pi_site(extra)
    dists = {k.lower().replace("_", "-"): v for k, v in pi_wheels.installed_distributions(target).items()}
    print(f"sigmawatch[{extra}] for aarch64: " + ", ".join(f"{k} {v}" for k, v in sorted(dists.items())))
    assert runtime in dists, f"{runtime} missing from sigmawatch[{extra}]: {sorted(dists)}"
    assert int(dists["numpy"].split(".")[0]) == numpy_major
    for needed in ("opencv-python-headless", "paho-mqtt", "pydantic", "pyyaml"):
        assert needed in dists
    assert not any(d.startswith(("tensorflow", "keras")) for d in dists), "the edge must not pull TensorFlow"
    assert pi_wheels.check_aarch64(target) > 5  # numpy, cv2, the interpreter, pydantic-core, yaml ... all aarch64


@pytest.mark.pi
def test_adding_an_x86_only_package_to_the_edge_extra_is_caught(project_root, pi_platform_tags, tmp_path):
    """tensorflow-cpu publishes no aarch64 wheels: were it added to [edge], a Pi user's install would fail."""
    reqs = pi_wheels.requirement_set(project_root / "pyproject.toml", "edge") + ["tensorflow-cpu>=2.20"]
    with pytest.raises(pi_wheels.MissingWheelError) as info:
        pi_wheels.install(tmp_path, "edge-plus-tf", reqs, pi_platform_tags)
    assert info.value.requirements == ["tensorflow-cpu>=2.20"], str(info.value)
    print(info.value)


@pytest.mark.pi
@pytest.mark.parametrize("extra", sorted(pi_wheels.ENVIRONMENTS))
def test_project_wheel_asks_for_the_requirement_set_the_test_installs(extra, project_wheel, project_root):
    """The Pi's `pip install '/opt/sigmawatch[edge]'` resolves the built wheel's Requires-Dist: the same set
    the cached aarch64 environment was installed from."""
    from_wheel = {pi_wheels.normalize(r) for r in pi_wheels.wheel_requirements(project_wheel, extra)}
    from_pyproject = {pi_wheels.normalize(r) for r in pi_wheels.requirement_set(project_root / "pyproject.toml", extra)}
    assert from_wheel == from_pyproject


@pytest.mark.pi
def test_installed_project_has_the_agent_and_its_data(pi_project_site):
    assert pi_wheels.console_script(pi_project_site, "edge-agent") == ("edge.cli", "main")
    assert {p.name for p in (pi_project_site / "edge" / "contract" / "schemas").glob("*.json")} >= {
        "detections.schema.json", "status.schema.json", "metrics.schema.json"}


def test_a_new_requirement_set_replaces_only_its_own_cached_environment(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "sw-fine", "cp311-cp311-manylinux2014_aarch64")
    args = ["--no-index", "--find-links", str(index)]
    tags = pi_wheels.platform_tags((2, 36))
    other = pi_wheels.install(tmp_path / "cache", "edge-legacy", ["sw-fine"], tags, extra_args=args)
    old = pi_wheels.install(tmp_path / "cache", "edge", ["sw-fine"], tags, extra_args=args)
    new = pi_wheels.install(tmp_path / "cache", "edge", ["sw-fine>=1"], tags, extra_args=args)
    assert new != old and not old.exists() and new.is_dir() and other.is_dir()
