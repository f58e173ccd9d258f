#!/usr/bin/env bash
# Placeholder until the full chain lands: converts a model.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/convert-model "$@"
