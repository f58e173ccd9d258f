"""Install a pyproject extra's requirement set as aarch64 wheels, with the host's pip, into a target dir.

A Pi user runs plain ``pip install 'sigmawatch[edge]'`` on the Pi, where pip picks wheels for CPython 3.11
on aarch64 with the Pi's glibc. Here the host's pip is told to resolve exactly that requirement set (the
project's base dependencies + the extra, read from pyproject.toml) for that platform::

    pip install --target DIR --python-version 3.11 --only-binary=:all:
        --platform manylinux_2_36_aarch64 ... --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64

The platform tags are every manylinux tag the emulated root's glibc accepts (bookworm: 2.36), as pip on the
Pi computes them. ``--only-binary=:all:`` matters: a dependency without an aarch64 wheel would make a Pi
user's pip compile it from source (minutes to hours, compilers needed) or fail; here it fails at once with
:class:`MissingWheelError` naming the dependency. After the install every ELF file in the target is
checked to be an aarch64 binary, so an x86 build that slipped in is caught before it is executed.

Targets are cached next to the root (keyed by requirement set, tags and Python version).
"""
from __future__ import annotations

import configparser
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

WHEELS_VERSION = "1"
PYTHON_VERSION = "3.11"
COMPLETE = ".sigmawatch-complete"
# The two Pi environments: extra -> (interpreter package it must bring, numpy major version it must bring)
ENVIRONMENTS = {"edge": ("ai-edge-litert", 2), "edge-legacy": ("tflite-runtime", 1)}
EM_AARCH64 = 183
EM_X86_64 = 62
MACHINES = {"aarch64": EM_AARCH64, "x86_64": EM_X86_64}
_GLIBC_RE = re.compile(rb"GNU C Library[^\n]*?version (\d+)\.(\d+)")
_NO_MATCH_RE = re.compile(r"No matching distribution found for (\S+)")
_VERSIONS_RE = re.compile(r"satisfies the requirement (\S+)[^\n]*\(from versions: ([^)]*)\)")


class WheelInstallError(RuntimeError):
    """pip could not install the requirement set for the Pi."""


class MissingWheelError(WheelInstallError):
    """A dependency has no wheel for the Pi's platform. ``requirements`` names them."""

    def __init__(self, message: str, requirements: list[str]):
        super().__init__(message)
        self.requirements = requirements


class WrongArchitectureError(WheelInstallError):
    """An installed native file is not an aarch64 binary."""


# --------------------------------------------------------------------------- what to install
def requirement_set(pyproject: Path, extra: str, project: str | None = None) -> list[str]:
    """``pip install 'project[extra]'``'s direct requirements: base dependencies + the extra, following
    self-references such as ``sigmawatch[edge,convert]``. Raises KeyError naming a missing extra."""
    data = tomllib.loads(Path(pyproject).read_text())["project"]
    name = project or data["name"]
    extras = data.get("optional-dependencies", {})
    out: list[str] = list(data.get("dependencies", []))
    seen: set[str] = set()

    def add(e: str) -> None:
        if e in seen:
            return
        if e not in extras:
            raise KeyError(f"{pyproject} defines no extra {e!r} (it has: {', '.join(sorted(extras))})")
        seen.add(e)
        for req in extras[e]:
            m = re.fullmatch(rf"\s*{re.escape(name)}\s*\[([^\]]+)\]\s*", req)
            if m:
                for sub in m.group(1).split(","):
                    add(sub.strip())
            elif req not in out:
                out.append(req)

    add(extra)
    return out


def root_glibc(root: Path) -> tuple[int, int]:
    """glibc version of the emulated root, read from its libc.so.6 (no emulation needed)."""
    for lib in sorted(root.glob("usr/lib/aarch64-linux-gnu/libc.so.6")) + sorted(root.glob("lib/aarch64-linux-gnu/libc.so.6")):
        m = _GLIBC_RE.search(lib.read_bytes())
        if m:
            return int(m.group(1)), int(m.group(2))
    raise WheelInstallError(f"no aarch64 libc.so.6 with a version string under {root}: is it an arm64 root?")


def platform_tags(glibc: tuple[int, int], arch: str = "aarch64") -> list[str]:
    """Every manylinux tag pip accepts on that glibc, newest first (as pip on the device orders them)."""
    major, minor = glibc
    if major != 2 or minor < 17:
        raise WheelInstallError(f"glibc {major}.{minor} is older than manylinux2014 (2.17)")
    return [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]


