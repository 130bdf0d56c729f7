#!/usr/bin/env bash
# Install the project (with test tools) and run lint + the test suite.
# Usage: bash tools/run_tests.sh [extra pytest args]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash tools/install.sh --dev
PY="${NASBNN_VENV:-$REPO/.venv}/bin/python"

echo '[tests] lint: flake8, isort, yapf'
"$PY" -m flake8 nasbnn_mm tools tests configs
"$PY" -m isort --check-only --diff nasbnn_mm tools tests configs
"$PY" -m yapf --diff --recursive nasbnn_mm tools tests configs

echo '[tests] pytest'
exec "$PY" -m pytest tests -q --durations=15 "$@"
