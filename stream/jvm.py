"""The job's own Java operators (``stream/java/``): built once into a jar, shipped with the job.

Some per-event work has no good SQL form: the landing directory read in landing order with bounded state
(``LandingSource``); exact (device, seq) deduplication over any lateness, which needs a per-device set of sequence
numbers, kept as a few intervals by a keyed Java function (``SeqDedup``), where Flink SQL could only remember every
key for a TTL; and the split of every row into on time / late / rejects / trailers with one look at it
(``LandingSplit``), where SQL branches would each read every row. The sources ship with the package; :func:`jar` compiles them with the
JDK's ``javac`` against the PyFlink distribution's jars the first time (about 3 s) and caches the jar under
``~/.cache/sigmawatch/jars/`` by a hash of the sources and the Flink version; ``pipeline.jars`` ships it to the
cluster with the job. Only the machine that submits the job needs a JDK.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge.contract.errors import ToolMissingError

SOURCES = Path(__file__).with_name("java")
CACHE = Path(os.environ.get("SIGMAWATCH_CACHE", Path.home() / ".cache" / "sigmawatch")) / "jars"


def _flink_lib() -> Path:
    import pyflink
    return Path(pyflink.__file__).parent / "lib"


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def _fingerprint() -> str:
    h = hashlib.sha256()
    for src in _sources():
        h.update(src.relative_to(SOURCES).as_posix().encode())
        h.update(src.read_bytes())
    for lib in sorted(_flink_lib().glob("flink-*.jar")):
        h.update(lib.name.encode())
    return h.hexdigest()[:16]


def _tool(name: str) -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidates = [Path(java_home) / "bin" / name] if java_home else []
    found = shutil.which(name)
    for path in candidates + ([Path(found)] if found else []):
        if path.is_file():
            return str(path)
    raise ToolMissingError(f"{name} (a Java Development Kit) is needed once to build the job's Java operators: "
                           "install a JDK 11+ (sudo apt-get install openjdk-17-jdk-headless) or set JAVA_HOME")


def jar() -> Path:
    """The jar of ``stream/java/``, built if this version is not in the cache yet."""
    target = CACHE / f"sigmawatch-stream-{_fingerprint()}.jar"
    if target.is_file():
        return target
    javac, jar_tool = _tool("javac"), _tool("jar")
    classpath = os.pathsep.join(str(p) for p in sorted(_flink_lib().glob("*.jar")))
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sigmawatch-javac-") as tmp:
        classes = Path(tmp) / "classes"
        build = subprocess.run([javac, "--release", "11", "-nowarn", "-cp", classpath, "-d", str(classes),
                                *map(str, _sources())], capture_output=True, text=True)
        if build.returncode != 0:
            raise ToolMissingError(f"javac could not build the job's Java operators:\n{build.stderr[-2000:]}")
        partial = Path(tmp) / target.name
        subprocess.run([jar_tool, "cf", str(partial), "-C", str(classes), "."], check=True, capture_output=True)
        os.replace(partial, target)            # atomic: a concurrent build wins or loses whole
    return target
