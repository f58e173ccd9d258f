#!/usr/bin/env bash
# The main job (`make demo`, after `make setup`): the whole sigmawatch chain on this machine.
#   broker -> 2 edge agents (OpenCV's vtest.avi, fetched by setup, with the detector distilled for that scene)
#   -> bridge -> PyFlink job -> dashboard
# Options go to sigmawatch-demo, e.g.  make demo ARGS="--duration 60"   or   make demo ARGS=--synthetic
# (generated videos with the synthetic detector)   or   bash scripts/demo.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${SIGMAWATCH_VENV:-.venv}/bin/python
if [ ! -x "$PY" ]; then
  echo "ERROR: $PY not found: run 'make setup' (or 'bash scripts/setup.sh') first" >&2
  exit 1
fi
exec "$PY" -m demo "$@"