def normalize(requirement: str) -> tuple[str, frozenset[str]]:
    """(canonical name, specifiers) so that 'paho-mqtt>=2.0,<3' equals 'paho_mqtt<3,>=2.0'."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    req = Requirement(requirement)
    return canonicalize_name(req.name), frozenset(str(s) for s in req.specifier)


# --------------------------------------------------------------------------- the project's own wheel
def build_project_wheel(project_root: Path, out_dir: Path, timeout: float = 300) -> Path:
    """``pip wheel --no-deps`` of the project (pure Python, py3-none-any): what a Pi's
    ``pip install '/opt/sigmawatch[edge]'`` builds and installs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    src = out_dir / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    for item in Path(project_root).iterdir():
        if item.name in ("pyproject.toml", "README.md", "LICENSE") and item.is_file():
            shutil.copy2(item, src / item.name)
        elif item.is_dir() and (item / "__init__.py").is_file() and item.name != "tests":
            shutil.copytree(item, src / item.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-input", "--no-deps",
           "--progress-bar", "off", "-w", str(out_dir), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wheels = sorted(out_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise WheelInstallError(f"building the project's wheel failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return wheels[-1]


def wheel_requirements(wheel: Path, extra: str) -> list[str]:
    """Requires-Dist of a wheel that apply to ``pip install 'name[extra]'`` (markers other than the extra
    are kept out: they do not occur in this project)."""
    import zipfile
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    out = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req, _, marker = line[len("Requires-Dist:"):].partition(";")
        marker = marker.strip().replace("'", '"')
        if not marker or marker == f'extra == "{extra}"':
            out.append(req.strip())
    return out


def install_project(wheel: Path, target: Path) -> Path:
    """The project's pure wheel alone (its dependencies come from the cached target)."""
    shutil.rmtree(target, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-deps",
           "--no-index", "--target", str(target), str(wheel)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise WheelInstallError(f"installing {wheel.name} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return target


def console_script(site: Path, name: str) -> tuple[str, str]:
    """(module, function) of an installed distribution's console script, from its entry_points.txt."""
    for ep in site.glob("*.dist-info/entry_points.txt"):
        cp = configparser.ConfigParser()
        cp.read(ep)
        if cp.has_option("console_scripts", name):
            module, _, func = cp.get("console_scripts", name).partition(":")
            return module.strip(), func.strip()
    raise WheelInstallError(f"no console script {name!r} is installed in {site}")


# --------------------------------------------------------------------------- install
def pip_command(target: Path, requirements: list[str], tags: list[str], python_version: str = PYTHON_VERSION,
                extra_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-conflicts",
           "--no-input", "--progress-bar", "off", "--target", str(target), "--python-version", python_version,
           "--only-binary=:all:"]
    for tag in tags:
        cmd += ["--platform", tag]
    return cmd + list(extra_args) + list(requirements)


def explain_failure(output: str, requirements: list[str], tags: list[str], python_version: str) -> WheelInstallError:
    """Turn pip's output into an error naming the dependency that has no aarch64 wheel."""
    missing = list(dict.fromkeys(_NO_MATCH_RE.findall(output)))
    if missing:
        found = {req: vers.strip() for req, vers in _VERSIONS_RE.findall(output)}
        lines = []
        for req in missing:
            versions = found.get(req, "none")
            why = ("no wheel for this platform at all" if versions in ("", "none")
                   else f"wheels for this platform exist only for versions {versions}")
            lines.append(f"  {req}: {why}")
        return MissingWheelError(
            f"no aarch64 wheel (CPython {python_version}, {tags[0]} or older) for:\n" + "\n".join(lines) + "\n"
            "On a Raspberry Pi 4 (64-bit Raspberry Pi OS) `pip install` would have to build these from source or "
            "fail. Pin a version that ships aarch64 wheels or drop the dependency from the extra.\n"
            f"Requirement set: {' '.join(requirements)}", missing)
    tail = "\n".join(line for line in output.splitlines() if "is ignored" not in line)[-3000:]
    return WheelInstallError(f"pip could not install the requirement set for aarch64 "
                             f"({' '.join(requirements)}):\n{tail}")


def elf_machine(path: Path) -> int | None:
    """ELF e_machine of a file, or None when it is not an ELF file."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def check_machine(target: Path, arch: str = "aarch64") -> int:
    """Every ELF file under ``target`` must be built for ``arch``; returns how many were checked."""
    expected = MACHINES[arch]
    wrong, count = [], 0
    for p in target.rglob("*"):
        if not p.is_file() or p.is_symlink() or p.suffix in (".py", ".pyc", ".pyi", ".txt", ".json"):
            continue
        machine = elf_machine(p)
        if machine is None:
            continue
        count += 1
        if machine != expected:
            wrong.append(f"{p.relative_to(target)} (e_machine {machine})")
    if wrong:
        raise WrongArchitectureError(f"{len(wrong)} native file(s) in {target} are not {arch}: " + ", ".join(wrong[:10]))
    return count


def check_aarch64(target: Path) -> int:
    return check_machine(target, "aarch64")


def installed_distributions(target: Path) -> dict[str, str]:
    """{distribution: version} from the target's .dist-info directories."""
    out = {}
    for d in sorted(target.glob("*.dist-info")):
        name, _, version = d.name[:-len(".dist-info")].rpartition("-")
        out[name] = version
    return out


def target_key(requirements: list[str], tags: list[str], python_version: str, extra_args=()) -> str:
    text = "\n".join([WHEELS_VERSION, python_version, *tags, "--", *requirements, "--", *extra_args])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def install(base: Path, name: str, requirements: list[str], tags: list[str], python_version: str = PYTHON_VERSION,
            extra_args: list[str] | tuple[str, ...] = (), timeout: float = 900) -> Path:
    """Install (or reuse the cached) ``base/<name>-<key>`` target; raise MissingWheelError naming the culprit."""
    target = base / f"{name}-{target_key(requirements, tags, python_version, extra_args)}"
    if (target / COMPLETE).is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob(f"{name}-*"):  # an older requirement set of the same environment (not "edge-legacy-*")
        if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{12}}", stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = base / f".building-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = pip_command(tmp, requirements, tags, python_version, extra_args)
    print(f"[pi-wheels] {name}: pip install --target ... --platform {tags[0]} ... {' '.join(requirements)}",
          file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise explain_failure(proc.stdout + proc.stderr, requirements, tags, python_version)
        check_machine(tmp, "x86_64" if tags[0].endswith("_x86_64") else "aarch64")
        (tmp / COMPLETE).write_text("\n".join(f"{k}=={v}" for k, v in installed_distributions(tmp).items()) + "\n")
        tmp.rename(target)
    except subprocess.TimeoutExpired:
        raise WheelInstallError(f"pip install for {name} took longer than {timeout:.0f} s") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
