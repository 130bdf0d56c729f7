#!/usr/bin/env bash
# The main job on the embedded digits data, from a fresh clone:
# install, make the datasets, and run every pipeline step that has landed.
# Usage: bash tools/run_demo.sh [WORK_DIR]   (default: work_dirs/demo)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
WORK="${1:-work_dirs/demo}"
bash tools/install.sh
PY="${NASBNN_VENV:-$REPO/.venv}/bin/python"
mkdir -p "$WORK"

echo '[demo] 1. embedded data: sklearn digits -> classification + COCO sets'
"$PY" tools/dataset_converters/prepare_digits.py --out data/digits
