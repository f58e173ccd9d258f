#!/usr/bin/env bash
# The emulated Raspberry Pi 4 tests (pytest marker `pi`): the real edge-agent under qemu-user with the
# Cortex-A72 CPU model, the aarch64 wheels of sigmawatch[edge] and [edge-legacy], a broker on 127.0.0.1.
# Cold (fresh machine): apt installs qemu-user-static + debootstrap, the arm64 root is bootstrapped and the
# wheels are downloaded, about 2-4 minutes; warm (cached root and wheels): about 2 minutes.
# Extra arguments go to pytest, e.g. scripts/test-pi.sh -k legacy
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${SIGMAWATCH_PYTHON:-.venv/bin/python}
step() { printf '\n==> %s\n' "$*"; }

step "Emulation tools (qemu-user-static, debootstrap)"
missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "ERROR: ${missing[*]} missing; install with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
qemu-aarch64-static --version | head -1

step "Emulated Raspberry Pi 4 root (cached)"
root=$(bash scripts/pi-root.sh)
echo "$root"

step "pytest -m pi (emulated timings are not performance figures)"
exec "$PY" -m pytest -q -m pi -p no:cacheprovider tests/pi "$@"
