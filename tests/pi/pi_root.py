"""An emulated Raspberry Pi 4 root: arm64 Debian bookworm (what 64-bit Raspberry Pi OS is built on) with
Python 3.11, run under qemu-user with the Cortex-A72 CPU model. See ../shared/FINDINGS.md, "Raspberry Pi 4
CPU, emulated".

How the root is made (about 30 s, no root privileges needed inside, nothing executed in the root):
  1. ``debootstrap --arch=arm64 --foreign --variant=minbase --include=python3.11 bookworm ROOT MIRROR``
     downloads the packages; ``--foreign`` only unpacks the required set (its second stage would have to
     run arm64 maintainer scripts), so
  2. every downloaded .deb is unpacked with ``dpkg-deb -x`` (Python and its libraries need no scripts);
  3. a Pi-4-like ``ROOT/proc/cpuinfo`` is written: qemu-user's ``-L ROOT`` makes the guest read it instead of
     the host's x86 one, which ai-edge-litert's CPU detection cannot parse (it crashes in allocate_tensors).

The root is cached under ``$XDG_CACHE_HOME/sigmawatch/pi-root/<key>`` (default ``~/.cache``), where the key
hashes everything that shapes it (ROOT_VERSION, suite, packages, cpuinfo); a missing, half-built or
differently-keyed root is rebuilt. Command line: ``python tests/pi/pi_root.py [--rebuild]`` prints the path.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT_VERSION = "1"
SUITE = "bookworm"
ARCH = "arm64"
PACKAGES = ("python3.11",)
PYTHON = "usr/bin/python3.11"
HOST_TOOLS = {"qemu-aarch64-static": "qemu-user-static", "debootstrap": "debootstrap", "dpkg-deb": "dpkg"}
COMPLETE = ".sigmawatch-complete"

# /proc/cpuinfo of a Raspberry Pi 4 Model B running 64-bit Raspberry Pi OS (4 x Cortex-A72, part 0xd08).
PI4_CPUINFO = "".join(
    f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n"
    for n in range(4)) + "Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"


class PiRootError(RuntimeError):
    """The emulated root could not be prepared; the message says what to install or fix."""


def log(msg: str) -> None:
    print(f"[pi-root] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- host tools
def missing_host_tools() -> dict[str, str]:
    """{command: Debian package} for the tools that are not on PATH (or in /usr/sbin)."""
    return {cmd: pkg for cmd, pkg in HOST_TOOLS.items()
            if not shutil.which(cmd) and not Path("/usr/sbin", cmd).exists()}


def ensure_host_tools(install: bool = True) -> None:
    """Install qemu-user-static and debootstrap with apt when missing (root only), else explain how."""
    missing = missing_host_tools()
    if not missing:
        return
    packages = sorted(set(missing.values()))
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {' '.join(packages)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise PiRootError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        missing = missing_host_tools()
        if not missing:
            return
    raise PiRootError(
        f"the emulated Raspberry Pi tests need {', '.join(sorted(missing))}: install them with "
        f"`sudo apt-get install {' '.join(packages)}` (Debian/Ubuntu), or run `make test-pi` as root, which does it")


def tool(cmd: str) -> str:
    return shutil.which(cmd) or str(Path("/usr/sbin", cmd))


# --------------------------------------------------------------------------- mirror
def _deb822_entries(text: str):
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def _one_line_entries(text: str):
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb":
            rest = [p for p in parts[1:] if not p.startswith("[")]  # drop [arch=... signed-by=...] options
            if len(rest) >= 2:
                yield rest[0], [rest[1]]


def apt_mirrors(apt_dir: Path = Path("/etc/apt")) -> list[tuple[str, list[str]]]:
    """(uri, suites) of every enabled `deb` source the host's apt is configured with."""
    entries: list[tuple[str, list[str]]] = []
    files = [apt_dir / "sources.list"] + sorted((apt_dir / "sources.list.d").glob("*"))
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            entries.extend(_deb822_entries(text))
        elif f.suffix == ".list" or f.name == "sources.list":
            entries.extend(_one_line_entries(text))
    return entries


def debian_mirror(suite: str = SUITE, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror to bootstrap from: $SIGMAWATCH_PI_MIRROR, else the host apt source serving ``suite``."""
    override = os.environ.get("SIGMAWATCH_PI_MIRROR")
    if override:
        return override
    for uri, suites in apt_mirrors(apt_dir):
        if suite in suites:
            return uri
    raise PiRootError(
        f"no apt source for Debian {suite!r} is configured on this machine (looked in {apt_dir}); set "
        f"SIGMAWATCH_PI_MIRROR to a Debian mirror URL that serves {suite} for arm64")


# --------------------------------------------------------------------------- the root
def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sigmawatch" / "pi-root"


def root_key() -> str:
    text = "\n".join([ROOT_VERSION, SUITE, ARCH, *PACKAGES, PI4_CPUINFO])
    return f"{SUITE}-{ARCH}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def is_complete(root: Path) -> bool:
    return (root / COMPLETE).is_file() and (root / PYTHON).is_file()


def write_cpuinfo(root: Path) -> None:
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(PI4_CPUINFO)


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PiRootError(f"{what} took longer than {timeout:.0f} s: `{' '.join(cmd)}`") from None
    if proc.returncode != 0:
        raise PiRootError(f"{what} failed (exit {proc.returncode}): `{' '.join(cmd)}`\n"
                          f"{(proc.stdout + proc.stderr)[-3000:]}")


def build_root(root: Path, mirror: str) -> None:
    """debootstrap --foreign into ``root`` (must not exist), unpack every .deb, write the Pi cpuinfo."""
    t0 = time.monotonic()
    log(f"debootstrap {SUITE} {ARCH} ({', '.join(PACKAGES)}) from the host's apt mirror into {root}")
    _run([tool("debootstrap"), f"--arch={ARCH}", "--foreign", "--variant=minbase",
          f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror], "debootstrap", timeout=900)
    debs = sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    if not any(d.name.startswith("python3.11_") for d in debs):
        raise PiRootError(f"debootstrap downloaded no python3.11 package into {root}; check the mirror {mirror}")
    for deb in debs:
        _run([tool("dpkg-deb"), "-x", str(deb), str(root)], f"unpacking {deb.name}", timeout=300)
        deb.unlink()  # the archives are not needed once unpacked (saves ~40 MB of cache)
    write_cpuinfo(root)
    log(f"root ready in {time.monotonic() - t0:.0f} s ({len(debs)} packages)")


def ensure_root(rebuild: bool = False, base: Path | None = None) -> Path:
    """The cached root for the current key, building it when missing, incomplete or ``rebuild``."""
    ensure_host_tools()
    base = base or cache_dir()
    root = base / root_key()
    if rebuild and root.exists():
        shutil.rmtree(root)
    if is_complete(root):
        if (root / "proc" / "cpuinfo").read_text() != PI4_CPUINFO:
            write_cpuinfo(root)
        return root
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.iterdir():  # other keys and half-built leftovers: this cache holds one root
        if stale.is_dir() and stale.name != root.name:
            log(f"removing stale root {stale}")
            shutil.rmtree(stale, ignore_errors=True)
    tmp = base / f".building-{root.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    try:
        build_root(tmp, debian_mirror())
        (tmp / COMPLETE).write_text(root_key() + "\n")
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare (or find) the cached emulated Raspberry Pi 4 root; print its path")
    ap.add_argument("--rebuild", action="store_true", help="delete the cached root and build it again")
    args = ap.parse_args(argv)
    try:
        print(ensure_root(rebuild=args.rebuild))
    except PiRootError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
