#!/usr/bin/env bash
# Prepare (or reuse) the emulated Raspberry Pi 4 root used by the `pi` tests and print its path:
# arm64 Debian bookworm + Python 3.11 (debootstrap --foreign + dpkg-deb -x), a Pi 4 /proc/cpuinfo,
# cached under ${XDG_CACHE_HOME:-~/.cache}/sigmawatch/pi-root/<key> and rebuilt when missing or its key changes.
# Installs qemu-user-static and debootstrap with apt when missing (as root).
#   scripts/pi-root.sh [--rebuild]
# The logic lives in tests/pi/pi_root.py (tested); this is its command line.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${SIGMAWATCH_PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" tests/pi/pi_root.py "$@"
